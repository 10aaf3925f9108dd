"""Weight sharing: the super-network, the differentiable expected latency, and the searches on them."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from nni_hwnas.hardware.latency_table import LatencyTable, LayerKey, TableHeader, Timing, current_environment
from nni_hwnas.hardware.predictor import LatencyCorrection, LatencyPredictor
from nni_hwnas.oneshot.expected_latency import ExpectedLatency
from nni_hwnas.oneshot.supernet import SuperNet, extract_subnet
from search_spaces import make_definition, make_model_space

SMALL = {"depth": [1, 2, 3], "filters": [16, 32], "kernel": [3, 5], "batch_norm": [False, True], "dropout": [0.0, 0.5]}


def small_definition(space: str = "conv_net"):
    if space == "conv_net":
        return make_definition("conv_net", SMALL, (1, 8, 8), 10)
    return make_definition("medmnist_cnn", {"depth": [1, 2, 3], "hidden": [16, 32, 64]}, (1, 8, 8), 10)


def hand_made_predictor(definition) -> LatencyPredictor:
    """Distinct made-up times per layer and every correction term non-zero, so each part is checked."""
    env = current_environment("cpu")
    header = TableHeader(profile="host-cpu-1t", device="cpu", threads=1, batch_size=1, precision="float32",
                         statistic="min", warmup_runs=1, n_repeats=3, n_inputs=16,
                         torch_version=env["torch_version"], machine=env["machine"])
    rng = np.random.default_rng(0)
    rows = {LayerKey.from_spec(spec): Timing.from_times_ms([float(rng.uniform(0.01, 0.2))])
            for spec in definition.enumerate_layers()}
    correction = LatencyCorrection()
    correction.overhead_ms_, correction.scale_, correction.per_layer_ms_ = 0.005, 1.1, 0.002
    correction.switch_ms_ = {"conv3|conv5": 0.0125, "conv5|linear": 0.003, "conv3|linear": 0.001}
    return LatencyPredictor(LatencyTable(header, rows), definition, correction)


@pytest.mark.parametrize("space", ["conv_net", "medmnist_cnn"])
def test_expected_latency_equals_predictor_for_one_hot_probabilities(space):
    definition = small_definition(space)
    predictor = hand_made_predictor(definition)
    expected = ExpectedLatency(predictor)
    samples = list(definition.all_samples())
    for sample in samples[:: max(1, len(samples) // 150)]:
        assert float(expected(expected.one_hot(sample))) == pytest.approx(predictor.predict(sample), rel=1e-9)


def test_expected_latency_is_the_mean_over_samples_of_a_mixture():
    """Linear in each label's probabilities: a 50/50 mix of two depths is the mean of both."""
    definition = small_definition()
    predictor = hand_made_predictor(definition)
    expected = ExpectedLatency(predictor)
    sample = definition.extreme_sample("max")
    probs = expected.one_hot(sample)
    probs["depth"] = torch.tensor([0.5, 0.0, 0.5], dtype=torch.float64)
    mean = 0.5 * (predictor.predict({**sample, "depth": 1}) + predictor.predict({**sample, "depth": 3}))
    assert float(expected(probs)) == pytest.approx(mean, rel=1e-9)


def test_expected_latency_gradient_reaches_the_architecture_logits():
    definition = small_definition()
    expected = ExpectedLatency(hand_made_predictor(definition))
    logits = {label: torch.zeros(len(values), requires_grad=True) for label, values in expected.labels.items()}
    expected({label: torch.softmax(x, 0) for label, x in logits.items()}).backward()
    assert all(x.grad is not None and torch.isfinite(x.grad).all() for x in logits.values())
    # more filters cost more: the gradient pushes the logit of the largest width down, of the smallest up
    grad = logits["conv0_filters"].grad
    assert grad[1] > 0 > grad[0]
    assert logits["depth"].grad[2] > 0 > logits["depth"].grad[0]


