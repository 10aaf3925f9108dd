"""One contract over every strategy of ours, on NAS-Bench-201's table (optuna's sampler-suite idea).

Determinism under a seed, no duplicate proposals, failed trials survived (and never proposed
again), and a ``state_dict`` round trip that continues exactly as the uninterrupted run: for the
ask/tell cores (``HwEvolution``, ``CmaEs``), the nnictl tuner adapter, and the NAS strategy adapter
on NNI's own in-process engine.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest

from nni_hwnas.evaluation.tabular_runner import TabularProblem, run_ask_tell
from nni_hwnas.experiment.space_export import nni_search_space

PROBLEM = TabularProblem(dataset="cifar10", cost_metric="latency_ms")
DEFINITION = PROBLEM.definition()
OBJECTIVES = {"score_metric": "accuracy", "cost_metric": "latency_ms"}


def hw_evolution(seed: int) -> Any:
    from strategies.hw_evolution import HwEvolution

    return HwEvolution(DEFINITION.mutable_labels(), seed=seed, identity=DEFINITION.arch_id,
                       canonical=DEFINITION.canonical, objectives=OBJECTIVES)


def hw_evolution_surrogate(seed: int) -> Any:
    from strategies.hw_evolution import HwEvolution

    return HwEvolution(DEFINITION.mutable_labels(), seed=seed, identity=DEFINITION.arch_id,
                       canonical=DEFINITION.canonical, objectives=OBJECTIVES, surrogate_candidates=8)


def cmaes(seed: int) -> Any:
    from strategies.cmaes import CmaEs

    return CmaEs(DEFINITION.mutable_labels(), seed=seed, identity=DEFINITION.arch_id, objectives=OBJECTIVES)


class TunerDriver:
    """Our nnictl ``Tuner`` driven as NNI's dispatcher drives it; failures end without a result."""

    def __init__(self, seed: int) -> None:
        from strategies.nni_tuner import HwEvolutionTuner

        self.tuner = HwEvolutionTuner(space="nb201", seed=seed, **OBJECTIVES)
        self.tuner.update_search_space(json.loads(json.dumps(nni_search_space(DEFINITION))))
        self.ids: dict[str, int] = {}
        self.next_id = 0

    def ask(self) -> dict:
        sample = self.tuner.generate_parameters(self.next_id)
        self.ids[DEFINITION.arch_id(sample)] = self.next_id
        self.next_id += 1
        return sample

    def tell(self, sample: dict, metrics: dict | None, failed: bool = False) -> None:
        pid = self.ids.pop(DEFINITION.arch_id(sample))
        if metrics is not None and not failed:
            self.tuner.receive_trial_result(pid, sample, metrics)
        self.tuner.trial_end(pid, metrics is not None and not failed)

    @property
    def core(self) -> Any:
        return self.tuner.core


STRATEGIES: dict[str, Callable[[int], Any]] = {"hw_evolution": hw_evolution, "hw_evolution+surrogate": hw_evolution_surrogate,
                                               "cmaes": cmaes, "hw_evolution_tuner": TunerDriver}


def ids(samples: list[dict]) -> list[str]:
    return [DEFINITION.arch_id(s) for s in samples]


@pytest.mark.parametrize("name", STRATEGIES)
def test_same_seed_gives_the_same_proposals(name):
    first = run_ask_tell(STRATEGIES[name](3), PROBLEM, 40, seed=3).samples
    again = run_ask_tell(STRATEGIES[name](3), PROBLEM, 40, seed=3).samples
    other = run_ask_tell(STRATEGIES[name](4), PROBLEM, 40, seed=4).samples
    assert first == again
    assert first != other


@pytest.mark.parametrize("name", STRATEGIES)
def test_no_architecture_is_proposed_twice(name):
    samples = run_ask_tell(STRATEGIES[name](0), PROBLEM, 100, seed=0).samples
    assert len(set(ids(samples))) == 100


@pytest.mark.parametrize("name", STRATEGIES)
def test_failed_trials_are_survived_and_never_proposed_again(name):
    strategy = STRATEGIES[name](1)
    failed, seen = set(), []
    for i in range(60):
        sample = strategy.ask()
        cid = DEFINITION.arch_id(sample)
        assert cid not in failed
        seen.append(cid)
        if i % 3 == 0:
            failed.add(cid)
            strategy.tell(sample, None, failed=True)
        else:
            strategy.tell(sample, PROBLEM.evaluate(DEFINITION.complete(sample), 1))
    assert len(set(seen)) == 60
    core = getattr(strategy, "core", strategy)
    statuses = {r["id"]: r["status"] for r in core.history}
    assert {cid for cid, status in statuses.items() if status == "failed"} == failed


@pytest.mark.parametrize("name", ["hw_evolution", "hw_evolution+surrogate", "cmaes"])
def test_state_dict_round_trip_continues_like_the_uninterrupted_run(name):
    whole = STRATEGIES[name](5)
    run_ask_tell(whole, PROBLEM, 25, seed=5)
    state = json.loads(json.dumps(whole.state_dict()))  # plain JSON data
    resumed = STRATEGIES[name](99)  # another seed: everything must come from the state
    resumed.load_state_dict(state)
    assert run_ask_tell(resumed, PROBLEM, 20, seed=5).samples == run_ask_tell(whole, PROBLEM, 20, seed=5).samples


@pytest.mark.parametrize("name", ["hw_evolution", "cmaes"])
def test_nas_strategy_adapter_on_nnis_engine_is_deterministic_and_never_repeats(name):
    from nni_hwnas.evaluation.baselines import run_nni_strategy

    first = run_nni_strategy(name, PROBLEM, 20, seed=2).samples
    again = run_nni_strategy(name, PROBLEM, 20, seed=2).samples
    assert len(first) == 20 and first == again
    assert len(set(ids(first))) == 20
