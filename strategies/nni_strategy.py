"""Our ask/tell cores as NNI NAS ``Strategy`` objects: ``hw_evolution`` and ``cmaes``.

A thin adapter, shared by both cores (:class:`~strategies.hw_evolution.HwEvolution`,
:class:`~strategies.cmaes.CmaEs`): ask -> ``model_space.freeze(sample)`` -> ``engine.submit_models``;
on the trial's end -> tell. Everything the search decides lives in the core; this module only speaks
NNI's event API:

- ``FinalMetricEvent.metric`` carries the trial's raw metric *dict* (``model.metric`` keeps
  only ``default``), and NNI's engine drops events of models nobody references: the adapter keeps
  every submitted model until its trial ends (``docs/nni-quirks.md``, "Metric events").
- ``TrainingEndEvent.status`` tells success from failure.
- After a resume, trials of the previous run (including one NNI re-runs because the stop caught
  it mid-trial, whose events never reach a strategy) are read back from NNI's database
  (``/trial-jobs``) and told to the core, so nothing is proposed or trained twice.
"""

from __future__ import annotations

import abc
import inspect
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import nni
from nni.mutable import Categorical
from nni.nas.execution import ExecutionEngine
from nni.nas.execution.event import FinalMetricEvent, ModelEventType, TrainingEndEvent
from nni.nas.space import ExecutableModelSpace, ModelStatus
from nni.nas.strategy.base import Strategy

from nni_hwnas.budgets import Budgets
from nni_hwnas.errors import UserError, unknown
from nni_hwnas.evaluation.inheritance import with_lineage
from nni_hwnas.nni_compat.rest import TERMINAL_STATUSES, declared_value, final_parameter_id

from .hw_evolution import HwEvolution, SpaceExhausted
from .progressive import with_space_stages
from .settings import CmaEsSettings, HwEvolutionSettings

__all__ = ["AskTellStrategy", "HwEvolutionStrategy", "CmaEsStrategy", "make_hw_evolution", "make_cmaes",
           "STRATEGY_NAME", "CONFIG_ARGS", "CMAES_CONFIG_ARGS"]

STRATEGY_NAME = "hw_evolution"
STATE_FORMAT = "hw_evolution_strategy/1"
_log = logging.getLogger("nni_hwnas.strategies")


@dataclass
class _Running:
    """A submitted model (held so NNI keeps sending its events) and what it reported so far."""

    model: ExecutableModelSpace
    sample: dict[str, Any]
    metrics: dict[str, Any] | None = None


