"""Benchmark: plain ``hw_evolution`` vs ``hw_evolution`` + MO-ASHA early stopping, on real training.

Issue 11. Target: the MO-ASHA runs reach the plain evolution's final hypervolume in at most half
of its CPU time, median over seeds, measured side by side in one run.

- **Training**: the conv_net space (``--preset``) on a MedMNIST set (BreastMNIST by default), SGD
  for ``--epochs`` epochs under one fixed training seed, one torch thread. An architecture's
  per-epoch validation accuracy is therefore a deterministic function of the architecture; each
  architecture is trained once and its curve and *measured per-epoch CPU seconds*
  (``time.process_time``, training + validation) are memoised in
  ``experiments/benchmarks/cache/`` (a trial stopped after ``r`` epochs trains only ``r``: the
  cosine schedule is set for the full budget either way, so the first ``r`` epochs are the same).
- **Charged CPU**: each run is charged the measured CPU of the epochs it ran (all of them for
  plain; up to the rung where it was stopped for MO-ASHA). Not charged in ``share``: process launch
  and data loading, which NNI pays per trial whatever the epochs. The ``cold+`` and ``warm+`` columns
  add that cost to both runs (MO-ASHA runs more, shorter trials), *measured* here first
  (:func:`measure_trial_overhead`: real ``hpo_trial`` processes outside their epochs, started cold
  and as warm trials, :mod:`nni_hwnas.warm_trials`); ``--trial-overhead-s X`` sets the cold cost
  instead and skips the measurement.
- **Runs**: plain evolution (``hw_evolution`` as ``compare_strategies.py`` configures it) for
  ``--trials`` trials; then, per seed, the same evolution with MO-ASHA (``strategies/multi_fidelity.py``;
  rungs ``min_epochs * eta**k`` below ``--epochs``) until it has used the plain run's CPU. A stopped
  trial is told to the evolution as failed, as the NNI routes do (NNI ends it as cancelled).
- **Hypervolume**: accuracy (up, over [majority-class rate, 1]) vs predicted latency (``host-cpu-1t``
  table, down) on a **log axis** (``log10(latency / floor)``, floor = 0.9 x the space's cheapest),
  of fully trained trials only (an early-stopped trial's accuracy is not its final one).

    .venv/bin/python experiments/benchmarks/multi_fidelity.py [--seeds 5] [--trials 30] [--epochs 9]
        [--dataset breastmnist] [--min-epochs 1,3] [--workers 2] [--trial-overhead-s measure|S] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from experiments.benchmarks.compare_strategies import (  # noqa: E402  (after the path insert)
    CACHE, DEFAULT_DATA, OUR_ARGS, PROFILE, TRAIN_SEED, AccuracyCache, _worker_init, dataset_setup)

DEFAULT_OUT = REPO / "experiments" / "benchmarks" / "results" / "multi_fidelity"
TRAINING = {"batch_size": 64, "learning_rate": 0.05, "lr_schedule": "cosine", "augment": True, "train_subset": None}
MAX_TRIAL_FACTOR = 5  # an MO-ASHA run stops at this many times the plain run's trials even with CPU left
#: Per-epoch signals the cache keeps (directions from the metric contract): a rung may rank by any.
SIGNALS = ("accuracy", "train_loss", "val_loss")


class _Enough(Exception):
    """Raised from the epoch callback once the requested epochs are done."""


# ---------------------------------------------------------------------------- one architecture


class Trainer:
    """Per-epoch accuracy and CPU of an architecture, trained on first need (one per worker)."""

    def __init__(self, setup: Mapping[str, Any]) -> None:
        from nni_hwnas.data.datasets import load_dataset
        from nni_hwnas.evaluation.cost_trial import load_predictor
        from nni_hwnas.hardware.profiles import load_profile
        from search_spaces.registry import make_definition

        self.setup = dict(setup)
        self.data = load_dataset(setup["dataset"], data_root=setup["data_root"], seed=TRAIN_SEED)
        self.definition = make_definition(setup["space"], setup["choices"], setup["input_shape"], setup["num_classes"])
        self.predictor = load_predictor(load_profile(PROFILE), self.definition)
        header = {"benchmark": "multi_fidelity", "dataset": setup["dataset"], "preset": setup["preset"],
                  "choices": setup["choices"], "training": setup["training"], "train_seed": TRAIN_SEED}
        self.cache = AccuracyCache(Path(setup["cache_file"]), header)
        self.trained_epochs = 0  # epochs trained in this process (cache misses)

    def curve(self, sample: Mapping[str, Any], epochs: int) -> dict[str, Any]:
        """``{"accuracy": [...], "train_loss": [...], "val_loss": [...], "cpu_s": [...]}`` for at
        least ``epochs`` epochs (or ``failed``). An entry from before the losses were kept is
        trained again, so every signal and CPU figure of a run comes from one measurement."""
        from nni_hwnas.evaluation.training import EpochResult, TrainSettings, TrainingDiverged, train_model
        from nni_hwnas.evaluation.trial import reinitialise

        arch_id = self.definition.arch_id(sample)
        entry = self.cache.get(arch_id)
        if (entry is not None and all(k in entry for k in SIGNALS)
                and ("failed" in entry or len(entry["accuracy"]) >= epochs)):
            return entry
        signals: dict[str, list[float]] = {name: [] for name in SIGNALS}
        cpu: list[float] = []
        last = [time.process_time()]

        def on_epoch(report: EpochResult) -> None:
            now = time.process_time()
            signals["accuracy"].append(float(report.val_accuracy))
            signals["train_loss"].append(round(float(report.train_loss), 6))
            signals["val_loss"].append(round(float(report.val_loss), 6))
            cpu.append(round(now - last[0], 4))
            last[0] = now
            if len(cpu) >= epochs:
                raise _Enough

        network = reinitialise(self.definition.describe(self.definition.complete(sample)), TRAIN_SEED)
        entry = {}
        try:
            train_model(network, self.data, TrainSettings(**self.setup["training"]), TRAIN_SEED, on_epoch=on_epoch)
        except _Enough:
            pass
        except TrainingDiverged as exc:
            entry["failed"] = str(exc)[:200]
        entry.update({**signals, "cpu_s": cpu})
        self.trained_epochs += len(cpu)
        self.cache.put(arch_id, entry)
        return entry


# ---------------------------------------------------------------------------- one search


@dataclass
class RunResult:
    variant: str
    seed: int
    rows: list[dict[str, Any]]  # one per trial: status, accuracy, latency_ms, epochs, cpu_s, cum_cpu_s
    rule: dict[str, Any] | None = None
    trained_epochs: int = 0
    seconds: float = 0.0


_TRAINERS: dict[str, Trainer] = {}


def run_search(setup: Mapping[str, Any], seed: int, trials: int, min_epochs: int | None, cpu_budget: float | None,
               reduction_factor: float, ties: str = "keep", rung_metric: str = "accuracy") -> dict[str, Any]:
    """Plain evolution (``min_epochs`` None) for ``trials`` trials, or evolution + MO-ASHA until
    ``cpu_budget`` CPU seconds are used (at most ``MAX_TRIAL_FACTOR * trials`` trials), its rungs
    ranking trials by ``rung_metric`` (one of :data:`SIGNALS`) and latency."""
    from strategies.hw_evolution import HwEvolution, SpaceExhausted
    from strategies.multi_fidelity import MoAsha, default_rungs
    from strategies.objectives import ObjectiveConfig

    key = setup["cache_file"]
    if key not in _TRAINERS:
        _TRAINERS[key] = Trainer(setup)
    trainer = _TRAINERS[key]
    trainer.trained_epochs = 0
    started = time.perf_counter()
    epochs = setup["training"]["epochs"]
    objectives = ObjectiveConfig(use=tuple(OUR_ARGS["objectives"]), score_metric=OUR_ARGS["score_metric"],
                                 cost_metric=OUR_ARGS["cost_metric"])
    search = {k: OUR_ARGS[k] for k in ("population_size", "sample_size", "initial_random")}
    core = HwEvolution(trainer.definition.mutable_labels(), seed=seed, identity=trainer.definition.arch_id,
                       canonical=trainer.definition.canonical, objectives=objectives, **search)
    rule = None
    if min_epochs is not None:
        rule = MoAsha(default_rungs(epochs, min_epochs, reduction_factor), reduction_factor, rung_metric, "latency_ms",
                      ties=ties)
    rows: list[dict[str, Any]] = []
    used = 0.0
    limit = trials if rule is None else MAX_TRIAL_FACTOR * trials
    while len(rows) < limit and (cpu_budget is None or used < cpu_budget):
        try:
            sample = core.ask()
        except SpaceExhausted:
            break
        latency = trainer.predictor.predict(sample)
        ran, stopped_at, entry = epochs, None, None
        if rule is not None:
            for rung in rule.rungs:
                entry = trainer.curve(sample, rung)
                if "failed" in entry and len(entry["accuracy"]) < rung:
                    break
                if not rule.report(str(len(rows)), rung, {rung_metric: entry[rung_metric][rung - 1], "latency_ms": latency}):
                    ran, stopped_at = rung, rung
                    break
        if stopped_at is None:
            entry = trainer.curve(sample, epochs)
            if "failed" in entry:
                ran = len(entry["accuracy"])
        cpu = float(sum(entry["cpu_s"][:ran]))
        used += cpu
        row = {"trial": len(rows) + 1, "arch_id": core.identity(sample), "latency_ms": latency, "epochs": ran,
               "cpu_s": cpu, "cum_cpu_s": used}
        if "failed" in entry and stopped_at is None:
            row["status"] = "FAILED"
            core.tell(sample, None, failed=True)
        elif stopped_at is not None:
            row.update(status="EARLY_STOPPED", rung_accuracy=entry["accuracy"][stopped_at - 1])
            core.tell(sample, None, failed=True)  # as NNI ends it: cancelled, never a parent
        else:
            row.update(status="SUCCEEDED", accuracy=entry["accuracy"][epochs - 1])
            core.tell(sample, {"accuracy": row["accuracy"], "latency_ms": latency})
        rows.append(row)
    variant = "plain" if rule is None else f"mo_asha(min_epochs={min_epochs}, {rung_metric}{'' if ties == 'keep' else ', ' + ties})"
    summary = None if rule is None else {"rungs": rule.rungs, "reduction_factor": reduction_factor,
                                         "per_rung": [vars(s) | {"stopped_trials": len(s.stopped_trials)}
                                                      for s in rule.stats()]}
    return vars(RunResult(variant, seed, rows, summary, trainer.trained_epochs, time.perf_counter() - started))


# ---------------------------------------------------------------------------- summaries


def reference_for(setup: Mapping[str, Any]) -> Any:
    from nni_hwnas.reporting.hypervolume_trace import HvReference

    return HvReference(score="accuracy", cost="latency_ms", score_worst=setup["majority_val_accuracy"],
                       score_best=1.0, cost_worst=1.1 * setup["max_latency_ms"], cost_best=0.9 * setup["min_latency_ms"],
                       cost_scale="log")


def hv_within(rows: Sequence[Mapping[str, Any]], curve: np.ndarray, cpu_s: float) -> float:
    """Hypervolume after the last trial that finished within ``cpu_s`` charged CPU seconds."""
    inside = [i for i, x in enumerate(rows) if x["cum_cpu_s"] <= cpu_s + 1e-9]
    return float(curve[inside[-1]]) if inside else 0.0


@dataclass(frozen=True)
class LaunchCharge:
    """CPU a trial launcher costs besides the epochs: ``per_trial_s`` for every trial, ``once_s``
    once per search (a warm-trial server's start-up and its reading of the config)."""

    per_trial_s: float
    once_s: float = 0.0

    def label(self) -> str:
        return f"{self.per_trial_s:g}s" + (f"+{self.once_s:g}" if self.once_s else "")


def cpu_to_reach(rows: Sequence[Mapping[str, Any]], curve: np.ndarray, target: float,
                 charge: LaunchCharge = LaunchCharge(0.0)) -> float | None:
    """Charged CPU (plus the launcher's ``charge``) when ``curve`` first reaches ``target``."""
    hits = np.nonzero(curve >= target - 1e-12)[0]
    if not len(hits):
        return None
    i = int(hits[0])
    return float(rows[i]["cum_cpu_s"] + charge.per_trial_s * (i + 1) + charge.once_s)


def summarise(setup: Mapping[str, Any], results: Sequence[Mapping[str, Any]],
              charges: Mapping[str, LaunchCharge]) -> list[dict[str, Any]]:
    """Per MO-ASHA variant and seed: CPU share needed to reach the plain run's final HV, on the
    epochs' CPU alone (``cpu_share_to_plain_hv``) and with each launcher's charge, both runs
    paying it (``cpu_share_<launcher>``)."""
    from nni_hwnas.reporting.hypervolume_trace import hypervolume_curve

    reference = reference_for(setup)
    plain = {r["seed"]: r for r in results if r["variant"] == "plain"}
    out = []
    for r in results:
        if r["variant"] == "plain":
            continue
        p = plain[r["seed"]]
        p_curve, curve = hypervolume_curve(p["rows"], reference), hypervolume_curve(r["rows"], reference)
        target = float(p_curve[-1])
        p_cpu = p["rows"][-1]["cum_cpu_s"]
        row = {"variant": r["variant"], "seed": r["seed"], "plain_trials": len(p["rows"]), "plain_hv": target,
               "plain_cpu_s": p_cpu, "trials": len(r["rows"]),
               "stopped": sum(x["status"] == "EARLY_STOPPED" for x in r["rows"]),
               "full": sum(x["status"] == "SUCCEEDED" for x in r["rows"]),
               "hv_at_equal_cpu": hv_within(r["rows"], curve, p_cpu),
               "hv_at_half_cpu": hv_within(r["rows"], curve, p_cpu / 2)}
        # A plain run with no volume (nothing better than the majority class) sets no target: n/a.
        row["informative"] = target > 0
        reach = cpu_to_reach(r["rows"], curve, target) if target > 0 else None
        row["cpu_share_to_plain_hv"] = None if reach is None else reach / p_cpu
        for name, charge in charges.items():
            p_total = p_cpu + charge.per_trial_s * len(p["rows"]) + charge.once_s
            reach_c = cpu_to_reach(r["rows"], curve, target, charge) if target > 0 else None
            row[f"cpu_share_{name}"] = None if reach_c is None else reach_c / p_total
        out.append(row)
    return out


def median_share(values: Sequence[float | None]) -> float | None:
    """Median where a run that never reached the target counts as infinitely slow."""
    finite = [np.inf if v is None else v for v in values]
    m = float(np.median(finite)) if finite else None
    return None if m is None or not np.isfinite(m) else m


def known_front_size(results: Sequence[Mapping[str, Any]], reference: Any) -> tuple[int, int]:
    """(fully trained distinct architectures of all runs, size of their Pareto front)."""
    from nni_hwnas.metrics import to_losses
    from nni_hwnas.reporting.pareto import pareto_mask

    done = {x["arch_id"]: x for r in results for x in r["rows"] if x["status"] == "SUCCEEDED"}
    if not done:
        return 0, 0
    return len(done), int(pareto_mask(to_losses(list(done.values()), ["accuracy", "latency_ms"])).sum())


def fidelity_correlation(cache_file: str | Path, epochs: int) -> dict[str, Any]:
    """Per signal (:data:`SIGNALS`, losses negated): Spearman of its epoch-r value with the final
    epoch's *accuracy*, over every cached fully trained architecture that has it: how well a rung
    at epoch r ranking by that signal can tell which trials end best."""
    from scipy.stats import spearmanr

    from nni_hwnas.metrics import direction

    path = Path(cache_file)
    entries = json.loads(path.read_text()).get("accuracy", {}) if path.is_file() else {}
    done = [e for e in entries.values() if "failed" not in e and len(e["accuracy"]) >= epochs]
    out: dict[str, Any] = {"architectures": len(done), "spearman_with_final": {}}
    for name in SIGNALS:
        have = [e for e in done if len(e.get(name, [])) >= epochs]
        if len(have) < 3:
            continue
        values = np.array([e[name][:epochs] for e in have], dtype=float) * (1 if direction(name) else -1)
        final = np.array([e["accuracy"][epochs - 1] for e in have], dtype=float)
        out["spearman_with_final"][name] = {
            str(r + 1): round(float(spearmanr(values[:, r], final).statistic), 3) for r in range(epochs - 1)}
    return out


LAUNCHERS = ("cold", "warm")


def measure_trial_overhead(setup: Mapping[str, Any], rounds: int = 3,
                           launchers: Sequence[str] = LAUNCHERS) -> dict[str, dict[str, Any]]:
    """CPU seconds a real nnictl trial (``hpo_trial``, one torch thread) spends outside its epochs
    on this dataset and space, per trial launcher: what every trial pays, an early-stopped one included.

    - ``cold``: ``python -m nni_hwnas.evaluation.hpo_trial``, a fresh interpreter per trial.
    - ``warm``: ``python -m nni_hwnas.warm_trials``, the trial forked from a server that has
      imported torch and our trial code; the client's CPU, the forked trial's and the server's own
      CPU since the trial before (accepting, forking, reaping; all from the server's log) count per
      trial, and the server's start-up and its reading of the config (``once_s``) once per search.

    Each is the command nnictl starts, ``--config`` and all, its parameters handed over by
    :mod:`experiments.benchmarks.trial_channel` in place of an NNI manager. Runs the whole trial
    for 1 and for 3 epochs on the space's cheapest architecture (the least
    epoch time, so the least noise) and solves ``cpu(E) = overhead + E x epoch``:
    ``overhead = (3 cpu(1) - cpu(3)) / 2``, median over ``rounds``, the launchers alternating so
    both see the same machine load. Imports, data loading, building the model and its latency
    prediction all count, as they do under NNI.
    """
    import resource
    import signal
    import subprocess
    import tempfile

    import yaml

    from experiments.benchmarks.trial_channel import channel_environment
    from nni_hwnas.warm_trials import protocol
    from search_spaces.registry import make_definition

    definition = make_definition(setup["space"], setup["choices"], setup["input_shape"], setup["num_classes"])
    cheapest = json.loads(json.dumps(definition.complete(definition.cheapest_candidates()[0]), default=int))
    training = {k: v for k, v in setup["training"].items() if k != "epochs"}
    workdir = Path(tempfile.mkdtemp(prefix="mf-overhead-"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(workdir), "NNI_HWNAS_WARM_IDLE_S": "600",
           **channel_environment(cheapest)}
    server_log = protocol.log_path(env)

    for epochs in (1, 3):  # written once: a warm server prepares each config once, as in a search
        config = {"name": "mf-overhead", "seed": TRAIN_SEED,
                  "dataset": {"name": setup["dataset"], "data_root": setup["data_root"]},
                  "space": {"preset": setup["preset"]}, "strategy": {"name": "hw_evolution"},
                  "evaluator": {"kind": "train", "epochs": epochs, "threads": 1, **training},
                  "hardware": {"profile": PROFILE}, "experiment": {"max_trials": 1}}
        (workdir / f"trial_e{epochs}.yaml").write_text(yaml.safe_dump(config))

    def trial_cpu(epochs: int, launcher: str) -> float:
        path = workdir / f"trial_e{epochs}.yaml"
        entry = "nni_hwnas.warm_trials" if launcher == "warm" else "nni_hwnas.evaluation.hpo_trial"
        command = [sys.executable, "-m", entry, "--config", str(path)]  # what nnictl starts
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, stderr = proc.communicate()
        if proc.returncode:
            last = (stderr.strip().splitlines() or ["no output"])[-1]
            raise SystemExit(f"multi_fidelity: the {launcher} trial that measures the per-trial CPU failed ({last}); "
                             f"pass --trial-overhead-s SECONDS to skip the measurement")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if launcher == "warm":
            events = protocol.read_log(server_log)
            forked = [e["pid"] for e in events if e["event"] == "start" and e["client_pid"] == proc.pid]
            if not forked:
                raise SystemExit(f"multi_fidelity: the warm trial ran cold ({stderr.strip()}); see {server_log}")
            end = next(e for e in events if e["event"] == "end" and e["pid"] == forked[0])
            cpu += end["cpu_s"] + server_share(events, end)
        return cpu

    def server_share(events: list[dict[str, Any]], end: Mapping[str, Any]) -> float:
        """The server's own CPU since its previous trial ended (or since it began serving):
        accepting, forking and reaping this trial. Preparing a config is left out here: a search
        has one config, prepared once, so that CPU is charged once per search (``once_s``)."""
        mine = [e for e in events if e.get("server_pid") == end["server_pid"]]
        before = mine[:mine.index(end)]
        ends = [i for i, e in enumerate(before) if e["event"] == "end"]
        start = before[ends[-1]]["server_cpu_s"] if ends else next(
            e["warm_up_cpu_s"] for e in before if e["event"] == "serving")
        preparing = sum(e["cpu_s"] for e in before[(ends[-1] + 1) if ends else 0:] if e["event"] == "prepared")
        return max(0.0, end["server_cpu_s"] - start - preparing)

    pairs: dict[str, list[tuple[float, float]]] = {name: [] for name in launchers}
    try:
        for _ in range(rounds):
            for name in launchers:
                pairs[name].append((trial_cpu(1, name), trial_cpu(3, name)))
    finally:
        for event in protocol.read_log(server_log):
            if event["event"] == "serving":
                try:
                    os.kill(event["server_pid"], signal.SIGTERM)
                except ProcessLookupError:
                    pass
    events = protocol.read_log(server_log)
    prepared = [e["cpu_s"] for e in events if e["event"] == "prepared"]
    once = [e["warm_up_cpu_s"] + float(np.median(prepared or [0.0])) for e in events if e["event"] == "serving"]
    out = {}
    for name, measured in pairs.items():
        overheads = [(3 * one - three) / 2 for one, three in measured]
        out[name] = {"overhead_s": round(float(np.median(overheads)), 3),
                     "once_s": round(once[0], 3) if name == "warm" else 0.0,
                     "rounds": rounds, "architecture": cheapest,
                     "cpu_s_1_and_3_epochs": [[round(a, 3), round(b, 3)] for a, b in measured]}
    return out


def overhead_arg(text: str) -> str | float:
    """``--trial-overhead-s``: the word ``measure`` or non-negative seconds."""
    if text == "measure":
        return text
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected 'measure' or seconds >= 0, got {text!r}")
    return value


def fmt(v: Any, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def print_table(rows: Sequence[Mapping[str, Any]], charges: Mapping[str, LaunchCharge]) -> None:
    cols = ["variant", "seed", "plain_trials", "plain_cpu_s", "plain_hv", "trials", "full", "stopped",
            "hv_at_half_cpu", "hv_at_equal_cpu", "cpu_share_to_plain_hv", *(f"cpu_share_{n}" for n in charges)]
    heads = {"plain_trials": "p_trials", "plain_cpu_s": "p_cpu_s", "hv_at_half_cpu": "hv@half",
             "hv_at_equal_cpu": "hv@equal", "cpu_share_to_plain_hv": "share",
             **{f"cpu_share_{n}": f"{n}+{c.label()}" for n, c in charges.items()}}
    widths = [max(len(heads.get(c, c)), 8) for c in cols]
    widths[0] = 34
    print("  ".join(f"{heads.get(c, c):>{w}}" for c, w in zip(cols, widths)))
    for row in rows:
        print("  ".join(f"{fmt(row[c], 1 if c.endswith('cpu_s') else 3):>{w}}" for c, w in zip(cols, widths)))


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="search seeds 0..N-1")
    parser.add_argument("--trials", type=int, default=30, help="trials of each plain run")
    parser.add_argument("--epochs", type=int, default=9, help="full training budget per trial")
    parser.add_argument("--dataset", default="breastmnist", choices=["breastmnist", "pneumoniamnist"])
    parser.add_argument("--preset", default="conv_net")
    parser.add_argument("--train-subset", type=int, default=None, help="train on this many images (default all)")
    parser.add_argument("--min-epochs", default="1,3",
                        help="comma list: one MO-ASHA variant per lowest rung (all are reported)")
    parser.add_argument("--reduction-factor", type=float, default=3.0)
    parser.add_argument("--rung-metric", default="accuracy,train_loss,val_loss",
                        help=f"comma list of signals a rung ranks by ({', '.join(SIGNALS)}), each a variant")
    parser.add_argument("--ties", default="keep",
                        help="comma list of MO-ASHA tie rules (strategies.multi_fidelity.TIES), each a variant")
    parser.add_argument("--trial-overhead-s", type=overhead_arg, default="measure",
                        help="per-trial CPU outside the epochs, for the share+ column: 'measure' (default: "
                             "a real nnictl trial process on this machine, about a minute) or seconds")
    parser.add_argument("--data-root", default=str(DEFAULT_DATA))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--json", default=None, help="write one row per variant and seed here")
    parser.add_argument("--from-runs", default=None, help="re-summarise a saved runs.json instead of running")
    args = parser.parse_args()
    if args.from_runs:
        adopt_saved_settings(args)

    _worker_init()
    data_root = Path(args.data_root).resolve()
    if not (data_root / f"{args.dataset}.npz").is_file():
        raise SystemExit(f"{args.dataset}.npz not found in {data_root}; pass --data-root")
    training = {**TRAINING, "epochs": args.epochs, "train_subset": args.train_subset}
    setup = dataset_setup(args.dataset, data_root, training, args.preset)
    setup["cache_file"] = str(CACHE / (f"multi_fidelity_{args.dataset}_{args.preset}_e{args.epochs}"
                                       f"_sub{args.train_subset or 'all'}_seed{TRAIN_SEED}.json"))
    min_epochs = [int(m) for m in args.min_epochs.split(",") if m.strip()]
    unknown = [m for m in args.rung_metric.split(",") if m not in SIGNALS]
    if unknown:
        raise SystemExit(f"--rung-metric: {', '.join(unknown)} is not a signal the benchmark records; "
                         f"use {', '.join(SIGNALS)}")
    reference = reference_for(setup)
    print(f"multi_fidelity: {args.dataset} / {args.preset} ({setup['space_size']:,} label combinations), "
          f"{args.train_subset or 'all'} of {setup['train_size']} train / {setup['val_size']} val images, "
          f"{args.epochs} epochs per full trial, "
          f"training seed {TRAIN_SEED}, 1 thread; {args.seeds} seeds; plain: {args.trials} trials; MO-ASHA: "
          f"eta {args.reduction_factor:g}, lowest rung(s) {min_epochs}, until the plain run's CPU is used")
    print(f"HV: {reference.describe()} (fully trained trials only); CPU = measured training+validation CPU "
          f"of the epochs each trial ran")
    sys.stdout.flush()
    overhead = None
    if args.trial_overhead_s == "measure":
        overhead = measure_trial_overhead(setup)
        charges = {name: LaunchCharge(m["overhead_s"], m["once_s"]) for name, m in overhead.items()}
        print("CPU outside the epochs (a real nnictl trial of the cheapest architecture, 1 vs 3 epochs, "
              f"{overhead['cold']['rounds']} alternating rounds): cold trials {charges['cold'].per_trial_s:.2f} s "
              f"per trial; warm trials {charges['warm'].per_trial_s:.2f} s per trial + "
              f"{charges['warm'].once_s:.2f} s once (the server's start-up and reading the config)", flush=True)
    else:
        charges = {"cold": LaunchCharge(args.trial_overhead_s)}

    if args.from_runs:
        results, wall = json.loads(Path(args.from_runs).read_text()), 0.0
        print(f"re-summarising {len(results)} saved runs from {args.from_runs} (no training)")
    else:
        results, wall = run_all(args, setup, min_epochs)
    summarise_and_write(args, setup, results, wall, charges, overhead)
    return 0


#: The settings a re-summary takes from the saved run: its HV reference and rungs depend on them.
SAVED_SETTINGS = ("dataset", "preset", "epochs", "train_subset", "min_epochs", "reduction_factor", "ties", "trials",
                  "rung_metric")


def adopt_saved_settings(args: argparse.Namespace) -> None:
    """``--from-runs RUNS``: take the dataset, space and budget from the ``run.json`` beside it, so a
    re-summary scores the runs against their own dataset's reference, not the command line's defaults."""
    record = Path(args.from_runs).with_name("run.json")
    if not record.is_file():
        print(f"no {record.name} beside {args.from_runs}: re-summarising with the command line's settings")
        return
    config = json.loads(record.read_text())["config"]
    for key in SAVED_SETTINGS:
        if key in config:
            setattr(args, key, config[key])
    if isinstance(config.get("seeds"), list):
        args.seeds = len(config["seeds"])
    print("re-summarising with the saved run's settings: "
          + ", ".join(f"{key} {getattr(args, key)}" for key in SAVED_SETTINGS))


def run_all(args: argparse.Namespace, setup: Mapping[str, Any], min_epochs: Sequence[int]) -> tuple[list, float]:
    """Plain runs first (their CPU is the MO-ASHA runs' budget), then every MO-ASHA variant."""
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    context = multiprocessing.get_context("spawn")  # torch is imported here already: don't fork it
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=context, initializer=_worker_init) as pool:
        plain_jobs = [pool.submit(run_search, setup, s, args.trials, None, None, args.reduction_factor)
                      for s in range(args.seeds)]
        for job in plain_jobs:
            results.append(job.result())
            r = results[-1]
            print(f"  plain seed {r['seed']}: {len(r['rows'])} trials, {r['rows'][-1]['cum_cpu_s']:.0f} CPU s charged, "
                  f"{r['trained_epochs']} epochs trained now, {r['seconds']:.0f} s", flush=True)
        budgets = {r["seed"]: r["rows"][-1]["cum_cpu_s"] for r in results}
        asha_jobs = [pool.submit(run_search, setup, s, args.trials, m, budgets[s], args.reduction_factor, ties, metric)
                     for metric in args.rung_metric.split(",") for ties in args.ties.split(",")
                     for m in min_epochs for s in range(args.seeds)]
        for job in asha_jobs:
            results.append(job.result())
            r = results[-1]
            print(f"  {r['variant']} seed {r['seed']}: {len(r['rows'])} trials "
                  f"({sum(x['status'] == 'EARLY_STOPPED' for x in r['rows'])} stopped), "
                  f"{r['trained_epochs']} epochs trained now, {r['seconds']:.0f} s", flush=True)
    return results, time.perf_counter() - started


def summarise_and_write(args: argparse.Namespace, setup: Mapping[str, Any], results: Sequence[Mapping[str, Any]],
                        wall: float, charges: Mapping[str, LaunchCharge],
                        overhead: Mapping[str, Any] | None = None) -> None:
    reference = reference_for(setup)
    rows = summarise(setup, results, charges)
    n_done, front = known_front_size(results, reference)
    print(f"\n== {args.dataset}: share = CPU an MO-ASHA run needed to reach the plain run's final HV / the plain "
          f"run's CPU (same seed; '-' = not reached within the plain run's CPU, counted as never in the median; seeds whose "
          f"plain HV is 0 set no target and are left out); target: median <= 0.5")
    print(f"   known front: {front} points among {n_done} fully trained architectures of all runs")
    print_table(rows, charges)
    medians = {}
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant and r["informative"]]
        if not mine:
            print(f"{variant}: no plain run found any volume: nothing to compare")
            continue
        medians[variant] = {"share": median_share([r["cpu_share_to_plain_hv"] for r in mine]),
                            **{f"share_{n}": median_share([r[f"cpu_share_{n}"] for r in mine]) for n in charges},
                            "hv_at_equal_cpu": float(np.median([r["hv_at_equal_cpu"] for r in mine])),
                            "plain_hv": float(np.median([r["plain_hv"] for r in mine])),
                            "reached": sum(r["cpu_share_to_plain_hv"] is not None for r in mine)}
        m = medians[variant]
        met = m["share"] is not None and m["share"] <= 0.5
        print(f"{variant}: median share {fmt(m['share'])} (target <= 0.5: {'met' if met else 'NOT met'}; "
              f"{m['reached']}/{len(mine)} informative runs reached the plain HV); counting the "
              f"{'measured' if overhead else 'assumed'} CPU outside the epochs: "
              + ", ".join(f"{n} trials {fmt(m[f'share_{n}'])}" for n in charges)
              + f"; median HV at equal CPU {m['hv_at_equal_cpu']:.4f} vs plain "
              f"{m['plain_hv']:.4f}")
    fidelity = fidelity_correlation(setup["cache_file"], args.epochs)
    print(f"rung fidelity: Spearman of each epoch-r signal (losses negated) with epoch-{args.epochs} accuracy, over "
          f"the {fidelity['architectures']} fully trained architectures cached:")
    for name, by_epoch in fidelity["spearman_with_final"].items() or [("(none)", {})]:
        print(f"  {name:>10}: " + (", ".join(f"r={r}: {v:.3f}" for r, v in by_epoch.items()) or "too few"))
    print(f"\nwall time {wall / 60:.1f} min" if not args.from_runs else f"\nre-summarised {args.from_runs}")

    from nni_hwnas.experiment.runinfo import run_record

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = run_record(TRAIN_SEED, {**vars(args), "seeds": list(range(args.seeds)), "ours": OUR_ARGS},
                        setup=setup, reference=reference.as_dict(), rows=rows, medians=medians, fidelity=fidelity,
                        known_front=front, fully_trained=n_done, wall_seconds=wall, trial_overhead=overhead,
                        note="seed field: the training seed; search seeds are config.seeds")
    (out / "run.json").write_text(json.dumps(record, indent=1, default=str))
    (out / "runs.json").write_text(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
        print(f"wrote {args.json}")
    print(f"results in {out}")


if __name__ == "__main__":
    sys.exit(main())
