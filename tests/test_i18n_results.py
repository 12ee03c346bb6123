"""Results, Interference and Runs in 中文 (issue 15 item 5).

Specifies what a Chinese reader relies on: each page's own texts (titles, captions, messages,
widget labels, table headers, chart titles) are Chinese under `?lang=zh`, with no English
sentence of the page left; the values a user set survive the language switch; the data (table
cells, the CSV export's columns, verdict values) stay English; and a task's verdict sentence,
rebuilt from the row's numbers in Chinese, reads exactly as the engine's in English.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard import charts, i18n, verdicts  # noqa: E402
from mtl_core.metrics import transfer_verdict  # noqa: E402

APP = str(ROOT / "dashboard" / "app.py")
# Three tasks, MMoE (gates), two seeds (intervals and verdicts), affinity: every section of
# Results and Interference has something to show. ~30 steps on 300 rows.
RUN = {
    "dataset": {"name": "mmoe_synthetic", "options": {"n_tasks": 3, "n_samples": 300, "input_dim": 8}},
    "sharing": {"name": "mmoe"}, "steps": 30, "batch_size": 32, "eval_every": 10, "log_every": 5, "n_seeds": 2,
}


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def _chart_specs(at: AppTest) -> str:
    return "\n".join(json.dumps(json.loads(c.proto.spec), ensure_ascii=False) for c in at.get("plotly_chart"))


def _page_text(at: AppTest) -> str:
    """Everything the page wrote in prose: titles, headers, captions, Markdown, alerts."""
    parts = [at.title, at.header, at.subheader, at.caption, at.markdown, at.info, at.warning, at.error,
             at.success]
    return "\n".join(texts(p) for p in parts)


def _english_sentences(*prefixes: str) -> list[str]:
    """The English texts of these catalogue sections that are sentences of their own (no
    field, long enough not to be a technical term the Chinese keeps beside it)."""
    en, zh = i18n.catalogue("en"), i18n.catalogue("zh")
    return [v for k, v in en.items()
            if k.startswith(prefixes) and "{" not in v and len(v) >= 25 and v != zh[k]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, store_finished_run) -> tuple[Path, str]:
    """A lab holding one finished run, trained once in this process for the whole module."""
    home = tmp_path_factory.mktemp("i18n_results_lab")
    return home, store_finished_run(home, RUN)


@pytest.fixture
def home(trained, lab: Path) -> tuple[Path, str]:
    """A private copy of the trained lab (a test may delete runs), as this test's MTL_LAB_HOME."""
    source, run_id = trained
    for path in source.iterdir():
        shutil.copy2(path, lab / path.name)
    return lab, run_id


