"""Transfer learning: pre-train a shared encoder on source tasks, reuse it for a new task.

The question multi-task pre-training answers is data efficiency: does an encoder trained
on related tasks let a new task be learned from fewer labelled examples? (Caruana, 1997,
§ "inductive transfer"; the pre-train / fine-tune recipe of Collobert & Weston, ICML 2008
and of MT-DNN, Liu et al., ACL 2019.) `run_transfer(config)`

1. pre-trains a model with one shared encoder (hard sharing by default) on the `sources`;
2. for each data `fraction`, draws a seeded subset of the held-out `target` task's
   training split (stratified by class where the class counts allow it, at least one
   batch) and trains one single-task model per arm, each with the same budget
   (`target_steps`), optimiser and seed:
   - frozen: the pre-trained encoder, fixed (no gradient, eval mode), and a new head —
     a "linear probe" of what the encoder carries;
   - finetune: the pre-trained encoder as the starting point, every weight trained;
   - scratch: a freshly initialised encoder of the same size (the control);
3. scores every model on the target's held-out test split.

The result (a data-efficiency table: target metric per arm × number of labelled
examples) is a dict. Stored as a run like any other (`mtl-lab transfer`, `jobs.start`: the
worker trains it), its curves are kept under the phases "pretrain", "frozen@0.05",
"finetune@1", ... (`mtl_core.phases`).

One module per part: `config` (`TransferConfig`), `encoder` (the shared encoder and each
arm's copy of it), `subsets` (the few-label subsets of the target), `run` (`run_transfer`:
pre-train, then every arm at every size), `report` (the data-efficiency table).
"""

from mtl_core.phases import ARMS
from mtl_core.transfer.config import ARM_DESCRIPTIONS, Arm, TransferConfig
from mtl_core.transfer.encoder import build_target_model, frozen_copy, is_frozen, shared_encoder
from mtl_core.transfer.report import format_transfer, transfer_table, vs_scratch_frame
from mtl_core.transfer.run import pretrain, run_transfer, train_arm
from mtl_core.transfer.subsets import describe_merged, fraction_plan, labelled_rows, subset_size, target_subset

__all__ = [
    "ARMS",
    "ARM_DESCRIPTIONS",
    "Arm",
    "TransferConfig",
    "build_target_model",
    "describe_merged",
    "format_transfer",
    "fraction_plan",
    "frozen_copy",
    "is_frozen",
    "labelled_rows",
    "pretrain",
    "run_transfer",
    "shared_encoder",
    "subset_size",
    "target_subset",
    "train_arm",
    "transfer_table",
    "vs_scratch_frame",
]
