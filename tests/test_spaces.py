"""Model spaces: every preset's smallest and largest choices build, run and have the right size."""

from __future__ import annotations

import pytest
import torch

from nni_hwnas.errors import UserError
from search_spaces import load_preset, make_definition, make_model_space, preset_names

SHAPES = {"digits": ((1, 8, 8), 10), "octmnist": ((1, 28, 28), 4), "bloodmnist": ((3, 28, 28), 8),
          "cifar10": ((3, 32, 32), 10)}


def expected_params(space: str, sample: dict, input_shape, num_classes: int) -> int:
    """Parameter count written out independently of the space code (same shrink rule: pool while >= 2)."""
    channels, hw, _ = input_shape
    total = 0
    if space == "conv_net":
        for i in range(sample["depth"]):
            f, k, bn = sample[f"conv{i}_filters"], sample[f"conv{i}_kernel"], sample[f"conv{i}_bn"]
            total += k * k * channels * f + (2 * f if bn else f)
            channels = f
            hw = hw // 2 if hw >= 2 else hw
        return total + channels * hw * hw * num_classes + num_classes
    if space == "staged_net":
        return staged_net_params(sample, input_shape, num_classes)
    filters, hidden = sample["filters"], sample["hidden"]
    for _ in range(sample["depth"]):
        total += 9 * channels * filters + filters
        channels = filters
        hw = hw // 2 if hw >= 2 else hw
    return total + channels * hw * hw * hidden + hidden + hidden * num_classes + num_classes


def staged_net_params(sample: dict, input_shape, num_classes: int) -> int:
    """staged_net written out: BN everywhere (2 per channel), 1x1 projections where widths change."""
    channels, hw, _ = input_shape
    stem = sample["stem_filters"]
    total, channels = 9 * channels * stem + 2 * stem, stem
    for stage in range(sample["stages"]):
        for block in range(sample["blocks"]):
            op, attn = sample[f"s{stage}_b{block}_op"], sample[f"s{stage}_b{block}_attn"]
            out = max(1, round(sample["base_filters"] * 2 ** stage * sample[f"s{stage}_b{block}_width"]))
            k = {"conv3x3": 3, "dil3x3": 3, "conv1x1": 1, "dw3x3": 3, "dw5x5": 5}.get(op, 0)
            if op.startswith("dw"):
                total += k * k * channels + 2 * channels + channels * out + 2 * out
            elif k:
                total += k * k * channels * out + 2 * out
            elif channels != out:
                total += channels * out + 2 * out
            hidden = max(1, out // 4)
            total += {"none": 0, "se": 2 * out * hidden + hidden + out, "cbam": 2 * out * hidden + 98,
                      "eca": 3 if out < 128 else 5}[attn]
            channels = out
    return total + channels * num_classes + num_classes


@pytest.mark.parametrize("preset", preset_names())
@pytest.mark.parametrize("dataset", list(SHAPES))
@pytest.mark.parametrize("pick", ["min", "max"])
def test_preset_extremes_freeze_run_and_count_params(preset, dataset, pick):
    space_name, choices = load_preset(preset)
    shape, classes = SHAPES[dataset]
    space = make_model_space(space_name, choices, shape, classes)
    sample = space.definition.extreme_sample(pick)
    model = space.freeze(sample)
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, classes)
    full = space.definition.complete(sample)
    assert sum(p.numel() for p in model.parameters()) == expected_params(space_name, full, shape, classes)


def test_conv_net_deepest_on_digits_skips_pooling_at_one_pixel():
    definition = make_definition("conv_net", {"depth": [5]}, (1, 8, 8), 10)
    specs = definition.describe(definition.extreme_sample("max"))
    assert [s.in_hw for s in specs[:5]] == [8, 4, 2, 1, 1]
    assert [s.pool for s in specs[:5]] == [True, True, True, False, False]
    assert specs[-1].in_ch == 128  # 128 filters x 1 x 1


def test_nni_sees_every_multi_valued_label():
    space = make_model_space("conv_net", {"depth": [1, 2], "filters": [16], "kernel": [3, 5]}, (1, 8, 8), 10)
    labels = set(space.simplify())
    assert labels == {"depth", "conv0_kernel", "conv1_kernel", "conv0_bn", "conv1_bn", "dropout"}


def test_canonical_sample_ignores_unused_layers():
    definition = make_definition("conv_net", None, (1, 28, 28), 4)
    a = definition.extreme_sample("min")
    b = dict(a, conv3_filters=128, conv4_kernel=7)  # layers beyond depth 1
    assert definition.arch_id(a) == definition.arch_id(b)
    assert definition.arch_id(a) != definition.arch_id(dict(a, conv0_filters=32))


@pytest.mark.parametrize("choices, fragment", [
    ({"kernel": [4]}, "'kernel'"),
    ({"depth": [0, 1]}, "'depth'"),
    ({"filters": [16.5]}, "'filters'"),
    ({"batch_norm": ["yes"]}, "'batch_norm'"),
    ({"kernels": [3]}, "did you mean 'kernel'"),
    ({"dropout": []}, "non-empty"),
])
def test_bad_choices_name_the_problem(choices, fragment):
    with pytest.raises(UserError, match=fragment):
        make_definition("conv_net", choices, (1, 8, 8), 10)


def test_unknown_space_and_preset_list_allowed_values():
    with pytest.raises(UserError, match="allowed: conv_net, medmnist_cnn"):
        make_definition("resnet", None, (1, 8, 8), 10)
    with pytest.raises(UserError, match="unknown space preset"):
        load_preset("nope")


def test_malformed_preset_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("space: conv_net\nchoices: {depth: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML") as info:
        load_preset(bad)
    assert "\n" not in str(info.value)
