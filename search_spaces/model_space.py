"""The thin NNI adapter: a ``ModelSpace`` built from a :class:`SpaceDefinition`.

Every choice is registered with ``add_mutable`` and read back with ``ensure_frozen`` (NNI 3.0's
documented pattern for spaces written as plain Python), so NNI's strategies see the labels and
``freeze(sample)`` re-runs ``__init__`` under the sample: the frozen model is this class with
concrete layers, built by the same :func:`~search_spaces.layers.build_network` as everything else.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Sequence

import nni
import torch
from nni.mutable import ensure_frozen
from nni.nas.nn.pytorch import ModelSpace
from nni.nas.space import model_context

from .conv_net import ConvNetDefinition
from .definition import SpaceDefinition
from .medmnist_cnn import MedmnistCnnDefinition
from .staged_net import StagedNetDefinition
from .layers import build_network


class HwModelSpace(ModelSpace):
    """Base for our NNI model spaces; subclasses only name their ``definition_cls``."""

    definition_cls: ClassVar[type[SpaceDefinition]]

    def __init__(self, choices: Mapping[str, Sequence] | None = None,
                 input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10) -> None:
        super().__init__()
        self.definition = self.definition_cls.create(choices, input_shape, num_classes)
        sample: dict[str, Any] = {}
        for label, values in self.definition.labels().items():
            if len(values) == 1:
                sample[label] = values[0]
            else:
                sample[label] = ensure_frozen(self.add_mutable(nni.choice(label, list(values))))
        self.sample = sample
        self.layer_specs = self.definition.describe(sample)
        self.net = build_network(self.layer_specs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def freeze(self, sample: dict[str, Any]) -> "HwModelSpace":
        """A fixed network for ``sample`` (NNI requires this when mutables are added by hand)."""
        with model_context(sample):
            return self.__class__(*self.trace_args, **self.trace_kwargs)


class ConvNetSpace(HwModelSpace):
    """``conv_net`` as an NNI model space (see :mod:`search_spaces.conv_net`)."""

    definition_cls = ConvNetDefinition


class MedmnistCnnSpace(HwModelSpace):
    """``medmnist_cnn`` as an NNI model space (see :mod:`search_spaces.medmnist_cnn`)."""

    definition_cls = MedmnistCnnDefinition


class StagedNetSpace(HwModelSpace):
    """``staged_net`` as an NNI model space (see :mod:`search_spaces.staged_net`)."""

    definition_cls = StagedNetDefinition
