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


def vs_scratch_frame(result: dict[str, Any]) -> pd.DataFrame:
    """Each pre-trained arm against scratch at each data size: the gain on the target's test
    metric (> 0: the arm is better, whatever the metric's direction), its 95 % paired
    bootstrap interval and the verdict (`transfer.run._compare_with_scratch`). Empty for
    results without a scratch arm (or stored before the comparison existed)."""
    import pandas as pd

    out = [{"n_labelled": r["n_labelled"], "arm": r["arm"], "gain": v["diff"], "low": v["low"], "high": v["high"],
            "verdict": v["verdict"]}
           for r in result.get("rows") or [] if isinstance(v := r.get("vs_scratch"), dict)]
    return pd.DataFrame(out, columns=["n_labelled", "arm", "gain", "low", "high", "verdict"])


def format_transfer(result: dict[str, Any]) -> str:
    """The data-efficiency table and the pre-training scores, as text."""
    arrow = "↑" if result["higher_is_better"] else "↓"
    lines = [
        f"transfer {', '.join(result['sources'])} → {result['target']} "
        f"(test {result['metric']} {arrow}, {result['target_steps']} steps per model, "
        f"{result['n_target_train']} labelled target rows in all)",
        transfer_table(result).round(4).to_string(),
        *([result["merged_text"]] if result.get("merged_text") else []),
        *_vs_scratch_lines(result),
        "",
        "pre-training (test): " + ", ".join(
            f"{t} {_primary(m, result.get('pretrain_metric', {}).get(t))}" for t, m in result["pretrain"].items()
        ),
    ]
    return "\n".join(lines)


def _vs_scratch_lines(result: dict[str, Any]) -> list[str]:
    frame = vs_scratch_frame(result)
    if frame.empty:
        return []
    lines = ["", "vs scratch (gain on the test metric, 95 % paired bootstrap interval):"]
    for r in frame.itertuples():
        lines.append(f"  {r.n_labelled:>6} labelled  {r.arm:<9} {r.gain:+.4g} [{r.low:+.4g}, {r.high:+.4g}]  {r.verdict}")
    return lines


def _primary(metrics: dict[str, float], name: str | None) -> str:
    name = name or next((k for k in metrics if k != "loss"), "loss")
    value = metrics.get(name)
    return f"{name}={value:.4g}" if isinstance(value, (int, float)) else f"{name}=—"
