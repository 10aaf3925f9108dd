"""Stop and resume multi-trial NAS experiments on NNI 3.0, which does not work out of the box.

Applies to nni 3.0 (the last release). Five failures (``docs/nni-quirks.md``, "Resume"), each
fixed here without touching the installed package:

1. NNI's default checkpoint serializer is ``torch.save``/``torch.load``; torch >= 2.6 loads with
   ``weights_only=True`` and refuses NNI's label objects (``UnpicklingError``). Fix: NNI's own
   ``JsonSerializer`` through its public ``set_default_serializer`` for the first run *and* the
   resume. Its encoder cannot write the ``frozenset`` samples of NNI's ``DeduplicationHelper``
   (built-in strategies: ``TypeError ... frozenset ... TricksEncoder``, and no checkpoint), so
   :class:`SetSafeJsonSerializer` tags sets and tuples on save and rebuilds them on load.
2. On resume the manager sends ``ImportData`` and ``AddCustomizedTrialJob`` (tuner commands) to the
   NAS command channel, whose ``receive`` raises ``ValueError: Unknown command type``: the
   engine's listener thread dies and the strategy waits forever. Fix: a channel subclass that
   skips those two commands (a strategy reads finished trials from the REST API instead).
3. The manager keeps ``maxTrialNumber`` from its database, not from the new config, and goes
   straight to DONE. Fix: push the new limit with ``update_max_trial_number()`` once the manager
   is up, before the strategy starts, and wait until it is RUNNING.

4. NNI's manager that cannot bind its port (``EADDRINUSE``) dies, and NNI's ``start`` then posts
   the config to, and connects the strategy to, whatever manager answers there (another search's,
   or a plain ``nnictl`` experiment that took the port between NNI's idle check and our manager's
   bind). Fix: as soon as a manager answers, and before NNI posts anything to it, check that it
   is not another experiment's (:func:`_refuse_foreign_manager`; a fresh manager has no id until
   the post); and before the engine starts, that it is ours (:func:`check_manager_is_ours`).

5. NNI gives a starting manager about 3 s to answer; on a loaded machine it gives up, kills it
   and fails the start (seen at load 15, also resuming over the remote service). Fix: 60 s
   (:data:`STARTUP_TRIES`), in the same wrapper as fix 4.

Also: a failed resume's ``stop()`` overwrote the checkpoint with an empty strategy state. Here
the checkpoint folder is copied aside before resuming, and a resume that failed before loading
the checkpoint does not save over it.

Use :class:`ResumableNasExperiment` instead of ``NasExperiment`` for every run that may be
resumed, and :func:`resume_experiment` (or :func:`prepare_resume` + ``start``) to continue one.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import nni
import nni.nas.execution.training_service as _training_service
from nni.experiment import RunMode
from nni.nas.execution import ExecutionEngine, TrainingServiceExecutionEngine
from nni.nas.experiment import NasExperiment
from nni.nas.experiment.config import NasExperimentConfig, TrainingServiceEngineConfig
from nni.nas.utils.serializer import JsonSerializer, set_default_serializer
from nni.runtime.tuner_command_channel import TunerCommandChannel
from nni.runtime.tuner_command_channel.command_type import CommandType
from nni.tools.nnictl.config_utils import Experiments

from nni_hwnas.errors import UserError
from nni_hwnas.nni_compat.rest import manager_experiment_id

__all__ = ["ResumableNasExperiment", "NasTunerCommandChannel", "SetSafeJsonSerializer", "check_manager_is_ours",
           "prepare_resume", "resume_experiment", "use_json_checkpoints", "wait_for_completion"]

_log = logging.getLogger("nni_hwnas.strategies")
#: Seconds (one try a second) a starting NNI manager gets to answer its REST API (fix 5).
STARTUP_TRIES = 60
_TUNER_ONLY_COMMANDS = (CommandType.ImportData, CommandType.AddCustomizedTrialJob)
_channel_swap_lock = threading.Lock()


_SET_TAG, _TUPLE_TAG = "__nni_hwnas_frozenset__", "__nni_hwnas_tuple__"


def encode_sets(value: Any) -> Any:
    """Sets and tuples as tagged JSON lists (sorted by ``repr`` so a checkpoint is reproducible)."""
    if isinstance(value, (set, frozenset)):
        return {_SET_TAG: sorted((encode_sets(v) for v in value), key=repr)}
    if isinstance(value, tuple):
        return {_TUPLE_TAG: [encode_sets(v) for v in value]}
    if isinstance(value, list):
        return [encode_sets(v) for v in value]
    if isinstance(value, dict):
        return {k: encode_sets(v) for k, v in value.items()}
    return value


def decode_sets(value: Any) -> Any:
    """Undo :func:`encode_sets`: tagged lists become frozensets and tuples again (hashable)."""
    if isinstance(value, list):
        return [decode_sets(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {_SET_TAG}:
            return frozenset(decode_sets(v) for v in value[_SET_TAG])
        if set(value) == {_TUPLE_TAG}:
            return tuple(decode_sets(v) for v in value[_TUPLE_TAG])
        return {k: decode_sets(v) for k, v in value.items()}
    return value


class SetSafeJsonSerializer(JsonSerializer):
    """NNI's ``JsonSerializer`` that also round-trips the sets in built-in strategies' state (fix 1)."""

    def save(self, checkpoint: Any, path: Path) -> None:
        super().save(encode_sets(checkpoint), path)

    def load(self, path: Path) -> Any:
        return decode_sets(super().load(path))


def use_json_checkpoints() -> None:
    """Make NNI write and read NAS checkpoints as JSON (fix 1; process-wide, NNI's public API)."""
    set_default_serializer(SetSafeJsonSerializer())


@contextlib.contextmanager
def _refuse_foreign_manager(experiment_id: str) -> Iterator[None]:
    """Fix 4, first half: wrap NNI's wait for its REST server (``launcher._check_rest_server``, which
    returns as soon as *any* manager answers) so that one answering as another experiment is
    refused before NNI posts our config to it. NNI then kills our (dead) manager and re-raises.

    Fix 5: that wait gives a starting manager 3 tries a second apart; node on a loaded machine
    takes longer ("Create experiment failed ... Connection refused", or the web UI's HTML before
    the REST API answers), so it is given ``STARTUP_TRIES`` instead."""
    import nni.experiment.launcher as launcher

    original = launcher._check_rest_server

    def checked(port: int, retry: int = 3, url_prefix: str | None = None) -> None:
        original(port, max(retry, STARTUP_TRIES), url_prefix)
        owner = manager_experiment_id(port)
        if owner is not None and owner != experiment_id:
            raise UserError(f"port {port} is served by experiment {owner!r}, not by experiment {experiment_id!r} "
                            "(another NNI manager took the port first); nothing was changed there: "
                            "choose another --port")

    idle_check = launcher._ensure_port_idle

    def idle(port: int, *args: Any) -> None:
        """NNI's own idle check raises a bare ``RuntimeError`` (a traceback) when the port was taken
        after ours, e.g. by a plain ``nnictl`` experiment: say whose it is, in one line."""
        try:
            idle_check(port, *args)
        except RuntimeError:
            owner = manager_experiment_id(port)
            raise UserError(f"port {port} was taken by {'experiment ' + repr(owner) if owner else 'another program'} "
                            f"while experiment {experiment_id!r} was starting; nothing was changed there: "
                            "choose another --port") from None

    launcher._check_rest_server, launcher._ensure_port_idle = checked, idle
    try:
        yield
    finally:
        launcher._check_rest_server, launcher._ensure_port_idle = original, idle_check


def check_manager_is_ours(experiment: Any, port: int) -> None:
    """Fix 4: refuse to drive a manager that is not this experiment's (ours died on ``EADDRINUSE``)."""
    proc = getattr(experiment, "_proc", None)
    owner = manager_experiment_id(port)
    if owner == experiment.id and (proc is None or proc.poll() is None):
        return
    if proc is not None and proc.poll() is None:
        proc.kill()
    experiment._proc = None  # so stop() never sends DELETE /experiment to another experiment's manager
    raise UserError(f"port {port} is served by {'experiment ' + repr(owner) if owner else 'another program'}, "
                    f"not by experiment {experiment.id!r} (its NNI manager could not bind the port); "
                    "nothing was changed there: choose another --port")


def wait_for_completion(experiment: Any) -> None:
    """Block until the strategy's submitted models finished ("Wait for completion").

    NNI 3.0's public ``run()`` stops the experiment and its web UI when it returns, and
    ``start()`` does not wait; the only wait that leaves the manager up is the internal
    ``NasExperiment._wait_completion`` (engine ``wait_models``), so it is called here, in one place.
    """
    experiment._wait_completion()


class NasTunerCommandChannel(TunerCommandChannel):
    """NNI's tuner command channel minus the two tuner-only commands a resumed manager sends (fix 2).

    ``ImportData`` (finished trials, for a tuner to learn from) and ``AddCustomizedTrialJob``
    (trials the manager re-runs itself) have no meaning for a NAS engine, and NNI's ``receive``
    raises on them, killing the engine's listener thread.
    """

    def _receive(self) -> tuple[CommandType, str] | tuple[None, None]:
        while True:
            command_type, data = super()._receive()
            if command_type not in _TUNER_ONLY_COMMANDS:
                return command_type, data
            _log.debug("ignoring tuner-only command %s on the NAS channel", command_type)


@contextlib.contextmanager
def _nas_channel() -> Iterator[None]:
    """Build the engine with :class:`NasTunerCommandChannel`.

    NNI's ``TrainingServiceExecutionEngine.__init__`` creates its channel from the module-level
    name ``TunerCommandChannel``, connects it and starts listening in the same call, so there is
    no later point to swap the channel without a race. The name is rebound for the duration of
    that one constructor call only, under a lock, and restored at once.
    """
    with _channel_swap_lock:
        original = _training_service.TunerCommandChannel
        _training_service.TunerCommandChannel = NasTunerCommandChannel
        try:
            yield
        finally:
            _training_service.TunerCommandChannel = original


class ResumableNasExperiment(NasExperiment):
    """A ``NasExperiment`` whose runs can be stopped and resumed (fixes 1-3 above).

    Use it for the first run too: the checkpoint must be JSON from the start.
    """

    resume_timeout_s: float = 60.0
    _state_loaded: bool = False  # set once a resume restored the checkpointed state
    #: Called with the experiment once its own manager is up, before the strategy starts.
    on_manager_started: Callable[[Any], None] | None = None

    def start(self, port: int = 8080, debug: bool = False, run_mode: RunMode = RunMode.Background) -> None:
        use_json_checkpoints()
        super().start(port, debug, run_mode)

    def _start_nni_manager(self, port: int, *args: Any, **kwargs: Any) -> None:
        with _refuse_foreign_manager(self.id):
            super()._start_nni_manager(port, *args, **kwargs)

    def execution_engine_factory(self, config: Any) -> ExecutionEngine:
        if isinstance(config, TrainingServiceEngineConfig):
            with _nas_channel():
                return TrainingServiceExecutionEngine(self)
        return super().execution_engine_factory(config)

    def load_checkpoint(self) -> None:
        super().load_checkpoint()
        if self._engine is not None:
            self._state_loaded = True  # strategy and engine state restored (or none was saved)

    def save_checkpoint(self) -> None:
        """Never overwrite a checkpoint that a failed resume did not load (NNI would save the
        fresh, empty strategy state over it on ``stop()``)."""
        if self._action == "resume" and self._engine is not None and not self._state_loaded:
            _log.warning("checkpoint of %s left as it was: the resume failed before loading it", self.id)
            return
        super().save_checkpoint()

    def _start_engine_and_strategy(self) -> None:
        if self._nni_manager_required() and self.port is not None:
            check_manager_is_ours(self, self.port)
            if self.on_manager_started is not None:
                self.on_manager_started(self)
        if self._action == "resume" and self._nni_manager_required():
            self._push_max_trial_number()
        super()._start_engine_and_strategy()

    def _push_max_trial_number(self) -> None:
        """Fix 3: the manager took ``maxTrialNumber`` from its database; give it the new one.

        Done before the engine connects: the manager only starts scheduling (and would go to
        DONE under the old limit) once the strategy's channel is up.
        """
        target = self.config.max_trial_number
        deadline = time.monotonic() + self.resume_timeout_s
        self._wait_status(("RUNNING", "INITIALIZED", "DONE", "NO_MORE_TRIAL", "TUNER_NO_MORE_TRIAL"), deadline)
        if target is None:
            _log.warning("resuming %s without max_trial_number: the manager keeps its old limit", self.id)
            return
        self.update_max_trial_number(int(target))
        pushed = self.get_experiment_profile()["params"].get("maxTrialNumber")
        if pushed != int(target):
            raise RuntimeError(f"NNI's manager kept maxTrialNumber={pushed} after setting {target}")
        status = self._wait_status(("RUNNING",), deadline)
        _log.info("resumed %s: max_trial_number now %s, manager %s", self.id, target, status)

    def _wait_status(self, wanted: tuple[str, ...], deadline: float) -> str:
        status = "UNKNOWN"
        while time.monotonic() < deadline:
            try:
                status = self.get_status()
            except Exception:  # REST server still starting
                status = "UNKNOWN"
            if status in wanted:
                return status
            time.sleep(0.5)
        raise RuntimeError(f"NNI's manager for {self.id} is {status}, not {'/'.join(wanted)}, "
                           f"after {self.resume_timeout_s:.0f} s")


def _checkpoint_dir(experiment_id: str, working_directory: str | Path | None) -> Path:
    root = Path(working_directory).expanduser() if working_directory else Path("~/nni-experiments").expanduser()
    return root / experiment_id / "checkpoint"


def prepare_resume(experiment_id: str, model_space: Any, evaluator: Any, strategy: Any, *,
                   working_directory: str | Path | None = None, max_trials: int | None = None,
                   concurrency: int | None = None) -> ResumableNasExperiment:
    """A :class:`ResumableNasExperiment` set to resume ``experiment_id``; ``start(port)`` runs it.

    The saved config (``<working_directory>/<id>/checkpoint/config.json``) is the base, so the
    resumed run trains like the first; ``max_trials`` (the total, previous trials included) and
    ``concurrency`` override it. The checkpoint folder is copied to
    ``checkpoint.before-resume-<UTC time>`` first (``experiment.checkpoint_backup``).

    Raises:
        UserError: When the experiment or its checkpoint cannot be found.
    """
    checkpoint = _checkpoint_dir(experiment_id, working_directory)
    if not (checkpoint / "config.json").exists():
        raise UserError(f"no checkpoint of experiment {experiment_id!r} in {checkpoint.parent.parent}; "
                        "pass the experiment's working directory")
    if experiment_id not in Experiments().get_all_experiments():
        raise UserError(f"experiment {experiment_id!r} is not in NNI's experiment list "
                        "(~/nni-experiments/.experiment of the user who ran it)")
    with (checkpoint / "config.json").open() as f:
        config = NasExperimentConfig(**nni.load(fp=f))
    config.experiment_working_directory = str(checkpoint.parent.parent)
    if max_trials is not None:
        config.max_trial_number = int(max_trials)
    if concurrency is not None:
        config.trial_concurrency = int(concurrency)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    backup = checkpoint.with_name(f"checkpoint.before-resume-{stamp}")
    shutil.copytree(checkpoint, backup)
    experiment = ResumableNasExperiment(model_space, evaluator, strategy, config=config, id=experiment_id)
    experiment.checkpoint_backup = backup
    experiment._action = "resume"  # what Experiment.resume() sets before start()
    return experiment


def resume_experiment(experiment_id: str, model_space: Any, evaluator: Any, strategy: Any, *, port: int,
                      working_directory: str | Path | None = None, max_trials: int | None = None,
                      concurrency: int | None = None) -> ResumableNasExperiment:
    """Resume ``experiment_id`` and run its strategy until the new trial budget is spent.

    Blocks like ``NasExperiment.start``. Returns the experiment with its manager still up (the
    web UI and REST API keep answering): call ``stop()`` when done. On any error, Ctrl-C
    included, the experiment is stopped before the exception propagates.
    """
    experiment = prepare_resume(experiment_id, model_space, evaluator, strategy,
                                working_directory=working_directory, max_trials=max_trials,
                                concurrency=concurrency)
    try:
        experiment.start(port)
    except BaseException:
        experiment.stop()
        raise
    return experiment
