"""Read a finished NNI experiment from its own database, without starting its manager.

NNI keeps every trial event and metric in ``<working dir>/<id>/db/nni.sqlite``. Reading it
directly works for any experiment, NAS or nnictl, running or stopped, and gives the same
payloads as the REST API, so :func:`~nni_hwnas.experiment.nni_rest.assemble_trials` serves both.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from nni_hwnas.errors import UserError
from nni_hwnas.experiment.nni_rest import TrialView, assemble_trials
from nni_hwnas.nni_compat.rest import TERMINAL_STATUSES


def default_working_directories() -> list[Path]:
    return [Path(os.path.expanduser("~")) / "nni-experiments"]


def find_experiment(experiment_id: str, search: list[Path] | None = None) -> Path:
    """The folder of experiment ``experiment_id`` under the given (or default) working directories."""
    places = search or default_working_directories()
    for place in places:
        candidate = Path(place) / experiment_id
        if (candidate / "db" / "nni.sqlite").is_file():
            return candidate
    known = sorted({p.name for place in places if Path(place).is_dir() for p in Path(place).iterdir()
                    if (p / "db" / "nni.sqlite").is_file()})
    raise UserError(f"experiment {experiment_id!r} not found in {', '.join(map(str, places))}; "
                    f"known: {', '.join(known) or 'none'} (pass --experiment-dir for another working directory)")


def read_experiment(directory: Path) -> tuple[list[TrialView], dict]:
    """Trials (joined like the REST API) and the experiment's profile (its config) from the database."""
    db = Path(directory) / "db" / "nni.sqlite"
    try:
        connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        with connection:
            events = connection.execute(
                "select timestamp, trialJobId, event, data from TrialJobEvent order by timestamp").fetchall()
            metrics = connection.execute(
                "select timestamp, trialJobId, parameterId, type, sequence, data from MetricData").fetchall()
            profile_rows = connection.execute(
                "select params from ExperimentProfile order by revision desc limit 1").fetchall()
        connection.close()
    except sqlite3.Error as exc:
        raise UserError(f"cannot read NNI database {db}: {exc}") from None
    jobs: dict[str, dict] = {}
    for timestamp, trial, event, data in events:
        job = jobs.setdefault(trial, {"trialJobId": trial, "hyperParameters": [], "status": "WAITING"})
        if data and event in ("WAITING", "RUNNING"):
            if data not in job["hyperParameters"]:
                job["hyperParameters"].append(data)
        if event == "RUNNING":
            job.setdefault("startTime", timestamp)
        job["status"] = event if event not in ("ADD_CUSTOMIZED", "ADD_HYPERPARAMETER") else job["status"]
        if event in TERMINAL_STATUSES:
            job["endTime"] = timestamp
    metric_rows = [{"timestamp": t, "trialJobId": trial, "parameterId": pid, "type": kind, "sequence": seq, "data": data}
                   for t, trial, pid, kind, seq, data in metrics]
    profile = json.loads(profile_rows[0][0]) if profile_rows else {}
    return assemble_trials(list(jobs.values()), metric_rows), profile
