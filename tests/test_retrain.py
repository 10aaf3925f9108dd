"""Taking the model home: pick from a results directory, retrain, export, and check the exports."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch

from nni_hwnas.experiment.config import parse_config
from nni_hwnas.errors import UserError
from nni_hwnas.evaluation.retrain import pick_trial, read_results, retrain

SPACE_CHOICES = {"depth": [1, 2], "filters": [8, 16], "kernel": [3], "batch_norm": [False, True], "dropout": [0.0]}


def make_results(directory, dataset=None):
    """A results directory as `nni-hwnas search` writes it (two trials on the front, one failed)."""
    config = parse_config({"seed": 3, "dataset": dataset or {"name": "digits"}, "space": {"name": "conv_net"}}).to_dict()
    run = {"seed": 3, "config": config, "space": "conv_net", "space_choices": SPACE_CHOICES,
           "input_shape": [1, 8, 8], "num_classes": 10}
    fast = {"trial_id": "fast", "status": "SUCCEEDED", "arch.depth": 1, "arch.conv0_filters": 8,
            "arch.conv0_bn": False, "accuracy": 0.90, "latency_ms": 0.02, "params": 1000}
    slow = {"trial_id": "slow", "status": "SUCCEEDED", "arch.depth": 2, "arch.conv0_filters": 16,
            "arch.conv0_bn": True, "arch.conv1_filters": 16, "arch.conv1_bn": False, "accuracy": 0.95,
            "latency_ms": 0.08, "params": 5000}
    failed = {"trial_id": "bad", "status": "FAILED", "arch.depth": 2}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "run.json").write_text(json.dumps(run))
    (directory / "trials.json").write_text(json.dumps([fast, slow, failed]))
    (directory / "pareto.json").write_text(json.dumps({"front": [fast, slow]}))
    return directory


def test_pick_by_id_best_and_budget(tmp_path):
    run = read_results(make_results(tmp_path / "r"))
    assert pick_trial(run, "fast")["trial_id"] == "fast"
    assert pick_trial(run, "best")["trial_id"] == "slow"
    assert pick_trial(run, "latency_ms<=0.05")["trial_id"] == "fast"
    with pytest.raises(UserError, match="smallest is 0.02"):
        pick_trial(run, "latency_ms<=0.001")
    with pytest.raises(UserError, match="did not succeed"):
        pick_trial(run, "bad")
    with pytest.raises(UserError, match="trial ids: bad, fast, slow"):
        pick_trial(run, "nothing")


def test_not_a_results_directory(tmp_path):
    with pytest.raises(UserError, match="missing run.json"):
        read_results(tmp_path)


def test_retrain_exports_files_that_match_pytorch(tmp_path):
    results = make_results(tmp_path / "r")
    summary = retrain(results, "slow", epochs=2, echo=lambda s: None)
    out = results / "retrain-slow"
    assert summary["test_accuracy"] > 0.5
    assert summary["latency_measured_ms"] > 0
    assert summary["torchscript_max_abs_diff"] < 1e-5 and summary["onnx_max_abs_diff"] < 1e-4

    # The files load on their own and reproduce the saved weights' outputs.
    from search_spaces import make_definition
    from search_spaces.layers import build_network

    definition = make_definition("conv_net", SPACE_CHOICES, (1, 8, 8), 10)
    network = build_network(definition.describe(summary["sample"]))
    network.load_state_dict(torch.load(out / "model_state.pt"))
    network.eval()
    x = torch.randn(4, 1, 8, 8)
    with torch.inference_mode():
        expected = network(x).numpy()
        scripted = torch.jit.load(str(out / "model.torchscript.pt"))(x).numpy()
    onnx_out = onnxruntime.InferenceSession(str(out / "model.onnx")).run(None, {"images": x.numpy()})[0]
    np.testing.assert_allclose(scripted, expected, atol=1e-5)
    np.testing.assert_allclose(onnx_out, expected, atol=1e-4)
    record = json.loads((out / "retrain.json").read_text())
    assert record["seed"] == 3 and record["trial_id"] == "slow"


def test_retrain_on_real_medmnist_reports_auc_from_medmnist(tmp_path):
    from conftest import SHARED_DATA

    if not (SHARED_DATA / "breastmnist.npz").exists():
        pytest.skip(f"real MedMNIST files not found in {SHARED_DATA}")
    results = make_results(tmp_path / "r", {"name": "breastmnist", "data_root": str(SHARED_DATA)})
    run = json.loads((results / "run.json").read_text())
    run.update(input_shape=[1, 28, 28], num_classes=2)
    (results / "run.json").write_text(json.dumps(run))
    summary = retrain(results, "fast", epochs=1, echo=lambda s: None)
    assert 0.0 <= summary["test_auc"] <= 1.0
    assert summary["test_acc_medmnist"] == pytest.approx(summary["test_accuracy"], abs=1e-6)
