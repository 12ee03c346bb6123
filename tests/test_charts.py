"""The dashboard's chart builders: pure data -> plotly Figure, tested without Streamlit.

They specify what a learner sees: one colour per task in every chart, the single-task
baseline as a dashed line of its task's colour, the heat map's values, and the EMA
smoothing of curves.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard import charts  # noqa: E402

TASKS = ["y1", "y2"]


def _metrics() -> pd.DataFrame:
    """A run's long metric table: two baselines, then the multi-task model."""
    rows = []
    for step in (10, 20, 30):
        for i, task in enumerate(TASKS):
            rows.append((f"stl:{task}", step, task, "train", "loss", 5.0 - step / 10 + i, 0.0))
            rows.append((f"stl:{task}", step, task, "val", "loss", 6.0 - step / 10 + i, 0.0))
            rows.append(("mtl", step, task, "train", "loss", 4.0 - step / 10 + i, 0.0))
            rows.append(("mtl", step, task, "train", "weight", 1.0 + i, 0.0))
            rows.append(("mtl", step, task, "val", "loss", 4.5 - step / 10 + i, 0.0))
        rows.append(("mtl", step, "total", "train", "loss", 9.0 - step / 5, 0.0))
    return pd.DataFrame(rows, columns=["phase", "step", "task", "split", "metric", "value", "wall_time"])


def _trace(fig: go.Figure, name: str):
    found = [t for t in fig.data if t.name == name]
    assert found, f"no trace {name!r} among {[t.name for t in fig.data]}"
    return found[0]


# ---- colours ------------------------------------------------------------------------------
def test_task_colors_are_distinct_and_keyed_by_task_order():
    colors = charts.task_colors(["a", "b", "c"])
    assert len(set(colors.values())) == 3
    assert charts.task_colors(["a", "b", "c"]) == colors  # stable
    assert charts.task_colors(["a", "x"])["a"] == colors["a"]  # position, not name set
    assert charts.SHARED_GREY not in colors.values()


def test_task_colors_wrap_around_for_many_tasks():
    tasks = [f"t{i}" for i in range(len(charts.TASK_PALETTE) + 2)]
    colors = charts.task_colors(tasks)
    assert colors[tasks[-1]] == charts.TASK_PALETTE[1]


# ---- curves -------------------------------------------------------------------------------
def test_loss_curves_have_train_val_total_and_dashed_baselines_per_task():
    fig = charts.loss_curves(_metrics(), TASKS)
    names = {t.name for t in fig.data}
    for task in TASKS:
        assert {f"{task} · train", f"{task} · val", f"{task} · single-task val"} <= names
    assert "weighted total" in names
    base = _trace(fig, "y1 · single-task val")
    assert base.line.dash == "dash"
    assert list(base.y) == [5.0, 4.0, 3.0]  # the stl:y1 validation losses, not the MTL ones
    assert _trace(fig, "y1 · val").line.dash in (None, "solid")


def test_loss_curves_keep_one_colour_per_task_across_traces():
    colors = charts.task_colors(TASKS)
    fig = charts.loss_curves(_metrics(), TASKS, colors=colors)
    for task in TASKS:
        task_traces = [t for t in fig.data if t.legendgroup == task]
        assert len(task_traces) == 4  # train, val, and the baseline's train and val
        assert {t.line.color for t in task_traces} == {colors[task]}
    assert colors["y1"] != colors["y2"]


def test_loss_curves_without_baselines_or_data_still_build():
    fig = charts.loss_curves(_metrics(), TASKS, show_baselines=False)
    assert not any("single-task" in t.name for t in fig.data)
    empty = charts.loss_curves(pd.DataFrame(columns=_metrics().columns), TASKS)
    assert charts.point_count(empty) == 0


