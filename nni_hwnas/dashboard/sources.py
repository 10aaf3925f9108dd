"""Where the dashboard reads trials: NNI's REST API (live), NNI's database, or a results directory.

Every source answers :meth:`read` with an :class:`~nni_hwnas.dashboard.snapshot.ExperimentData`,
through the project's existing readers (:mod:`nni_hwnas.experiment.nni_rest`,
:mod:`nni_hwnas.experiment.experiment_store`, ``trials.json``), so the NAS and nnictl routes,
running or finished, look the same to the page.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path
from typing import Any, Protocol, Sequence

from nni_hwnas.budgets import Budgets
from nni_hwnas.dashboard.snapshot import ExperimentData
from nni_hwnas.errors import UserError
from nni_hwnas.experiment.nni_rest import NniRestClient, assemble_trials
from nni_hwnas.reporting.hypervolume_trace import HvReference
from nni_hwnas.reporting.results import DEFAULT_OBJECTIVES, run_budgets, trial_rows


class Source(Protocol):
    def read(self) -> ExperimentData: ...


def objectives_of(rows: Sequence[dict], preferred: Sequence[str] | None = None) -> tuple[str, ...]:
    """The run's objectives: ``preferred`` when given, else accuracy (or the proxy score) vs latency."""
    if preferred:
        return tuple(preferred)
    if any(isinstance(r.get("accuracy"), (int, float)) for r in rows) or not rows:
        return DEFAULT_OBJECTIVES
    return ("default", "latency_ms")


class LiveSource:
    """A running experiment, read through NNI's REST API on ``port`` (both NAS and nnictl routes)."""

    def __init__(self, port: int, label: str = "", *, objectives: Sequence[str] | None = None,
                 budgets: Budgets | None = None, host: str = "127.0.0.1") -> None:
        self.client = NniRestClient(port, host=host, timeout_s=5.0)
        self.port, self.label, self.objectives = port, label, objectives
        self.budgets = Budgets.of(budgets)

        self._last: tuple[bytes, ExperimentData] | None = None

    def _raw(self, path: str) -> bytes:
        with urllib.request.urlopen(self.client.base + path, timeout=self.client.timeout_s) as response:
            return response.read()

    def read(self) -> ExperimentData:
        """The trials; the very same object as last time when NNI's answers did not change (cheap polls)."""
        jobs, metrics = self._raw("/trial-jobs"), self._raw("/metric-data")
        try:
            status = self.client.status()
        except (OSError, ValueError):
            status = "UNKNOWN"
        key = hashlib.sha1(b"\0".join((jobs, metrics, status.encode()))).digest()
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        rows = trial_rows(assemble_trials(json.loads(jobs or b"[]"), json.loads(metrics or b"[]")))
        data = ExperimentData(label=self.label or f"experiment on port {self.port}", rows=rows,
                              objectives=objectives_of(rows, self.objectives), budgets=self.budgets,
                              nni_url=f"http://127.0.0.1:{self.port}", source=f"NNI REST API, port {self.port}",
                              status=status)
        self._last = (key, data)
        return data


class DatabaseSource:
    """A finished (or running) experiment read from its own ``db/nni.sqlite``; no manager needed."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def read(self) -> ExperimentData:
        from nni_hwnas.experiment.experiment_store import read_experiment

        views, profile = read_experiment(self.directory)
        rows = trial_rows(views)
        return ExperimentData(label=profile.get("experimentName") or self.directory.name, rows=rows,
                              objectives=objectives_of(rows), source=f"NNI database {self.directory}",
                              status="STOPPED")


class ResultsDirSource:
    """A results directory written by ``search``/``report``: ``trials.json``, ``pareto.json``, ``run.json``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._last: tuple[tuple, ExperimentData] | None = None

    def read(self) -> ExperimentData:
        """Re-read only when a file changed (``report`` may rewrite them while the page is open)."""
        stamp = tuple(p.stat().st_mtime_ns if p.is_file() else 0 for p in
                      (self.directory / n for n in ("trials.json", "pareto.json", "run.json", "hypervolume.json")))
        if self._last is None or self._last[0] != stamp:
            self._last = (stamp, results_dir_data(self.directory))
        return self._last[1]


def results_dir_data(directory: Path, label: str | None = None) -> ExperimentData:
    """Read a results directory; budgets come from ``run.json`` and objectives from ``pareto.json``.

    After a resume that changed the settings (``pareto.json``'s ``settings``), only that settings'
    trials are shown, as the front and hypervolume in the files use only them."""
    directory = Path(directory)
    rows = _read_json(directory / "trials.json")
    if not isinstance(rows, list):
        raise UserError(f"{directory / 'trials.json'} is not a list of trials; rewrite it with `nni-hwnas report <id>`")
    pareto = _read_json(directory / "pareto.json")
    run = _read_json(directory / "run.json")
    if isinstance(pareto.get("settings"), int):
        rows = [r for r in rows if r.get("settings", pareto["settings"]) == pareto["settings"]]
    stored = _read_json(directory / "hypervolume.json").get("reference") or {}
    fields = {k: v for k, v in stored.items() if k in HvReference.__dataclass_fields__}
    return ExperimentData(reference=HvReference(**fields) if fields else None, label=label or directory.name, rows=rows,
                          objectives=objectives_of(rows, pareto.get("objectives")),
                          budgets=run_budgets(run),
                          source=f"results directory {directory}", status="DONE")


def _read_json(path: Path) -> Any:
    """A results file's JSON ({} when absent); a damaged file is one line naming it."""
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} ({exc}); rewrite the results with `nni-hwnas report <id>`") from None


def running_experiments(home: Path | None = None) -> dict[str, dict]:
    """nnictl's experiment list (``~/nni-experiments/.experiment``; both routes register there)."""
    path = (home or Path.home() / "nni-experiments") / ".experiment"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def live_port(experiment_id: str, home: Path | None = None) -> int | None:
    """The port whose manager answers for ``experiment_id`` right now, or None."""
    record = running_experiments(home).get(experiment_id)
    if not record or not record.get("port"):
        return None
    client = NniRestClient(int(record["port"]), timeout_s=3.0)
    try:
        return int(record["port"]) if client.get("/experiment").get("id") == experiment_id else None
    except (OSError, ValueError, AttributeError):
        return None


def resolve_source(spec: str | None, experiment_dirs: Sequence[Path] | None = None) -> Source:
    """A results directory, a running experiment id (REST), a stopped one (database), or the latest running."""
    if spec is None:
        alive = [(r.get("startTime", 0), i) for i, r in running_experiments().items() if live_port(i) is not None]
        if not alive:
            raise UserError("no running NNI experiment found; pass an experiment id or a results directory "
                            "(nni-hwnas dashboard results/<id>)")
        spec = max(alive)[1]
    path = Path(spec)
    if (path / "trials.json").is_file():
        return ResultsDirSource(path)
    if path.exists():
        raise UserError(f"{path} holds no trials.json; pass a results directory or an experiment id")
    port = live_port(spec)
    if port is not None:
        return LiveSource(port, label=spec)
    from nni_hwnas.experiment.experiment_store import find_experiment

    return DatabaseSource(find_experiment(spec, list(experiment_dirs) if experiment_dirs else None))
