"""The Transfer and Sweep pages in 中文 (issue 15 item 5): their texts, their charts' words
and their form's messages follow `?lang=`; user data (task, run, metric names) stays as it
is and stays escaped; switching language keeps what the user set, and on Sweep it leaves
the setup in the URL untouched.

The pages run through AppTest in this process; the one transfer run the result view needs
is trained in-process (20 + 4 × 10 steps on 300 rows, a few seconds)."""

from __future__ import annotations

import json
import math
import string
import sys
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard import charts, i18n, state  # noqa: E402
from dashboard.charts.data_efficiency import arm_label  # noqa: E402
from dashboard.safe_text import plot  # noqa: E402
from dashboard.transfer_chart import merged_text, reading_text  # noqa: E402
from mtl_core.phases import ARM_LABELS, ARMS  # noqa: E402
from mtl_core.store import RunStore  # noqa: E402
from mtl_core.transfer import ARM_DESCRIPTIONS  # noqa: E402

APP = str(ROOT / "dashboard" / "app.py")
HOSTILE = "<b>*y*</b>"
EN, ZH = i18n.catalogue("en"), i18n.catalogue("zh")
TRANSFER_CONFIG = {  # as tests/test_dashboard_security.py's: two arms, two data sizes
    "base": {"dataset": {"name": "mmoe_synthetic", "options": {"n_tasks": 3, "n_samples": 300, "input_dim": 8}},
             "steps": 20, "batch_size": 32, "eval_every": 10, "log_every": 5},
    "sources": ["y1", "y2"], "target": "y3", "arms": ["frozen", "scratch"], "fractions": [0.5, 1.0],
    "target_steps": 10,
}


# ---- helpers ----------------------------------------------------------------------------------------
def _value(v):
    return v[-1] if isinstance(v, list) else v


def query_of(at: AppTest) -> dict[str, str]:
    return {k: str(_value(v)) for k, v in at.query_params.items()}


def shown(at: AppTest) -> str:
    """Every text the page shows: bodies, headings, alerts, widget labels, help, options,
    expanders, links, table headers and cells, and the plotly figures' JSON."""
    out: list[str] = []
    for kind in ("title", "header", "subheader", "caption", "markdown", "info", "warning", "error", "success"):
        out += [str(e.value) for e in getattr(at, kind)]
    for kind in ("button", "checkbox", "number_input", "selectbox", "multiselect", "radio", "slider", "text_input"):
        for w in getattr(at, kind):
            out += [str(w.label), str(getattr(w, "help", "") or "")]
            out += [str(o) for o in getattr(w, "options", []) or []]
    out += [e.proto.label for e in at.get("expander")] + [e.proto.label for e in at.get("page_link")]
    out += [e.proto.label for e in at.get("download_button")]
    for table in at.table:
        frame = table.value
        out += [str(c) for c in frame.columns] + [str(v) for v in frame.to_numpy().ravel()]
    out += [json.dumps(json.loads(c.proto.spec), ensure_ascii=False) for c in at.get("plotly_chart")]
    out += [str(p.proto.text) for p in at.get("progress")]
    return "\n".join(out)


def english_sentences(prefix: str) -> list[str]:
    """The literal runs of four or more words in the English texts of one page's keys: none
    may show on the page in 中文 (shorter words, e.g. "learning rate", stand beside the
    Chinese on purpose)."""
    runs = []
    for key, value in EN.items():
        if key.startswith(prefix):
            runs += [lit.strip() for lit, *_ in string.Formatter().parse(value) if len(lit.split()) >= 4]
    return runs


def assert_no_english(at: AppTest, prefix: str) -> None:
    page = shown(at)
    left = [s for s in english_sentences(prefix) if s in page]
    assert not left, left


