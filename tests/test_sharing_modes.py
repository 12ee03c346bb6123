"""The sharing architectures of issue 5: each trains everywhere, and each is what its paper says.

cross-stitch (Misra et al., 2016), MTAN (Liu et al., 2019), MMoE (Ma et al., 2018),
CGC / PLE (Tang et al., 2020), hierarchical supervision (Søgaard & Goldberg, 2016) and
the pairwise soft-sharing penalty (Duong et al., 2015).
"""

from __future__ import annotations

import math
from functools import lru_cache

import pytest
import torch

from mtl_core.config import ExperimentConfig, ModelSpec
from mtl_core.engine import train
from mtl_core.errors import ConfigError
from mtl_core.models import SHARING, MultiTaskModel, build_model
from mtl_core.models.heads import task_loss
from mtl_core.models.hierarchical import default_depths
from mtl_core.sink import RecordingSink
from mtl_core.tasks import MTLDataset, load_dataset

NEW_MODES = ["cross_stitch", "mtan", "mmoe", "cgc", "ple", "hierarchical"]
DATASETS = {
    "mmoe_synthetic": {"n_samples": 300, "input_dim": 8},
    "toy_language": {"n_samples": 200},
    "penguins": {},
    "digits": {"n_samples": 200},
}
SMALL = ModelSpec(hidden=[16, 16], embed_dim=8)


@lru_cache(maxsize=None)
def dataset(name: str, **extra) -> MTLDataset:
    return load_dataset(name, {**DATASETS[name], **extra}, seed=0)


def tiny_vectors(**extra) -> MTLDataset:
    return dataset("mmoe_synthetic", **extra)


def copy_parameters(src: list[torch.nn.Parameter], dst: list[torch.nn.Parameter]) -> None:
    assert [p.shape for p in src] == [p.shape for p in dst]
    with torch.no_grad():
        for s, d in zip(src, dst):
            d.copy_(s)


# ---- every mode trains on every built-in dataset ----------------------------------------------
@pytest.mark.parametrize("data_name", list(DATASETS))
@pytest.mark.parametrize(
    "sharing",
    [{"name": n} for n in SHARING.names()] + [{"name": "soft", "options": {"penalty": "pairwise"}}],
    ids=lambda s: s["name"] + ("-" + "-".join(map(str, s["options"].values())) if "options" in s else ""),
)
def test_every_mode_trains_on_every_builtin_dataset_with_finite_loss(sharing, data_name):
    config = ExperimentConfig.parse({
        "dataset": {"name": data_name, "options": DATASETS[data_name]}, "sharing": sharing,
        "model": {"hidden": [16, 16], "embed_dim": 8}, "steps": 5, "batch_size": 32, "eval_every": 5,
        "log_every": 5, "baselines": False,
    })
    sink = RecordingSink()
    result = train(config, dataset(data_name), sink)
    assert result.steps == 5 and sink.train
    for row in sink.train:
        assert all(math.isfinite(v) for v in row["losses"].values())
        assert math.isfinite(row["total"])
    for task, spec in dataset(data_name).tasks.items():
        assert math.isfinite(result.test[task]["loss"]), task
        assert spec.metric in result.test[task]


@pytest.mark.parametrize("text_encoder", ["gru", "cnn", "transformer"])
@pytest.mark.parametrize("sharing", NEW_MODES)
def test_every_new_mode_builds_on_every_text_encoder(sharing, text_encoder):
    data = dataset("toy_language")
    model = build_model(sharing, data, data.task_names, ModelSpec(hidden=[16, 16], embed_dim=8,
                                                                   text_encoder=text_encoder))
    x = data.train.x[:6]
    out = model(x)
    loss = sum(task_loss(data.tasks[t].kind, out[t], data.train.y[t][:6]) for t in data.task_names)
    loss.backward()
    assert torch.isfinite(loss)
    assert out["pos"].shape == (6, x.shape[1], data.tasks["pos"].num_classes)
    assert out["topic"].shape == (6, data.tasks["topic"].num_classes)


