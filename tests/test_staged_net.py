"""The operator registry and the ``staged_net`` space: every op builds, runs on every input size,
and costs what its formula says; the CNN spaces keep their parameter counts and table keys."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nni_hwnas.errors import UserError
from nni_hwnas.hardware.cost_model import layer_macs
from nni_hwnas.hardware.latency_table import LatencyTable, LayerKey
from search_spaces.layers import LayerSpec, build_layer, build_network, layer_params, parameter_count
from search_spaces.ops import ATTENTIONS, OPERATORS, eca_kernel
from search_spaces.registry import load_preset, make_definition
from search_spaces.staged_net import BLOCK_OPS

REPO = Path(__file__).resolve().parents[1]
SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]
SPATIAL_OPS = [name for name, op in OPERATORS.items() if op.spatial]


def hooked_macs(module: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of every Conv/Linear actually run, counted from their outputs (batch 1)."""
    total = 0

    def count(layer: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
            per_output = layer.in_channels // layer.groups * int(np.prod(layer.kernel_size))
            total += output.numel() * per_output
        elif isinstance(layer, nn.Linear):
            total += output.numel() * layer.in_features

    handles = [m.register_forward_hook(count) for m in module.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        module.eval()(x)
    for handle in handles:
        handle.remove()
    return total


@pytest.mark.parametrize("op", SPATIAL_OPS)
@pytest.mark.parametrize("hw", [1, 4, 7, 14])
@pytest.mark.parametrize("in_ch,out_ch", [(8, 8), (8, 12)])
def test_spatial_op_builds_runs_and_matches_its_formulas(op, hw, in_ch, out_ch):
    kernel = 1 if op == "skip" else 3
    spec = LayerSpec(op, in_ch, out_ch, in_hw=hw, kernel=kernel, batch_norm=True, relu=op != "skip", pool=hw > 1)
    module = build_layer(spec)
    x = torch.randn(1, in_ch, hw, hw)
    y = module.eval()(x)
    assert y.shape == (1, out_ch, spec.out_hw, spec.out_hw)
    assert sum(p.numel() for p in module.parameters()) == layer_params(spec)
    assert hooked_macs(module, x) == layer_macs(spec)


@pytest.mark.parametrize("name", sorted(ATTENTIONS))
@pytest.mark.parametrize("channels,hw", [(4, 1), (16, 7), (24, 14)])
def test_attention_builds_and_matches_its_formulas(name, channels, hw):
    spec = LayerSpec("conv", channels, channels, in_hw=hw, kernel=3, batch_norm=True, attention=name, residual=True)
    module = build_layer(spec)
    x = torch.randn(1, channels, hw, hw)
    assert module.eval()(x).shape == x.shape
    assert sum(p.numel() for p in module.parameters()) == layer_params(spec)
    rescales = {"se": 1, "eca": 1, "cbam": 2}[name] * channels * hw * hw  # elementwise x * weights
    assert layer_macs(spec) == hooked_macs(module, x) + rescales


def test_attention_closed_forms():
    # SE on 16 channels: hidden 4; two linears with bias. ECA on 16: kernel 3. CBAM: MLP without bias + 7x7 conv.
    assert layer_params(LayerSpec("skip", 16, 16, in_hw=4, attention="se")) == 16 * 4 + 4 + 4 * 16 + 16
    assert eca_kernel(16) == 3 and eca_kernel(64) == 3 and eca_kernel(256) == 5
    assert layer_params(LayerSpec("skip", 16, 16, in_hw=4, attention="cbam")) == 2 * 16 * 4 + 2 * 49


def test_residual_block_adds_its_input():
    spec = LayerSpec("conv", 4, 4, in_hw=5, kernel=3, batch_norm=True, residual=True)
    module = build_layer(spec).eval()
    body = module[0].body
    x = torch.randn(2, 4, 5, 5)
    assert torch.allclose(module(x), x + body(x))
    with pytest.raises(ValueError, match="in_ch == out_ch"):
        build_layer(LayerSpec("conv", 4, 8, in_hw=5, kernel=3, residual=True))


def test_unknown_op_names_the_known_ones():
    with pytest.raises(ValueError, match="known: conv, dil_conv"):
        build_layer(LayerSpec("warp", 4, 4))


@pytest.mark.parametrize("preset", ["staged_net_s1", "staged_net_s2", "staged_net_s3"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("classes", [2, 11])
def test_staged_net_samples_run_on_every_input_size(preset, shape, classes):
    space, choices = load_preset(preset)
    definition = make_definition(space, choices, shape, classes)
    rng = np.random.default_rng(len(preset) + shape[1] + classes)
    layers = set(definition.enumerate_layers())
    for _ in range(6):
        specs = definition.describe(definition.random_sample(rng))
        net = build_network(specs)
        assert net.eval()(torch.randn(3, *shape)).shape == (3, classes)
        assert sum(p.numel() for p in net.parameters()) == parameter_count(specs)
        assert {s for s in specs} <= layers  # the profiler's enumeration covers every sample


def test_staged_net_stages_grow_the_op_lists():
    ops = [load_preset(f"staged_net_s{i}")[1]["op"] for i in (1, 2, 3)]
    assert set(ops[0]) == {"conv3x3", "conv1x1", "max_pool", "avg_pool", "skip"}
    assert set(ops[1]) - set(ops[0]) == {"dw3x3", "dw5x5", "dil3x3"} and set(ops[2]) == set(BLOCK_OPS)
    assert load_preset("staged_net_s2")[1]["attention"] == ["none"]
    assert set(load_preset("staged_net_s3")[1]["attention"]) == {"none", "se", "cbam", "eca"}


def test_staged_net_residual_when_widths_match_and_downsamples_between_stages():
    definition = make_definition("staged_net", {"op": ["conv3x3", "skip"], "attention": ["none"]}, (1, 28, 28), 10)
    sample = {label: values[0] for label, values in definition.mutable_labels().items()}
    sample.update({"s0_b0_width": 1.0, "s0_b1_width": 0.5, "s1_b0_op": "skip", "s1_b0_width": 1.0})
    specs = definition.describe(sample)
    assert [s.in_hw for s in specs[:-1]] == [28, 14, 14, 7, 7]  # stem pools 28->14; stage 0 ends with a pool
    assert specs[1].residual and not specs[2].residual and not specs[3].residual
    assert specs[2].pool and specs[-1].op == "gap_linear"


def test_staged_net_rejects_unknown_op_in_one_line():
    with pytest.raises(UserError, match="choice 'op' has value 'conv9x9'; allowed: one of conv3x3"):
        make_definition("staged_net", {"op": ["conv3x3", "conv9x9"]}, (1, 8, 8), 10)


@pytest.mark.parametrize("space,shape", [("conv_net", (1, 8, 8)), ("conv_net", (1, 28, 28)),
                                         ("medmnist_cnn", (1, 8, 8)), ("medmnist_cnn", (1, 28, 28))])
def test_cnn_spaces_keep_their_table_keys(space, shape):
    """Tables written before the registry (no ``attention``/``residual`` fields) still cover the
    CNN spaces: every key the space enumerates is a row of the shipped table."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = LatencyTable.load(REPO / "hw_profiles/tables/host-cpu-1t.json")
    definition = make_definition(space, None, shape, 10)
    keys = {LayerKey.from_spec(spec) for spec in definition.enumerate_layers()}
    assert keys <= set(table.rows)


def test_conv_net_parameter_count_unchanged():
    # conv 1->16 k3 with BN (144 + 32), pool 8->4; conv 16->32 k5 no BN (12800 + 32); linear 32*2*2 -> 10.
    definition = make_definition("conv_net", None, (1, 8, 8), 10)
    sample = {"depth": 2, "conv0_filters": 16, "conv0_kernel": 3, "conv0_bn": True, "conv1_filters": 32,
              "conv1_kernel": 5, "conv1_bn": False, "dropout": 0.0}
    assert parameter_count(definition.describe(sample)) == 176 + 12832 + 128 * 10 + 10


def test_staged_net_nni_model_space_freezes_to_the_same_network():
    from search_spaces.registry import make_model_space

    space, choices = load_preset("staged_net_s3")
    model_space = make_model_space(space, choices, (1, 8, 8), 4)
    definition = model_space.definition
    sample = definition.random_sample(np.random.default_rng(3))
    frozen = model_space.freeze(sample)
    assert sum(p.numel() for p in frozen.parameters()) == parameter_count(definition.describe(sample))
    assert frozen(torch.randn(2, 1, 8, 8)).shape == (2, 4)


def test_staged_net_layer_choice_form_has_the_same_labels_and_networks():
    from search_spaces.staged_net_mutable import StagedNetMutableSpace

    space, choices = load_preset("staged_net_s3")
    choices = {**choices, "width": [1.0]}
    mutable = StagedNetMutableSpace(choices, (1, 28, 28), 3)
    definition = mutable.definition
    simplified = mutable.simplify()
    assert set(simplified) == set(definition.mutable_labels())
    assert all(list(simplified[label].values) == list(values) for label, values in definition.mutable_labels().items())
    rng = np.random.default_rng(5)
    for _ in range(4):
        sample = definition.random_sample(rng)
        frozen = mutable.freeze(sample)
        assert sum(p.numel() for p in frozen.parameters()) == parameter_count(definition.describe(sample))
        assert frozen(torch.randn(2, 1, 28, 28)).shape == (2, 3)
    with pytest.raises(UserError, match="needs one value for width"):
        StagedNetMutableSpace(load_preset("staged_net_s3")[1], (1, 8, 8), 3)


def test_stem_pool_false_keeps_the_first_stage_at_full_resolution():
    """``staged_net_cifar`` works at 32x32 in its first stage (as CIFAR ResNets do); the default stem pools."""
    space, choices = load_preset("staged_net_cifar")
    cifar = make_definition(space, choices, (3, 32, 32), 10)
    pooled = make_definition(space, {**choices, "stem_pool": [True]}, (3, 32, 32), 10)
    sample = cifar.random_sample(np.random.default_rng(0))
    full, halved = cifar.describe(sample), pooled.describe(sample)
    assert full[1].in_hw == 32 and halved[1].in_hw == 16
    assert parameter_count(full) == parameter_count(halved)  # pooling changes MACs, not weights
    assert sum(layer_macs(s) for s in full) > 3 * sum(layer_macs(s) for s in halved)
    assert {dataclasses.replace(s, dropout=0.0) for s in full} <= set(cifar.enumerate_layers())  # table rows
    assert cifar.complete(cifar.cheapest_candidates()[0])["stem_pool"] is False  # the one value there is
    both = make_definition(space, {**choices, "stem_pool": [False, True]}, (3, 32, 32), 10)
    assert all(c["stem_pool"] is True for c in both.cheapest_candidates())  # pooling is the cheaper stem
