"""Launch a search through NNI's experiment manager and turn it into a results directory.

The flow: validate everything that can be checked before NNI starts (config, data files, space,
strategy, port), start a ``NasExperiment`` on the local training service (the web UI comes with
it), show progress from the REST API, then read every trial back through the same REST API the
web UI uses and write the results. Ctrl-C keeps what finished: results are written, then the
experiment stops.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nni_hwnas.experiment.config import RunConfig
from nni_hwnas.errors import UserError
from nni_hwnas.experiment.nni_rest import NniRestClient
from nni_hwnas.reporting.hypervolume_trace import default_reference
from nni_hwnas.reporting.results import trial_rows, write_json, write_results
from nni_hwnas.experiment.runinfo import run_record

TERMINAL = {"SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED"}
_log = logging.getLogger("nni_hwnas")


def check_port_free(port: int) -> None:
    """NNI's manager listens on all interfaces; fail early, in one line, if ``port`` is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            raise UserError(f"port {port} is already in use; choose another with --port "
                            f"(or `experiment.port` in the config)") from None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def resolve_space(config: RunConfig) -> tuple[str, dict]:
    """Space name and choices from ``space.name`` / ``space.preset`` / ``space.choices``."""
    from search_spaces import load_preset

    name, choices = config.space.name, {}
    if config.space.preset is not None:
        preset_space, choices = load_preset(config.space.preset)
        if name is not None and name != preset_space:
            raise UserError(f"config: space.name is {name!r} but preset {config.space.preset!r} "
                            f"is for {preset_space!r}; drop one of them")
        name = preset_space
    choices = {**choices, **(config.space.choices or {})}
    return str(name), choices


@dataclass
class PreparedSearch:
    """Everything built and validated before NNI starts."""

    config: RunConfig
    space_name: str
    choices: dict
    definition: Any
    input_shape: tuple[int, int, int]
    num_classes: int
    dataset_source: str
    device: Any = None  # DeviceProfile with the experiment's budgets, or None (measure here)
    predictor: Any = None  # LatencyPredictor for the space on the device, or None
    dataset_summary: str = ""  # what was found and applied (channels, size, classes, normalisation, augment)

    def budget_for(self, metric: str) -> float | None:
        return None if self.device is None else self.device.budgets.limits().get(metric)


def prepare(config: RunConfig) -> PreparedSearch:
    """Load the data once (missing files fail here, not in every trial) and validate the space."""
    from search_spaces import make_definition

    from nni_hwnas.data.datasets import load_dataset
    from nni_hwnas.evaluation.training import check_precision
    from nni_hwnas.experiment.strategy_registry import strategy_names

    if config.strategy.name not in strategy_names():
        from nni_hwnas.errors import unknown

        raise unknown("strategy", config.strategy.name, strategy_names())
    space_name, choices = resolve_space(config)
    trial_objective_args(config)
    check_precision(config.evaluator.precision)
    data = load_dataset(seed=config.seed, **{**trial_dataset_args(config), "download": config.dataset.download})
    definition = make_definition(space_name, choices, data.input_shape, data.num_classes)
    device, predictor = prepare_hardware(config, definition)
    return PreparedSearch(config, space_name, {k: list(v) for k, v in definition.choices.items()},
                          definition, tuple(data.input_shape), data.num_classes, data.source, device, predictor,
                          data.describe())


def prepare_hardware(config: RunConfig, definition: Any) -> tuple[Any, Any]:
    """Load the device profile and its predictor, and refuse budgets nothing in the space meets."""
    if not config.hardware.profile:
        if config.hardware.budgets:
            raise UserError("config: `hardware.budgets` needs `hardware.profile` (e.g. host-cpu-1t or mcu-cortex-m7)")
        return None, None
    from nni_hwnas.evaluation.cost_trial import check_budgets_reachable, load_predictor
    from nni_hwnas.hardware.profiles import load_profile

    device = load_profile(config.hardware.profile).with_budgets(config.hardware.budgets or None)
    predictor = load_predictor(device, definition, config.hardware.table)
    if predictor is not None:
        predictor.check_coverage()
    check_budgets_reachable(definition, device, predictor)
    return device, predictor