class AskTellStrategy(Strategy, metaclass=abc.ABCMeta):
    """An ask/tell core (``ask``, ``tell``, ``identity``, ``pending``, ``mark_pending``,
    ``forget_pending``, ``history``, ``pareto_front``, ``state_dict``) as an NNI NAS strategy.

    Subclasses say how the core is built from the space's labels (:meth:`_make_core`).

    Args:
        definition: The space's :class:`~search_spaces.definition.SpaceDefinition`. Found by
            itself for our ``HwModelSpace`` spaces; needed only for other spaces that have one.
        identity: sample -> architecture id; default ``definition.arch_id`` (ignores unused
            layers), else a hash of every label.
        poll_interval_s: How often to look for a free worker / read NNI's database.
    """

    NAME = "?"

    def __init__(self, *, definition: Any = None, identity: Callable[[Mapping[str, Any]], str] | None = None,
                 poll_interval_s: float = 1.0) -> None:
        super().__init__()
        self.definition = definition
        self.poll_interval_s = float(poll_interval_s)
        self._identity = identity
        self._core: Any = None
        self._pending_state: Mapping[str, Any] | None = None
        self._running: dict[int, _Running] = {}  # id(model) -> its record (a strong reference)
        self._lock = threading.RLock()  # NNI calls back from its listener thread
        self._last_reconcile = 0.0

    @abc.abstractmethod
    def _make_core(self, labels: dict[str, tuple], definition: Any,
                   identity: Callable[[Mapping[str, Any]], str] | None) -> Any:
        """The ask/tell core over ``labels`` (HwEvolution, CmaEs)."""

    def parent_of(self, sample: Mapping[str, Any]) -> str | None:
        """The id of the architecture ``sample`` was bred from, for weight inheritance; None when
        the core keeps no lineage (CMA-ES draws from a distribution, not from a parent)."""
        return None

    # ------------------------------------------------------------------ what the lead / users read

    @property
    def core(self) -> Any:
        """The ask/tell core (history, Pareto front); exists after initialisation."""
        if self._core is None:
            raise RuntimeError(f"{type(self).__name__} is not initialised with a model space yet")
        return self._core

    def export_pareto(self, within_budget: bool = True) -> list[dict[str, Any]]:
        """The Pareto set found so far (score up, cost down), cheapest first: id, sample, metrics."""
        with self._lock:
            return self.core.pareto_front(within_budget=within_budget)

    def list_models(self, sort: bool = True, limit: int | None = None) -> Iterator[ExecutableModelSpace]:
        """With ``sort``: the Pareto set (best score first), then the other successful trials by
        score. NNI's ``export_top_models`` reads this, so its "top" models are the trade-offs, not
        only the most accurate one."""
        if not sort:
            yield from super().list_models(sort=False, limit=limit)
            return
        score = self.core.objectives.score_metric
        with self._lock:
            front = self.core.pareto_front(within_budget=False)
            front_ids = {r["id"] for r in front}
            rest = [r for r in self.core.history if r["status"] == "succeeded" and r["id"] not in front_ids
                    and score in r["metrics"]]
        ordered = sorted(front, key=lambda r: -r["metrics"][score]) + sorted(rest, key=lambda r: -r["metrics"][score])
        for record in ordered[:limit]:
            model = self.model_space.freeze(record["sample"])
            metrics = dict(record["metrics"])
            model.metrics.final = metrics if "default" in metrics else metrics[score]
            model.status = ModelStatus.Trained
            yield model

    # ------------------------------------------------------------------ NNI's Strategy hooks

    def _initialize(self, model_space: ExecutableModelSpace, engine: ExecutionEngine) -> ExecutableModelSpace:
        labels = _categorical_labels(model_space, self.NAME)
        definition = self.definition if self.definition is not None else find_definition(model_space)
        identity = self._identity
        if definition is not None:
            mine = definition.mutable_labels()
            if set(mine) != set(labels):
                raise UserError(f"{self.NAME}: the space definition's labels {sorted(mine)} differ from "
                                f"the NNI model space's {sorted(labels)}")
            labels = {label: tuple(mine[label]) for label in labels}
            identity = identity or definition.arch_id
        self._core = self._make_core(labels, definition, identity)
        if self._pending_state is not None:
            self._core.load_state_dict(self._pending_state)
            self._pending_state = None
        engine.register_model_event_callback(ModelEventType.FinalMetric, self._on_final_metric)
        engine.register_model_event_callback(ModelEventType.TrainingEnd, self._on_training_end)
        return model_space

    def _cleanup(self) -> None:
        self.engine.unregister_model_event_callback(ModelEventType.FinalMetric, self._on_final_metric)
        self.engine.unregister_model_event_callback(ModelEventType.TrainingEnd, self._on_training_end)

    def _run(self) -> None:
        self._reconcile()  # trials already in NNI's database (a resumed experiment)
        while self.engine.budget_available():
            if self._orphans() and time.monotonic() - self._last_reconcile > 5 * self.poll_interval_s:
                self._reconcile()
            if not self.engine.idle_worker_available():
                time.sleep(self.poll_interval_s)
                continue
            with self._lock:
                try:
                    sample = self.core.ask()
                except SpaceExhausted as exc:
                    _log.warning("%s: %s; stopping the search", self.NAME, exc)
                    break
                # With evaluator.inherit_weights, the model's trial learns its parent's id.
                model = with_lineage(self.model_space.freeze(sample), self.core.identity(sample),
                                     self.parent_of(sample))
                self._running[id(model)] = _Running(model, sample)
            self.engine.submit_models(model)
        self._finish()

    def state_dict(self) -> dict:
        with self._lock:
            core = self._core.state_dict() if self._core is not None else self._pending_state
        return {"format": STATE_FORMAT, "core": core}

    def load_state_dict(self, state_dict: dict) -> None:
        core = (state_dict or {}).get("core")
        if not core:
            _log.warning("%s: the checkpoint holds no strategy state; starting from NNI's trial list", self.NAME)
            return
        with self._lock:
            if self._core is None:
                self._pending_state = core  # applied in _initialize
            else:
                self._core.load_state_dict(core)

    # ------------------------------------------------------------------ events (listener thread)

    def _on_final_metric(self, event: FinalMetricEvent) -> None:
        with self._lock:
            entry = self._running.get(id(event.model))
            if entry is not None and entry.model is event.model:
                entry.metrics = _metric_dict(event.metric)

    def _on_training_end(self, event: TrainingEndEvent) -> None:
        with self._lock:
            entry = self._running.get(id(event.model))
            if entry is None or entry.model is not event.model:
                return
            del self._running[id(event.model)]
            if event.status == ModelStatus.Trained and entry.metrics is None:
                # The end overtook the metric: leave it pending; NNI's database settles it.
                _log.debug("%s: %s ended before its metric arrived; reading it back later", self.NAME, entry.sample)
                return
            ok = event.status == ModelStatus.Trained
            self.core.tell(entry.sample, entry.metrics if ok else None, failed=not ok)

    # ------------------------------------------------------------------ NNI's database

    def _orphans(self) -> bool:
        """Pending proposals that no live model will report on (from a checkpoint, or late metrics)."""
        with self._lock:
            live = {self.core.identity(r.sample) for r in self._running.values()}
            return any(self.core.identity(s) not in live for s in self.core.pending)

    def _reconcile(self, settle_live: bool = False) -> None:
        """Tell the core every finished trial in NNI's database that it has not heard of.

        Covers a resumed run (trials before the stop; a trial NNI re-runs after being caught by
        the stop, whose end never reaches a strategy) and an older checkpoint. Proposals with no
        live model that never reached NNI's database are forgotten (they never ran). With
        ``settle_live`` (the search is over), live models are settled from the database too, and
        those NNI never ran (submitted past the trial limit) are dropped.
        """
        self._last_reconcile = time.monotonic()
        binding = getattr(self.engine, "nodejs_binding", None)
        if binding is None:
            return
        try:
            jobs = binding.list_trial_jobs()
        except Exception as exc:  # manager starting or stopping: try again later
            _log.debug("%s: cannot read NNI's trial list (%s)", self.NAME, exc)
            return
        # parameter id -> sample. A trial's listed parameters can be another trial's (NNI's manager
        # hands queued parameter sets to whichever trial asks first); its final metric's
        # ``parameterId`` is right, so results are joined through that (docs/nni-quirks.md).
        samples: dict[int, dict[str, Any]] = {}
        for job in jobs:
            for hp in job.hyperParameters:
                sample = _sample_of_parameters(hp.parameters)
                if sample is not None:
                    samples[int(hp.parameter_id)] = self._normalise(sample)
        with self._lock:
            live = {self.core.identity(r.sample): key for key, r in self._running.items()}
            in_db = {self.core.identity(sample) for sample in samples.values()}
            for job in jobs:
                if len(job.hyperParameters) != 1:
                    continue  # not submitted by a NAS engine
                final = job.finalMetricData[-1] if job.finalMetricData else None
                pid = final_parameter_id(vars(final) if final is not None else None,
                                         job.hyperParameters[0].parameter_id)
                sample = samples.get(int(pid))
                if sample is None:
                    continue
                cid = self.core.identity(sample)
                if cid in live and not settle_live:
                    continue  # its own events will tell
                if job.status in TERMINAL_STATUSES:
                    self._running.pop(live.get(cid, -1), None)
                    metrics = _metric_dict(final.data) if final is not None else None
                    ok = job.status == "SUCCEEDED" and metrics is not None
                    if self.core.tell(sample, metrics if ok else None, failed=not ok):
                        _log.info("%s: took %s trial %s from NNI's database", self.NAME, job.status, job.trialJobId)
                else:
                    self.core.mark_pending(sample)
            for cid, key in list(live.items()):
                if settle_live and cid not in in_db:
                    del self._running[key]  # submitted, never run: NNI's trial limit came first
            live_now = {self.core.identity(r.sample) for r in self._running.values()}
            for sample in self.core.pending:
                cid = self.core.identity(sample)
                if cid not in live_now and cid not in in_db:
                    self.core.forget_pending(sample)

    def _normalise(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Values as the space declares them: NNI's manager re-encodes JSON, turning 0.0 into 0,
        which would change an architecture's identity."""
        return {label: declared_value(self.core.labels.get(label, ()), value) for label, value in sample.items()}

    def _finish(self) -> None:
        """Wait for the submitted trials, then settle from NNI's database what events did not."""
        self.engine.wait_models()
        self._reconcile(settle_live=True)


class HwEvolutionStrategy(AskTellStrategy):
    """Multi-objective regularized evolution for NNI NAS experiments (``strategy: hw_evolution``).

    The search settings are one :class:`~strategies.settings.HwEvolutionSettings`, plain data a
    config YAML gives (``strategy: {name: hw_evolution, args: {population_size: 16, budget: 5.0}}``). See
    :class:`~strategies.hw_evolution.HwEvolution` for the search settings and why their defaults
    suit 50-100 trials, and :class:`~strategies.objectives.ObjectiveConfig` for the objectives.

    Args (the settings' fields, then the adapter's own):
        objectives: Objectives in use: ``score``, ``cost``, ``novelty``, ``cost_diversity``.
        score_metric, cost_metric, penalty, penalty_weight, novelty_k, diversity_k,
            second_cost_metric (the ``second_cost`` objective's metric, default ``params``): see
            :class:`~strategies.objectives.ObjectiveConfig`.
        budget: Cost budget in ``cost_metric`` units (the profile's budget), or None.
        progressive: ``off``, or ``{after_trials: [...], patience: K, stages: [[...], ...]}``
            (:class:`~strategies.progressive.ProgressiveSchedule`); without ``stages`` the
            space's own (``staged_net``: stage 1 ops, + depthwise/dilated, + attention).
        surrogate_candidates, active_mutation: see :class:`~strategies.hw_evolution.HwEvolution`.
        definition, identity, poll_interval_s: see :class:`AskTellStrategy`.
        screen: sample -> predicted cost (e.g. a latency predictor's ``predict``), for screening
            children before they cost a trial; used with ``budget``.
        budgets: The run's :class:`~nni_hwnas.budgets.Budgets` (``budget`` is their ``cost_metric``
            limit; a different one is refused).
    """

    NAME = STRATEGY_NAME

    def __init__(self, settings: HwEvolutionSettings | None = None, *, definition: Any = None,
                 identity: Callable[[Mapping[str, Any]], str] | None = None,
                 screen: Callable[[Mapping[str, Any]], float | None] | None = None,
                 poll_interval_s: float = 1.0, budgets: Budgets | None = None) -> None:
        super().__init__(definition=definition, identity=identity, poll_interval_s=poll_interval_s)
        self.budgets = budgets
        settings = settings or HwEvolutionSettings()
        self.objective_config, self.settings = settings.objective_config(), settings.search_settings()
        self.screen = screen

    def extra_repr(self) -> str:
        shown = {k: v for k, v in self.settings.items() if v is not None}
        return ", ".join(f"{k}={v}" for k, v in shown.items()) + f", objectives={list(self.objective_config.use)}"

    def _make_core(self, labels: dict[str, tuple], definition: Any,
                   identity: Callable[[Mapping[str, Any]], str] | None) -> HwEvolution:
        settings = with_space_stages(self.settings, definition)
        canonical = definition.canonical if definition is not None else None
        return HwEvolution(labels, objectives=self.objective_config, identity=identity, canonical=canonical,
                           screen=self.screen, budgets=self.budgets, **settings)

    def parent_of(self, sample: Mapping[str, Any]) -> str | None:
        return self.core.parent_of(sample)


class CmaEsStrategy(AskTellStrategy):
    """Multi-objective CMA-ES (:class:`~strategies.cmaes.CmaEs`) for NNI NAS experiments
    (``strategy: {name: cmaes, args: {population_size: 14, sigma: 1.0, cost_metric: latency_ms}}``).

    Args: a :class:`~strategies.settings.CmaEsSettings`, then as :class:`AskTellStrategy`.
    """

    NAME = "cmaes"

    def __init__(self, settings: CmaEsSettings | None = None, *, definition: Any = None,
                 identity: Callable[[Mapping[str, Any]], str] | None = None, poll_interval_s: float = 1.0) -> None:
        super().__init__(definition=definition, identity=identity, poll_interval_s=poll_interval_s)
        self.settings = settings or CmaEsSettings()

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in vars(self.settings).items() if v is not None)

    def _make_core(self, labels: dict[str, tuple], definition: Any,
                   identity: Callable[[Mapping[str, Any]], str] | None) -> Any:
        from .cmaes import CmaEs

        return CmaEs(labels, identity=identity, **self.settings.core_args())


