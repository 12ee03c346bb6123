"""English and 中文 for the dashboard's own texts: plain YAML catalogues, a switch kept in the URL.

`dashboard/locales/<lang>.yaml` maps a key to a text (`str.format` fields in braces); a
translator edits those files, not Python. The language is `?lang=en|zh` in the URL, so a
link or a reload keeps it. Technical terms keep their English names beside the Chinese
(Δm, PCGrad, MMoE), so a student can find them in the papers.

`text(key, lang)` needs no Streamlit (tests, bench); `t(key)` reads the language of the
page being drawn.
"""

from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import yaml

LOCALE_DIR = Path(__file__).resolve().parent / "locales"
LANGUAGES = ("en", "zh")
LANGUAGE_NAMES = {"en": "English", "zh": "中文"}
DEFAULT = "en"
LANG_PARAM = "lang"
K_LANG = "ui.lang"


def catalogue_files(lang: str) -> list[Path]:
    """The files of one language: `locales/<lang>.yaml` (navigation, verdicts, Learn) and one
    file per page in `locales/<lang>/` (`train.yaml`, `results.yaml`, ...)."""
    return [LOCALE_DIR / f"{lang}.yaml", *sorted((LOCALE_DIR / lang).glob("*.yaml"))]


@cache
def catalogue(lang: str) -> dict[str, str]:
    """The texts of one language (read once per process). A key given in two files is an
    error naming both, so one page's catalogue cannot silently replace another's text."""
    texts: dict[str, str] = {}
    origin: dict[str, str] = {}
    for path in catalogue_files(lang):
        name = path.relative_to(LOCALE_DIR).as_posix()
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ValueError(f"{name}: a catalogue maps each key to one text")
        for key, value in data.items():
            key = str(key)
            if key in texts:
                raise ValueError(f"{name}: key {key!r} is already given in {origin[key]}; keep one")
            texts[key], origin[key] = value, name
    return texts


def text(key: str, lang: str = DEFAULT, **fields: Any) -> str:
    """The text of `key` in `lang` (English where the translation is missing, the key itself
    where both are: a missing text shows, it does not crash the page)."""
    template = catalogue(lang if lang in LANGUAGES else DEFAULT).get(key) or catalogue(DEFAULT).get(key) or key
    return template.format(**fields) if fields else template


def normalise(value: Any) -> str:
    """A `?lang=` value as a known language (anything else: English)."""
    value = str(value or "").strip().lower()
    if value.startswith("zh") or value in ("cn", "中文"):
        return "zh"
    return value if value in LANGUAGES else DEFAULT


# ---- with Streamlit ------------------------------------------------------------------------
def current() -> str:
    """The page's language: `?lang=` in the URL, else this tab's last choice, else English."""
    import streamlit as st

    in_url = st.query_params.get(LANG_PARAM)
    if in_url:
        return normalise(in_url)
    return normalise(st.session_state.get(K_LANG))


def t(key: str, **fields: Any) -> str:
    """`text(key)` in the language of the page being drawn."""
    return text(key, current(), **fields)


def _on_switch() -> None:
    import streamlit as st

    lang = normalise(st.session_state.get(K_LANG))
    st.query_params[LANG_PARAM] = lang


def language_switch() -> str:
    """The English / 中文 switch (sidebar); writes `?lang=` so a reload or a link keeps it.
    Returns the language in force."""
    import streamlit as st

    lang = current()
    if st.session_state.get(K_LANG) != lang:
        st.session_state[K_LANG] = lang  # follow a link's ?lang= (and a reload)
    st.segmented_control(text("ui.language", lang), options=list(LANGUAGES), key=K_LANG,
                         format_func=LANGUAGE_NAMES.get, on_change=_on_switch, label_visibility="collapsed")
    if st.query_params.get(LANG_PARAM) != lang and lang != DEFAULT:
        st.query_params[LANG_PARAM] = lang
    return lang
