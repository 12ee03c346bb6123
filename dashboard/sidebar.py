"""The sidebar's list of runs training now, and which poll keeps it fresh.

Every poll is a fragment rerun, and the browser pays for each rerun whatever it carries:
React, styles and layout are redone (profiled while watching a run, see
dashboard/live_pace.py). With a run watched on the Train page the page had two pollers, the
live panel (every 2 s, then 5 s) and this list (every 5 s): ~0.4 reruns a second where one
poller does. So a live panel drawn in a whole-page run *takes* the list (`live_fragment`): it redraws
the list into the sidebar at each of its own polls (a fragment may write into a container
drawn outside it, which Streamlit clears and redraws at the fragment's next rerun), and the
list's own fragment is not drawn. Otherwise the list polls itself every `POLL_S` while a run
is active (`draw`, after the page).

A click on Train reruns only the Train fragment, not the whole page: the panel it starts
cannot take the list then (the list's own fragment may be on the page) and the panel asks
for one whole-page rerun a poll later (train.py, SS_SIDEBAR_STALE), after which it takes it.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable

import streamlit as st

from dashboard import state
from dashboard.app_pages.common import STORE_READ_ERRORS, store_error_text
from dashboard.i18n import t
from dashboard.safe_text import md
from mtl_core import jobs
from mtl_core.errors import MTLLabError

POLL_S = 5.0  # the list's own poll on a page without a live panel (a live panel's slowest: live_pace.PANEL_MAX_S)
# What keeps the list fresh in this session, kept for tests and the curious: "panel" (a live
# panel redraws it at its polls), the list's own poll in seconds, or None (no run active).
SS_POLLED_BY = "_sidebar_polled_by"

# The list's container during one whole-page run of this script thread (a session's script
# runs in one thread at a time); gone after the page, so a fragment-only rerun finds none.
_run = threading.local()


def offer(slot: Any) -> None:
    """Before the page: the sidebar's container for the list, which a live panel may take."""
    _run.slot, _run.taken = slot, False


def take() -> Any | None:
    """The list's container for a live panel that polls while a run is active: for the first
    such panel of a whole-page run only (two panels redrawing it would show it twice), None
    for any other and in a fragment rerun (which keeps the list as the page last drew it)."""
    slot = getattr(_run, "slot", None)
    if slot is None or getattr(_run, "taken", False):
        return None
    _run.taken = True
    return slot


def redraw(slot: Any | None) -> None:
    """A live panel's poll: the list again, in the container it took (no-op for None)."""
    if slot is not None:
        with slot:
            active_runs(polling=False)


def live_fragment(panel: Callable[..., None], poll: float | None, *args: Any) -> None:
    """Draw `panel(*args)` as a fragment rerun every `poll` seconds (None: drawn once). While
    it polls in a whole-page run, it takes the sidebar's list and redraws it at each poll."""
    runs_list = take() if poll is not None else None

    @functools.wraps(panel)
    def polled(*panel_args: Any) -> None:
        redraw(runs_list)
        panel(*panel_args)

    st.fragment(run_every=poll)(polled)(*args)


def draw() -> None:
    """After the page: the list with its own poll (while a run is active), unless a live panel took it."""
    slot, taken = getattr(_run, "slot", None), getattr(_run, "taken", False)
    _run.slot, _run.taken = None, False
    if slot is None:
        return
    if taken:
        st.session_state[SS_POLLED_BY] = "panel"
        return
    any_active = _any_active()
    poll = POLL_S if any_active else None
    st.session_state[SS_POLLED_BY] = poll
    with slot:
        st.fragment(run_every=poll)(active_runs)(any_active)


def _any_active() -> bool:
    """Whether a run is queued or training (False when the store cannot be read: the list says why)."""
    try:
        return not jobs.active(store_path=state.store_path()).empty
    except MTLLabError:
        return False


def active_runs(polling: bool) -> None:
    """Runs queued or training now, each a link that watches it on the Train page."""
    try:
        active = jobs.active(store_path=state.store_path())
    except MTLLabError as exc:
        st.error(md(state.error_text(exc)))
        return
    if active.empty:
        st.caption(t("app.no_run"))
        if polling:  # the last one just ended: stop polling
            st.rerun()
        return
    store = state.get_store()
    for row in active.to_dict("records"):
        try:
            config = store.get_run(row["id"])["config"]
            progress = state.progress_summary(row, state.run_phases(config),
                                              batch_size=state.run_batch_size(config),
                                              budgets=state.run_budgets(config))
        except STORE_READ_ERRORS as exc:  # deleted between the two reads, or a damaged record
            st.caption(f"{md(row['id'])}: {store_error_text(exc, row['id'])}")
            continue
        if state.is_transfer(config):
            st.page_link("app_pages/transfer.py", label=md(row["id"]), icon=":material/play_circle:",
                         query_params={state.TRANSFER_PARAM: row["id"]}, help=t("app.watch_on_transfer"))
        else:
            st.page_link("app_pages/train.py", label=md(row["id"]), icon=":material/play_circle:",
                         query_params={state.RUN_PARAM: row["id"]}, help=t("app.watch_on_train"))
        st.progress(progress["fraction"], text=f"{md(row['status'])} · {md(progress['text'])}")