# ---------------------------------------------------------------------- helpers


def _categorical_labels(model_space: ExecutableModelSpace, name: str) -> dict[str, tuple]:
    labels: dict[str, tuple] = {}
    for label, mutable in model_space.simplify().items():
        if not isinstance(mutable, Categorical):
            raise UserError(f"{name} searches categorical choices only; {label!r} is {type(mutable).__name__}")
        labels[label] = tuple(mutable.values)
    if not labels:
        raise UserError(f"{name}: the model space has no choices to search")
    return labels


def find_definition(model_space: ExecutableModelSpace) -> Any:
    """The :class:`SpaceDefinition` behind an NNI executable space, when it wraps one of ours.

    NNI hands strategies a converted space: ``RawFormatModelSpace`` keeps the original space
    (``.model_space``); ``SimplifiedModelSpace`` (NNI's default) keeps only a trace of how to
    build it (``.model.trace_symbol`` and its arguments), from which our spaces' definition is
    rebuilt without building the network.
    """
    original = getattr(model_space, "model_space", None)
    if original is not None and getattr(original, "definition", None) is not None:
        return original.definition
    traced = getattr(model_space, "model", None)
    symbol = getattr(traced, "trace_symbol", None)
    definition_cls = getattr(symbol, "definition_cls", None)
    if definition_cls is None:
        return None
    # Our spaces take the arguments of ``definition_cls.create`` (NNI's wrapper hides the signature).
    names = list(inspect.signature(definition_cls.create).parameters)
    args = {**dict(zip(names, traced.trace_args)), **traced.trace_kwargs}
    if all(name in args for name in names):
        return definition_cls.create(**{name: args[name] for name in names})
    return getattr(traced.trace_copy().get(), "definition", None)  # defaults used: build it once