def trial_dataset_args(config: RunConfig) -> dict[str, Any]:
    """Dataset arguments a trial process loads with: the absolute folder the driver checked."""
    from nni_hwnas.data.datasets import resolve_data_root

    d = config.dataset
    return {"name": d.name, "data_root": str(resolve_data_root(d.data_root)), "download": False,
            "val_fraction": d.val_fraction, "test_fraction": d.test_fraction, "path": d.path, "keys": d.keys,
            "image_size": d.image_size, "cache": d.cache, "augment": dataclasses.asdict(d.augment) if d.augment else None}


def trial_training_args(config: RunConfig) -> dict[str, Any]:
    """:class:`~nni_hwnas.evaluation.training.TrainSettings` fields from the evaluator section."""
    ev = config.evaluator
    return {"epochs": ev.epochs, "batch_size": ev.batch_size, "learning_rate": ev.learning_rate,
            "momentum": ev.momentum, "weight_decay": ev.weight_decay, "lr_schedule": ev.lr_schedule,
            "train_subset": ev.train_subset, "augment": ev.augment, "warmup_epochs": ev.warmup_epochs,
            "grad_clip_norm": ev.grad_clip_norm, "label_smoothing": ev.label_smoothing, "precision": ev.precision,
            "weight_init": ev.weight_init}


def trial_hardware_args(config: RunConfig) -> dict[str, Any] | None:
    """The device profile a trial predicts costs on (absolute paths), or None to measure here."""
    hw = config.hardware
    if not hw.profile:
        return None
    return {"profile": hw.profile, "table": hw.table, "budgets": dict(hw.budgets or {}),
            "measure_latency": hw.measure_latency}


def trial_objective_args(config: RunConfig) -> dict[str, Any]:
    """What ``default`` means: accuracy, or the MnasNet reward with its target and exponent."""
    ev = config.evaluator
    if ev.default_metric == "mnas_reward" and ev.reward_target_ms is None:
        raise UserError("config: `evaluator.default_metric: mnas_reward` needs `evaluator.reward_target_ms` "
                        "(the latency target in ms, e.g. the profile's latency budget)")
    return {"default_metric": ev.default_metric, "reward_target_ms": ev.reward_target_ms, "reward_w": ev.reward_w}


def make_evaluator(prepared: PreparedSearch, echo: Callable[[str], None] = print) -> Any:
    """The NNI ``FunctionalEvaluator`` of ``evaluator.kind``: train, proxy or cost-only."""
    from nni.nas.evaluator import FunctionalEvaluator

    cfg = prepared.config
    ev = cfg.evaluator
    if ev.kind == "proxy":
        from nni_hwnas.evaluation.proxy_trial import score_and_report

        reference = None
        if ev.proxy == "rmi":
            from nni_hwnas.evaluation.reference import prepare_reference

            reference = prepare_reference(trial_dataset_args(cfg), definition=prepared.definition,
                                          checkpoint=ev.reference_checkpoint, seed=cfg.seed, echo=echo)
        return FunctionalEvaluator(score_and_report, dataset=trial_dataset_args(cfg), proxy=ev.proxy, seed=cfg.seed,
                                   reference=reference, batch_size=ev.proxy_batch_size, train_steps=ev.train_steps,
                                   threads=ev.threads, hardware=trial_hardware_args(cfg))
    if ev.kind == "cost":
        from nni_hwnas.evaluation.cost_trial import report_costs

        if not cfg.hardware.profile:
            raise UserError("config: `evaluator.kind: cost` needs `hardware.profile` (e.g. host-cpu-1t)")
        return FunctionalEvaluator(report_costs, profile=cfg.hardware.profile, table=cfg.hardware.table,
                                   budgets=dict(cfg.hardware.budgets or {}), default_metric=ev.cost_metric)
    from nni_hwnas.evaluation.trial import train_and_report

    return FunctionalEvaluator(train_and_report, dataset=trial_dataset_args(cfg), training=trial_training_args(cfg),
                               seed=cfg.seed, threads=ev.threads, latency_repeats=ev.latency_repeats,
                               objective=trial_objective_args(cfg), hardware=trial_hardware_args(cfg))