def test_expected_latency_reads_nni_export_probs_dicts():
    definition = small_definition()
    expected = ExpectedLatency(hand_made_predictor(definition))
    sample = definition.extreme_sample("min")
    as_dicts = {label: {value: float(p) for value, p in zip(values, expected.one_hot(sample)[label])}
                for label, values in expected.labels.items()}
    assert float(expected(as_dicts)) == pytest.approx(float(expected(expected.one_hot(sample))))


def randomise_batch_norm(supernet) -> None:
    """Non-trivial BN statistics and scales, so a wrong slice shows."""
    torch.manual_seed(0)
    for name, tensor in [*supernet.named_buffers(), *supernet.named_parameters()]:
        if "BatchNorm" in name and name.endswith(("running_mean", ":bias")):
            tensor.data.uniform_(-1, 1)
        elif "BatchNorm" in name and name.endswith(("running_var", ":weight")):
            tensor.data.uniform_(0.5, 2)


@pytest.mark.parametrize("space", ["conv_net", "medmnist_cnn"])
def test_subnet_through_supernet_equals_frozen_nni_model_with_same_weights(space):
    definition = small_definition(space)
    supernet = SuperNet(definition)
    torch.manual_seed(0)
    randomise_batch_norm(supernet)
    space_module = make_model_space(space, dict(definition.choices), definition.input_shape, definition.num_classes)
    x = torch.randn(6, *definition.input_shape)
    rng = np.random.default_rng(1)
    for _ in range(8):
        sample = definition.random_sample(rng)
        frozen = space_module.freeze(sample)
        frozen.net.load_state_dict(extract_subnet(supernet, sample).state_dict())
        frozen.eval()
        supernet.eval()
        torch.testing.assert_close(supernet(x, sample), frozen(x), rtol=1e-5, atol=1e-6)


STAGED = {"stages": [1, 2], "blocks": [1, 2], "width": [0.5, 1.0]}  # every op and attention (the defaults)


def test_staged_net_subnet_through_supernet_equals_frozen_nni_model_with_same_weights():
    """Every op (pools, skip, depthwise, dilated), attention, width and residual of staged_net."""
    definition = make_definition("staged_net", STAGED, (1, 16, 16), 3)
    supernet = SuperNet(definition)
    randomise_batch_norm(supernet)
    space_module = make_model_space("staged_net", dict(definition.choices), definition.input_shape, 3)
    x = torch.randn(6, *definition.input_shape)
    rng = np.random.default_rng(2)
    samples = [definition.random_sample(rng) for _ in range(12)]
    for op, attention in zip(definition.choices["op"], itertools.cycle(definition.choices["attention"])):
        samples.append({**definition.extreme_sample("max"), "s0_b0_op": op, "s0_b0_attn": attention,
                        "s0_b0_width": 0.5})  # 16 -> 8 channels: pools and skip project
    seen_ops = set()
    supernet.eval()
    for sample in samples:
        frozen = space_module.freeze(sample)
        frozen.net.load_state_dict(extract_subnet(supernet, sample).state_dict())
        frozen.eval()
        torch.testing.assert_close(supernet(x, sample), frozen(x), rtol=1e-5, atol=1e-5)
        seen_ops |= {spec.op for spec in definition.describe(sample)}
    assert seen_ops >= {"conv", "dw_conv", "dil_conv", "max_pool", "avg_pool", "skip"}


def test_staged_net_supernet_shares_kernels_and_widths_per_position():
    definition = make_definition("staged_net", STAGED, (1, 16, 16), 3)
    supernet = SuperNet(definition)
    base = {**definition.extreme_sample("max"), "stages": 1, "blocks": 1}
    wide = extract_subnet(supernet, {**base, "s0_b0_op": "conv3x3", "s0_b0_width": 1.0})
    narrow = extract_subnet(supernet, {**base, "s0_b0_op": "conv1x1", "s0_b0_width": 0.5})
    # conv1x1 with 8 filters is the centre column of conv3x3's first 8 filters (op + BN, not residual)
    torch.testing.assert_close(narrow[1][0].weight, wide[1][0].body[0].weight[:8, :, 1:2, 1:2])
    pooled = extract_subnet(supernet, {**base, "s0_b0_op": "max_pool", "s0_b0_width": 0.5})
    assert not any(p.data_ptr() == q.data_ptr() for p in pooled.parameters() for q in wide.parameters())
    # SE's bottleneck is sliced too: 16 channels -> 4 hidden, 8 -> 2
    se_wide = extract_subnet(supernet, {**base, "s0_b0_op": "dw3x3", "s0_b0_attn": "se", "s0_b0_width": 1.0})
    se_narrow = extract_subnet(supernet, {**base, "s0_b0_op": "dw3x3", "s0_b0_attn": "se", "s0_b0_width": 0.5})
    first = lambda net: next(m for m in net.modules() if isinstance(m, torch.nn.Linear))  # noqa: E731
    torch.testing.assert_close(first(se_narrow).weight, first(se_wide).weight[:2, :8])


