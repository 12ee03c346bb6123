"""Task interference and grouping: gradient cosine, magnitude similarity, look-ahead
affinity (Fifty et al., 2021) and the TAG-style grouping of tasks."""

from __future__ import annotations

import math

import pytest
import torch

from mtl_core.config import ExperimentConfig
from mtl_core.engine import interference_snapshot
from mtl_core.errors import ConfigError
from mtl_core.experiment import run_experiment
from mtl_core.grouping import _partitions, best_grouping, describe
from mtl_core.interference import lookahead_affinity, magnitude_similarity, pair_summary
from mtl_core.models import build_model
from mtl_core.tasks import load_dataset

# Low-noise quickstart-like settings, where the task relationship shows in the gradients.
CLEAN = {
    "dataset": {"name": "mmoe_synthetic", "options": {"n_samples": 2000, "noise": 0.1, "input_dim": 32}},
    "model": {"hidden": [64, 64]},
    "optimizer": {"lr": 0.003},
    "steps": 600, "batch_size": 64, "eval_every": 50, "baselines": False,
}


def run(**over):
    cfg = {**CLEAN, **over}
    cfg["dataset"] = {**CLEAN["dataset"], "options": {**CLEAN["dataset"]["options"], **over.get("options", {})}}
    cfg.pop("options", None)
    return run_experiment(ExperimentConfig.parse(cfg))


def test_magnitude_similarity_is_one_for_equal_norms_and_small_when_one_dominates():
    G = torch.tensor([[3.0, 4.0], [0.0, 5.0], [0.0, 50.0]])
    gms = magnitude_similarity(G)
    assert gms[0, 1] == pytest.approx(1.0)
    assert gms[0, 2] == pytest.approx(2 * 5 * 50 / (25 + 2500))
    assert torch.allclose(gms, gms.T)


def test_lookahead_affinity_matches_the_definition_and_leaves_parameters_unchanged():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.zeros(3))  # at 0 the two targets pull in opposite directions only
    x = torch.randn(16, 3)
    targets = [x @ torch.tensor([1.0, 0.0, 0.0]), x @ torch.tensor([-1.0, 0.0, 0.0])]

    def losses():
        return torch.stack([((x @ w - y) ** 2).mean() for y in targets])

    L = losses()
    G = torch.stack([torch.autograd.grad(L[t], [w], retain_graph=True)[0] for t in range(2)])
    before = w.detach().clone()
    Z = lookahead_affinity([w], G, 0.1, losses)
    assert torch.equal(w.detach(), before)
    with torch.no_grad():
        expected = 1 - ((x @ (before - 0.1 * G[0]) - targets[1]) ** 2).mean() / L[1]
    assert Z[0, 1].item() == pytest.approx(expected.item(), rel=1e-5)
    assert Z[0, 0] > 0  # a step on a task helps that task
    assert Z[0, 1] < 0 and Z[1, 0] < 0  # opposite targets: each step hurts the other task


