"""MTL Lab dashboard, the entry point: `streamlit run dashboard/app.py`.

A router and a frame (Streamlit's multipage guidance): the pages live in
`dashboard/app_pages/` and read like a description of the UI; the sidebar shows the
machine's accelerator and the runs training now. Everything is computed by
`mtl_core` or drawn by `dashboard.charts`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run dashboard/app.py` puts dashboard/ on sys.path, not the repository.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import i18n, sidebar, state  # noqa: E402
from dashboard.i18n import t  # noqa: E402
from mtl_core import jobs  # noqa: E402

# The safe client settings even when `.streamlit/config.toml` was not read (Streamlit reads
# it from the working directory only): no tracebacks or file paths in the browser.
# Set only when different: setting an option signals a config change to every session.
for _option, _safe in (("client.showErrorDetails", "none"), ("client.toolbarMode", "minimal")):
    if st.get_option(_option) != _safe:
        st.set_option(_option, _safe)
st.set_page_config(page_title="MTL Lab", page_icon=":material/hub:", layout="wide")

# Bound beyond loopback without the operator asking for it (e.g. `streamlit run` from a
# folder without our config): anyone on the network could start runs here. Refuse.
address = st.get_option("server.address")
if state.exposure_message(address):  # said in the page's language (`app.exposure`, the same words in English)
    where = t("app.exposure_address", address=address) if address else t("app.exposure_everywhere")
    st.error(t("app.exposure", where=where, env=state.ALLOW_REMOTE_ENV), icon=":material/lan:")
    st.stop()

# The default page is served at the root URL whatever its url_path (st.navigation gives it
# the path ""), so a link to its own path would find no page ("Page not found"); each page
# that can be the default is therefore registered again, hidden, under its own path.
# A bare visit (no query, or only Learn's own keys) lands on Learn (issue 15: the first page a
# visitor sees); a link with an experiment in it (`/?steps=600&…`, `/?run=ID`: every Train link
# and shared run) opens Train, as it always did. Decided once per session: a Train page at "/"
# whose form is back at the defaults writes no query, and must not turn into Learn. Page links
# to a script use its first entry.
LEARN = dict(title=t("nav.learn"), icon=":material/school:")
TRAIN = dict(title=t("nav.train"), icon=":material/model_training:")
LEARN_KEYS = frozenset({i18n.LANG_PARAM, "lesson", "present"})  # learn.py's LESSON_PARAM, PRESENT_PARAM
landing = st.session_state.setdefault("_landing_on_learn", set(st.query_params.keys()) <= LEARN_KEYS)
PAGES = [
    st.Page("app_pages/learn.py", **LEARN, url_path="" if landing else "learn", default=landing),
    st.Page("app_pages/train.py", **TRAIN, url_path="train" if landing else "", default=not landing),
    st.Page("app_pages/sweep.py", title=t("nav.sweep"), icon=":material/scatter_plot:", url_path="sweep"),
    st.Page("app_pages/results.py", title=t("nav.results"), icon=":material/leaderboard:", url_path="results"),
    st.Page("app_pages/interference.py", title=t("nav.interference"), icon=":material/call_split:",
            url_path="interference"),
    st.Page("app_pages/transfer.py", title=t("nav.transfer"), icon=":material/move_up:", url_path="transfer"),
    st.Page("app_pages/runs.py", title=t("nav.runs"), icon=":material/history:", url_path="runs"),
    st.Page("app_pages/learn.py", **LEARN, url_path="learn", visibility="hidden") if landing else
    st.Page("app_pages/train.py", **TRAIN, url_path="train", visibility="hidden"),
]
page = st.navigation(PAGES)

# One fork server kept ready (torch imported once, at idle CPU priority) that forks each run's
# process, so that a click on Train shows its first point in about a second instead of after
# the seconds a fresh process spends importing torch (mtl_core.jobs.keep_warm;
# MTL_LAB_WARM_WORKER=0: off).
jobs.keep_warm()


with st.sidebar:
    i18n.language_switch()  # English / 中文, kept in the URL (?lang=)
    device = state.device_name()
    st.badge(device, icon=":material/memory:" if device != "CPU" else ":material/computer:",
             color="green" if device != "CPU" else "gray")
    st.markdown(t("app.active_runs"))
    sidebar.offer(st.container())  # the list of active runs, drawn after the page (dashboard/sidebar.py)

try:
    page.run()
finally:  # also after st.stop(): the list is drawn unless a live panel took it
    sidebar.draw()
