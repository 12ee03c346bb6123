"""Loss-weighting and gradient-balancing strategies (one file per family).

- `manual`: fixed weights (`manual`, `equal`);
- `loss_based`: `uncertainty`, `dwa`, `gls`, `rlw`, `famo`, `stch`;
- `gradient_scaling`: `gradnorm`, `imtl`, `aligned_mtl`, `db_mtl`;
- `gradient_surgery`: `pcgrad`, `gradvac`, `graddrop`;
- `multi_objective`: `mgda`, `cagrad`, `nash_mtl`, `upgrad`.

Gradient-based strategies share the mechanics in `jacobian` and the small solvers in
`solvers`.
"""

from mtl_core.weighting.base import (
    WEIGHT_USES, WEIGHTING, WeightingStrategy, build_weighting, register_weighting, strategies_using_weights,
    weights_note,
)
from mtl_core.weighting.jacobian import GradientWeighting, Update
from mtl_core.weighting import manual  # noqa: F401  (registers)
from mtl_core.weighting import loss_based  # noqa: F401  (registers)
from mtl_core.weighting import gradient_scaling  # noqa: F401  (registers)
from mtl_core.weighting import gradient_surgery  # noqa: F401  (registers)
from mtl_core.weighting import multi_objective  # noqa: F401  (registers)

__all__ = [
    "WEIGHTING", "WEIGHT_USES", "GradientWeighting", "Update", "WeightingStrategy", "build_weighting",
    "register_weighting", "strategies_using_weights", "weights_note",
]
