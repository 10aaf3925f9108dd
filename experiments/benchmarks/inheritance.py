"""Benchmark: does a child that inherits its parent's weights train to a better accuracy in the
same number of epochs? (EfficientNAS pairs evolution with gradient steps on the offspring.)

For ``--pairs`` seeded random parents of ``staged_net_s3`` on ``digits`` (and optionally a MedMNIST
set): train the parent ``--parent-epochs``; make a child by one mutation (one label changes, as
``hw_evolution`` does); train the child ``--epochs`` twice under the same seed and settings, from
scratch and from the parent's weights (:func:`nni_hwnas.evaluation.inheritance.inherit_weights`:
every tensor with the same name and shape). Prints validation accuracy after each epoch, both
arms, the paired difference (median and how many children gained), and the share of values
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


def curve(network, data, settings, seed: int) -> list[float]:
    from nni_hwnas.evaluation.training import train_model

    accuracies: list[float] = []
    train_model(network, data, settings, seed, on_epoch=lambda epoch, acc: accuracies.append(float(acc)))
    return accuracies


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
    from nni_hwnas.experiment.runinfo import machine_info, package_versions
    from search_spaces.registry import load_preset, make_definition
    from strategies.operators import mutate

    torch.set_num_threads(1)
    started = time.perf_counter()
    data = load_dataset(args.dataset, data_root=args.data_root, seed=args.seed)
    definition = make_definition(*load_preset("staged_net_s3"), data.input_shape, data.num_classes)
    labels = definition.mutable_labels()
    settings = TrainSettings(epochs=args.epochs, train_subset=args.train_subset)
    parent_settings = dataclasses.replace(settings, epochs=args.parent_epochs)
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
        row = {"pair": pair, "parent": parent_sample, "changed": {k: [parent_sample[k], child_sample[k]] for k in changed},
               "inherited_fraction": share, "start_accuracy": start,
               "scratch": curve(scratch, data, settings, seed), "inherited": curve(inherited, data, settings, seed)}
        rows.append(row)
        what = ", ".join(f"{k}:{a}->{b}" for k, (a, b) in row["changed"].items())
        print(f"{pair:4d} {what[:28]:28s} {share:9.2f} {start:9.3f}  "
              + " ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(row["scratch"], row["inherited"])), flush=True)
    scratch = np.array([r["scratch"] for r in rows])
    inherited = np.array([r["inherited"] for r in rows])
    diff = inherited - scratch
    print(f"\n{'epoch':>5s} {'scratch median':>14s} {'inherited median':>16s} {'median diff':>11s} {'gained':>7s} {'lost':>5s}")
    per_epoch = []
    for e in range(args.epochs):
        entry = {"epoch": e + 1, "scratch_median": float(np.median(scratch[:, e])),
                 "inherited_median": float(np.median(inherited[:, e])), "median_diff": float(np.median(diff[:, e])),
                 "gained": int((diff[:, e] > 0).sum()), "lost": int((diff[:, e] < 0).sum())}
        per_epoch.append(entry)
        print(f"{e + 1:5d} {entry['scratch_median']:14.4f} {entry['inherited_median']:16.4f} "
              f"{entry['median_diff']:+11.4f} {entry['gained']:7d} {entry['lost']:5d}")
    result = {"per_epoch": per_epoch, "pairs": rows, "settings": dataclasses.asdict(settings),
              "parent_epochs": args.parent_epochs, "dataset": args.dataset, "seed": args.seed,
              "wall_s": time.perf_counter() - started,
              "command": " ".join(["experiments/benchmarks/inheritance.py", *sys.argv[1:]]),
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": machine_info(), "versions": package_versions()}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
