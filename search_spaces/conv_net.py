"""``conv_net``: the CIFAR-10 evolutionary study's space (seed 000).

1-5 conv layers, each with its own filter count (16-128), kernel (3/5/7) and optional
batch-norm, ReLU and a 2x2 max-pool (skipped once the map is 1x1, see
:func:`~search_spaces.layers.should_pool`), then dropout and a linear classifier on the flattened
map. Labels: ``depth``, ``conv{i}_filters``, ``conv{i}_kernel``, ``conv{i}_bn``, ``dropout``.
"""

from __future__ import annotations

from typing import Any, Mapping

from .definition import DEPTH_RULE, DROPOUT_RULE, FILTERS_RULE, ChoiceRule, SpaceDefinition
from .layers import LayerSpec, should_pool


class ConvNetDefinition(SpaceDefinition):
    name = "conv_net"
    rules = {
        "depth": DEPTH_RULE,
        "filters": FILTERS_RULE,
        "kernel": ChoiceRule(int, 1, 11, odd=True),
        "batch_norm": ChoiceRule(bool),
        "dropout": DROPOUT_RULE,
    }
    defaults = {
        "depth": [1, 2, 3, 4, 5],
        "filters": [16, 32, 64, 96, 128],
        "kernel": [3, 5, 7],
        "batch_norm": [False, True],
        "dropout": [0.0, 0.25, 0.5],
    }

    def labels(self) -> dict[str, tuple]:
        layers = self.labels_per_position([f"conv{i}" for i in range(max(self.choices["depth"]))],
                                          {"filters": "filters", "kernel": "kernel", "bn": "batch_norm"})
        return {"depth": self.choices["depth"], **layers, "dropout": self.choices["dropout"]}

    def active_labels(self, sample: Mapping[str, Any]) -> list[str]:
        depth = sample["depth"]
        layer = [f"conv{i}_{part}" for i in range(depth) for part in ("filters", "kernel", "bn")]
        return ["depth", *layer, "dropout"]

    def describe(self, sample: Mapping[str, Any]) -> list[LayerSpec]:
        full = self.complete(sample)
        channels, hw, _ = self.input_shape
        specs: list[LayerSpec] = []
        for i in range(full["depth"]):
            spec = LayerSpec("conv", channels, full[f"conv{i}_filters"], in_hw=hw,
                             kernel=full[f"conv{i}_kernel"], batch_norm=full[f"conv{i}_bn"],
                             relu=True, pool=should_pool(hw))
            specs.append(spec)
            channels, hw = spec.out_ch, spec.out_hw
        specs.append(LayerSpec("linear", channels * hw * hw, self.num_classes, relu=False,
                               flatten=True, dropout=full["dropout"]))
        return specs

    def enumerate_layers(self) -> list[LayerSpec]:
        """Every distinct conv and classifier layer, position by position (dropout 0)."""
        in_channels, hw, _ = self.input_shape
        channel_options = [in_channels]
        seen: dict[LayerSpec, None] = {}
        for position in range(max(self.choices["depth"])):
            pool = should_pool(hw)
            for in_ch in channel_options:
                for out_ch in self.choices["filters"]:
                    for kernel in self.choices["kernel"]:
                        for bn in self.choices["batch_norm"]:
                            seen.setdefault(LayerSpec("conv", in_ch, out_ch, in_hw=hw, kernel=kernel,
                                                      batch_norm=bn, relu=True, pool=pool))
            hw = hw // 2 if pool else hw
            channel_options = list(self.choices["filters"])
            if position + 1 in self.choices["depth"]:
                for channels in channel_options:
                    seen.setdefault(LayerSpec("linear", channels * hw * hw, self.num_classes, relu=False,
                                              flatten=True))
        return list(seen)
