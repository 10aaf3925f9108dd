"""``nni-hwnas profile``: measure a device profile's latency table for a space at a data shape.

    nni-hwnas profile --profile host-cpu-1t --space conv_net                  # digits, 1x8x8, 10 classes
    nni-hwnas profile --profile host-cpu-1t --preset medmnist_cnn --dataset octmnist
    nni-hwnas profile --profile host-cpu --space conv_net --input-shape 1,28,28 --classes 2,4,10
    nni-hwnas profile --profile pi4 --ssh pi@raspberrypi.local --python /usr/bin/python3   # writes pi4.yaml

Rows already measured are kept (resume after Ctrl-C by running the same command again); the
classifier rows of several class counts come from one run with ``--classes 2,4,10``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from nni_hwnas.errors import UserError

DEFAULT_DATASET = "digits"


def dataset_shape(name: str) -> tuple[tuple[int, int, int], int]:
    """(input shape, classes) of a dataset name, without loading its files."""
    if name == "digits":
        return (1, 8, 8), 10
    if name == "cifar10":
        return (3, 32, 32), 10
    from nni_hwnas.data.datasets import _medmnist_info, dataset_names
    from nni_hwnas.errors import unknown

    info = _medmnist_info()
    if name not in info or name.endswith("3d"):
        raise unknown("dataset", name, dataset_names())
    return (int(info[name]["n_channels"]), 28, 28), len(info[name]["label"])


def _int_list(text: str, option: str, count: int | None = None) -> list[int]:
    try:
        values = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{option} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1 or (count is not None and len(values) != count):
        need = f"{count} positive integers" if count else "positive integers"
        raise UserError(f"{option} must be {need}, got {text!r}")
    return values


def _definitions(args: argparse.Namespace) -> list[Any]:
    """The space at every requested class count (conv rows are shared, classifier rows differ)."""
    from search_spaces import load_preset, make_definition

    choices: dict = {}
    space = args.space
    if args.config:
        from nni_hwnas.experiment.config import load_config
        from nni_hwnas.experiment.trial_args import resolve_space

        config = load_config(args.config)
        space, choices = resolve_space(config)
        args.dataset = args.dataset or config.dataset.name
    elif args.preset:
        space, choices = load_preset(args.preset)
        if args.space and args.space != space:
            raise UserError(f"--space {args.space!r} does not match preset {args.preset!r} (space {space!r})")
    space = space or "conv_net"
    if args.input_shape and args.dataset:
        raise UserError("give either --dataset or --input-shape, not both")
    if args.input_shape:
        shape, classes = tuple(_int_list(args.input_shape, "--input-shape", 3)), [10]
    else:
        shape, default_classes = dataset_shape(args.dataset or DEFAULT_DATASET)
        classes = [default_classes]
    if args.classes:
        classes = _int_list(args.classes, "--classes")
    base = make_definition(space, choices, shape, classes[0])
    return [dataclasses.replace(base, num_classes=n) for n in dict.fromkeys(classes)]


def run_profile(args: argparse.Namespace) -> int:
    from nni_hwnas.hardware.profiler import TimingSettings

    definitions = _definitions(args)
    settings = TimingSettings(warmup_runs=args.warmup, n_repeats=args.repeats, min_repeats=min(args.min_repeats, args.repeats),
                              max_seconds=args.max_seconds, statistic=args.statistic, n_inputs=args.inputs)
    if args.cache and args.table:
        raise UserError("give either --cache or --table, not both")
    if args.ssh is None and args.python is not None:
        raise UserError("--python names the interpreter on an SSH device; add --ssh user@host[:port]")
    from nni_hwnas.hardware.device_profiles import open_device

    with open_device(args.profile, args.ssh, args.python, args.threads, args.ssh_config, args.timeout,
                     settings) as (profile, measurer):
        if profile.latency_table is None and args.table is None:
            raise UserError(f"profile {profile.name!r} is budget-only: its costs are analytic, there is nothing to measure")
        if args.cache and profile.remote:
            raise UserError(f"--cache holds this machine's tables; profile {profile.name!r} is the SSH device "
                            f"{profile.ssh}, whose table is {profile.latency_table}")
        return _measure(args, profile, definitions, settings, measurer)


def _measure(args: argparse.Namespace, profile: Any, definitions: list[Any], settings: Any, measurer: Any) -> int:
    from nni_hwnas.hardware.latency_table import profile_command
    from nni_hwnas.hardware.profiler import open_table, profile_spaces
    from nni_hwnas.hardware.remote import DeviceLost

    if args.cache:
        from nni_hwnas.hardware.table_cache import cached_table_path

        path = cached_table_path(profile)
    else:
        path = Path(args.table) if args.table else profile.latency_table
    table = open_table(profile, path, settings, fresh=args.fresh, environment=getattr(measurer, "environment", None))
    where = measurer.where if measurer is not None else "this host"
    print(f"nni-hwnas: profiling {', '.join(d.name + '@' + 'x'.join(map(str, d.input_shape)) + '/' + str(d.num_classes) for d in definitions)} "
          f"on {profile.name} ({where}, {profile.threads} thread(s), batch {profile.batch_size}) into {path}")
    try:
        report = profile_spaces(table, profile, definitions, settings, fit_models=args.fit_models, seed=args.seed,
                                progress=not args.quiet, measurer=measurer)
    except KeyboardInterrupt:
        print(f"nni-hwnas: interrupted; {len(table)} layer rows and {len(table.models)} whole models kept in {path}; "
              "run the same command again to resume", flush=True)
        raise
    except DeviceLost as exc:
        raise DeviceLost(f"{exc}; {len(table)} layer rows and {len(table.models)} whole models are saved in {path}; "
                         "run the same command again to resume") from None
    print(f"nni-hwnas: {report.layers.measured} layers measured ({report.layers.kept} already there, "
          f"{report.layers.noisy} with IQR > 10% of the median, {report.layers.remeasured} re-measured as disturbed), "
          f"{report.models.measured} whole models measured "
          f"({report.models.kept} already there, {report.models.remeasured} re-measurements of disturbed ones) "
          f"in {report.seconds:.0f} s; table {path} has {len(table)} rows")
    for context, correction in sorted(report.corrections.items()):
        print(f"nni-hwnas: correction {context}: {correction}")
    reasons = table.stale_reasons(getattr(measurer, "environment", None), threads=profile.threads)
    if reasons:
        print(f"nni-hwnas: warning: {'; '.join(reasons)}; re-measure with {profile_command(profile.name)} --fresh")
    return 0


def add_profile_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``profile`` on the CLI's subparsers (``build_parser`` in :mod:`nni_hwnas.cli`)."""
    from nni_hwnas.hardware.profiler import TimingSettings

    defaults = TimingSettings()
    parser = subparsers.add_parser("profile", help="measure a device profile's latency table for a space")
    parser.add_argument("--profile", required=True, help="device profile name (hw_profiles/*.yaml) or YAML path")
    parser.add_argument("--space", default=None, help="conv_net (default) or medmnist_cnn")
    parser.add_argument("--preset", default=None, help="a bundled space preset or a preset YAML")
    parser.add_argument("--config", default=None, help="take space and dataset from an experiment YAML")
    parser.add_argument("--dataset", default=None, help="take input shape and classes from a dataset (default digits)")
    parser.add_argument("--input-shape", default=None, help="C,H,W instead of --dataset, e.g. 1,28,28")
    parser.add_argument("--classes", default=None, help="class count(s), e.g. 10 or 2,4,10")
    parser.add_argument("--table", default=None, help="table JSON to write (default: the profile's latency_table)")
    parser.add_argument("--ssh", default=None, metavar="USER@HOST[:PORT]",
                        help="measure on this SSH device (it needs only Python and torch); a new --profile NAME "
                             "writes NAME.yaml naming the device")
    parser.add_argument("--python", default=None, help="the device's Python (default: the profile's, else python3)")
    parser.add_argument("--threads", type=int, default=None, help="threads of a new SSH device profile (default 1)")
    parser.add_argument("--ssh-config", default=None, help="an ssh_config file for --ssh (keys, known hosts, jump hosts)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds to wait for one row from an SSH device before giving up (default: from --max-seconds)")
    parser.add_argument("--cache", action="store_true",
                        help="write this machine's cached table, the one searches profile on first use and reuse")
    parser.add_argument("--fresh", action="store_true", help="discard the existing table and measure from scratch")
    parser.add_argument("--repeats", type=int, default=defaults.n_repeats, help=f"timed runs per layer (default {defaults.n_repeats})")
    parser.add_argument("--min-repeats", type=int, default=defaults.min_repeats,
                        help=f"timed runs of a slow layer at least (default {defaults.min_repeats})")
    parser.add_argument("--warmup", type=int, default=defaults.warmup_runs, help=f"warm-up runs (default {defaults.warmup_runs})")
    parser.add_argument("--max-seconds", type=float, default=defaults.max_seconds,
                        help=f"timing budget per layer; slow layers get fewer repeats (default {defaults.max_seconds})")
    parser.add_argument("--inputs", type=int, default=defaults.n_inputs,
                        help=f"random inputs cycled through while timing (default {defaults.n_inputs})")
    parser.add_argument("--statistic", default=defaults.statistic, choices=("min", "p10", "median"),
                        help=f"what a row's time is (default {defaults.statistic})")
    parser.add_argument("--fit-models", type=int, default=40, help="whole models measured per space to fit the correction (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the whole-model sample (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run_profile)
    return parser
