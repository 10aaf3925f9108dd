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
import os
import random
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nni_hwnas.budgets import Budgets
from nni_hwnas.experiment.config import RunConfig
from nni_hwnas.errors import UserError
from nni_hwnas.experiment import manager_guard, run_settings
from nni_hwnas.experiment.background import BackgroundLoop
from nni_hwnas.experiment.nni_rest import NniRestClient
from nni_hwnas.experiment.output_dir import check_output_dir
from nni_hwnas.nni_compat.rest import TERMINAL_STATUSES
from nni_hwnas.reporting.hypervolume_trace import default_reference
from nni_hwnas.dashboard.export import write_results_with_dashboard
from nni_hwnas.reporting.results import trial_rows, write_json
from nni_hwnas.experiment.runinfo import run_record
from nni_hwnas.experiment.trial_args import (resolve_space, run_budgets, trial_dataset_args, trial_hardware_args,
                                              trial_objective_args, trial_training_args)

_log = logging.getLogger("nni_hwnas")


def check_port_free(port: int, working_directory: Path | None = None) -> None:
    """NNI's manager listens on all interfaces; fail early, in one line, if ``port`` is taken
    (naming the experiment whose manager holds it, when one does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            holder = manager_guard.port_holder_hint(port, working_directory or Path("~/nni-experiments"))
            raise UserError(f"port {port} is already in use{holder}; choose another with --port "
                            f"(or `experiment.port` in the config)") from None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    budgets: Budgets = field(default_factory=Budgets)  # the run's one budgets object (trial_args.run_budgets)


def prepare(config: RunConfig) -> PreparedSearch:
    """Load the data once (missing files fail here, not in every trial) and validate the space."""
    from search_spaces import make_definition

    from nni_hwnas.data.datasets import load_dataset
    from nni_hwnas.evaluation.training import check_precision
    from nni_hwnas.experiment.strategy_registry import check_our_args, strategy_names

    if config.strategy.name not in strategy_names():
        from nni_hwnas.errors import unknown

        raise unknown("strategy", config.strategy.name, strategy_names())
    check_our_args(config.strategy.name, config.strategy.args)
    space_name, choices = resolve_space(config)
    trial_objective_args(config)
    multi_fidelity_rule(config)
    check_precision(config.evaluator.precision)
    if config.evaluator.kind == "tabular":
        return prepare_tabular(config, space_name, choices)
    data = load_dataset(seed=config.seed, **{**trial_dataset_args(config), "download": config.dataset.download})
    definition = make_definition(space_name, choices, data.input_shape, data.num_classes)
    training_service(config)  # a bad machine list fails before any profiling
    device, predictor = prepare_hardware(config, definition)
    budgets = run_budgets(config, device)
    if device is not None:  # one object: the device the driver checks with carries the run's budgets
        device = dataclasses.replace(device, budgets=budgets)
    return PreparedSearch(config, space_name, {k: list(v) for k, v in definition.choices.items()},
                          definition, tuple(data.input_shape), data.num_classes, data.source, device, predictor,
                          data.describe(), budgets)


def prepare_tabular(config: RunConfig, space_name: str, choices: dict) -> PreparedSearch:
    """A tabular search reads a benchmark's table: no data to load, no device profile."""
    from search_spaces import make_definition

    from nni_hwnas.evaluation.tabular import tabular_info

    if space_name != "nb201":
        raise UserError(f"config: `evaluator.kind: tabular` (benchmark {config.evaluator.benchmark}) needs "
                        f"`space.name: nb201`, got {space_name!r}")
    if config.hardware.profile:
        raise UserError("config: `evaluator.kind: tabular` takes its costs from the benchmark's table; "
                        "remove `hardware.profile`")
    info = tabular_info(config.evaluator.benchmark, config.dataset.name)
    definition = make_definition(space_name, choices, info.input_shape, info.num_classes)
    return PreparedSearch(config, space_name, {k: list(v) for k, v in definition.choices.items()},
                          definition, info.input_shape, info.num_classes, info.source, budgets=run_budgets(config))


