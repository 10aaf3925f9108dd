"""Benchmark: a whole ``hw_evolution`` search on ``staged_net`` with and without weight inheritance.

``inheritance.py`` measures one child at a time; this measures what ``evaluator.inherit_weights``
does to a search. Both arms run our ask/tell core with the same seed, trials and evaluator, and
every trial goes through the trial code a search's NNI trial runs
(:func:`nni_hwnas.evaluation.trial.evaluate_architecture`, latency predicted from
``hw_profiles/tables/host-cpu-1t-staged_net.json``); the ``inherited`` arm hands it the same
``inherit`` argument (weights folder, child id, parent id) the NNI route does. Equal trials and
equal epochs per trial: equal training compute. Reported per arm, over seeds (median [min, max]):

- the 3-D hypervolume of (validation accuracy, latency, params), normalised as in ``staged_space.py``;
- the best validation accuracy found, and the median accuracy of the evolved (non-random) trials;
- the median share of values the evolved children inherited, and the training seconds.

Accuracy with inheritance is that of the *inherited-and-trained* weights (saved per trial, what
a user would deploy), not of the architecture trained from scratch. Not a test.

    .venv/bin/python experiments/benchmarks/inheritance_search.py [--seeds 2] [--trials 16] [--epochs 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "experiments" / "benchmarks"))

from inheritance import write_result  # noqa: E402
import staged_space as ss  # noqa: E402  (setup, hypervolume and spreads shared with the space benchmark)

RESULTS = REPO / "experiments" / "benchmarks" / "results"
ARMS = ("scratch", "inherited")


def run_search(setup: Mapping[str, Any], definition: Any, arm: str, seed: int, trials: int,
               training: Mapping[str, Any], weights_dir: Path) -> dict[str, Any]:
    """One search of ``trials`` trials; every trial trained by the search's own trial code."""
    from nni_hwnas.evaluation.trial import evaluate_architecture
    from strategies.hw_evolution import HwEvolution

    evo = HwEvolution(definition.mutable_labels(), seed=seed, identity=definition.arch_id,
                      canonical=definition.canonical, objectives=ss.OBJECTIVES, progressive="off", **ss.SEARCH)
    dataset = {"name": setup["dataset"], "data_root": setup["data_root"]}
    hardware = {"profile": "host-cpu-1t", "table": str(ss.TABLE)}
    rows = []
    for _ in range(trials):
        sample = evo.ask()
        cid, parent = evo.identity(sample), evo.parent_of(sample)
        inherit = {"dir": str(weights_dir), "id": cid, "parent": parent} if arm == "inherited" else None
        metrics = evaluate_architecture(definition.describe(sample), dataset, training, setup["train_seed"],
                                        definition=definition, hardware=hardware, inherit=inherit)
        evo.tell(sample, metrics)
        rows.append({"arch_id": cid, "parent": parent, "sample": sample, "status": "SUCCEEDED", **metrics})
    return {"arm": arm, "seed": seed, "rows": rows}


def summarise(setup: Mapping[str, Any], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for arm in ARMS:
        mine = [r for r in runs if r["arm"] == arm]
        for run in mine:
            evolved = [r for r in run["rows"] if r["parent"] is not None]
            run["hypervolume_3d"] = ss.hypervolume_3d(run["rows"], setup)
            run["best_accuracy"] = max(r["accuracy"] for r in run["rows"])
            run["evolved_accuracy_median"] = float(np.median([r["accuracy"] for r in evolved])) if evolved else None
            run["train_seconds"] = float(sum(r["train_seconds"] for r in run["rows"]))
            run["inherited_fraction_median"] = float(np.median([r.get("inherited_fraction", 0.0) for r in evolved])) \
                if evolved else None
        out.append({"dataset": setup["dataset"], "arm": arm, "runs": len(mine),
                    "hv3d": ss.spread([r["hypervolume_3d"] for r in mine]),
                    "best_accuracy": ss.spread([r["best_accuracy"] for r in mine]),
                    "evolved_accuracy_median": ss.spread([r["evolved_accuracy_median"] for r in mine
                                                          if r["evolved_accuracy_median"] is not None]),
                    "inherited_fraction_median": ss.spread([r["inherited_fraction_median"] or 0.0 for r in mine]),
                    "train_seconds": ss.spread([r["train_seconds"] for r in mine])})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--json", default=str(RESULTS / "inheritance_search.json"))
    args = parser.parse_args()
    import torch

    from search_spaces.registry import make_definition

    torch.set_num_threads(1)
    started = time.perf_counter()
    setup = ss.setup_for(args.dataset, Path(args.data_root))
    definition = make_definition(setup["space"], setup["choices"], setup["input_shape"], setup["num_classes"])
    training = {**setup["training"], "epochs": args.epochs}
    runs = []
    for seed in range(args.seeds):
        for arm in ARMS:
            with tempfile.TemporaryDirectory(prefix="nni-hwnas-inherit-") as weights_dir:
                runs.append(run_search(setup, definition, arm, seed, args.trials, training, Path(weights_dir)))
            print(f"seed {seed} {arm:9s}: {time.perf_counter() - started:.0f} s", flush=True)
    rows = summarise(setup, runs)
    print(f"\n{args.dataset}, {args.seeds} seeds x {args.trials} trials x {args.epochs} epochs; median [min, max]")
    print(f"{'arm':10s} {'HV3d':>26s} {'best val acc':>26s} {'evolved val acc':>26s} {'inherited':>10s} {'train s':>8s}")
    for row in rows:
        cells = [row[k] for k in ("hv3d", "best_accuracy", "evolved_accuracy_median")]
        # A spread is empty when no run had the value (e.g. no evolved trial in a short run).
        print(f"{row['arm']:10s} " + " ".join(f"{c['median']:8.4f} [{c['min']:.4f}, {c['max']:.4f}]" if c
                                               else f"{'-':>26s}" for c in cells)
              + f" {row['inherited_fraction_median']['median']:10.2f} {row['train_seconds']['median']:8.0f}")
    result = {"summary": rows, "runs": runs, "setup": setup, "seeds": args.seeds, "trials": args.trials,
              "training": training, "search": ss.SEARCH, "objectives": ss.OBJECTIVES,
              "wall_s": time.perf_counter() - started}
    write_result(args.json, "experiments/benchmarks/inheritance_search.py", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
