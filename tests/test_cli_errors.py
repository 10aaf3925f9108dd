"""Bad input gives one line naming the problem and the allowed values, exit code 2, no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nni_hwnas.cli import main
from nni_hwnas.experiment.config import load_config, parse_config
from nni_hwnas.errors import UserError

from conftest import REPO


def run_cli(tmp_path: Path, text: str, *extra: str, capsys) -> tuple[int, str]:
    config = tmp_path / "exp.yaml"
    config.write_text(text)
    code = main(["search", "--config", str(config), *extra])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("text, fragment", [
    ("space: {name: resnet}\n", "unknown space 'resnet'"),
    ("strategy: {name: Randm}\n", "did you mean 'Random'"),
    ("dataset: {name: mnistt}\n", "unknown dataset 'mnistt' (did you mean 'mnist'?)"),
    ("evaluator: {epoch: 3}\n", "unknown key `evaluator.epoch` (did you mean 'epochs'?)"),
    ("dataset: {name: digits\n", "not valid YAML"),
    ("space: {name: conv_net, choices: {kernel: [3, 4]}}\n", "choice 'kernel' has value 4"),
    ("space: {preset: medmnist_cnn, choices: {hidden: [0]}}\n", "choice 'hidden' has value 0"),
    ("experiment: {max_trials: 0}\n", "`experiment.max_trials` must be >= 1"),
    ("dataset: {name: octmnist, data_root: nowhere}\n", "octmnist.npz not found"),
])
def test_search_bad_input_is_one_line_exit_2(tmp_path, capsys, text, fragment):
    code, err = run_cli(tmp_path, text, capsys=capsys)
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("args, fragment", [
    ("{name: hw_evolution, args: {surrogate_candidates: 0}}", "`surrogate_candidates` must be an integer >= 1, got 0"),
    ("{name: hw_evolution, args: {active_mutation: maybe}}", "`active_mutation` must be true or false, got 'maybe'"),
    ("{name: hw_evolution, args: {active_mutaton: false}}", "did you mean 'active_mutation'"),
    ("{name: cmaes, args: {sigma: -1}}", "`sigma` must be a number > 0, got -1"),
    ("{name: cmaes, args: {surrogate_candidates: 4}}", "unknown argument of strategy 'cmaes' 'surrogate_candidates'"),
])
def test_bad_strategy_args_are_one_line_exit_2_before_nni_starts(tmp_path, capsys, args, fragment):
    from conftest import free_port

    text = f"dataset: {{name: digits}}\nstrategy: {args}\nexperiment: {{working_directory: {tmp_path / 'exps'}}}\n"
    code, err = run_cli(tmp_path, text, "--port", str(free_port()), "--no-dashboard", capsys=capsys)
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "exps").exists()  # refused before NNI made an experiment


@pytest.mark.parametrize("tuner, class_args, fragment", [
    ("HwEvolution", {"surrogate_candidates": 0}, "HwEvolution classArgs: `surrogate_candidates` must be an integer >= 1"),
    ("HwEvolution", {"active_mutation": "yes"}, "HwEvolution classArgs: `active_mutation` must be true or false"),
    ("CmaEs", {"population_size": 2}, "CmaEs classArgs: `population_size` must be an integer >= 4"),
    ("CmaEs", {"sigma": 1, "simga": 2}, "did you mean 'sigma'"),
])
def test_check_nnictl_rejects_bad_class_args_of_our_tuners(tmp_path, monkeypatch, capsys, tuner, class_args, fragment):
    import yaml
    from nni.tools import package_utils

    from nni_hwnas.experiment.registration import ALL_META

    monkeypatch.setenv("NNI_CONFIG_DIR", str(tmp_path / "nni-config"))
    for meta in ALL_META:  # what `nni-hwnas register` writes, without starting nnictl
        package_utils.register_algo_meta(package_utils.AlgoMeta.load(dict(meta)))
    config = tmp_path / "exp.yml"
    config.write_text(yaml.safe_dump({"tuner": {"name": tuner, "classArgs": {"space": "nb201", **class_args}}}))
    assert main(["check-nnictl", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err
    config.write_text(yaml.safe_dump({"tuner": {"name": tuner, "classArgs": {"space": "nb201", "seed": 1}}}))
    assert main(["check-nnictl", "--config", str(config)]) == 0


def test_search_port_in_use_is_one_line(tmp_path, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        port = sock.getsockname()[1]
        code, err = run_cli(tmp_path, "dataset: {name: digits}\n", "--port", str(port), capsys=capsys)
    assert code == 2
    assert f"port {port} is already in use" in err


def test_missing_config_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_relative_paths_resolve_against_the_yaml_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    config_path = tmp_path / "sub" / "exp.yaml"
    config_path.write_text("dataset: {name: octmnist, data_root: ../data}\nexperiment: {working_directory: exps}\n")
    config = load_config(config_path)
    assert config.dataset.data_root == str((tmp_path / "data").resolve())
    assert config.experiment.working_directory == str((tmp_path / "sub" / "exps").resolve())


def test_config_types_are_checked():
    assert parse_config({"evaluator": {"weight_decay": "5e-4"}}).evaluator.weight_decay == 5e-4
    with pytest.raises(UserError, match="`seed` must be an integer"):
        parse_config({"seed": "one"})
    with pytest.raises(UserError, match="allowed: cosine, step, constant"):
        parse_config({"evaluator": {"lr_schedule": "linear"}})


def test_console_script_reports_errors_without_traceback(tmp_path):
    """The installed ``nni-hwnas`` entry point, as a user runs it."""
    script = Path(sys.executable).with_name("nni-hwnas")
    config = tmp_path / "exp.yaml"
    config.write_text("strategy: {name: Evolution}\n")
    result = subprocess.run([str(script), "search", "--config", str(config)], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 2
    assert "unknown strategy 'Evolution'" in result.stderr
    assert "Traceback" not in result.stderr