def open_page(page: str, query: dict[str, str]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at.switch_page(f"app_pages/{page}.py")
    return at.run()


def switch_language(at: AppTest, lang: str) -> AppTest:
    """The sidebar's English / 中文 switch, as a person clicks it."""
    return at.sidebar.get("button_group")[0].set_value(lang).run()


# ---- the catalogues ---------------------------------------------------------------------------------
def test_computed_keys_have_a_text_in_both_languages_and_the_english_matches_the_engine():
    for arm in ARMS:  # arm names and descriptions: mtl_core's English, word for word
        assert EN[f"transfer.arm.{arm}"] == ARM_LABELS[arm] and arm_label(arm) == ARM_LABELS[arm]
        assert EN[f"transfer.arm_help.{arm}"] == ARM_DESCRIPTIONS[arm]
        assert ZH[f"transfer.arm.{arm}"] != ARM_LABELS[arm] and arm_label(arm, "zh") == ZH[f"transfer.arm.{arm}"]
    assert arm_label("mystery", "zh") == "mystery"  # an arm the catalogue does not know shows as stored
    for mode in ("grid", "mirror", "none"):
        assert f"sweep.mode.{mode}" in EN and ZH[f"sweep.mode.{mode}"] != EN[f"sweep.mode.{mode}"]
    for way in ("right", "left", "up", "down"):
        assert "better" in EN[f"sweep.chart.better_{way}"] and "越" in ZH[f"sweep.chart.better_{way}"]
    for word in ("helped", "hurt", "no clear difference"):  # the verdict column of the vs-scratch table
        assert f"verdict.{word}" in ZH
    ours = [k for k in EN if k.startswith(("transfer.", "sweep."))]
    assert len(ours) > 120 and set(ours) <= set(ZH)


def test_the_reading_sentence_and_the_fraction_messages_follow_the_language():
    assert reading_text("mse", False, "zh").startswith("测试 mse 越低越好")
    assert "之上" in reading_text("accuracy", True, "zh") and "越高越好" in reading_text("accuracy", True, "zh")
    assert reading_text("score", None, "zh").startswith("把每条预训练曲线")
    assert reading_text("mse", False) == reading_text("mse", False, "en")  # English stays the default
    fractions, message = state.parse_fractions(["5 %", "lots"], "zh")
    assert fractions == [] and message == ("fractions：'lots' 不是百分比；请输入一个数，例如 30"
                                           "（表示目标任务有标注样本的 30 %）")
    assert state.parse_fractions(["150"], "zh")[1].startswith("fractions：'150' 不在 0 … 100 % 之内")
    assert state.parse_fractions(["150"])[1].startswith("fractions: '150' is outside 0 … 100 %")


@pytest.mark.parametrize("fractions, n_pool, batch", [
    ([0.01, 0.05, 0.2, 1.0], 100, 16),  # 1 % and 5 % clamp to one batch
    ([0.01, 0.05, 0.2, 1.0], 100, 32),  # three of them do
    ([0.5, 0.9, 1.0], 12_000, 8),       # none merges
    ([0.9999, 1.0], 4_000, 8),          # two give all the rows
    ([0.10001, 0.10002], 1_000, 8),     # the same count after rounding
])
def test_the_merged_fractions_note_is_the_engines_in_english_and_keeps_its_numbers_in_chinese(fractions, n_pool, batch):
    from mtl_core.transfer import describe_merged, fraction_plan

    plan = fraction_plan(fractions, n_pool, min_rows=batch)
    result = {"merged_fractions": [p for p in plan if len(p["fractions"]) > 1], "n_target_train": n_pool,
              "config": {"target_batch_size": None, "base": {"batch_size": batch}},
              "merged_text": describe_merged(plan, min_rows=batch, n_pool=n_pool)}
    assert merged_text(result, "en") == result["merged_text"]  # word for word the engine's sentence
    zh = merged_text(result, "zh")
    assert bool(zh) == bool(result["merged_text"]) == (fractions != [0.5, 0.9, 1.0])
    for entry in result["merged_fractions"]:
        assert f"{entry['n_labelled']:,} 个标注样本" in zh and f"显示为 {entry['fraction'] * 100:g} %" in zh
        assert all(f"{f * 100:g} %" in zh for f in entry["fractions"])
    assert not any(w in zh for w in ("give", "labelled", "trained", "batch", "rows", "rounding"))
    # an old result without the numbers keeps the engine's English sentence
    assert merged_text({"merged_text": "1 % and 5 % both give 16 …"}, "zh") == "1 % and 5 % both give 16 …"


# ---- the charts ---------------------------------------------------------------------------------------
def _sweep_table(a: str = "y1", b: str = "y2") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three manual weightings and one adaptive strategy; a is an MSE, b an accuracy."""
    rows = [("r0", 2.0, 0.0, 0.1, 0.6, 0.30, 0.55), ("r1", 1.0, 1.0, 0.2, 0.8, 0.25, 0.75),
            ("r2", 0.0, 2.0, 0.5, 0.9, 0.20, 0.85), ("r3", math.nan, math.nan, 0.35, 0.75, 0.27, 0.72)]
    points = pd.DataFrame([{
        "run_id": r, "index": i, "status": "finished", "label": f"manual {i}",
        "strategy": "manual" if not math.isnan(wa) else "uncertainty", f"w:{a}": wa, f"w:{b}": wb,
        f"val:{a}": va, f"val:{b}": vb, f"test:{a}": ta, f"test:{b}": tb, "delta_m": 1.0 + i,
        "is_front": r != "r3",
    } for i, (r, wa, wb, va, vb, ta, tb) in enumerate(rows)])
    tasks = pd.DataFrame([
        {"task": a, "metric": "mse", "higher_is_better": False, "baseline_val": 0.22, "baseline_test": 0.26},
        {"task": b, "metric": "accuracy", "higher_is_better": True, "baseline_val": 0.7, "baseline_test": 0.68},
    ])
    return points, tasks


def test_the_pareto_plot_speaks_chinese_and_keeps_task_names_escaped():
    points, tasks = _sweep_table(a=HOSTILE)
    fig = charts.pareto_chart(points, tasks, lang="zh")
    names = [t.name for t in fig.data]
    assert names[:2] == ["各组权重（manual）", "Pareto 前沿（按验证集）"]
    assert "uncertainty" in names  # a strategy's name is data: as it is
    assert f"单任务 {plot(HOSTILE)}" in names and "单任务 y2" in names
    assert fig.layout.xaxis.title.text == f"{plot(HOSTILE)} · 测试 mse（← 越往左越好）"
    assert fig.layout.yaxis.title.text == "y2 · 测试 accuracy（↑ 越高越好）"
    assert fig.layout.annotations[0].text == "更好"
    hover = fig.data[0].hovertext[0]
    assert f"{plot(HOSTILE)}：测试 0.3 · 验证 0.1" in hover and "运行 r0" in hover and HOSTILE not in hover
    assert "权重由 uncertainty 设定" in fig.data[2].hovertext[0]
    english = charts.pareto_chart(points, tasks)  # the default stays English, word for word
    assert [t.name for t in english.data][:2] == ["weightings (manual)", "Pareto front (by validation)"]
    assert english.layout.xaxis.title.text == f"{plot(HOSTILE)} · test mse (← better)"


def test_the_ternary_and_the_data_efficiency_chart_speak_chinese():
    points, tasks = _sweep_table()
    third = points.assign(**{"w:y3": [0.0, 1.0, 1.0, math.nan], "val:y3": 0.5, "test:y3": 0.5})
    tasks3 = pd.concat([tasks, tasks.iloc[[0]].assign(task="y3")], ignore_index=True)
    ternary = charts.ternary_chart(third, tasks3, lang="zh")
    assert ternary.data[0].name == "各组权重" and ternary.data[0].marker.colorbar.title.text == "Δm %（↑ 越高越好）"
    rows = [{"arm": arm, "n_labelled": n, "fraction": n / 100, "metric_value": 0.5 + n / 1000}
            for arm in ("frozen", "finetune", "scratch") for n in (10, 100)]
    fig = charts.data_efficiency_chart(rows, metric=HOSTILE, higher_is_better=False, lang="zh")
    assert [t.name for t in fig.data] == ["冻结编码器（frozen）", "微调编码器（fine-tuned）", "从头训练（from scratch）"]
    assert fig.layout.xaxis.title.text == "目标任务标注样本数（对数刻度）"
    assert fig.layout.yaxis.title.text == f"测试 {plot(HOSTILE)} ↓"
    assert fig.layout.title.text == "目标任务上的数据效率（data efficiency）"
    assert "个标注样本" in fig.data[0].hovertemplate and "%{x:,}" in fig.data[0].hovertemplate
    english = charts.data_efficiency_chart(rows, metric="mse", higher_is_better=False)
    assert english.layout.xaxis.title.text == "labelled target examples (log scale)"
    assert english.data[0].hovertemplate == "%{x:,} labelled examples: %{y:.4g}<extra>%{fullData.name}</extra>"


# ---- the Transfer page --------------------------------------------------------------------------------
def test_transfer_page_in_chinese_with_no_english_sentence_left(lab, monkeypatch):
    from mtl_core.models import pretrained

    monkeypatch.setattr(pretrained, "minilm_available", lambda: False)
    at = open_page("transfer", {"lang": "zh"})
    assert not at.exception, at.exception
    assert at.title[0].value == "迁移 Transfer"
    assert "共享编码器（shared encoder）" in at.caption[0].value and "Caruana, 1997" in at.caption[0].value
    assert at.button(key="transfer_run").label == "运行"
    assert [s.value for s in at.subheader][:3] == ["1 · 数据与任务", "2 · 分支（arms）与数据量", "3 · 训练预算"]
    assert at.checkbox(key="tr.minilm").label == "预训练的 MiniLM 编码器"
    assert "预训练的 MiniLM 编码器需要 text 扩展" in "\n".join(c.value for c in at.caption)
    assert "还没有迁移运行。在上方设置好后按**运行**。" in [i.value for i in at.info]
    assert at.selectbox(key="tr.dataset").value == "toy_language"  # the value is the identifier
    assert "toy_language（文本）" in at.selectbox(key="tr.dataset").options
    assert at.checkbox(key="tr.arm.scratch").label == "从头训练（from scratch）"
    assert "共 13 个模型：先预训练，再 3 个分支 × 4 个数据量。" in [c.value for c in at.caption]
    # the dataset's description and its options' labels and helps: the Train page's Chinese texts
    from mtl_core.tasks import DATASETS

    captions = [c.value for c in at.caption]
    assert ZH["train.entry.dataset.toy_language"] in captions
    assert DATASETS.get("toy_language").description not in captions
    slider = next(s for s in at.slider if s.key == "tr.ds.toy_language.relatedness")
    assert slider.label == ZH["train.option.relatedness"] and slider.label != "relatedness"
    assert slider.help == ZH.get("train.help.dataset.toy_language.relatedness", ZH.get("train.help.dataset.relatedness"))
    assert_no_english(at, "transfer.")
    at.multiselect(key="tr.fractions").set_value(["5 %", "lots"]).run()
    assert "fractions：'lots' 不是百分比" in "\n".join(e.value for e in at.error)


def test_transfer_form_values_survive_the_language_switch(lab, monkeypatch):
    from mtl_core.models import pretrained

    monkeypatch.setattr(pretrained, "minilm_available", lambda: False)
    at = open_page("transfer", {})
    assert at.title[0].value == "Transfer"
    at.selectbox(key="tr.dataset").set_value("mmoe_synthetic").run()
    at.number_input(key="tr.pre_steps").set_value(123).run()
    at.multiselect(key="tr.fractions").set_value(["5 %", "30"]).run()
    at.checkbox(key="tr.arm.frozen").uncheck().run()
    switch_language(at, "zh")
    assert not at.exception, at.exception
    assert at.query_params["lang"] in ("zh", ["zh"]) and at.title[0].value == "迁移 Transfer"
    steps = at.number_input(key="tr.pre_steps")
    assert steps.value == 123 and steps.label == "预训练步数"
    assert at.selectbox(key="tr.dataset").value == "mmoe_synthetic"
    assert at.multiselect(key="tr.fractions").value == ["5 %", "30"]
    frozen = at.checkbox(key="tr.arm.frozen")
    assert frozen.value is False and frozen.label == "冻结编码器（frozen）"
    assert "共 5 个模型：先预训练，再 2 个分支 × 2 个数据量。" in [c.value for c in at.caption]
    switch_language(at, "en")
    assert at.number_input(key="tr.pre_steps").label == "pre-training steps"
    assert at.number_input(key="tr.pre_steps").value == 123


def test_a_stored_transfer_run_is_shown_in_chinese(lab):
    from mtl_core import worker
    from mtl_core.transfer import TransferConfig

    with RunStore(lab / "mtl_lab.db") as store:
        config = TransferConfig.parse(TRANSFER_CONFIG)
        run_id = store.create_run(config.to_dict(), name="tiny transfer")
        worker.execute(store, run_id)
        assert store.get_run(run_id)["status"] == "finished"
    at = open_page("transfer", {"transfer": run_id, "lang": "zh"})
    assert not at.exception, at.exception
    assert at.selectbox(key="transfer_pick").label == "运行"
    result_table, versus = at.table[0].value, at.table[1].value
    assert list(result_table.columns) == ["标注比例 %", "标注样本数", "冻结编码器（frozen）", "从头训练（from scratch）"]
    assert list(versus.columns)[:2] == ["标注样本数", "分支（arm）"] and "结论（verdict）" in versus.columns
    assert set(versus["分支（arm）"]) == {"冻结编码器（frozen）"}
    assert set(versus["结论（verdict）"]) <= {ZH["verdict.helped"], ZH["verdict.hurt"], ZH["verdict.no clear difference"]}
    captions = "\n".join(c.value for c in at.caption)
    assert "目标任务 **y3** 的测试" in captions and "每个模型在" in captions and "配对自助法 paired bootstrap" in captions
    assert "预训练（" in captions and "源任务上的测试得分" in captions
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["xaxis"]["title"]["text"] == "目标任务标注样本数（对数刻度）"
    assert [t["name"] for t in spec["data"]] == ["冻结编码器（frozen）", "从头训练（from scratch）"]
    assert spec["layout"]["title"]["text"].startswith("y3 的测试")
    assert_no_english(at, "transfer.")


# ---- the Sweep page ------------------------------------------------------------------------------------
def test_sweep_page_in_chinese_with_no_english_sentence_left(lab):
    at = open_page("sweep", {"lang": "zh"})
    assert not at.exception, at.exception
    assert at.title[0].value == "扫描 Sweep"
    assert "权衡（trade-off）" in at.caption[0].value
    assert at.button(key="sweep_launch").label == "启动扫描"
    weights = at.radio(key="sw.weights")
    assert weights.value == "grid" and weights.label == "损失权重（loss weights）"
    assert weights.options == [ZH["sweep.mode.grid"], ZH["sweep.mode.mirror"], ZH["sweep.mode.none"]]
    assert "自动 auto（batched）" in at.radio(key="sw.executor").options
    markdown = "\n".join(m.value for m in at.markdown)
    assert "**9 次运行** · 用 batched 约需 15 s" in markdown and " · 任务 y1, y2 · " in markdown
    assert_no_english(at, "sweep.")
    at.text_input(key="sw.seeds").set_value("0, one").run()
    assert "seeds：0, one 不是整数列表" in "\n".join(e.value for e in at.error)


def test_switching_language_keeps_the_sweep_setup_and_its_url(lab):
    at = open_page("sweep", {})
    at.slider(key="sw.resolution").set_value(5).run()
    at.text_input(key="sw.seeds").set_value("0, 1").run()
    at.multiselect(key="sw.strategies").set_value(["manual", "uncertainty"]).run()
    before = query_of(at)
    assert before["ax.resolution"] == "5" and "lang" not in before
    assert "**14 runs**" in "\n".join(m.value for m in at.markdown)  # (6 weightings + uncertainty) × 2 seeds
    switch_language(at, "zh")
    assert not at.exception, at.exception
    after = query_of(at)
    assert after.pop("lang") == "zh" and after == before  # the setup in the URL did not move
    resolution = at.slider(key="sw.resolution")
    assert resolution.value == 5 and resolution.label == "网格分辨率"
    assert at.text_input(key="sw.seeds").value == "0, 1"
    assert at.multiselect(key="sw.strategies").value == ["manual", "uncertainty"]
    assert "**14 次运行**" in "\n".join(m.value for m in at.markdown)
    reloaded = open_page("sweep", query_of(at))  # the link reproduces the sweep, in 中文
    assert reloaded.title[0].value == "扫描 Sweep" and reloaded.slider(key="sw.resolution").value == 5
    assert query_of(reloaded) == query_of(at)


def test_a_loaded_sweep_file_keeps_the_language_and_says_what_it_left_out_in_chinese(lab):
    sweep_yaml = (
        "name: tiny\n"
        "base: {dataset: {name: mmoe_synthetic, options: {n_samples: 300, input_dim: 8}}, steps: 20}\n"
        "axes: {weights: {simplex: 2}, params: {optimizer.lr: [0.001, 0.003]}}\n"
        "executor: local\n"
    )
    at = open_page("sweep", {"lang": "zh"})
    at.file_uploader(key="sweep_yaml_upload").upload("tiny.yaml", sweep_yaml.encode(), "application/x-yaml").run()
    assert not at.exception, at.exception
    query = query_of(at)
    assert query["lang"] == "zh" and query["ax.resolution"] == "2" and query["executor"] == "local"
    warning = "\n".join(w.value for w in at.warning)
    assert warning.startswith("已载入 tiny.yaml。") and "本页面不显示以下内容，因此略去：axes.params（optimizer.lr）" in warning
    assert at.title[0].value == "扫描 Sweep" and at.slider(key="sw.resolution").value == 2
