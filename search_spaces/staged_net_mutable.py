"""``staged_net`` written with NNI's mutable layers (``LayerChoice``), for one-shot strategies.

The frozen form (:class:`~search_spaces.model_space.StagedNetSpace`) rebuilds a plain network
per sample; one-shot strategies (DARTS, ENAS, ...) need every candidate inside one network
instead. Here each block is a ``LayerChoice`` over its ops, labelled ``s{i}_b{j}_op`` like the
frozen space, and every op candidate ends in a ``LayerChoice`` over the attentions labelled
``s{i}_b{j}_attn`` (NNI treats mutables sharing a label as one decision), so attention stays
inside the residual sum as in the frozen block. Freezing a sample gives the same network, with
the same parameter count, as :func:`~search_spaces.layers.build_network` on its description.

Channel counts must not depend on a choice, so ``width`` (and ``stages``, ``blocks``, the
filter counts and ``dropout``) must have one value each here.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from nni.nas.nn.pytorch import LayerChoice, ModelSpace
from torch import Tensor, nn

from nni_hwnas.errors import UserError

from .layers import Residual, build_layer
from .ops import ATTENTIONS, NO_ATTENTION, operator
from .staged_net import StagedNetDefinition, block_prefix

FIXED_KINDS = ("stages", "blocks", "stem_filters", "stem_pool", "base_filters", "width", "dropout")


def _choice(candidates: dict[str, nn.Module], label: str) -> nn.Module:
    """A ``LayerChoice`` when there is something to choose, else the one candidate."""
    return LayerChoice(candidates, label=label) if len(candidates) > 1 else next(iter(candidates.values()))


class StagedNetMutableSpace(ModelSpace):
    """``staged_net`` as an NNI model space of ``LayerChoice``\\ s (a one-shot super-network)."""

    def __init__(self, choices: Mapping[str, Sequence] | None = None, input_shape: Sequence[int] = (1, 28, 28),
                 num_classes: int = 10) -> None:
        super().__init__()
        definition = StagedNetDefinition.create(choices, input_shape, num_classes)
        varying = [kind for kind in FIXED_KINDS if len(definition.choices[kind]) != 1]
        if varying:
            raise UserError(f"staged_net's LayerChoice form needs one value for {', '.join(varying)} "
                            "(channel counts must not depend on a choice); set them in the preset")
        self.definition = definition
        # Widths are fixed, so shapes do not depend on the ops: describe with the first op everywhere.
        probe = definition.describe({label: values[0] for label, values in definition.labels().items()})
        blocks: list[nn.Module] = [build_layer(probe[0])]
        per_stage = definition.choices["blocks"][0]
        for index, shape in enumerate(probe[1:-1]):
            prefix = block_prefix(index // per_stage, index % per_stage)
            candidates = {name: self._block(name, shape.in_ch, shape.out_ch, shape.in_hw, shape.pool, prefix)
                          for name in definition.choices["op"]}
            blocks.append(_choice(candidates, f"{prefix}_op"))
        blocks.append(build_layer(probe[-1]))
        self.net = nn.Sequential(*blocks)

    def _block(self, op_name: str, in_ch: int, out_ch: int, hw: int, pool: bool, prefix: str) -> nn.Module:
        """One op candidate: op -> attention choice, inside the residual sum when the block has one."""
        spec = self.definition.block(op_name, in_ch, out_ch, hw, NO_ATTENTION, pool)
        attentions = {name: ATTENTIONS[name].build(out_ch) if name != NO_ATTENTION else nn.Identity()
                      for name in self.definition.choices["attention"]}
        body: nn.Module = nn.Sequential(*operator(spec.op).build(spec), _choice(attentions, f"{prefix}_attn"))
        modules = [Residual(body) if spec.residual else body]
        return nn.Sequential(*modules, *([nn.MaxPool2d(2)] if spec.pool else []))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
