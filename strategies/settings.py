"""The settings of our strategies, once: one dataclass per strategy, read by both NNI adapters.

The NAS ``Strategy`` (``strategy.args`` in an experiment YAML) and the nnictl ``Tuner``
(``classArgs``) take the same plain names; they are declared and checked here only, so a bad one
fails in one line before NNI's manager starts, naming the closest valid name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from nni_hwnas.errors import UserError, unknown

from .hw_evolution import DEFAULT_ACTIVE_MUTATION, DEFAULT_SURROGATE_CANDIDATES
from .objectives import ObjectiveConfig
from .progressive import ProgressiveSchedule


class _PlainArgs:
    """``names`` / ``from_args`` shared by the settings dataclasses (plain YAML or classArgs in)."""

    STRATEGY = "?"

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def from_args(cls, args: Mapping[str, Any] | None, what: str | None = None) -> Any:
        """Settings from plain (YAML) arguments; an unknown name is one line naming the closest."""
        what = what or f"argument of strategy {cls.STRATEGY!r}"
        args = dict(args or {})
        for key in args:
            if key not in cls.names():
                raise unknown(what, key, cls.names())
        try:
            return cls(**args)
        except TypeError as exc:
            raise UserError(f"{what}s {args} are not valid: {exc}") from None


@dataclass(frozen=True)
class HwEvolutionSettings(_PlainArgs):
    """Search and objective settings of :class:`~strategies.hw_evolution.HwEvolution`.

    ``objectives``, ``score_metric``, ``cost_metric``, ``penalty``, ``penalty_weight``,
    ``novelty_k`` and ``diversity_k`` form the :class:`~strategies.objectives.ObjectiveConfig`;
    the rest are the core's own arguments (``budget`` in ``cost_metric`` units).
    ``surrogate_candidates`` and ``active_mutation`` default to the core's own defaults.
    """

    STRATEGY = "hw_evolution"

    population_size: int = 20
    sample_size: int = 10
    initial_random: int = 8
    mutation_prob: float | None = None
    crossover_prob: float = 0.1
    objectives: tuple[str, ...] = ("score", "cost")
    score_metric: str = "default"
    cost_metric: str = "latency_ms"
    budget: float | None = None
    penalty: str = "linear"
    penalty_weight: float = 1.0
    novelty_k: int = 5
    diversity_k: int = 2
    screen_slack: float = 0.1
    seed: int | None = None
    progressive: Any = "off"
    second_cost_metric: str = "params"
    surrogate_candidates: int = DEFAULT_SURROGATE_CANDIDATES
    active_mutation: bool = DEFAULT_ACTIVE_MUTATION

    def __post_init__(self) -> None:
        objectives = (self.objectives,) if isinstance(self.objectives, str) else tuple(self.objectives)
        object.__setattr__(self, "objectives", objectives)
        if not isinstance(self.active_mutation, bool):  # the core would take any truthy value
            raise UserError(f"`active_mutation` must be true or false, got {self.active_mutation!r}")
        from .hw_evolution import HwEvolution

        probe = {k: v for k, v in self.search_settings().items() if k != "progressive"}
        HwEvolution({"probe": (0, 1)}, objectives=self.objective_config(), **probe)  # checks all

    def objective_config(self) -> ObjectiveConfig:
        return ObjectiveConfig(use=tuple(self.objectives), score_metric=self.score_metric, cost_metric=self.cost_metric,
                               novelty_k=self.novelty_k, diversity_k=self.diversity_k, penalty=self.penalty,
                               penalty_weight=self.penalty_weight,
                               second_cost_metric=self.second_cost_metric)

    def search_settings(self) -> dict[str, Any]:
        """The core's keyword arguments besides ``objectives``."""
        return {"population_size": self.population_size, "sample_size": self.sample_size,
                "initial_random": self.initial_random, "mutation_prob": self.mutation_prob,
                "crossover_prob": self.crossover_prob, "budget": self.budget, "screen_slack": self.screen_slack,
                "seed": self.seed, "surrogate_candidates": self.surrogate_candidates,
                "active_mutation": self.active_mutation,
                # Checked now; ``stages`` may still come from the space (the NAS adapter fills them in).
                "progressive": ProgressiveSchedule.create(self.progressive)}


@dataclass(frozen=True)
class CmaEsSettings(_PlainArgs):
    """Settings of :class:`~strategies.cmaes.CmaEs` (``strategy: {name: cmaes, args: {...}}``,
    or ``tuner: {name: CmaEs, classArgs: {...}}``); ``None`` population = CMA-ES's default."""

    STRATEGY = "cmaes"

    population_size: int | None = None
    sigma: float = 1.0
    score_metric: str = "default"
    cost_metric: str = "latency_ms"
    seed: int | None = None
    max_attempts: int = 200

    def __post_init__(self) -> None:
        from .cmaes import CmaEs

        CmaEs({"a": (0, 1), "b": (0, 1)}, **self.core_args())  # checks all

    def objective_config(self) -> ObjectiveConfig:
        return ObjectiveConfig(use=("score", "cost"), score_metric=self.score_metric, cost_metric=self.cost_metric)

    def core_args(self) -> dict[str, Any]:
        """The core's keyword arguments (``objectives`` included)."""
        return {"population_size": self.population_size, "sigma": self.sigma, "seed": self.seed,
                "max_attempts": self.max_attempts, "objectives": self.objective_config()}
