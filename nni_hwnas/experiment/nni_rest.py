"""Read an experiment back through NNI's REST API (what the web UI reads).

Metric ``data`` fields are JSON strings, often encoded twice; :func:`decode_metric` undoes both.
Trials are joined to their parameters through ``parameterId`` of the final metric, never through
the trial's listed hyper-parameters: NNI's manager can hand a queued parameter set to whichever
trial asks first, so the listing may name another set (``docs/nni-quirks.md``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from nni_hwnas.nni_compat.rest import decode_metric, final_parameter_id


@dataclass
class TrialView:
    """One trial as the web UI sees it, with our sample and metrics attached."""

    trial_id: str
    status: str
    parameter_id: int | None
    sample: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    intermediate: list = field(default_factory=list)
    start_time_ms: int | None = None
    end_time_ms: int | None = None

    @property
    def duration_s(self) -> float | None:
        if self.start_time_ms is None or self.end_time_ms is None:
            return None
        return (self.end_time_ms - self.start_time_ms) / 1000.0


class NniRestClient:
    """Minimal client for ``http://127.0.0.1:<port>/api/v1/nni``."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout_s: float = 10.0) -> None:
        self.base = f"http://{host}:{port}/api/v1/nni"
        self.timeout_s = timeout_s

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=self.timeout_s) as response:
            return json.loads(response.read().decode())

    def kill_trial(self, trial_id: str) -> None:
        """Stop a running trial, as NNI's ``Experiment.kill_trial_job`` does (``DELETE /trial-jobs/<id>``)."""
        request = urllib.request.Request(f"{self.base}/trial-jobs/{trial_id}", method="DELETE")
        with urllib.request.urlopen(request, timeout=self.timeout_s):
            pass

    def status(self) -> str:
        return self.get("/check-status").get("status", "UNKNOWN")

    def alive(self) -> bool:
        try:
            self.status()
            return True
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def trials(self) -> list[TrialView]:
        return assemble_trials(self.get("/trial-jobs"), self.get("/metric-data"))


def _parameter_sets(jobs: list[dict]) -> dict[int, dict]:
    """parameter_id -> NNI's parameter record, gathered from every trial's hyper-parameter list."""
    sets: dict[int, dict] = {}
    for job in jobs:
        for text in job.get("hyperParameters", []) or []:
            record = decode_metric(text)
            if isinstance(record, dict) and "parameter_id" in record:
                sets[int(record["parameter_id"])] = record.get("parameters", {})
    return sets


def sample_of(parameters: dict) -> dict:
    """The architecture sample inside a parameter record (NAS: ``parameters.sample``; HPO: itself)."""
    if isinstance(parameters, dict) and isinstance(parameters.get("sample"), dict):
        return dict(parameters["sample"])
    return dict(parameters) if isinstance(parameters, dict) else {}


def assemble_trials(jobs: list[dict], metric_data: list[dict]) -> list[TrialView]:
    """Join ``/trial-jobs`` and ``/metric-data`` into :class:`TrialView` rows."""
    sets = _parameter_sets(jobs)
    final_param: dict[str, int] = {}
    views: dict[str, TrialView] = {}
    for job in jobs:
        views[job["trialJobId"]] = TrialView(
            trial_id=job["trialJobId"], status=job.get("status", "UNKNOWN"), parameter_id=None,
            start_time_ms=job.get("startTime"), end_time_ms=job.get("endTime"))
    last_sequence: dict[str, int] = {}
    for record in sorted(metric_data, key=lambda r: (r.get("timestamp", 0), r.get("sequence", 0))):
        view = views.get(record["trialJobId"])
        if view is None:
            continue
        value = decode_metric(record.get("data"))
        if record.get("type") == "FINAL":
            view.metrics = value if isinstance(value, dict) else {"default": value}
            pid = final_parameter_id(record)
            if pid is not None:
                final_param[view.trial_id] = pid
        elif record.get("type") == "PERIODICAL":
            sequence = int(record.get("sequence", 0) or 0)
            if sequence <= last_sequence.get(view.trial_id, -1):
                view.intermediate.clear()  # NNI re-ran the trial (resume) under its id: the new run's epochs
            last_sequence[view.trial_id] = sequence
            view.intermediate.append(value)
    used = set(final_param.values())
    # Trials without a final metric (failed, running) take the parameter sets nobody reported for,
    # in order; with a final metric the parameterId is authoritative.
    leftovers = iter(sorted(pid for pid in sets if pid not in used))
    for view in sorted(views.values(), key=lambda v: (v.start_time_ms or 0, v.trial_id)):
        if view.trial_id in final_param:
            view.parameter_id = final_param[view.trial_id]
        else:
            view.parameter_id = next(leftovers, None)
        if view.parameter_id is not None:
            view.sample = sample_of(sets.get(view.parameter_id, {}))
    return sorted(views.values(), key=lambda v: (v.parameter_id if v.parameter_id is not None else 1 << 30, v.trial_id))
