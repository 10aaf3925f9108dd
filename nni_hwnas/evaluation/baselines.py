"""What a user would run instead of ours, run in this process on the tabular benchmark.

- NNI's NAS strategies Random, RegularizedEvolution and TPE, on NNI's own in-process sequential
  engine over the ``nb201`` model space; they maximise the single number ``default`` (accuracy,
  or the MnasNet reward).
- Optuna's multi-objective samplers (``TPESampler(multivariate=True)``, ``NSGAIISampler``), with
  accuracy up and the cost down; install them with the ``bench`` extra.

Duplicates are not filtered: a baseline that proposes a cell twice pays a trial for it, as it
would in a real run.
"""

from __future__ import annotations

import random
from typing import Any, Mapping

import numpy as np

from nni_hwnas.errors import UserError


_RUNS: dict[str, tuple[Any, int, Any, Any]] = {}  # run key -> (problem, seed, definition, trace)


def _nas_trial(model: Any, run: str) -> None:
    """``FunctionalEvaluator`` body: the same table lookup as every route, recorded in the run's trace."""
    import nni

    problem, seed, definition, trace = _RUNS[run]
    sample = definition.complete(model.sample)
    metrics = problem.evaluate(sample, seed)
    trace.samples.append(sample)
    trace.metrics.append(metrics)
    nni.report_final_result(metrics)


def run_nni_strategy(name: str, problem: Any, n_trials: int, seed: int) -> Any:
    """Run NNI's NAS strategy ``name`` (Random, RegularizedEvolution, TPE; NNI's defaults, the run's
    seed where accepted, TPE maximising) for ``n_trials`` on NNI's in-process sequential engine.

    Built as ``NasExperiment`` builds it (its engine and model-format factories), without the
    experiment manager: the strategy code is exactly what a user's ``NasExperiment`` runs.
    """
    import logging
    import time

    from nni.nas.evaluator import FunctionalEvaluator
    from nni.nas.experiment import NasExperiment
    from nni.nas.experiment.config import NasExperimentConfig, SequentialEngineConfig

    from nni_hwnas.evaluation.tabular_runner import Trace
    from nni_hwnas.experiment.strategy_registry import make_strategy
    from search_spaces import make_model_space

    for logger in ("nni", "nni_hwnas"):  # NNI logs every trial at INFO
        logging.getLogger(logger).setLevel(logging.ERROR)
    random.seed(seed)  # NNI's strategies also draw from the global generators
    np.random.seed(seed)
    definition = problem.definition()
    run = f"{name}:{seed}:{id(problem)}"
    trace = Trace()
    _RUNS[run] = (problem, seed, definition, trace)
    space = make_model_space("nb201", None, definition.input_shape, definition.num_classes)
    strategy = make_strategy(name, None, seed)
    config = NasExperimentConfig(execution_engine=SequentialEngineConfig(max_model_count=n_trials,
                                                                         continue_on_failure=True),
                                 model_format="simplified", max_trial_number=n_trials)
    experiment = NasExperiment(space, FunctionalEvaluator(_nas_trial, run=run), strategy, config)
    canonical = experiment.config.canonical_copy()
    engine = experiment.execution_engine_factory(canonical.execution_engine)
    started = time.perf_counter()
    try:
        strategy.initialize(experiment.executable_model_factory(canonical.model_format), engine)
        strategy.run()
    finally:
        engine.shutdown()
        _RUNS.pop(run, None)
    trace.strategy_seconds = time.perf_counter() - started  # includes NNI's engine and model freezing
    return trace


class TunerAskTell:
    """An NNI HPO ``Tuner`` driven as NNI's ``HPOTunerStrategy`` drives it, one trial at a time.

    NNI's NAS ``TPE`` strategy is that wrapper around ``TpeTuner`` over the simplified space (the
    same ``choice`` JSON our nnictl route exports); its loop sleeps 1 s per proposal
    (``nni/nas/strategy/hpo.py``), ~100 s per 100-trial run with nothing computed, so the benchmark
    calls the tuner the same way without the sleep: ``generate_parameters(i)``, then
    ``receive_trial_result(i, sample, metrics)`` and ``trial_end(i, True)``.
    """

    def __init__(self, tuner: Any, search_space: Mapping[str, Any]) -> None:
        self.tuner = tuner
        self.tuner.update_search_space(dict(search_space))
        self._next_id = 0
        self._ids: dict[str, list[int]] = {}

    def ask(self) -> dict[str, Any]:
        params = dict(self.tuner.generate_parameters(self._next_id))
        self._ids.setdefault(_key(params), []).append(self._next_id)
        self._next_id += 1
        return params

    def tell(self, sample: Mapping[str, Any], metrics: Mapping[str, Any] | None) -> None:
        pid = self._ids[_key(sample)].pop(0)
        if metrics is not None:
            self.tuner.receive_trial_result(pid, dict(sample), dict(metrics))
        self.tuner.trial_end(pid, metrics is not None)


def nni_tpe(search_space: Mapping[str, Any], seed: int) -> TunerAskTell:
    """NNI's TPE as its NAS strategy builds it here (``optimize_mode: maximize``, the run's seed)."""
    from nni.algorithms.hpo.tpe_tuner import TpeTuner

    return TunerAskTell(TpeTuner(optimize_mode="maximize", seed=seed), search_space)


class OptunaAskTell:
    """An Optuna sampler over categorical labels, maximising ``score_metric``, minimising the cost."""

    def __init__(self, sampler: Any, labels: Mapping[str, tuple], score_metric: str, cost_metric: str) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        self.distributions = {label: optuna.distributions.CategoricalDistribution(list(values))
                              for label, values in labels.items()}
        self.score_metric, self.cost_metric = score_metric, cost_metric
        self._trials: dict[str, list[Any]] = {}

    def ask(self) -> dict[str, Any]:
        trial = self.study.ask(self.distributions)
        self._trials.setdefault(_key(trial.params), []).append(trial)
        return dict(trial.params)

    def tell(self, sample: Mapping[str, Any], metrics: Mapping[str, Any] | None) -> None:
        trial = self._trials[_key(sample)].pop(0)
        if metrics is None:
            import optuna

            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        self.study.tell(trial, [float(metrics[self.score_metric]), float(metrics[self.cost_metric])])


def optuna_sampler(name: str, labels: Mapping[str, tuple], seed: int, cost_metric: str) -> OptunaAskTell:
    """``OptunaTPE`` (multivariate TPE) or ``OptunaNSGAII``, each with Optuna's other defaults."""
    try:
        import optuna
    except ImportError:
        raise UserError("Optuna baselines need the `bench` extra: pip install 'nni-hwnas[bench]'") from None
    if name == "OptunaTPE":
        sampler = optuna.samplers.TPESampler(multivariate=True, seed=seed)
    elif name == "OptunaNSGAII":
        sampler = optuna.samplers.NSGAIISampler(seed=seed)
    else:
        raise UserError(f"unknown Optuna baseline {name!r}; use OptunaTPE or OptunaNSGAII")
    return OptunaAskTell(sampler, labels, "accuracy", cost_metric)


def _key(sample: Mapping[str, Any]) -> str:
    return repr(sorted(sample.items()))
