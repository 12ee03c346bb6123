"""The Transfer page's setup and its runs: fractions as typed, the transfer config the
form describes (`mtl_core.transfer.TransferConfig` as a dict), the stored transfer runs."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from dashboard.i18n import text
from mtl_core.errors import StoreError
from mtl_core.store import RunStore

TRANSFER_PARAM = "transfer"  # ?transfer=<run id>: the transfer run the Transfer page shows
FRACTION_CHOICES = ("1 %", "2 %", "5 %", "10 %", "20 %", "50 %", "100 %")


def is_transfer(config: Mapping[str, Any] | None) -> bool:
    """True for a transfer experiment's stored config (`mtl_core.transfer.TransferConfig`)."""
    return bool(config) and config.get("kind") == "transfer"


def parse_fractions(labels: Sequence[Any], lang: str = "en") -> tuple[list[float], str | None]:
    """Percentages as typed or picked ("5 %", "5%", "12.5") -> sorted fractions (0.05, ...).

    Every entry is read as a percentage of the target's labelled training rows, so "0.5"
    is half a percent. Returns (fractions, None) or ([], a message in `lang` naming the bad
    entry and the field, `fractions`).
    """
    out: list[float] = []
    for label in labels:
        typed = str(label).strip().removesuffix("%").strip().replace(",", ".")
        try:
            pct = float(typed)
        except ValueError:
            return [], text("transfer.fractions_not_a_number", lang, label=repr(label))
        if not (math.isfinite(pct) and 0.0 < pct <= 100.0):
            return [], text("transfer.fractions_out_of_range", lang, label=repr(label))
        out.append(pct / 100.0)
    return sorted(set(out)), None


def transfer_draft(
    *,
    dataset: str,
    options: Mapping[str, Any],
    sources: Sequence[str],
    target: str | None,
    arms: Sequence[str],
    fractions: Sequence[float],
    pretrain_steps: int,
    target_steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    text_encoder: str | None = None,
) -> dict[str, Any]:
    """The transfer config (`mtl_core.transfer.TransferConfig` as a dict) the Transfer
    page describes. Pre-training records no interference: it would only slow it down."""
    base: dict[str, Any] = {
        "dataset": {"name": dataset, "options": dict(options)},
        "steps": int(pretrain_steps),
        "eval_every": max(int(pretrain_steps) // 4, 1),
        "batch_size": int(batch_size),
        "optimizer": {"lr": float(lr)},
        "seed": int(seed),
        "interference": False,
    }
    if text_encoder:
        base["model"] = {"text_encoder": text_encoder}
    return {
        "kind": "transfer",
        "name": f"transfer {', '.join(sources)} → {target}",
        "base": base,
        "sources": list(sources),
        "target": target or "",
        "arms": list(arms),
        "fractions": list(fractions),
        "target_steps": int(target_steps),
    }


def transfer_runs(store: RunStore) -> list[dict[str, Any]]:
    """The stored transfer runs, newest first (rows of `RunStore.runs`).

    A transfer config nests its dataset under `base`, so its runs have no dataset column;
    only those are opened to read their kind.
    """
    runs = store.runs()
    out = []
    for row in runs[runs["dataset"].isna()].to_dict("records"):
        try:
            if is_transfer(store.get_run(row["id"])["config"]):
                out.append(row)
        except StoreError:
            continue  # deleted meanwhile
    return out


def transfer_run_label(row: Mapping[str, Any]) -> str:
    """`20261124-235959-ab12cd · transfer pos, ner → topic · finished` for the picker."""
    return " · ".join(str(p) for p in (row.get("id"), row.get("name") or "transfer", row.get("status")))
