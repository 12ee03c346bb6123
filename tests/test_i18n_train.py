"""The Train page, its charts and the sidebar in 中文 (issue 15 item 5): with `?lang=zh` the page's
own texts, the form's labels and help (generated from the registries' pydantic options) and the
charts are Chinese; English stays word for word as it was; a value set in the form survives a
switch of language. Each AppTest has its own MTL_LAB_HOME (the `lab` fixture).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard import charts, i18n, state  # noqa: E402
from dashboard.state.fields import entry_description, field_help, field_label, option_fields  # noqa: E402
from mtl_core.models import SHARING  # noqa: E402
from mtl_core.tasks import DATASETS, load_dataset  # noqa: E402
from mtl_core.weighting import WEIGHTING  # noqa: E402

APP = str(ROOT / "dashboard" / "app.py")
HAN = re.compile(r"[\u4e00-\u9fff]")
REGISTRIES = (("dataset", DATASETS), ("sharing", SHARING), ("weighting", WEIGHTING))
EN_TRAIN = yaml.safe_load((ROOT / "dashboard" / "locales" / "en" / "train.yaml").read_text(encoding="utf-8"))


def train_page(query: dict[str, str]) -> AppTest:
    """The Train page opened by a link carrying `query` (a bare visit lands on Learn)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at = at.switch_page("app_pages/train.py").run()
    assert not at.exception, at.exception
    return at


def shown_text(at: AppTest) -> str:
    """Every text the page shows: elements, widget labels and help, option names, charts."""
    parts = [str(e.value) for kind in ("title", "subheader", "caption", "markdown", "info", "warning", "error",
                                       "success") for e in getattr(at, kind)]
    for kind in ("number_input", "slider", "selectbox", "radio", "checkbox", "button", "toggle", "text_input",
                 "multiselect"):
        for w in getattr(at, kind):
            parts += [str(w.label), str(w.help or "")]
    parts += [json.dumps(json.loads(c.proto.spec), ensure_ascii=False) for c in at.get("plotly_chart")]
    return "\n".join(parts)


def english_sentences() -> list[str]:
    """The page's own English texts long enough to be unmistakable (at least four words, no fields)."""
    return [v for k, v in EN_TRAIN.items()
            if not k.startswith(("train.option.", "train.help.", "train.entry.")) and "{" not in v
            and len(v.split()) >= 4]


# ---- the page ----------------------------------------------------------------------------------
def test_the_train_page_speaks_chinese_and_keeps_no_english_sentence_of_its_own(lab):
    at = train_page({"lang": "zh"})
    assert at.title[0].value == "训练（Train）"
    assert [h.value for h in at.subheader] == ["1 · 数据与任务", "2 · 共享", "3 · 损失加权", "4 · 训练"]
    assert at.button(key="train").label == "训练"
    assert "请在上方设置实验" in at.info[0].value
    captions = "\n".join(c.value for c in at.caption)
    assert "硬参数共享（hard parameter sharing）" in captions  # the sharing mode's description
    assert "个单任务模型（single-task model）参数总和的 **" in captions  # the parameter sentence
    assert at.number_input(key=state.K_STEPS).label == "步数（steps）"
    corr = at.slider(key=state.k_ds_opt("mmoe_synthetic", "correlation"))
    assert corr.label == "相关性（correlation）" and corr.help.startswith("p = cos(w_1, w_t)：任务相关性")
    assert "正在进行的运行（active runs）" in "\n".join(m.value for m in at.sidebar.markdown)
    assert "当前没有正在训练的运行。" in [c.value for c in at.sidebar.caption]
    page = shown_text(at)
    assert "训练目标：y1 对 y2" in page  # the data preview's title (a chart of the page)
    assert "输入 x" in page and "输出头 y1" in page  # the sharing diagram
    left = [s for s in english_sentences() if s in page]
    assert not left, left
    for spec in option_fields(DATASETS.get("mmoe_synthetic").options):  # the form's help, translated
        assert not spec.description or spec.description not in page, spec.name


def test_english_is_word_for_word_what_it_was(lab):
    at = train_page({})
    assert at.title[0].value == "Train"
    assert at.info[0].value == ("Set up an experiment above and press **Train**. The curves appear here while "
                                "it learns.")
    assert at.slider(key=state.k_ds_opt("mmoe_synthetic", "correlation")).label == "correlation"
    assert at.number_input(key=state.K_STEPS).help == (
        "Optimiser steps for the multi-task model and for each single-task baseline (at most 100,000 here; "
        "more through the CLI/config file).")
    assert re.search(r"Parameters: hard sharing uses \*\*\d+ %\*\* of the parameters of 2 single-task models "
                     r"\([\d,]+ multi-task, [\d,]+ of them shared, vs [\d,]+\)\.", "\n".join(c.value for c in at.caption))