def prepare_hardware(config: RunConfig, definition: Any) -> tuple[Any, Any]:
    """Load the device profile and its predictor, and refuse budgets nothing in the space meets."""
    if not config.hardware.profile:
        if config.hardware.budgets:
            raise UserError("config: `hardware.budgets` needs `hardware.profile` (e.g. host-cpu-1t or mcu-cortex-m7)")
        return None, None
    from nni_hwnas.evaluation.cost_trial import check_budgets_reachable
    from nni_hwnas.hardware.costs import load_predictor
    from nni_hwnas.hardware.profiles import load_profile

    device = load_profile(config.hardware.profile).with_budgets(config.hardware.budgets or None)
    table = None
    if device.measures_latency:
        from nni_hwnas.hardware.table_cache import table_for_search

        table = table_for_search(device, definition, config.hardware.table, config.hardware.on_first_use, seed=config.seed)
    predictor = load_predictor(device, definition, table)
    if predictor is not None:
        predictor.check_coverage()
    check_budgets_reachable(definition, device, predictor)
    return device, predictor


def training_service(config: RunConfig) -> tuple[Any, str | None]:
    """NNI's training-service config for ``training_service:`` (None for local) and the manager IP."""
    from nni_hwnas.experiment.training_service import nni_training_service

    ts = config.training_service
    base = Path(config.source).parent if config.source else None
    return nni_training_service(ts.platform, ts.machines, ts.nni_manager_ip, base)


def searched_table(prepared: PreparedSearch) -> str | None:
    """The latency table the driver checked the search against (None without a predictor)."""
    table = prepared.predictor.table if prepared.predictor is not None else None
    return str(table.path) if table is not None and table.path is not None else None


def multi_fidelity_rule(config: RunConfig) -> Any:
    """The MO-ASHA rule of ``multi_fidelity`` (None when off), checked against the evaluator."""
    mf = config.multi_fidelity
    if not mf.enabled:
        return None
    if config.evaluator.kind != "train":
        raise UserError("config: `multi_fidelity` stops training early; it needs `evaluator.kind: train`")
    from strategies.nni_multi_fidelity import make_mo_asha

    return make_mo_asha(mf.rungs, config.evaluator.epochs, mf.min_epochs, mf.reduction_factor, mf.score_metric,
                        mf.cost_metric)


#: The MO-ASHA stopper's state in NNI's experiment folder: what ``--resume`` continues from.
MO_ASHA_STATE = "mo_asha_state.json"


def early_stopper(config: RunConfig, client: NniRestClient, exp_dir: Path | None = None) -> Any:
    """A context that runs MO-ASHA over the experiment's trials (a no-op context when off); its
    state lives in ``exp_dir`` (read back on resume)."""
    import contextlib

    rule = multi_fidelity_rule(config)
    if rule is None:
        return contextlib.nullcontext()
    from strategies.nni_multi_fidelity import RestEarlyStopper

    state = None if exp_dir is None else exp_dir / MO_ASHA_STATE
    return RestEarlyStopper(rule, client, config.multi_fidelity.poll_interval_s, state_path=state)


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
                                   threads=ev.threads, hardware=trial_hardware_args(cfg, searched_table(prepared), prepared.budgets))
    if ev.kind == "tabular":
        from nni_hwnas.evaluation.tabular import report_tabular

        return FunctionalEvaluator(report_tabular, dataset=cfg.dataset.name, seed=cfg.seed,
                                   objective=trial_objective_args(cfg))
    if ev.kind == "cost":
        from nni_hwnas.evaluation.cost_trial import report_costs

        if not cfg.hardware.profile:
            raise UserError("config: `evaluator.kind: cost` needs `hardware.profile` (e.g. host-cpu-1t)")
        return FunctionalEvaluator(report_costs, profile=cfg.hardware.profile, table=searched_table(prepared),
                                   budgets=prepared.budgets.as_mapping(), default_metric=ev.cost_metric)
    from nni_hwnas.evaluation.trial import train_and_report

    return FunctionalEvaluator(train_and_report, dataset=trial_dataset_args(cfg), training=trial_training_args(cfg),
                               seed=cfg.seed, threads=ev.threads, latency_repeats=ev.latency_repeats,
                               objective=trial_objective_args(cfg), hardware=trial_hardware_args(cfg, searched_table(prepared), prepared.budgets))


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
                                        hardware=trial_hardware_args(cfg, searched_table(prepared), prepared.budgets))
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