def test_baselines_training_curves_show_before_the_multi_task_model_starts():
    # While only the baselines have trained, the chart is not empty: their training losses
    # stream in as dashed lines (a click on Train shows a first point within seconds).
    m = _metrics()
    early = m[m["phase"].str.startswith("stl:") & (m["step"] <= 10)]
    fig = charts.loss_curves(early, TASKS)
    base = _trace(fig, "y1 · single-task train")
    assert list(base.x) == [10] and list(base.y) == [4.0] and base.line.dash == "dash"
    assert charts.point_count(fig) > 0


def test_long_curves_are_thinned_to_a_fixed_number_of_points_keeping_both_ends():
    steps = np.arange(10, 60_001, 10)
    x, y = charts.thin(steps, steps * 2.0, 500)
    assert len(x) == 500 and x[0] == 10 and x[-1] == 60_000 and np.all(np.diff(x) > 0)
    assert np.array_equal(y, x * 2.0)  # each kept point keeps its own value
    short = np.arange(5)
    assert charts.thin(short, short, 500)[0] is short  # short curves are drawn whole
    rows = [("mtl", int(s), "y1", "train", "loss", 1.0, 0.0) for s in steps]
    long_run = pd.DataFrame(rows, columns=_metrics().columns)
    assert len(_trace(charts.loss_curves(long_run, ["y1"]), "y1 · train").x) == charts.MAX_CURVE_POINTS


def test_a_live_redraw_reuses_the_figure_when_only_points_were_added():
    m = _metrics()
    first = charts.loss_curves(m[m["step"] <= 20], TASKS)
    again = charts.loss_curves(m, TASKS, reuse=first)
    assert again is first  # the same traces: points replaced, figure kept
    fresh = charts.loss_curves(m, TASKS)
    assert [list(t.y) for t in again.data] == [list(t.y) for t in fresh.data]
    # Other traces (baselines hidden) or other settings (log scale): a new figure.
    assert charts.loss_curves(m, TASKS, reuse=first, show_baselines=False) is not first
    assert charts.loss_curves(m, TASKS, reuse=first, log_y=True) is not first


def test_point_count_grows_with_logged_steps():
    m = _metrics()
    early = charts.loss_curves(m[m["step"] <= 10], TASKS)
    late = charts.loss_curves(m, TASKS)
    assert charts.point_count(late) > charts.point_count(early) > 0


def test_smoothing_changes_training_curves_only():
    raw = charts.loss_curves(_metrics(), TASKS)
    smooth = charts.loss_curves(_metrics(), TASKS, smoothing=0.9)
    assert list(_trace(smooth, "y1 · val").y) == list(_trace(raw, "y1 · val").y)
    assert list(_trace(smooth, "y1 · train").y) != list(_trace(raw, "y1 · train").y)


def test_weights_chart_has_one_line_per_task_with_its_weights():
    raw = charts.weights_chart(_metrics(), TASKS, share=False)
    assert [t.name for t in raw.data] == TASKS
    assert list(_trace(raw, "y2").y) == [2.0, 2.0, 2.0]
    # By default each task's share of the total (w = 1 and 2: 1/3 and 2/3), comparable across
    # strategies whose weights live on scales of their own.
    share = charts.weights_chart(_metrics(), TASKS)
    assert list(_trace(share, "y1").y) == pytest.approx([1 / 3] * 3)
    assert list(_trace(share, "y2").y) == pytest.approx([2 / 3] * 3)
    m = _metrics()
    big = m.assign(value=np.where(m["metric"] == "weight", m["value"] * 200.0, m["value"]))  # PCGrad-like scale
    assert list(_trace(charts.weights_chart(big, TASKS), "y2").y) == pytest.approx([2 / 3] * 3)


def test_overlay_chart_draws_one_line_per_run():
    curves = {
        "run a": pd.DataFrame({"step": [1, 2, 3], "value": [3.0, 2.0, 1.0]}),
        "run b": pd.DataFrame({"step": [3, 1, 2], "value": [0.5, 1.5, 1.0]}),
    }
    fig = charts.overlay_chart(curves, title="y1 · val loss")
    assert [t.name for t in fig.data] == ["run a", "run b"]
    assert list(_trace(fig, "run b").x) == [1, 2, 3]  # sorted by step
    assert _trace(fig, "run a").line.color != _trace(fig, "run b").line.color