# ---- cross-stitch ------------------------------------------------------------------------------
@pytest.mark.parametrize("data_name,text_encoder", [("mmoe_synthetic", "gru"), ("toy_language", "cnn")])
def test_cross_stitch_at_identity_is_independent_networks_at_step_zero(data_name, text_encoder):
    # Misra et al.: α = I makes the stitched network exactly T separately trained ones.
    data = dataset(data_name)
    tasks = data.task_names[:2]
    spec = ModelSpec(hidden=[16, 16], embed_dim=8, text_encoder=text_encoder)
    single = build_model("single_task", data, tasks, spec)
    stitched = build_model("cross_stitch", data, tasks, spec, {"init_self": 1.0})
    for t in tasks:
        copy_parameters(list(single.encoders[t].parameters()), list(stitched.columns[t].parameters()))
        stitched.heads[t].load_state_dict(single.heads[t].state_dict())
    x = data.train.x[:20]
    a, b = single(x), stitched(x)
    for t in tasks:
        torch.testing.assert_close(a[t], b[t], rtol=0, atol=0)
    # ... and the first task's loss reaches no layer of the second task's column yet.
    loss = task_loss(data.tasks[tasks[0]].kind, b[tasks[0]], data.train.y[tasks[0]][:20])
    loss.backward()
    other = [p.grad for p in stitched.columns[tasks[1]].layers.parameters()]
    assert all(g is None or not g.any() for g in other)
    assert stitched.stitches[0].grad[0, 1] != 0, "the unit itself still learns to mix"


def test_cross_stitch_initialises_rows_that_sum_to_one():
    model = build_model("cross_stitch", tiny_vectors(n_tasks=3), ["y1", "y2", "y3"], SMALL, {"init_self": 0.8})
    for alpha in model.stitches:
        torch.testing.assert_close(alpha.diagonal(), torch.full((3,), 0.8))
        torch.testing.assert_close(alpha[0, 1], torch.tensor(0.1))
        torch.testing.assert_close(alpha.sum(1), torch.ones(3))
    assert len(model.stitch_matrices()) == 2


# ---- MMoE, CGC, PLE ----------------------------------------------------------------------------
@pytest.mark.parametrize("sharing,options", [("mmoe", {"n_experts": 3}), ("cgc", {}), ("ple", {"levels": 3})])
@pytest.mark.parametrize("data_name", ["mmoe_synthetic", "toy_language"])
def test_gate_weights_are_a_distribution_per_task(sharing, options, data_name):
    data = dataset(data_name)
    model = build_model(sharing, data, data.task_names, SMALL, options)
    model(data.train.x[:16])
    assert set(model.last_gates) == set(data.task_names)
    for t, g in model.last_gates.items():
        assert (g >= 0).all()
        torch.testing.assert_close(g.sum(), torch.tensor(1.0))
    weights = model.gate_weights()
    for t, by_expert in weights.items():
        assert math.isclose(sum(by_expert.values()), 1.0, rel_tol=1e-5)
        assert len(by_expert) == len(model.expert_names(t))
    if sharing == "mmoe":
        assert list(weights["y1" if data_name == "mmoe_synthetic" else "pos"]) == ["expert 1", "expert 2", "expert 3"]
    else:
        task = data.task_names[0]
        assert list(weights[task]) == [f"{task} 1", "shared 1", "shared 2"]


def test_mmoe_gates_are_per_task_and_follow_the_input():
    data = tiny_vectors()
    model = build_model("mmoe", data, ["y1", "y2"], SMALL)
    with torch.no_grad():
        model.gates["y1"].weight.zero_()  # uniform gate
        model.gates["y2"].weight.copy_(torch.randn_like(model.gates["y2"].weight) * 5)
    model(data.train.x[:64])
    torch.testing.assert_close(model.last_gates["y1"], torch.full((4,), 0.25))
    assert not torch.allclose(model.last_gates["y2"], torch.full((4,), 0.25), atol=1e-3)


