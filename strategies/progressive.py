"""Progressive search (EfficientNAS, seed 001): start on a simple sub-space, widen it on a schedule.

The space is cut into stages by *value*: ``stages[k]`` lists the choice values stage ``k`` adds
(for ``staged_net``: stage 1's ops, then depthwise and dilated convs, then attention). A value
listed nowhere (a width, ``stages``) is allowed from the start. While the search is at stage
``k``, every label may take only values of stages ``<= k``; the population is kept when the
space widens, and children reach the new values by mutation.

The search widens to the next stage when either trigger fires (whichever comes first):

- ``after_trials[k]``: this many trials have been told in total;
- ``patience``: the Pareto front has not changed for this many trials at the current stage.
  For a fixed reference point beyond every point, the hypervolume grows exactly when a new point
  enters the non-dominated set, so this *is* "hypervolume stagnating for ``patience`` trials",
  without a reference to choose or a hypervolume to compute per trial.

A stage whose values are all used up (every architecture proposed) widens at once.

Pure data and functions; :class:`~strategies.hw_evolution.HwEvolution` owns the counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from nni_hwnas.errors import UserError

__all__ = ["ProgressiveSchedule", "with_space_stages"]

@dataclass(frozen=True)
class ProgressiveSchedule:
    """When and how far the searched values widen. ``stages=None`` means "the space's own stages",
    filled in by the adapter (:meth:`with_stages`) before the search starts."""

    stages: tuple[tuple[Any, ...], ...] | None = None
    after_trials: tuple[int, ...] = ()
    patience: int | None = None

    @classmethod
    def create(cls, value: Any) -> "ProgressiveSchedule | None":
        """From ``strategy.args.progressive``: ``off`` (or absent) -> None, or a mapping with
        ``stages``, ``after_trials`` and/or ``patience``. Bad values are one-line :class:`UserError`\\ s."""
        if isinstance(value, ProgressiveSchedule):
            return value
        if not isinstance(value, Mapping):
            if value is None or value is False or value == "off":
                return None
            raise UserError(f"`progressive` must be 'off' or a mapping with after_trials/patience/stages, got {value!r}")
        unknown_keys = set(value) - {"stages", "after_trials", "patience"}
        if unknown_keys:
            raise UserError(f"`progressive` has unknown key(s) {', '.join(sorted(map(str, unknown_keys)))}; "
                            "it takes: stages, after_trials, patience")
        after = value.get("after_trials", ())
        after = (after,) if isinstance(after, int) and not isinstance(after, bool) else tuple(after or ())
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in after) or list(after) != sorted(after):
            raise UserError(f"`progressive.after_trials` must be increasing trial counts >= 0, got {list(after)}")
        patience = value.get("patience")
        if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 1):
            raise UserError(f"`progressive.patience` must be an integer >= 1, got {patience!r}")
        if not after and patience is None:
            raise UserError("`progressive` needs `after_trials` (a trial count per widening) and/or `patience` "
                            "(trials without a front change); or set `progressive: off`")
        stages = value.get("stages")
        schedule = cls(None, after, patience)
        return schedule if stages is None else schedule.with_stages(stages)

    def with_stages(self, stages: Sequence[Sequence[Any]]) -> "ProgressiveSchedule":
        if isinstance(stages, (str, bytes)) or len(stages) < 2 or any(isinstance(s, (str, bytes)) for s in stages):
            raise UserError(f"`progressive.stages` must list at least two stages, each a list of values, got {stages!r}")
        if len(self.after_trials) > len(stages) - 1:
            raise UserError(f"`progressive.after_trials` has {len(self.after_trials)} entries for "
                            f"{len(stages) - 1} widening(s) of {len(stages)} stages")
        return ProgressiveSchedule(tuple(tuple(s) for s in stages), self.after_trials, self.patience)

    @property
    def n_stages(self) -> int:
        return len(self.stages or ())

    def stage_of(self, value: Any) -> int:
        """The first stage listing ``value`` (booleans never match numbers); 0 when none does."""
        for k, values in enumerate(self.stages or ()):
            if any(v == value and isinstance(v, bool) == isinstance(value, bool) for v in values):
                return k
        return 0

    def restrict(self, labels: Mapping[str, tuple], stage: int) -> dict[str, tuple]:
        """``labels`` with only the values of stages ``<= stage``. A label none of whose values
        is open yet keeps its first value, so every sample stays complete."""
        out = {}
        for label, values in labels.items():
            open_values = tuple(v for v in values if self.stage_of(v) <= stage)
            out[label] = open_values or values[:1]
        return out

    def should_widen(self, stage: int, n_told: int, since_front_change: int) -> bool:
        """Whether a search at ``stage`` with these counters moves to ``stage + 1`` now."""
        if stage >= self.n_stages - 1:
            return False
        if stage < len(self.after_trials) and n_told >= self.after_trials[stage]:
            return True
        return self.patience is not None and since_front_change >= self.patience

    def as_dict(self) -> dict[str, Any]:
        return {"stages": [list(s) for s in self.stages or ()], "after_trials": list(self.after_trials),
                "patience": self.patience}


def with_space_stages(settings: Mapping[str, Any], definition: Any) -> dict[str, Any]:
    """``settings`` (the core's keyword arguments) with a ``progressive`` schedule that names no
    ``stages`` given the space's own (``definition.progressive_stages``). Both NNI adapters (the
    NAS strategy and the nnictl tuner) call it, so ``progressive: {after_trials: [...]}`` means
    the same on both routes.

    Raises:
        UserError: the schedule names no stages and the space defines none.
    """
    settings = dict(settings)
    schedule = settings.get("progressive")
    if schedule is not None and schedule.stages is None:
        stages = getattr(definition, "progressive_stages", None)
        if stages is None:
            raise UserError("hw_evolution: `progressive` needs `stages` (the values each stage adds): "
                            f"space {getattr(definition, 'name', '?')!r} defines none")
        settings["progressive"] = schedule.with_stages(stages)
    return settings