class ProgressMonitor(BackgroundLoop):
    """A tqdm bar fed from the REST API in a background thread: finished trials, best score."""

    def __init__(self, client: NniRestClient, total: int, interval_s: float = 2.0) -> None:
        super().__init__("progress")
        self.client, self.total, self.interval_s = client, total, interval_s

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
                    done = [v for v in views if v.status in TERMINAL_STATUSES]
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
        if all(v.status in TERMINAL_STATUSES for v in views):
            return
        time.sleep(1.0)


def hardware_record(prepared: PreparedSearch) -> dict[str, Any]:
    """What the run's costs were computed for: the profile, its budgets, the table's origin."""
    if prepared.device is None:
        return {"profile": None, "latency": "measured on this host at batch 1", "budgets": prepared.budgets.limits()}
    record: dict[str, Any] = {"profile": prepared.device.name, "kind": prepared.device.kind,
                              "threads": prepared.device.threads, "batch_size": prepared.device.batch_size,
                              "budgets": prepared.budgets.limits()}
    if prepared.predictor is not None:
        header = prepared.predictor.table.header
        record["latency_table"] = str(prepared.predictor.table.path)
        record["table_measured_on"] = getattr(header, "machine", None)
        record["table_torch"] = getattr(header, "torch_version", None)
    return record


def result_objectives(config: RunConfig) -> tuple[str, ...]:
    """(score, cost[, second cost]) of the results' Pareto front: accuracy (or the proxy score),
    the cost metric (ours: their ``cost_metric``), and ``hw_evolution``'s second cost when it is an
    objective (a 3-D front)."""
    cost = config.evaluator.cost_metric if config.evaluator.kind == "cost" else "latency_ms"
    score = "accuracy" if config.evaluator.kind in ("train", "tabular") else "default"
    if config.strategy.name in ("hw_evolution", "cmaes"):
        args = config.strategy.args or {}
        cost = str(args.get("cost_metric", cost))
        if "second_cost" in (args.get("objectives") or ()):
            return score, cost, str(args.get("second_cost_metric", "params"))
    return score, cost


def build_experiment(prepared: PreparedSearch, resume: str | None = None) -> tuple[Any, Any]:
    """The NNI experiment (new, or ``resume`` of an earlier id) and its strategy."""
    from search_spaces import make_model_space
    from nni_hwnas.nni_compat.resume import ResumableNasExperiment, prepare_resume, use_json_checkpoints

    from nni_hwnas.experiment.strategy_registry import make_strategy

    config = prepared.config
    space = make_model_space(prepared.space_name, prepared.choices, prepared.input_shape, prepared.num_classes)
    cost_metric = result_objectives(config)[1]
    screen = prepared.predictor.predict if prepared.predictor is not None and cost_metric == "latency_ms" else None
    strategy = make_strategy(config.strategy.name, config.strategy.args, config.seed, definition=prepared.definition,
                             screen=screen, budgets=prepared.budgets)
    evaluator = make_evaluator(prepared)
    use_json_checkpoints()  # torch >= 2.6 can't reload NNI's torch-pickled checkpoints (docs/nni-quirks.md)
    if resume:
        experiment = prepare_resume(resume, space, evaluator, strategy,
                                    working_directory=config.experiment.working_directory,
                                    max_trials=config.experiment.max_trials,
                                    concurrency=config.experiment.concurrency)
        use_training_service(experiment.config, config)
        use_inheritance(evaluator, config, resume)
        return experiment, strategy
    experiment = ResumableNasExperiment(space, evaluator, strategy)
    use_inheritance(evaluator, config, experiment.id)
    exp_cfg = experiment.config
    use_training_service(exp_cfg, config)
    exp_cfg.experiment_name = config.name
    exp_cfg.max_trial_number = config.experiment.max_trials
    exp_cfg.trial_concurrency = config.experiment.concurrency
    if config.experiment.max_duration:
        exp_cfg.max_experiment_duration = config.experiment.max_duration
    if config.experiment.working_directory:
        exp_cfg.experiment_working_directory = config.experiment.working_directory
    return experiment, strategy


def use_inheritance(evaluator: Any, config: RunConfig, experiment_id: str) -> None:
    """With ``evaluator.inherit_weights``, trials save and read weights in the experiment's folder
    (``<working directory>/<id>/weights``: a resumed run finds its parents again); the strategy
    adds each child's and parent's id per model (:func:`~nni_hwnas.evaluation.inheritance.with_lineage`)."""
    if config.evaluator.inherit_weights:
        evaluator.arguments["inherit"] = {"dir": str(working_directory(config) / experiment_id / "weights")}


