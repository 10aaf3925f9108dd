"""The complexity-conditioned search (MIPT's target-hardware control, seed 004), on our super-network.

A small hyper-network maps a budget position ``b`` in [0, 1] to architecture logits (one vector
per label); ``b`` names the latency target ``T(b)``, log-spaced from the cheapest architecture's
predicted latency (``b = 0``) to the largest's (``b = 1``). Every step draws ``b``, samples an
architecture from the logits and minimises

    CE(w; alpha(b)) + penalty_weight * log(E_p[latency(alpha(b))] / T(b)) ** 2

over the shared weights ``w`` (train batch, the sampled path) and the hyper-network (validation
batch): the accuracy term by REINFORCE with a moving baseline (a sampled path is one slice of the
super-network, so there is no mixed op to differentiate), the latency term exactly through
:class:`~nni_hwnas.oneshot.expected_latency.ExpectedLatency`. One run then gives an architecture
per budget: :meth:`ConditionedSearch.sweep` decodes the most probable architecture for a grid of
budgets, loosest first, and repairs each (:func:`repair_to_budget`) to cost no more than its target
and than the previous one, so a tighter budget never yields a more expensive architecture. With
``fill_margin > 0`` it then spends what is left of the budget (:func:`fill_to_budget`) on values the
hyper-network rates within ``fill_margin`` nats of its mode: the training matches the *expected*
latency to the target, and with a spread distribution the per-label mode is far cheaper than that
(the cost is convex in width and depth), so mid-range budgets decoded by the mode alone collapse onto
a few cheap architectures.

The seed conditions on a point ``S`` of the simplex of per-operation regularisation weights and
adds ``kappa * latency``; with one cost (latency) ``S`` is a scalar, and conditioning on the target
instead of a weight was needed here: with a weight the accuracy term alone (small sub-networks
train fastest in a shared super-network) drove every weight to the same architecture.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from nni_hwnas.data.augment import augment_batch
from nni_hwnas.data.datasets import DatasetSplits
from nni_hwnas.errors import UserError
from nni_hwnas.evaluation.training import loss_function

from .expected_latency import ExpectedLatency
from .supernet import SuperNet


@dataclass
class ConditionedSettings:
    steps: int = 300
    batch_size: int = 64
    weight_learning_rate: float = 0.01
    arch_learning_rate: float = 0.01
    penalty_weight: float = 5.0
    hidden: int = 32
    baseline_decay: float = 0.9
    budgets: Sequence[float] | None = None  # fixed budget positions (a separate run per budget); None: U(0, 1)
    fill_margin: float = 0.0  # sweep: values within this many nats of a label's mode may spend budget left over

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.hidden < 1:
            raise UserError("conditioned search: `steps`, `batch_size` and `hidden` must be >= 1")
        if self.penalty_weight < 0:
            raise UserError("conditioned search: `penalty_weight` must be >= 0")
        if self.fill_margin < 0:
            raise UserError("conditioned search: `fill_margin` must be >= 0")


class HyperNetwork(nn.Module):
    """A budget position (a float in [0, 1]) -> logits per label: a shared 2-layer MLP and one head per label."""

    def __init__(self, labels: Mapping[str, Sequence[Any]], hidden: int = 32) -> None:
        super().__init__()
        self.labels = {label: tuple(values) for label, values in labels.items()}
        self.body = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.heads = nn.ModuleDict({_key(label): nn.Linear(hidden, len(values)) for label, values in self.labels.items()})

    def forward(self, budget: float) -> dict[str, torch.Tensor]:
        h = self.body(torch.tensor([[float(budget)]]))
        return {label: self.heads[_key(label)](h)[0] for label in self.labels}


def _key(label: str) -> str:
    return label.replace(".", "_")


def decode(labels: Mapping[str, Sequence[Any]], logits: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The most probable architecture (per-label argmax; labels are independent)."""
    return {label: values[int(torch.argmax(logits[label]))] for label, values in labels.items()}


