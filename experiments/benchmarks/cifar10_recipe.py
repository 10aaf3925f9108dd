"""Benchmark: the CIFAR-10 recipe on the JPEG image folder (issue 17).

Three parts, each printing a table and writing ``experiments/benchmarks/results/cifar10_recipe_<part>.json``
(settings, seed, versions and machine included):

- ``stability``: architectures of the shipped ``conv_net`` space most prone to collapse (deep,
  large kernels, no batch norm) train on the same subset, seed and learning rate with the shipped
  recipe (no warm-up, no clipping) and with the recipe of ``experiments/cifar10_jpg.yaml``
  (linear warm-up, gradient-norm clipping, label smoothing). Chance is 0.10.
- ``precision``: one architecture trained with fp32 and with ``precision: bf16`` side by side, in
  alternating order, ``--repeats`` times: training images/s (median) and final val/test accuracy.
- ``protocol``: the user's path end to end through the CLI code: ``search`` on
  ``experiments/cifar10_jpg.yaml`` (through NNI), then ``train --from`` the best trial on the full
  training split with ONNX/TorchScript exports; its search front, learning curve and test accuracy.
  The retrained member is the most accurate on the front with at most 300K params (``--pick``).
  The protocol's limits are a search of at most 1 h and a retrain of at most 2 h on this 2-core
  machine; the JSON records the times, whether they held, and whether the space or fidelity was
  narrowed (``--choices``, ``--search-subset``, ``--search-epochs``).

    python experiments/benchmarks/cifar10_recipe.py --data data/cifar10_jpg --part stability
    python experiments/benchmarks/cifar10_recipe.py --data data/cifar10_jpg --part precision
    python experiments/benchmarks/cifar10_recipe.py --data data/cifar10_jpg --part protocol \
        --search-trials 4 --search-subset 2000 --search-epochs 1 --retrain-epochs 1 --choices '{"blocks": [2]}'
    python experiments/benchmarks/cifar10_recipe.py --data data/cifar10_jpg --part protocol \
        --search-trials 28 --concurrency 1 --retrain-epochs 30   # the measured run (see the JSON)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from nni_hwnas.data.datasets import load_dataset  # noqa: E402
from nni_hwnas.evaluation.training import TrainSettings, evaluate_accuracy, train_model  # noqa: E402
from nni_hwnas.experiment.runinfo import run_record  # noqa: E402
from nni_hwnas.hardware.timing import torch_threads  # noqa: E402

RESULTS = REPO / "experiments" / "benchmarks" / "results"
YAML = REPO / "experiments" / "cifar10_jpg.yaml"

#: Collapse-prone members of conv_net (no batch norm anywhere), smallest first.
FRAGILE = {
    "d4-k5-f64-nobn": {"depth": 4, "filters": 64, "kernel": 5},
    "d5-k7-f32-nobn": {"depth": 5, "filters": 32, "kernel": 7},
    "d5-k3-f96-nobn": {"depth": 5, "filters": 96, "kernel": 3},
}
SHIPPED = {"learning_rate": 0.05, "lr_schedule": "cosine"}  # experiments/cifar10.yaml before issue 17


def recipe() -> dict:
    """The evaluator settings of experiments/cifar10_jpg.yaml (the search recipe)."""
    import yaml

    ev = yaml.safe_load(YAML.read_text())["evaluator"]
    keys = ("learning_rate", "lr_schedule", "warmup_epochs", "grad_clip_norm", "label_smoothing", "batch_size",
            "weight_decay", "momentum", "weight_init")
    return {k: ev[k] for k in keys if k in ev}


def network(arch: dict, bn: bool, shape, classes):
    from search_spaces import make_definition
    from search_spaces.layers import build_network

    definition = make_definition("conv_net", {}, shape, classes)
    sample = {"depth": arch["depth"], "dropout": 0.0}
    for i in range(arch["depth"]):
        sample.update({f"conv{i}_filters": arch["filters"], f"conv{i}_kernel": arch["kernel"], f"conv{i}_bn": bn})
    return build_network(definition.describe(definition.complete(sample))), definition.canonical(sample)


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def save(part: str, args: argparse.Namespace, rows: list[dict], text: str, **extra) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"cifar10_recipe_{part}.json"
    # The load average says how shared the machine was: images/s are only comparable within one run.
    extra["load_average_1_5_15"] = os.getloadavg()
    path.write_text(json.dumps(run_record(args.seed, vars(args), rows=rows, table=text, **extra),
                               indent=2, default=str) + "\n")
    print(text)
    print(f"wrote {path}")


def plot_protocol(path: Path = RESULTS / "cifar10_recipe_protocol.json") -> Path:
    """The protocol's picture: every search trial by params and accuracy (front and the 300K line
    marked), and the retrain's learning curve against its test accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    record = json.loads(path.read_text())
    row, trials, front = record["rows"][0], record["trials"], record["front"]
    fig, (search, curve) = plt.subplots(1, 2, figsize=(11, 4.2))
    search.scatter([t["params"] for t in trials], [t["accuracy"] for t in trials], s=14, c="0.6", label="trial")
    ordered = sorted(front, key=lambda t: t["params"])
    search.plot([t["params"] for t in ordered], [t["accuracy"] for t in ordered], "o-", c="tab:red", label="front")
    search.axvline(300_000, ls="--", c="k", lw=1, label="300K params")
    search.set(xscale="log", xlabel="params", ylabel="search val accuracy (short fidelity)",
               title=f"search: {len(trials)} trials, {row['search_seconds'] / 60:.0f} min")
    search.legend(loc="lower right")
    epochs = range(1, len(row["val_curve"]) + 1)
    curve.plot(epochs, row["val_curve"], "o-", ms=3, label="val accuracy")
    curve.axhline(row["test_accuracy"], c="tab:green", label=f"test accuracy {row['test_accuracy']:.4f}")
    curve.axhline(0.85, ls="--", c="k", lw=1, label="target 0.85")
    curve.set(xlabel="epoch", ylabel="accuracy", title=f"retrain: {row['retrain_seconds'] / 60:.0f} min")
    curve.legend(loc="lower right")
    fig.tight_layout()
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"wrote {out}")
    return out