def test_interference_snapshot_with_affinity_does_not_change_the_model():
    ds = load_dataset("mmoe_synthetic", {"n_samples": 300, "input_dim": 8}, seed=0)
    model = build_model("hard", ds, ds.task_names, ExperimentConfig.parse({}).model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    snap = interference_snapshot(model, ds, ds.train.x[:64], {t: ds.train.y[t][:64] for t in ds.task_names},
                                 affinity_lr=0.05)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert len(snap["affinity"]) == 2 and len(snap["grad_magnitude_similarity"]) == 2


def test_affinity_is_higher_for_correlated_tasks_than_for_anti_correlated_ones():
    def cross_affinity(p):
        vals = []
        for seed in (0, 1):
            Z = run(seed=seed, options={"correlation": p})["interference"]["affinity"]
            vals.append((Z[0][1] + Z[1][0]) / 2)
        return sum(vals) / len(vals)

    high, low = cross_affinity(0.9), cross_affinity(-0.9)
    assert high > 0 > low  # measured: ≈ +1.5e-3 vs ≈ -0.2e-3


def test_grouping_puts_the_correlated_pair_together():
    result = run(seed=0, options={"n_tasks": 3, "correlations": [1.0, 0.9, -0.9]})
    grouping = {g["n_groups"]: g for g in result["interference"]["grouping"]}
    assert grouping[2]["groups"] == [["y1", "y2"], ["y3"]]
    assert grouping[2]["text"] == "train {y1, y2} together and y3 alone"
    assert grouping[1]["groups"] == [["y1", "y2", "y3"]] and grouping[3]["groups"] == [["y1"], ["y2"], ["y3"]]


def test_grouping_is_exhaustive_over_set_partitions():
    # Bell-number check: partitions of 5 items into k groups are the Stirling numbers S(5, k).
    assert [len(list(_partitions(list(range(5)), k))) for k in range(1, 6)] == [1, 15, 25, 10, 1]
    Z = [[0, 1, -1, -1], [1, 0, -1, -1], [-1, -1, 0, 2], [-1, -1, 2, 0]]
    out = best_grouping(Z, ["a", "b", "c", "d"], 2)
    assert out["groups"] == [["a", "b"], ["c", "d"]] and out["score"] == pytest.approx(6.0)
    with pytest.raises(ConfigError, match="n_groups"):
        best_grouping(Z, ["a", "b", "c", "d"], 5)


def test_describe_reads_like_a_suggestion():
    assert describe([["A", "B"], ["C"]]) == "train {A, B} together and C alone"
    assert describe([["A", "B", "C"]]) == "train {A, B, C} together"


def test_pair_summary_counts_conflicts_and_trend():
    snaps = [{"tasks": ["a", "b"], "grad_cosine": [[1, c], [c, 1]]} for c in (0.5, -0.5, -0.2, -0.4)]
    (pair,) = pair_summary(snaps)
    assert pair["pair"] == ["a", "b"] and pair["conflict_rate"] == 0.75
    assert pair["mean_cosine"] == pytest.approx(-0.15)
    assert pair["trend"] == pytest.approx(-0.3 - 0.0)


def test_results_carry_affinity_conflicts_and_grouping():
    result = run(seed=0, steps=100, options={"n_samples": 400})
    inter = result["interference"]
    assert len(inter["affinity"]) == 2 and set(inter["conflict_rate"]) == {"y1|y2"}
    assert inter["pairs"][0]["evaluations"] == 2
    assert all(math.isfinite(v) for row in inter["affinity"] for v in row)
    off = run_experiment(ExperimentConfig.parse({**CLEAN, "steps": 100, "affinity_every": 0}))
    assert off["interference"]["affinity"] is None and off["interference"]["grouping"] == []


def test_verdicts_compare_mtl_and_stl_paired_over_seeds():
    from mtl_core.metrics import transfer_verdict

    clear = transfer_verdict([2.0, 2.2, 1.8], [1.5, 1.7, 1.3], higher_is_better=False)
    assert clear["verdict"] == "helped" and "helps" in clear["verdict_text"]
    noisy = transfer_verdict([2.0, 2.2, 1.8], [1.5, 2.6, 1.9], higher_is_better=False)
    assert noisy["verdict"] == "no clear difference" and "noise" in noisy["verdict_text"]
    worse = transfer_verdict([0.9, 0.92, 0.88], [0.8, 0.83, 0.78], higher_is_better=True)
    assert worse["verdict"] == "hurt" and worse["mtl_std"] == pytest.approx(0.025166, rel=1e-3)
    # One seed with nothing but the two numbers has no noise estimate: no verdict either way.
    one = transfer_verdict([0.9], [0.95], higher_is_better=True)
    assert one["verdict"] == "no clear difference" and "one seed" in one["verdict_text"]


def test_a_run_with_several_seeds_reports_mean_std_and_verdicts():
    cfg = {**CLEAN, "steps": 60, "eval_every": 30, "n_seeds": 3, "affinity_every": 0,
           "dataset": {"name": "mmoe_synthetic", "options": {"n_samples": 400, "input_dim": 8}},
           "model": {"hidden": [16]}, "baselines": True}
    result = run_experiment(ExperimentConfig.parse(cfg))
    assert result["seeds"] == [0, 1, 2]
    for row in result["tasks"]:
        assert row["n_seeds"] == 3 and row["stl_std"] > 0 and row["mtl_std"] > 0
        assert row["verdict"] in ("helped", "hurt", "no clear difference")
        assert row["interval"]["low"] <= row["diff"] <= row["interval"]["high"]
        assert row["mtl"] == pytest.approx(row["mtl_mean"])


# ---- the snapshot's cost cuts measure the same thing (issue 11) --------------------------------
def _hard_model_and_batch(n: int = 64):
    from mtl_core.config import ModelSpec
    from mtl_core.models.heads import task_loss

    ds = load_dataset("mmoe_synthetic", {"n_samples": 300, "input_dim": 8, "n_tasks": 3}, seed=0)
    torch.manual_seed(0)
    model = build_model("hard", ds, ds.task_names, ModelSpec(hidden=[16, 8], head_hidden=4))
    x, y = ds.train.x[:n], {t: ds.train.y[t][:n] for t in ds.task_names}

    def losses():
        out = model(x)
        return [task_loss("regression", out[t], y[t]) for t in ds.task_names]

    return ds, model, x, y, losses


def test_task_gradients_from_each_loss_equal_those_from_the_stacked_losses():
    from mtl_core.interference import task_gradients

    _, model, _, _, losses = _hard_model_and_batch()
    shared = model.shared_parameters()
    from_list = task_gradients(losses(), shared)
    from_stack = task_gradients(torch.stack(losses()), shared)
    assert from_list.shape == (3, sum(p.numel() for p in shared)) and from_list.dtype == torch.float32
    torch.testing.assert_close(from_list, from_stack, rtol=0, atol=1e-7)


def test_snapshot_cosine_equals_that_of_a_gradient_methods_G_on_the_same_batch():
    # What a reuse of the step's G would give where the batch and the mode are the same:
    # the snapshot's cosine is that of PCGrad's own per-task gradients.
    from mtl_core.interference import grad_cosine
    from mtl_core.weighting import build_weighting

    ds, model, x, y, losses = _hard_model_and_batch()
    snap = interference_snapshot(model, ds, x, y)
    s = build_weighting("pcgrad", ds.task_names, {}, base_weights=torch.ones(3))
    model.eval()
    s.backward(torch.stack(losses()), step=1, model=model)
    expected = grad_cosine(s.last_grads)
    assert torch.allclose(torch.tensor(snap["grad_cosine"]), expected, atol=1e-5)
    assert snap["grad_norm"] == pytest.approx(s.last_grads.norm(dim=1).tolist(), rel=1e-5)


def test_affinity_reusing_the_snapshots_forward_equals_the_one_that_recomputes_it():
    from mtl_core.interference import task_gradients

    ds, model, x, y, losses = _hard_model_and_batch()
    snap = interference_snapshot(model, ds, x, y, affinity_lr=0.05)
    shared = model.shared_parameters()
    model.eval()
    with torch.enable_grad():
        G = task_gradients(losses(), shared)
    with torch.no_grad():
        Z = lookahead_affinity(shared, G, 0.05, lambda: torch.stack(losses()))  # computes its own "before"
    assert torch.allclose(torch.tensor(snap["affinity"]), Z, atol=1e-6)


# ---- a large shared encoder is measured on its top layers (issue 16) ---------------------------
def test_a_large_shared_encoder_is_measured_on_its_last_shared_layers_only(monkeypatch):
    from mtl_core import engine
    from mtl_core.interference import grad_cosine, task_gradients

    ds, model, x, y, losses = _hard_model_and_batch()
    shared = model.shared_parameters()
    sizes = [p.numel() for p in shared]  # in forward order: layer 1 weight, bias, layer 2 weight, bias
    total = sum(sizes)
    # Small enough: every trainable shared parameter, and the snapshot says nothing more.
    picked, counted = engine.interference_parameters(model)
    assert [id(p) for p in picked] == [id(p) for p in shared] and counted == total
    assert "measured_params" not in interference_snapshot(model, ds, x, y)

    # A limit that holds only the last layer: its weight and bias, nothing below it.
    limit = sizes[-1] + sizes[-2]
    picked, counted = engine.interference_parameters(model, limit)
    assert [id(p) for p in picked] == [id(p) for p in shared[-2:]] and counted == total
    assert [id(p) for p in engine.interference_parameters(model, 1)[0]] == [id(shared[-1])]  # at least one

    monkeypatch.setattr(engine, "INTERFERENCE_MAX_PARAMS", limit)
    reached = []  # the backward pass must not go below the measured layers
    hook = shared[0].register_hook(lambda g: reached.append(g))
    snap = interference_snapshot(model, ds, x, y)
    hook.remove()
    assert reached == []
    assert (snap["measured_params"], snap["shared_params"]) == (limit, total)
    expected = grad_cosine(task_gradients(losses(), shared[-2:]))  # the cosine of those layers' gradients
    assert torch.allclose(torch.tensor(snap["grad_cosine"]), expected, atol=1e-5)
    whole = grad_cosine(task_gradients(losses(), shared))
    assert not torch.allclose(expected, whole, atol=1e-3)  # a different (top-layer) measurement, said so


def test_a_frozen_encoder_is_left_out_of_the_measurement():
    from mtl_core import engine

    _, model, _, _, _ = _hard_model_and_batch()
    shared = model.shared_parameters()
    for p in shared[:2]:
        p.requires_grad_(False)
    picked, counted = engine.interference_parameters(model)
    assert [id(p) for p in picked] == [id(p) for p in shared[2:]]
    assert counted == sum(p.numel() for p in shared[2:])


def test_the_interference_page_says_a_large_encoder_was_measured_on_its_top_layers(lab, store_finished_run,
                                                                                   monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from mtl_core import engine
    from mtl_core.store import RunStore

    monkeypatch.setattr(engine, "INTERFERENCE_MAX_PARAMS", 100)  # the quickstart model stands in for MiniLM
    run_id = store_finished_run(lab, {"dataset": {"name": "mmoe_synthetic", "options": {"n_samples": 300}},
                                      "steps": 20, "eval_every": 10, "log_every": 5})
    with RunStore(lab / "mtl_lab.db") as store:
        info = store.result(run_id)["interference"]
    assert 0 < info["measured_params"] <= 100 < info["shared_params"]
    app = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
    for lang, expected in (("en", f"Measured on the last {info['measured_params']:,} of the "
                                  f"{info['shared_params']:,} trainable shared parameters"),
                           ("zh", f"只在 {info['shared_params']:,} 个可训练共享参数中最后的 {info['measured_params']:,} 个")):
        at = AppTest.from_file(app, default_timeout=60)
        at.query_params.update({"run": run_id, "lang": lang})
        at = at.switch_page("app_pages/interference.py").run()
        assert not at.exception, at.exception
        assert any(expected in c.value for c in at.caption), [c.value for c in at.caption]