def _metric_dict(metric: Any) -> dict[str, Any] | None:
    """A reported final metric as a dict (a bare number is ``default``)."""
    if metric is None:
        return None
    if isinstance(metric, Mapping):
        return dict(metric)
    if isinstance(metric, (int, float)) and not isinstance(metric, bool):
        return {"default": float(metric)}
    return None


def _sample_of_parameters(parameters: Any) -> dict[str, Any] | None:
    """The architecture sample inside a trial's parameters as NNI's database returns them.

    NNI's default simplified format stores it under ``sample``; other formats are rebuilt the
    way NNI's own engine does in ``list_models()``. None for trials not submitted by a NAS engine.
    """
    if isinstance(parameters, Mapping) and isinstance(parameters.get("sample"), Mapping):
        return dict(parameters["sample"])
    try:
        sample = getattr(nni.load(nni.dump(parameters)), "sample", None)
    except Exception:
        return None
    return dict(sample) if isinstance(sample, Mapping) else None


# ---------------------------------------------------------------------- from a config


CONFIG_ARGS: tuple[str, ...] = (*HwEvolutionSettings.names(), "poll_interval_s")
CMAES_CONFIG_ARGS: tuple[str, ...] = (*CmaEsSettings.names(), "poll_interval_s")


def _config_kwargs(name: str, args: Mapping[str, Any] | None, allowed: tuple[str, ...],
                   seed: int | None) -> tuple[dict[str, Any], float]:
    """``strategy.args`` checked by name, the run's seed filled in; (settings args, poll interval)."""
    kwargs = dict(args or {})
    for key in kwargs:
        if key not in allowed:
            raise unknown(f"argument of strategy {name!r}", key, allowed)
    kwargs.setdefault("seed", seed)
    return kwargs, float(kwargs.pop("poll_interval_s", 1.0))


