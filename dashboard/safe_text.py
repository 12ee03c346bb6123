"""User strings made inert before Streamlit or plotly renders them.

Task names are CSV column headers, run names are typed by whoever started the run, file
names come from uploads and links: all of them are data, never markup. Streamlit renders
Markdown (and, with `unsafe_allow_html`, HTML) in `st.markdown`, `st.caption`, the alert
boxes, toasts, progress texts and most widget labels; plotly renders a subset of HTML
(`<a href>`, `<b>`, `<br>`) in titles, legends and hover texts. Every user-derived
string goes through one of the three functions below on its way to one of those.

Where Streamlit 1.67 renders Markdown (read in Chromium): bodies of markdown, captions,
alerts, toasts, progress texts, titles and subheaders; the labels of widgets, page links,
expanders, tabs, metrics and download buttons, and `help` tooltips; radio options and the
select_slider's value; the cells and headers of `st.table` (a Styler's shown values too).
Plain text, so NOT escaped (the backslashes would show): selectbox and multiselect options
and their `format_func` output, `st.dataframe` cells, `st.code`.
"""

from __future__ import annotations

import html
import re
from typing import Any

# CommonMark lets a backslash escape any ASCII punctuation. Escaped are the characters
# that open inline Markdown anywhere in a line: emphasis, code, links and images, raw HTML,
# GFM tables and strike-through, `$…$` LaTeX, and Streamlit's `:color[…]` directives.
# Punctuation that means something only in a few places is escaped only there, so that
# ordinary names and messages (run ids like `20261124-235959-ab12cd`, `'quoted'` names,
# `no_such_data`, `sources: a, b`) read the same in the page source as on screen:
# - `_` only where it can open or close emphasis: not between two letters or digits;
# - `:` where it can open a directive or short code (before a non-space character:
#   Streamlit still colours `:red\[x\]`), and in a word that could close one (two
#   colons, or one at either end of the text, where our own text may supply the other);
# - `/` in such a word: Streamlit finds `:material/icon:` even when both colons are
#   escaped, but not once its `/` is (both checked in Chromium with Streamlit 1.67);
# - a list marker, heading or thematic-break sign only at the start of the text.
_ALWAYS = frozenset("\\`*[]<>~$|")
_BLOCK_START = re.compile(r"^(\s*)(?:([-+#=])|(\d+)([.)]))")
_SPACE = re.compile(r"(\s+)")


def _escape(text: str, *, amp: bool) -> str:
    words = _SPACE.split(text)
    for w, word in enumerate(words):
        if not word or word.isspace():
            continue
        colons = word.count(":")
        shortcode = colons >= 2 or (colons == 1 and w in (0, len(words) - 1))
        out = []
        last = len(word) - 1
        for i, ch in enumerate(word):
            if (ch in _ALWAYS or (amp and ch == "&") or (shortcode and ch in ":/")
                    or (ch == ":" and i < last)):  # `:` before a non-space: it may open a directive
                ch = "\\" + ch
            elif ch == "_" and not (0 < i < last and word[i - 1].isalnum() and word[i + 1].isalnum()):
                ch = "\\_"
            out.append(ch)
        words[w] = "".join(out)
    escaped = "".join(words)
    # At the start of a line, `- x`, `+ x`, `# x`, `1. x` would start a list or a heading.
    return _BLOCK_START.sub(lambda m: m.group(1) + (
        "\\" + m.group(2) if m.group(2) else m.group(3) + "\\" + m.group(4)), escaped, count=1)


def _one_line(value: Any) -> str:
    # A line break in a name would start a new Markdown block (a heading, a list).
    return str(value).replace("\r", " ").replace("\n", " ")


def md(value: Any) -> str:
    """`value` as literal text inside Markdown (alerts, captions, labels, progress texts).

    `&` is escaped too, so that a name holding `&amp;` shows as typed."""
    return _escape(_one_line(value), amp=True)


def html_md(value: Any) -> str:
    """`value` as literal text inside `st.markdown(..., unsafe_allow_html=True)`: HTML-escaped
    (no tag, no attribute) and then Markdown-escaped (the HTML block is still Markdown),
    leaving the `&` of the entities `html.escape` made."""
    return _escape(html.escape(_one_line(value), quote=False), amp=False)


def plot(value: Any) -> str:
    """`value` as literal text in a plotly title, legend, axis or hover label."""
    return html.escape(str(value), quote=False)
