"""The nnictl route: export-space matches the NAS route, and our tuner runs under `nnictl create`."""

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
from nni_hwnas.evaluation.hpo_trial import check_parameters
from nni_hwnas.experiment.space_export import nni_search_space
from search_spaces import load_preset, make_definition, make_model_space
from search_spaces.registry import definition_from_labels

BIN = Path(sys.executable).parent
SHIPPED = {"digits": ("quickstart", (1, 8, 8), 10), "octmnist": ("octmnist", (1, 28, 28), 4),
           "cifar10": ("cifar10", (3, 32, 32), 10), "staged_net_digits": ("staged_net_digits", (1, 8, 8), 10)}


def shipped_space(config: str):
    from nni_hwnas.experiment.config import load_config
    from nni_hwnas.experiment.trial_args import resolve_space

    return resolve_space(load_config(REPO / "experiments" / f"{config}.yaml"))


@pytest.mark.parametrize("dataset", list(SHIPPED))
def test_shipped_search_space_files_are_current(dataset):
    config, shape, classes = SHIPPED[dataset]
    space, choices = shipped_space(config)
    exported = nni_search_space(make_definition(space, choices, shape, classes))
    shipped = json.loads((REPO / "experiments" / "nnictl" / f"{dataset}_space.json").read_text())
    assert shipped == json.loads(json.dumps(exported))


@pytest.mark.parametrize("preset", ["conv_net", "medmnist_cnn_wide"])
def test_export_space_parameters_freeze_to_the_nas_routes_models(preset):
    space_name, choices = load_preset(preset)
    definition = make_definition(space_name, choices, (1, 28, 28), 4)
    model_space = make_model_space(space_name, choices, (1, 28, 28), 4)
    search_space = json.loads(json.dumps(nni_search_space(definition)))  # as nnictl hands it over
    assert set(search_space) == set(model_space.simplify())
    rng = np.random.default_rng(0)
    for _ in range(10):
        params = {label: spec["_value"][rng.integers(len(spec["_value"]))] for label, spec in search_space.items()}
        hpo_specs = definition.describe(check_parameters(definition, params))
        nas_model = model_space.freeze(params)
        assert hpo_specs == nas_model.layer_specs
        assert sum(p.numel() for p in nas_model.parameters()) == sum(
            p.numel() for p in __import__("search_spaces.layers", fromlist=["x"]).build_network(hpo_specs).parameters())


def test_parameters_of_another_space_are_rejected():
    definition = make_definition("medmnist_cnn", None, (1, 28, 28), 4)
    with pytest.raises(UserError, match="not choices of space 'medmnist_cnn'"):
        check_parameters(definition, {"depth": 1, "conv0_kernel": 3})
    with pytest.raises(UserError, match="not a choice of space 'conv_net'"):
        definition_from_labels("conv_net", {"hidden": [16, 32]})