def test_staged_net_supernet_trains_by_path_sampling_and_scores_with_recalibration():
    """The recipe runs on staged_net as on the other spaces: the loss falls, scores are accuracies."""
    from nni_hwnas.data.datasets import DatasetSplits
    from nni_hwnas.oneshot.supernet_training import (SupernetSettings, calibration_batches, score_sample,
                                                     train_supernet)

    definition = make_definition("staged_net", {**STAGED, "stages": [2], "blocks": [1]}, (1, 8, 8), 2)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(192, 1, 8, 8, generator=g)
    x = x + torch.sign(torch.randn(192, 1, 1, 1, generator=g))  # class = the brightness sign: GAP keeps it
    y = (x.mean((1, 2, 3)) > 0).long()
    data = DatasetSplits("toy", x[:128], y[:128], x[128:], y[128:], x[128:], y[128:], 2, (1, 8, 8), "multi-class")
    supernet = SuperNet(definition)
    record = train_supernet(supernet, data, SupernetSettings(epochs=4, batch_size=32, augment=False,
                                                             sampling="sandwich"), seed=0)
    assert record["train_loss"][-1] < record["train_loss"][0]
    sample = definition.extreme_sample("max")
    plain = score_sample(supernet, data.val_x, data.val_y, sample)
    calibrated = score_sample(supernet, data.val_x, data.val_y, sample, calibration=calibration_batches(data, 2, 32))
    assert 0.0 <= plain <= 1.0 and 0.0 <= calibrated <= 1.0 and calibrated > 0.6


