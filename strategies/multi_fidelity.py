"""MO-ASHA: asynchronous successive halving over Pareto rank, as a plain object over metric dicts.

Children train for a few epochs first; at each *rung* (an epoch count) a trial is compared with
every trial that reached the same rung, and it goes on only if it could still join the Pareto
front of (score, cost down). This is the stopping variant of ASHA (Li et al., MLSys 2020) with
promotion by non-dominated rank, as MO-ASHA (Schmucker et al. 2021, arXiv 2106.12639): no trial
waits for others, so it works with any concurrency, including one trial at a time.

The rule at a rung holding ``n`` results (this trial's included): keep the ``ceil(n / eta)`` best
by non-dominated rank, where a whole front is kept when it starts inside that quota. Keeping ties
whole avoids an arbitrary order among mutually non-dominated trials (every one of them could end
on the final front), at the price of keeping a little more than ``1/eta`` when fronts are wide.
The first trial to reach a rung always goes on: there is nothing to compare it with.

No NNI import here: :mod:`strategies.nni_multi_fidelity` adapts it to NNI's assessor (``nnictl``)
and to a ``NasExperiment`` (killing trials through NNI's REST API).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from nni_hwnas.errors import UserError
from nni_hwnas.metrics import METRICS, to_losses
from nni_hwnas.reporting.pareto import non_dominated_sort

from .selection import rank_and_crowding

__all__ = ["MoAsha", "RungStats", "default_rungs", "TIES", "DEFAULT_RUNG_METRIC"]

#: What a rung ranks young trials by, with their cost: ``accuracy``, or the epoch's ``train_loss`` or
#: ``val_loss`` (our trials report all three every epoch). Measured with
#: ``experiments/benchmarks/multi_fidelity.py`` (BreastMNIST, all 546 training images, conv_net, 10
#: seeds, 12 plain trials, every epoch's CPU measured on this machine; results/multi_fidelity_breastmnist_*):
#: after one epoch 85% of networks sit at the majority-class accuracy, so an accuracy rung ranks them
#: by cost alone, and the training loss ranks networks far closer to their final accuracy (epoch-1
#: Spearman 0.49-0.61 against 0.19-0.23 over 389-476 fully trained networks). Yet it did not reach the
#: plain run's final hypervolume sooner: median CPU share 0.61 (6 epochs per trial) and 0.55 (18)
#: ranking by training loss, against 0.50 and 0.55 by accuracy; it reached it in 19/20 runs against
#: 16/20, and cost less with trial launches charged at 18 epochs (0.72 against 0.83 cold). Ranking by
#: training loss keeps wide fronts whole (loss and latency pull apart), so fewer trials stop; cutting
#: them by crowding gave 0.51 and 0.58. Validation loss (78 images) was worst: 0.66 at 18 epochs.
#: None of these differences is beyond the seed-to-seed spread, so the default stays ``accuracy``.
DEFAULT_RUNG_METRIC = "accuracy"

#: How a rung's quota treats the front it cuts through: ``keep`` it whole, or cut it by
#: ``crowding`` distance (NSGA-II's order: the front's extremes first, then the sparsest points).
#: ``keep`` is the default, measured with ``experiments/benchmarks/multi_fidelity.py`` (conv_net, 5
#: seeds, 12 plain trials of 6 epochs, lowest rung 1, epochs' CPU only). On all of BreastMNIST's 546
#: training images ``crowding`` passed fewer trials at rung 1 (36% against 39%), needed a median 0.70
#: of the plain run's CPU to reach its hypervolume (3/5 runs reached it) against 0.45 (4/5) for
#: ``keep``, and reached 0.36 hypervolume at equal CPU against 0.40. On a 300-image subset: 0.93
#: (3/5) against 0.76 (4/5), and 0.22 against 0.31 at equal CPU.
#: (Both variants read the same cached curves, whose CPU was partly measured in earlier, busier runs;
#: :data:`DEFAULT_RUNG_METRIC` has crowding measured again, with a training-loss rung, at 10 seeds.)
TIES = ("keep", "crowding")


def default_rungs(max_epochs: int, min_epochs: int = 1, reduction_factor: float = 3.0) -> list[int]:
    """Rungs ``min_epochs * eta**k`` below ``max_epochs``: the geometric ladder of ASHA.

    E.g. 9 epochs, eta 3 -> [1, 3]: a third of the trials go from 1 to 3 epochs, a ninth to 9.
    """
    rungs, r = [], float(min_epochs)
    while round(r) < max_epochs:
        if not rungs or round(r) > rungs[-1]:
            rungs.append(int(round(r)))
        r *= reduction_factor
    return rungs


@dataclass
class RungStats:
    """What happened at one rung: trials judged there, and those stopped."""

    epoch: int
    reached: int = 0
    stopped: int = 0
    stopped_trials: list[str] = field(default_factory=list)


class MoAsha:
    """Decides, after each epoch of a trial, whether the trial goes on or stops.

    Args:
        rungs: Epoch counts (1-based, ascending) at which trials are judged; the last epoch of
            training is not a rung (a trial that got there is done anyway).
        reduction_factor: ``eta``: about ``1/eta`` of the trials reaching a rung go on.
        score_metric: Metric of the intermediate reports that ranks trials at a rung, in its
            direction from the metric contract (e.g. higher ``accuracy``, lower ``train_loss``).
        cost_metric: Lower-is-better metric (e.g. ``latency_ms``); fixed per architecture, so
            trials of equal accuracy are told apart by cost. None judges on the score alone (ASHA).
    """

    def __init__(self, rungs: Sequence[int], reduction_factor: float = 3.0, score_metric: str = DEFAULT_RUNG_METRIC,
                 cost_metric: str | None = "latency_ms", ties: str = "keep") -> None:
        rungs = [int(r) for r in rungs]
        if not rungs or any(r < 1 for r in rungs) or sorted(set(rungs)) != rungs:
            raise UserError(f"multi_fidelity: `rungs` must be ascending epoch counts >= 1, got {list(rungs)}")
        if not (isinstance(reduction_factor, (int, float)) and reduction_factor > 1):
            raise UserError(f"multi_fidelity: `reduction_factor` must be a number > 1, got {reduction_factor!r}")
        if ties not in TIES:
            raise UserError(f"multi_fidelity: `ties` must be one of {', '.join(TIES)}, got {ties!r}")
        for name, metric in (("score_metric", score_metric), ("cost_metric", cost_metric)):
            if metric is not None and metric not in METRICS:
                raise UserError(f"multi_fidelity: `{name}` {metric!r} is not a reported metric; "
                                f"use one of {', '.join(METRICS)}")
        self.rungs = rungs
        self.reduction_factor = float(reduction_factor)
        self.ties = ties
        self.objectives = [score_metric] + ([cost_metric] if cost_metric else [])
        self._results: dict[int, dict[str, list[float]]] = {r: {} for r in rungs}  # rung -> trial -> losses
        self._stopped: dict[str, int] = {}  # trial -> rung where it was stopped
        self.unjudged: dict[str, int] = {}  # objective -> rung reports that lacked it (went on unjudged)

    def report(self, trial: str, epoch: int, metrics: Mapping[str, Any]) -> bool:
        """Record ``trial``'s metrics after ``epoch`` (1-based) epochs; True = go on, False = stop.

        Epochs that are not rungs always go on. A report with a missing objective goes on (it
        can't be judged) rather than stopping a trial on a guess. Reporting a rung twice for one
        trial keeps the first result, so a repeated message can't change a decision.
        """
        if trial in self._stopped:
            return False
        if not self.observe(trial, epoch, metrics) or self.promotable(epoch, trial):
            return True
        self._stopped[trial] = epoch
        return False

    def observe(self, trial: str, epoch: int, metrics: Mapping[str, Any]) -> bool:
        """Record a rung result without deciding (e.g. of a trial that already ended).

        Returns whether ``trial`` now has a result at rung ``epoch`` (False: not a rung, or an
        objective is missing or not finite).
        """
        if epoch not in self._results:
            return False
        missing = [m for m in self.objectives if not isinstance(metrics.get(m), (int, float))]
        for name in missing:
            self.unjudged[name] = self.unjudged.get(name, 0) + 1
        if missing or not all(math.isfinite(metrics[m]) for m in self.objectives):
            return False
        self._results[epoch].setdefault(trial, [float(v) for v in to_losses([metrics], self.objectives)[0]])
        return True

    def promotable(self, epoch: int, trial: str) -> bool:
        """Whether ``trial`` is among the ``ceil(n / eta)`` best at rung ``epoch`` (whole fronts
        kept, or the boundary front cut by crowding with ``ties="crowding"``)."""
        at_rung = self._results[epoch]
        names = list(at_rung)
        quota = max(1, math.ceil(len(names) / self.reduction_factor))
        losses = np.array([at_rung[n] for n in names], dtype=float)
        if self.ties == "crowding":
            ranks, crowding = rank_and_crowding(losses)
            order = np.lexsort((np.arange(len(names)), -crowding, ranks))  # NSGA-II order; earlier first
            return int(np.flatnonzero(order == names.index(trial))[0]) < quota
        ranks = non_dominated_sort(losses)
        mine = ranks[names.index(trial)]
        better = int(np.sum(ranks < mine))  # trials on fronts before this trial's
        return better < quota

    def stopped(self) -> dict[str, int]:
        """Trial -> the rung (epoch) at which it was stopped."""
        return dict(self._stopped)

    def stats(self) -> list[RungStats]:
        """Per rung: how many trials reached it and how many were stopped there."""
        out = []
        for rung in self.rungs:
            stopped = sorted(t for t, r in self._stopped.items() if r == rung)
            out.append(RungStats(rung, len(self._results[rung]), len(stopped), stopped))
        return out

    def missing_objective_message(self) -> str | None:
        """One line for the log when rung reports lacked an objective (the trials then run on
        unjudged: e.g. a trial script reporting a bare number while ``score_metric`` names another)."""
        if not self.unjudged:
            return None
        names = ", ".join(f"`{m}` ({n} reports)" for m, n in sorted(self.unjudged.items()))
        return (f"MoAsha: rung reports without {names} were not judged and their trials went on; report that "
                f"metric each epoch or set score_metric/cost_metric to metrics the trials report")

    def state_dict(self) -> dict[str, Any]:
        return {"rungs": list(self.rungs), "results": {str(r): dict(v) for r, v in self._results.items()},
                "stopped": dict(self._stopped), "unjudged": dict(self.unjudged)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if [int(r) for r in state["rungs"]] != self.rungs:
            raise UserError(f"multi_fidelity: the saved rungs {state['rungs']} differ from the configured {self.rungs}")
        self._results = {int(r): {t: list(v) for t, v in trials.items()} for r, trials in state["results"].items()}
        self._stopped = {t: int(r) for t, r in state["stopped"].items()}
        self.unjudged = {m: int(n) for m, n in state.get("unjudged", {}).items()}
