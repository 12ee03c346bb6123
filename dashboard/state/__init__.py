"""What the pages share besides drawing: the experiment in the URL and in the form, the
run store's handle, a run's progress. One module per reason to change:

- `limits`: what a link may ask of this server (`DASHBOARD_LIMITS`).
- `fields`: widget specs from the registries' pydantic options models (`option_fields`),
  and values made to fit a widget (`coerce`).
- `links`: the experiment in the URL, query parameters <-> config (`config_to_params`,
  `params_to_raw`), and what a link or a YAML file asks brought within bounds (`review_config`).
- `form`: the widget keys (`K_*`, `k_*`) and the draft the form describes (`draft_from_session`,
  `validate`).
- `access`: which files the dashboard may read, uploads, and who may reach the server.
- `datasets`: what the dashboard reads of a dataset without training (task names, colour
  order, a small stand-in for the model's shape).
- `session`: what a browser tab holds (the store's handle `get_store`, the watched run
  `?run=`, the runs it started, the device).
- `live`: the live panel's incremental reads of a running run.
- `run_progress`: a run's progress bar in words, fraction and ETA (its plan of phases is
  `mtl_core.phases`).
- `transfer_form`: the Transfer page's setup and its stored runs.

A link reproduces an experiment, and `run=<id>` re-attaches to a run after a refresh.
Nothing per-user is kept in module globals, so two tabs never see each other's draft. The
functions without `st.` are pure and tested directly; the rest need a Streamlit run. Pages
import this package (`from dashboard import state`; `state.get_store()`), which re-exports
every module's names.
"""

from dashboard.state.access import (
    UPLOAD_STEM_CHARS, allowed_data_dirs, check_data_path, check_dataset_access, exposure_message,
    read_csv_header, save_upload, uploads_dir,
)
from dashboard.state.datasets import color_tasks, dataset_stand_in, run_tasks, safe_task_names
from dashboard.state.fields import (
    JS_MAX_INT, THREAD_SETTINGS, TRAINING_FIELDS, UI_RANGES, WEIGHT_FIELD, OptionField, WidgetKind, coerce,
    coerce_noted, option_fields, thread_choices, threads_noted,
)
from dashboard.state.form import (
    CSV_SPECIAL, K_BATCH, K_BUDGET, K_CSV_TARGETS, K_CSV_TEXT, K_DATASET, K_DEVICE, K_EPOCHS, K_LR, K_N_SEEDS,
    K_SEED, K_SHARING, K_STEPS, K_THREADS, K_WEIGHTING, NO_TEXT_COLUMN, clear_form, dataset_from_session,
    draft_from_session, error_text, k_csv_kind, k_ds_opt, k_sh_opt, k_task, k_weight, k_wt_opt, normalised_weights,
    read_options, seed, validate, weighting_from_session, weights_used,
)
from dashboard.state.limits import DASHBOARD_LIMITS, LIMIT_REASON, PREVIEW_ROWS, option_limit
from dashboard.state.links import (
    CONFIG_FIELDS, SS_PARAMS, SS_PENDING, SS_WRITTEN, WRITTEN_KEPT, config_params, config_to_params,
    default_config_dict, default_name, params_to_raw, review_config, section, yaml_scalar,
)
from dashboard.state.live import SS_LIVE, get_live_run, keep_live_figure, live_figure, live_metrics
from dashboard.state.run_progress import (
    format_seconds, phase_label, progress_summary, run_batch_size, run_budgets, run_phases,
)
from dashboard.state.session import (
    RUN_PARAM, SS_RUN, SS_STARTED, config_fingerprint, cuda_available, current_run_id, device_name,
    get_run_safe, get_store, run_label, set_run_id, started_run, store_path,
)
from dashboard.state.transfer_form import (
    FRACTION_CHOICES, TRANSFER_PARAM, is_transfer, parse_fractions, transfer_draft, transfer_run_label,
    transfer_runs,
)
from mtl_core.launcher import ALLOW_REMOTE_ENV, DATA_DIRS_ENV
from dashboard.state.links import _shown  # noqa: F401  (tests read it)

__all__ = [
    "ALLOW_REMOTE_ENV", "CONFIG_FIELDS", "CSV_SPECIAL", "DASHBOARD_LIMITS", "DATA_DIRS_ENV", "FRACTION_CHOICES",
    "JS_MAX_INT", "K_BATCH", "K_BUDGET", "K_CSV_TARGETS", "K_CSV_TEXT", "K_DATASET", "K_DEVICE", "K_EPOCHS",
    "K_LR", "K_N_SEEDS", "K_SEED", "K_SHARING", "K_STEPS", "K_THREADS", "K_WEIGHTING", "LIMIT_REASON", "PREVIEW_ROWS",
    "NO_TEXT_COLUMN", "OptionField", "RUN_PARAM", "SS_LIVE", "SS_PARAMS", "SS_PENDING", "SS_RUN", "SS_STARTED",
    "SS_WRITTEN", "THREAD_SETTINGS", "TRAINING_FIELDS", "TRANSFER_PARAM", "UI_RANGES", "UPLOAD_STEM_CHARS",
    "WEIGHT_FIELD", "WRITTEN_KEPT", "WidgetKind", "allowed_data_dirs", "check_data_path",
    "check_dataset_access", "clear_form", "coerce", "coerce_noted", "color_tasks", "config_fingerprint",
    "config_params", "config_to_params", "cuda_available", "current_run_id", "dataset_from_session",
    "dataset_stand_in", "default_config_dict", "default_name", "device_name", "draft_from_session",
    "error_text", "exposure_message", "format_seconds", "get_live_run", "get_run_safe", "get_store",
    "is_transfer", "k_csv_kind", "k_ds_opt", "k_sh_opt", "k_task", "k_weight", "k_wt_opt", "keep_live_figure", "live_figure",
    "live_metrics", "normalised_weights", "option_fields", "option_limit", "params_to_raw", "parse_fractions",
    "phase_label", "progress_summary", "read_csv_header", "read_options", "review_config", "run_batch_size",
    "run_budgets", "run_label", "run_phases", "run_tasks", "safe_task_names", "save_upload", "section", "seed",
    "set_run_id", "started_run", "store_path", "thread_choices", "threads_noted", "transfer_draft",
    "transfer_run_label", "transfer_runs", "uploads_dir", "validate", "weighting_from_session", "weights_used",
    "yaml_scalar",
]