# ---- EMA ------------------------------------------------------------------------------------
def test_ema_with_zero_smoothing_is_the_identity():
    x = [3.0, 1.0, 4.0, 1.0, 5.0]
    assert np.allclose(charts.ema(x, 0.0), x)


def test_ema_is_debiased_weighted_average():
    x = np.array([1.0, 2.0, 3.0])
    s = 0.5
    # s_t = Σ s^(t-i) x_i / Σ s^(t-i)
    expected = [1.0, (0.5 * 1 + 2) / 1.5, (0.25 * 1 + 0.5 * 2 + 3) / 1.75]
    assert np.allclose(charts.ema(x, s), expected)


def test_ema_of_a_constant_is_that_constant_from_the_first_point():
    assert np.allclose(charts.ema([2.0] * 10, 0.95), 2.0)  # no pull towards 0 at the start


def test_ema_skips_missing_points_and_keeps_length():
    out = charts.ema([1.0, np.nan, 3.0], 0.5)
    assert len(out) == 3 and np.isfinite(out[0]) and np.isfinite(out[2])
    assert charts.ema([], 0.5).size == 0


@pytest.mark.parametrize("smoothing", [0.3, 0.9, 0.99])
def test_ema_stays_within_the_range_of_the_data(smoothing):
    x = np.random.default_rng(0).normal(size=50)
    out = charts.ema(x, smoothing)
    assert out.min() >= x.min() - 1e-12 and out.max() <= x.max() + 1e-12


# ---- results --------------------------------------------------------------------------------
ROWS = [
    {"name": "y1", "metric": "mse", "higher_is_better": False, "stl": 6.87, "mtl": 7.26, "delta_pct": -5.56},
    {"name": "y2", "metric": "mse", "higher_is_better": False, "stl": 6.69, "mtl": 5.42, "delta_pct": 18.99},
]


def test_comparison_bars_one_panel_per_task_in_the_task_colour():
    colors = charts.task_colors(["y1", "y2"])
    fig = charts.comparison_bars(ROWS, colors=colors)
    assert len(fig.data) == 2
    for trace, row in zip(fig.data, ROWS):
        assert list(trace.x) == ["single-task", "multi-task"]
        assert list(trace.y) == [row["stl"], row["mtl"]]
        assert trace.marker.color[1] == colors[row["name"]]  # multi-task bar: the task's colour


def test_comparison_frame_without_verdicts_names_no_transfer():
    frame = charts.comparison_frame(ROWS)
    assert list(frame["task"]) == ["y1", "y2"]
    assert list(frame["transfer"]) == ["—", "—"]  # a sign alone is not a verdict (issue 12)
    assert frame.loc[0, "metric"] == "mse ↓"


def test_style_comparison_paints_helped_green_and_hurt_red_and_a_bare_sign_not_at_all():
    judged = [{**ROWS[0], "verdict": "hurt"}, {**ROWS[1], "verdict": "helped"}]
    html = charts.style_comparison(charts.comparison_frame(judged)).to_html()
    assert charts.WORSE_BG in html and charts.BETTER_BG in html
    assert "+18.99" in html and "-5.56" in html
    bare = charts.style_comparison(charts.comparison_frame(ROWS)).to_html()
    assert charts.WORSE_BG not in bare and charts.BETTER_BG not in bare


# ---- interference ---------------------------------------------------------------------------
SNAPSHOTS = [
    {"step": 10, "tasks": ["y1", "y2", "y3"],
     "grad_cosine": [[1, -0.2, 0.5], [-0.2, 1, 0.1], [0.5, 0.1, 1]], "grad_norm": [1.0, 2.0, 3.0]},
    {"step": 20, "tasks": ["y1", "y2", "y3"],
     "grad_cosine": [[1, 0.3, 0.4], [0.3, 1, -0.6], [0.4, -0.6, 1]], "grad_norm": [1.5, 2.5, 0.5]},
]