def test_a_value_set_in_english_survives_the_switch_to_chinese(lab):
    at = train_page({})
    at.number_input(key=state.K_STEPS).set_value(321).run()
    at.slider(key=state.k_ds_opt("mmoe_synthetic", "correlation")).set_value(-0.4).run()
    at.selectbox(key=state.K_SHARING).set_value("mmoe").run()
    at.sidebar.get("button_group")[0].set_value("zh").run()
    assert not at.exception, at.exception
    assert at.query_params["lang"] == "zh"
    steps = at.number_input(key=state.K_STEPS)
    assert (steps.value, steps.label) == (321, "步数（steps）")
    corr = at.slider(key=state.k_ds_opt("mmoe_synthetic", "correlation"))
    assert (corr.value, corr.label) == (pytest.approx(-0.4), "相关性（correlation）")
    assert at.selectbox(key=state.K_SHARING).value == "mmoe"  # an identifier: shown as it is
    assert at.number_input(key=state.k_sh_opt("mmoe", "n_experts")).label == "专家数（n_experts）"
    assert at.query_params["steps"] == "321" and at.query_params["sharing.name"] == "mmoe"


def test_a_watched_run_and_its_curves_speak_chinese(lab, store_finished_run):
    run_id = store_finished_run(lab, {
        "dataset": {"name": "mmoe_synthetic", "options": {"n_samples": 300, "input_dim": 8}},
        "steps": 20, "batch_size": 32, "eval_every": 10, "log_every": 5})
    at = train_page({"run": run_id, "lang": "zh"})
    assert f"运行 {run_id}" in [h.value for h in at.subheader]
    assert at.slider(key="live_smoothing").label == "平滑（训练曲线的指数移动平均 EMA）"
    assert at.toggle(key="live_baselines").label == "单任务基线（single-task baselines）"
    page = shown_text(at)
    for words in ("训练损失（training loss）", "验证损失（validation loss）", "y1 · 训练", "y1 · 单任务验证"):
        assert words in page, words
    assert "training loss" not in page.replace("（training loss）", "")


# ---- the form's fields: every one the form shows has a Chinese text; English is the registry's ----
def _shown_fields():
    for section, registry in REGISTRIES:
        for entry in registry.names():
            for spec in option_fields(registry.get(entry).options):
                if spec.kind != "complex":
                    yield section, entry, spec


def test_every_field_the_form_shows_has_a_chinese_label_and_help():
    fields = list(_shown_fields())
    assert len(fields) > 60  # the scan finds the registries' options
    for section, entry, spec in fields:
        label, help_ = field_label(spec.name, "zh"), field_help(section, entry, spec, "zh")
        assert HAN.search(label) and spec.name in label, (section, entry, spec.name, label)
        assert not spec.description or (HAN.search(help_) and help_ != spec.description), (section, entry, spec.name)
    for section, registry in REGISTRIES:
        for entry in registry.names():
            assert HAN.search(entry_description(section, entry, registry.get(entry).description, "zh")), entry


def test_the_english_field_texts_are_the_registries_own():
    """en/train.yaml copies the pydantic descriptions; a description changed in mtl_core must be
    changed there too (and its Chinese text reviewed)."""
    for section, entry, spec in _shown_fields():
        assert field_label(spec.name, "en") == spec.name.replace("_", " ")
        assert field_help(section, entry, spec, "en") == spec.description, (section, entry, spec.name)
    for section, registry in REGISTRIES:
        for entry in registry.names():
            assert entry_description(section, entry, registry.get(entry).description, "en") == \
                registry.get(entry).description
    # No text is kept for a field or an entry that no longer exists.
    fields = list(_shown_fields())
    live = ({f"train.option.{s.name}" for _, _, s in fields}
            | {f"train.help.{sec}.{s.name}" for sec, _, s in fields}
            | {f"train.help.{sec}.{e}.{s.name}" for sec, e, s in fields}
            | {f"train.entry.{sec}.{e}" for sec, reg in REGISTRIES for e in reg.names()})
    stale = {k for k in EN_TRAIN if k.startswith(("train.option.", "train.help.", "train.entry."))} - live
    assert not stale, stale


def test_a_field_without_a_chinese_text_falls_back_to_its_english_description():
    spec = option_fields(DATASETS.get("mmoe_synthetic").options)[0]
    assert field_help("dataset", "no_such_entry", spec.__class__("new_knob", "int", 1, "a new knob"), "zh") == "a new knob"
    assert field_label("new_knob", "zh") == "new knob"
    assert entry_description("sharing", "no_such_mode", "A new mode.", "zh") == "A new mode."


def test_the_keys_the_page_keeps_for_later_have_both_texts():
    """Keys not passed to `t()` literally (the YAML upload's messages are kept in the session
    and said when the page is drawn) exist in both languages with the same fields."""
    for key in ("train.loaded", "train.not_utf8", "train.not_yaml", "train.cannot_load"):
        for lang in i18n.LANGUAGES:
            assert key in i18n.catalogue(lang), (key, lang)
    assert i18n.text("train.not_yaml", "zh", name="a.yaml", detail="x") == "a.yaml 不是有效的 YAML：x"