def test_recalibrated_statistics_are_the_sub_networks_own():
    """OFA's BN recalibration: the statistics of the sample's own activations on the given batches."""
    definition = small_definition()
    supernet = SuperNet(definition)
    randomise_batch_norm(supernet)
    sample = {**definition.extreme_sample("min"), "depth": 1, "conv0_bn": True}
    x = torch.randn(32, *definition.input_shape) * 2 + 1
    stats = supernet.calibrate(sample, [x[:16], x[16:]])
    conv = extract_subnet(supernet, sample)[0][0]
    activations = conv(x)
    mean = stats[0]["1.running_mean"]
    torch.testing.assert_close(mean, activations.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    supernet.eval()
    calibrated = supernet(x, sample, stats)
    assert all(torch.equal(before[k], v) for k, v in supernet.state_dict().items())  # nothing shared changed
    net = extract_subnet(supernet, sample, stats).eval()
    torch.testing.assert_close(calibrated, net(x), rtol=1e-5, atol=1e-6)


def test_supernet_shares_one_slot_across_widths_and_kernels():
    definition = small_definition()
    supernet = SuperNet(definition)
    narrow = {**definition.extreme_sample("min"), "depth": 2}
    wide = {**definition.extreme_sample("max"), "depth": 2}
    small, large = extract_subnet(supernet, narrow), extract_subnet(supernet, wide)
    # the 3x3/16-filter kernel is the centre of the 5x5/32-filter one
    torch.testing.assert_close(small[0][0].weight, large[0][0].weight[:16, :, 1:4, 1:4])


@pytest.mark.parametrize("seed,fill_margin", [(0, 0.0), (1, 0.0), (2, 0.0), (0, 2.0), (1, 50.0)])
def test_sweeping_towards_tighter_budgets_never_increases_predicted_cost(seed, fill_margin):
    from nni_hwnas.oneshot.conditioned import ConditionedSearch, ConditionedSettings

    definition = small_definition()
    predictor = hand_made_predictor(definition)
    search = ConditionedSearch(SuperNet(definition), ExpectedLatency(predictor),
                               ConditionedSettings(hidden=8, fill_margin=fill_margin), seed)
    with torch.no_grad():  # an untrained hyper-network with large random heads: modes jump around
        for head in search.hyper.heads.values():
            head.weight.normal_(0, 5.0)
    derived = search.sweep(np.linspace(0, 1, 21))
    costs = [d["predicted_latency_ms"] for d in derived]
    assert [d["budget"] for d in derived] == sorted((d["budget"] for d in derived), reverse=True)
    assert all(later <= earlier + 1e-12 for earlier, later in zip(costs, costs[1:]))
    assert all(d["predicted_latency_ms"] <= d["target_ms"] + 1e-12 for d in derived)
    assert costs[-1] <= search.min_ms  # the tightest target: the cheapest candidate's latency


def test_fill_spends_budget_left_only_on_values_near_the_mode():
    from nni_hwnas.oneshot.conditioned import fill_to_budget

    labels = {"a": (1, 2, 3), "b": (10, 20)}
    cost = lambda s: s["a"] + s["b"]  # noqa: E731
    logits = {"a": torch.tensor([5.0, 4.5, 0.0]), "b": torch.tensor([1.0, 0.0])}
    # within 1 nat of the modes: b 10 -> 20 (0.1 nat per unit of cost) goes before a 1 -> 2 (0.5); a 3 is 5 nats off
    assert fill_to_budget({"a": 1, "b": 10}, logits, labels, cost, 100, margin=1.0) == {"a": 2, "b": 20}
    assert fill_to_budget({"a": 1, "b": 10}, logits, labels, cost, 21, margin=1.0) == {"a": 1, "b": 20}
    assert fill_to_budget({"a": 1, "b": 10}, logits, labels, cost, 100, margin=0.0) == {"a": 1, "b": 10}
    assert fill_to_budget({"a": 1, "b": 10}, logits, labels, cost, 100, margin=10.0) == {"a": 3, "b": 20}


def test_repair_keeps_a_sample_within_budget_and_makes_cheapest_changes_first():
    from nni_hwnas.oneshot.conditioned import repair_to_budget

    labels = {"a": (1, 2, 3), "b": (10, 20)}
    cost = lambda s: s["a"] + s["b"]  # noqa: E731
    logits = {"a": torch.tensor([0.0, 0.0, 5.0]), "b": torch.tensor([0.0, 1.0])}
    # dropping b 20 -> 10 saves 10 for 1 logit; a 3 -> 1 saves 2 for 5: b goes first and suffices
    assert repair_to_budget({"a": 3, "b": 20}, logits, labels, cost, 15) == {"a": 3, "b": 10}
    assert repair_to_budget({"a": 3, "b": 20}, logits, labels, cost, 100) == {"a": 3, "b": 20}


@pytest.mark.parametrize("strategy", ["DARTS"])
def test_nni_oneshot_strategy_runs_on_our_space_through_nas_experiment(strategy, nni_home, tmp_path):
    """A real NasExperiment (NNI's one-shot engine) with our latency penalty; its result is our sample."""
    from nni_hwnas.data.datasets import load_dataset, subset
    from nni_hwnas.oneshot.nni_space import live_probs, run_oneshot

    data = load_dataset("digits", seed=0)
    data.train_x, data.train_y = subset(data.train_x, data.train_y, 128, 0)
    choices = {"depth": [1, 2], "filters": [16, 32], "kernel": [3, 5], "batch_norm": [False, True], "dropout": [0.0]}
    definition = make_definition("conv_net", choices, data.input_shape, data.num_classes)
    predictor = hand_made_predictor(definition)
    result = run_oneshot(strategy, data, choices, predictor, target_ms=0.05, epochs=1,
                         working_directory=str(tmp_path / "exp"), penalty_scale=10.0)
    sample = result["sample"]
    assert definition.complete(sample) == sample
    assert result["predicted_latency_ms"] == pytest.approx(predictor.predict(sample))
    # the bound penalty sees the live architecture parameters: its value carries their gradient
    strategy_object = result["strategy_object"]
    probs = live_probs(strategy_object.oneshot_module)
    assert set(probs) >= {"depth", "conv0_filters", "conv0_kernel", "conv0_bn"}
    value = strategy_object.penalty.profile({})
    value.backward()
    alphas = [p for m in strategy_object.oneshot_module.modules() for p in [getattr(m, "_arch_alpha", None)]
              if isinstance(p, torch.nn.Parameter)]
    assert alphas and any(a.grad is not None and a.grad.abs().sum() > 0 for a in alphas)


def _supernet_config(strategy: str, args: dict, **hardware):
    from nni_hwnas.experiment.config import parse_config

    return parse_config({
        "name": "t", "seed": 0, "dataset": {"name": "digits"},
        "space": {"name": "conv_net", "choices": {"depth": [1, 2], "filters": [16, 32], "kernel": [3, 5],
                                                  "batch_norm": [False, True], "dropout": [0.0]}},
        "strategy": {"name": strategy, "args": args},
        "evaluator": {"kind": "supernet", "supernet_epochs": 1, "then_train_top_k": 2, "epochs": 1, "latency_repeats": 2},
        "hardware": hardware or {"profile": "host-cpu-1t"}, "experiment": {"max_trials": 15}})


@pytest.mark.parametrize("strategy,args", [("hw_evolution", {"population_size": 6, "sample_size": 3}),
                                           ("cmaes", {"population_size": 5}),
                                           ("conditioned", {"steps": 8, "n_budgets": 4, "fill_margin": 1.0})])
def test_supernet_kind_writes_a_results_dir_that_train_from_reads(strategy, args, tmp_path):
    from nni_hwnas.evaluation.retrain import pick_trial, read_results, sample_of_trial
    from nni_hwnas.oneshot.runner import run_weight_sharing

    config = _supernet_config(strategy, args)
    config.evaluator.supernet_calibrate = 1 if strategy == "cmaes" else 0
    lines: list[str] = []
    out = run_weight_sharing(config, output=tmp_path / "r", echo=lines.append)
    assert strategy == "conditioned" or any("15 samples in" in line for line in lines)
    run = read_results(out)
    definition = make_definition(run.run["space"], run.run["space_choices"], run.run["input_shape"], run.run["num_classes"])
    assert len(run.trials) == (4 if strategy == "conditioned" else 15)
    if strategy != "conditioned":  # ask/tell: each architecture scored once (budgets may share one)
        assert len({definition.arch_id(sample_of_trial(t)) for t in run.trials}) == len(run.trials)
    best = pick_trial(run, "best")
    assert definition.complete(sample_of_trial(best))  # a valid sample of the recorded space
    assert (out / "supernet.pt").is_file() and (out / "retrained" / "pareto.json").is_file()
    trained = __import__("json").loads((out / "supernet_then_train.json").read_text())["trained"]
    assert 1 <= len(trained) <= 2 and all(0.0 <= t["trained_accuracy"] <= 1.0 for t in trained)
    retrained = read_results(out / "retrained").trials
    assert [(r["trial_id"], r["accuracy"]) for r in retrained] == [(t["trial_id"], t["trained_accuracy"]) for t in trained]
    if strategy == "conditioned":
        costs = [t["latency_ms"] for t in run.trials]
        assert costs == sorted(costs, reverse=True)


def test_supernet_kind_without_a_latency_profile_is_one_line_error(tmp_path):
    from nni_hwnas.errors import UserError
    from nni_hwnas.oneshot.runner import run_weight_sharing

    config = _supernet_config("hw_evolution", {})
    config.hardware.profile = None
    with pytest.raises(UserError, match="needs `hardware.profile`"):
        run_weight_sharing(config, output=tmp_path / "r", echo=lambda line: None)
    with pytest.raises(UserError, match="runs strategy hw_evolution, cmaes, conditioned"):
        run_weight_sharing(_supernet_config("TPE", {}), output=tmp_path / "r", echo=lambda line: None)
    with pytest.raises(UserError, match="argument of strategy cmaes"):
        run_weight_sharing(_supernet_config("cmaes", {"sample_size": 3}), output=tmp_path / "r", echo=lambda line: None)


def test_live_results_are_read_by_the_dashboard_while_the_search_runs(tmp_path):
    """The in-process route's progress: the results dir fills as samples are scored."""
    from nni_hwnas.dashboard.sources import ResultsDirSource
    from nni_hwnas.oneshot.progress import LiveResults

    live = LiveResults(tmp_path, ("accuracy", "latency_ms"), interval_s=3600)
    source = ResultsDirSource(tmp_path)
    assert source.read().rows == []
    rows = [{"trial_id": f"s{i}", "status": "SUCCEEDED", "accuracy": a, "latency_ms": ms}
            for i, (a, ms) in enumerate([(0.5, 1.0), (0.7, 2.0), (0.6, 3.0)])]
    assert not live.write(rows[:1])  # within the interval: not rewritten
    assert live.write(rows, force=True)
    data = source.read()
    assert [r["trial_id"] for r in data.rows] == ["s0", "s1", "s2"]
    front = __import__("json").loads((tmp_path / "pareto.json").read_text())["front"]
    assert [r["trial_id"] for r in front] == ["s0", "s1"]


def test_supernet_training_updates_the_running_statistics_of_the_used_width_only():
    definition = small_definition()
    supernet = SuperNet(definition)
    sample = {**definition.extreme_sample("min"), "depth": 1, "conv0_bn": True}
    supernet.train()
    supernet(torch.randn(8, *definition.input_shape) + 3.0, sample)
    mean = supernet.slot_for(0, definition.describe(sample)[0]).tensor("op:BatchNorm2d0:running_mean")
    assert (mean[:16] != 0).all() and (mean[16:] == 0).all()


def test_supernet_evolution_turns_model_proposals_off_unless_asked():
    from nni_hwnas.oneshot.supernet_search import SUPERNET_MODEL_POOL, make_strategy

    definition = small_definition()
    supernet = SuperNet(definition)
    predict = hand_made_predictor(definition).predict
    assert make_strategy("hw_evolution", supernet, predict, seed=0).model_pool == SUPERNET_MODEL_POOL == 0
    assert make_strategy("hw_evolution", supernet, predict, seed=0, model_pool=50).model_pool == 50


def test_a_seeded_conditioned_run_does_not_depend_on_what_the_process_drew_before():
    """Super-network weights come from the run's seed, not from torch's global generator: the same
    seed gives the same trained weights and the same sweep whatever was drawn before it."""
    from nni_hwnas.data.datasets import DatasetSplits
    from nni_hwnas.oneshot.conditioned import ConditionedSearch, ConditionedSettings
    from nni_hwnas.oneshot.supernet_training import SupernetSettings, train_supernet

    definition = small_definition()
    predictor = hand_made_predictor(definition)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 1, 8, 8, generator=g)
    y = torch.randint(10, (96,), generator=g)
    data = DatasetSplits("toy", x[:64], y[:64], x[64:], y[64:], x[64:], y[64:], 10, (1, 8, 8), "multi-class")

    def run(seed: int, drawn_before: int) -> tuple[dict, list]:
        torch.rand(drawn_before)  # other work of the process
        supernet = SuperNet(definition, seed=seed)
        train_supernet(supernet, data, SupernetSettings(epochs=1, batch_size=32, augment=False), seed)
        search = ConditionedSearch(supernet, ExpectedLatency(predictor), ConditionedSettings(steps=6, hidden=8), seed)
        search.train(data)
        return supernet.state_dict(), [d["sample"] for d in search.sweep(np.linspace(0, 1, 5))]

    weights, sweep = run(3, 0)
    again_weights, again_sweep = run(3, 1000)
    assert sweep == again_sweep
    assert all(torch.equal(weights[k], again_weights[k]) for k in weights)
    other_weights, _ = run(4, 0)
    assert any(not torch.equal(weights[k], other_weights[k]) for k in weights)
