"""MO-ASHA (:class:`~strategies.multi_fidelity.MoAsha`) in NNI's two routes, as thin adapters.

- ``nnictl``: :class:`MoAshaAssessor`, an NNI ``Assessor`` registered as ``MoAsha`` by
  ``nni-hwnas register``. NNI's dispatcher hands it each trial's intermediate reports (our trials
  report a dict per epoch: accuracy, the losses and the costs) and kills the trials it calls ``Bad``; NNI then
  marks them ``EARLY_STOPPED``.
- ``NasExperiment``: NNI 3.0 gives NAS experiments no assessor ("such functionality is already
  implemented in strategy", ``nni/nas/experiment/experiment.py``) and its training-service engine
  has no call to stop a running model. :class:`RestEarlyStopper` reads the intermediate reports
  from the REST API the web UI reads, and stops trials with the same ``DELETE /trial-jobs/<id>``
  that ``Experiment.kill_trial_job`` sends (NNI marks them ``USER_CANCELED``). It works with any
  strategy, ours or NNI's; a stopped trial reaches the strategy as failed, so it is never a parent
  and never proposed again. Its state (every rung's results, the stopped trials, the reports
  already judged) is saved beside the experiment after each change, so ``--resume`` continues
  the same rungs: a trial promoted before the stop is not judged again at that rung, and a trial
  NNI re-runs is judged from the first epoch it had not reported yet. A stop that reaches a trial
  after it has already ended (a fast trial finishes between a report and the next poll) changes
  nothing: :meth:`RestEarlyStopper.settle` moves it from ``killed`` to ``stopped_too_late``, so the
  summary counts only trials that NNI really cancelled.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
from pathlib import Path
from typing import Any, Mapping, Sequence

from nni.assessor import AssessResult, Assessor
from nni.utils import ClassArgsValidator

from nni_hwnas.errors import UserError
from nni_hwnas.experiment.background import BackgroundLoop

from .multi_fidelity import DEFAULT_RUNG_METRIC, MoAsha, default_rungs

__all__ = ["MoAshaAssessor", "MoAshaClassArgsValidator", "RestEarlyStopper", "ASSESSOR_NAME", "make_mo_asha"]

ASSESSOR_NAME = "MoAsha"
_log = logging.getLogger("nni_hwnas.multi_fidelity")


def make_mo_asha(rungs: Sequence[int] | None = None, max_epochs: int | None = None, min_epochs: int = 1,
                 reduction_factor: float = 3.0, score_metric: str = DEFAULT_RUNG_METRIC,
                 cost_metric: str | None = "latency_ms") -> MoAsha:
    """The rule from config values: explicit ``rungs``, or ASHA's ladder below ``max_epochs``."""
    if rungs is None:
        if max_epochs is None:
            raise UserError("multi_fidelity: give `rungs` (epoch counts) or `max_epochs` (the trials' epochs)")
        rungs = default_rungs(int(max_epochs), int(min_epochs), float(reduction_factor))
    if max_epochs is not None and rungs and max(rungs) >= int(max_epochs):
        raise UserError(f"multi_fidelity: every rung must be below the trials' epochs ({max_epochs}), got {list(rungs)}")
    if not rungs:
        raise UserError(f"multi_fidelity: no rung fits below {max_epochs} epochs with min_epochs {min_epochs}; "
                        f"train for more epochs or lower `min_epochs`")
    return MoAsha(rungs, reduction_factor, score_metric, cost_metric)


def _warn_on_first_missing_objective(rule: MoAsha, unjudged_before: Mapping[str, int]) -> None:
    """Log (NNI's dispatcher log, or the run's) when an objective first goes missing from rung reports."""
    if any(name not in unjudged_before for name in rule.unjudged):
        _log.warning(rule.missing_objective_message())