def repair_to_budget(sample: Mapping[str, Any], logits: Mapping[str, torch.Tensor], labels: Mapping[str, Sequence[Any]],
                     cost: Callable[[Mapping[str, Any]], float], limit: float) -> dict[str, Any]:
    """Change single labels until ``cost(sample) <= limit``: the change losing the least logit among
    those that alone reach the limit, else the one losing the least logit per unit of cost saved; if
    nothing cheaper is reachable, the result is the cheapest seen.

    Taking the best ratio even when a change reaches the limit overshot: dropping ``depth`` saves the
    most per logit, so on digits every target from 0.16 to 0.69 ms was repaired onto the same
    one-layer network (0.14 ms)."""
    current = dict(sample)
    current_cost = cost(current)
    while current_cost > limit:
        best, best_reaching = None, None
        for label, values in labels.items():
            here = float(logits[label][values.index(current[label])])
            for i, value in enumerate(values):
                if value == current[label]:
                    continue
                candidate = {**current, label: value}
                candidate_cost = cost(candidate)
                saved = current_cost - candidate_cost
                if saved <= 0:
                    continue
                loss = here - float(logits[label][i])
                if candidate_cost <= limit and (best_reaching is None or loss < best_reaching[0]):
                    best_reaching = (loss, candidate)
                if best is None or loss / saved < best[0]:
                    best = (loss / saved, candidate)
        if best is None:
            break
        current = (best_reaching or best)[1]
        current_cost = cost(current)
    return current


def fill_to_budget(sample: Mapping[str, Any], logits: Mapping[str, torch.Tensor], labels: Mapping[str, Sequence[Any]],
                   cost: Callable[[Mapping[str, Any]], float], limit: float, margin: float) -> dict[str, Any]:
    """Spend budget left under ``limit``: change single labels to values whose logit is within ``margin``
    of the label's largest, each time the change losing the least logit per unit of cost added, while
    the cost stays ``<= limit``. ``margin = 0`` keeps the modes (ties aside)."""
    current = dict(sample)
    current_cost = cost(current)
    while True:
        best = None
        for label, values in labels.items():
            top = float(torch.max(logits[label]))
            here = float(logits[label][values.index(current[label])])
            for i, value in enumerate(values):
                logit = float(logits[label][i])
                if value == current[label] or logit < top - margin:
                    continue
                candidate = {**current, label: value}
                added = cost(candidate) - current_cost
                if added <= 0 or current_cost + added > limit:
                    continue
                ratio = (here - logit) / added
                if best is None or ratio < best[0]:
                    best = (ratio, candidate)
        if best is None:
            return current
        current = best[1]
        current_cost = cost(current)


