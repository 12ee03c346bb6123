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

from dashboard import state  # noqa: E402
from mtl_core import jobs  # noqa: E402
from mtl_core.errors import MTLLabError  # noqa: E402

SIDEBAR_POLL_S = 3.0

st.set_page_config(page_title="MTL Lab", page_icon=":material/hub:", layout="wide")

PAGES = [
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:", url_path="train",
            default=True),
    st.Page("app_pages/results.py", title="Results", icon=":material/leaderboard:", url_path="results"),
    st.Page("app_pages/interference.py", title="Interference", icon=":material/call_split:",
            url_path="interference"),
    st.Page("app_pages/transfer.py", title="Transfer", icon=":material/move_up:", url_path="transfer"),
    st.Page("app_pages/runs.py", title="Runs", icon=":material/history:", url_path="runs"),
]
page = st.navigation(PAGES)


def _active_runs(polling: bool) -> None:
    """Runs queued or training now, each a link that watches it on the Train page."""
    try:
        active = jobs.active(store_path=state.store_path())
    except MTLLabError as exc:
        st.error(state.error_text(exc))
        return
    if active.empty:
        st.caption("No run is training.")
        if polling:  # the last one just ended: stop polling
            st.rerun()
        return
    store = state.get_store()
    for row in active.to_dict("records"):
        try:
            config = store.get_run(row["id"])["config"]
        except MTLLabError:
            continue  # deleted between the two reads
        progress = state.progress_summary(row, state.run_phases(config), batch_size=state.run_batch_size(config),
                                          budgets=state.run_budgets(config))
        if state.is_transfer(config):
            st.page_link("app_pages/transfer.py", label=row["id"], icon=":material/play_circle:",
                         query_params={state.TRANSFER_PARAM: row["id"]}, help="Watch this run on the Transfer page")
        else:
            st.page_link("app_pages/train.py", label=row["id"], icon=":material/play_circle:",
                         query_params={state.RUN_PARAM: row["id"]}, help="Watch this run on the Train page")
        st.progress(progress["fraction"], text=f"{row['status']} · {progress['text']}")


with st.sidebar:
    device = state.device_name()
    st.badge(device, icon=":material/memory:" if device != "CPU" else ":material/computer:",
             color="green" if device != "CPU" else "gray")
    st.markdown("**Active runs**")
    try:
        any_active = not jobs.active(store_path=state.store_path()).empty
    except MTLLabError:
        any_active = False
    st.fragment(run_every=SIDEBAR_POLL_S if any_active else None)(_active_runs)(any_active)

page.run()