def _as_metrics(value: Any) -> dict[str, Any]:
    """An intermediate report as a dict (a bare number is ``default``)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"default": float(value)}
    return {}


class MoAshaAssessor(Assessor):
    """MO-ASHA for ``nnictl create``: ``assessor: {name: MoAsha, classArgs: {...}}``.

    Args: as :func:`make_mo_asha`. With a bare-number intermediate (another trial script),
    use ``score_metric: default`` and ``cost_metric: null``; otherwise those trials are never
    judged, and the dispatcher's log says so once.
    """

    def __init__(self, rungs: Sequence[int] | None = None, max_epochs: int | None = None, min_epochs: int = 1,
                 reduction_factor: float = 3.0, score_metric: str = DEFAULT_RUNG_METRIC,
                 cost_metric: str | None = "latency_ms") -> None:
        self.rule = make_mo_asha(rungs, max_epochs, min_epochs, reduction_factor, score_metric, cost_metric)

    def assess_trial(self, trial_job_id: str, trial_history: list[Any]) -> AssessResult:
        unjudged_before = dict(self.rule.unjudged)
        go_on = self.rule.report(str(trial_job_id), len(trial_history), _as_metrics(trial_history[-1]))
        if not go_on:
            _log.info("MoAsha: stopping %s after %d epochs", trial_job_id, len(trial_history))
        _warn_on_first_missing_objective(self.rule, unjudged_before)
        return AssessResult.Good if go_on else AssessResult.Bad

    def trial_end(self, trial_job_id: str, success: bool) -> None:
        """Nothing to do: a rung keeps every result it saw, finished trials included."""


class MoAshaClassArgsValidator(ClassArgsValidator):
    """Rejects bad ``classArgs`` at ``nnictl create`` time, in one line."""

    def validate_class_args(self, **kwargs: Any) -> None:
        try:
            MoAshaAssessor(**kwargs)
        except (TypeError, UserError) as exc:
            raise ValueError(f"{ASSESSOR_NAME} classArgs: {exc}") from None


class RestEarlyStopper(BackgroundLoop):
    """MO-ASHA for a running ``NasExperiment``: polls intermediate reports, kills the trials it stops.

    Use as a context manager around the experiment's run. ``client`` is an
    :class:`~nni_hwnas.experiment.nni_rest.NniRestClient` on the experiment's port. With
    ``state_path``, the state is read from there when the file exists (a resumed experiment) and
    written there after every poll that changed it.
    """

    STATE_FORMAT = "mo_asha_stopper/1"

    def __init__(self, rule: MoAsha, client: Any, poll_interval_s: float = 0.5,
                 state_path: str | Path | None = None) -> None:
        super().__init__("mo-asha")
        self.rule, self.client, self.poll_interval_s = rule, client, float(poll_interval_s)
        self.killed: dict[str, int] = {}  # trial id -> epochs it had reported when stopped
        self.too_late: dict[str, int] = {}  # stopped, but the trial had ended before the kill landed
        self._seen: dict[str, int] = {}  # trial id -> intermediate reports already judged
        self.state_path = None if state_path is None else Path(state_path)
        self.resumed = self.state_path is not None and self.state_path.is_file()
        if self.resumed:
            self.load_state_dict(json.loads(self.state_path.read_text()))

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.poll()
            except (urllib.error.URLError, OSError, ValueError) as exc:  # manager starting or stopping
                _log.debug("MoAsha: cannot read trials (%s)", exc)

    def poll(self) -> None:
        """Judge every new intermediate report of running trials, in epoch order; kill the stopped."""
        before = self._changes()
        try:
            self._judge(self.client.trials())
        finally:
            if self.state_path is not None and self._changes() != before:
                self._save()

    def settle(self, final_status: Mapping[str, str]) -> None:
        """After the run, given each trial's final NNI status: a trial told to stop that ended
        otherwise (SUCCEEDED, FAILED) had finished before the kill reached it."""
        before = self._changes()
        for trial_id in list(self.killed):
            if final_status.get(trial_id) in ("SUCCEEDED", "FAILED"):  # RUNNING: an interrupted run, kill pending
                self.too_late[trial_id] = self.killed.pop(trial_id)
        if self.state_path is not None and self._changes() != before:
            self._save()

    def _changes(self) -> tuple[dict[str, int], ...]:
        return dict(self._seen), dict(self.killed), dict(self.too_late)

    def _judge(self, views: Sequence[Any]) -> None:
        unjudged_before = dict(self.rule.unjudged)
        for view in views:
            seen = self._seen.get(view.trial_id, 0)
            if view.status != "RUNNING" or view.trial_id in self.killed or view.trial_id in self.too_late:
                for epoch in range(seen + 1, len(view.intermediate) + 1):  # ended before a poll saw it
                    self.rule.observe(view.trial_id, epoch, _as_metrics(view.intermediate[epoch - 1]))
                self._seen[view.trial_id] = len(view.intermediate)
                continue
            for epoch in range(seen + 1, len(view.intermediate) + 1):
                if not self.rule.report(view.trial_id, epoch, _as_metrics(view.intermediate[epoch - 1])):
                    _log.info("MoAsha: stopping %s after %d epochs", view.trial_id, epoch)
                    self.client.kill_trial(view.trial_id)
                    self.killed[view.trial_id] = epoch
                    break
            self._seen[view.trial_id] = len(view.intermediate)
        _warn_on_first_missing_objective(self.rule, unjudged_before)

    def state_dict(self) -> dict[str, Any]:
        return {"format": self.STATE_FORMAT, "rule": self.rule.state_dict(), "killed": dict(self.killed),
                "too_late": dict(self.too_late), "seen": dict(self._seen)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("format") != self.STATE_FORMAT:
            raise UserError(f"multi_fidelity: {self.state_path} is not a saved MO-ASHA state")
        self.rule.load_state_dict(state["rule"])  # refuses other rungs
        self.killed = {str(t): int(e) for t, e in state["killed"].items()}
        self.too_late = {str(t): int(e) for t, e in state.get("too_late", {}).items()}
        self._seen = {str(t): int(n) for t, n in state["seen"].items()}

    def _save(self) -> None:
        """Write the state atomically: a stop in the middle leaves the previous one whole."""
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state_dict()))
        os.replace(tmp, self.state_path)

    def summary(self) -> dict[str, Any]:
        """What the rule did: rungs, reduction factor, per-rung counts, killed trials (and those
        whose stop came after they had ended)."""
        return {"rungs": self.rule.rungs, "reduction_factor": self.rule.reduction_factor,
                "objectives": self.rule.objectives, "killed": dict(self.killed),
                "stopped_too_late": dict(self.too_late), "unjudged_reports": dict(self.rule.unjudged),
                "per_rung": [vars(s) for s in self.rule.stats()],
                "rung_losses": self.rule.state_dict()["results"]}
