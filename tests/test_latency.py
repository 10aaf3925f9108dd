"""Latency tables, the profiler, the predictor and its NNI adapters, on tiny spaces and tables."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import types
import warnings

import numpy as np
import pytest

from nni_hwnas.evaluation.cost_trial import budget_filter, report_costs
from nni_hwnas.hardware.costs import cost_metrics
from nni_hwnas.errors import UserError
from nni_hwnas.hardware.latency_table import (LatencyTable, LayerKey, ModelMeasurement, StaleTableWarning, TableHeader, Timing,
                                     current_environment)
from nni_hwnas.hardware.predictor import LatencyCorrection, LatencyPredictor, switch_counts
from nni_hwnas.hardware.profiler import TimingSettings, open_table, profile_spaces, sample_models, stalled_rows
from nni_hwnas.hardware.fingerprint import machine_fingerprint
from nni_hwnas.hardware.profiles import load_profile
from search_spaces import load_preset, make_definition, preset_names
from search_spaces.layers import LayerSpec

FAST = TimingSettings(warmup_runs=1, n_repeats=3, min_repeats=2, max_seconds=0.005, noisy_retries=0, n_inputs=16)
TINY = {"depth": [1, 2], "filters": [16, 32], "kernel": [3, 5], "batch_norm": [False, True], "dropout": [0.0, 0.5]}


def tiny_definition(num_classes: int = 10):
    return make_definition("conv_net", TINY, (1, 8, 8), num_classes)


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory):
    """A real (badly timed, fast) host-cpu-1t table for the tiny space, with a fitted correction."""
    path = tmp_path_factory.mktemp("tables") / "host-cpu-1t.json"
    profile = load_profile("host-cpu-1t")
    table = open_table(profile, path, FAST)
    profile_spaces(table, profile, [tiny_definition()], FAST, fit_models=12, seed=0, progress=False)
    return LatencyTable.load(path, "host-cpu-1t")


def header(**changes) -> TableHeader:
    env = current_environment("cpu")
    base = TableHeader(profile="host-cpu-1t", device="cpu", threads=1, batch_size=1, precision="float32",
                       statistic="min", warmup_runs=1, n_repeats=3, n_inputs=16, torch_version=env["torch_version"],
                       machine=env["machine"], fingerprint=machine_fingerprint(1))
    return dataclasses.replace(base, **changes)


def test_layer_key_has_every_executed_field_of_a_layer_spec():
    """A new LayerSpec field must be a key field or be declared irrelevant to inference here."""
    spec_fields = {f.name for f in dataclasses.fields(LayerSpec)}
    key_fields = {f.name for f in dataclasses.fields(LayerKey)}
    assert key_fields == spec_fields - {"dropout"}
    spec = LayerSpec("conv", 3, 8, in_hw=12, kernel=5, batch_norm=True, pool=True, dropout=0.5)
    assert LayerKey.from_spec(spec).to_spec() == dataclasses.replace(spec, dropout=0.0)
    assert LayerKey.from_spec(spec) == LayerKey.from_spec(dataclasses.replace(spec, dropout=0.0))


def test_table_json_round_trip_keeps_rows_models_and_corrections(tmp_path):
    times = [0.01874, 0.0191, 0.02532, 0.0187]
    key = LayerKey("conv", 1, 16, in_hw=8, kernel=3, pool=True)
    lin = LayerKey("linear", 256, 10, relu=False, flatten=True)
    table = LatencyTable(header(), {key: Timing.from_times_ms(times), lin: Timing.from_times_ms([0.008])},
                         [ModelMeasurement("conv_net@1x8x8/10", "abc", {"depth": 1}, (key, lin),
                                           Timing.from_times_ms([0.03, 0.031]))],
                         {"*": LatencyCorrection().fit([1, 2, 3, 4, 5], [2, 2, 3, 3, 4], [1.2, 2.1, 3.3, 4.2, 5.4]).to_dict()},
                         runs=[{"seconds": 1.5}])
    path = table.save(tmp_path / "t.json")
    loaded = LatencyTable.load(path, "host-cpu-1t")
    assert loaded.header == table.header and loaded.corrections == table.corrections and loaded.runs == table.runs
    assert loaded.rows.keys() == table.rows.keys()
    assert loaded.rows[key].times_us == tuple(sorted([18.7, 19.1, 25.3, 18.7]))  # raw times at 0.1 µs
    assert loaded.rows[key].min_ms == pytest.approx(0.0187) and loaded.rows[key].median_ms == pytest.approx(np.median(times))
    assert loaded.models[0].layers == (key, lin) and loaded.models[0].timing.repeats == 2
    assert loaded.ms(key) == pytest.approx(0.0187)
    assert not path.with_name("t.json.tmp").exists()
    header_only = LatencyTable.load(path, "host-cpu-1t", header_only=True)  # what picking a table reads
    assert header_only.header == table.header and len(header_only) == 0 and not header_only.models
    assert header_only.stale_reasons(threads=1) == loaded.stale_reasons(threads=1)


def test_staleness_names_what_differs_and_how_to_reprofile():
    elsewhere = {**machine_fingerprint(1), "torch_version": "1.0.0", "cpu_model": "Some Other CPU"}
    table = LatencyTable(header(torch_version="1.0.0", fingerprint=elsewhere))
    reasons = table.stale_reasons()
    assert any("torch_version '1.0.0' there" in r for r in reasons) and any("Some Other CPU" in r for r in reasons)
    with pytest.warns(StaleTableWarning, match=r"re-measure with `nni-hwnas profile --profile host-cpu-1t"):
        table.warn_if_stale()
    assert LatencyTable(header()).stale_reasons() == []
    assert LatencyTable(header()).stale_reasons(threads=2) == ["measured with 1 thread(s), the profile now uses 2"]


@pytest.mark.parametrize("content, fragment", [
    (None, "not found; measure it with: nni-hwnas profile --profile host-cpu-1t"),
    ("{not json", "is corrupt"),
    ('{"header": {"format_version": 99}, "rows": []}', "is corrupt"),
    ("[1, 2]", "is corrupt"),
])
def test_missing_or_corrupt_table_is_one_line_user_error(tmp_path, content, fragment):
    path = tmp_path / "host-cpu-1t.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError) as info:
        LatencyTable.load(path, "host-cpu-1t")
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_table_of_another_profile_is_refused(tmp_path):
    path = LatencyTable(header(profile="cuda")).save(tmp_path / "x.json")
    with pytest.raises(UserError, match="measured for profile 'cuda', not 'host-cpu-1t'"):
        LatencyTable.load(path, "host-cpu-1t")


def hand_made_table() -> tuple[LatencyTable, dict[LayerKey, float]]:
    """Rows with chosen times for every layer of the tiny space, at batch 1 on 1 thread."""
    definition = tiny_definition()
    times = {LayerKey.from_spec(spec): 0.01 * (i + 1) for i, spec in enumerate(definition.enumerate_layers())}
    return LatencyTable(header(), {k: Timing.from_times_ms([v]) for k, v in times.items()}), times


def test_predictor_on_hand_made_table_is_exact_sum_plus_correction():
    table, times = hand_made_table()
    correction = LatencyCorrection()
    correction.overhead_ms_, correction.scale_, correction.per_layer_ms_ = 0.005, 1.1, 0.002
    correction.switch_ms_ = {"conv3|conv5": 0.0125, "conv5|linear": 0.003, "conv3|linear": 0.001}
    definition = tiny_definition()
    predictor = LatencyPredictor(table, definition, correction)
    sample = {"depth": 2, "conv0_filters": 16, "conv0_kernel": 3, "conv0_bn": False,
              "conv1_filters": 32, "conv1_kernel": 5, "conv1_bn": True, "dropout": 0.5}
    keys = [LayerKey.from_spec(s) for s in definition.describe(sample)]
    assert [k.kernel_class for k in keys] == ["conv3", "conv5", "linear"]
    # cyclic (the model runs back to back): linear->conv3, conv3->conv5, conv5->linear
    expected = 0.005 + 1.1 * sum(times[k] for k in keys) + 0.002 * 3 + 0.001 + 0.0125 + 0.003
    assert predictor.predict(sample) == pytest.approx(expected, rel=1e-12)
    assert predictor.layer_sum_ms(definition.describe(sample)) == pytest.approx(sum(times[k] for k in keys))


def test_switch_counts_are_cyclic_and_unordered():
    assert switch_counts(["conv3", "conv5", "conv3", "linear"]) == {"conv3|conv5": 2, "conv3|linear": 2}
    assert switch_counts(["conv3", "conv3"]) == {}


def test_correction_recovers_known_terms_and_saves_as_json_numbers():
    rng = np.random.default_rng(0)
    sums = rng.uniform(0.05, 2.0, 60)
    layers = rng.integers(2, 7, 60)
    switches = [{"conv3|conv5": int(rng.integers(0, 3))} for _ in range(60)]
    measured = 0.004 + 1.07 * sums + 0.003 * layers + 0.011 * np.array([s["conv3|conv5"] for s in switches])
    fitted = LatencyCorrection().fit(sums, layers, measured, switches)
    assert fitted.terms_ == ("per_layer", "switch")
    assert (fitted.overhead_ms_, fitted.scale_, fitted.per_layer_ms_) == pytest.approx((0.004, 1.07, 0.003), abs=1e-9)
    assert fitted.switch_ms_ == pytest.approx({"conv3|conv5": 0.011})
    text = json.dumps(fitted.to_dict())  # plain JSON numbers, no pickles
    again = LatencyCorrection.from_dict(json.loads(text))
    assert again.predict(1.0, 3, {"conv3|conv5": 1}) == fitted.predict(1.0, 3, {"conv3|conv5": 1})
    # without a per-layer effect in the data, leave-one-out drops that term
    plain = LatencyCorrection().fit(sums, layers, 0.004 + 1.07 * sums * (1 + rng.normal(0, 0.01, 60)), switches)
    assert plain.terms_ == () and plain.scale_ == pytest.approx(1.07, abs=0.01)


def test_missing_row_names_the_key_and_the_profile_command():
    table, _ = hand_made_table()
    predictor = LatencyPredictor(table, make_definition("conv_net", {**TINY, "kernel": [7]}, (1, 8, 8), 10),
                                 LatencyCorrection())
    with pytest.raises(UserError, match=r"no row for conv k7 s1 1->16 @8x8 .*nni-hwnas profile --profile host-cpu-1t "
                                        r"--space conv_net --input-shape 1,8,8 --classes 10"):
        predictor.predict({"depth": 1, "conv0_filters": 16, "conv0_kernel": 7, "conv0_bn": False, "dropout": 0.0})
    with pytest.raises(UserError, match=r"lacks \d+ layer\(s\) of space conv_net@1x8x8/10"):
        predictor.check_coverage()


@pytest.mark.parametrize("preset", preset_names())
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_enumerated_layers_cover_every_sample(preset, shape):
    space, choices = load_preset(preset)
    definition = make_definition(space, choices, shape, 4)
    enumerated = {LayerKey.from_spec(s) for s in definition.enumerate_layers()}
    rng = np.random.default_rng(0)
    samples = list(definition.all_samples()) if definition.size() <= 500 else \
        [definition.random_sample(rng) for _ in range(300)] + [definition.extreme_sample("min"), definition.extreme_sample("max")]
    used = {LayerKey.from_spec(s) for sample in samples for s in definition.describe(sample)}
    assert used <= enumerated
    if definition.size() <= 500:
        assert used == enumerated  # nothing enumerated that no architecture uses


def test_conv_net_enumeration_equals_brute_force():
    definition = tiny_definition()
    brute = {LayerKey.from_spec(s) for sample in definition.all_samples() for s in definition.describe(sample)}
    assert {LayerKey.from_spec(s) for s in definition.enumerate_layers()} == brute


def test_profiler_resumes_without_remeasuring(tmp_path, monkeypatch):
    import nni_hwnas.hardware.profiler as profiler

    profile = load_profile("host-cpu-1t")
    definition = tiny_definition()
    path = tmp_path / "t.json"
    real_time_layer, calls = profiler.time_layer, []

    def interrupted(key, *args):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(key)
        return real_time_layer(key, *args)

    monkeypatch.setattr(profiler, "time_layer", interrupted)
    with pytest.raises(KeyboardInterrupt):
        profile_spaces(open_table(profile, path, FAST), profile, [definition], FAST, fit_models=4, progress=False)
    assert len(LatencyTable.load(path)) == 5  # what was measured before Ctrl-C is on disk
    monkeypatch.setattr(profiler, "time_layer", real_time_layer)
    report = profile_spaces(open_table(profile, path, FAST), profile, [definition], FAST, fit_models=4, progress=False)
    total = len(definition.enumerate_layers())
    assert (report.layers.kept, report.layers.measured) == (5, total - 5)
    assert report.models.kept + report.models.measured == 4 and report.models.kept >= 1  # interleaved with rows
    again = profile_spaces(open_table(profile, path, FAST), profile, [definition], FAST, fit_models=4, progress=False)
    assert (again.layers.measured, again.models.measured, again.models.kept) == (0, 0, 4)
    assert len(LatencyTable.load(path).runs) == 3


def test_interleave_spreads_whole_models_among_rows():
    from nni_hwnas.hardware.profiler import interleave

    merged = interleave(list(range(10)), ["a", "b"])
    assert merged == ["a", 0, 1, 2, 3, 4, "b", 5, 6, 7, 8, 9]
    assert interleave([], ["a"]) == ["a"] and interleave([1, 2], []) == [1, 2]
    assert interleave([1], ["a", "b", "c"]) == ["a", 1, "b", "c"]


def test_stalled_rows_are_those_far_above_their_kernels_trend():
    table, times = hand_made_table()
    conv3 = [k for k in times if k.kernel_class == "conv3"]
    stalled = conv3[3]
    table.rows[stalled] = Timing.from_times_ms([30.0, 30.1])  # every run waited for a descheduled thread
    assert stalled_rows(table, list(times)) == [stalled]
    assert stalled_rows(hand_made_table()[0], list(times)) == []


def test_resume_refuses_a_table_measured_differently(tmp_path):
    profile = load_profile("host-cpu-1t")
    path = LatencyTable(header(threads=2)).save(tmp_path / "t.json")
    with pytest.raises(UserError, match="threads 2 there, 1 now.*--fresh"):
        open_table(profile, path, FAST)
    assert len(open_table(profile, path, FAST, fresh=True)) == 0


def test_fit_models_are_distinct_seeded_and_prefix_stable():
    definition = tiny_definition()
    first = sample_models(definition, 6, seed=3)
    assert first == sample_models(definition, 10, seed=3)[:6]
    networks = [tuple(LayerKey.from_spec(s) for s in definition.describe(x)) for x in first]
    assert len(set(networks)) == 6
    held_out = sample_models(definition, 30, seed=4, exclude=set(networks))
    assert not {tuple(LayerKey.from_spec(s) for s in definition.describe(x)) for x in held_out} & set(networks)


def test_every_layer_of_a_frozen_model_is_in_the_table_built_for_its_space(tiny_table):
    from search_spaces import make_model_space

    space = make_model_space("conv_net", TINY, (1, 8, 8), 10)
    rng = np.random.default_rng(1)
    for _ in range(5):
        model = space.freeze(space.definition.random_sample(rng))
        assert all(LayerKey.from_spec(spec) in tiny_table for spec in model.layer_specs)
        assert len(model.net) == len(model.layer_specs)
    predictor = LatencyPredictor(tiny_table, space.definition)
    predictor.check_coverage()
    # fitted on the table's 12 whole models, or on its steady ones when at least 10 are (steady_models)
    from nni_hwnas.hardware.predictor import steady_models

    assert predictor.correction.n_models_ == len(steady_models(tiny_table.models))


def test_nni_range_profiler_filter_and_penalty_use_our_profiler(tiny_table):
    import torch
    from nni.nas.oneshot.pytorch.profiler import RangeProfilerFilter, SampleProfilerPenalty
    from nni.nas.profiler import Profiler

    from nni_hwnas.hardware.nni_profiler import HwLatencyProfiler
    from search_spaces import make_model_space

    space = make_model_space("conv_net", TINY, (1, 8, 8), 10)
    profiler = HwLatencyProfiler(space, profile="host-cpu-1t", table=tiny_table)
    assert isinstance(profiler, Profiler)
    predictor = LatencyPredictor(tiny_table, space.definition)
    samples = [space.definition.random_sample(np.random.default_rng(i)) for i in range(12)]
    latencies = [predictor.predict(s) for s in samples]
    threshold = float(np.median(latencies))
    keep = RangeProfilerFilter(profiler, max=threshold)
    assert [keep(s) for s in samples] == [lat <= threshold for lat in latencies]
    assert 0 < sum(keep(s) for s in samples) < len(samples)
    penalty = SampleProfilerPenalty(profiler, baseline=threshold, nonlinear="positive")
    _, details = penalty(torch.tensor(1.0), samples[0])
    assert details["penalty"] == pytest.approx(latencies[0])
    params = HwLatencyProfiler(space, profile="mcu-cortex-m7", metric="params")
    assert params.profile(samples[0]) == cost_metrics(space.definition.describe(samples[0]), None,
                                                      load_profile("mcu-cortex-m7"))["params"]


def test_budget_filter_for_nni_filter_middleware(tiny_table):
    definition = tiny_definition()
    predictor = LatencyPredictor(tiny_table, definition)
    samples = [definition.random_sample(np.random.default_rng(i)) for i in range(10)]
    latencies = [predictor.predict(s) for s in samples]
    profile = load_profile("host-cpu-1t").with_budgets({"latency_ms": float(np.median(latencies))})
    keep = budget_filter(definition, profile, predictor)
    models = [types.SimpleNamespace(sample=s) for s in samples]  # what Filter hands its filter_fn
    assert [keep(m) for m in models] == [lat <= profile.budgets.latency_ms for lat in latencies]


def test_report_costs_reports_the_metric_contract(tiny_table, monkeypatch):
    import nni

    reported = []
    monkeypatch.setattr(nni, "report_final_result", reported.append)
    definition = tiny_definition()
    sample = definition.extreme_sample("max")
    model = types.SimpleNamespace(layer_specs=definition.describe(sample), definition=definition, sample=sample)
    expected_ms = LatencyPredictor(tiny_table, definition).predict(sample)
    metrics = report_costs(model, "host-cpu-1t", table=str(tiny_table.path), budgets={"latency_ms": expected_ms / 2})
    assert reported == [metrics]
    assert set(metrics) == {"default", "latency_ms", "params", "flops", "peak_mem_kb", "param_kb", "within_budget"}
    assert metrics["latency_ms"] == pytest.approx(expected_ms) and metrics["default"] == -metrics["latency_ms"]
    assert metrics["within_budget"] == 0
    mcu = report_costs(model, "mcu-cortex-m7", default_metric="param_kb")
    assert "latency_ms" not in mcu and mcu["default"] == -mcu["param_kb"]
    with pytest.raises(UserError, match="budget-only"):
        report_costs(model, "mcu-cortex-m7")


def test_profile_command_errors_are_one_line(tmp_path):
    from nni_hwnas.cli_profile import add_profile_command

    parser = argparse.ArgumentParser()
    add_profile_command(parser.add_subparsers(dest="command"))

    def run(*argv):
        args = parser.parse_args(["profile", *argv])
        return args.func(args)

    with pytest.raises(UserError, match="unknown device profile 'tpu'"):
        run("--profile", "tpu")
    with pytest.raises(UserError, match="budget-only"):
        run("--profile", "mcu-cortex-m7")
    with pytest.raises(UserError, match="--input-shape must be 3 positive integers"):
        run("--profile", "host-cpu-1t", "--input-shape", "1,8", "--table", str(tmp_path / "t.json"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match="is corrupt"):
        run("--profile", "host-cpu-1t", "--table", str(tmp_path / "bad.json"))
    if not __import__("torch").cuda.is_available():
        with pytest.raises(UserError, match="needs a CUDA GPU"):
            run("--profile", "cuda", "--table", str(tmp_path / "cuda.json"))


def test_profile_command_measures_several_class_counts_in_one_table(tmp_path, capsys):
    from nni_hwnas.cli_profile import add_profile_command

    parser = argparse.ArgumentParser()
    add_profile_command(parser.add_subparsers(dest="command"))
    table = tmp_path / "t.json"
    args = parser.parse_args(["profile", "--profile", "host-cpu-1t", "--preset", "medmnist_cnn", "--input-shape", "1,8,8",
                              "--classes", "2,4", "--table", str(table), "--repeats", "3", "--warmup", "1",
                              "--min-repeats", "2", "--max-seconds", "0.005", "--fit-models", "6", "--quiet"])
    assert args.func(args) == 0
    loaded = LatencyTable.load(table, "host-cpu-1t")
    for classes in (2, 4):
        definition = make_definition("medmnist_cnn", None, (1, 8, 8), classes)
        LatencyPredictor(loaded, definition).check_coverage()
    assert "6 whole models measured" in capsys.readouterr().out


def test_stale_shipped_style_table_warns_when_loaded_for_prediction(tmp_path):
    from nni_hwnas.hardware.costs import load_table

    table, _ = hand_made_table()
    table.header.fingerprint = {**table.header.fingerprint, "torch_version": "0.0.1"}
    path = table.save(tmp_path / "old.json")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_table(load_profile("host-cpu-1t"), path)
    assert any(issubclass(w.category, StaleTableWarning) and "torch_version '0.0.1'" in str(w.message) for w in caught)


def test_a_preloaded_table_is_inherited_parsed_and_still_warns_once_in_each_forked_process(tmp_path, monkeypatch):
    """What a warm-trial server relies on: after ``preload_table`` (no warning there), a forked trial
    reads no JSON but still warns once, as a cold trial does; a table rewritten on disk is read again."""
    from nni_hwnas.hardware import costs

    table, _ = hand_made_table()
    table.header.fingerprint = {**table.header.fingerprint, "torch_version": "0.0.1"}
    path = table.save(tmp_path / "old.json")
    profile = load_profile("host-cpu-1t")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        preloaded = costs.preload_table(profile, path)
    assert not caught
    reads = []
    original = LatencyTable.load.__func__
    monkeypatch.setattr(LatencyTable, "load", classmethod(lambda cls, *a, **k: reads.append(a) or original(cls, *a, **k)))
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the forked trial
        code = 1
        try:
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                same = [costs.load_table(profile, path) is preloaded for _ in range(2)]
            stale = sum(issubclass(w.category, StaleTableWarning) for w in seen)
            os.write(write_end, json.dumps({"same": same, "stale": stale, "reads": len(reads)}).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert json.loads(os.read(read_end, 1000)) == {"same": [True, True], "stale": 1, "reads": 0}
    table.header.fingerprint = {**table.header.fingerprint, "torch_version": "0.0.2"}
    table.save(path)
    with pytest.warns(StaleTableWarning, match="0.0.2"):
        assert costs.load_table(profile, path) is not preloaded
    assert len(reads) == 1


def test_disturbed_whole_models_are_remeasured_and_left_out_of_the_fit():
    """A whole model whose series was noisy is measured again (the smaller time kept), and the
    correction is fitted on the steady models when there are enough of them: a disturbed model's
    inflated minimum must not raise the scale."""
    from nni_hwnas.hardware.predictor import MIN_STEADY_MODELS, fit_corrections, steady_models
    from nni_hwnas.hardware.profiler import remeasure_disturbed_models

    key = LayerKey("conv", 1, 16, in_hw=8, kernel=3, pool=True)
    lin = LayerKey("linear", 256, 10, relu=False, flatten=True)
    steady = lambda ms: Timing.from_times_ms([ms, ms * 1.01, ms * 1.02, ms * 1.03])  # noqa: E731
    noisy = lambda ms: Timing.from_times_ms([ms, ms * 1.3, ms * 1.6, ms * 2.0])  # noqa: E731
    rows = {key: steady(0.02), lin: steady(0.01)}
    models = [ModelMeasurement("conv_net@1x8x8/10", f"s{i}", {}, (key,) * (1 + i % 3) + (lin,),
                               steady(1.1 * (0.02 * (1 + i % 3) + 0.01))) for i in range(MIN_STEADY_MODELS)]
    models += [ModelMeasurement("conv_net@1x8x8/10", f"n{i}", {}, (key, lin), noisy(0.06)) for i in range(5)]
    table = LatencyTable(header(), rows, list(models), {})
    assert len(steady_models(table.models)) == MIN_STEADY_MODELS
    assert fit_corrections(table)["conv_net@1x8x8"].scale_ == pytest.approx(1.1, abs=1e-6)  # the noisy ones ignored
    assert steady_models(table.models[-9:]) == table.models[-9:]  # too few steady ones: all are used

    class Measurer:
        calls: list = []

        def model(self, specs, input_shape):
            self.calls.append(tuple(input_shape))
            return steady(0.04)

    measurer = Measurer()
    assert remeasure_disturbed_models(table, measurer, FAST, progress=False) == 5  # one round: all steady then
    assert measurer.calls == [(1, 8, 8)] * 5
    assert [m.timing.min_ms for m in table.models[-5:]] == [0.04] * 5 and not any(m.timing.noisy for m in table.models)
    assert table.models[:MIN_STEADY_MODELS] == models[:MIN_STEADY_MODELS]  # steady ones untouched
