"""Regression targets on a common scale (issue 12, item 4): a CSV target in raw units is
trained standardised with training-split statistics and scored in its own units."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mtl_core.config import ExperimentConfig
from mtl_core.engine import evaluate, train
from mtl_core.metrics import task_metrics
from mtl_core.sink import RecordingSink
from mtl_core.tasks import from_csv, load_dataset
from mtl_core.tasks.base import TaskSpec, fit_target_scale


def house_csv(tmp_path, n: int = 200):
    """Houses: area and rooms -> price (in the 100,000s, regression) and a cheap/dear class.
    `rid` is the row id, an input the test uses to find each row's raw price."""
    rng = np.random.default_rng(0)
    area = rng.uniform(40, 200, n)
    rooms = rng.integers(1, 6, n)
    price = 2_000 * area + 15_000 * rooms + rng.normal(0, 20_000, n) + 100_000
    dear = np.where(price > np.median(price), "dear", "cheap")
    lines = ["rid,area,rooms,price,dear"] + [
        f"{i},{area[i]:.2f},{rooms[i]},{price[i]:.2f},{dear[i]}" for i in range(n)
    ]
    path = tmp_path / "houses.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    written = np.array([float(f"{v:.2f}") for v in price])
    return path, written.astype(np.float32)  # the importer reads the target as float32


def config_for(path, *, standardise: bool) -> ExperimentConfig:
    return ExperimentConfig.parse({
        "dataset": {"name": "csv", "options": {"path": str(path), "targets": ["price", "dear"],
                                               "inputs": ["area", "rooms"], "standardise_targets": standardise}},
        "model": {"hidden": [16]}, "steps": 60, "batch_size": 32, "eval_every": 30, "seed": 0,
        "baselines": False,
    })


def raw_prices(ds, split, prices: np.ndarray) -> np.ndarray:
    """The file's price of each row of `split`, found by its target in original units."""
    spec = ds.tasks["price"]
    values = spec.to_original_units(split.y["price"]).numpy()
    index = np.array([int(np.argmin(np.abs(prices - v))) for v in values])
    np.testing.assert_allclose(prices[index], values, rtol=1e-6)
    return prices[index]


def test_a_price_target_trains_with_a_loss_of_order_one_and_is_scored_in_its_units(tmp_path):
    path, prices = house_csv(tmp_path)
    cfg = config_for(path, standardise=True)
    ds = load_dataset("csv", cfg.dataset.options, seed=0)
    mean, std = ds.tasks["price"].target_scale
    train_raw = raw_prices(ds, ds.train, prices)
    assert mean == pytest.approx(train_raw.astype(np.float64).mean(), rel=1e-9)
    assert std == pytest.approx(train_raw.astype(np.float64).std(), rel=1e-9)
    assert 200_000 < mean < 500_000 and std > 50_000
    assert abs(float(ds.train.y["price"].mean())) < 1e-5
    assert float(ds.train.y["price"].std()) == pytest.approx(1, abs=0.01)

    sink = RecordingSink()
    result = train(cfg, ds, sink, keep_model=True)
    first = sink.train[0]["losses"]
    assert first["price"] < 5.0 and first["dear"] < 5.0  # both of order 1: neither dominates

    # Test MSE in the column's units equals the MSE of the model's predictions mapped back by hand.
    metrics = evaluate(result.model, ds.test, ds)["price"]
    result.model.eval()
    with torch.no_grad():
        pred_std = result.model(ds.test.x)["price"].double().numpy()
    pred_raw = pred_std * std + mean
    test_raw = raw_prices(ds, ds.test, prices).astype(np.float64)
    mse = float(np.mean((pred_raw - test_raw) ** 2))
    assert metrics["mse"] == pytest.approx(mse, rel=1e-6)
    assert metrics["mae"] == pytest.approx(float(np.mean(np.abs(pred_raw - test_raw))), rel=1e-6)
    assert metrics["mse"] > 1e6  # in dollars², not in standard units
    # The loss stays in standard units: the original-unit MSE is std² times the loss.
    assert metrics["loss"] == pytest.approx(metrics["mse"] / std**2, rel=1e-4)


