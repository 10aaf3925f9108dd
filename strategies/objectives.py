"""The objectives our evolution ranks a population by, turned into one loss matrix.

Four objectives, each switchable (``ObjectiveConfig.use``):

- ``score`` up: the task score a trial reports (``default``: accuracy or a proxy);
- ``cost`` down: a hardware cost the trial reports (``latency_ms`` on the target profile, or
  ``params`` / ``flops`` / ``peak_mem_kb``);
- ``novelty`` up: mean distance to the k nearest architectures seen so far (NEvoNAS,
  https://arxiv.org/abs/2106.08972), which keeps the search out of one corner of the space;
- ``cost_diversity`` up: how far a member's cost lies from the costs of its nearest population
  neighbours (MO-HDNAS), so one run spreads over the whole cost range instead of one run per budget;
- ``second_cost`` down: a second hardware cost (``params`` by default), for EfficientNAS's three
  objectives at once (accuracy, latency and size).

A budget penalty growing with the distance above the cost budget (HW-EvRSNAS) is added to the
score loss. Novelty and cost diversity are *relative*: they are recomputed from the current
population and archive every time parents are picked, never stored as a trial's fitness.

Everything is minimised (:mod:`nni_hwnas.reporting.pareto`'s convention); the signs of reported metrics come
from :func:`nni_hwnas.metrics.to_losses`, the one place directions are declared.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from nni_hwnas.errors import UserError, closest, unknown
from nni_hwnas.metrics import METRICS, direction, to_losses

__all__ = [
    "OBJECTIVES", "PENALTIES", "ObjectiveConfig", "LabelEncoder", "pairwise_distance", "novelty",
    "cost_diversity", "budget_penalty", "loss_matrix",
]

OBJECTIVES = ("score", "cost", "novelty", "cost_diversity", "second_cost")
PENALTIES = ("linear", "quadratic", "none")
_TINY_COST = 1e-12  # costs are positive; guards log(0) for a cost model that rounds to zero


@dataclass(frozen=True)
class ObjectiveConfig:
    """Which objectives rank the population, and how each is computed.

    Defaults: score and cost, the trade-off users ask for. Novelty and cost diversity are
    opt-in: on two toy problems with known fronts (additive and multiplicative cost, 20-60 seeds,
    40-80 trials, with and without score noise) adding either lowered the hypervolume reached by
    1-6%: more objectives leave most of a 20-member population non-dominated, so the tournament
    picks almost at random. NEvoNAS and MO-HDNAS used them over thousands of cheap proxy
    evaluations; turn them on to reproduce those settings, and measure.

    Attributes:
        use: Objectives in use, a subset of :data:`OBJECTIVES`, in column order.
        score_metric: Reported metric to maximise (higher-is-better in the metric contract).
        cost_metric: Reported hardware cost to minimise (lower-is-better in the contract); also
            what the budget, the penalty and cost diversity refer to.
        novelty_k: Neighbours averaged for novelty (NEvoNAS uses a small k; 5 is robust below
            ~200 architectures seen).
        diversity_k: Cost neighbours averaged for cost diversity; 2 = the nearest on each side.
        penalty: Shape of the budget penalty: ``linear`` (HW-EvRSNAS: in proportion to the
            excess), ``quadratic`` (forgiving just above the budget), or ``none``.
        penalty_weight: Score units lost per 100% over budget (1.0 with accuracy in [0, 1]: 10%
            over budget costs 0.1 accuracy).
        second_cost_metric: The lower-is-better metric of the ``second_cost`` objective (no
            budget or penalty: the budget belongs to ``cost_metric``).
    """

    use: tuple[str, ...] = ("score", "cost")
    score_metric: str = "default"
    cost_metric: str = "latency_ms"
    novelty_k: int = 5
    diversity_k: int = 2
    penalty: str = "linear"
    penalty_weight: float = 1.0
    second_cost_metric: str = "params"

    def __post_init__(self) -> None:
        use = tuple(self.use)
        object.__setattr__(self, "use", use)
        if not use:
            raise UserError(f"objectives: `use` must name at least one of {', '.join(OBJECTIVES)}")
        for name in use:
            if name not in OBJECTIVES:
                raise unknown("objective", name, OBJECTIVES)
        if len(set(use)) != len(use):
            raise UserError(f"objectives: `use` names an objective twice: {list(use)}")
        if self.score_metric not in METRICS or not direction(self.score_metric):
            raise UserError(f"objectives: `score_metric` must be a higher-is-better metric "
                            f"({', '.join(n for n, s in METRICS.items() if s.higher_is_better)}); "
                            f"got {self.score_metric!r}{closest(self.score_metric, METRICS)}")
        if self.cost_metric not in METRICS or direction(self.cost_metric):
            raise UserError(f"objectives: `cost_metric` must be a lower-is-better metric "
                            f"({', '.join(n for n, s in METRICS.items() if not s.higher_is_better)}); "
                            f"got {self.cost_metric!r}{closest(self.cost_metric, METRICS)}")
        # The same metric twice only matters when the second cost is an objective: a search over
        # ``params`` with the default objectives must not trip on the unused default ``params``.
        if self.second_cost_metric not in METRICS or direction(self.second_cost_metric) \
                or (self.second_cost_metric == self.cost_metric and "second_cost" in self.use):
            raise UserError(f"objectives: `second_cost_metric` must be a lower-is-better metric other than "
                            f"`cost_metric` ({self.cost_metric}); got {self.second_cost_metric!r}")
        if int(self.novelty_k) != self.novelty_k or self.novelty_k < 1:
            raise UserError(f"objectives: `novelty_k` must be an integer >= 1, got {self.novelty_k!r}")
        if int(self.diversity_k) != self.diversity_k or self.diversity_k < 1:
            raise UserError(f"objectives: `diversity_k` must be an integer >= 1, got {self.diversity_k!r}")
        if self.penalty not in PENALTIES:
            raise unknown("penalty", self.penalty, PENALTIES)
        if not (isinstance(self.penalty_weight, (int, float)) and math.isfinite(self.penalty_weight)
                and self.penalty_weight >= 0):
            raise UserError(f"objectives: `penalty_weight` must be a number >= 0, got {self.penalty_weight!r}")

    @classmethod
    def create(cls, value: "ObjectiveConfig | Sequence[str] | Mapping[str, Any] | None") -> "ObjectiveConfig":
        """From a config: ``None`` (defaults), a list of objective names, or a mapping of fields."""
        if value is None:
            return cls()
        if isinstance(value, ObjectiveConfig):
            return value
        if isinstance(value, str):
            return cls(use=(value,))
        if isinstance(value, Mapping):
            allowed = list(cls.__dataclass_fields__)
            for key in value:
                if key not in allowed:
                    raise unknown("objectives key", key, allowed)
            return cls(**dict(value))
        return cls(use=tuple(value))

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["use"] = list(self.use)
        return data

    def needs_cost(self, budget: float | None) -> bool:
        """Whether trials must report the cost metric (used by an objective or by the budget)."""
        return "cost" in self.use or "cost_diversity" in self.use or (
            budget is not None and self.penalty != "none")

    def required_metrics(self, budget: float | None) -> tuple[str, ...]:
        """Metrics a trial must report to join the population; without them it counts as failed."""
        needed = []
        if "score" in self.use:
            needed.append(self.score_metric)
        if self.needs_cost(budget):
            needed.append(self.cost_metric)
        if "second_cost" in self.use:
            needed.append(self.second_cost_metric)
        return tuple(needed)


# --------------------------------------------------------------------------- distances


class LabelEncoder:
    """Samples as rows of numbers for distances between architectures.

    A label whose values are all numbers (not bools) is ordinal: its value becomes its rank
    among the sorted values scaled to [0, 1], so 32 filters is closer to 16 than to 128. Other
    labels are categorical (0/1 distance). A label missing from a sample (inactive, e.g. the
    layers beyond ``depth`` in a canonical sample) is NaN: absent in both = same, absent in one
    = as different as can be.
    """

    def __init__(self, labels: Mapping[str, tuple]) -> None:
        self.labels = list(labels)
        self.ordinal = np.array([_is_ordinal(values) for values in labels.values()], dtype=bool)
        self._position: list[dict] = []
        for values, ordinal in zip(labels.values(), self.ordinal):
            if ordinal and len(values) > 1:
                ranks = {v: i / (len(values) - 1) for i, v in enumerate(sorted(values))}
            elif ordinal:
                ranks = {v: 0.0 for v in values}
            else:
                ranks = {_key(v): float(i) for i, v in enumerate(values)}
            self._position.append(ranks)

    def encode(self, sample: Mapping[str, Any]) -> np.ndarray:
        """Shape ``(n_labels,)``; NaN for labels the sample lacks or values outside the space."""
        row = np.full(len(self.labels), np.nan)
        for i, (label, ordinal) in enumerate(zip(self.labels, self.ordinal)):
            if label in sample:
                value = sample[label]
                row[i] = self._position[i].get(value if ordinal else _key(value), np.nan)
        return row


def _is_ordinal(values: tuple) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _key(value: Any) -> tuple:
    """Hashable key that keeps ``True`` apart from ``1``."""
    return (type(value) is bool, value)


def pairwise_distance(a: np.ndarray, b: np.ndarray, ordinal: np.ndarray) -> np.ndarray:
    """Mean per-label distance between every row of ``a`` and every row of ``b``, in [0, 1].

    Args:
        a: Encoded samples, shape ``(n, n_labels)``.
        b: Encoded samples, shape ``(m, n_labels)``.
        ordinal: Which labels are ordinal, shape ``(n_labels,)``.

    Returns:
        Distances, shape ``(n, m)``.
    """
    a = np.asarray(a, dtype=float)[:, None, :]
    b = np.asarray(b, dtype=float)[None, :, :]
    with np.errstate(invalid="ignore"):
        per_label = np.where(ordinal, np.abs(a - b), (a != b).astype(float))
    missing_a, missing_b = np.isnan(a), np.isnan(b)
    per_label = np.where(missing_a & missing_b, 0.0, per_label)
    per_label = np.where(missing_a ^ missing_b, 1.0, per_label)
    if per_label.shape[-1] == 0:
        return np.zeros(per_label.shape[:2])
    return per_label.mean(axis=-1)


def novelty(members: np.ndarray, archive: np.ndarray, self_index: np.ndarray, k: int,
            ordinal: np.ndarray) -> np.ndarray:
    """NEvoNAS novelty: mean distance of each member to its ``k`` nearest archived architectures.

    Args:
        members: Encoded population, shape ``(n, n_labels)``.
        archive: Encoded architectures seen so far (evaluated, failed or running), shape
            ``(m, n_labels)``; usually contains the members themselves.
        self_index: Row of each member inside ``archive`` (excluded from its own neighbours),
            or -1, shape ``(n,)``.
        k: Neighbours to average; fewer when the archive is smaller.
        ordinal: Which labels are ordinal, shape ``(n_labels,)``.

    Returns:
        Novelty per member in [0, 1], shape ``(n,)``; 0 when a member has no neighbour.
    """
    n = members.shape[0]
    if n == 0 or archive.shape[0] == 0:
        return np.zeros(n)
    dist = pairwise_distance(members, archive, ordinal)
    rows = np.flatnonzero(self_index >= 0)
    dist[rows, self_index[rows]] = np.inf
    k_eff = min(k, archive.shape[0] - (1 if rows.size else 0))
    if k_eff <= 0:
        return np.zeros(n)
    # k_eff leaves out at most the one excluded (infinite) entry per row: the mean is finite.
    return np.sort(dist, axis=1)[:, :k_eff].mean(axis=1)


def cost_diversity(costs: np.ndarray, k: int) -> np.ndarray:
    """MO-HDNAS-style cost diversity: distance of each cost to its ``k`` nearest other costs.

    Costs are compared on a log scale (latency, parameters and FLOPs span orders of magnitude,
    and "twice as fast" should count the same at 1 ms and at 100 ms), normalised by the
    population's log-cost range so the value is in [0, 1] whatever the unit.

    Args:
        costs: Positive costs of the population, shape ``(n,)``.
        k: Neighbours to average (fewer when the population is smaller).

    Returns:
        Diversity per member, shape ``(n,)``; zeros when all costs are equal or ``n < 2``.
    """
    costs = np.asarray(costs, dtype=float)
    n = costs.shape[0]
    if n < 2:
        return np.zeros(n)
    logs = np.log(np.maximum(costs, _TINY_COST))
    span = logs.max() - logs.min()
    if span <= 0:
        return np.zeros(n)
    scaled = (logs - logs.min()) / span
    dist = np.abs(scaled[:, None] - scaled[None, :])
    np.fill_diagonal(dist, np.inf)
    k_eff = min(k, n - 1)
    return np.sort(dist, axis=1)[:, :k_eff].mean(axis=1)


def budget_penalty(costs: np.ndarray, budget: float | None, shape: str, weight: float) -> np.ndarray:
    """HW-EvRSNAS penalty: zero within budget, growing with the relative excess above it.

    ``excess = max(0, cost / budget - 1)``; the penalty is ``weight * excess`` (linear) or
    ``weight * excess**2`` (quadratic). Relative, so the same weight works for milliseconds and
    parameter counts.

    Returns:
        Penalty per cost, shape ``(n,)``; zeros without a budget or with ``shape == "none"``.
    """
    costs = np.asarray(costs, dtype=float)
    if budget is None or shape == "none" or weight == 0:
        return np.zeros(costs.shape[0])
    excess = np.maximum(0.0, costs / float(budget) - 1.0)
    return weight * (excess if shape == "linear" else excess ** 2)


# --------------------------------------------------------------------------- the matrix


def loss_matrix(rows: Sequence[Mapping[str, float]], config: ObjectiveConfig, budget: float | None,
                members: np.ndarray | None = None, archive: np.ndarray | None = None,
                self_index: np.ndarray | None = None, ordinal: np.ndarray | None = None) -> np.ndarray:
    """The population's losses, one column per objective in ``config.use`` (smaller is better).

    Columns: ``score`` = -score + budget penalty; ``cost`` = log(cost) (a monotone transform:
    dominance is unchanged, and crowding then spreads picks evenly across orders of magnitude);
    ``novelty`` = -novelty; ``cost_diversity`` = -diversity; ``second_cost`` = log(second cost). When ``score`` is off, the penalty
    goes to the cost column instead.

    Args:
        rows: Reported metrics of the population members, length n.
        config: The objectives.
        budget: Cost budget in the unit of ``config.cost_metric``, or None.
        members, archive, self_index, ordinal: Encoded samples for novelty (see :func:`novelty`);
            required only when novelty is in use.

    Returns:
        Losses, shape ``(n, len(config.use))``.
    """
    n = len(rows)
    costs = None
    if config.needs_cost(budget):
        costs = to_losses(rows, [config.cost_metric])[:, 0]  # lower-is-better: unchanged values
    penalty = budget_penalty(costs, budget, config.penalty, config.penalty_weight) if costs is not None else np.zeros(n)
    columns = []
    for name in config.use:
        if name == "score":
            columns.append(to_losses(rows, [config.score_metric])[:, 0] + penalty)
        elif name == "cost":
            column = np.log(np.maximum(costs, _TINY_COST))
            columns.append(column if "score" in config.use else column + penalty)
        elif name == "second_cost":
            second = to_losses(rows, [config.second_cost_metric])[:, 0]
            columns.append(np.log(np.maximum(second, _TINY_COST)))
        elif name == "novelty":
            if members is None or archive is None or self_index is None or ordinal is None:
                raise ValueError("novelty needs the encoded members, archive, self_index and ordinal mask")
            columns.append(-novelty(members, archive, self_index, config.novelty_k, ordinal))
        else:
            columns.append(-cost_diversity(costs, config.diversity_k))
    return np.stack(columns, axis=1) if columns else np.zeros((n, 0))