# ---- MTAN --------------------------------------------------------------------------------------
@pytest.mark.parametrize("data_name,text_encoder", [("mmoe_synthetic", "gru"), ("toy_language", "cnn")])
def test_mtan_with_attention_fixed_at_one_equals_hard_sharing(data_name, text_encoder):
    data = dataset(data_name)
    spec = ModelSpec(hidden=[16, 16], embed_dim=8, text_encoder=text_encoder)
    hard = build_model("hard", data, data.task_names, spec)
    mtan = build_model("mtan", data, data.task_names, spec, {"fixed_attention": True})
    copy_parameters(list(hard.encoder.parameters()), list(mtan.backbone.parameters()))
    mtan.heads.load_state_dict(hard.heads.state_dict())
    assert sum(p.numel() for p in mtan.parameters()) == sum(p.numel() for p in hard.parameters())
    x = data.train.x[:20]
    a, b = hard(x), mtan(x)
    for t in data.task_names:
        torch.testing.assert_close(a[t], b[t], rtol=0, atol=0)


def test_mtan_attention_masks_select_features_between_zero_and_one():
    data = tiny_vectors()
    model = build_model("mtan", data, ["y1", "y2"], SMALL)
    s1 = model.backbone(data.train.x[:8])[0]
    mask = model.attention["y1"][0](s1)
    assert mask.shape == s1.shape and (mask > 0).all() and (mask < 1).all()


# ---- hierarchical ------------------------------------------------------------------------------
def test_hierarchical_heads_read_the_layers_they_were_assigned():
    data = tiny_vectors()
    model = build_model("hierarchical", data, ["y1", "y2"], SMALL, {"depths": {"y1": 1, "y2": 2}})
    x = data.train.x[:20]
    before = model(x)
    with torch.no_grad():
        model.stack.layers[1].net[0].weight.add_(1.0)  # perturb layer 2
    after = model(x)
    torch.testing.assert_close(after["y1"], before["y1"], rtol=0, atol=0)
    assert not torch.allclose(after["y2"], before["y2"])
    with torch.no_grad():
        model.stack.layers[0].net[0].weight.add_(1.0)  # perturb layer 1: both move
    again = model(x)
    assert not torch.allclose(again["y1"], after["y1"]) and not torch.allclose(again["y2"], after["y2"])


def test_hierarchical_default_puts_pos_low_ner_higher_and_sentence_tasks_on_top():
    data = dataset("toy_language")
    assert default_depths(data, data.task_names, 3) == {
        "pos": 1, "ner": 2, "topic": 3, "sentiment": 3, "question": 3}
    assert default_depths(data, data.task_names, 2) == {
        "pos": 1, "ner": 2, "topic": 2, "sentiment": 2, "question": 2}
    assert default_depths(data, ["topic", "sentiment"], 2) == {"topic": 2, "sentiment": 2}
    vectors = tiny_vectors(n_tasks=4)
    assert default_depths(vectors, vectors.task_names, 2) == {"y1": 1, "y2": 1, "y3": 2, "y4": 2}
    assert default_depths(vectors, ["y1", "y2"], 3) == {"y1": 2, "y2": 3}


def test_hierarchical_refuses_a_depth_outside_the_stack():
    with pytest.raises(ConfigError, match=r"sharing\.options\.depths.*'y2' has depth 3.*from 1 to 2"):
        build_model("hierarchical", tiny_vectors(), ["y1", "y2"], SMALL, {"depths": {"y2": 3}})
    with pytest.raises(ConfigError, match=r"sharing\.options\.depths.*'y9' is not a task"):
        build_model("hierarchical", tiny_vectors(), ["y1", "y2"], SMALL, {"depths": {"y9": 1}})
    # The same check, without data, for the config to run before any baseline trains.
    entry = SHARING.get("hierarchical")
    options = entry.parse_options({"depths": {"y1": 4}}, where="sharing")
    with pytest.raises(ConfigError, match=r"from 1 to 3"):
        entry.extra["check"](options, tasks=["y1", "y2"], model=ModelSpec(hidden=[8, 8, 8]))
    entry.extra["check"](options, tasks=["y1", "y2"], model=ModelSpec(hidden=[8, 8, 8, 8]))
    with pytest.raises(ConfigError, match=r"sharing\.options\.depths.*1-based"):
        ExperimentConfig.parse({"sharing": {"name": "hierarchical", "options": {"depths": {"y1": 0}}}})