class ConditionedSearch:
    """Train a :class:`HyperNetwork` on a (pre-trained) super-network; :meth:`sweep` reads it out."""

    def __init__(self, supernet: SuperNet, expected: ExpectedLatency, settings: ConditionedSettings, seed: int) -> None:
        self.supernet, self.expected, self.settings, self.seed = supernet, expected, settings, seed
        self.definition = supernet.definition
        self.labels = self.definition.mutable_labels()  # dropout too: it changes training, not cost
        torch.manual_seed(seed)
        self.hyper = HyperNetwork(self.labels, settings.hidden)
        predict = expected.predictor.predict
        self.max_ms = float(predict(self.definition.extreme_sample("max")))
        self.min_ms = float(min(predict(c) for c in self.definition.cheapest_candidates()))
        self.history: list[dict[str, float]] = []

    def target_ms(self, budget: float) -> float:
        """The latency target of budget position ``budget`` (log-spaced between the extremes)."""
        return math.exp(math.log(self.min_ms) + float(budget) * (math.log(self.max_ms) - math.log(self.min_ms)))

    def _budget(self, step: int, rng: np.random.Generator) -> float:
        fixed = self.settings.budgets
        return float(fixed[step % len(fixed)]) if fixed else float(rng.uniform())

    def train(self, data: DatasetSplits, on_step: Callable[[int, dict], None] | None = None) -> dict[str, Any]:
        s = self.settings
        rng = np.random.default_rng(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        criterion = loss_function(data)
        w_opt = torch.optim.SGD(self.supernet.parameters(), lr=s.weight_learning_rate, momentum=0.9, nesterov=True)
        a_opt = torch.optim.Adam(self.hyper.parameters(), lr=s.arch_learning_rate)
        baseline = None
        start = time.perf_counter()
        for step in range(s.steps):
            budget = self._budget(step, rng)
            logits = self.hyper(budget)
            dists = {label: torch.distributions.Categorical(logits=x) for label, x in logits.items()}
            picks = {label: int(d.sample()) for label, d in dists.items()}
            sample = {label: self.labels[label][i] for label, i in picks.items()}
            # weights: one step on the sampled path (train split)
            self.supernet.train()
            index = torch.randint(len(data.train_x), (s.batch_size,), generator=generator)
            xb = augment_batch(data.train_x[index], data.augment, generator)
            w_loss = criterion(self.supernet(xb, sample), data.train_y[index])
            w_opt.zero_grad(set_to_none=True)
            w_loss.backward()
            nn.utils.clip_grad_norm_(self.supernet.parameters(), 5.0)
            w_opt.step()
            # architecture: REINFORCE on validation loss + exact expected latency
            index = torch.randint(len(data.val_x), (s.batch_size,), generator=generator)
            with torch.no_grad():
                self.supernet.eval()
                self.supernet.batch_stats = True
                val_loss = float(criterion(self.supernet(data.val_x[index], sample), data.val_y[index]))
                self.supernet.batch_stats = False
            baseline = val_loss if baseline is None else s.baseline_decay * baseline + (1 - s.baseline_decay) * val_loss
            log_prob = sum(dists[label].log_prob(torch.tensor(i)) for label, i in picks.items())
            probs = {label: torch.softmax(logits[label], 0) for label in self.expected.labels}
            latency = self.expected(probs)
            gap = torch.log(latency.float() / self.target_ms(budget))
            a_loss = (val_loss - baseline) * log_prob + s.penalty_weight * gap ** 2
            a_opt.zero_grad(set_to_none=True)
            a_loss.backward()
            a_opt.step()
            record = {"step": step, "budget": budget, "target_ms": self.target_ms(budget), "val_loss": val_loss, "expected_latency_ms": float(latency.detach())}
            self.history.append(record)
            if on_step is not None:
                on_step(step, record)
        return {"settings": asdict(self.settings), "seed": self.seed, "train_seconds": time.perf_counter() - start,
                "min_ms": self.min_ms, "max_ms": self.max_ms}

    @torch.no_grad()
    def sweep(self, budgets: Sequence[float], fill_margin: float | None = None) -> list[dict[str, Any]]:
        """One architecture per budget position, loosest (largest) first; each repaired to cost no more
        than its target (or, if no single-label change gets there, the previous budget's architecture) and
        than the previous one, then filled up to that limit within ``fill_margin`` of the modes. Returns
        dicts with ``budget``, ``target_ms``, ``sample``, ``predicted_latency_ms``, ``repaired`` (the
        hyper-network's own choice was over budget) and ``filled`` (budget left over was spent).
        ``fill_margin`` overrides the settings' (to compare decodings of one run)."""
        predict = self.expected.predictor.predict
        margin = self.settings.fill_margin if fill_margin is None else float(fill_margin)
        derived, limit = [], math.inf
        for budget in sorted((float(b) for b in budgets), reverse=True):
            logits = self.hyper(budget)
            mode = decode(self.labels, logits)
            limit = min(limit, self.target_ms(budget))
            sample = repair_to_budget(mode, logits, self.labels, predict, limit)
            if predict(sample) > limit:  # stuck in a local minimum of cost: keep the previous budget's
                sample = derived[-1]["sample"] if derived else \
                    {**sample, **min(self.definition.cheapest_candidates(), key=predict)}
            repaired = sample != mode
            filled = fill_to_budget(sample, logits, self.labels, predict, limit, margin) if margin > 0 else sample
            cost = float(predict(filled))
            limit = min(limit, cost)
            derived.append({"budget": budget, "target_ms": self.target_ms(budget), "sample": filled,
                            "predicted_latency_ms": cost, "repaired": repaired, "filled": filled != sample})
        return derived