def working_directory(config: RunConfig) -> Path:
    """NNI's working directory for this config (NNI's own default when unset)."""
    return Path(config.experiment.working_directory or "~/nni-experiments").expanduser()


def check_before_start(prepared: PreparedSearch, *, output: str | Path | None, resume: str | None,
                       overwrite: bool, allow_changes: bool, echo: Callable[[str], None]) -> dict[str, Any]:
    """Every refusal that must come before NNI starts: a running resumed experiment, a changed
    config, an existing results directory. Returns what a trial means under this config."""
    config = prepared.config
    workdir = working_directory(config)
    meaning = run_settings.trial_meaning(config.to_dict(), prepared.space_name, prepared.choices)
    if resume:
        manager_guard.ensure_not_running(resume, workdir)
        changed = run_settings.check_resume(workdir / resume, meaning, allow_changes)
        if changed:
            echo(f"nni-hwnas: resuming with changed settings ({', '.join(changed)}); trials are labelled by "
                 "`settings` and the front uses the new settings' trials only")
    target = output or config.output or (Path("results") / resume if resume else None)
    if target is not None:
        check_output_dir(Path(target), overwrite=overwrite, same_experiment=resume)
    for orphan in manager_guard.find_orphans(workdir):
        echo(f"nni-hwnas: warning: {manager_guard.orphan_line(orphan)}")
    return meaning


def use_training_service(exp_cfg: Any, config: RunConfig) -> None:
    """Point the NNI experiment at the remote machines of ``training_service:`` (local: unchanged)."""
    service, manager_ip = training_service(config)
    if service is not None:
        exp_cfg.training_service = service
        exp_cfg.nni_manager_ip = manager_ip


def run_search(config: RunConfig, *, port: int | None = None, output: str | Path | None = None,
               keep_ui: bool = False, resume: str | None = None, echo: Callable[[str], None] = print,
               overwrite: bool = False, allow_changes: bool = False,
               dashboard: bool = True, dashboard_port: int | None = None, dashboard_host: str = "127.0.0.1") -> Path:
    """Run one search end to end (or continue experiment ``resume``) and return the results directory.

    Raises ``KeyboardInterrupt`` after writing the finished trials' results when interrupted
    (the CLI exits 130), and :class:`UserError` for every refusal before NNI starts.
    """
    prepared = prepare(config)
    port = int(port if port is not None else config.experiment.port)
    meaning = check_before_start(prepared, output=output, resume=resume, overwrite=overwrite,
                                 allow_changes=allow_changes, echo=echo)
    if dashboard and dashboard_port is not None:
        from nni_hwnas.dashboard.server import check_port_free as check_dashboard_port

        check_dashboard_port(dashboard_host, dashboard_port, "--dashboard-port")  # before NNI starts
    board = {"port": dashboard_port, "host": dashboard_host} if dashboard else None
    with manager_guard.claim_port(port):
        check_port_free(port, working_directory(config))
        seed_everything(config.seed)
        experiment, strategy = build_experiment(prepared, resume)
        out_dir, interrupted = _drive(experiment, strategy, prepared, port=port, output=output, keep_ui=keep_ui,
                                      resume=resume, meaning=meaning, echo=echo, dashboard=board)
    if interrupted:
        raise KeyboardInterrupt
    return out_dir