def test_raw_units_when_standardisation_is_turned_off(tmp_path):
    path, prices = house_csv(tmp_path)
    cfg = config_for(path, standardise=False)
    ds = load_dataset("csv", cfg.dataset.options, seed=0)
    assert ds.tasks["price"].target_scale is None and ds.info["target_scale"] == {}
    assert ds.info["standardise_targets"] is False
    assert float(ds.train.y["price"].mean()) > 100_000  # the file's numbers
    sink = RecordingSink()
    train(cfg, ds, sink)
    assert sink.train[0]["losses"]["price"] > 1e9  # the problem standardisation solves


def test_validation_and_test_rows_use_the_training_statistics(tmp_path):
    path, prices = house_csv(tmp_path)
    ds = from_csv(path, targets=["price", "dear"], inputs=["area", "rooms"])
    mean, std = ds.tasks["price"].target_scale
    for split in (ds.val, ds.test):
        expected = (raw_prices(ds, split, prices).astype(np.float64) - mean) / std
        np.testing.assert_allclose(split.y["price"].numpy(), expected, rtol=1e-5, atol=1e-6)
    held_out = np.concatenate([raw_prices(ds, s, prices) for s in (ds.val, ds.test)]).astype(np.float64)
    assert not math.isclose(held_out.mean(), mean, rel_tol=1e-3)  # the test can tell the two apart
    assert ds.info["target_scale"] == {"price": {"mean": mean, "std": std}}
    assert "trained standardised" in ds.tasks["price"].description
    assert ds.tasks["price"].as_dict()["target_scale"] == [mean, std]
    assert ds.tasks["dear"].target_scale is None  # classification is left alone


def test_missing_regression_labels_stay_nan_and_do_not_move_the_statistics(tmp_path):
    rows = [f"{i},{'' if i % 5 == 0 else 1000 * i}" for i in range(40)]
    path = tmp_path / "gaps.csv"
    path.write_text("x,y\n" + "\n".join(rows) + "\n")
    ds = from_csv(path, targets={"y": "regression"})
    mean, std = ds.tasks["y"].target_scale
    assert math.isfinite(mean) and math.isfinite(std)
    all_y = torch.cat([ds.train.y["y"], ds.val.y["y"], ds.test.y["y"]])
    assert int(torch.isnan(all_y).sum()) == 8


def test_a_constant_target_is_centred_only_with_a_warning(tmp_path):
    path = tmp_path / "flat.csv"
    path.write_text("x,y,label\n" + "\n".join(f"{i},7.5,{'ab'[i % 2]}" for i in range(30)) + "\n")
    ds = from_csv(path, targets={"y": "regression", "label": "classification"})
    assert ds.tasks["y"].target_scale == (7.5, 1.0)
    assert torch.equal(ds.train.y["y"], torch.zeros(len(ds.train)))
    assert any("'y' has the same value (7.5) on every labelled training row" in w and "centred only" in w
               for w in ds.info["warnings"])
    assert fit_target_scale(np.array([3.0, np.nan])) == (3.0, 1.0, True)  # one labelled row: no spread


def test_task_metrics_map_back_mse_by_std_squared_and_keep_r2():
    raw = TaskSpec("p", "regression")
    scaled = TaskSpec("p", "regression", target_scale=(250_000.0, 80_000.0))
    y, p = torch.tensor([0.5, -1.0, 2.0, 0.0]), torch.tensor([0.4, -0.7, 1.5, 0.2])
    a, b = task_metrics(raw, p, y), task_metrics(scaled, p, y)
    assert b["mse"] == pytest.approx(a["mse"] * 80_000.0**2, rel=1e-6)
    assert b["mae"] == pytest.approx(a["mae"] * 80_000.0, rel=1e-6)
    assert b["r2"] == pytest.approx(a["r2"], rel=1e-6)


def test_built_in_regression_targets_state_their_scale():
    penguins = load_dataset("penguins", seed=0)
    assert "kilograms" in penguins.tasks["body_mass"].description and "not standardised" in penguins.tasks[
        "body_mass"].description
    synth = load_dataset("mmoe_synthetic", {"n_samples": 300}, seed=0)
    for spec in synth.tasks.values():
        assert spec.target_scale is None and "not standardised" in spec.description
    std = float(synth.train.y["y1"].std())
    assert f"{std:.2g}" in synth.tasks["y1"].description
