"""``medmnist_cnn``: the OCTMNIST random-search study's space (seed 003).

1-5 blocks of conv 3x3 (same padding) -> ReLU -> 2x2 max-pool (skipped once the map is 1x1),
then a hidden linear layer (16-512 units) with ReLU, dropout (0/0.2/0.5/0.8) and the classifier.
The study's conv had no padding and stopped adding blocks when the map got small; same padding
plus the shared pooling rule keeps every depth valid on 8x8, 28x28 and 32x32 inputs instead.
``filters`` is one value for all blocks (32 in the study). Labels: ``depth``, ``filters``,
``hidden``, ``dropout``.
"""

from __future__ import annotations

from typing import Any, Mapping

from .definition import DEPTH_RULE, DROPOUT_RULE, FILTERS_RULE, ChoiceRule, SpaceDefinition
from .layers import LayerSpec, should_pool


class MedmnistCnnDefinition(SpaceDefinition):
    name = "medmnist_cnn"
    rules = {
        "depth": DEPTH_RULE,
        "filters": FILTERS_RULE,
        "hidden": ChoiceRule(int, 1, 8192),
        "dropout": DROPOUT_RULE,
    }
    defaults = {
        "depth": [1, 2, 3, 4, 5],
        "filters": [32],
        "hidden": [16, 32, 64, 128, 256, 512],
        "dropout": [0.0, 0.2, 0.5, 0.8],
    }

    def labels(self) -> dict[str, tuple]:
        return {key: self.choices[key] for key in ("depth", "filters", "hidden", "dropout")}

    def describe(self, sample: Mapping[str, Any]) -> list[LayerSpec]:
        full = self.complete(sample)
        channels, hw, _ = self.input_shape
        specs: list[LayerSpec] = []
        for _ in range(full["depth"]):
            spec = LayerSpec("conv", channels, full["filters"], in_hw=hw, kernel=3, relu=True,
                             pool=should_pool(hw))
            specs.append(spec)
            channels, hw = spec.out_ch, spec.out_hw
        specs.append(LayerSpec("linear", channels * hw * hw, full["hidden"], relu=True, flatten=True))
        specs.append(LayerSpec("linear", full["hidden"], self.num_classes, relu=False,
                               dropout=full["dropout"]))
        return specs

    def enumerate_layers(self) -> list[LayerSpec]:
        """Every distinct layer, per filter count (shared by all blocks) and position (dropout 0)."""
        seen: dict[LayerSpec, None] = {}
        for filters in self.choices["filters"]:
            channels, hw, _ = self.input_shape
            for position in range(max(self.choices["depth"])):
                spec = LayerSpec("conv", channels, filters, in_hw=hw, kernel=3, relu=True, pool=should_pool(hw))
                seen.setdefault(spec)
                channels, hw = spec.out_ch, spec.out_hw
                if position + 1 in self.choices["depth"]:
                    for hidden in self.choices["hidden"]:
                        seen.setdefault(LayerSpec("linear", channels * hw * hw, hidden, relu=True, flatten=True))
        for hidden in self.choices["hidden"]:
            seen.setdefault(LayerSpec("linear", hidden, self.num_classes, relu=False))
        return list(seen)
