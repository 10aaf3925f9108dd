"""Training a super-network by path sampling, and scoring a sample with the inherited weights.

Recipe (SPOS / OFA, sized for a shared CPU): SGD with Nesterov momentum 0.9, cosine learning rate
from ``learning_rate`` to 0, weight decay 5e-4, batches augmented as the training evaluator does.
Each step trains either one uniformly drawn sub-network (``uniform``, SPOS) or, with ``sandwich``
(OFA / BigNAS), the largest, the smallest and ``n_random`` random ones, their gradients summed
before one step. Gradients are clipped to norm ``grad_clip``: without it the deep sub-networks
without batch-norm blew the shared weights up within a few epochs (uniform, digits: loss 4.4 -> 10.2).
The cost is reported (``train_seconds``, sub-network passes) beside the result.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from nni_hwnas.data.augment import augment_batch
from nni_hwnas.data.datasets import DatasetSplits
from nni_hwnas.errors import UserError
from nni_hwnas.evaluation.sgd import Sgd
from nni_hwnas.evaluation.training import SgdSettings, accuracy, loss_function, lr_factor

from .supernet import SuperNet

SAMPLINGS = ("uniform", "sandwich")


@dataclass
class SupernetSettings(SgdSettings):
    epochs: int = 10
    sampling: str = "sandwich"
    n_random: int = 2
    augment: bool = True
    grad_clip: float = 5.0

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise UserError(f"super-network: `sampling` is {self.sampling!r}; allowed: {', '.join(SAMPLINGS)}")
        if self.epochs < 1 or self.batch_size < 1 or self.n_random < 0:
            raise UserError("super-network: `epochs` and `batch_size` must be >= 1 and `n_random` >= 0")


def paths_for_step(supernet: SuperNet, settings: SupernetSettings, rng: np.random.Generator) -> list[dict[str, Any]]:
    """The sub-networks one step trains (see the module docstring)."""
    definition = supernet.definition
    if settings.sampling == "uniform":
        return [definition.random_sample(rng)]
    return [definition.extreme_sample("max"), definition.extreme_sample("min"),
            *(definition.random_sample(rng) for _ in range(settings.n_random))]


def train_supernet(supernet: SuperNet, data: DatasetSplits, settings: SupernetSettings, seed: int,
                   on_epoch: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Train the shared weights in place; returns the recipe, its cost and the per-epoch loss."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = len(data.train_x)
    steps_per_epoch = max(1, math.ceil(n / settings.batch_size))
    optimizer = Sgd(supernet.parameters(), momentum=settings.momentum, weight_decay=settings.weight_decay,
                    nesterov=settings.momentum > 0)
    total_steps, taken = steps_per_epoch * settings.epochs, 0
    criterion = loss_function(data)
    losses: list[float] = []
    passes = 0
    start = time.perf_counter()
    supernet.train()
    for epoch in range(settings.epochs):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for step in range(steps_per_epoch):
            index = order[step * settings.batch_size:(step + 1) * settings.batch_size]
            xb, yb = data.train_x[index], data.train_y[index]
            if settings.augment:
                xb = augment_batch(xb, data.augment, generator)
            optimizer.zero_grad()
            paths = paths_for_step(supernet, settings, rng)
            for sample in paths:
                loss = criterion(supernet(xb, sample), yb) / len(paths)
                loss.backward()
                total += loss.item() * len(index)
            passes += len(paths)
            torch.nn.utils.clip_grad_norm_(supernet.parameters(), settings.grad_clip)
            optimizer.step(settings.learning_rate * lr_factor("cosine", taken, total_steps))
            taken += 1
        losses.append(total / n)
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    return {"settings": asdict(settings), "seed": seed, "train_seconds": time.perf_counter() - start,
            "steps": steps_per_epoch * settings.epochs, "subnet_passes": passes, "train_loss": losses}


def calibration_batches(data: DatasetSplits, n_batches: int, batch_size: int = 256, seed: int = 0) -> list[torch.Tensor]:
    """Fixed, unaugmented training batches for :meth:`SuperNet.calibrate` (the same for every sample)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data.train_x), generator=generator)[:n_batches * batch_size]
    return [data.train_x[order[i:i + batch_size]] for i in range(0, len(order), batch_size)]


@torch.inference_mode()
def score_sample(supernet: SuperNet, x: torch.Tensor, y: torch.Tensor, sample: Mapping[str, Any],
                 multilabel: bool = False, batch_size: int = 1024,
                 calibration: Sequence[torch.Tensor] | None = None) -> float:
    """Accuracy of ``sample`` with inherited weights (no training).

    BN uses the validation batch's own statistics, or with ``calibration`` (training batches,
    :func:`calibration_batches`) statistics recalibrated for this sample first, as OFA does.
    """
    supernet.eval()
    stats = supernet.calibrate(sample, list(calibration)) if calibration else None
    supernet.batch_stats = stats is None
    try:
        logits = torch.cat([supernet(x[i:i + batch_size], sample, stats) for i in range(0, len(x), batch_size)])
    finally:
        supernet.batch_stats = False
    return accuracy(logits, y, multilabel)


def save_supernet(path: str | Path, supernet: SuperNet, record: Mapping[str, Any]) -> Path:
    """Weights plus the space (name, choices, shape, classes) they belong to; plain tensors, no pickled modules."""
    definition = supernet.definition
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"space": definition.name, "choices": {k: list(v) for k, v in definition.choices.items()},
                "input_shape": list(definition.input_shape), "num_classes": definition.num_classes,
                "state_dict": supernet.state_dict(), "record": dict(record)}, path)
    return path


def load_supernet(path: str | Path) -> tuple[SuperNet, dict[str, Any]]:
    from search_spaces import make_definition

    path = Path(path)
    if not path.is_file():
        raise UserError(f"super-network checkpoint {path} does not exist; train one with `nni-hwnas supernet train`")
    data = torch.load(path, map_location="cpu", weights_only=True)
    definition = make_definition(data["space"], data["choices"], data["input_shape"], data["num_classes"])
    supernet = SuperNet(definition)
    supernet.load_state_dict(data["state_dict"])
    return supernet, data["record"]