def test_cosine_heatmap_holds_the_matrix_on_a_fixed_scale():
    fig = charts.cosine_heatmap(["y1", "y2"], [[1.0, -0.25], [-0.25, 1.0]])
    heat = fig.data[0]
    assert isinstance(heat, go.Heatmap)
    assert np.allclose(np.asarray(heat.z), [[1.0, -0.25], [-0.25, 1.0]])
    assert (heat.zmin, heat.zmax) == (-1.0, 1.0)  # the same colour means the same cosine in every run
    assert list(heat.x) == ["y1", "y2"]


def test_cosine_history_has_one_line_per_pair_and_a_shaded_conflict_band():
    fig = charts.cosine_history_chart(SNAPSHOTS)
    assert [t.name for t in fig.data] == ["y1 · y2", "y1 · y3", "y2 · y3"]
    assert list(_trace(fig, "y2 · y3").y) == [0.1, -0.6]
    band = [s for s in fig.layout.shapes if s.type == "rect"]
    assert band and band[0].y0 == -1.0 and band[0].y1 == 0.0


def test_grad_norm_chart_one_line_per_task_in_task_colours():
    colors = charts.task_colors(["y1", "y2", "y3"])
    fig = charts.grad_norm_chart(SNAPSHOTS, colors=colors)
    assert [t.name for t in fig.data] == ["y1", "y2", "y3"]
    assert list(_trace(fig, "y3").y) == [3.0, 0.5]
    assert _trace(fig, "y2").line.color == colors["y2"]


def test_interference_charts_accept_no_snapshots():
    assert len(charts.cosine_history_chart([]).data) == 0
    assert len(charts.grad_norm_chart([]).data) == 0


# ---- diagram --------------------------------------------------------------------------------
def _fills(fig: go.Figure) -> list[str]:
    return [s.fillcolor for s in fig.layout.shapes if s.type == "rect"]


def test_shared_diagram_has_one_grey_encoder_and_a_coloured_head_per_task():
    colors = charts.task_colors(["a", "b", "c"])
    fills = _fills(charts.architecture_diagram("shared", ["a", "b", "c"], colors=colors))
    assert fills.count(charts.SHARED_GREY) == 1
    for task in "abc":
        assert fills.count(colors[task]) == 1


def test_separate_and_soft_diagrams_give_each_task_its_own_encoder():
    colors = charts.task_colors(["a", "b"])
    for kind in ("separate", "soft"):
        fills = _fills(charts.architecture_diagram(kind, ["a", "b"], colors=colors))
        assert charts.SHARED_GREY not in fills
        assert fills.count(colors["a"]) == 2 and fills.count(colors["b"]) == 2  # encoder + head
    soft = charts.architecture_diagram("soft", ["a", "b"], colors=colors)
    assert any(s.type == "line" and s.line.color == charts.SHARED_GREY for s in soft.layout.shapes)


def test_unknown_diagram_kind_is_drawn_as_shared():
    fills = _fills(charts.architecture_diagram("no_such_kind", ["a", "b"]))
    assert fills.count(charts.SHARED_GREY) == 1


@pytest.mark.parametrize("kind", charts.DIAGRAM_KINDS)
def test_every_diagram_kind_colours_each_tasks_head(kind):
    colors = charts.task_colors(["a", "b", "c"])
    fills = _fills(charts.architecture_diagram(kind, ["a", "b", "c"], colors=colors))
    for task in "abc":
        assert colors[task] in fills
    shares_blocks = kind in ("shared", "attention", "experts", "hierarchical")
    assert (charts.SHARED_GREY in fills) == shares_blocks


# ---- interference: affinity, magnitudes, pairs ------------------------------------------------
AFFINITY = [[0.0032, 0.0016, -0.0015], [0.0014, 0.0033, 0.0017], [-0.0009, 0.0018, 0.0037]]


