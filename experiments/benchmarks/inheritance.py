"""Benchmark: does a child that inherits its parent's weights train to a better accuracy, at equal
epochs and at equal compute? (EfficientNAS pairs evolution with gradient steps on the offspring;
``evaluator.inherit_weights`` does it inside a search.)

For ``--pairs`` seeded random parents of ``staged_net_s3`` on ``digits`` (or a MedMNIST set):
train the parent ``--parent-epochs`` (P); make a child by one mutation (one label changes, as
``hw_evolution`` does); train the child under the same seed and settings

- ``scratch``: E = ``--epochs`` epochs from its seeded initialisation;
- ``inherited``: E epochs from the parent's weights (:func:`nni_hwnas.evaluation.inheritance.inherit_weights`:
  every tensor with the same name and shape), as a search's child trial does;
- ``scratch P+E``: P+E epochs from scratch, the *equal compute* arm: the inherited child's
  weights have had P+E epochs of gradient steps in all (P as its parent), so this asks whether
  inheriting beats spending the parent's training on the child itself.

Prints validation accuracy after each epoch, the paired differences (median, how many children
gained/lost) at equal epochs (inherited vs scratch, per epoch) and at equal compute (inherited
after E vs scratch after P+E), the training seconds of each arm, and the share of values
inherited. Not a test.

    .venv/bin/python experiments/benchmarks/inheritance.py [--pairs 16] [--epochs 3] [--dataset digits]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "experiments" / "benchmarks" / "results"


def curve(network, data, settings, seed: int) -> tuple[list[float], float]:
    """Validation accuracy after each epoch, and the training seconds."""
    from nni_hwnas.evaluation.training import train_model

    started = time.perf_counter()
    result = train_model(network, data, settings, seed)
    return [float(a) for a in result.val_accuracy], time.perf_counter() - started


def paired(better: np.ndarray, worse: np.ndarray) -> dict[str, float]:
    """Median of both arms, median paired difference, children that gained and lost."""
    diff = better - worse
    return {"inherited_median": float(np.median(better)), "scratch_median": float(np.median(worse)),
            "median_diff": float(np.median(diff)), "gained": int((diff > 0).sum()), "lost": int((diff < 0).sum())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3, help="child training epochs (both arms)")
    parser.add_argument("--parent-epochs", type=int, default=3)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--train-subset", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(RESULTS / "inheritance.json"))
    args = parser.parse_args()

    import dataclasses

    import torch

    from nni_hwnas.data.datasets import load_dataset
    from nni_hwnas.evaluation.inheritance import inherit_weights
    from nni_hwnas.evaluation.training import TrainSettings, evaluate_accuracy
    from nni_hwnas.evaluation.trial import reinitialise
    from search_spaces.registry import load_preset, make_definition
    from strategies.operators import mutate

    torch.set_num_threads(1)
    started = time.perf_counter()
    data = load_dataset(args.dataset, data_root=args.data_root, seed=args.seed)
    definition = make_definition(*load_preset("staged_net_s3"), data.input_shape, data.num_classes)
    labels = definition.mutable_labels()
    settings = TrainSettings(epochs=args.epochs, train_subset=args.train_subset)
    parent_settings = dataclasses.replace(settings, epochs=args.parent_epochs)
    long_settings = dataclasses.replace(settings, epochs=args.parent_epochs + args.epochs)
    rng = np.random.default_rng(args.seed)
    rows = []
    print(f"{'pair':>4s} {'changed':28s} {'inherited':>9s} {'start acc':>9s}  scratch / inherited val acc per epoch")
    for pair in range(args.pairs):
        parent_sample = definition.random_sample(rng)
        child_sample = mutate(parent_sample, labels, rng, 0.0)  # exactly one label changes
        changed = [k for k in labels if child_sample[k] != parent_sample[k]]
        seed = args.seed + pair
        parent = reinitialise(definition.describe(parent_sample), seed)
        curve(parent, data, parent_settings, seed)
        scratch = reinitialise(definition.describe(child_sample), seed + 1000)
        inherited = reinitialise(definition.describe(child_sample), seed + 1000)
        share = inherit_weights(inherited, parent.state_dict()).fraction
        start = evaluate_accuracy(inherited.eval(), data.val_x, data.val_y, data.task == "multi-label")
        scratch_curve, scratch_s = curve(scratch, data, settings, seed)
        inherited_curve, inherited_s = curve(inherited, data, settings, seed)
        long_curve, long_s = curve(reinitialise(definition.describe(child_sample), seed + 1000), data, long_settings, seed)
        row = {"pair": pair, "parent": parent_sample, "changed": {k: [parent_sample[k], child_sample[k]] for k in changed},
               "inherited_fraction": share, "start_accuracy": start,
               "scratch": scratch_curve, "inherited": inherited_curve, "scratch_long": long_curve,
               "seconds": {"scratch": scratch_s, "inherited": inherited_s, "scratch_long": long_s}}
        rows.append(row)
        what = ", ".join(f"{k}:{a}->{b}" for k, (a, b) in row["changed"].items())
        print(f"{pair:4d} {what[:28]:28s} {share:9.2f} {start:9.3f}  "
              + " ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(row["scratch"], row["inherited"]))
              + f"  | scratch {args.parent_epochs + args.epochs} epochs {long_curve[-1]:.3f}", flush=True)
    scratch = np.array([r["scratch"] for r in rows])
    inherited = np.array([r["inherited"] for r in rows])
    print(f"\nequal epochs (child trained {args.epochs} epochs both ways):")
    print(f"{'epoch':>5s} {'scratch median':>14s} {'inherited median':>16s} {'median diff':>11s} {'gained':>7s} {'lost':>5s}")
    per_epoch = []
    for e in range(args.epochs):
        entry = {"epoch": e + 1, **paired(inherited[:, e], scratch[:, e])}
        per_epoch.append(entry)
        print(f"{e + 1:5d} {entry['scratch_median']:14.4f} {entry['inherited_median']:16.4f} "
              f"{entry['median_diff']:+11.4f} {entry['gained']:7d} {entry['lost']:5d}")
    equal_compute = {"scratch_epochs": args.parent_epochs + args.epochs, "inherited_epochs": args.epochs,
                     **paired(inherited[:, -1], np.array([r["scratch_long"][-1] for r in rows]))}
    seconds = {arm: float(np.median([r["seconds"][arm] for r in rows])) for arm in ("scratch", "inherited", "scratch_long")}
    print(f"equal compute (inherited: {args.parent_epochs} parent + {args.epochs} child epochs; scratch: "
          f"{equal_compute['scratch_epochs']} epochs): scratch median {equal_compute['scratch_median']:.4f}, "
          f"inherited median {equal_compute['inherited_median']:.4f}, median diff {equal_compute['median_diff']:+.4f}, "
          f"gained {equal_compute['gained']}, lost {equal_compute['lost']}")
    print("median training seconds per child: " + ", ".join(f"{k} {v:.2f}" for k, v in seconds.items())
          + f"; values inherited: median {np.median([r['inherited_fraction'] for r in rows]):.2f}")
    result = {"per_epoch": per_epoch, "equal_compute": equal_compute, "median_seconds": seconds,
              "pairs": rows, "settings": dataclasses.asdict(settings),
              "parent_epochs": args.parent_epochs, "dataset": args.dataset, "seed": args.seed,
              "wall_s": time.perf_counter() - started}
    write_result(args.json, "experiments/benchmarks/inheritance.py", result)
    return 0


def write_result(path: str | Path, script: str, result: dict) -> None:
    """Write a benchmark's JSON with the command that made it, when, and on what machine."""
    from nni_hwnas.experiment.runinfo import machine_info, package_versions

    result = {**result, "command": " ".join([script, *sys.argv[1:]]),
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": machine_info(), "versions": package_versions()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
