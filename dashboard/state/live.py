"""The live panel's reads: the watched run's row and its curves, read incrementally.

Each poll of a live panel (an `st.fragment` while the run is active) reads only the rows
logged since its previous poll (`RunStore.metrics_since`) and keeps, per browser session,
what it has read so far and the figure drawn from it (`charts.loss_curves(reuse=)`).
"""

from __future__ import annotations

from typing import Any, MutableMapping

import pandas as pd

from dashboard.state.session import get_store
from mtl_core.errors import StoreError

SS_LIVE = "_live_curves"  # the watched run's curves read so far, and the figure drawn from them


def live_metrics(ss: MutableMapping[str, Any], run_id: str, *, metric: str = "loss") -> pd.DataFrame:
    """The run's `metric` rows, read incrementally: each poll of a live panel reads only the
    rows logged since its previous poll (`RunStore.metrics_since`) and appends them to what
    this browser session already holds."""
    store = get_store()
    key = (str(store.path), run_id, metric)
    cache = ss.get(SS_LIVE)
    if not isinstance(cache, dict) or cache.get("key") != key:
        cache = {"key": key, "rowid": 0, "frame": None, "figure": None}
    new, cache["rowid"] = store.metrics_since(run_id, cache["rowid"], metric=metric)
    frame = cache["frame"]
    if frame is None or frame.empty:
        cache["frame"] = new
    elif not new.empty:
        cache["frame"] = pd.concat([frame, new], ignore_index=True)
    ss[SS_LIVE] = cache
    return cache["frame"]


def live_figure(ss: MutableMapping[str, Any]) -> Any:
    """The figure the live panel drew at its previous poll (for `charts.loss_curves(reuse=)`)."""
    cache = ss.get(SS_LIVE)
    return cache.get("figure") if isinstance(cache, dict) else None


def keep_live_figure(ss: MutableMapping[str, Any], figure: Any) -> None:
    cache = ss.get(SS_LIVE)
    if isinstance(cache, dict):
        cache["figure"] = figure


def get_live_run(run_id: str, *, refresh: bool = True) -> tuple[dict[str, Any] | None, str | None]:
    """(run row, None) or (None, a readable message) for a live panel's poll.

    `refresh` first marks runs whose process died as interrupted, so a panel watching a
    killed run sees it end.
    """
    store = get_store()
    try:
        if refresh:
            store.mark_interrupted()
        return store.get_run(run_id), None
    except StoreError as exc:
        return None, f"{exc}. It may have been deleted."
