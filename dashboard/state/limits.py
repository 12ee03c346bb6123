"""What a link may ask of this server: the dashboard's bounds on sizes and counts.

Anyone who can open a link can make the server generate data, build a model and train:
these bounds keep one link within what a teaching/experimenting tool needs (a page with
n_samples=200,000 × input_dim=1,024 took the server from 0.4 to 3.7 GB before). They
apply to URL values, uploaded YAML files and the widgets alike; larger only through the
CLI/config file (`mtl-lab run CONFIG`), where the operator is the user.
"""

from __future__ import annotations

from mtl_core.threads import usable_cores

LIMIT_REASON = "the dashboard's bound; larger only through the CLI/config file"
# Rows the Train page's data preview generates at most, whatever the link asks (its scatter
# shows 400): opening a link never generates the link's own data before Train is pressed.
PREVIEW_ROWS = 1_000
DASHBOARD_LIMITS: dict[str, int] = {
    # dotted config key (options: of whichever entry the config names) -> the largest value
    "dataset.options.n_samples": 50_000,  # rows generated in memory, per run and seed
    "dataset.options.input_dim": 512,  # features per row
    "dataset.options.max_len": 256,  # tokens per sentence
    "dataset.options.max_bytes": 50 * 1024 * 1024,  # CSV file size (the upload limit)
    "sharing.options.n_experts": 16,
    "sharing.options.n_shared_experts": 8,
    "sharing.options.n_task_experts": 8,
    "sharing.options.levels": 4,
    "model.hidden": 1024,  # each encoder layer width
    "model.layers": 6,  # encoder layers (entries of model.hidden)
    "model.head_hidden": 1024,
    "model.embed_dim": 512,
    "steps": 100_000,
    "epochs": 1_000,
    "batch_size": 4_096,
    "n_seeds": 20,
    # threads of one run: at most this server's cores (a link asking for 1,000 would make
    # the training process start 1,000 threads)
    "threads": usable_cores(),
}


def option_limit(section_name: str, option: str) -> int | None:
    """The dashboard's bound of option `option` of a dataset/sharing/weighting entry."""
    return DASHBOARD_LIMITS.get(f"{section_name}.options.{option}")
