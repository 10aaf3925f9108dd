"""``nni-hwnas dashboard``: serve the multi-objective dashboard for one or several experiments.

    nni-hwnas dashboard                         # the latest running experiment (NAS or nnictl)
    nni-hwnas dashboard <experiment id>         # running: live from NNI's REST API; stopped: from its database
    nni-hwnas dashboard results/<id> results/<other>   # finished runs, hypervolume curves overlaid
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path
from typing import Callable

from nni_hwnas.budgets import Budgets

DEFAULT_PORT = 8090


def run_dashboard(sources: list[str], *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                  experiment_dirs: list[Path] | None = None, interval_s: float = 2.0,
                  echo: Callable[[str], None] = print, block: bool = True):
    """Resolve every source (a bad one fails here, in one line), then serve until Ctrl-C."""
    from nni_hwnas.dashboard.server import DashboardServer, bind_note, serve_until_interrupted
    from nni_hwnas.dashboard.sources import resolve_source

    resolved = [resolve_source(spec, experiment_dirs) for spec in (sources or [None])]
    first = [source.read() for source in resolved]  # unreadable sources fail before the port opens
    server = DashboardServer(resolved, host=host, port=port, interval_s=interval_s,
                             title=f"nni-hwnas dashboard: {', '.join(d.label for d in first)}").start()
    for data in first:
        echo(f"nni-hwnas: {data.label}: {len(data.rows)} trials from {data.source}")
    echo(f"nni-hwnas: dashboard at {server.url} ({bind_note(host)}); Ctrl-C stops it")
    if not block:
        return server
    serve_until_interrupted(server, echo)
    return server


def _free_port(host: str) -> int:
    # Not NNI's port + 1: NNI's remote training service listens there itself.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def search_dashboard(nni_port: int, label: str, objectives: tuple[str, ...], budgets: Budgets, *,
                     port: int | None = None, host: str = "127.0.0.1"):
    """The live dashboard ``search`` starts beside NNI's web UI (a free port unless ``port`` is given)."""
    from nni_hwnas.dashboard.server import DashboardServer
    from nni_hwnas.dashboard.sources import LiveSource

    source = LiveSource(nni_port, label=label, objectives=objectives, budgets=budgets)
    return DashboardServer([source], host=host, port=_free_port(host) if port is None else port,
                           title=f"nni-hwnas dashboard: {label}").start()


def results_dashboard(out_dir: Path, label: str, *, port: int | None = None, host: str = "127.0.0.1"):
    """The live dashboard of a results directory that an in-process search (``evaluator.kind: supernet``) fills."""
    from nni_hwnas.dashboard.server import DashboardServer
    from nni_hwnas.dashboard.sources import ResultsDirSource

    return DashboardServer([ResultsDirSource(Path(out_dir))], host=host, port=_free_port(host) if port is None else port,
                           title=f"nni-hwnas dashboard: {label}").start()


def _dashboard(args: argparse.Namespace) -> int:
    from nni_hwnas.errors import UserError

    if not args.interval > 0:
        raise UserError(f"--interval must be a positive number of seconds, got {args.interval}")
    dirs = [Path(d) for d in args.experiment_dir] if args.experiment_dir else None
    run_dashboard(args.sources, host=args.host, port=args.port, experiment_dirs=dirs, interval_s=args.interval)
    return 0


def add_dashboard_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("dashboard", help="multi-objective dashboard (front, hypervolume, trials) in a browser")
    parser.add_argument("sources", nargs="*", metavar="EXPERIMENT_ID|RESULTS_DIR",
                        help="experiment ids (running or stopped, NAS or nnictl) or results directories; "
                             "several overlay their hypervolume curves (default: the latest running experiment)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to serve on (default {DEFAULT_PORT})")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    parser.add_argument("--experiment-dir", action="append", default=None,
                        help="NNI working directory to look for stopped experiment ids in (default ~/nni-experiments)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between reads of NNI (default 2)")
    parser.set_defaults(func=_dashboard)