def page(name: str, query: dict[str, str]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    return at.switch_page(f"app_pages/{name}.py").run()


def switch_to_chinese(at: AppTest) -> AppTest:
    """The sidebar's English / 中文 switch, as a user clicks it."""
    at.sidebar.get("button_group")[0].set_value("zh").run()
    assert not at.exception, at.exception
    assert at.query_params["lang"] == "zh"
    return at


# ---- Results -----------------------------------------------------------------------------------
def test_results_page_in_chinese_keeps_the_data_english(home):
    _, run_id = home
    at = page("results", {"run": run_id, "lang": "zh"})
    assert not at.exception, at.exception
    assert at.title[0].value == "结果（Results）"
    assert {"单任务对多任务（测试集 test split）", "每个任务使用哪些专家（experts）"} <= {s.value for s in at.subheader}
    assert "Δ % 的符号取为正值总表示多任务模型更好" in texts(at.caption)
    assert "Δm（Maninis et al., 2019）" in [m.label for m in at.metric]
    assert at.selectbox(key="results_run").label == "运行（run）"
    prose = _page_text(at)
    for sentence in _english_sentences("results.", "common."):
        assert sentence not in prose, sentence
    # The task sentences are rebuilt in Chinese: none of the engine's English words remain.
    assert "multi-task training" not in prose and "over test examples" not in prose and "seeds;" not in prose
    assert "个种子（seeds）" in prose
    # The input-blind baseline is named in Chinese (the engine's English name is gone).
    assert "总是预测训练集均值" in prose and "predict the training mean" not in prose
    # Headers in Chinese; the cells stay the data: the verdict values are the engine's words.
    table = at.table[0].value
    assert {"任务", "单任务（single-task）", "多任务（multi-task）", "迁移（transfer）", "95 % 区间"} <= set(table.columns)
    assert set(table["迁移（transfer）"]) <= set(verdicts.TASK_VERDICTS)
    specs = _chart_specs(at)
    assert "单任务（single-task）" in specs and "门控权重（gate weight" in specs
    assert '"single-task"' not in specs


def test_results_widgets_keep_their_values_across_the_switch(home):
    _, run_id = home
    at = page("results", {"run": run_id})
    assert at.toggle(key="results_raw_weights").label == "raw values"
    at.toggle(key="results_raw_weights").set_value(True).run()
    switch_to_chinese(at)
    assert at.toggle(key="results_raw_weights").value is True
    assert at.toggle(key="results_raw_weights").label == "原始值"
    assert at.selectbox(key="results_run").value == run_id
    assert at.title[0].value == "结果（Results）"


# ---- Interference ------------------------------------------------------------------------------
def test_interference_page_in_chinese(home):
    _, run_id = home
    at = page("interference", {"run": run_id, "lang": "zh"})
    assert not at.exception, at.exception
    assert at.title[0].value == "任务干扰（Interference）"
    assert {"一句话总结", "任务对（task pairs）", "哪个任务帮助哪个任务", "共享对每个任务有帮助吗？"} <= {
        s.value for s in at.subheader}
    prose = _page_text(at)
    for sentence in _english_sentences("interference.", "common."):
        assert sentence not in prose, sentence
    assert "次评估中有 **" in prose and "conflict (cos < 0) in" not in prose
    assert "建议：**" in prose  # the grouping suggestion (its split text is the engine's: data)
    assert at.selectbox(key="interference_groups").label == "模型数量"
    assert any(o.endswith("个模型（推荐）") for o in at.selectbox(key="interference_groups").options)
    # The pair table keeps its English columns (data); the headers are set through column_config.
    assert {"mean cosine", "conflict rate %", "trend", "evaluations"} <= set(at.dataframe[0].value.columns)
    specs = _chart_specs(at)
    for title in ("训练过程中的梯度余弦", "前瞻亲和度（look-ahead affinity）", "梯度幅度相似度", "每个任务的梯度范数"):
        assert title in specs, title
    assert "gradient cosine over training" not in specs and "row i helps column j" not in specs


def test_interference_widgets_keep_their_values_across_the_switch(home):
    _, run_id = home
    at = page("interference", {"run": run_id})
    steps = at.select_slider(key="interference_step").options
    at.select_slider(key="interference_step").set_value(int(steps[0])).run()
    at.selectbox(key="interference_groups").set_value(3).run()
    at.toggle(key="interference_log").set_value(True).run()
    switch_to_chinese(at)
    assert str(at.select_slider(key="interference_step").value) == str(steps[0])
    assert at.select_slider(key="interference_step").label == "评估步（evaluation step）"
    assert at.selectbox(key="interference_groups").value == 3
    assert at.toggle(key="interference_log").value is True
    assert at.toggle(key="interference_log").label == "梯度范数使用对数刻度"
    assert f"第 {steps[0]} 步的梯度余弦" in _chart_specs(at)


# ---- Runs --------------------------------------------------------------------------------------
def test_runs_page_in_chinese_exports_english_columns(home):
    _, run_id = home
    at = page("runs", {"lang": "zh"})
    assert not at.exception, at.exception
    assert at.title[0].value == "运行记录（Runs）"
    assert "勾选行即可比较它们" in texts(at.caption)
    prose = _page_text(at)
    for sentence in _english_sentences("runs."):
        assert sentence not in prose, sentence
    labels = {b.proto.label for b in at.get("download_button")}
    assert {"导出表格（CSV）", "导出所选（JSON）"} <= labels
    assert at.button(key="runs_open").label == "在训练（Train）页面打开"
    assert at.text_input(key="runs_f_text").label == "搜索（id、名称、任务）"
    # The table (which the CSV export writes) keeps its English columns and verdict values.
    frame = at.dataframe[0].value
    assert list(frame.columns[:5]) == ["id", "name", "status", "Δm %", "Δm verdict"]
    assert set(frame["Δm verdict"]) <= {*verdicts.TASK_VERDICTS, ""}


def test_runs_widgets_keep_their_values_across_the_switch(home):
    _, run_id = home
    at = page("runs", {})
    at.text_input(key="runs_f_text").input(run_id[:6]).run()
    at.multiselect(key="runs_selected").set_value([run_id]).run()
    at.radio(key="runs_curve").set_value("training loss").run()
    at.slider(key="runs_smoothing").set_value(0.3).run()
    assert "Curves" in texts(at.subheader)
    switch_to_chinese(at)
    assert at.text_input(key="runs_f_text").value == run_id[:6]
    assert at.multiselect(key="runs_selected").value == [run_id]
    assert at.radio(key="runs_curve").value == "training loss"  # the value stays the identifier
    assert at.radio(key="runs_curve").label == "曲线"
    assert "训练损失（training loss）" in at.radio(key="runs_curve").options
    assert at.slider(key="runs_smoothing").value == pytest.approx(0.3)
    assert {"曲线", "结果并排比较"} <= {s.value for s in at.subheader}
    assert "训练损失（training loss）" in _chart_specs(at)


# ---- the pieces without Streamlit --------------------------------------------------------------
def _engine_rows() -> list[dict]:
    """transfer_verdict's rows for each of its cases (values of a made-up task)."""
    up = {"higher_is_better": True}
    return [
        transfer_verdict([0.80], [0.84], **up),  # one seed, no noise estimate
        transfer_verdict([0.80], [0.84], examples=[{"low": 0.01, "high": 0.07}], **up),  # helped
        transfer_verdict([0.80], [0.78], examples=[{"low": -0.05, "high": -0.01}], **up),  # hurt
        transfer_verdict([0.80], [0.81], examples=[{"low": -0.02, "high": 0.04}], **up),  # no clear
        transfer_verdict([0.80, 0.81, 0.79], [0.85, 0.86, 0.845], **up),  # helped over seeds
        transfer_verdict([2.0, 2.1, 1.9], [2.4, 2.6, 2.5], higher_is_better=False),  # hurt over seeds
        transfer_verdict([0.80, 0.81, 0.79], [0.70, 0.90, 0.80], **up),  # no clear over seeds
        transfer_verdict([0.50, 0.51, 0.49], [0.56, 0.57, 0.555], trivial=0.60, **up),  # below trivial
    ]


def test_the_rebuilt_verdict_sentence_reads_as_the_engines_in_english_and_is_chinese_in_zh():
    rows = _engine_rows()
    assert {r["verdict"] for r in rows} == set(verdicts.TASK_VERDICTS)
    assert "trivial baseline" in rows[-1]["verdict_text"]
    for row in rows:
        row = {**row, "trivial": {"name": "majority class", "value": 0.60}}
        assert verdicts.rebuilt_sentence(row, "en") == row["verdict_text"]
        assert verdicts.task_sentence(row, "en") == row["verdict_text"]
        zh = verdicts.task_sentence(row, "zh")
        assert zh != row["verdict_text"] and i18n.text(f"verdict.{row['verdict']}", "zh") in zh
        assert "multi-task" not in zh and " vs " not in zh
    assert "平凡基线（trivial baseline，0.6" in verdicts.task_sentence({**rows[-1], "trivial": {"value": 0.6}}, "zh")
    # A row stored before issue 12 has no numbers to rebuild from: the engine's words stay.
    old = {"verdict": "positive transfer", "verdict_text": "positive transfer: MTL better"}
    assert verdicts.task_sentence(old, "zh") == "positive transfer: MTL better"


def test_every_computed_key_has_a_text_in_both_languages():
    keys = [*interference_keys(), *runs_keys(), *charts.results.HEADER_KEYS.values(),
            "results.hurt_warning_one", "results.hurt_warning_many",
            "interference.models_one", "interference.models_many",
            *(f"results.truncation_source.{n}" for n in ("option", "percentile", "longest")),
            *(f"results.split_rows.{s}" for s in ("train", "val", "test")),
            *(f"verdict.{v}" for v in (*verdicts.TASK_VERDICTS, *verdicts.PAIR_VERDICTS))]
    for lang in i18n.LANGUAGES:
        missing = [k for k in keys if k not in i18n.catalogue(lang)]
        assert not missing, (lang, missing)
    assert verdicts.word("helped", "en") == "helped" and verdicts.word("conflict", "zh") == "冲突（conflict）"
    assert verdicts.word(None, "zh") == ""


def _constants(path: Path, name: str) -> dict:
    """A page's module-level dict constant, read without running the page (it draws on import)."""
    import ast

    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return {ast.unparse(k): ast.literal_eval(v) for k, v in zip(node.value.keys, node.value.values)}
    raise AssertionError(f"{name} not in {path}")


def interference_keys() -> list[str]:
    return list(_constants(ROOT / "dashboard" / "app_pages" / "interference.py", "PAIR_WORDS").values())


def runs_keys() -> list[str]:
    page_file = ROOT / "dashboard" / "app_pages" / "runs.py"
    curves, columns = _constants(page_file, "CURVE_KEYS"), _constants(page_file, "COLUMN_KEYS")
    assert set(curves) == set(_constants(page_file, "CURVES"))  # every curve has a shown name
    return [*curves.values(), *columns.values()]


def test_the_comparison_table_shows_chinese_headers_and_words_coloured_by_the_english_verdict():
    rows = [{"name": "y1", "metric": "accuracy", "higher_is_better": True, "stl": 0.8, "mtl": 0.85,
             "delta_pct": 6.25, "verdict": "helped", "interval": {"low": 0.01, "high": 0.09, "level": 0.95}},
            {"name": "y2", "metric": "mse", "higher_is_better": False, "stl": 2.0, "mtl": 2.4,
             "delta_pct": -20.0, "verdict": "hurt", "interval": {"low": -0.6, "high": -0.2, "level": 0.95}}]
    frame = charts.comparison_frame(rows)
    assert list(frame.columns) == ["task", "metric", "single-task", "multi-task", "Δ %", "95 % interval",
                                   "transfer"]  # the data keeps its English names
    styler = charts.style_comparison(frame, lang="zh")
    html = styler.to_html()
    assert list(styler.data.columns) == ["任务", "指标", "单任务（single-task）", "多任务（multi-task）", "Δ %",
                                         "95 % 区间", "迁移（transfer）"]
    assert "有帮助（helped）" in html and "有损害（hurt）" in html
    assert verdicts.GOOD_BG in html and verdicts.BAD_BG in html  # the colours follow the verdicts
    default, english = charts.style_comparison(frame), charts.style_comparison(frame, lang="en")
    assert default.set_uuid("x").to_html() == english.set_uuid("x").to_html()  # English is the default
    assert "transfer" in charts.style_comparison(frame).data.columns


def test_chart_texts_follow_the_language():
    snapshots = [{"step": s, "tasks": ["y1", "y2"], "grad_cosine": [[1, -0.2], [-0.2, 1]], "grad_norm": [1.0, 2.0]}
                 for s in (10, 20)]
    zh = charts.cosine_history_chart(snapshots, lang="zh")
    assert zh.layout.title.text == "训练过程中的梯度余弦（gradient cosine）" and zh.layout.xaxis.title.text == "步（step）"
    assert charts.cosine_history_chart(snapshots).layout.title.text == "gradient cosine over training"
    assert charts.cosine_heatmap(["y1", "y2"], [[1, 0], [0, 1]], lang="zh").layout.title.text == \
        "任务之间的梯度余弦（gradient cosine）"
    fig = charts.affinity_heatmap(["y1", "y2"], [[1e-3, -2e-3], [5e-4, 1e-3]], lang="zh")
    assert fig.layout.title.text == "前瞻亲和度（look-ahead affinity） ×10³：行 i 帮助列 j"
    assert fig.data[0].hovertemplate.startswith("在 %{y} 上走一步使 %{x} 的损失变化 %{z:.3g}")
    assert charts.grad_norm_chart(snapshots, lang="zh").layout.yaxis.title.text == "梯度范数（gradient norm）"
    gates = charts.gates_bars({"y1": {"expert 1": 0.6, "expert 2": 0.4}}, lang="zh")
    assert gates.layout.xaxis.title.text.startswith("门控权重")
    bars = charts.comparison_bars([{"name": "y1", "metric": "accuracy", "stl": 0.8, "mtl": 0.85}], lang="zh")
    assert list(bars.data[0].x) == ["单任务（single-task）", "多任务（multi-task）"]
    projection = {"y1": {"x": [0.0, 1.0], "y": [1.0, 0.0], "label": [0, 1], "classes": ["a", "b"],
                         "explained": [0.6, 0.3]}}
    fig = charts.projection_chart(projection, ["y1"], {"y1": "#000000"}, step=40, lang="zh")
    assert fig.layout.title.text.endswith("（第 40 步）") and "PC1 60 %，PC2 30 % 的方差" in fig.layout.annotations[0].text


def test_the_delta_m_sentence_and_badge_in_chinese():
    result = {"delta_m": -4.0, "delta_m_verdict": "hurt",
              "delta_m_interval": {"low": -6.5, "high": -1.2, "level": 0.95}}
    kind, sentence = verdicts.delta_m_sentence(result, lang="zh")
    assert kind == "error"
    assert sentence == ("已完成。Δm = -4.00 %（95 % 区间 -6.50 到 -1.20 %）：有损害（hurt）：多任务模型平均差于其单任务基线"
                        "（single-task baselines）。")
    assert verdicts.delta_m_sentence(result)[1].startswith("Finished. Δm = -4.00 % (95 % interval -6.50 to -1.20 %): hurt")

    class Where:
        def badge(self, label, **kwargs):
            self.label, self.kwargs = label, kwargs

    where = Where()
    verdicts.delta_m_badge(where, result, lang="zh")
    assert where.label == "有损害（hurt）（95 % 区间 -6.50 到 -1.20 %）" and where.kwargs["color"] == "red"
    verdicts.delta_m_badge(where, result)
    assert where.label == "hurt (95 % interval -6.50 to -1.20 %)"
    assert verdicts.interval_text({"low": 0.1, "high": 0.3}, lang="zh") == "95 % 区间 +0.1 到 +0.3"
    assert verdicts.WORDS_CAPTION == verdicts.words_caption("en")
    assert "**有帮助（helped）**" in verdicts.words_caption("zh")


def _engine_methods() -> list[str]:
    """Every interval method the engine names, produced by the engine itself."""
    import numpy as np

    from mtl_core import significance
    from mtl_core.tasks.base import TaskSpec

    rng = np.random.default_rng(0)
    cls = TaskSpec("c", "classification", num_classes=2, metric="accuracy")
    reg = TaskSpec("r", "regression")
    y = rng.integers(0, 2, 60)
    a, b = rng.normal(size=(60, 2)), rng.normal(size=(60, 2))
    yr, pa, pb = rng.normal(size=60), rng.normal(size=60), rng.normal(size=60)
    one = significance.paired_interval(cls, y, a, b, n_boot=200)
    return [
        one["method"],
        significance.paired_interval(reg, yr, pa, pb, n_boot=200)["method"],
        significance.paired_interval(reg, np.full(4, np.nan), pa[:4], pb[:4], n_boot=200)["method"],
        significance.delta_m_interval({"c": cls, "r": reg}, {"c": y, "r": yr}, {"c": a, "r": pa}, {"c": b, "r": pb},
                                      n_boot=200)["method"],
        significance.combine([one], [0.01])["method"],
        significance.combine(None, [0.01])["method"],
        significance.combine([one, one, one], [0.01, 0.02, 0.0])["method"],
        significance.combine(None, [0.01, 0.02, 0.0])["method"],
        significance.pair_sign([0.1, 0.2, 0.15, 0.12, 0.3])["method"],
    ]


def test_the_engines_interval_methods_read_in_chinese_with_their_numbers():
    methods = _engine_methods()
    matched = set()
    for method in methods:
        assert verdicts.method_in(method, "en") == method
        zh = verdicts.method_in(method, "zh")
        assert zh != method, f"no Chinese text for the engine's method {method!r}"
        for name, pattern in verdicts.METHOD_PATTERNS.items():
            found = re.fullmatch(pattern, method)
            if found:
                matched.add(name)
                fields = {f"v{i}": v for i, v in enumerate(found.groups())}
                # The English catalogue text is the engine's template: it rebuilds the same words.
                assert i18n.text(f"common.method.{name}", "en", **fields) == method
                assert all(v in zh for v in found.groups())  # the numbers survive
                break
        assert "bootstrap over" not in zh and "interval over" not in zh
    assert matched == set(verdicts.METHOD_PATTERNS)  # every pattern is one the engine writes
    # An unknown method (a future engine's) stays as the engine wrote it.
    assert verdicts.method_in("a new method", "zh") == "a new method"
    both = verdicts.method_text([{"method": methods[0]}, {"method": methods[4]}, {"method": methods[0]}], "zh")
    assert both == verdicts.method_in(methods[0], "zh") + "，" + verdicts.method_in(methods[4], "zh")


def test_the_engines_baseline_names_and_metric_reason_read_in_chinese():
    import torch

    from mtl_core.metrics import TRIVIAL_NAME
    from mtl_core.tasks.base import TaskSpec

    for kind, name in TRIVIAL_NAME.items():
        assert verdicts.trivial_name(name, "en") == name == i18n.text(f"common.trivial.{kind}", "en")
        zh = verdicts.trivial_name(name, "zh")
        assert zh != name and zh == i18n.text(f"common.trivial.{kind}", "zh")
    assert verdicts.trivial_name("a future baseline", "zh") == "a future baseline"
    # The reason the engine gives for macro-F1, produced by the engine itself.
    spec = TaskSpec("y", "classification", num_classes=2).for_train_labels(torch.tensor([0] * 90 + [1] * 10))
    assert spec.metric == "macro_f1" and spec.metric_reason == "macro-F1 (majority class 90 %)"
    assert verdicts.metric_reason_text(spec.metric_reason, "en") == spec.metric_reason
    assert verdicts.metric_reason_text(spec.metric_reason, "zh") == "宏 F1（macro-F1；多数类占 90 %）"
