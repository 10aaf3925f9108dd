"""Training-free evaluation: similarity estimators, proxies, the reference cache, the proxy trial."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from nni_hwnas.hardware.cost_model import estimate_cost
from nni_hwnas.errors import UserError
from nni_hwnas.evaluation.proxies import (PROXIES, ProxyFailed, ProxySettings, RmiReference, match_by_relative_depth,
                               score)
from nni_hwnas.evaluation.reference import load_reference, prepare_reference, standard_reference_layers
from nni_hwnas.evaluation.similarity import cka, gram_linear, hsic, linear_cka, rbf_cka
from search_spaces import make_definition
from search_spaces.layers import LayerSpec, build_network

DIGITS = {"name": "digits"}
TINY_TRAINING = {"epochs": 1, "train_subset": 64, "augment": False}


def gaussian(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- similarity ------------------------------------------------------------------------------


def test_cka_of_identical_representations_is_one():
    x = gaussian(200, 16, 0)
    assert float(linear_cka(x, x)) == pytest.approx(1.0, abs=1e-12)
    assert float(rbf_cka(x, x)) == pytest.approx(1.0, abs=1e-12)
    assert float(linear_cka(x, x, debiased=True)) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_one_under_rotation_and_isotropic_scaling():
    x = gaussian(200, 8, 1)
    q, _ = torch.linalg.qr(gaussian(8, 8, 2))
    assert float(linear_cka(x, 3.0 * x @ q)) == pytest.approx(1.0, abs=1e-10)
    assert float(rbf_cka(x, -0.5 * x @ q)) == pytest.approx(1.0, abs=1e-10)


def test_linear_cka_of_invertible_linear_map_matches_closed_form():
    # For centred, column-orthonormal x and y = x A: CKA = tr(M) / sqrt(d tr(M^2)), M = A A^T.
    x = gaussian(300, 8, 3)
    x, _ = torch.linalg.qr(x - x.mean(dim=0))
    a = gaussian(8, 8, 4)
    m = a @ a.T
    expected = float(torch.trace(m) / torch.sqrt(8 * torch.trace(m @ m)))
    assert float(linear_cka(x, x @ a)) == pytest.approx(expected, rel=1e-10)
    assert 0.3 < expected < 0.95  # a generic map is neither a rotation nor unrelated


def test_cka_of_independent_representations_is_near_zero():
    x, y = gaussian(1000, 10, 5), gaussian(1000, 10, 6)
    # The biased estimator's bias is about sqrt(d1 d2) / n = 0.01 here; the debiased one has none.
    assert 0.0 < float(linear_cka(x, y)) < 0.03
    assert abs(float(linear_cka(x, y, debiased=True))) < 0.01
    assert abs(float(rbf_cka(x, y, debiased=True))) < 0.01


def test_rbf_cka_sees_dependence_that_linear_cka_misses():
    x = torch.rand(400, 1, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 2 - 1
    y = x ** 2  # uncorrelated with x, yet a function of it
    assert float(linear_cka(x, y)) < 0.05
    assert float(rbf_cka(x, y)) > 0.25


def test_cka_of_constant_representation_is_zero():
    x = gaussian(50, 4, 8)
    assert float(linear_cka(x, torch.ones(50, 3))) == 0.0


def test_hsic_rejects_mismatched_grams():
    with pytest.raises(ValueError, match="equal in size"):
        hsic(torch.eye(4), torch.eye(5))


# --- matching and proxies ----------------------------------------------------------------------


def test_match_by_relative_depth_pairs_each_reference_block_once():
    assert match_by_relative_depth(2, 6) == [(0, 0), (0, 1), (0, 2), (1, 3), (1, 4), (1, 5)]
    assert match_by_relative_depth(4, 4) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert match_by_relative_depth(6, 3) == [(1, 0), (3, 1), (5, 2)]  # the last blocks always meet


def small_net(seed: int = 0, batch_norm: bool = True) -> nn.Sequential:
    torch.manual_seed(seed)
    return build_network([
        LayerSpec("conv", 1, 8, in_hw=8, kernel=3, batch_norm=batch_norm, pool=True),
        LayerSpec("conv", 8, 16, in_hw=4, kernel=3, batch_norm=batch_norm, pool=True),
        LayerSpec("linear", 16 * 2 * 2, 10, relu=False, flatten=True, dropout=0.25),
    ])


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 10, (32,), generator=g)


@pytest.fixture(scope="module")
def reference(batch):
    return RmiReference.from_network(small_net(seed=123, batch_norm=False).eval(), batch[0])


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_proxy_scores_are_deterministic_and_leave_the_network_alone(name, batch, reference):
    network = small_net()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    settings = ProxySettings(seed=3, reference=reference)
    first = score(name, network, *batch, settings)
    second = score(name, small_net(), *batch, settings)
    assert first == second and math.isfinite(first)
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())
    assert network.training and all(p.grad is None for p in network.parameters())


def test_rmi_after_training_steps_is_deterministic_and_moves_toward_the_reference(batch, reference):
    at_init = score("rmi", small_net(), *batch, ProxySettings(seed=1, reference=reference))
    trained = [score("rmi", small_net(), *batch, ProxySettings(seed=1, reference=reference, train_steps=5))
               for _ in range(2)]
    assert trained[0] == trained[1]
    assert trained[0] > at_init


def test_rmi_of_the_reference_itself_is_one(batch):
    ref_net = small_net(seed=5, batch_norm=False).eval()
    ref = RmiReference.from_network(ref_net, batch[0])
    assert score("rmi", ref_net, *batch, ProxySettings(reference=ref)) == pytest.approx(1.0, abs=1e-9)
    assert score("rmi", ref_net, *batch, ProxySettings(reference=ref, blocks="last")) == pytest.approx(1.0, abs=1e-9)


def test_size_proxies_agree_with_the_cost_model(batch):
    definition = make_definition("conv_net", None, (1, 8, 8), 10)
    sample = {"depth": 3, "dropout": 0.25, **{f"conv{i}_{k}": v for i in range(3)
                                             for k, v in (("filters", 32), ("kernel", 5), ("bn", i == 1))}}
    specs = definition.describe(sample)
    cost = estimate_cost(specs)
    assert score("params", build_network(specs), *batch) == cost.params
    assert score("flops", build_network(specs), *batch) == cost.flops


class NanLayer(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("nan")


@pytest.mark.parametrize("name", sorted(set(PROXIES) - {"params"}))
def test_nan_forward_fails_every_proxy_that_runs_the_network(name, batch, reference):
    network = small_net()
    network[0].append(NanLayer())
    with pytest.raises(ProxyFailed):
        score(name, network, *batch, ProxySettings(reference=reference))


def test_broken_forward_is_a_proxy_failure(batch, reference):
    network = small_net()
    network[1] = nn.Linear(5, 10)  # wrong input size for the 8x4x4 map
    for name in ("rmi", "naswot", "grad_norm", "synflow"):
        with pytest.raises(ProxyFailed, match="forward"):
            score(name, network, *batch, ProxySettings(reference=reference))


def test_rmi_needs_a_reference(batch):
    with pytest.raises(ValueError, match="reference"):
        score("rmi", small_net(), *batch)
    with pytest.raises(ValueError, match="unknown proxy"):
        score("zen", small_net(), *batch)


# --- reference cache -----------------------------------------------------------------------


def test_reference_is_cached_reused_and_invalidated_by_config(tmp_path):
    first = prepare_reference(DIGITS, training=TINY_TRAINING, seed=0, cache_dir=tmp_path)
    assert first["source"] == "trained" and first["sample"] is None
    weights = tmp_path / first["key"] / "reference.pt"
    assert first["path"] == str(weights) and weights.is_file()
    stamp = weights.stat().st_mtime_ns

    again = prepare_reference(DIGITS, training=TINY_TRAINING, seed=0, cache_dir=tmp_path)
    assert again["source"] == "cache" and again["key"] == first["key"]
    assert weights.stat().st_mtime_ns == stamp
    assert again["val_accuracy"] == first["val_accuracy"]

    changed = [prepare_reference(DIGITS, training={**TINY_TRAINING, "epochs": 2}, seed=0, cache_dir=tmp_path),
               prepare_reference(DIGITS, training=TINY_TRAINING, seed=1, cache_dir=tmp_path),
               prepare_reference({**DIGITS, "val_fraction": 0.3}, training=TINY_TRAINING, seed=0, cache_dir=tmp_path)]
    keys = {first["key"], *(c["key"] for c in changed)}
    assert len(keys) == 4 and all(c["source"] == "trained" for c in changed)

    network = load_reference(again)
    assert not network.training
    assert len(network) == len(standard_reference_layers((1, 8, 8), 10))


def test_reference_from_space_sample_and_corrupt_record_retrains(tmp_path):
    definition = make_definition("medmnist_cnn", None, (1, 8, 8), 10)
    sample = {"depth": 2, "hidden": 32, "dropout": 0.2}
    ref = prepare_reference(DIGITS, definition=definition, sample=sample, training=TINY_TRAINING, cache_dir=tmp_path)
    assert ref["sample"] == definition.canonical(sample)
    assert [LayerSpec(**d) for d in ref["layers"]] == definition.describe(sample)
    (tmp_path / ref["key"] / "reference.json").write_text("{not json")
    assert prepare_reference(DIGITS, definition=definition, sample=sample, training=TINY_TRAINING,
                             cache_dir=tmp_path)["source"] == "trained"


def test_user_checkpoint_is_used_as_is_and_checked(tmp_path):
    definition = make_definition("medmnist_cnn", None, (1, 8, 8), 10)
    sample = {"depth": 1, "hidden": 16, "dropout": 0.0}
    network = build_network(definition.describe(sample))
    folder = tmp_path / "retrain-abc"
    folder.mkdir()
    torch.save(network.state_dict(), folder / "model_state.pt")
    (folder / "retrain.json").write_text(json.dumps({"sample": sample}))

    ref = prepare_reference(DIGITS, definition=definition, checkpoint=folder, cache_dir=tmp_path / "cache")
    assert ref["source"] == "checkpoint" and ref["path"] == str(folder / "model_state.pt")
    assert not (tmp_path / "cache").exists()  # nothing trained
    loaded = load_reference(ref)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), network.state_dict().values()))

    with pytest.raises(UserError, match="does not fit"):
        prepare_reference(DIGITS, definition=definition, checkpoint=folder,
                          sample={"depth": 2, "hidden": 16, "dropout": 0.0})
    with pytest.raises(UserError, match="not found"):
        prepare_reference(DIGITS, definition=definition, checkpoint=tmp_path / "missing.pt")


# --- the proxy trial -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_reference(tmp_path_factory):
    return prepare_reference(DIGITS, training=TINY_TRAINING, cache_dir=tmp_path_factory.mktemp("refs"))


def test_proxy_metrics_follow_the_contract(digits_reference):
    from nni_hwnas.evaluation.proxy_trial import make_context, proxy_metrics

    definition = make_definition("conv_net", None, (1, 8, 8), 10)
    specs = definition.describe({"depth": 1, "conv0_filters": 16, "conv0_kernel": 3, "conv0_bn": False,
                                 "dropout": 0.0})
    context = make_context(DIGITS, 0, 64, digits_reference)
    metrics = proxy_metrics(specs, context, "rmi", seed=0)
    assert metrics["default"] == metrics["proxy_score"] and 0.0 < metrics["default"] <= 1.0
    assert {k: metrics[k] for k in ("params", "flops", "peak_mem_kb")} == estimate_cost(specs).as_metrics()
    assert metrics["within_budget"] == 1 and metrics["proxy_seconds"] > 0
    assert proxy_metrics(specs, context, "rmi", seed=0)["default"] == metrics["default"]


def test_proxy_scores_in_process_marks_failures_as_none(digits_reference, monkeypatch):
    from nni_hwnas.evaluation import proxies
    from nni_hwnas.evaluation.proxy_trial import make_context, proxy_scores

    definition = make_definition("medmnist_cnn", None, (1, 8, 8), 10)
    samples = [{"depth": d, "hidden": 32, "dropout": 0.0} for d in (1, 2)]
    context = make_context(DIGITS, 0, 64, digits_reference)
    scores = proxy_scores(definition, samples, context, "naswot", seed=0)
    assert all(s is not None for s in scores) and scores[0]["default"] != scores[1]["default"]
    monkeypatch.setitem(proxies.PROXIES, "naswot", lambda *args: float("nan"))
    assert proxy_scores(definition, samples, context, "naswot", seed=0) == [None, None]


def test_score_and_report_raises_on_nan_and_reports_nothing(digits_reference, monkeypatch):
    import nni

    from nni_hwnas.evaluation import proxies
    from nni_hwnas.evaluation.proxy_trial import score_and_report

    reported = []
    monkeypatch.setattr(nni, "report_final_result", reported.append)
    definition = make_definition("medmnist_cnn", None, (1, 8, 8), 10)

    class Frozen:  # what NNI hands the evaluator: a frozen model with our layer specs
        layer_specs = definition.describe({"depth": 1, "hidden": 16, "dropout": 0.0})

    metrics = score_and_report(Frozen(), DIGITS, "grad_norm", 0, None, 64)
    assert reported == [metrics] and metrics["default"] > 0
    monkeypatch.setitem(proxies.PROXIES, "grad_norm", lambda *args: float("nan"))
    with pytest.raises(ProxyFailed):
        score_and_report(Frozen(), DIGITS, "grad_norm", 0, None, 64)
    assert len(reported) == 1
    with pytest.raises(UserError, match="reference"):
        score_and_report(Frozen(), DIGITS, "rmi", 0, None, 64)


def test_largest_sample_maximises_capacity_with_a_moderate_dropout():
    from nni_hwnas.evaluation.reference import largest_sample

    sample = largest_sample(make_definition("conv_net", None, (1, 8, 8), 10))
    assert sample["depth"] == 5 and sample["dropout"] == 0.25
    assert all(sample[f"conv{i}_filters"] == 128 and sample[f"conv{i}_kernel"] == 7 and sample[f"conv{i}_bn"]
               for i in range(5))