def _drive(experiment: Any, strategy: Any, prepared: PreparedSearch, *, port: int, output: str | Path | None,
           keep_ui: bool, resume: str | None, meaning: dict[str, Any], echo: Callable[[str], None],
           dashboard: dict[str, Any] | None = None) -> tuple[Path, bool]:
    """Start the experiment (and the dashboard: ``{port, host}``), wait for its trials, write the
    results; always stop both."""
    from nni_hwnas.experiment.experiment_store import read_experiment
    from nni_hwnas.nni_compat.resume import wait_for_completion

    config = prepared.config
    exp_cfg = experiment.config
    exp_dir = Path(exp_cfg.experiment_working_directory).expanduser() / experiment.id
    trials_before = [v.trial_id for v in read_experiment(exp_dir)[0]] if resume else []
    settings: dict[str, int] = {}

    def on_manager_started(exp: Any) -> None:
        """Runs once our manager is up, before the strategy: the records a later command reads."""
        proc = getattr(exp, "_proc", None)
        manager_guard.DriverRecord(exp.id, os.getpid(), proc.pid if proc is not None else None, port,
                                   time.time()).write(exp_dir)
        settings["number"] = run_settings.record_run(exp_dir, meaning, trials_before)

    experiment.on_manager_started = on_manager_started
    # Written before NNI starts too (manager pid unknown yet): a driver killed while the manager
    # comes up still leaves a record that `stop` and the orphan check can use (by port and id).
    manager_guard.DriverRecord(experiment.id, os.getpid(), None, port, time.time()).write(exp_dir)
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
    stopper = early_stopper(config, client, exp_dir)
    board = None
    if dashboard is not None:
        from nni_hwnas.dashboard.cli import search_dashboard
        from nni_hwnas.dashboard.server import bind_note

        board = search_dashboard(port, f"{experiment.id} ({config.strategy.name})", objectives,
                                 prepared.budgets,
                                 port=dashboard["port"], host=dashboard["host"])
        echo(f"nni-hwnas: dashboard at {board.url} ({bind_note(dashboard['host'])})")
    try:
        try:
            with ProgressMonitor(client, config.experiment.max_trials), stopper:
                experiment.start(port)
                wait_for_completion(experiment)
                wait_until_finished(client)
        except KeyboardInterrupt:
            interrupted = True
            echo("nni-hwnas: interrupted; writing the results of finished trials")
        rows = trial_rows(client.trials())
        run_settings.label_rows(rows, exp_dir)
        info = run_record(config.seed, config.to_dict(), experiment_id=experiment.id, port=port,
                          resumed=bool(resume), space=prepared.space_name, space_choices=prepared.choices,
                          input_shape=list(prepared.input_shape), num_classes=prepared.num_classes,
                          dataset_source=prepared.dataset_source, dataset_summary=prepared.dataset_summary,
                          hardware=hardware_record(prepared),
                          experiment_directory=str(exp_dir), settings=settings.get("number"),
                          wall_seconds=time.time() - started, interrupted=interrupted)
        current = [r for r in rows if r["settings"] == settings.get("number", 0)]
        reference = default_reference([current], objectives[0], objectives[1], prepared.budgets)
        paths = write_results_with_dashboard(out_dir, rows, info, objectives=objectives, reference=reference,
                                             budgets=prepared.budgets,
                              title=f"{config.strategy.name} on {config.dataset.name} ({prepared.space_name})",
                              current_settings=settings.get("number", 0))
        if config.evaluator.kind == "proxy" and config.evaluator.then_train_top_k and not interrupted:
            front = json.loads((out_dir / "pareto.json").read_text())["front"]
            write_json(out_dir / "proxy_then_train.json", {"proxy": config.evaluator.proxy,
                                                           "trained": train_top_of_front(prepared, front, echo)})
        if hasattr(stopper, "summary"):
            stopper.settle({r["trial_id"]: r["status"] for r in rows})
            write_json(out_dir / "multi_fidelity.json", stopper.summary())
            echo(f"nni-hwnas: MO-ASHA stopped {len(stopper.killed)} trial(s) early (rungs {stopper.rule.rungs})"
                 + (" in all, continuing its saved rungs" if stopper.resumed else "")
                 + (f"; {len(stopper.too_late)} more had finished before their stop arrived" if stopper.too_late else ""))
            unjudged = stopper.rule.missing_objective_message()
            if unjudged:
                echo(f"nni-hwnas: {unjudged}")
        if hasattr(strategy, "core"):
            write_json(out_dir / "strategy_history.json", {"history": strategy.core.history,
                                                           "pareto": strategy.export_pareto()})
        n_ok = sum(r["status"] == "SUCCEEDED" for r in rows)
        echo(f"nni-hwnas: {n_ok}/{len(rows)} trials succeeded; results in {out_dir} "
             f"({', '.join(p.name for p in paths.values())})")
        if keep_ui and not interrupted:
            echo(f"nni-hwnas: web UI stays up at http://127.0.0.1:{port}"
                 + (f" and the dashboard at {board.url}" if board is not None else "") + "; press Ctrl-C to stop")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    finally:
        if board is not None:
            board.stop()
        experiment.stop()
    return out_dir, interrupted