# ---- the charts follow the language -----------------------------------------------------------
def _metrics() -> pd.DataFrame:
    rows = []
    for step in (10, 20):
        for task in ("a", "b"):
            rows += [("mtl", step, task, "train", "loss", 1.0 / step), ("mtl", step, task, "val", "loss", 2.0 / step),
                     ("mtl", step, task, "train", "weight", 1.0), (f"stl:{task}", step, task, "val", "loss", 1.5 / step)]
        rows.append(("mtl", step, "total", "train", "loss", 2.0 / step))
    return pd.DataFrame(rows, columns=["phase", "step", "task", "split", "metric", "value"])


def test_the_loss_and_weight_charts_follow_the_language():
    en = charts.loss_curves(_metrics(), ["a", "b"])
    zh = charts.loss_curves(_metrics(), ["a", "b"], lang="zh")
    assert [a.text for a in en.layout.annotations] == ["training loss", "validation loss"]
    assert [a.text for a in zh.layout.annotations] == ["训练损失（training loss）", "验证损失（validation loss）"]
    assert zh.layout.xaxis.title.text == "步（step）" and en.layout.xaxis.title.text == "step"
    assert {t.name for t in zh.data} == {"a · 训练", "a · 验证", "a · 单任务验证", "b · 训练", "b · 验证", "b · 单任务验证",
                                          "加权总损失"}
    assert charts.loss_curves(_metrics(), ["a", "b"], reuse=en, lang="zh") is not en  # a switch draws anew
    weights = charts.weights_chart(_metrics(), ["a", "b"], lang="zh")
    assert weights.layout.yaxis.title.text == "权重占比 w_t / Σ w"
    assert charts.overlay_chart({"r1": _metrics()[["step", "value"]]}, title="a", lang="zh").layout.xaxis.title.text == "步（step）"


def _labels(fig) -> list[str]:
    return [a.text for a in fig.layout.annotations if a.text]


def test_the_sharing_diagram_follows_the_language_and_is_cached_per_language():
    en = charts.architecture_diagram("shared", ["a", "b"])
    zh = charts.architecture_diagram("shared", ["a", "b"], lang="zh")
    assert _labels(en) == ["input x", "shared<br>encoder θs", "head a", "head b"]
    assert _labels(zh) == ["输入 x", "共享<br>编码器 θs", "输出头 a", "输出头 b"]
    assert charts.architecture_diagram("shared", ["a", "b"], lang="zh") is zh  # cached, per language
    assert charts.architecture_diagram("shared", ["a", "b"]) is en
    blocks = [{"role": "expert", "level": 1, "tasks": ["a", "b"]} for _ in range(3)]
    assert "专家 2" in _labels(charts.architecture_diagram("experts", ["a", "b"], blocks=blocks, lang="zh"))
    many = [{"role": "expert", "level": 1, "tasks": ["a", "b"]} for _ in range(12)]
    assert "12 个专家" in _labels(charts.architecture_diagram("experts", ["a", "b"], blocks=many, lang="zh"))
    assert "12 experts" in _labels(charts.architecture_diagram("experts", ["a", "b"], blocks=many))
    assert "α 混合" in _labels(charts.architecture_diagram("cross_stitch", ["a", "b"], lang="zh"))
    assert "第 2 层" in _labels(charts.architecture_diagram("hierarchical", ["a", "b", "c"], lang="zh"))


def test_the_data_preview_follows_the_language():
    ds = load_dataset("mmoe_synthetic", {"n_samples": 200, "input_dim": 8})
    kind, fig = charts.data_preview(ds, lang="zh")
    assert kind == "figure" and fig.layout.title.text.startswith("训练目标：y1 对 y2（r = ")
    assert charts.data_preview(ds)[1].layout.title.text.startswith("training targets: y1 vs y2 (r = ")
    _, table = charts.data_preview(load_dataset("toy_language", {"n_samples": 100}), ["pos", "topic"], lang="zh")
    assert list(table.columns)[:2] == ["句子", "topic"]


# ---- the frame ------------------------------------------------------------------------------------
@pytest.mark.parametrize("address", ["0.0.0.0", "", "192.168.1.5"])
def test_the_exposure_refusal_in_english_is_the_access_checks_own_and_has_a_chinese_text(address):
    where = i18n.text("app.exposure_address", "en", address=address) if address else i18n.text(
        "app.exposure_everywhere", "en")
    assert i18n.text("app.exposure", "en", where=where, env=state.ALLOW_REMOTE_ENV) == \
        state.exposure_message(address, environ={})
    zh = i18n.text("app.exposure", "zh", where=i18n.text("app.exposure_everywhere", "zh"), env=state.ALLOW_REMOTE_ENV)
    assert "所有网络接口" in zh and f"{state.ALLOW_REMOTE_ENV}=1" in zh and "mtl-lab dashboard --host ADDRESS" in zh
