"""A run's budgets: one typed object, one rule, from the config to the report.

Budgets are parsed once (:meth:`Budgets.from_mapping`: strict names, positive numbers) and
merged once (a profile's own budgets, then the experiment's ``hardware.budgets``, then a
strategy's ``budget`` argument for its cost metric, which may not disagree). Everything that
asks "is this architecture within budget?" reads that object and :meth:`Budgets.admits`: the
strategy's penalty, screening and front, the trials' ``within_budget`` (:meth:`Budgets.check`,
the same object passed whole to each trial), the front in ``pareto.json``, the hypervolume
reference (:meth:`Budgets.limit`) and the reports and dashboard (rebuilt from ``run.json``).
Kept at the package's top, with no heavy imports: strategies and trials import it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from nni_hwnas.errors import UserError, closest


@dataclass(frozen=True)
class Violation:
    """One budget an architecture exceeds: ``value`` against ``limit``, both in the metric's unit."""

    metric: str
    limit: float
    value: float

    @property
    def excess(self) -> float:
        """How far over the limit, in the metric's unit (> 0)."""
        return self.value - self.limit

    @property
    def excess_ratio(self) -> float:
        """How far over, relative to the limit (0.25 = 25% over): unit-free, for penalties."""
        return self.value / self.limit - 1.0 if self.limit > 0 else float("inf")

    def describe(self) -> str:
        return f"{self.metric} {self.value:.4g} > {self.limit:.4g} (+{100 * self.excess_ratio:.1f}%)"


@dataclass(frozen=True)
class BudgetCheck:
    """Result of :meth:`Budgets.check`: ``within`` plus every violated budget."""

    within: bool
    violations: tuple[Violation, ...] = ()

    @property
    def worst_ratio(self) -> float:
        """Largest relative excess over all budgets (0.0 when within): a HW-EvRSNAS-style penalty input."""
        return max((v.excess_ratio for v in self.violations), default=0.0)

    def __bool__(self) -> bool:
        return self.within


@dataclass(frozen=True)
class Budgets:
    """Upper limits on an architecture's costs; ``None`` means unlimited. Units are in the names:
    ``flops`` counts multiply-accumulates at batch 1, ``peak_mem_kb`` and ``param_kb`` are KiB at
    the profile's precision."""

    latency_ms: float | None = None
    params: float | None = None
    flops: float | None = None
    peak_mem_kb: float | None = None
    param_kb: float | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, where: str) -> "Budgets":
        """Strict: an unknown key or a non-positive number is a one-line :class:`UserError`."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise UserError(f"{where}: `budgets` must be a mapping like {{latency_ms: 1.5}}, got {data!r}")
        names = [f.name for f in dataclasses.fields(cls)]
        values: dict[str, float | None] = {}
        for key, value in data.items():
            if key not in names:
                raise UserError(f"{where}: unknown budget `{key}`{closest(key, names)}; allowed: {', '.join(names)}")
            if value is None:
                values[key] = None
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise UserError(f"{where}: budget `{key}` must be a positive number or null, got {value!r}")
            values[key] = float(value)
        return cls(**values)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The metrics a budget can limit."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def of(cls, value: "Budgets | Mapping[str, Any] | None", where: str = "budgets") -> "Budgets":
        """``value`` as budgets: a :class:`Budgets` as it is, a mapping parsed, None unlimited."""
        return value if isinstance(value, Budgets) else cls.from_mapping(value, where)

    def limit(self, metric: str | None) -> float | None:
        """The limit on ``metric`` (None: unlimited, or not a metric a budget can limit)."""
        return getattr(self, metric) if metric in self.names() else None

    def as_mapping(self) -> dict[str, float | None]:
        """Every budget, unset ones as None: handed to a trial, it replaces its profile's budgets
        key by key (:meth:`merged`), so the trial checks exactly these."""
        return dataclasses.asdict(self)

    def with_limit(self, metric: str, value: Any, where: str = "strategy") -> "Budgets":
        """These budgets plus ``metric <= value`` (a strategy's ``budget`` for its cost metric).

        A run has one budget per metric: a different limit already set for ``metric`` (by the
        profile or ``hardware.budgets``) is refused in one line rather than silently used by
        the strategy's penalty while the trials and the front use the other.
        """
        if value is None:
            return self
        if metric not in self.names():
            raise UserError(f"{where}: a budget can limit {', '.join(self.names())}, not `{metric}`"
                            f"{closest(metric, self.names())}")
        given = Budgets.from_mapping({metric: value}, where).limit(metric)
        current = self.limit(metric)
        if current is not None and current != given:
            raise UserError(f"{where}: `budget` {given:g} disagrees with the run's {metric} budget {current:g} "
                            "(the profile's or `hardware.budgets`); set it in one place")
        return dataclasses.replace(self, **{metric: given})

    def admits(self, row: Mapping[str, Any]) -> bool:
        """The one budget rule, for one trial's reported metrics.

        A trial that reports ``within_budget`` was checked in its own process by :meth:`check`
        with these same budgets (or, after a resume that changed them, those of its own
        ``settings``, which the front never mixes), so its verdict decides: it covers budgets
        on metrics the row may not carry. A row without a verdict (no profile: in-process
        objectives, toys) is judged by the costs it reports against the set limits.
        """
        if "within_budget" in row:
            return row["within_budget"] == 1
        return all(float(row[name]) <= limit for name, limit in self.limits().items()
                   if isinstance(row.get(name), (int, float)))

    def limits(self) -> dict[str, float]:
        """The set budgets only, metric name -> limit."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def merged(self, overrides: Mapping[str, Any] | None, where: str = "budgets") -> "Budgets":
        """These budgets with ``overrides`` (an experiment's) replacing them key by key."""
        given = Budgets.from_mapping(overrides, where)
        explicit = set(overrides or {})
        return dataclasses.replace(self, **{k: getattr(given, k) for k in explicit})

    def check(self, metrics: Mapping[str, float]) -> BudgetCheck:
        """Compare ``metrics`` (metric-contract names) with every set budget.

        A set budget whose metric is missing from ``metrics`` is a programming error (KeyError):
        silently passing it would let an over-budget architecture onto the front.
        """
        violations = []
        for name, limit in self.limits().items():
            if name not in metrics:
                raise KeyError(f"budget {name!r} is set but the metrics have no {name!r}: {sorted(metrics)}")
            value = float(metrics[name])
            if value > limit:
                violations.append(Violation(name, limit, value))
        return BudgetCheck(not violations, tuple(violations))
