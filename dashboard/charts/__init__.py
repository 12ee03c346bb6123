"""Pure chart builders: data (DataFrames, dicts, lists) -> plotly Figure or pandas table.

Nothing here imports Streamlit or reads the store, so every chart is unit-tested
without a browser. One module per subject:

- `style`: the colours (one per task everywhere, `SHARED_GREY` for what tasks share),
  the layout, number formats, a table coloured by its verdicts (`style_verdicts`).
- `curves`: curves over the training steps (`loss_curves`, `weights_chart`, `overlay_chart`).
- `results`: single- vs multi-task bars and table (`comparison_bars`, `comparison_frame`).
- `gates`: the expert gates of MMoE / CGC / PLE (`gates_bars`, `gates_history_chart`).
- `interference`: gradient cosine, norms, affinity and magnitude heat maps, the pair table.
- `data_efficiency`: a transfer experiment's curve per arm (`data_efficiency_chart`).
- `pareto`: a sweep's trade-off (`pareto_chart`, `ternary_chart`, `front_order`, `selected_run`).
- `diagram`: the sharing-mode diagram, drawn from the model's blocks (`architecture_diagram`).

Task, expert and run names are data (a task name is a CSV column header anyone may have
written): every builder passes them through `safe_text.plot` where plotly would render
them (trace names, titles, tick labels, annotations, hover texts), and colours stay keyed
by the raw name. Pages import this package (`from dashboard import charts`;
`charts.loss_curves(...)`), which re-exports every module's names.
"""

from dashboard.charts.curves import MAX_CURVE_POINTS, ema, loss_curves, overlay_chart, point_count, thin, weights_chart
from dashboard.charts.data_efficiency import ARM_LABELS, data_efficiency_chart
from dashboard.charts.diagram import DIAGRAM_KINDS, MAX_DRAWN_EXPERTS, architecture_diagram, diagram_structure
from dashboard.charts.gates import expert_colors, gates_bars, gates_history_chart
from dashboard.charts.interference import (
    affinity_exponent, affinity_heatmap, cosine_heatmap, cosine_history_chart, grad_norm_chart,
    magnitude_heatmap, pairs_frame, scale_label,
)
from dashboard.charts.pareto import front_order, pareto_chart, selected_run, ternary_chart
from dashboard.charts.projection import projection_chart
from dashboard.charts.results import NO_CLEAR, comparison_bars, comparison_frame, style_comparison
from dashboard.charts.style import (
    ARM_COLORS, BETTER_BG, CONFLICT_FILL, EXPERT_PALETTE, INPUT_COLOR, RUN_PALETTE, SHARED_GREY, TASK_PALETTE,
    TOTAL_COLOR, WORSE_BG, style_verdicts, task_colors,
)
from dashboard.charts.thumbnails import data_preview

__all__ = [
    "ARM_COLORS", "ARM_LABELS", "BETTER_BG", "CONFLICT_FILL", "DIAGRAM_KINDS", "EXPERT_PALETTE", "INPUT_COLOR",
    "MAX_CURVE_POINTS", "MAX_DRAWN_EXPERTS", "NO_CLEAR", "RUN_PALETTE", "SHARED_GREY", "TASK_PALETTE",
    "TOTAL_COLOR", "WORSE_BG", "affinity_exponent", "affinity_heatmap", "architecture_diagram",
    "comparison_bars", "comparison_frame", "cosine_heatmap", "cosine_history_chart", "data_efficiency_chart",
    "diagram_structure", "ema", "expert_colors", "gates_bars", "gates_history_chart", "grad_norm_chart",
    "loss_curves", "magnitude_heatmap", "overlay_chart", "pairs_frame", "point_count", "scale_label",
    "style_comparison", "style_verdicts", "task_colors", "thin", "weights_chart",
    "front_order", "pareto_chart", "selected_run", "ternary_chart", "data_preview", "projection_chart",
]