def train_top_of_front(prepared: PreparedSearch, front: list[dict[str, Any]], echo: Callable[[str], None]) -> list[dict]:
    """Proxy then train: train the ``then_train_top_k`` best-scoring front members for real.

    Runs in this process with the training evaluator's settings, so both scores sit side by side.
    """
    from nni_hwnas.evaluation.trial import evaluate_architecture

    cfg = prepared.config
    chosen = sorted(front, key=lambda r: -float(r.get("default", 0.0)))[: cfg.evaluator.then_train_top_k]
    trained = []
    for row in chosen:
        sample = prepared.definition.complete({k[5:]: v for k, v in row.items() if k.startswith("arch.")})
        echo(f"nni-hwnas: training front member {row['trial_id']} (proxy score {row.get('default'):.4g})")
        metrics = evaluate_architecture(prepared.definition.describe(sample), trial_dataset_args(cfg),
                                        trial_training_args(cfg), cfg.seed, cfg.evaluator.threads,
                                        cfg.evaluator.latency_repeats, definition=prepared.definition,
                                        hardware=trial_hardware_args(cfg))
        trained.append({"trial_id": row["trial_id"], "sample": sample, "proxy_score": row.get("default"),
                        "trained_accuracy": metrics["accuracy"], "latency_ms": metrics["latency_ms"],
                        "train_seconds": metrics["train_seconds"]})
    return trained


def seed_everything(seed: int) -> None:
    """Seed the driver's RNGs (strategies without a ``seed`` argument draw from these)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class ProgressMonitor:
    """A tqdm bar fed from the REST API in a background thread: finished trials, best score."""

    def __init__(self, client: NniRestClient, total: int, interval_s: float = 2.0) -> None:
        self.client, self.total, self.interval_s = client, total, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "ProgressMonitor":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        from tqdm import tqdm

        with tqdm(total=self.total, desc="trials", unit="trial", dynamic_ncols=True) as bar:
            while True:
                stopping = self._stop.wait(self.interval_s)
                try:
                    views = self.client.trials()
                except Exception:  # manager starting or stopping: try again next tick
                    views = None
                if views is not None:
                    done = [v for v in views if v.status in TERMINAL]
                    failed = sum(v.status != "SUCCEEDED" for v in done)
                    scores = [v.metrics.get("default") for v in done if isinstance(v.metrics.get("default"), (int, float))]
                    bar.n = min(len(done), self.total)
                    bar.set_postfix(best=f"{max(scores):.4f}" if scores else "-", failed=failed, refresh=False)
                    bar.refresh()
                if stopping:
                    return


def wait_until_finished(client: NniRestClient, timeout_s: float = 60.0) -> None:
    """Wait until no trial is waiting or running (after the strategy returned)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        views = client.trials()
        if all(v.status in TERMINAL for v in views):
            return
        time.sleep(1.0)


def hardware_record(prepared: PreparedSearch) -> dict[str, Any]:
    """What the run's costs were computed for: the profile, its budgets, the table's origin."""
    if prepared.device is None:
        return {"profile": None, "latency": "measured on this host at batch 1"}
    record: dict[str, Any] = {"profile": prepared.device.name, "kind": prepared.device.kind,
                              "threads": prepared.device.threads, "batch_size": prepared.device.batch_size,
                              "budgets": prepared.device.budgets.limits()}
    if prepared.predictor is not None:
        header = prepared.predictor.table.header
        record["latency_table"] = str(prepared.predictor.table.path)
        record["table_measured_on"] = getattr(header, "machine", None)
        record["table_torch"] = getattr(header, "torch_version", None)
    return record


def result_objectives(config: RunConfig) -> tuple[str, str]:
    """(score, cost) of the results' Pareto front: accuracy (or the proxy score) and the cost metric."""
    cost = config.evaluator.cost_metric if config.evaluator.kind == "cost" else "latency_ms"
    if config.strategy.name == "hw_evolution":
        cost = str((config.strategy.args or {}).get("cost_metric", cost))
    score = "accuracy" if config.evaluator.kind == "train" else "default"
    return score, cost


