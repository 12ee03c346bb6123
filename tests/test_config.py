"""ExperimentConfig: every bad value is refused with the field and the fix; round trips hold."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from mtl_core.config import ExperimentConfig, apply_overrides
from mtl_core.errors import ConfigError
from mtl_core.tasks.mmoe_synthetic import MMoESyntheticOptions

SMALL = {"name": "mmoe_synthetic", "options": {"n_samples": 400, "input_dim": 8}}

# (case id, config dict, the field the message must name, a regex for the fix it must give)
BAD = [
    ("unknown_dataset", {"dataset": {"name": "imagenet"}}, "dataset.name",
     r"choose one of: .*mmoe_synthetic"),
    ("unknown_task", {"dataset": SMALL, "tasks": ["y1", "y9"]}, "tasks", r"choose from: y1, y2"),
    ("unknown_sharing", {"sharing": {"name": "telepathy"}}, "sharing.name",
     r"choose one of: .*hard"),
    ("unknown_weighting", {"weighting": {"name": "vibes"}}, "weighting.name",
     r"choose one of: .*manual"),
    ("negative_weight", {"weights": {"y1": -0.5}}, "weights", r"≥ 0"),
    ("nan_weight", {"weights": {"y1": float("nan")}}, "weights", r"finite number"),
    ("inf_weight", {"weights": {"y2": float("inf")}}, "weights", r"finite number"),
    ("minus_inf_weight", {"weights": {"y2": float("-inf")}}, "weights", r"finite number"),
    ("all_weights_zero", {"weights": {"y1": 0.0, "y2": 0}}, "weights",
     r"give at least one task a weight > 0"),
    ("batch_size_zero", {"batch_size": 0}, "batch_size", r"greater than or equal to 1"),
    ("batch_size_negative", {"batch_size": -8}, "batch_size", r"greater than or equal to 1"),
    ("task_listed_twice", {"tasks": ["y1", "y2", "y1"]}, "tasks", r"list each task once"),
    ("weight_for_absent_task", {"tasks": ["y1"], "weights": {"y2": 2.0}}, "weights",
     r"remove its weight or add the task"),
    ("steps_and_epochs", {"steps": 100, "epochs": 2}, "epochs", r"give one budget, not both"),
    ("lr_nan", {"optimizer": {"lr": float("nan")}}, "optimizer.lr", r"finite number"),
    ("lr_zero", {"optimizer": {"lr": 0.0}}, "optimizer.lr", r"greater than 0"),
    ("lr_negative", {"optimizer": {"lr": -1e-3}}, "optimizer.lr", r"greater than 0"),
    ("unknown_top_level_field", {"stepz": 100}, "stepz", r"check its spelling"),
    ("unknown_dataset_option", {"dataset": {"name": "mmoe_synthetic", "options": {"corelation": 0.5}}},
     "dataset.options.corelation", r"check its spelling"),
    ("dataset_option_out_of_range", {"dataset": {"name": "mmoe_synthetic", "options": {"correlation": 1.5}}},
     "dataset.options.correlation", r"less than or equal to 1"),
    ("threads_zero", {"threads": 0}, "threads", r"0 is out of range; give auto .*torch .*from 1 to 1024"),
    ("threads_negative", {"threads": -2}, "threads", r"-2 is out of range; give auto"),
    ("threads_too_many", {"threads": 5000}, "threads", r"5000 is out of range; .*from 1 to 1024"),
    ("threads_fraction", {"threads": 2.5}, "threads", r"2\.5 is not a thread count; give auto"),
    ("threads_word", {"threads": "four"}, "threads", r"'four' is not a thread count; .*e\.g\. threads: 1"),
    ("threads_bool", {"threads": True}, "threads", r"True is not a thread count"),
    ("threads_null", {"threads": None}, "threads", r"None is not a thread count"),
]


@pytest.mark.parametrize(("data", "field", "fix"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_value_gives_config_error_naming_field_and_fix(data, field, fix):
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.parse(data)
    message = str(info.value)
    assert field in message, f"message does not name {field!r}: {message}"
    assert re.search(fix, message), f"message gives no fix ({fix!r}): {message}"


def test_config_error_is_a_value_error_and_not_a_pydantic_error():
    # Callers (CLI, dashboard) catch ConfigError / ValueError, never pydantic's own class.
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.parse({"batch_size": 0, "optimizer": {"lr": -1}})
    assert isinstance(info.value, ValueError)
    assert info.value.__cause__ is None
    # Both problems are reported at once, one line each.
    lines = str(info.value).splitlines()
    assert any(line.startswith("batch_size:") for line in lines)
    assert any(line.startswith("optimizer.lr:") for line in lines)


def test_defaults_give_a_valid_config_with_a_step_budget():
    config = ExperimentConfig.parse({})
    assert config.dataset.name == "mmoe_synthetic"
    assert config.sharing.name == "hard" and config.weighting.name == "manual"
    assert config.steps == 600 and config.epochs is None
    assert config.task_list() == ["y1", "y2"]
    assert config.task_weights() == {"y1": 1.0, "y2": 1.0}


def test_epochs_alone_is_a_valid_budget():
    config = ExperimentConfig.parse({"epochs": 3})
    assert config.epochs == 3 and config.steps is None


def test_missing_weights_default_to_one_and_a_zero_weight_is_allowed():
    config = ExperimentConfig.parse({"weights": {"y1": 0.0}})
    assert config.task_weights() == {"y1": 0.0, "y2": 1.0}


def test_yaml_round_trip_gives_an_equal_config():
    config = ExperimentConfig.parse({
        "name": "round trip",
        "dataset": {"name": "mmoe_synthetic", "options": {"correlation": -0.5, "n_samples": 400}},
        "tasks": ["y2", "y1"],
        "sharing": {"name": "soft", "options": {"lam": 0.25}},
        "weights": {"y1": 2.0, "y2": 0.5},
        "sampling": {"mode": "random", "proportional": True},
        "model": {"hidden": [16, 8], "head_hidden": 4},
        "optimizer": {"name": "sgd", "lr": 0.01},
        "epochs": 2.5,
        "seed": 7,
    })
    again = ExperimentConfig.from_yaml(config.to_yaml())
    assert again == config
    assert again.to_dict() == config.to_dict()


def test_json_round_trip_gives_an_equal_config():
    config = ExperimentConfig.parse({"dataset": SMALL, "weights": {"y2": 3.0}, "steps": 42})
    again = ExperimentConfig.parse(json.loads(json.dumps(config.to_dict(), allow_nan=False)))
    assert again == config


def test_dumped_config_has_the_dataset_defaults_filled_in():
    config = ExperimentConfig.parse({"dataset": {"name": "mmoe_synthetic", "options": {"n_samples": 400}}})
    options = config.to_dict()["dataset"]["options"]
    defaults = MMoESyntheticOptions().model_dump(mode="json")
    assert options == {**defaults, "n_samples": 400}
    assert yaml.safe_load(config.to_yaml())["dataset"]["options"]["correlation"] == defaults["correlation"]
    # Sharing and weighting options are resolved too (soft's λ appears with its default).
    soft = ExperimentConfig.parse({"sharing": {"name": "soft"}})
    assert "lam" in soft.to_dict()["sharing"]["options"]


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_from_file_reads_yaml_and_applies_overrides(tmp_path):
    path = _write(tmp_path, {"dataset": SMALL, "sharing": {"name": "hard"}, "weights": {"y1": 1.0}})
    config = ExperimentConfig.from_file(
        path, overrides=["sharing=soft", "weights.y1=2.0", "dataset.options.correlation=-0.5", "steps=30"]
    )
    assert config.sharing.name == "soft"
    assert config.weights == {"y1": 2.0}
    assert config.dataset.options["correlation"] == -0.5
    assert config.dataset.options["n_samples"] == 400  # the rest of the section is kept
    assert config.steps == 30


def test_from_file_reads_json(tmp_path):
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps({"dataset": SMALL, "steps": 12}), encoding="utf-8")
    assert ExperimentConfig.from_file(path).steps == 12


def test_shorthand_override_sets_the_name_and_keeps_nothing_else_changed():
    data = {"sharing": {"name": "hard"}, "optimizer": {"name": "adam", "lr": 0.01}}
    out = apply_overrides(data, ["sharing=soft", "optimizer=sgd", "weighting=equal", "dataset=penguins"])
    assert out["sharing"] == {"name": "soft"}
    assert out["optimizer"] == {"name": "sgd", "lr": 0.01}
    assert out["weighting"] == {"name": "equal"}
    assert out["dataset"] == {"name": "penguins"}
    assert data == {"sharing": {"name": "hard"}, "optimizer": {"name": "adam", "lr": 0.01}}  # not mutated


def test_override_values_are_parsed_as_yaml():
    out = apply_overrides({}, ["weights.y1=2.0", "model.hidden=[8, 4]", "baselines=false", "name=my run"])
    assert out == {"weights": {"y1": 2.0}, "model": {"hidden": [8, 4]}, "baselines": False, "name": "my run"}


@pytest.mark.parametrize("bad", ["sharing", "weights.y1", "=soft", "weights..y1=2"])
def test_malformed_override_gives_config_error_with_an_example(bad):
    with pytest.raises(ConfigError) as info:
        apply_overrides({}, [bad])
    assert repr(bad) in str(info.value)
    if "=" not in bad:
        assert "key=value" in str(info.value)


def test_override_into_a_scalar_field_is_refused():
    with pytest.raises(ConfigError, match="'steps' is not a section"):
        apply_overrides({"steps": 10}, ["steps.extra=1"])


def test_from_file_with_a_bad_override_value_names_the_field(tmp_path):
    path = _write(tmp_path, {"dataset": SMALL})
    with pytest.raises(ConfigError, match=r"dataset\.options\.correlation"):
        ExperimentConfig.from_file(path, overrides=["dataset.options.correlation=-3"])


def test_from_file_missing_or_not_a_mapping_gives_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        ExperimentConfig.from_file(tmp_path / "nope.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        ExperimentConfig.from_file(listing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("steps: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        ExperimentConfig.from_file(broken)


def test_quickstart_example_is_a_valid_config():
    path = Path(__file__).resolve().parents[1] / "examples" / "quickstart.yaml"
    config = ExperimentConfig.from_file(path)
    assert config.task_list() == ["y1", "y2"]
    assert config.dataset.options["correlation"] == 0.9


def test_a_dotted_weight_key_says_task_names_have_no_dot():
    with pytest.raises(ConfigError, match=r"weights\.<task> takes one task name.*no '\.'"):
        apply_overrides({}, ["weights.price.usd=2"])
    assert apply_overrides({}, ["weights.price usd=2"]) == {"weights": {"price usd": 2}}


# ---- threads (mtl_core.threads) ---------------------------------------------------------------
def test_threads_default_to_auto_and_take_a_count_or_torch():
    assert ExperimentConfig.parse({}).threads == "auto"
    assert ExperimentConfig.parse({"threads": 3}).threads == 3
    assert ExperimentConfig.parse({"threads": "torch"}).threads == "torch"
    # From a URL or a YAML string: " Auto " and "2" mean auto and 2.
    assert ExperimentConfig.parse({"threads": " Auto "}).threads == "auto"
    assert ExperimentConfig.parse({"threads": "2"}).threads == 2


def test_a_bad_thread_count_is_one_line_not_one_per_union_member():
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.parse({"threads": 0})
    assert str(info.value).count("\n") == 0, str(info.value)
    assert str(info.value).startswith("threads: 0 is out of range")


@pytest.mark.parametrize("threads", [1, 8, "auto", "torch"])
def test_threads_round_trip_through_yaml_and_overrides(threads):
    config = ExperimentConfig.parse({"dataset": SMALL, "threads": threads})
    assert ExperimentConfig.from_yaml(config.to_yaml()).threads == threads
    assert ExperimentConfig.parse(apply_overrides({"dataset": SMALL}, [f"threads={threads}"])).threads == threads


# ---- amp and compile (mixed precision, torch.compile) ------------------------------------------
def test_amp_defaults_to_auto_and_compile_to_off():
    config = ExperimentConfig.parse({})
    assert config.amp == "auto" and config.compile is False


@pytest.mark.parametrize(("amp", "compile_"), [("auto", False), ("off", True), ("bf16", False), ("fp16", True)])
def test_amp_and_compile_round_trip_through_yaml_json_and_overrides(amp, compile_):
    config = ExperimentConfig.parse({"dataset": SMALL, "amp": amp, "compile": compile_})
    for again in (ExperimentConfig.from_yaml(config.to_yaml()), ExperimentConfig.parse(json.loads(json.dumps(config.to_dict())))):
        assert (again.amp, again.compile) == (amp, compile_)
    overridden = ExperimentConfig.parse(apply_overrides({"dataset": SMALL}, [f"amp={amp}", f"compile={compile_}"]))
    assert (overridden.amp, overridden.compile) == (amp, compile_)


@pytest.mark.parametrize(("data", "fix"), [
    ({"amp": "fp32"}, r"amp: .*'auto', 'off', 'bf16' or 'fp16'"),
    ({"amp": "fp16", "device": "cpu"}, r"amp: 'fp16' needs a CUDA GPU .*amp: bf16"),
    ({"compile": "sometimes"}, r"compile: "),
    ({"compile": True, "weighting": {"name": "graddrop"}}, r"compile: weighting 'graddrop' in mode 'rep'.*'params'"),
], ids=["unknown_amp", "fp16_on_cpu", "compile_not_a_bool", "compile_with_rep_mode"])
def test_bad_amp_or_compile_is_refused_naming_the_field_and_fix(data, fix):
    with pytest.raises(ConfigError, match=fix):
        ExperimentConfig.parse({"dataset": SMALL, **data})


def test_an_unquoted_yaml_off_means_amp_off_and_on_is_refused():
    assert ExperimentConfig.from_yaml("amp: off").amp == "off"  # YAML 1.1 reads `off` as false
    assert ExperimentConfig.parse({"amp": " BF16 "}).amp == "bf16"
    with pytest.raises(ConfigError, match=r"amp: true is not a precision; give auto, off, bf16 or fp16"):
        ExperimentConfig.from_yaml("amp: on")


# ---- manual weights a strategy would ignore (issue 13, item 8) -------------------------------------
@pytest.mark.parametrize("weighting", ["equal", "uncertainty", "dwa", "gls", "rlw", "famo", "stch",
                                       "gradnorm", "db_mtl", "mgda", "nash_mtl"])
def test_weights_a_strategy_ignores_are_refused_naming_it_and_the_fix(weighting):
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.parse({"dataset": SMALL, "weighting": {"name": weighting}, "weights": {"y2": 2.0}})
    message = str(info.value)
    assert message.startswith(f"weights: weighting {weighting!r} sets every task weight itself"), message
    assert "y2=2" in message and "Remove them (or set them to 1)" in message
    # The way out names the strategies that do read the weights, by how far they reach.
    assert re.search(r"uses them: manual, aligned_mtl, upgrad \(or, for the task heads only: "
                     r"imtl, pcgrad, gradvac, graddrop, cagrad\)", message), message


@pytest.mark.parametrize("weighting", ["manual", "aligned_mtl", "upgrad", "imtl", "cagrad", "pcgrad",
                                       "gradvac", "graddrop"])
def test_strategies_that_read_the_weights_accept_them(weighting):
    config = ExperimentConfig.parse({"dataset": SMALL, "weighting": {"name": weighting}, "weights": {"y2": 2.0}})
    assert config.task_weights() == {"y1": 1.0, "y2": 2.0}


def test_unit_weights_are_no_choice_and_pass_with_any_strategy():
    # The quickstart writes `weights: {y1: 1.0, y2: 1.0}`: switching it to uncertainty must work.
    path = Path(__file__).resolve().parents[1] / "examples" / "quickstart.yaml"
    config = ExperimentConfig.from_file(path, overrides=["weighting=uncertainty"])
    assert config.weighting.name == "uncertainty" and config.task_weights() == {"y1": 1.0, "y2": 1.0}
