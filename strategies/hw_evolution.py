"""``HwEvolution``: multi-objective regularized evolution as a plain ask/tell object.

The loop (Real et al.'s aging evolution, with NSGA-II's crowded tournament for several
objectives)::

    evo = HwEvolution(definition.mutable_labels(), seed=0, identity=definition.arch_id,
                      objectives=["score", "cost"], budget=5.0, screen=predictor.predict)
    while budget_left:
        sample = evo.ask()                      # dict: label -> value, never proposed before
        evo.tell(sample, train_and_measure(sample))   # or tell(sample, None, failed=True)

- The first ``initial_random`` proposals are random. After that, by default (``model_pool`` > 0,
  objectives score and cost), every proposal is **model-based** (:mod:`strategies.model_proposal`,
  BANANAS / LINAS style): ridge models learned from the told trials predict the score and the cost
  of a pool of candidates (every single change of each observed front member, double changes and
  crossovers of front members, and ``model_pool`` random samples), and the candidate that adds the
  most predicted hypervolume to the observed front is proposed.
- Otherwise (``model_pool=0``, or more objectives) every child comes from parents
  picked by tournament on Pareto rank, then crowding (:mod:`strategies.selection`), over the
  objectives of :mod:`strategies.objectives`, by uniform crossover and mutation
  (:mod:`strategies.operators`).
- The population holds the last ``population_size`` successful trials: the oldest dies.
- A fitness cache by architecture identity: nothing evaluated, running, failed or screened out
  is proposed again; a duplicate child is mutated again until it is new.
- Cheap screening: with a cost predictor and a budget, a child predicted far over budget is
  rejected before it costs a trial.
- Progressive search (optional, :mod:`strategies.progressive`): proposals start on the first
  stage's values and widen stage by stage on a trial count or when the front stops changing.

No NNI import: :mod:`strategies.nni_strategy` adapts this object to NNI's ``Strategy``.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from nni_hwnas.errors import UserError
from nni_hwnas.budgets import Budgets
from nni_hwnas.metrics import to_losses
from nni_hwnas.reporting.pareto import pareto_front_indices

from .objectives import LabelEncoder, ObjectiveConfig, loss_matrix
from .operators import mutate, random_sample, uniform_crossover
from .progressive import ProgressiveSchedule
from .model_proposal import PairwiseOneHot, rank_candidates
from .surrogate import OneHot, pick_child
from .selection import rank_and_crowding, tournament

__all__ = ["HwEvolution", "SpaceExhausted", "STATE_FORMAT"]

STATE_FORMAT = "hw_evolution/1"
DEFAULT_SURROGATE_CANDIDATES = 1
DEFAULT_ACTIVE_MUTATION = True
DEFAULT_MODEL_POOL = 200
_VIEW_CACHE_SIZE = 20000  # raw sample -> (id, canonical view) of pool candidates
DEFAULT_MODEL_OPTIMISM = 0.0
_log = logging.getLogger("nni_hwnas.strategies")

Sample = dict[str, Any]


class SpaceExhausted(RuntimeError):
    """No architecture that was never proposed could be found: the search space is used up."""


def default_identity(labels: Sequence[str]) -> Callable[[Mapping[str, Any]], str]:
    """Identity = hash of the sample's searched labels (every label counts, even unused ones)."""
    names = sorted(labels)

    def identity(sample: Mapping[str, Any]) -> str:
        text = json.dumps({name: sample.get(name) for name in names}, sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    return identity


class HwEvolution:
    """Multi-objective regularized evolution over a dict of choices (ask/tell, seedable, resumable).

    Defaults are sized for what this plugin runs: 50-100 trials on a small CPU machine. At that
    budget a large random start makes evolution no better than random search (see
    the project notes ``METHODS.md``), so the random phase is short and selection starts early.

    Args:
        labels: label -> candidate values (``SpaceDefinition.mutable_labels()``; NNI's simplified
            space gives the same). Labels with one value are copied, never mutated.
        population_size: Successful trials kept; the oldest dies when a new one joins. 20 lets
            each member parent several children before aging out within 100 trials (Real et al.
            used 100 at 20,000 trials; NNI's default 100 would still be filling up).
        sample_size: Tournament size. 10 of 20: on the toy problems of the tests (60 seeds, 40-80
            trials) it reached 1-1.5% more hypervolume than 5 and much more than 2.
        initial_random: Random proposals before selection starts. 8 gives a first front to select
            from while leaving ~90% of a 100-trial budget to evolution; 16 did worse on the toys,
            4 too. Selection also waits until two trials have succeeded.
        mutation_prob: Per-label mutation probability; ``None`` = 1 / number of mutable labels
            (one change on average; at least one label always changes).
        crossover_prob: Probability that a child recombines two tournament winners (uniform
            crossover, as in the CIFAR-10 evolutionary study) before mutation; otherwise it
            mutates one. 0.1: on the toys 0.5 lost ~1% hypervolume against mutation only, 0.1 was
            within noise of it while keeping recombination.
        objectives: :class:`~strategies.objectives.ObjectiveConfig`, a list of objective names,
            or a mapping of its fields; ``None`` = defaults.
        seed: Seeds the strategy's own ``numpy`` generator (its state is saved by
            :meth:`state_dict`).
        identity: sample -> architecture id, for the fitness cache (e.g.
            ``SpaceDefinition.arch_id``, which ignores the labels of unused layers). Default: a
            hash of every label.
        canonical: sample -> the labels that matter (``SpaceDefinition.canonical``), used for
            novelty distances; default: the sample itself.
        screen: sample -> predicted cost (in ``cost_metric`` units) or ``None`` when unknown, e.g.
            a latency predictor. Used only with a ``budget``.
        budget: Cost budget in ``cost_metric`` units: drives the penalty and screening.
        budgets: The run's :class:`~nni_hwnas.budgets.Budgets` (its ``cost_metric`` limit is the
            ``budget``; a different ``budget`` is refused); the front keeps what they admit.
        screen_slack: A child is screened out when predicted above ``budget * (1 + screen_slack)``.
            0.1 keeps near-budget children (the predictor errs by ~10%, and the penalty already
            weighs them) and rejects the ones far over.
        max_attempts: Children tried per proposal before falling back to random sampling, and
            random draws tried before declaring the space exhausted.
        progressive: ``"off"``/None (search every value from the start), or a
            :class:`~strategies.progressive.ProgressiveSchedule` or its mapping (``stages``,
            ``after_trials``, ``patience``) with ``stages`` given.
        surrogate_candidates: New children bred per proposal once evolution starts; a tree
            ensemble over the told architectures (:mod:`strategies.surrogate`) picks the one to
            evaluate. 1 = no surrogate (the first new child is evaluated). Off by default: on
            NAS-Bench-201 CIFAR-10 (error vs latency, 100 trials) 8, 16 and 32 candidates reached
            0.890-0.896 of the true front's hypervolume at 50 trials and 0.926-0.945 at 100
            (8-12 seeds) against 0.895 and 0.943 without (16 seeds): no gain beyond the
            seed-to-seed noise, for 40-100x the strategy's own time.
        active_mutation: Mutate only the labels that matter for the parent (its ``canonical``
            labels) rather than every label: a change to an unused label makes the same network,
            which the cache rejects and mutates again, drifting away from the parent. On
            NAS-Bench-201 CIFAR-10 (error vs latency, 30 seeds) it raised the mean hypervolume
            share from 0.885 to 0.897 at 50 trials and 0.931 to 0.934 at 100, and lowered IGD+
            at both (not significant alone; ``experiments/benchmarks/search_quality.py``).
        model_pool: Random samples added to each model-based proposal's pool (beside the front's
            neighbours and crossovers); 0 = plain evolution after the random start. On
            NAS-Bench-201 CIFAR-10, error vs latency, 10 seeds, evolution (``model_pool=0``)
            reached 0.900 of the true front's hypervolume at 50 trials and 0.925 at 100; the
            model-based proposals 0.952 and 0.967 (20 more seeds: 0.929 and 0.959). 200: 50 and
            1000 were within noise of it (0.926-0.928 at 50), 1000 at 2.5x the time.
        model_optimism: Ensemble spreads subtracted from the predicted score loss (an upper
            confidence bound). 0 (greedy on the mean): 0.942/0.960 at 50/100 trials (10 seeds)
            against 0.926/0.955 with 0.5, 0.925/0.942 with 1 and 0.888/0.928 with 2; picking one
            bootstrap replica instead (Thompson sampling) reached 0.915/0.961 (measured in
            the order the changes were made, before the rank warp of the score).
    """

    def __init__(self, labels: Mapping[str, Sequence[Any]], *, population_size: int = 20,
                 sample_size: int = 10, initial_random: int = 8, mutation_prob: float | None = None,
                 crossover_prob: float = 0.1,
                 objectives: ObjectiveConfig | Sequence[str] | Mapping[str, Any] | None = None,
                 seed: int | None = None, identity: Callable[[Mapping[str, Any]], str] | None = None,
                 canonical: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
                 screen: Callable[[Mapping[str, Any]], float | None] | None = None,
                 budget: float | None = None, budgets: Budgets | None = None, screen_slack: float = 0.1,
                 max_attempts: int = 200,
                 progressive: ProgressiveSchedule | Mapping[str, Any] | str | None = None,
                 surrogate_candidates: int = DEFAULT_SURROGATE_CANDIDATES,
                 active_mutation: bool = DEFAULT_ACTIVE_MUTATION, model_pool: int = DEFAULT_MODEL_POOL,
                 model_optimism: float = DEFAULT_MODEL_OPTIMISM) -> None:
        self.labels: dict[str, tuple] = _check_labels(labels)
        n_mutable = sum(len(v) > 1 for v in self.labels.values())
        _check_int("population_size", population_size, 2)
        _check_int("sample_size", sample_size, 1)
        if sample_size > population_size:
            raise UserError(f"`sample_size` must be <= `population_size` ({population_size}), got {sample_size}")
        _check_int("initial_random", initial_random, 0)
        _check_int("max_attempts", max_attempts, 1)
        _check_int("surrogate_candidates", surrogate_candidates, 1)
        _check_int("model_pool", model_pool, 0)
        if not (_is_number(model_optimism) and model_optimism >= 0):
            raise UserError(f"`model_optimism` must be a number >= 0, got {model_optimism!r}")
        if mutation_prob is None:
            mutation_prob = 1.0 / max(1, n_mutable)
        _check_fraction("mutation_prob", mutation_prob)
        _check_fraction("crossover_prob", crossover_prob)
        if budget is not None and not (_is_number(budget) and budget > 0):
            raise UserError(f"`budget` must be a number > 0 (in the cost metric's unit), got {budget!r}")
        if not (_is_number(screen_slack) and screen_slack >= 0):
            raise UserError(f"`screen_slack` must be a number >= 0, got {screen_slack!r}")
        self.population_size = int(population_size)
        self.sample_size = int(sample_size)
        self.initial_random = int(initial_random)
        self.mutation_prob = float(mutation_prob)
        self.crossover_prob = float(crossover_prob)
        self.objectives = ObjectiveConfig.create(objectives)
        # One budgets object (the run's; ``budget`` adds or must equal its cost-metric limit): the
        # penalty and screening read its cost-metric limit, the front its rule.
        self.budgets = Budgets.of(budgets).with_limit(self.objectives.cost_metric, budget, "hw_evolution")
        self.budget = self.budgets.limit(self.objectives.cost_metric)
        self.screen_slack = float(screen_slack)
        self.max_attempts = int(max_attempts)
        self.progressive = ProgressiveSchedule.create(progressive)
        if self.progressive is not None and self.progressive.stages is None:
            raise UserError("`progressive` needs `stages` (the values each stage adds) for a space that has none")
        self.surrogate_candidates = int(surrogate_candidates)
        self.active_mutation = bool(active_mutation)
        self.model_pool = int(model_pool)
        self.model_optimism = float(model_optimism)
        self._onehot = OneHot(self.labels)
        self._pairwise = PairwiseOneHot(self.labels)
        self._features: dict[str, np.ndarray] = {}  # id -> pairwise one-hot of the canonical sample (a cache)
        self._views: dict[tuple, tuple[str, Mapping[str, Any]]] = {}  # raw sample -> (id, canonical), bounded
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._identity = identity or default_identity(self.labels)
        self._canonical = canonical
        self._screen = screen
        self._encoder = LabelEncoder(self.labels)
        self._codes: dict[str, np.ndarray] = {}  # id -> encoded canonical sample (a cache)

        self._history: list[dict[str, Any]] = []  # every told trial, in tell order
        self._history_index: dict[str, int] = {}  # id -> position in _history
        self._population: collections.deque[int] = collections.deque(maxlen=self.population_size)
        self._pending: dict[str, Sample] = {}  # id -> sample: asked, not yet told
        self._proposals: dict[str, dict[str, Any]] = {}  # id -> how it was proposed (origin, predicted cost)
        self._screened: dict[str, float] = {}  # id -> predicted cost of a child rejected by screening
        self._n_asked = 0
        self._stage = 0  # progressive: the current stage
        self._since_front_change = 0  # told trials since the front last changed (at this stage)
        self._widenings: list[dict[str, int]] = []  # when each widening happened

    # ------------------------------------------------------------------ public API

    @property
    def stage(self) -> int:
        """The progressive stage proposals come from (0 without a schedule)."""
        return self._stage

    @property
    def widenings(self) -> list[dict[str, int]]:
        """Each widening: ``{"stage": new stage, "after_trials": trials told by then}``."""
        return [dict(w) for w in self._widenings]

    def search_labels(self) -> dict[str, tuple]:
        """The values proposals may use now: every label's, or the current stage's."""
        if self.progressive is None:
            return self.labels
        return self.progressive.restrict(self.labels, self._stage)

    def identity(self, sample: Mapping[str, Any]) -> str:
        """The architecture id of ``sample`` (what the fitness cache and dedup use)."""
        return str(self._identity(sample))

    def ask(self) -> Sample:
        """Propose an architecture never proposed before (random at first, then evolved).

        Raises:
            SpaceExhausted: When no new architecture can be found.
        """
        evolving = len(self._history) + len(self._pending) >= self.initial_random and len(self._population) >= 2
        while True:
            try:
                sample, origin, predicted, parent = self._propose(evolving)
                break
            except SpaceExhausted:
                # A used-up stage widens early instead of ending the search.
                if self.progressive is None or self._stage >= self.progressive.n_stages - 1:
                    raise
                self._widen("its values are used up")
        cid = self.identity(sample)
        self._pending[cid] = sample
        self._proposals[cid] = {"origin": origin, "predicted_cost": predicted, "parent": parent}
        self._n_asked += 1
        _log.debug("hw_evolution: proposal %d (%s) %s", self._n_asked, origin, sample)
        return dict(sample)

    def tell(self, sample: Mapping[str, Any], metrics: Mapping[str, Any] | None, failed: bool = False) -> bool:
        """Record a finished trial. Returns False when this architecture was already told.

        A trial counts as failed (remembered, never proposed again, never a parent) when
        ``failed`` is set, ``metrics`` is None, or a required metric (score, and cost when an
        objective or the budget needs it) is missing or not finite. ``sample`` need not come from
        :meth:`ask`: trials found elsewhere (another run, NNI's database) can be told too.
        """
        cid = self.identity(sample)
        if cid in self._history_index:
            return False
        self._pending.pop(cid, None)
        proposal = self._proposals.pop(cid, {"origin": "told", "predicted_cost": None, "parent": None})
        clean = _clean_metrics(metrics)
        reason = None
        if failed:
            reason = "trial failed"
        elif metrics is None:
            reason = "no metrics reported"
        else:
            missing = [m for m in self.objectives.required_metrics(self.budget) if m not in clean]
            if missing:
                reason = f"missing or non-finite metric(s): {', '.join(missing)}"
        record = {"id": cid, "sample": {k: sample[k] for k in sample}, "status": "failed" if reason else "succeeded",
                  "metrics": clean, "reason": reason, **proposal}
        self._history_index[cid] = len(self._history)
        self._history.append(record)
        if reason is None:
            self._population.append(len(self._history) - 1)  # deque(maxlen): the oldest dies
        else:
            _log.info("hw_evolution: %s failed (%s); it will not be proposed again", cid, reason)
        if self.progressive is not None:
            self._advance_stage(cid)
        return True

    def _advance_stage(self, cid: str) -> None:
        """Count the trial against the schedule and widen the searched values when it says so."""
        front_ids = {r["id"] for r in self.pareto_front(within_budget=False)}
        self._since_front_change = 0 if cid in front_ids else self._since_front_change + 1
        if self.progressive.should_widen(self._stage, len(self._history), self._since_front_change):
            self._widen("on schedule")

    def _widen(self, why: str) -> None:
        self._stage += 1
        self._since_front_change = 0
        self._widenings.append({"stage": self._stage, "after_trials": len(self._history)})
        _log.info("hw_evolution: progressive search widens to stage %d after %d trials (%s)",
                  self._stage + 1, len(self._history), why)

    def mark_pending(self, sample: Mapping[str, Any]) -> None:
        """Note an architecture running elsewhere (e.g. a trial NNI re-runs on resume)."""
        cid = self.identity(sample)
        if cid not in self._history_index:
            self._pending.setdefault(cid, dict(sample))

    def forget_pending(self, sample: Mapping[str, Any]) -> None:
        """Drop a proposal that will never be evaluated (lost before it ran); it may come back."""
        cid = self.identity(sample)
        self._pending.pop(cid, None)
        self._proposals.pop(cid, None)

    @property
    def pending(self) -> list[Sample]:
        """Proposals not yet told, oldest first."""
        return [dict(s) for s in self._pending.values()]

    @property
    def history(self) -> list[dict[str, Any]]:
        """Every told trial in tell order: ``id``, ``sample``, ``status``, ``metrics``, ``reason``,
        ``origin`` (``random``, ``evolved``, ``over-budget fallback``, or ``told`` for trials not
        proposed by :meth:`ask`) and ``predicted_cost`` (the screen's prediction, or None)."""
        return [_copy_record(r) for r in self._history]

    @property
    def population(self) -> list[dict[str, Any]]:
        """The current population (successful trials), oldest first."""
        return [_copy_record(self._history[i]) for i in self._population]

    def is_known(self, sample: Mapping[str, Any]) -> bool:
        """True when this architecture was told or is pending."""
        cid = self.identity(sample)
        return cid in self._history_index or cid in self._pending

    def front_objectives(self) -> list[str]:
        """Metrics the reported Pareto front is over: the score and, when reported, the cost (and
        the second cost when it is an objective: a 3-D front)."""
        names = [self.objectives.score_metric]
        ok = [r for r in self._history if r["status"] == "succeeded"]
        for metric in (self.objectives.cost_metric, self.objectives.second_cost_metric):
            if metric == self.objectives.cost_metric or "second_cost" in self.objectives.use:
                if ok and all(metric in r["metrics"] for r in ok):
                    names.append(metric)
        return names

    def pareto_front(self, within_budget: bool = True) -> list[dict[str, Any]]:
        """Non-dominated successful trials over score (up) and cost (down), cheapest first.

        Over-budget trials (:meth:`~nni_hwnas.budgets.Budgets.admits` of the run's budgets, the rule
        the results use too) are left out unless ``within_budget`` is False. Novelty and cost
        diversity steer the search but are not qualities of an architecture: not used here.
        """
        names = self.front_objectives()
        records = [r for r in self._history if r["status"] == "succeeded" and all(n in r["metrics"] for n in names)]
        if within_budget:
            records = [r for r in records if self.budgets.admits(r["metrics"])]
        if not records:
            return []
        idx = pareto_front_indices(to_losses([r["metrics"] for r in records], names))
        front = [_copy_record(records[i]) for i in idx]
        key = names[1] if len(names) > 1 else names[0]  # the cost when reported, else the score (best first)
        return sorted(front, key=lambda r: r["metrics"][key] if len(names) > 1 else -r["metrics"][key])

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this run is, as plain JSON data."""
        return {
            "format": STATE_FORMAT,
            "labels": {label: list(values) for label, values in self.labels.items()},
            "settings": {"population_size": self.population_size, "sample_size": self.sample_size,
                         "initial_random": self.initial_random, "mutation_prob": self.mutation_prob,
                         "crossover_prob": self.crossover_prob, "objectives": self.objectives.as_dict(),
                         "budget": self.budget, "screen_slack": self.screen_slack, "seed": self.seed,
                         "surrogate_candidates": self.surrogate_candidates, "active_mutation": self.active_mutation,
                         "model_pool": self.model_pool, "model_optimism": self.model_optimism},
            "rng": _jsonable_rng_state(self.rng.bit_generator.state),
            "history": [_copy_record(r) for r in self._history],
            "population": [int(i) for i in self._population],
            "pending": [[cid, dict(s), dict(self._proposals.get(cid, {}))] for cid, s in self._pending.items()],
            "screened": dict(self._screened),
            "n_asked": self._n_asked,
            "progressive": {"stage": self._stage, "since_front_change": self._since_front_change,
                            "widenings": self.widenings},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict` output. Settings are this object's; data is the state's.

        Raises:
            ValueError: When the state is not ours or was saved over other labels/values.
        """
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a {STATE_FORMAT} state (format {state.get('format')!r})")
        saved = {label: list(values) for label, values in state["labels"].items()}
        mine = {label: list(values) for label, values in self.labels.items()}
        if saved != mine:
            raise ValueError("the saved state searched other choices: "
                             f"saved labels {sorted(saved)} vs current {sorted(mine)} (or their values differ)")
        rng_state = dict(state["rng"])
        self.rng.bit_generator.state = rng_state
        self._history = [_copy_record(r) for r in state["history"]]
        self._history_index = {r["id"]: i for i, r in enumerate(self._history)}
        self._population = collections.deque((int(i) for i in state["population"]), maxlen=self.population_size)
        self._pending = {entry[0]: dict(entry[1]) for entry in state["pending"]}
        self._proposals = {entry[0]: dict(entry[2]) for entry in state["pending"] if len(entry) > 2 and entry[2]}
        self._screened = {str(k): float(v) for k, v in state.get("screened", {}).items()}
        self._n_asked = int(state.get("n_asked", len(self._history) + len(self._pending)))
        progress = state.get("progressive") or {}
        self._stage = int(progress.get("stage", 0))
        self._since_front_change = int(progress.get("since_front_change", 0))
        self._widenings = [dict(w) for w in progress.get("widenings", [])]
        self._codes.clear()
        self._features.clear()

    # ------------------------------------------------------------------ proposing

    def parent_of(self, sample: Mapping[str, Any]) -> str | None:
        """The id of the population member a pending evolved proposal was bred from (its first
        parent under crossover), or None (random proposals, or not pending)."""
        return self._proposals.get(self.identity(sample), {}).get("parent")

    def _propose(self, evolving: bool) -> tuple[Sample, str, float | None, str | None]:
        """A new child (evolved or random) that passes screening, and its parent's id; see :meth:`ask`."""
        fallback: tuple[float, Sample] | None = None
        labels = self.search_labels()
        if evolving and self._model_ready():
            chosen = self._model_proposal()
            if chosen is not None:
                return chosen
        if evolving:
            selector = self._selector()
            child: Sample = {}
            parent: str | None = None
            offered: dict[str, tuple[Sample, float | None, str | None]] = {}
            fresh = True
            for attempt in range(self.max_attempts):
                # Every 10th attempt, and after each new child, starts from fresh parents; the
                # others mutate the duplicate or screened-out child again.
                if fresh or attempt % 10 == 0:
                    child, parent = self._breed(selector)
                else:
                    child = self._mutate(child)
                verdict, predicted = self._judge(child)
                fresh = verdict == "new"
                if fresh:
                    offered.setdefault(self.identity(child), (child, predicted, parent))
                    if len(offered) >= self.surrogate_candidates:
                        break
                if verdict == "screened" and (fallback is None or predicted < fallback[0]):
                    fallback = (predicted, child)
            if offered:
                children = list(offered.values())
                if len(children) == 1:
                    return children[0][0], "evolved", children[0][1], children[0][2]
                child, predicted, parent = children[self._surrogate_pick([c for c, _, _ in children])]
                return child, "evolved (surrogate)", predicted, parent
        for _ in range(self.max_attempts):
            child = random_sample(labels, self.rng)
            verdict, predicted = self._judge(child)
            if verdict == "new":
                return child, "random", predicted, None
            if verdict == "screened" and (fallback is None or predicted < fallback[0]):
                fallback = (predicted, child)
        if fallback is not None:
            predicted, child = fallback
            self._screened.pop(self.identity(child), None)
            _log.warning("hw_evolution: no new architecture predicted within budget %.4g (+%.0f%%); "
                         "proposing the cheapest found (predicted %.4g)", self.budget, 100 * self.screen_slack, predicted)
            return child, "over-budget fallback", predicted, None
        raise SpaceExhausted(f"no new architecture found in {2 * self.max_attempts} attempts: "
                             f"{len(self._history)} evaluated and {len(self._pending)} running "
                             "cover (nearly) the whole space")

    def _judge(self, child: Sample) -> tuple[str, float | None]:
        """``("seen" | "screened" | "new", predicted cost)`` for a candidate child."""
        cid = self.identity(child)
        if cid in self._history_index or cid in self._pending:
            return "seen", None
        if cid in self._screened:
            return "screened", self._screened[cid]
        if self._screen is None or self.budget is None:
            return "new", None
        predicted = self._screen(child)
        if predicted is None:
            return "new", None
        predicted = float(predicted)
        if predicted > self.budget * (1.0 + self.screen_slack):
            self._screened[cid] = predicted
            return "screened", predicted
        return "new", predicted

    def _selector(self) -> tuple[list[int], np.ndarray, np.ndarray]:
        """Population indices with their Pareto ranks and crowding, computed once per proposal."""
        members = list(self._population)
        rows = [self._history[i]["metrics"] for i in members]
        kwargs: dict[str, Any] = {}
        if "novelty" in self.objectives.use:
            archive_ids = list(self._history_index) + list(self._pending)
            position = {cid: j for j, cid in enumerate(archive_ids)}
            kwargs = {
                "members": np.stack([self._code(self._history[i]["id"], self._history[i]["sample"]) for i in members]),
                "archive": np.stack([self._code(cid, self._sample_of(cid)) for cid in archive_ids]),
                "self_index": np.array([position[self._history[i]["id"]] for i in members]),
                "ordinal": self._encoder.ordinal,
            }
        losses = loss_matrix(rows, self.objectives, self.budget, **kwargs)
        ranks, crowding = rank_and_crowding(losses)
        return members, ranks, crowding

    def _breed(self, selector: tuple[list[int], np.ndarray, np.ndarray]) -> tuple[Sample, str]:
        """A child of tournament winner(s), and the id of its (first) parent."""
        members, ranks, crowding = selector
        labels = self.search_labels()
        first = tournament(ranks, crowding, self.rng, self.sample_size)
        parent_id = self._history[members[first]]["id"]
        parent = self._full(self._history[members[first]]["sample"])
        if self.rng.random() < self.crossover_prob:
            second = tournament(ranks, crowding, self.rng, self.sample_size, exclude=first)
            parent = uniform_crossover(parent, self._full(self._history[members[second]]["sample"]),
                                       labels, self.rng)
        return self._mutate(parent), parent_id

    def _mutate(self, parent: Sample) -> Sample:
        """Mutate only labels that matter for ``parent`` (its canonical labels, when known): a
        change to an unused label gives the same network, which the cache would then reject."""
        only = list(self._canonical(parent)) if self._canonical and self.active_mutation else None
        return mutate(parent, self.search_labels(), self.rng, self.mutation_prob, only=only)

    def _model_ready(self) -> bool:
        """Model-based proposals need a pool, exactly two objectives (score, cost) and 2 told trials."""
        if self.model_pool <= 0 or tuple(self.objectives.use) != ("score", "cost"):
            return False
        return len(self._told_for(self.front_objectives())) >= 2 and len(self.front_objectives()) == 2

    def _told_for(self, names: list[str]) -> list[dict[str, Any]]:
        return [r for r in self._history if r["status"] == "succeeded" and all(n in r["metrics"] for n in names)]

    def _model_proposal(self) -> tuple[Sample, str, float | None, str | None] | None:
        """The pool candidate with the largest optimistic hypervolume gain that passes screening
        (:mod:`strategies.model_proposal`), with the front member it was derived from (None for a
        random one); None when the pool has nothing new."""
        pool = self._candidate_pool()
        if not pool:
            return None
        names = self.front_objectives()
        told = self._told_for(names)
        losses = to_losses([r["metrics"] for r in told], names)
        if self.budget is not None and self.objectives.penalty != "none":
            losses = loss_matrix([r["metrics"] for r in told], self.objectives, self.budget)
        known_x = np.stack([self._feature(r["id"], r["sample"]) for r in told])
        pending_x = np.stack([self._feature(cid, s) for cid, s in self._pending.items()]) if self._pending else None
        candidate_x = self._pairwise.encode([view for _, _, view, _ in pool])
        # Greedy on the mean needs no ensemble: the mean of 10 bootstrap fits gave the same
        # hypervolume as one fit on all trials (10 seeds: 0.952/0.967 vs 0.945/0.968 at 50/100).
        order = rank_candidates(known_x, losses, candidate_x, self.rng, pending_x, self.model_optimism,
                                n_models=10 if self.model_optimism > 0 else 1)
        for index in order:
            cid, child, _, parent = pool[int(index)]
            verdict, predicted = self._judge(child)
            if verdict == "new":
                return child, "model", predicted, parent
        return None

    def _candidate_pool(self) -> list[tuple[str, Sample, Mapping[str, Any], str | None]]:
        """New architectures to score: every single-label change of each observed front member (over
        the labels that matter), double changes and crossovers of front members, and random samples;
        each with the id of the front member it came from (the first one for a crossover)."""
        labels = self.search_labels()
        front = [(r["id"], self._full(r["sample"])) for r in self.pareto_front(within_budget=False)]
        children: list[tuple[Sample, str | None]] = []
        for parent_id, parent in front:
            only = list(self._canonical(parent)) if self._canonical else list(labels)
            for label in only:
                for value in labels.get(label, ()):
                    if value != parent[label]:
                        children.append(({**parent, label: value}, parent_id))
            for _ in range(4):
                children.append((mutate(parent, labels, self.rng, min(1.0, 2.0 / max(1, len(only))), only=only),
                                 parent_id))
        for _ in range(2 * len(front)):
            (first_id, first), (_, second) = (front[int(i)] for i in self.rng.integers(len(front), size=2))
            children.append((self._mutate(uniform_crossover(first, second, labels, self.rng)), first_id))
        children.extend((random_sample(labels, self.rng), None) for _ in range(self.model_pool))
        pool: dict[str, tuple[str, Sample, Mapping[str, Any], str | None]] = {}
        for child, parent_id in children:
            cid, view = self._view(child)
            if cid not in pool and cid not in self._history_index and cid not in self._pending \
                    and cid not in self._screened:
                pool[cid] = (cid, child, view, parent_id)
        return list(pool.values())

    def _view(self, sample: Sample) -> tuple[str, Mapping[str, Any]]:
        """``(identity, canonical sample)``, cached: front neighbours come back every proposal."""
        key = tuple(_hashable(sample[label]) for label in self.labels)
        hit = self._views.get(key)
        if hit is None:
            if len(self._views) >= _VIEW_CACHE_SIZE:
                self._views.clear()
            hit = (self.identity(sample), self._canonical(sample) if self._canonical else sample)
            self._views[key] = hit
        return hit

    def _feature(self, cid: str, sample: Mapping[str, Any]) -> np.ndarray:
        row = self._features.get(cid)
        if row is None:
            view = self._canonical(sample) if self._canonical else sample
            row = self._pairwise.encode([view])[0]
            self._features[cid] = row
        return row

    def _surrogate_pick(self, children: list[Sample]) -> int:
        """Which of ``children`` to evaluate: see :func:`strategies.surrogate.pick_child`."""
        names = self.front_objectives()
        told = [r for r in self._history if r["status"] == "succeeded" and all(n in r["metrics"] for n in names)]
        if len(told) < 2:
            return 0
        view = self._canonical or (lambda sample: sample)
        known_x = self._onehot.encode([view(r["sample"]) for r in told])
        losses = to_losses([r["metrics"] for r in told], names)
        return pick_child(known_x, losses, self._onehot.encode([view(c) for c in children]), self.rng)

    def _full(self, sample: Mapping[str, Any]) -> Sample:
        """Every searched label (a sample told from elsewhere may lack unused ones: first value)."""
        return {label: sample.get(label, values[0]) for label, values in self.labels.items()}

    def _sample_of(self, cid: str) -> Mapping[str, Any]:
        if cid in self._history_index:
            return self._history[self._history_index[cid]]["sample"]
        return self._pending[cid]

    def _code(self, cid: str, sample: Mapping[str, Any]) -> np.ndarray:
        code = self._codes.get(cid)
        if code is None:
            code = self._encoder.encode(self._canonical(sample) if self._canonical else sample)
            self._codes[cid] = code
        return code


# ---------------------------------------------------------------------- helpers


def _check_labels(labels: Mapping[str, Sequence[Any]]) -> dict[str, tuple]:
    if not isinstance(labels, Mapping) or not labels:
        raise UserError("hw_evolution needs at least one choice label (label -> list of values)")
    out = {}
    for label, values in labels.items():
        values = tuple(values)
        if not values:
            raise UserError(f"choice {label!r} has no values")
        out[str(label)] = values
    return out


def _hashable(value: Any) -> Any:
    """A dict key for a label value (lists from JSON become tuples; True stays apart from 1)."""
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return (type(value) is bool, value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(name: str, value: Any, low: int) -> None:
    if not (_is_number(value) and int(value) == value) or value < low:
        raise UserError(f"`{name}` must be an integer >= {low}, got {value!r}")


def _check_fraction(name: str, value: Any) -> None:
    if not (_is_number(value) and 0.0 <= value <= 1.0):
        raise UserError(f"`{name}` must be a number in [0, 1], got {value!r}")


def _clean_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """Finite numeric metrics as floats (a NaN or a string is as good as not reported)."""
    if not metrics:
        return {}
    if not isinstance(metrics, Mapping):
        metrics = {"default": metrics}
    return {str(k): float(v) for k, v in metrics.items() if _is_number(v) or isinstance(v, np.number) and math.isfinite(v)}


def _copy_record(record: Mapping[str, Any]) -> dict[str, Any]:
    return {**record, "sample": dict(record["sample"]), "metrics": dict(record["metrics"] or {})}


def _jsonable_rng_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The bit generator's state with numpy scalars and arrays as plain Python numbers/lists."""
    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.integer):
            return int(value)
        return value

    return plain(state)