def build_experiment(prepared: PreparedSearch, resume: str | None = None) -> tuple[Any, Any]:
    """The NNI experiment (new, or ``resume`` of an earlier id) and its strategy."""
    from search_spaces import make_model_space
    from strategies.nni_resume import ResumableNasExperiment, prepare_resume, use_json_checkpoints

    from nni_hwnas.experiment.strategy_registry import make_strategy

    config = prepared.config
    space = make_model_space(prepared.space_name, prepared.choices, prepared.input_shape, prepared.num_classes)
    cost_metric = result_objectives(config)[1]
    screen = prepared.predictor.predict if prepared.predictor is not None and cost_metric == "latency_ms" else None
    strategy = make_strategy(config.strategy.name, config.strategy.args, config.seed, definition=prepared.definition,
                             screen=screen, budget=prepared.budget_for(cost_metric))
    evaluator = make_evaluator(prepared)
    use_json_checkpoints()  # torch >= 2.6 can't reload NNI's torch-pickled checkpoints (NNI_NOTES)
    if resume:
        experiment = prepare_resume(resume, space, evaluator, strategy,
                                    working_directory=config.experiment.working_directory,
                                    max_trials=config.experiment.max_trials,
                                    concurrency=config.experiment.concurrency)
        return experiment, strategy
    experiment = ResumableNasExperiment(space, evaluator, strategy)
    exp_cfg = experiment.config
    exp_cfg.experiment_name = config.name
    exp_cfg.max_trial_number = config.experiment.max_trials
    exp_cfg.trial_concurrency = config.experiment.concurrency
    if config.experiment.max_duration:
        exp_cfg.max_experiment_duration = config.experiment.max_duration
    if config.experiment.working_directory:
        exp_cfg.experiment_working_directory = config.experiment.working_directory
    return experiment, strategy


def run_search(config: RunConfig, *, port: int | None = None, output: str | Path | None = None,
               keep_ui: bool = False, resume: str | None = None, echo: Callable[[str], None] = print) -> Path:
    """Run one search end to end (or continue experiment ``resume``) and return the results directory."""
    prepared = prepare(config)
    port = int(port if port is not None else config.experiment.port)
    check_port_free(port)
    seed_everything(config.seed)
    experiment, strategy = build_experiment(prepared, resume)
    exp_cfg = experiment.config

    client = NniRestClient(port)
    verb = "resuming" if resume else "experiment"
    echo(f"nni-hwnas: {verb} {experiment.id}: {config.strategy.name} over {prepared.space_name} "
         f"({prepared.definition.size()} label combinations) on {config.dataset.name}, "
         f"{config.experiment.max_trials} trials, {config.experiment.concurrency} at a time")
    echo(f"nni-hwnas: {prepared.dataset_summary}")
    echo(f"nni-hwnas: web UI at http://127.0.0.1:{port} (NNI listens on all interfaces; "
         f"firewall the port on shared networks)")
    started = time.time()
    interrupted = False
    out_dir = Path(output or config.output or Path("results") / experiment.id)
    objectives = result_objectives(config)
    try:
        try:
            with ProgressMonitor(client, config.experiment.max_trials):
                experiment.start(port)
                experiment._wait_completion()  # NNI 3.0: waits for the engine's submitted models
                wait_until_finished(client)
        except KeyboardInterrupt:
            interrupted = True
            echo("nni-hwnas: interrupted; writing the results of finished trials")
        rows = trial_rows(client.trials())
        info = run_record(config.seed, config.to_dict(), experiment_id=experiment.id, port=port,
                          resumed=bool(resume), space=prepared.space_name, space_choices=prepared.choices,
                          input_shape=list(prepared.input_shape), num_classes=prepared.num_classes,
                          dataset_source=prepared.dataset_source, dataset_summary=prepared.dataset_summary,
                          hardware=hardware_record(prepared),
                          experiment_directory=str(Path(exp_cfg.experiment_working_directory).expanduser() / experiment.id),
                          wall_seconds=time.time() - started, interrupted=interrupted)
        reference = default_reference([rows], objectives[0], objectives[1], prepared.budget_for(objectives[1]))
        paths = write_results(out_dir, rows, info, objectives=objectives, reference=reference,
                              title=f"{config.strategy.name} on {config.dataset.name} ({prepared.space_name})")
        if config.evaluator.kind == "proxy" and config.evaluator.then_train_top_k and not interrupted:
            front = json.loads((out_dir / "pareto.json").read_text())["front"]
            write_json(out_dir / "proxy_then_train.json", {"proxy": config.evaluator.proxy,
                                                           "trained": train_top_of_front(prepared, front, echo)})
        if hasattr(strategy, "core"):
            write_json(out_dir / "strategy_history.json", {"history": strategy.core.history,
                                                           "pareto": strategy.export_pareto()})
        n_ok = sum(r["status"] == "SUCCEEDED" for r in rows)
        echo(f"nni-hwnas: {n_ok}/{len(rows)} trials succeeded; results in {out_dir} "
             f"({', '.join(p.name for p in paths.values())})")
        if keep_ui and not interrupted:
            echo(f"nni-hwnas: web UI stays up at http://127.0.0.1:{port}; press Ctrl-C to stop")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    finally:
        experiment.stop()
    return out_dir
