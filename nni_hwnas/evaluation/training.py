"""Short SGD training on in-memory tensors: the training evaluator's inner loop.

Whole splits live as tensors; batches are sliced from a seeded permutation and augmented on the
batch (see :mod:`nni_hwnas.data.augment`), so an epoch has no per-sample Python work. Searches
train many unfamiliar architectures at one learning rate, and some (deep, without batch norm)
blow up in the first steps at a rate others need or barely move from chance in a short trial:
a linear warm-up and gradient-norm clipping bound the first steps, and He initialisation
(``weight_init: kaiming``) gives them a signal to learn from. ``precision: bf16`` runs forward
and loss under CPU autocast, which pays off on CPUs with AVX512-BF16/AMX (see
:func:`cpu_supports_bf16`).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from nni_hwnas.data.augment import augment_batch
from nni_hwnas.data.datasets import DatasetSplits, subset
from nni_hwnas.errors import UserError
from nni_hwnas.evaluation.sgd import Sgd


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the trial is recorded as failed, the search goes on."""


@dataclass
class SgdSettings:
    """SGD with momentum over epochs of mini-batches: shared by a trial's training and the
    super-network's (:class:`~nni_hwnas.oneshot.supernet_training.SupernetSettings`)."""

    epochs: int = 3
    batch_size: int = 64
    learning_rate: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4


@dataclass
class TrainSettings(SgdSettings):
    lr_schedule: str = "cosine"
    train_subset: int | None = None
    augment: bool = True
    warmup_epochs: float = 0.0
    grad_clip_norm: float | None = None
    label_smoothing: float = 0.0
    precision: str = "fp32"
    weight_init: str = "default"


@dataclass(frozen=True)
class EpochResult:
    """What one epoch measured (``epoch`` 0-based): the per-epoch report of a trial.

    The losses are there for early stopping: on small validation sets most young networks
    predict the majority class, so their validation accuracies tie while their losses still
    differ (MO-ASHA's ``score_metric``; ``experiments/benchmarks/multi_fidelity.py`` measures how
    well each ranks).
    """

    epoch: int
    val_accuracy: float
    val_loss: float
    train_loss: float  # mean over the epoch's batches, as trained (augmented, dropout on)


@dataclass
class TrainResult:
    val_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    images_per_second: float = 0.0  # training steps only (no validation), augmentation included

    @property
    def final_accuracy(self) -> float:
        return self.val_accuracy[-1] if self.val_accuracy else 0.0


def lr_factor(schedule: str, step: int, total_steps: int, warmup_steps: int = 0) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then cosine to zero, step or constant.

    Warm-up rises linearly to 1 over ``warmup_steps``; the schedule then runs over the remaining
    steps (step decays x0.1 at 50% and 75% of them).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    rest = max(1, total_steps - warmup_steps)
    t = min(step - warmup_steps, rest) / rest
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "step":
        return 0.1 ** ((t >= 0.5) + (t >= 0.75))
    if schedule == "constant":
        return 1.0
    raise ValueError(f"unknown lr schedule {schedule!r}; allowed: cosine, step, constant")


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 arithmetic (AVX512-BF16 or AMX-BF16 in /proc/cpuinfo).

    Elsewhere autocast still runs but emulates bf16, usually slower than fp32, so we refuse it.
    """
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def check_precision(precision: str) -> None:
    """Refuse an unknown precision, and bf16 on a CPU without native bf16."""
    if precision not in ("fp32", "bf16"):
        raise UserError(f"evaluator.precision must be fp32 or bf16, got {precision!r}")
    if precision == "bf16" and not cpu_supports_bf16():
        raise UserError("evaluator.precision bf16 needs a CPU with AVX512-BF16 or AMX-BF16 and this one has "
                        "neither; use precision: fp32")


def kaiming_init(model: nn.Module, seed: int) -> None:
    """He-normal weights (fan-in, ReLU gain) and zero biases for every conv and linear layer.

    PyTorch's default init shrinks ReLU activations layer by layer; a 5-layer conv stack without
    batch norm then starts with near-constant logits and sits at chance for the first hundreds of
    steps of a short search trial (experiments/benchmarks/cifar10_recipe.py, part stability).
    """
    generator = torch.Generator().manual_seed(int(seed))
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def autocast(precision: str) -> contextlib.AbstractContextManager:
    """CPU bf16 autocast for ``bf16`` (weights and optimizer stay fp32), else nothing."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def loss_function(data: DatasetSplits, label_smoothing: float = 0.0) -> nn.Module:
    return nn.BCEWithLogitsLoss() if data.is_multilabel else nn.CrossEntropyLoss(label_smoothing=label_smoothing)


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


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, multilabel: bool) -> tuple[float, float]:
    """Accuracy and mean loss (cross-entropy, or BCE for multi-label; no label smoothing) of one pass."""
    if len(y) == 0:
        return 0.0, float("nan")
    logits = predict_logits(model, x).float()
    loss = (nn.functional.binary_cross_entropy_with_logits(logits, y.float()) if multilabel
            else nn.functional.cross_entropy(logits, y))
    return accuracy(logits, y, multilabel), float(loss)