def test_affinity_heatmap_shows_scaled_values_with_row_helps_column_labels():
    fig = charts.affinity_heatmap(["y1", "y2", "y3"], AFFINITY)
    heat = fig.data[0]
    assert charts.affinity_exponent(AFFINITY) == 3  # 3.7e-3 -> 3.7 ×10³
    assert np.allclose(np.asarray(heat.z), np.asarray(AFFINITY) * 1e3)
    assert heat.text[0][2] == "-1.50"  # y1's step hurts y3: a signed, readable cell
    assert heat.zmid == 0.0 and heat.zmin == -heat.zmax  # diverging around 0: red hurts, blue helps
    assert "×10³" in fig.layout.title.text and "row i helps column j" in fig.layout.title.text
    assert "row i" in fig.layout.yaxis.title.text and "column j" in fig.layout.xaxis.title.text
    assert list(heat.y) == ["y1", "y2", "y3"] and fig.layout.yaxis.autorange == "reversed"  # row 0 on top


def test_affinity_exponent_brings_the_largest_value_into_one_to_ten():
    assert charts.affinity_exponent([[2e-5, -1e-6]]) == 5
    assert charts.affinity_exponent([[0.25]]) == 1
    assert charts.affinity_exponent([[0.0, 0.0]]) == 3  # nothing measured: the usual scale
    assert charts.scale_label(3) == "×10³" and charts.scale_label(0) == ""


def test_magnitude_heatmap_is_on_a_fixed_zero_to_one_scale():
    fig = charts.magnitude_heatmap(["y1", "y2"], [[1.0, 0.4], [0.4, 1.0]])
    assert (fig.data[0].zmin, fig.data[0].zmax) == (0.0, 1.0)
    assert np.allclose(np.asarray(fig.data[0].z), [[1.0, 0.4], [0.4, 1.0]])


def test_pairs_frame_gives_the_conflict_rate_in_percent():
    pairs = [{"pair": ["y1", "y2"], "mean_cosine": 0.38, "conflict_rate": 0.25, "trend": -0.05, "evaluations": 4}]
    frame = charts.pairs_frame(pairs)
    assert list(frame.columns) == ["pair", "mean cosine", "conflict rate %", "trend", "evaluations"]
    assert frame.loc[0, "pair"] == "y1 · y2"
    assert frame.loc[0, "conflict rate %"] == pytest.approx(25.0)
    assert frame.loc[0, "trend"] == pytest.approx(-0.05) and frame.loc[0, "evaluations"] == 4
    assert charts.pairs_frame([]).empty


# ---- results over several seeds ----------------------------------------------------------------
SEEDED = [
    {**ROWS[0], "n_seeds": 3, "stl_std": 0.5, "mtl_std": 0.6, "verdict": "no clear difference"},
    {**ROWS[1], "n_seeds": 3, "stl_std": 0.1, "mtl_std": 0.2, "verdict": "positive transfer"},
]


def test_comparison_frame_over_seeds_has_std_columns_and_the_noise_aware_verdict():
    frame = charts.comparison_frame(SEEDED)
    assert {"single-task std", "multi-task std"} <= set(frame.columns)
    assert list(frame["multi-task std"]) == [0.6, 0.2]
    # Δ % is negative for y1, but the seeds say the gap is noise: not called hurt; the
    # seeds' "positive transfer" (a result stored before issue 12) reads "helped"
    assert list(frame["transfer"]) == ["no clear difference", "helped"]
    html = charts.style_comparison(frame).to_html()
    assert charts.WORSE_BG not in html and charts.BETTER_BG in html
    assert "± 0.6" in html
    assert "single-task std" not in charts.comparison_frame(ROWS).columns  # one seed: as before


def test_comparison_bars_show_the_seed_spread_as_error_bars():
    fig = charts.comparison_bars(SEEDED)
    assert list(fig.data[0].error_y.array) == [0.5, 0.6]
    assert charts.comparison_bars(ROWS).data[0].error_y.array is None


