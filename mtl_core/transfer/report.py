"""A transfer experiment's results as a table and as text (the CLI's `mtl-lab transfer`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mtl_core.phases import ARMS

if TYPE_CHECKING:
    import pandas as pd


def transfer_table(result: dict[str, Any]) -> pd.DataFrame:
    """Target metric per data size (rows: fraction, n_labelled) and arm (columns)."""
    import pandas as pd

    df = pd.DataFrame(result["rows"])
    table = df.pivot_table(index=["fraction", "n_labelled"], columns="arm", values="metric_value", sort=False)
    return table[[a for a in result.get("arms", ARMS) if a in table.columns]]


def format_transfer(result: dict[str, Any]) -> str:
    """The data-efficiency table and the pre-training scores, as text."""
    arrow = "↑" if result["higher_is_better"] else "↓"
    lines = [
        f"transfer {', '.join(result['sources'])} → {result['target']} "
        f"(test {result['metric']} {arrow}, {result['target_steps']} steps per model, "
        f"{result['n_target_train']} labelled target rows in all)",
        transfer_table(result).round(4).to_string(),
        *([result["merged_text"]] if result.get("merged_text") else []),
        "",
        "pre-training (test): " + ", ".join(
            f"{t} {_primary(m, result.get('pretrain_metric', {}).get(t))}" for t, m in result["pretrain"].items()
        ),
    ]
    return "\n".join(lines)


def _primary(metrics: dict[str, float], name: str | None) -> str:
    name = name or next((k for k in metrics if k != "loss"), "loss")
    value = metrics.get(name)
    return f"{name}={value:.4g}" if isinstance(value, (int, float)) else f"{name}=—"