def load(args):
    return load_dataset("folder", path=args.data, seed=args.seed, val_fraction=0.1)


def part_stability(args) -> None:
    data = load(args)
    rows = []
    for name in args.archs.split(","):
        arch = FRAGILE[name]
        for label, settings in (("shipped", SHIPPED), ("recipe", recipe())):
            model, canonical = network(arch, False, data.input_shape, data.num_classes)
            torch.manual_seed(args.seed)
            ts = TrainSettings(**{**settings, "epochs": args.epochs, "train_subset": args.subset})
            with torch_threads(args.threads):
                try:
                    res = train_model(model, data, ts, args.seed)
                    acc, loss, ips = res.final_accuracy, res.train_loss[-1], res.images_per_second
                except Exception as exc:  # TrainingDiverged: a NaN loss is a collapse too
                    acc, loss, ips = 0.1, float("nan"), 0.0
                    print(f"{name} {label}: {exc}")
            rows.append({"arch": name, "canonical": canonical, "recipe": label, "val_accuracy": acc,
                         "final_train_loss": loss, "images_per_second": ips, "settings": settings})
            print(f"{name:16s} {label:8s} val {acc:.4f} loss {loss:.3f} ({ips:.0f} img/s)", flush=True)
    text = table(["architecture", "recipe", "val accuracy", "last-epoch train loss"],
                 [[r["arch"], r["recipe"], r["val_accuracy"], r["final_train_loss"]] for r in rows])
    save(f"stability_{args.subset}x{args.epochs}", args, rows, text, chance=0.1)


def part_precision(args) -> None:
    data = load(args)
    arch = {"depth": 3, "filters": 64, "kernel": 3}
    rows = []
    for rep in range(args.repeats):
        for precision in (("fp32", "bf16") if rep % 2 == 0 else ("bf16", "fp32")):
            model, canonical = network(arch, True, data.input_shape, data.num_classes)
            torch.manual_seed(args.seed)
            ts = TrainSettings(**{**recipe(), "epochs": args.epochs, "train_subset": args.subset,
                                  "precision": precision})
            with torch_threads(args.threads):
                res = train_model(model, data, ts, args.seed)
                test_acc = evaluate_accuracy(model, data.test_x, data.test_y, False)
            rows.append({"precision": precision, "repeat": rep, "canonical": canonical,
                         "images_per_second": res.images_per_second, "val_accuracy": res.final_accuracy,
                         "test_accuracy": test_acc})
            print(f"rep {rep} {precision}: {res.images_per_second:.0f} img/s, val {res.final_accuracy:.4f}, "
                  f"test {test_acc:.4f}", flush=True)
    summary = []
    for precision in ("fp32", "bf16"):
        mine = [r for r in rows if r["precision"] == precision]
        summary.append([precision, statistics.median(r["images_per_second"] for r in mine),
                        statistics.median(r["val_accuracy"] for r in mine),
                        statistics.median(r["test_accuracy"] for r in mine)])
    ratio = summary[1][1] / summary[0][1]
    text = table(["precision", "train images/s (median)", "val accuracy (median)", "test accuracy (median)"],
                 summary) + f"\n\nbf16/fp32 images/s ratio: {ratio:.2f} ({args.threads} threads, {args.repeats} repeats)"
    save("precision", args, rows, text, ratio=ratio, architecture=arch)


