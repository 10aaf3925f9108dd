"""``staged_net``: EfficientNAS's staged operator space (seed 001).

A conv 3x3 stem (with a 2x2 max-pool on inputs of 16x16 and more while ``stem_pool`` is true, the
default: CPU-sized blocks; ``stem_pool: [false]`` keeps 32x32 inputs at full resolution in the first
stage, as CIFAR ResNets do, for about 4x the MACs), then ``stages`` resolution
stages of ``blocks`` searchable blocks each, then global average pooling and a linear classifier.
Stage ``s`` is ``base_filters * 2**s`` channels wide; each block picks

- an op: ``conv3x3``, ``conv1x1``, ``max_pool``, ``avg_pool``, ``skip`` (the paper's stage 1),
  ``dw3x3``, ``dw5x5`` (depthwise-separable), ``dil3x3`` (dilation 2) (stage 2);
- a width multiplier of the stage's channels;
- an attention on its output: ``none``, or ``se``, ``cbam``, ``eca`` (stage 3).

Convolutional blocks whose input and output widths match are residual (``x + f(x)``); pools
and skips change the width with a 1x1 projection. The last block of every stage but the last
halves the map (2x2 max-pool, skipped at 1x1 as everywhere, see
:func:`~search_spaces.layers.should_pool`). Labels: ``stages``, ``blocks``, ``stem_filters``, ``stem_pool``, ``base_filters``,
``s{stage}_b{block}_op``, ``s{stage}_b{block}_width``, ``s{stage}_b{block}_attn``, ``dropout``.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator, Mapping

from .definition import DROPOUT_RULE, ChoiceRule, SpaceDefinition
from .layers import LayerSpec, should_pool
from .ops import NO_ATTENTION

# Block op name -> (registry op, kernel). The names are what samples, trials.csv and the UI show.
BLOCK_OPS: dict[str, tuple[str, int]] = {
    "conv3x3": ("conv", 3), "conv1x1": ("conv", 1), "max_pool": ("max_pool", 3), "avg_pool": ("avg_pool", 3),
    "skip": ("skip", 1), "dw3x3": ("dw_conv", 3), "dw5x5": ("dw_conv", 5), "dil3x3": ("dil_conv", 3),
}
ATTENTION_NAMES = (NO_ATTENTION, "se", "cbam", "eca")
CONV_OPS = ("conv", "dw_conv", "dil_conv")  # learnable blocks: BN + ReLU, residual when widths match
# The paper's growth of the space: the values each stage adds (stage 1 also has every width/"none").
PROGRESSIVE_STAGES: tuple[tuple[str, ...], ...] = (
    ("conv3x3", "conv1x1", "max_pool", "avg_pool", "skip", NO_ATTENTION),
    ("dw3x3", "dw5x5", "dil3x3"),
    ("se", "cbam", "eca"),
)
# Cheapest first, by params, MACs and latency alike: what the budget check's candidates use.
CHEAPNESS = ("skip", "max_pool", "avg_pool", "conv1x1", "dw3x3", "dw5x5", "conv3x3", "dil3x3")
STEM_POOL_MIN_HW = 16  # 28x28 and 32x32 inputs start at 14x14 / 16x16: CPU-sized blocks


def block_prefix(stage: int, block: int) -> str:
    return f"s{stage}_b{block}"


class StagedNetDefinition(SpaceDefinition):
    name = "staged_net"
    rules = {
        "stages": ChoiceRule(int, 1, 4),
        "blocks": ChoiceRule(int, 1, 6),
        "stem_filters": ChoiceRule(int, 1, 512),
        "stem_pool": ChoiceRule(bool),
        "base_filters": ChoiceRule(int, 1, 512),
        "op": ChoiceRule(str, allowed=tuple(BLOCK_OPS)),
        "width": ChoiceRule(float, 0.125, 4.0),
        "attention": ChoiceRule(str, allowed=ATTENTION_NAMES),
        "dropout": DROPOUT_RULE,
    }
    defaults = {
        "stages": [2],
        "blocks": [2],
        "stem_filters": [16],
        "stem_pool": [True],
        "base_filters": [16],
        "op": list(BLOCK_OPS),
        "width": [0.5, 1.0],
        "attention": list(ATTENTION_NAMES),
        "dropout": [0.0],
    }
    # What ``hw_evolution``'s ``progressive`` search widens through when no stages are given.
    progressive_stages = PROGRESSIVE_STAGES

    def labels(self) -> dict[str, tuple]:
        labels: dict[str, tuple] = {key: self.choices[key] for key in ("stages", "blocks", "stem_filters",
                                                                         "stem_pool", "base_filters")}
        prefixes = [block_prefix(stage, block) for stage in range(max(self.choices["stages"]))
                    for block in range(max(self.choices["blocks"]))]
        labels.update(self.labels_per_position(prefixes, {"op": "op", "width": "width", "attn": "attention"}))
        labels["dropout"] = self.choices["dropout"]
        return labels

    def active_labels(self, sample: Mapping[str, Any]) -> list[str]:
        blocks = [f"{block_prefix(s, b)}_{part}" for s in range(sample["stages"]) for b in range(sample["blocks"])
                  for part in ("op", "width", "attn")]
        return ["stages", "blocks", "stem_filters", "stem_pool", "base_filters", *blocks, "dropout"]

    def _stem(self, stem_filters: int, stem_pool: bool) -> LayerSpec:
        channels, hw, _ = self.input_shape
        return LayerSpec("conv", channels, stem_filters, in_hw=hw, kernel=3, batch_norm=True, relu=True,
                         pool=stem_pool and hw >= STEM_POOL_MIN_HW)

    def stage_width(self, base_filters: int, stage: int, multiplier: float) -> int:
        return max(1, round(base_filters * 2 ** stage * multiplier))

    @staticmethod
    def block(op_name: str, in_ch: int, out_ch: int, hw: int, attention: str, pool: bool) -> LayerSpec:
        """One searchable block as a layer spec (see the module docstring for the rules)."""
        op, kernel = BLOCK_OPS[op_name]
        learnable = op in CONV_OPS
        return LayerSpec(op, in_ch, out_ch, in_hw=hw, kernel=kernel, batch_norm=True, relu=learnable, pool=pool,
                         attention=attention, residual=learnable and in_ch == out_ch)

    def _positions(self, stages: int, blocks: int) -> Iterator[tuple[int, int, bool]]:
        """(stage, block, ends a stage that downsamples) in order."""
        for stage in range(stages):
            for block in range(blocks):
                yield stage, block, block == blocks - 1 and stage < stages - 1

    def describe(self, sample: Mapping[str, Any]) -> list[LayerSpec]:
        full = self.complete(sample)
        stem = self._stem(full["stem_filters"], full["stem_pool"])
        specs = [stem]
        channels, hw = stem.out_ch, stem.out_hw
        for stage, block, downsample in self._positions(full["stages"], full["blocks"]):
            prefix = block_prefix(stage, block)
            out_ch = self.stage_width(full["base_filters"], stage, full[f"{prefix}_width"])
            spec = self.block(full[f"{prefix}_op"], channels, out_ch, hw, full[f"{prefix}_attn"],
                              downsample and should_pool(hw))
            specs.append(spec)
            channels, hw = spec.out_ch, spec.out_hw
        specs.append(LayerSpec("gap_linear", channels, self.num_classes, in_hw=hw, relu=False, flatten=True,
                               dropout=full["dropout"]))
        return specs

    def enumerate_layers(self) -> list[LayerSpec]:
        """Every distinct block, position by position: a block's input widths are the previous
        position's output widths (dropout 0)."""
        seen: dict[LayerSpec, None] = {}
        for stem_filters, stem_pool in itertools.product(self.choices["stem_filters"], self.choices["stem_pool"]):
            stem = self._stem(stem_filters, stem_pool)
            seen.setdefault(stem)
            for stages in self.choices["stages"]:
                for blocks in self.choices["blocks"]:
                    for base in self.choices["base_filters"]:
                        widths, hw = {stem.out_ch}, stem.out_hw
                        for stage, _, downsample in self._positions(stages, blocks):
                            outs = {self.stage_width(base, stage, m) for m in self.choices["width"]}
                            pool = downsample and should_pool(hw)
                            for in_ch in sorted(widths):
                                for out_ch in sorted(outs):
                                    for op_name in self.choices["op"]:
                                        for attn in self.choices["attention"]:
                                            seen.setdefault(self.block(op_name, in_ch, out_ch, hw, attn, pool))
                            widths, hw = outs, (hw // 2 if pool else hw)
                        for channels in sorted(widths):
                            seen.setdefault(LayerSpec("gap_linear", channels, self.num_classes, in_hw=hw,
                                                      relu=False, flatten=True))
        return list(seen)

    def cheapest_candidates(self) -> list[dict[str, Any]]:
        """Every block at its cheapest op, smallest width and no attention, per (stages, blocks)."""
        smallest = self.extreme_sample("min")
        cheapest_op = next(op for op in CHEAPNESS if op in self.choices["op"])
        lightest = NO_ATTENTION if NO_ATTENTION in self.choices["attention"] else self.choices["attention"][0]
        for label in self.mutable_labels():
            if label.endswith("_op"):
                smallest[label] = cheapest_op
            elif label.endswith("_attn"):
                smallest[label] = lightest
        if "stem_pool" in smallest:  # pooling after the stem is the cheaper value (bools sort False first)
            smallest["stem_pool"] = True
        return [{**smallest, "stages": s, "blocks": b} for s in self.choices["stages"] for b in self.choices["blocks"]]
