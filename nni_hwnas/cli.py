"""The ``nni-hwnas`` command line. User mistakes print one line and exit 2, never a traceback."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from nni_hwnas.errors import UserError


def _search(args: argparse.Namespace) -> int:
    from nni_hwnas.experiment.config import apply_override, load_config
    from nni_hwnas.experiment.launch import run_search

    config = load_config(args.config)
    for where, value, flag in (("seed", args.seed, "--seed"), ("experiment.max_trials", args.max_trials, "--max-trials"),
                               ("experiment.port", args.port, "--port")):
        if value is not None:
            apply_override(config, where, value, flag)  # the same checks as the YAML's
    if config.evaluator.kind == "supernet":  # in-process on one super-network (nni_hwnas.oneshot.runner)
        from nni_hwnas.oneshot.runner import run_weight_sharing

        board = None if args.no_dashboard else {"port": args.dashboard_port, "host": args.dashboard_host}
        run_weight_sharing(config, output=args.output, dashboard=board)
        return 0
    run_search(config, output=args.output, keep_ui=args.keep_ui, resume=args.resume,
               overwrite=args.overwrite, allow_changes=args.allow_changes,
               dashboard=not args.no_dashboard, dashboard_port=args.dashboard_port,
               dashboard_host=args.dashboard_host)
    return 0


def _stop(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nni_hwnas.experiment.manager_guard import stop_experiment

    dirs = [Path(d) for d in args.experiment_dir] if args.experiment_dir else [Path("~/nni-experiments")]
    print(f"nni-hwnas: {stop_experiment(args.id, dirs)}")
    return 0


def _spaces(args: argparse.Namespace) -> int:
    from search_spaces import load_preset, preset_names

    for name in preset_names():
        space, choices = load_preset(name)
        print(f"{name:20s} space={space:14s} " + " ".join(f"{k}={v}" for k, v in choices.items()))
    return 0


def _export_space(args: argparse.Namespace) -> int:
    from search_spaces import load_preset, make_definition

    from nni_hwnas.experiment.space_export import nni_search_space, write_search_space

    if args.config:
        from nni_hwnas.experiment.config import load_config
        from nni_hwnas.experiment.trial_args import resolve_space

        space, choices = resolve_space(load_config(args.config))
    elif args.preset:
        space, choices = load_preset(args.preset)
        if args.space and args.space != space:
            raise UserError(f"--space {args.space!r} does not match preset {args.preset!r} (space {space!r})")
    else:
        space, choices = args.space or "conv_net", {}
    # Labels and values do not depend on the data's shape; any valid shape describes them.
    definition = make_definition(space, choices, (1, 8, 8), 10)
    if args.output:
        path = write_search_space(definition, args.output)
        print(f"wrote {path} ({len(definition.mutable_labels())} choices, space {space})")
    else:
        import json

        print(json.dumps(nni_search_space(definition), indent=2))
    return 0


def _train(args: argparse.Namespace) -> int:
    from nni_hwnas.evaluation.retrain import retrain

    retrain(args.from_dir, args.pick, epochs=args.epochs, output=args.output, seed=args.seed, overwrite=args.overwrite)
    return 0


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nni_hwnas.reporting.report import report_command

    dirs = [Path(d) for d in args.experiment_dir] if args.experiment_dir else None
    path = report_command(args.source, args.output, dirs)
    print(f"nni-hwnas: report written to {path}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from nni_hwnas.experiment.compare import run_comparison

    run_comparison(args.config, port=args.port, output=args.output, overwrite=args.overwrite)
    return 0


def _configs(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    import experiments

    source = Path(experiments.__file__).resolve().parent
    if not args.copy:
        print(source)
        return 0
    target = Path(args.copy)
    if target.exists() and any(target.iterdir()):
        raise UserError(f"{target} exists and is not empty; choose a new folder for --copy")
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "__init__.py", "results", "cache"),
                    dirs_exist_ok=True)
    print(f"copied the bundled experiment configs to {target}")
    return 0


def _register(args: argparse.Namespace) -> int:
    from nni_hwnas.experiment.registration import register, unregister

    print(unregister() if args.command == "unregister" else register())
    return 0


def _check_nnictl(args: argparse.Namespace) -> int:
    from nni_hwnas.experiment.nnictl_check import check_nnictl_config

    for line in check_nnictl_config(args.config, args.port):
        print(f"ok: {line}")
    print(f"nni-hwnas: {args.config} is ready for `nnictl create --config {args.config}`")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nni-hwnas", description="Hardware-aware NAS on NNI 3.0")
    commands = parser.add_subparsers(dest="command", required=True)

    search = commands.add_parser("search", help="run a search through NNI's experiment manager and web UI")
    search.add_argument("--config", required=True, help="experiment YAML, e.g. experiments/quickstart.yaml")
    search.add_argument("--port", type=int, default=None, help="web UI / NNI manager port (default: config's)")
    search.add_argument("--output", default=None, help="results directory (default results/<experiment id>)")
    search.add_argument("--keep-ui", action="store_true", help="keep the web UI up after the search until Ctrl-C")
    search.add_argument("--seed", type=int, default=None, help="override the config's seed")
    search.add_argument("--max-trials", type=int, default=None,
                        help="override experiment.max_trials (with --resume: the new total, earlier trials included)")
    search.add_argument("--resume", default=None, metavar="ID",
                        help="continue experiment ID (same config) up to --max-trials without re-running trials")
    search.add_argument("--overwrite", action="store_true", help="replace the results already in --output")
    search.add_argument("--allow-changes", action="store_true",
                        help="with --resume: accept a config that changes what a trial means (epochs, budgets, data); "
                             "each trial is labelled with its settings and the front uses the new ones only")
    search.add_argument("--no-dashboard", action="store_true", help="don't start the multi-objective dashboard")
    search.add_argument("--dashboard-port", type=int, default=None, help="dashboard port (default: a free port, printed)")
    search.add_argument("--dashboard-host", default="127.0.0.1", help="dashboard bind address (default 127.0.0.1)")
    search.set_defaults(func=_search)

    stop = commands.add_parser("stop", help="stop an experiment's NNI manager, also one nnictl lost track of")
    stop.add_argument("id", help="the experiment id")
    stop.add_argument("--experiment-dir", action="append", default=None,
                      help="NNI working directory holding the experiment (default ~/nni-experiments)")
    stop.set_defaults(func=_stop)

    export = commands.add_parser("export-space", help="write a space as NNI's search-space JSON (for nnictl)")
    export.add_argument("--space", default=None, help="conv_net or medmnist_cnn")
    export.add_argument("--preset", default=None, help="a bundled preset name or a preset YAML")
    export.add_argument("--config", default=None, help="take the space from an experiment YAML instead")
    export.add_argument("--output", default=None, help="JSON file to write (default: print)")
    export.set_defaults(func=_export_space)

    train = commands.add_parser("train", help="retrain a chosen architecture from a results directory and export it")
    train.add_argument("--from", dest="from_dir", required=True, help="results directory of a search")
    train.add_argument("--pick", default="best", help="a trial id, 'best', or a budget like 'latency_ms<=0.2'")
    train.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    train.add_argument("--output", default=None, help="output folder (default RESULTS_DIR/retrain-<trial>)")
    train.add_argument("--seed", type=int, default=None, help="override the run's seed")
    train.add_argument("--overwrite", action="store_true", help="replace the files already in --output")
    train.set_defaults(func=_train)

    report = commands.add_parser("report", help="redraw the report of a results directory or an NNI experiment id")
    report.add_argument("source", help="a results directory, or the id of any NNI experiment (also nnictl ones)")
    report.add_argument("--output", default=None, help="where to write (default: the results dir, or results/<id>)")
    report.add_argument("--experiment-dir", action="append", default=None,
                        help="NNI working directory to look for experiment ids in (default ~/nni-experiments)")
    report.set_defaults(func=_report)

    compare = commands.add_parser("compare", help="run strategies with equal budgets and seeds, then report")
    compare.add_argument("--config", required=True, help="comparison YAML, e.g. experiments/compare_digits.yaml")
    compare.add_argument("--port", type=int, default=None, help="web UI port for each run (default: base config's)")
    compare.add_argument("--output", default=None, help="report folder (default results/<config name>)")
    compare.add_argument("--overwrite", action="store_true", help="replace the runs already in the report folder")
    compare.set_defaults(func=_compare)

    configs = commands.add_parser("configs", help="print (or --copy) the bundled experiment and nnictl configs")
    configs.add_argument("--copy", default=None, help="copy them into this new folder")
    configs.set_defaults(func=_configs)

    for name, text in (("register", "register our tuner with nnictl as HwEvolution (idempotent)"),
                       ("unregister", "remove the HwEvolution tuner from nnictl's registry")):
        command = commands.add_parser(name, help=text)
        command.set_defaults(func=_register)

    from nni_hwnas.cli_profile import add_profile_command

    add_profile_command(commands)

    from nni_hwnas.dashboard.cli import add_dashboard_command

    add_dashboard_command(commands)

    check = commands.add_parser("check-nnictl", help="check an nnictl config before `nnictl create` (which exits 0 on failure)")
    check.add_argument("--config", required=True, help="nnictl config, e.g. experiments/nnictl/digits.yml")
    check.add_argument("--port", type=int, default=None, help="also check this port is free")
    check.set_defaults(func=_check_nnictl)

    spaces = commands.add_parser("spaces", help="list the bundled space presets")
    spaces.set_defaults(func=_spaces)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"nni-hwnas: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("nni-hwnas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
