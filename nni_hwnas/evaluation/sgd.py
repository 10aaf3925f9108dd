"""SGD with momentum, Nesterov and weight decay, written out: the optimizer of a trial's training.

Why not ``torch.optim.SGD``: building the first ``torch.optim`` optimizer in a process imports
``torch._dynamo`` (its methods are wrapped to keep ``torch.compile`` out), about 2.2 CPU seconds
on this machine, and every trial is a fresh process. That is as much as several epochs of a small
network, and an early-stopped trial (MO-ASHA) pays it for one epoch of work.

The step is torch's single-tensor SGD step (the one it takes for CPU tensors) op for op, and the
learning rate is set per step as ``torch.optim.lr_scheduler.LambdaLR`` sets it, so training gives
the same numbers (``tests/test_training_recipe.py`` compares the two).
"""

from __future__ import annotations

from typing import Iterable

import torch

__all__ = ["Sgd"]


class Sgd:
    """Plain SGD (dampening 0) over the parameters that require gradients.

    ``step(lr)`` takes the learning rate of that step, so the schedule stays a pure function of
    the step index (:func:`nni_hwnas.evaluation.training.lr_factor`).
    """

    def __init__(self, parameters: Iterable[torch.nn.Parameter], momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False) -> None:
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.parameters = [p for p in parameters if p.requires_grad]
        self.momentum, self.weight_decay, self.nesterov = float(momentum), float(weight_decay), bool(nesterov)
        self._buffers: list[torch.Tensor | None] = [None] * len(self.parameters)

    def zero_grad(self) -> None:
        for parameter in self.parameters:
            parameter.grad = None

    @torch.no_grad()
    def step(self, lr: float) -> None:
        """One update; parameters without a gradient this step are left alone, buffers kept."""
        for i, parameter in enumerate(self.parameters):
            grad = parameter.grad
            if grad is None:
                continue
            if self.weight_decay:
                grad = grad.add(parameter, alpha=self.weight_decay)
            if self.momentum:
                buffer = self._buffers[i]
                if buffer is None:
                    buffer = self._buffers[i] = grad.detach().clone()
                else:
                    buffer.mul_(self.momentum).add_(grad)
                grad = grad.add(buffer, alpha=self.momentum) if self.nesterov else buffer
            parameter.add_(grad, alpha=-lr)