def nnictl_runner(tmp_path: Path):
    """(env, run): a private HOME / NNI_CONFIG_DIR, this venv first on PATH (the trials' python3),
    and ``run(*cmd)`` executing a command in that environment."""
    home = tmp_path / "home"
    (home / "nni-config").mkdir(parents=True)
    env = {**os.environ, "HOME": str(home), "NNI_CONFIG_DIR": str(home / "nni-config"),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return env, lambda *cmd: subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


def final_metrics(port: int) -> list[tuple[int, dict]]:
    """(parameter id, metric dict) of every FINAL metric NNI holds."""
    return [(int(m["parameterId"]), decode(m["data"])) for m in rest(port, "/metric-data") if m["type"] == "FINAL"]


def test_tuner_round_trip_through_nnictl(tmp_path):
    env, run = nnictl_runner(tmp_path)
    assert run(str(BIN / "nni-hwnas"), "register").returncode == 0
    assert "HwEvolution" in run(str(BIN / "nnictl"), "algo", "list").stdout

    # The shipped digits config, with 3 short trials and its paths made absolute.
    experiment = tmp_path / "quick.yaml"
    experiment.write_text((REPO / "experiments" / "quickstart.yaml").read_text()
                          .replace("epochs: 15", "epochs: 1"))
    port, experiment_id = start_nnictl(lambda *cmd: run(str(BIN / cmd[0]), *cmd[1:]), "digits", tmp_path, 3, experiment)
    try:
        jobs = wait_for_trials(port, 3, tmp_path / "exps" / experiment_id / "log", 240)
        finals = final_metrics(port)
        assert len(finals) == 3
        samples = []
        for _, metrics in finals:
            assert {"default", "accuracy", "latency_ms", "params", "flops", "within_budget"} <= set(metrics)
        for job in jobs:
            samples.append(json.dumps(json.loads(job["hyperParameters"][0])["parameters"], sort_keys=True))
        assert len(set(samples)) == 3  # the tuner never proposes an architecture twice
        dispatcher = (tmp_path / "exps" / experiment_id / "log" / "dispatcher.log").read_text()
        assert "Traceback" not in dispatcher
        # `nni-hwnas dashboard <id>` reads the nnictl route live, found through nnictl's experiment list.
        from test_dashboard import dashboard_serves

        served = dashboard_serves(experiment_id, env)
        assert sorted(t["trial_id"] for t in served["trials"]) == sorted(j["trialJobId"] for j in jobs)
        assert served["source"] == f"NNI REST API, port {port}"
    finally:
        stopped = run(str(BIN / "nnictl"), "stop", experiment_id)
    assert stopped.returncode == 0
    assert "unregistered" in run(str(BIN / "nni-hwnas"), "unregister").stdout
    assert "HwEvolution" not in run(str(BIN / "nnictl"), "algo", "list").stdout


def test_tuner_reads_nni_dict_results_and_remembers_failures():
    from strategies.nni_tuner import HwEvolutionTuner

    search_space = json.loads((REPO / "experiments" / "nnictl" / "digits_space.json").read_text())
    tuner = HwEvolutionTuner(space="conv_net", seed=0, population_size=4, sample_size=2, initial_random=2,
                             score_metric="accuracy")
    tuner.update_search_space(search_space)
    proposals = [tuner.generate_parameters(i) for i in range(6)]
    for i, params in enumerate(proposals[:5]):
        tuner.receive_trial_result(i, params, {"default": 0.5 + i / 20, "accuracy": 0.5 + i / 20,
                                              "latency_ms": 1.0 + i})
        tuner.trial_end(i, True)
    tuner.trial_end(5, False)  # ended without a result: failed
    history = tuner.core.history
    assert [r["status"] for r in history] == ["succeeded"] * 5 + ["failed"]
    assert history[4]["metrics"]["latency_ms"] == 5.0
    identities = {tuner.core.identity(p) for p in proposals + [tuner.generate_parameters(6)]}
    assert len(identities) == 7


def test_check_nnictl_catches_what_nnictl_create_accepts_silently(tmp_path, monkeypatch):
    from nni_hwnas.experiment.nnictl_check import check_nnictl_config

    monkeypatch.setenv("NNI_CONFIG_DIR", str(tmp_path / "nni-config"))  # nothing registered here
    (tmp_path / "nni-config").mkdir()
    shipped = REPO / "experiments" / "nnictl"
    with pytest.raises(UserError, match="run `nni-hwnas register` first"):
        check_nnictl_config(shipped / "digits.yml")
    config = yaml.safe_load((shipped / "octmnist.yml").read_text())
    config["tuner"] = {"name": "TPE", "classArgs": {"optimize_mode": "maximize"}}
    good = shipped / "_check_good.yml"
    bad = shipped / "_check_bad.yml"
    try:
        good.write_text(yaml.safe_dump(config))
        assert any("matches space medmnist_cnn" in line for line in check_nnictl_config(good))
        bad.write_text(yaml.safe_dump({**config, "searchSpaceFile": "digits_space.json"}))
        with pytest.raises(UserError, match="does not match space 'medmnist_cnn'"):
            check_nnictl_config(bad)
        warm = config["trialCommand"].replace("nni_hwnas.evaluation.hpo_trial", "nni_hwnas.warm_trials")
        assert warm != config["trialCommand"]
        bad.write_text(yaml.safe_dump({**config, "searchSpaceFile": "digits_space.json", "trialCommand": warm}))
        with pytest.raises(UserError, match="does not match space 'medmnist_cnn'"):  # warm trials are read too
            check_nnictl_config(bad)
    finally:
        good.unlink(missing_ok=True)
        bad.unlink(missing_ok=True)


def test_staged_net_searched_progressively_in_3d_through_nnictl(tmp_path):
    """The shipped staged_net nnictl config: our tuner proposes stage 1's ops first (progressive), and
    the trials (hpo_trial, the latency table's predictions) report all three objectives."""
    env, run = nnictl_runner(tmp_path)
    assert run(str(BIN / "nni-hwnas"), "register").returncode == 0
    config = yaml.safe_load((REPO / "experiments" / "staged_net_digits.yaml").read_text())
    config["evaluator"].update(epochs=1, train_subset=300)
    config["hardware"]["table"] = str(REPO / "hw_profiles" / "tables" / "host-cpu-1t-staged_net.json")
    experiment = tmp_path / "staged.yaml"
    experiment.write_text(yaml.safe_dump(config))
    widen = {"population_size": 4, "sample_size": 2, "initial_random": 2, "progressive": {"after_trials": [2, 3]}}
    port, experiment_id = start_nnictl(lambda *cmd: run(str(BIN / cmd[0]), *cmd[1:]), "staged_net_digits",
                                       tmp_path, 5, experiment, tuner_args=widen)
    try:
        jobs = wait_for_trials(port, 5, tmp_path / "exps" / experiment_id / "log", 400)
        params = {json.loads(j["hyperParameters"][0])["parameter_id"]: json.loads(j["hyperParameters"][0])["parameters"]
                  for j in jobs}
        finals = final_metrics(port)
        assert sorted(pid for pid, _ in finals) == sorted(params)
        for _, metrics in finals:
            assert metrics["latency_ms"] > 0 and metrics["params"] > 0 and 0 <= metrics["accuracy"] <= 1
        definition = make_definition(*load_preset("staged_net_s3"), (1, 8, 8), 10)
        stage_one = set(definition.progressive_stages[0])
        chosen = [{v for k, v in params[pid].items() if k.endswith(("_op", "_attn"))} for pid in sorted(params)]
        assert all(values <= stage_one for values in chosen[:2])  # proposed before the first widening
        assert len({definition.arch_id(p) for p in params.values()}) == 5
        dispatcher = (tmp_path / "exps" / experiment_id / "log" / "dispatcher.log").read_text()
        assert "Traceback" not in dispatcher
    finally:
        stopped = run(str(BIN / "nnictl"), "stop", experiment_id)
        run(str(BIN / "nni-hwnas"), "unregister")
    assert stopped.returncode == 0