def make_hw_evolution(args: Mapping[str, Any] | None, seed: int | None = None, *, definition: Any = None,
                      screen: Callable[[Mapping[str, Any]], float | None] | None = None,
                      budgets: Budgets | None = None) -> HwEvolutionStrategy:
    """Build the strategy from a config's ``strategy.args``, the run's seed and what the run built.

    Args:
        args: The YAML's ``strategy.args`` (names in :data:`CONFIG_ARGS`); unknown names are a
            one-line :class:`UserError` naming the closest.
        seed: The run's seed, used unless ``args`` sets ``seed``.
        definition: The space definition (optional: found from the model space otherwise).
        screen: A cost predictor, sample -> predicted ``cost_metric`` value.
        budgets: The run's budgets (profile and ``hardware.budgets``); ``args``' ``budget`` must
            agree with their ``cost_metric`` limit, and penalty, screening and front read them.
    """
    kwargs, poll_interval_s = _config_kwargs(STRATEGY_NAME, args, CONFIG_ARGS, seed)
    strategy = HwEvolutionStrategy(HwEvolutionSettings.from_args(kwargs), definition=definition, screen=screen,
                                   poll_interval_s=poll_interval_s, budgets=budgets)
    if budgets is not None:  # a `budget` that disagrees with the run's fails now, not when NNI starts
        Budgets.of(budgets).with_limit(strategy.objective_config.cost_metric, strategy.settings["budget"],
                                       "config: strategy hw_evolution")
    schedule = strategy.settings["progressive"]
    if schedule is not None and schedule.stages is None and definition is not None \
            and getattr(definition, "progressive_stages", None) is None:  # fail before NNI starts
        raise UserError(f"hw_evolution: `progressive` needs `stages` (the values each stage adds): "
                        f"space {definition.name!r} defines none")
    return strategy


def make_cmaes(args: Mapping[str, Any] | None, seed: int | None = None, *, definition: Any = None) -> CmaEsStrategy:
    """``cmaes`` from a config's ``strategy.args`` (names in :data:`CMAES_CONFIG_ARGS`) and the run's seed."""
    kwargs, poll_interval_s = _config_kwargs("cmaes", args, CMAES_CONFIG_ARGS, seed)
    return CmaEsStrategy(CmaEsSettings.from_args(kwargs), definition=definition, poll_interval_s=poll_interval_s)
