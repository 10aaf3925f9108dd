"""Latency on the right machine: fingerprints, first-use profiling into the user's cache, reuse,
refusal with the one command, and trials timed exactly like the table's rows (one timer)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from nni_hwnas.errors import UserError
from nni_hwnas.hardware import fingerprint as fingerprint_module
from nni_hwnas.hardware.fingerprint import fingerprint_id, machine_fingerprint
from nni_hwnas.hardware.latency_table import LatencyTable
from nni_hwnas.hardware.profiles import load_profile
from nni_hwnas.hardware.table_cache import cached_table_path, default_table, table_for_search
from nni_hwnas.hardware.timing import TimingSettings, percentile, series_value, time_series, timing_inputs
from search_spaces import make_definition

TINY = {"depth": [1, 2], "filters": [16, 32], "kernel": [3, 5], "batch_norm": [False, True], "dropout": [0.0]}


def tiny_definition():
    return make_definition("conv_net", TINY, (1, 8, 8), 10)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("NNI_HWNAS_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def own_profile(tmp_path):
    """A one-thread CPU profile whose bundled table does not exist: only the cache can serve it."""
    path = tmp_path / "test-cpu.yaml"
    path.write_text("name: test-cpu\nkind: cpu\nthreads: 1\nbatch_size: 1\nlatency_table: tables/test-cpu.json\n")
    return load_profile(path)


def test_fingerprint_tells_apart_cpus_with_one_name_but_other_flags(monkeypatch):
    here = machine_fingerprint(1)
    assert here["threads"] == 1 and here["torch_version"] == torch.__version__ and here["cpu_model"]
    assert fingerprint_id(here) == fingerprint_id(machine_fingerprint(1))
    assert fingerprint_id(here) != fingerprint_id(machine_fingerprint(2))
    info = fingerprint_module._cpuinfo()
    monkeypatch.setattr(fingerprint_module, "_cpuinfo", lambda: {**info, "flags": "fpu sse2"})
    other = machine_fingerprint(1)
    assert other["cpu_model"] == here["cpu_model"] and fingerprint_id(other) != fingerprint_id(here)
    assert any(r.startswith("cpu_flags_sha1") for r in fingerprint_module.fingerprint_differences(other, here))


def test_tables_without_a_fingerprint_are_stale():
    table = LatencyTable.load(load_profile("host-cpu-1t").latency_table, "host-cpu-1t")
    if table.header.fingerprint:
        pytest.skip("the bundled table has been re-measured with a fingerprint")
    assert any("no machine fingerprint" in r for r in table.stale_reasons())


def test_first_use_profiles_into_the_cache_and_the_next_search_reuses_it(fresh_cache, own_profile, capsys):
    definition = tiny_definition()
    lines: list[str] = []
    path = table_for_search(own_profile, definition, echo=lines.append, fit_models=6)
    assert path == cached_table_path(own_profile) and path.parent == fresh_cache / "tables"
    assert path.name == f"test-cpu-{fingerprint_id(machine_fingerprint(1))}.json"
    assert "profiling test-cpu on this machine for conv_net@1x8x8/10" in lines[0]
    assert "layer rows and 6 whole models to measure, about" in lines[1] and "min" in lines[1]
    assert "whole models" in capsys.readouterr().err  # the progress bar
    table = LatencyTable.load(path, "test-cpu")
    assert table.stale_reasons(threads=1) == [] and len(table.models) == 6
    assert table.runs[-1]["noise"]["rows"] == len(definition.enumerate_layers())
    stamp = path.stat().st_mtime_ns
    again: list[str] = []
    assert table_for_search(own_profile, definition, echo=again.append, fit_models=6) == path
    assert again == [] and path.stat().st_mtime_ns == stamp  # reused, nothing measured
    assert default_table(own_profile) == path  # trials without an explicit table read the same one


def test_refuse_names_the_one_command_and_that_command_fills_the_cache(fresh_cache, own_profile):
    from nni_hwnas.cli_profile import add_profile_command

    definition = tiny_definition()
    with pytest.raises(UserError) as info:
        table_for_search(own_profile, definition, on_first_use="refuse")
    message = str(info.value)
    assert "\n" not in message and "describes this machine" in message
    command = message.split("with: ", 1)[1]
    assert command.startswith("nni-hwnas profile --profile ") and command.endswith(" --cache")
    parser = argparse.ArgumentParser()
    add_profile_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(command.split()[1:] + ["--max-seconds", "0.01", "--fit-models", "4", "--quiet"])
    assert args.func(args) == 0
    assert table_for_search(own_profile, definition, on_first_use="refuse") == cached_table_path(own_profile)


def test_search_preparation_profiles_on_first_use_or_refuses(fresh_cache, own_profile, monkeypatch):
    from nni_hwnas.experiment.config import parse_config
    from nni_hwnas.experiment.launch import prepare, searched_table, trial_hardware_args
    import nni_hwnas.hardware.table_cache as table_cache

    monkeypatch.setattr(table_cache, "FIRST_USE_FIT_MODELS", 4)  # the test is about the path, not accuracy
    raw = {"dataset": {"name": "digits"}, "space": {"name": "conv_net", "choices": TINY},
           "hardware": {"profile": str(own_profile.source), "on_first_use": "refuse"}}
    with pytest.raises(UserError, match="--cache$"):
        prepare(parse_config(dict(raw)))
    with pytest.raises(UserError, match="on_first_use"):
        prepare(parse_config({**raw, "hardware": {**raw["hardware"], "on_first_use": "never"}}))
    prepared = prepare(parse_config({**raw, "hardware": {**raw["hardware"], "on_first_use": "profile"}}))
    assert searched_table(prepared) == str(cached_table_path(own_profile))
    assert trial_hardware_args(prepared.config, searched_table(prepared))["table"] == searched_table(prepared)
    assert prepare(parse_config(dict(raw))).predictor.table.path == cached_table_path(own_profile)  # refuse: reuses


def test_python_percentiles_match_numpy():
    import numpy as np

    times = [0.3, 0.1, 0.25, 0.9, 0.11, 0.12, 0.5]
    for q in (0, 10, 25, 50, 75, 90, 100):
        assert percentile(times, q) == pytest.approx(np.percentile(times, q))
    assert series_value(times, "min") == 0.1 and series_value(times, "median") == pytest.approx(np.median(times))


def test_trials_time_like_the_table(monkeypatch, tmp_path):
    """`latency_measured_ms` uses the table's statistic, warm-up, repeats and inputs (issue 12's one timer)."""
    import nni_hwnas.evaluation.trial as trial
    from nni_hwnas.hardware.latency_table import TableHeader, current_environment
    from search_spaces.layers import build_network

    env = current_environment("cpu")
    header = TableHeader(profile="host-cpu-1t", device="cpu", threads=1, batch_size=1, precision="float32",
                         statistic="p10", warmup_runs=7, n_repeats=50, n_inputs=5, torch_version=env["torch_version"],
                         machine=env["machine"], fingerprint=machine_fingerprint(1))
    table = LatencyTable(header, runs=[{"settings": {"min_repeats": 11, "max_seconds": 0.05, "noisy_retries": 0}}])
    expected = TimingSettings(warmup_runs=7, n_repeats=50, min_repeats=11, max_seconds=0.05, statistic="p10",
                              noisy_retries=0, n_inputs=5)
    assert table.timing_settings() == expected
    definition = tiny_definition()
    specs = definition.describe(definition.random_sample(__import__("numpy").random.default_rng(0)))

    class FakePredictor:
        def __init__(self):
            self.table = table

    seen = {}
    real = trial.measure_model_latency

    def spy(network, shape, **kwargs):
        seen.update(kwargs)
        return real(network, shape, **kwargs)

    monkeypatch.setattr(trial, "_predicted_costs", lambda *a: ({"latency_ms": 0.1}, load_profile("host-cpu-1t"),
                                                              FakePredictor()))
    monkeypatch.setattr(trial, "measure_model_latency", spy)
    metrics = trial.hardware_costs(specs, definition, {"profile": "host-cpu-1t", "measure_latency": True}, (1, 8, 8),
                                   build_network(specs), 1, 30)
    assert seen["settings"] == expected and seen["threads"] == 1 and seen["batch_size"] == 1
    assert metrics["latency_measured_ms"] > 0


def test_one_timer_cycles_the_same_inputs_and_restores_the_mode():
    a, b = timing_inputs((1, 3), 4), timing_inputs((1, 3), 4)
    assert len(a) == 4 and all(torch.equal(x, y) for x, y in zip(a, b)) and not torch.equal(a[0], a[1])
    seen = []
    module = torch.nn.Linear(3, 2)
    module.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    module.train()
    times = time_series(module, a, 1, TimingSettings(warmup_runs=2, n_repeats=6, min_repeats=6, noisy_retries=0))
    assert len(times) == 6 and min(times) > 0 and module.training
    assert [x.data_ptr() for x in seen[2:6]] == [x.data_ptr() for x in a]  # timed runs cycle the inputs in turn
