"""The dashboard's text catalogues: one file per page merged per language, every key the code
asks for present in English and 中文, and a key given twice refused."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dashboard import i18n

DASHBOARD = Path(i18n.__file__).resolve().parent


def _keys_asked_for() -> dict[str, str]:
    """Every literal key passed to `t(...)` / `i18n.t(...)` / `text(...)` in the dashboard's code."""
    asked: dict[str, str] = {}
    for path in DASHBOARD.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            first = node.args[0]
            if name in ("t", "text") and isinstance(first, ast.Constant) and isinstance(first.value, str):
                asked[first.value] = f"{path.relative_to(DASHBOARD)}:{node.lineno}"
    return asked


def test_every_key_the_pages_ask_for_has_an_english_and_a_chinese_text():
    asked = _keys_asked_for()
    assert len(asked) > 40  # the scan finds the pages' keys (a broken scan would pass vacuously)
    for lang in i18n.LANGUAGES:
        missing = {key: where for key, where in asked.items() if key not in i18n.catalogue(lang)}
        assert not missing, f"{lang}: {missing}"


def test_the_page_catalogues_are_merged_and_a_key_given_twice_is_refused(tmp_path, monkeypatch):
    (tmp_path / "en").mkdir()
    (tmp_path / "en.yaml").write_text('nav.learn: "Learn"\n', encoding="utf-8")
    (tmp_path / "en" / "train.yaml").write_text('train.go: "Train"\n', encoding="utf-8")
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    i18n.catalogue.cache_clear()
    try:
        assert i18n.catalogue("en") == {"nav.learn": "Learn", "train.go": "Train"}
        (tmp_path / "en" / "runs.yaml").write_text('train.go: "Go"\n', encoding="utf-8")
        i18n.catalogue.cache_clear()
        with pytest.raises(ValueError, match=r"en/train.yaml: key 'train.go' is already given in en/runs.yaml"):
            i18n.catalogue("en")
    finally:
        i18n.catalogue.cache_clear()
