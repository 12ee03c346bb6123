"""User strings made inert before Streamlit or plotly renders them.

Task names are CSV column headers, run names are typed by whoever started the run, file
names come from uploads and links: all of them are data, never markup. Streamlit renders
Markdown (and, with `unsafe_allow_html`, HTML) in `st.markdown`, `st.caption`, the alert
boxes, toasts, progress texts and most widget labels; plotly renders a subset of HTML
(`<a href>`, `<b>`, `<br>`) in titles, legends and hover texts. Every user-derived
string goes through one of the three functions below on its way to one of those.
"""

from __future__ import annotations

import html
import re
from typing import Any

# CommonMark lets a backslash escape any ASCII punctuation; these are the characters that
# start Markdown, GFM tables and strike-through, Streamlit's `:color[...]`/`:material/...:`
# directives, emoji short codes and `$…$` LaTeX. `&` is left alone so that HTML entities
# made by `html.escape` stay entities.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=\"'/^])")


def md(value: Any) -> str:
    """`value` as literal text inside Markdown (alerts, captions, labels, progress texts)."""
    text = str(value)
    # A line break in a name would start a new Markdown block (a heading, a list).
    text = text.replace("\r", " ").replace("\n", " ")
    return _MD_SPECIAL.sub(r"\\\1", text)


def html_md(value: Any) -> str:
    """`value` as literal text inside `st.markdown(..., unsafe_allow_html=True)`: HTML-escaped
    (no tag, no attribute) and then Markdown-escaped (the HTML block is still Markdown)."""
    return md(html.escape(str(value), quote=False))


def plot(value: Any) -> str:
    """`value` as literal text in a plotly title, legend, axis or hover label."""
    return html.escape(str(value), quote=False)
