"""Benchmark: how much of NAS-Bench-201's true accuracy/cost front each strategy finds.

The yardstick of issue 11. Every strategy searches the ``nb201`` space through the in-process
tabular runner (:mod:`nni_hwnas.evaluation.tabular_runner`: the same lookup the NNI trials do, one
trial at a time), and every trial reports one seeded draw of the table's per-seed accuracies.

- **Quality**: objectives error (1 - accuracy) and cost (``latency_ms`` or ``params``, i.e. the
  benchmark's model size), normalised to the whole table's min and max, reference point (1, 1).
  A run's points are scored by the *mean* accuracy over the table's training seeds of the cells it
  evaluated; ``hv_share`` = its hypervolume / the true front's (the front of the mean accuracies),
  plus IGD+ (:mod:`nni_hwnas.reporting.front_quality`).
- **Curves** at 25, 50, 100 and 200 trials over the seeds: mean, median, IQR; a one-sided
  Mann-Whitney U test per baseline (H1: ours has the larger share), ``p`` in the table.
- **Ours**: ``hw_evolution`` as a user gets it: ``HwEvolution(labels, seed=s)`` with the
  definition's identity/canonical functions (what every route passes) and the problem's metric
  names, no other argument; ``cmaes`` likewise. ``NAME@key=value@...`` runs a variant of ours
  with constructor arguments (how every default change was measured).
- **Baselines**: NNI's NAS strategies Random and RegularizedEvolution (NNI's defaults, on NNI's
  in-process sequential engine) and TPE (its ``TpeTuner``, driven as NNI's TPE strategy drives
  it, without that strategy's 1 s sleep per trial; see :mod:`nni_hwnas.evaluation.baselines`),
  maximising ``default`` = accuracy, and RegularizedEvolution/TPE again on the
  MnasNet reward (target = the table's median latency); Optuna's ``TPESampler(multivariate=True)``
  and ``NSGAIISampler`` (defaults otherwise) on (accuracy, cost).

    python experiments/benchmarks/search_quality.py [--seeds 30] [--trials 200] [--datasets cifar10]
        [--costs latency_ms] [--strategies hw_evolution,OptunaTPE,...] [--workers 2] [--json PATH]

Writes ``experiments/benchmarks/results/search_quality/``: ``rows.json`` (one row per
benchmark/dataset/cost/strategy/trials; ``--json`` copies it elsewhere), ``run.json`` (settings,
seeds, versions), ``hv_<dataset>_<cost>.png`` (share vs trials) and ``fronts_<dataset>_<cost>.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from nni_hwnas.evaluation.tabular_runner import TabularProblem, run_ask_tell  # noqa: E402
from nni_hwnas.reporting.front_quality import FrontYardstick  # noqa: E402

OURS = ("hw_evolution", "cmaes")
NNI_BASELINES = ("Random", "RegularizedEvolution", "TPE", "RegularizedEvolution+mnas", "TPE+mnas")
OPTUNA_BASELINES = ("OptunaTPE", "OptunaNSGAII")
CHECKPOINTS = (25, 50, 100, 200)
OUT = REPO / "experiments" / "benchmarks" / "results" / "search_quality"


def make_strategy(name: str, problem: TabularProblem, seed: int) -> tuple[Any, TabularProblem]:
    """The ask/tell object for ``name`` (or the name of an NNI strategy) and the problem it sees
    (``+mnas``: the MnasNet reward as ``default``)."""
    definition = problem.definition()
    labels = definition.mutable_labels()
    name, *overrides = name.split("@")  # a variant of ours: hw_evolution@surrogate_candidates=16
    extra = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in overrides)}
    if name == "hw_evolution":
        from strategies.hw_evolution import HwEvolution

        return HwEvolution(labels, seed=seed, identity=definition.arch_id, canonical=definition.canonical,
                           objectives={"score_metric": "accuracy", "cost_metric": problem.cost_metric},
                           **extra), problem
    if name == "cmaes":
        from strategies.cmaes import CmaEs

        return CmaEs(labels, seed=seed, identity=definition.arch_id,
                     objectives={"score_metric": "accuracy", "cost_metric": problem.cost_metric}, **extra), problem
    if name in OPTUNA_BASELINES:
        from nni_hwnas.evaluation.baselines import optuna_sampler

        return optuna_sampler(name, labels, seed, problem.cost_metric), problem
    base, _, variant = name.partition("+")
    if variant:
        problem = dataclasses.replace(problem, default_metric="mnas_reward")
    if base == "TPE":
        from nni_hwnas.evaluation.baselines import nni_tpe
        from nni_hwnas.experiment.space_export import nni_search_space

        return nni_tpe(nni_search_space(definition), seed), problem
    return base, problem


@functools.lru_cache(maxsize=None)
def yardstick_for(dataset: str, cost: str) -> FrontYardstick:
    """One yardstick per table and cost per process (sorting 15,625 cells takes ~1 s here)."""
    return FrontYardstick(TabularProblem(dataset=dataset, cost_metric=cost).true_points())


def one_run(job: tuple[str, str, str, int, int]) -> dict[str, Any]:
    """Run one strategy for one seed; return its HV-share curve and final IGD+ at each checkpoint."""
    strategy_name, dataset, cost, seed, trials = job
    problem = TabularProblem(dataset=dataset, cost_metric=cost)
    strategy, seen_problem = make_strategy(strategy_name, problem, seed)
    started = time.perf_counter()
    if isinstance(strategy, str):  # one of NNI's NAS strategies, on NNI's engine
        from nni_hwnas.evaluation.baselines import run_nni_strategy

        trace = run_nni_strategy(strategy, seen_problem, trials, seed)
    else:
        trace = run_ask_tell(strategy, seen_problem, trials, seed)
    yardstick = yardstick_for(dataset, cost)
    losses = problem.losses_of(trace.samples)
    curve = yardstick.hv_share_curve(losses)
    igd = {t: yardstick.igd_plus(losses[:t]) for t in CHECKPOINTS if t <= trials}
    unique = len({json.dumps(s, sort_keys=True) for s in trace.samples})
    return {"strategy": strategy_name, "dataset": dataset, "cost": cost, "seed": seed, "curve": curve.tolist(),
            "igd_plus": igd, "unique_cells": unique, "seconds": time.perf_counter() - started,
            "strategy_seconds": trace.strategy_seconds, "front": yardstick.scale(losses).tolist()}


def summarise(runs: list[dict[str, Any]], ours: str, trials: int) -> list[dict[str, Any]]:
    """One row per (dataset, cost, strategy, checkpoint): mean/median/IQR, IGD+, p against ``ours``."""
    from scipy.stats import mannwhitneyu

    rows = []
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault((run["dataset"], run["cost"], run["strategy"]), []).append(run)
    for (dataset, cost, name), group in sorted(groups.items()):
        for t in (c for c in CHECKPOINTS if c <= trials):
            shares = np.array([r["curve"][t - 1] for r in group])
            mine = np.array([r["curve"][t - 1] for r in groups.get((dataset, cost, ours), [])])
            p = None
            if name != ours and len(mine):
                p = float(mannwhitneyu(mine, shares, alternative="greater").pvalue)
            q25, q75 = np.percentile(shares, [25, 75])
            rows.append({"benchmark": "nb201", "dataset": dataset, "cost": cost, "strategy": name, "trials": t,
                         "seeds": len(group), "hv_share_mean": float(shares.mean()),
                         "hv_share_median": float(np.median(shares)), "hv_share_q25": float(q25),
                         "hv_share_q75": float(q75),
                         "igd_plus_mean": float(np.mean([r["igd_plus"][t] for r in group])),
                         "unique_cells_mean": float(np.mean([r["unique_cells"] for r in group])) if t == trials else None,
                         f"p_{ours}_greater": p})
    return rows


def print_table(rows: list[dict[str, Any]], ours: str) -> None:
    header = f"{'dataset':<10} {'cost':<10} {'strategy':<26} {'trials':>6} {'mean':>7} {'median':>7} {'IQR':>15} {'IGD+':>7} {'p(ours>)':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        p = r[f"p_{ours}_greater"]
        print(f"{r['dataset']:<10} {r['cost']:<10} {r['strategy']:<26} {r['trials']:>6} {r['hv_share_mean']:>7.4f} "
              f"{r['hv_share_median']:>7.4f} {r['hv_share_q25']:>7.4f}-{r['hv_share_q75']:<7.4f} "
              f"{r['igd_plus_mean']:>7.4f} {'' if p is None else f'{p:.2g}':>9}")


def plot(runs: list[dict[str, Any]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for dataset, cost in sorted({(r["dataset"], r["cost"]) for r in runs}):
        mine = [r for r in runs if r["dataset"] == dataset and r["cost"] == cost]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        fig2, ax2 = plt.subplots(figsize=(7, 4.5))
        problem = TabularProblem(dataset=dataset, cost_metric=cost)
        front = FrontYardstick(problem.true_points()).true_front
        ax2.step(front[:, 1], front[:, 0], where="post", color="black", label="true front")
        for name in dict.fromkeys(r["strategy"] for r in mine):
            curves = np.array([r["curve"] for r in mine if r["strategy"] == name])
            x = np.arange(1, curves.shape[1] + 1)
            ax.plot(x, curves.mean(axis=0), label=name)
            first = next(r for r in mine if r["strategy"] == name)
            points = np.array(first["front"])
            ax2.scatter(points[:, 1], points[:, 0], s=8, label=f"{name} (seed {first['seed']})")
        ax.set(xlabel="trials", ylabel="hypervolume share of the true front (mean over seeds)",
               title=f"NAS-Bench-201 {dataset}: error vs {cost}", ylim=(0.7, 1.0))
        ax.legend(fontsize=7)
        ax2.set(xlabel=f"{cost} (normalised to the table)", ylabel="error (normalised)", xlim=(0, 1), ylim=(0, 0.2),
                title=f"NAS-Bench-201 {dataset}: points evaluated")
        ax2.legend(fontsize=6)
        for figure, stem in ((fig, "hv"), (fig2, "fronts")):
            path = out / f"{stem}_{dataset}_{cost}.png"
            figure.tight_layout()
            figure.savefig(path, dpi=110)
            plt.close(figure)
            paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--datasets", default="cifar10")
    parser.add_argument("--costs", default="latency_ms", help="latency_ms and/or params (the model size)")
    parser.add_argument("--strategies", default=",".join(OURS + NNI_BASELINES + OPTUNA_BASELINES))
    parser.add_argument("--ours", default="hw_evolution", help="the strategy every p-value tests against")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    strategies = [s for s in args.strategies.split(",") if s]
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    jobs = [(name, dataset, cost, seed, args.trials) for dataset in args.datasets.split(",")
            for cost in args.costs.split(",") for name in strategies for seed in seeds]
    started = time.time()
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            runs = list(pool.map(one_run, jobs, chunksize=4))
    else:
        runs = [one_run(job) for job in jobs]
    rows = summarise(runs, args.ours, args.trials)
    print_table(rows, args.ours)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(rows, indent=1)
    (out / "rows.json").write_text(text)
    if args.json:
        Path(args.json).write_text(text)
    from nni_hwnas.experiment.runinfo import run_record

    seconds = {name: float(np.median([r["strategy_seconds"] for r in runs if r["strategy"] == name])) for name in strategies}
    (out / "run.json").write_text(json.dumps(run_record(args.first_seed, vars(args), seeds=seeds,
                                                        wall_seconds=time.time() - started,
                                                        median_strategy_seconds_per_run=seconds), indent=1, default=str))
    paths = plot(runs, out)
    print(f"wrote {out / 'rows.json'}, {out / 'run.json'}, {', '.join(p.name for p in paths)} "
          f"in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
