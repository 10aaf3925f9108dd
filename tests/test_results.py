"""Reading trials back from NNI's REST payloads and writing the results directory."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from nni_hwnas.data.datasets import load_dataset
from nni_hwnas.experiment.nni_rest import assemble_trials, decode_metric
from nni_hwnas.reporting.results import pareto_rows, trial_rows, write_results
from nni_hwnas.evaluation.training import TrainSettings, TrainingDiverged, train_model
from search_spaces.layers import build_network, LayerSpec


def _param(pid: int, depth: int) -> str:
    return json.dumps({"parameter_id": pid, "parameters": {"sample": {"depth": depth}}})


def _final(trial: str, pid: int, metrics: dict) -> dict:
    return {"trialJobId": trial, "parameterId": str(pid), "type": "FINAL", "sequence": 0, "timestamp": 10,
            "data": json.dumps(json.dumps(metrics))}


def test_decode_metric_undoes_double_encoding():
    assert decode_metric(json.dumps(json.dumps({"default": 0.5}))) == {"default": 0.5}
    assert decode_metric('"0.25"') == 0.25


def test_trials_join_parameters_through_the_final_metric_not_the_listing():
    # NNI listed parameter 1 under trial A and 0 under trial B, but A reported for parameter 0.
    jobs = [
        {"trialJobId": "A", "status": "SUCCEEDED", "hyperParameters": [_param(1, 2)], "startTime": 0, "endTime": 5000},
        {"trialJobId": "B", "status": "SUCCEEDED", "hyperParameters": [_param(0, 1)], "startTime": 0, "endTime": 4000},
        {"trialJobId": "C", "status": "FAILED", "hyperParameters": [_param(2, 3)], "startTime": 1, "endTime": 2000},
    ]
    metrics = [_final("A", 0, {"default": 0.9, "accuracy": 0.9, "latency_ms": 1.0}),
               _final("B", 1, {"default": 0.8, "accuracy": 0.8, "latency_ms": 2.0})]
    views = {v.trial_id: v for v in assemble_trials(jobs, metrics)}
    assert views["A"].sample == {"depth": 1} and views["A"].parameter_id == 0
    assert views["B"].sample == {"depth": 2}
    assert views["C"].sample == {"depth": 3} and views["C"].metrics == {}
    assert views["A"].duration_s == 5.0


def test_pareto_excludes_failed_and_over_budget_rows():
    rows = [
        {"status": "SUCCEEDED", "accuracy": 0.9, "latency_ms": 2.0, "within_budget": 1},
        {"status": "SUCCEEDED", "accuracy": 0.8, "latency_ms": 1.0, "within_budget": 1},
        {"status": "SUCCEEDED", "accuracy": 0.7, "latency_ms": 1.5, "within_budget": 1},  # dominated
        {"status": "SUCCEEDED", "accuracy": 0.99, "latency_ms": 0.5, "within_budget": 0},  # over budget
        {"status": "FAILED"},
    ]
    front = pareto_rows(rows)
    assert [(r["accuracy"], r["latency_ms"]) for r in front] == [(0.8, 1.0), (0.9, 2.0)]


def test_write_results_files(tmp_path):
    jobs = [{"trialJobId": "A", "status": "SUCCEEDED", "hyperParameters": [_param(0, 1)], "startTime": 0, "endTime": 1}]
    rows = trial_rows(assemble_trials(jobs, [_final("A", 0, {"default": 0.5, "accuracy": 0.5, "latency_ms": 0.1})]))
    paths = write_results(tmp_path, rows, {"seed": 3})
    assert {p.name for p in tmp_path.iterdir()} == {"trials.csv", "trials.json", "pareto.json", "pareto.png", "run.json",
                                             "hypervolume.csv", "hypervolume.json", "hypervolume.png"}
    with paths["trials.csv"].open() as handle:
        table = list(csv.DictReader(handle))
    assert table[0]["arch.depth"] == "1" and table[0]["accuracy"] == "0.5"
    assert json.loads(paths["pareto.json"].read_text())["front"][0]["trial_id"] == "A"
    assert paths["pareto.png"].read_bytes()[:4] == b"\x89PNG"


def test_training_raises_on_divergence():
    data = load_dataset("digits")
    torch.manual_seed(0)
    net = build_network([LayerSpec("linear", 64, 10, relu=False, flatten=True)])
    with pytest.raises(TrainingDiverged):
        train_model(net, data, TrainSettings(epochs=1, learning_rate=1e30, momentum=0.0), seed=0)


def test_training_learns_digits():
    data = load_dataset("digits")
    torch.manual_seed(0)
    net = build_network([LayerSpec("conv", 1, 16, in_hw=8, kernel=3, pool=True),
                         LayerSpec("linear", 16 * 16, 10, relu=False, flatten=True)])
    result = train_model(net, data, TrainSettings(epochs=3), seed=0)
    assert result.val_accuracy[-1] > 0.85
    assert len(result.val_accuracy) == 3


def test_hypervolume_curve_hand_example():
    from nni_hwnas.reporting.hypervolume_trace import HvReference, hypervolume_curve

    rows = [{"accuracy": 0.5, "latency_ms": 0.5}, {"status": "FAILED"},
            {"accuracy": 1.0, "latency_ms": 1.0},  # on the reference's cost: adds nothing
            {"accuracy": 0.9, "latency_ms": 0.1, "within_budget": 1},
            {"accuracy": 0.99, "latency_ms": 0.05, "within_budget": 0}]  # over budget: ignored
    curve = hypervolume_curve(rows, HvReference(cost_worst=1.0))
    assert curve.tolist() == pytest.approx([0.25, 0.25, 0.25, 0.81, 0.81])


def test_mnas_reward_rewards_speed_softly():
    from nni_hwnas.evaluation.reward import default_value, mnas_reward

    assert mnas_reward(0.9, 1.0, 1.0) == pytest.approx(0.9)
    assert mnas_reward(0.9, 0.5, 1.0) == pytest.approx(0.9 * 2 ** 0.07)
    assert mnas_reward(0.9, 2.0, 1.0) < 0.9
    assert default_value({"accuracy": 0.8, "latency_ms": 9.0}, "accuracy", None, -0.07) == 0.8
    with pytest.raises(ValueError, match="reward_target_ms"):
        default_value({"accuracy": 0.8, "latency_ms": 1.0}, "mnas_reward", None, -0.07)
