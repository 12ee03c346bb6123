"""Colours and words follow the verdict, never the sign alone (issue 12, item 3).

Green only for a clear gain ("helped", "agree"), red only for a clear loss ("hurt",
"conflict"), grey for "no clear difference" / "no clear sign", no colour for a run stored
before verdicts knew their noise: in the Train page's finish banner, the Results table, the
Interference page and the Runs table. Runs are fabricated in a store (RunStore.create_run +
record_end with a crafted result), so each test states exactly which verdict the page reads.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard import charts, verdicts  # noqa: E402
from mtl_core.store import RunStore  # noqa: E402

APP = str(ROOT / "dashboard" / "app.py")
CONFIG = {"dataset": {"name": "mmoe_synthetic", "options": {"n_samples": 300, "input_dim": 8}},
          "steps": 30, "batch_size": 32, "eval_every": 10}
INTERVAL = {"level": 0.95, "method": "paired bootstrap over test examples (Efron & Tibshirani, 1993)"}


def task_row(name: str, *, stl: float, mtl: float, delta: float, verdict: str | None,
             low: float | None = None, high: float | None = None, n_seeds: int = 1) -> dict[str, Any]:
    row = {"name": name, "kind": "regression", "metric": "mse", "higher_is_better": False,
           "stl": stl, "mtl": mtl, "delta_pct": delta, "n_seeds": n_seeds, "stl_all": {"mse": stl},
           "mtl_all": {"mse": mtl}}
    if verdict is not None:
        row["verdict"] = verdict
        row["verdict_text"] = f"{verdict}: MTL {mtl:.4g} vs STL {stl:.4g}"
    if low is not None:
        row["interval"] = {"low": low, "high": high, **INTERVAL}
    return row


# y1: a clear loss, y2: a clear gain, y3: a small negative gap inside its interval.
ROWS = [
    task_row("y1", stl=0.50, mtl=0.60, delta=-20.0, verdict="hurt", low=-0.15, high=-0.05),
    task_row("y2", stl=0.50, mtl=0.40, delta=20.0, verdict="helped", low=0.04, high=0.16),
    task_row("y3", stl=0.50, mtl=0.502, delta=-0.4, verdict="no clear difference", low=-0.03, high=0.026),
]


def result(delta_m: float, verdict: str | None, *, low: float = -2.1, high: float = 1.3,
           rows: list[dict[str, Any]] | None = None, pairs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"status": "finished", "config": CONFIG, "seed": 0, "device": "cpu",
                           "tasks": copy.deepcopy(rows if rows is not None else ROWS), "delta_m": delta_m}
    if verdict is not None:
        out["delta_m_verdict"] = verdict
        out["delta_m_interval"] = {"low": low, "high": high, **INTERVAL}
    if pairs is not None:
        tasks = sorted({t for p in pairs for t in p["pair"]})
        out["interference"] = {"tasks": tasks, "pairs": pairs,
                               "conflict_rate": {"|".join(p["pair"]): p["conflict_rate"] for p in pairs},
                               "affinity": None, "grouping": []}
    return out


def store_run(home: Path, res: dict[str, Any], *, snapshots: int = 0, name: str | None = None) -> str:
    """A finished run holding `res` (and `snapshots` interference snapshots of y1, y2, y3)."""
    tasks = sorted({r["name"] for r in res["tasks"]})
    with RunStore(home / "mtl_lab.db") as store:
        run_id = store.create_run({**CONFIG, "tasks": tasks}, name=name)
        store.set_status(run_id, "running")
        for k in range(snapshots):
            c = -0.05 + 0.01 * (k % 2)  # about -0.047 on average: noise around 0
            store.log_interference(run_id, "mtl", 10 * (k + 1), {
                "tasks": tasks, "grad_cosine": [[1.0, c, 0.2], [c, 1.0, 0.1], [0.2, 0.1, 1.0]][:len(tasks)],
                "grad_norm": [1.0] * len(tasks), "grad_magnitude_similarity": None,
            })
        store.record_end(run_id, "finished", result=res)
    return run_id


@pytest.fixture
def lab(tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_LAB_HOME", str(tmp_path))
    st.cache_resource.clear()
    st.cache_data.clear()
    yield tmp_path
    st.cache_resource.clear()
    st.cache_data.clear()


def page(path: str, run_id: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if run_id:
        at.query_params["run"] = run_id
    at.run()
    if path != "app_pages/train.py":
        at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def cell_styles(element) -> dict[tuple[int, int], str]:
    """{(row, column): CSS} of a Styler-styled st.table / st.dataframe, from the CSS that
    Streamlit sends (`#T_uuid_row0_col3, #T_uuid_row1_col3 { background-color: … }`)."""
    proto = element.proto
    css = proto.styler.styles if hasattr(proto, "styler") else proto.arrow_data.styler.styles
    out: dict[tuple[int, int], str] = {}
    for rule in css.split("}"):
        if "{" not in rule:
            continue
        selectors, body = rule.split("{", 1)
        for cell in re.findall(r"_row(\d+)_col(\d+)\b", selectors):
            key = (int(cell[0]), int(cell[1]))
            out[key] = out.get(key, "") + body.strip()
    return out


# ---- the finish banner on Train -------------------------------------------------------------------
def test_a_small_negative_delta_m_inside_its_interval_is_no_success_and_not_worse(lab):
    run_id = store_run(lab, result(-0.43, "no clear difference"))
    at = page("app_pages/train.py", run_id)
    assert not at.success and not at.error
    banner = texts(at.info)
    assert "Δm = -0.43 % (95 % interval -2.10 to +1.30 %): no clear difference" in banner
    assert "worse" not in banner and "better" not in banner and "beats" not in banner


def test_a_clear_gain_is_a_success_and_a_clear_loss_an_error(lab):
    gain = page("app_pages/train.py", store_run(lab, result(3.2, "helped", low=1.1, high=5.0)))
    assert "Δm = +3.20 % (95 % interval +1.10 to +5.00 %): helped" in texts(gain.success)
    assert not gain.error
    loss = page("app_pages/train.py", store_run(lab, result(-4.0, "hurt", low=-6.5, high=-1.2)))
    assert "Δm = -4.00 % (95 % interval -6.50 to -1.20 %): hurt" in texts(loss.error)
    assert not loss.success


def test_an_old_run_without_a_verdict_gets_a_neutral_banner(lab):
    old_rows = [{k: v for k, v in r.items() if k != "interval"} | {"verdict": "negative transfer"} for r in ROWS]
    at = page("app_pages/train.py", store_run(lab, result(-0.43, None, rows=old_rows)))
    assert not at.success and not at.error
    assert "Δm = -0.43 %: this run has no interval" in texts(at.info)


# ---- the Results table ----------------------------------------------------------------------------
def test_results_table_colours_and_words_follow_each_tasks_verdict(lab):
    at = page("app_pages/results.py", store_run(lab, result(-0.43, "no clear difference")))
    table = at.table[0]
    frame = table.value
    assert list(frame["task"]) == ["y1", "y2", "y3"]
    assert list(frame["transfer"]) == ["hurt", "helped", "no clear difference"]
    assert list(frame["95 % interval"]) == ["-0.15 to -0.05", "+0.04 to +0.16", "-0.03 to +0.026"]
    cells = cell_styles(table)
    # the multi-task cell (column 3) and the verdict of each row in its verdict's colour
    for row, colour in ((0, verdicts.BAD_BG), (1, verdicts.GOOD_BG), (2, verdicts.NEUTRAL_BG)):
        for col in (3, list(frame.columns).index("transfer")):
            assert f"background-color: {colour}" in cells[row, col], (row, col, cells.get((row, col)))
    assert "background" not in cells.get((0, 2), "")  # the single-task cell stays plain
    assert verdicts.WORDS_CAPTION[:40] in texts(at.caption)
    assert "paired bootstrap over test examples" in texts(at.caption)
    # Only the clear loss is warned about, and y3's -0.4 % is nowhere called worse.
    assert "Sharing hurt y1:" in texts(at.warning) and "y3" not in texts(at.warning)
    assert at.metric[1].value == "1 / 3"  # tasks that sharing hurt
    words = texts(at.markdown) + texts(at.caption) + texts(at.warning)
    assert "negative transfer" not in words


def test_style_comparison_never_colours_a_sign_without_a_verdict():
    sign_only = [{k: v for k, v in r.items() if k not in ("verdict", "verdict_text", "interval")} for r in ROWS]
    frame = charts.comparison_frame(sign_only)
    assert list(frame["transfer"]) == ["—", "—", "—"] and "95 % interval" not in frame.columns
    html = charts.style_comparison(frame).to_html()
    assert verdicts.GOOD_BG not in html and verdicts.BAD_BG not in html and verdicts.NEUTRAL_BG not in html
    # An old one-seed verdict was the sign of one difference: no colour either.
    old = charts.comparison_frame([r | {"verdict": "negative transfer"} for r in sign_only])
    assert list(old["transfer"]) == ["—", "—", "—"]
    # An old verdict over seeds weighed their noise: it maps to the new words.
    seeded = charts.comparison_frame([sign_only[0] | {"verdict": "negative transfer", "n_seeds": 3},
                                      sign_only[1] | {"verdict": "positive transfer", "n_seeds": 3}])
    assert list(seeded["transfer"]) == ["hurt", "helped"]


def test_an_old_run_renders_on_results_with_neutral_colours(lab):
    old_rows = [{k: v for k, v in r.items() if k not in ("verdict", "verdict_text", "interval")} for r in ROWS]
    at = page("app_pages/results.py", store_run(lab, result(-0.43, None, rows=old_rows)))
    frame = at.table[0].value
    assert list(frame["transfer"]) == ["—", "—", "—"]
    assert not any("background" in css for css in cell_styles(at.table[0]).values())
    assert not at.warning and at.metric[1].value == "—"
    assert "This run has no verdicts" in texts(at.caption)


# ---- Interference -----------------------------------------------------------------------------------
PAIR_NOISE = {"pair": ["y1", "y2"], "mean_cosine": -0.047, "conflict_rate": 1.0, "trend": 0.0,
              "evaluations": 6, "verdict": "no clear sign", "low": -0.11, "high": 0.016}
PAIR_AGREE = {"pair": ["y1", "y3"], "mean_cosine": 0.2, "conflict_rate": 0.0, "trend": 0.0,
              "evaluations": 6, "verdict": "agree"}
PAIR_CONFLICT = {"pair": ["y2", "y3"], "mean_cosine": -0.4, "conflict_rate": 0.9, "trend": 0.0,
                 "evaluations": 6, "verdict": "conflict"}


def test_a_slightly_negative_cosine_without_a_clear_sign_is_not_called_conflicting(lab):
    res = result(-0.43, "no clear difference", pairs=[PAIR_NOISE, PAIR_AGREE, PAIR_CONFLICT])
    at = page("app_pages/interference.py", store_run(lab, res, snapshots=6))
    lines = [str(m.value) for m in at.markdown if "conflict (cos &lt; 0) in" in str(m.value)
             or "conflict (cos < 0) in" in str(m.value)]
    assert len(lines) == 3
    noise = next(line for line in lines if ">y1<" in line and ">y2<" in line)
    assert "mean cosine -0.047 (95 % interval -0.110 to +0.016): no clear sign —" in noise
    assert "mostly conflict" not in noise
    assert noise.startswith(verdicts.ICON[verdicts.NEUTRAL])
    agree = next(line for line in lines if ">y1<" in line and ">y3<" in line)
    assert "they mostly agree" in agree and agree.startswith(verdicts.ICON[verdicts.GOOD])
    conflict = next(line for line in lines if ">y2<" in line and ">y3<" in line)
    assert "they mostly conflict" in conflict and conflict.startswith(verdicts.ICON[verdicts.BAD])
    pairs = at.dataframe[0]
    assert list(pairs.value["verdict"]) == ["no clear sign", "agree", "conflict"]
    cells = cell_styles(pairs)
    for row, colour in ((0, verdicts.NEUTRAL_BG), (1, verdicts.GOOD_BG), (2, verdicts.BAD_BG)):
        assert f"background-color: {colour}" in cells[row, 5]
    # each task's verdict carries its own icon
    y1 = next(str(m.value) for m in at.markdown if "MTL 0.6 vs STL 0.5" in str(m.value))
    assert y1.startswith(verdicts.ICON[verdicts.BAD])


def test_pairs_of_an_old_run_show_the_mean_cosine_without_a_verdict_word(lab):
    old = {k: v for k, v in PAIR_NOISE.items() if k not in ("verdict", "low", "high")}
    res = result(-0.43, None, rows=[r for r in ROWS if r["name"] != "y3"], pairs=[old])
    at = page("app_pages/interference.py", store_run(lab, res, snapshots=6))
    line = next(str(m.value) for m in at.markdown if "evaluations, mean cosine" in str(m.value))
    assert line.endswith("mean cosine -0.047.")
    for word in ("agree", "mostly conflict", "disagree", "no clear sign"):
        assert word not in line
    assert "verdict" not in at.dataframe[0].value.columns


# ---- Runs ---------------------------------------------------------------------------------------------
def test_runs_table_colours_delta_m_by_its_verdict(lab):
    ids = {
        "helped": store_run(lab, result(3.2, "helped", low=1.1, high=5.0), name="gain"),
        "hurt": store_run(lab, result(-4.0, "hurt", low=-6.5, high=-1.2), name="loss"),
        "no clear difference": store_run(lab, result(-0.43, "no clear difference"), name="noise"),
        "": store_run(lab, result(-0.43, None), name="old"),
    }
    at = page("app_pages/runs.py")
    table = at.dataframe[0]
    frame = table.value
    verdict_of = dict(zip(frame["id"], frame["Δm verdict"]))
    assert verdict_of == {run_id: word for word, run_id in ids.items()}
    columns = list(frame.columns)
    dm_col, verdict_col = columns.index("Δm %"), columns.index("Δm verdict")
    cells = cell_styles(table)
    expected = {"helped": verdicts.GOOD_BG, "hurt": verdicts.BAD_BG, "no clear difference": verdicts.NEUTRAL_BG}
    for row, run_id in enumerate(frame["id"]):
        word = verdict_of[run_id]
        for col in (dm_col, verdict_col):
            css = cells.get((row, col), "")
            assert (f"background-color: {expected[word]}" in css) if word else ("background" not in css), (word, css)
    assert not any("background" in css for (_, col), css in cells.items() if col not in (dm_col, verdict_col))
    assert "Green and red mark only a clear Δm" in texts(at.caption)
    at.multiselect(key="runs_selected").set_value([ids["hurt"], ids["no clear difference"]]).run()
    assert not at.exception, at.exception
    badges = [str(m.value) for m in at.markdown if "-badge[" in str(m.value)]
    assert any(b.startswith(":red-badge[") and "hurt (95 % interval -6.50 to -1.20 %)" in b for b in badges)
    assert any(b.startswith(":gray-badge[") and "no clear difference" in b for b in badges)
    assert not any(b.startswith(":green-badge[") for b in badges)


def test_delta_m_sentence_for_every_verdict():
    assert verdicts.delta_m_sentence(result(3.2, "helped", low=1.1, high=5.0))[0] == "success"
    assert verdicts.delta_m_sentence(result(-4.0, "hurt", low=-6.5, high=-1.2))[0] == "error"
    kind, text = verdicts.delta_m_sentence(result(-0.43, "no clear difference"))
    assert kind == "info" and "worse" not in text
    assert verdicts.delta_m_sentence({"delta_m": None})[0] == "info"
    # a verdict word the engine does not write is no verdict
    assert verdicts.delta_m_sentence(result(2.0, "great"))[0] == "info"