@pytest.mark.parametrize("sharing", ["hierarchical", "cross_stitch"])
def test_modes_that_need_two_tasks_refuse_one(sharing):
    with pytest.raises(ConfigError, match=f"'{sharing}' needs at least 2 tasks"):
        ExperimentConfig.parse({"tasks": ["y1"], "sharing": {"name": sharing}})
    with pytest.raises(ConfigError, match="needs at least 2 tasks"):
        build_model(sharing, tiny_vectors(), ["y1"], SMALL)


def test_new_mode_options_are_validated_in_the_config():
    bad = [("mmoe", {"n_experts": 0}, "n_experts"), ("cross_stitch", {"init_self": 1.5}, "init_self"),
           ("ple", {"levels": 0}, "levels"), ("cgc", {"levels": 2}, "levels"),
           ("soft", {"penalty": "max"}, "penalty"), ("mtan", {"fixed_attention": "maybe"}, "fixed_attention")]
    for name, options, word in bad:
        with pytest.raises(ConfigError, match=rf"sharing\.options\.{word}"):
            ExperimentConfig.parse({"sharing": {"name": name, "options": options}})


# ---- what is shared: gradients reach exactly what the mode says ----------------------------------
def _grads_per_task(model: MultiTaskModel, data: MTLDataset, tasks: list[str]) -> dict[str, set[int]]:
    x = data.train.x[:64]
    reached = {}
    for t in tasks:
        model.zero_grad(set_to_none=True)
        out = model(x)
        task_loss(data.tasks[t].kind, out[t], data.train.y[t][:64]).backward()
        reached[t] = {id(p) for p in model.parameters() if p.grad is not None and p.grad.any()}
    return reached


@pytest.mark.parametrize("sharing", SHARING.names())
@pytest.mark.parametrize("data_name", ["mmoe_synthetic", "toy_language"])
def test_gradients_of_one_task_reach_exactly_what_the_mode_shares_with_it(sharing, data_name):
    data = tiny_vectors(n_tasks=3) if data_name == "mmoe_synthetic" else dataset("toy_language")
    tasks = data.task_names
    torch.manual_seed(0)
    model = build_model(sharing, data, tasks, SMALL)
    reached = _grads_per_task(model, data, tasks)
    shared = {id(p) for p in model.shared_parameters()}
    own = {t: {id(p) for p in model.task_parameters(t)} for t in tasks}
    names = {id(p): n for n, p in model.named_parameters()}
    for t in tasks:
        stray = reached[t] - shared - own[t]
        assert not stray, f"{t}'s loss reaches {[names[i] for i in stray]}, listed as neither shared nor {t}'s"
        missed = own[t] - reached[t]
        assert not missed, f"{t}'s own parameters {[names[i] for i in missed]} get no gradient from {t}"
    for pid in shared:
        n_tasks = sum(pid in reached[t] for t in tasks)
        assert n_tasks >= 2, f"shared parameter {names[pid]} gets gradient from {n_tasks} task(s)"


def test_ple_task_experts_below_the_last_level_are_shared_through_the_shared_gate():
    model = build_model("ple", tiny_vectors(), ["y1", "y2"], SMALL)
    shared = {id(p) for p in model.shared_parameters()}
    assert all(id(p) in shared for p in model.task_experts[0]["y1"].parameters())
    assert all(id(p) not in shared for p in model.task_experts[1]["y1"].parameters())
    assert all(id(p) not in shared for p in model.task_gates[0]["y1"].parameters())


