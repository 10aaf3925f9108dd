"""The settings of our evolution, once: a dataclass both NNI adapters and the config read.

The NAS ``Strategy`` (``strategy.args`` in an experiment YAML) and the nnictl ``Tuner``
(``classArgs``) take the same plain names; they are declared and checked here only, so a bad one
fails in one line before NNI's manager starts, naming the closest valid name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from nni_hwnas.errors import UserError, unknown

from .objectives import ObjectiveConfig
from .progressive import ProgressiveSchedule


@dataclass(frozen=True)
class HwEvolutionSettings:
    """Search and objective settings of :class:`~strategies.hw_evolution.HwEvolution`.

    ``objectives``, ``score_metric``, ``cost_metric``, ``penalty``, ``penalty_weight``,
    ``novelty_k`` and ``diversity_k`` form the :class:`~strategies.objectives.ObjectiveConfig`;
    the rest are the core's own arguments (``budget`` in ``cost_metric`` units).
    """

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

    def __post_init__(self) -> None:
        objectives = (self.objectives,) if isinstance(self.objectives, str) else tuple(self.objectives)
        object.__setattr__(self, "objectives", objectives)
        from .hw_evolution import HwEvolution

        probe = {k: v for k, v in self.search_settings().items() if k != "progressive"}
        HwEvolution({"probe": (0, 1)}, objectives=self.objective_config(), **probe)  # checks all

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_args(cls, args: Mapping[str, Any] | None, what: str = "argument of strategy 'hw_evolution'") -> "HwEvolutionSettings":
        """Settings from plain (YAML) arguments; an unknown name is one line naming the closest."""
        args = dict(args or {})
        for key in args:
            if key not in cls.names():
                raise unknown(what, key, cls.names())
        try:
            return cls(**args)
        except TypeError as exc:
            raise UserError(f"{what}s {args} are not valid: {exc}") from None

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
                "seed": self.seed,
                # Checked now; ``stages`` may still come from the space (the NAS adapter fills them in).
                "progressive": ProgressiveSchedule.create(self.progressive)}
