"""Short SGD training on in-memory tensors: the training evaluator's inner loop.

Whole splits live as tensors; batches are sliced from a seeded permutation and augmented on the
batch (see :mod:`nni_hwnas.data.augment`), so an epoch has no per-sample Python work.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from nni_hwnas.data.augment import augment_batch
from nni_hwnas.data.datasets import DatasetSplits, subset


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the trial is recorded as failed, the search goes on."""


@dataclass
class TrainSettings:
    epochs: int = 3
    batch_size: int = 64
    learning_rate: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule: str = "cosine"
    train_subset: int | None = None
    augment: bool = True


@dataclass
class TrainResult:
    val_accuracy: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_seconds: float = 0.0

    @property
    def final_accuracy(self) -> float:
        return self.val_accuracy[-1] if self.val_accuracy else 0.0


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int):
    """Per-step learning-rate schedule: cosine to zero, step (x0.1 at 50% and 75%), or constant."""
    if schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps)))
    if schedule == "step":
        milestones = [int(total_steps * 0.5), int(total_steps * 0.75)]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    if schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    raise ValueError(f"unknown lr schedule {schedule!r}; allowed: cosine, step, constant")


def loss_function(data: DatasetSplits) -> nn.Module:
    return nn.BCEWithLogitsLoss() if data.is_multilabel else nn.CrossEntropyLoss()


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def accuracy(logits: torch.Tensor, y: torch.Tensor, multilabel: bool) -> float:
    """Top-1 accuracy; for multi-label tasks the mean per-label accuracy at threshold 0.5."""
    if len(y) == 0:
        return 0.0
    if multilabel:
        return float(((logits > 0).float() == y).float().mean())
    return float((logits.argmax(dim=1) == y).float().mean())


def evaluate_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, multilabel: bool) -> float:
    return accuracy(predict_logits(model, x), y, multilabel)


def train_model(model: nn.Module, data: DatasetSplits, settings: TrainSettings, seed: int,
                on_epoch: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train ``model`` with SGD+momentum; call ``on_epoch(epoch, val_accuracy)`` after each epoch.

    Raises:
        TrainingDiverged: when a batch loss is not finite.
    """
    generator = torch.Generator().manual_seed(seed)
    train_x, train_y = subset(data.train_x, data.train_y, settings.train_subset, seed)
    n = len(train_x)
    steps_per_epoch = max(1, math.ceil(n / settings.batch_size))
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.learning_rate, momentum=settings.momentum,
                                weight_decay=settings.weight_decay, nesterov=settings.momentum > 0)
    scheduler = make_scheduler(optimizer, settings.lr_schedule, steps_per_epoch * settings.epochs)
    criterion = loss_function(data)
    result = TrainResult()
    start = time.perf_counter()
    for epoch in range(settings.epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        total_loss = 0.0
        for step in range(steps_per_epoch):
            index = order[step * settings.batch_size:(step + 1) * settings.batch_size]
            xb, yb = train_x[index], train_y[index]
            if settings.augment:
                xb = augment_batch(xb, data.augment, generator)
            loss = criterion(model(xb), yb)
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(index)
        val_acc = evaluate_accuracy(model, data.val_x, data.val_y, data.is_multilabel)
        result.val_accuracy.append(val_acc)
        result.train_loss.append(total_loss / n)
        if on_epoch is not None:
            on_epoch(epoch, val_acc)
    result.train_seconds = time.perf_counter() - start
    return result