# ---- expert gates ------------------------------------------------------------------------------
GATES = {
    "y1": {"expert 1": 0.7, "expert 2": 0.2, "expert 3": 0.1},
    "y2": {"expert 1": 0.1, "expert 2": 0.3, "expert 3": 0.6},
}


def test_gates_bars_stack_each_tasks_gate_to_one_with_one_colour_per_expert():
    fig = charts.gates_bars(GATES)
    assert fig.layout.barmode == "stack"
    assert [t.name for t in fig.data] == ["expert 1", "expert 2", "expert 3"]
    totals = np.sum([np.asarray(t.x, dtype=float) for t in fig.data], axis=0)
    assert np.allclose(totals, 1.0)  # each task's bar sums to 1
    assert list(fig.data[0].y) == ["y1", "y2"] and list(fig.data[0].x) == [0.7, 0.1]
    colors = [t.marker.color for t in fig.data]
    assert len(set(colors)) == 3  # an expert keeps one colour in every task's bar


def test_expert_colours_are_grey_for_shared_experts_and_the_tasks_for_its_own():
    task_colors = charts.task_colors(["y1", "y2"])
    colors = charts.expert_colors(["y1 1", "y1 2", "shared 1", "y2 1"], ["y1", "y2"], colors=task_colors)
    assert colors["y1 1"] == task_colors["y1"] and colors["y2 1"] == task_colors["y2"]
    assert colors["y1 2"] not in (colors["y1 1"], colors["y2 1"])  # a lighter shade of y1's colour
    assert colors["shared 1"] in charts.EXPERT_PALETTE


def test_gates_history_chart_stacks_the_experts_of_each_task_over_the_steps():
    rows = [("mtl", step, task, "gates", expert, w, 0.0)
            for step in (10, 20) for task, gate in GATES.items() for expert, w in gate.items()]
    metrics = pd.DataFrame(rows, columns=["phase", "step", "task", "split", "metric", "value", "wall_time"])
    fig = charts.gates_history_chart(metrics, ["y1", "y2"])
    assert len(fig.data) == 6  # 2 tasks × 3 experts
    assert {t.stackgroup for t in fig.data} == {"y1", "y2"}
    assert list(fig.data[0].x) == [10, 20] and list(fig.data[0].y) == [0.7, 0.7]


# ---- transfer ----------------------------------------------------------------------------------
TRANSFER_ROWS = [
    {"arm": arm, "fraction": f, "n_labelled": n, "metric_value": v}
    for (f, n) in ((0.05, 40), (0.2, 160), (1.0, 800))
    for arm, v in (("frozen", 0.6 + f / 10), ("finetune", 0.7 + f / 10), ("scratch", 0.4 + f / 2))
]


def test_data_efficiency_chart_has_one_line_per_arm_over_a_log_axis():
    fig = charts.data_efficiency_chart(TRANSFER_ROWS, metric="accuracy", higher_is_better=True)
    assert [t.name for t in fig.data] == [charts.ARM_LABELS[a] for a in ("frozen", "finetune", "scratch")]
    assert fig.layout.xaxis.type == "log"
    assert list(fig.layout.xaxis.tickvals) == [40, 160, 800]  # ticks at the data sizes
    scratch = _trace(fig, "from scratch")
    assert list(scratch.x) == [40, 160, 800] and scratch.y[-1] == pytest.approx(0.9)
    assert scratch.line.dash == "dash"  # the control
    assert {t.line.color for t in fig.data} == {charts.ARM_COLORS[a] for a in ("frozen", "finetune", "scratch")}
    assert "accuracy ↑" in fig.layout.yaxis.title.text


def test_data_efficiency_chart_keeps_arm_colours_when_an_arm_is_left_out():
    rows = [r for r in TRANSFER_ROWS if r["arm"] != "frozen"]
    fig = charts.data_efficiency_chart(rows, metric="mse", arms=["finetune", "scratch"])
    assert _trace(fig, "fine-tuned encoder").line.color == charts.ARM_COLORS["finetune"]
    assert len(fig.data) == 2