# ---- parameter counts by hand --------------------------------------------------------------------
# input_dim 8, hidden [4, 3], two regression tasks with linear heads.
# An MLP 8 -> 4 -> 3 has 8·4+4 + 4·3+3 = 36 + 15 = 51 parameters; a head 3 -> 1 has 4.
HAND = ModelSpec(hidden=[4, 3])
HAND_COUNTS = {
    # two columns (102) + two 2×2 stitch units (8) shared; a head each
    ("cross_stitch", ()): {"total": 118, "shared": 110, "task:y1": 4, "task:y2": 4},
    # backbone 51 + f² Linear(4→3) 15 shared; per task: attention level 1 g,h Linear(4→4) 20+20,
    # level 2 g Linear(6→3) 21, h Linear(3→3) 12, head 4 = 77
    ("mtan", ()): {"total": 220, "shared": 66, "task:y1": 77, "task:y2": 77},
    ("mtan", (("fixed_attention", True),)): {"total": 59, "shared": 51, "task:y1": 4, "task:y2": 4},
    # four experts shared; per task a gate Linear(8→4, no bias) 32 and a head 4
    ("mmoe", ()): {"total": 276, "shared": 204, "task:y1": 36, "task:y2": 36},
    # two shared experts; per task one expert 51, a gate Linear(8→3) 24, a head 4
    ("cgc", ()): {"total": 260, "shared": 102, "task:y1": 79, "task:y2": 79},
    # level 1: 2 shared experts 102, the task experts 2·51 (shared via the shared gate),
    # shared gate Linear(8→4) 32; level 2 on width 3: experts 3→4→3 = 16+15 = 31, shared ones 62.
    # Per task: level-1 gate 24, level-2 expert 31, level-2 gate Linear(3→3) 9, head 4 = 68.
    ("ple", ()): {"total": 434, "shared": 298, "task:y1": 68, "task:y2": 68},
    # y1 reads layer 1 (head 4→1: 5), y2 layer 2: layer 1 shared (36), layer 2 only y2's (15)
    ("hierarchical", ()): {"total": 60, "shared": 36, "task:y1": 5, "task:y2": 19},
}


@pytest.mark.parametrize("case", list(HAND_COUNTS), ids=lambda c: c[0] + "".join(f"-{k}" for k, _ in c[1]))
def test_parameter_counts_match_a_hand_count(case):
    name, options = case
    model = build_model(name, tiny_vectors(), ["y1", "y2"], HAND, dict(options))
    assert model.parameter_counts() == HAND_COUNTS[case]
    assert sum(b["params"] for b in model.describe_blocks()) == HAND_COUNTS[case]["total"]


def test_every_new_mode_registers_its_paper_formula_and_diagram():
    for name in NEW_MODES:
        entry = SHARING.get(name).describe()
        assert entry["paper"] and entry["formula"] and entry["description"]
        assert entry["diagram"] in {"cross_stitch", "attention", "experts", "hierarchical"}
        assert entry["min_tasks"] in (1, 2)


# ---- soft sharing: the pairwise penalty ----------------------------------------------------------
def test_soft_pairwise_penalty_by_hand_on_tiny_tensors():
    # Three tasks, encoders Linear(3 → 1): θ = (w1, w2, w3, b).
    data = load_dataset("mmoe_synthetic", {"n_samples": 30, "input_dim": 3, "n_tasks": 3})
    thetas = {"y1": [1.0, 0.0, 0.0, 0.0], "y2": [0.0, 1.0, 0.0, 1.0], "y3": [0.0, 0.0, 0.0, 0.0]}
    # Σ_{i≠j}‖θ_i − θ_j‖² = 2·(‖θ1−θ2‖² + ‖θ1−θ3‖² + ‖θ2−θ3‖²) = 2·(3 + 1 + 2) = 12
    # Σ_t‖θ_t − θ̄‖², θ̄ = (1/3, 1/3, 0, 1/3): 6/9 + 9/9 + 3/9 = 2
    values = {}
    for penalty in ("pairwise", "mean"):
        model = build_model("soft", data, ["y1", "y2", "y3"], ModelSpec(hidden=[1]),
                            {"lam": 0.5, "penalty": penalty})
        with torch.no_grad():
            for t, theta in thetas.items():
                layer = model.encoders[t].net[0]
                layer.weight.copy_(torch.tensor([theta[:3]]))
                layer.bias.copy_(torch.tensor(theta[3:]))
        values[penalty] = float(model.regularizer().detach())
    assert values["pairwise"] == pytest.approx(0.5 * 12)
    assert values["mean"] == pytest.approx(0.5 * 2)