def train_model(model: nn.Module, data: DatasetSplits, settings: TrainSettings, seed: int,
                on_epoch: Callable[[EpochResult], None] | None = None) -> TrainResult:
    """Train ``model`` with SGD+momentum; call ``on_epoch(EpochResult)`` after each epoch.

    Raises:
        TrainingDiverged: when a batch loss is not finite.
    """
    check_precision(settings.precision)
    if settings.weight_init == "kaiming":
        kaiming_init(model, seed)
    elif settings.weight_init != "default":
        raise UserError(f"evaluator.weight_init must be default or kaiming, got {settings.weight_init!r}")
    generator = torch.Generator().manual_seed(seed)
    train_x, train_y = subset(data.train_x, data.train_y, settings.train_subset, seed)
    # Channels-last convolutions train 1.2-1.35x faster on this CPU (bf16 and fp32, 1 thread, CIFAR-sized
    # staged_net blocks; measured side by side); the model goes back to the default layout afterwards,
    # so its latency is timed as the table's rows are.
    layout = torch.channels_last if train_x.dim() == 4 else torch.contiguous_format
    model.to(memory_format=layout)
    n = len(train_x)
    steps_per_epoch = max(1, math.ceil(n / settings.batch_size))
    optimizer = Sgd(model.parameters(), momentum=settings.momentum, weight_decay=settings.weight_decay,
                    nesterov=settings.momentum > 0)
    total_steps, warmup_steps = steps_per_epoch * settings.epochs, int(round(settings.warmup_epochs * steps_per_epoch))
    lr_factor(settings.lr_schedule, 0, total_steps, warmup_steps)  # an unknown schedule fails here, not mid-run
    taken = 0  # optimizer steps so far: the schedule's clock
    criterion = loss_function(data, settings.label_smoothing)
    result = TrainResult()
    start = time.perf_counter()
    step_seconds = 0.0
    for epoch in range(settings.epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        total_loss = 0.0
        epoch_start = time.perf_counter()
        for step in range(steps_per_epoch):
            index = order[step * settings.batch_size:(step + 1) * settings.batch_size]
            xb, yb = train_x[index], train_y[index]
            if settings.augment:
                xb = augment_batch(xb, data.augment, generator)
            with autocast(settings.precision):
                loss = criterion(model(xb.contiguous(memory_format=layout)), yb)
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}")
            optimizer.zero_grad()
            loss.backward()
            if settings.grad_clip_norm:
                nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip_norm)
            optimizer.step(settings.learning_rate * lr_factor(settings.lr_schedule, taken, total_steps, warmup_steps))
            taken += 1
            total_loss += loss.item() * len(index)
        step_seconds += time.perf_counter() - epoch_start
        val_acc, val_loss = evaluate(model, data.val_x, data.val_y, data.is_multilabel)
        result.val_accuracy.append(val_acc)
        result.val_loss.append(val_loss)
        result.train_loss.append(total_loss / n)
        if on_epoch is not None:
            on_epoch(EpochResult(epoch, val_acc, val_loss, total_loss / n))
    model.to(memory_format=torch.contiguous_format)
    result.train_seconds = time.perf_counter() - start
    result.images_per_second = n * settings.epochs / max(step_seconds, 1e-9)
    return result