def part_protocol(args) -> None:
    from nni_hwnas.evaluation.retrain import retrain
    from nni_hwnas.experiment.config import load_config
    from nni_hwnas.experiment.launch import run_search

    config = load_config(YAML)
    config.dataset.path = str(Path(args.data).resolve())
    config.seed = args.seed
    config.experiment.max_trials = args.search_trials
    if args.search_subset:
        config.evaluator.train_subset = args.search_subset
    if args.search_epochs:
        config.evaluator.epochs = args.search_epochs
    if args.choices:  # a narrower space for shortened runs (recorded in the JSON with the other args)
        config.space.choices = {**config.space.choices, **json.loads(args.choices)}
    if args.concurrency:
        config.experiment.concurrency = args.concurrency
    out = Path(args.output).resolve()
    started = time.perf_counter()
    results = run_search(config, port=args.port, output=out / "search")
    search_s = time.perf_counter() - started
    trials = json.loads((results / "trials.json").read_text())
    front = json.loads((results / "pareto.json").read_text())["front"]
    keep = ("trial_id", "accuracy", "params", "latency_ms", "train_seconds", "trial_seconds")
    curve: list[float] = []
    started = time.perf_counter()
    summary = retrain(results, args.pick, epochs=args.retrain_epochs, output=out / "retrain", seed=args.seed,
                      echo=lambda line: (print(line, flush=True),
                                         curve.append(float(line.rsplit(" ", 1)[1])) if "val accuracy" in line else None))
    retrain_s = time.perf_counter() - started
    row = {"search_seconds": search_s, "retrain_seconds": retrain_s, "search_trials": args.search_trials,
           "retrain_epochs": args.retrain_epochs, "test_accuracy": summary["test_accuracy"],
           "val_curve": curve, "picked": summary["sample"], "results": str(results),
           "within_protocol_limits": search_s <= 3600 and retrain_s <= 7200,
           "shortened": bool(args.choices or args.search_subset or args.search_epochs)}
    text = table(["search trials", "search s", "retrain epochs", "retrain s", "test accuracy"],
                 [[args.search_trials, round(search_s), args.retrain_epochs, round(retrain_s),
                   summary["test_accuracy"]]]) + "\nval curve: " + ", ".join(f"{v:.3f}" for v in curve)
    text += "\n\nsearch front (accuracy up, latency_ms down):\n" + table(
        ["trial", "val accuracy", "params", "latency_ms"],
        [[t["trial_id"], t["accuracy"], t["params"], round(t["latency_ms"], 3)] for t in front])
    save("protocol", args, [row], text, trials=[{k: t.get(k) for k in keep} for t in trials],
         front=[{k: t.get(k) for k in keep} for t in front])
    plot_protocol()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the CIFAR-10 image folder (train/<class>/, test/<class>/)")
    parser.add_argument("--part", choices=("stability", "precision", "protocol", "plot"), required=True,
                        help="plot: redraw the protocol's picture from its JSON")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--subset", type=int, default=4000, help="training images (stability, precision)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs (stability, precision)")
    parser.add_argument("--archs", default=",".join(FRAGILE), help="comma-separated names of FRAGILE (stability)")
    parser.add_argument("--repeats", type=int, default=3, help="fp32/bf16 pairs (precision)")
    parser.add_argument("--search-trials", type=int, default=40)
    parser.add_argument("--search-subset", type=int, default=None)
    parser.add_argument("--search-epochs", type=int, default=None)
    parser.add_argument("--retrain-epochs", type=int, default=30)
    parser.add_argument("--pick", default="params<=300000", help="which front member to retrain (train --pick)")
    parser.add_argument("--choices", default=None, help='JSON choice overrides, e.g. \'{"blocks": [2]}\' (shortened runs only)')
    parser.add_argument("--concurrency", type=int, default=None, help="trials at once (default: the YAML's)")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--output", default=str(REPO / "results" / "cifar10_recipe"))
    args = parser.parse_args()
    {"stability": part_stability, "precision": part_precision, "protocol": part_protocol,
     "plot": lambda _: plot_protocol()}[args.part](args)


if __name__ == "__main__":
    main()
