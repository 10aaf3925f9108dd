"""A trial command channel for running a whole nnictl trial process outside an experiment.

NNI picks a trial's channel from ``NNI_TRIAL_COMMAND_CHANNEL``; ``import://`` names a class. This
one answers ``get_next_parameter`` with the JSON in ``NNI_HWNAS_FIXED_PARAMETERS`` and serialises
each report as a real channel does, then drops it. So a benchmark can start exactly the command
nnictl starts (``python -m nni_hwnas.warm_trials --config X.yaml``, or ``hpo_trial``) and measure
the process, the warm server's per-config preparation included, without an NNI manager.
"""

from __future__ import annotations

import json
import os
from typing import Any

from nni.common import dump
from nni.runtime.trial_command_channel.base import TrialCommandChannel

PARAMETERS_VARIABLE = "NNI_HWNAS_FIXED_PARAMETERS"
CHANNEL = "import://experiments.benchmarks.trial_channel.FixedParameterChannel"


def channel_environment(parameters: dict[str, Any]) -> dict[str, str]:
    """The environment variables that make a trial use this channel with ``parameters``."""
    return {"NNI_TRIAL_COMMAND_CHANNEL": CHANNEL, PARAMETERS_VARIABLE: json.dumps(parameters)}


class FixedParameterChannel(TrialCommandChannel):
    """Hands out one fixed parameter record; reports are serialised and dropped."""

    def __init__(self) -> None:
        self._given = False
        self.reports = 0

    def receive_parameter(self) -> Any:
        if self._given:
            return None
        self._given = True
        return {"parameter_id": 0, "parameter_source": "algorithm",
                "parameters": json.loads(os.environ[PARAMETERS_VARIABLE]), "parameter_index": 0}

    def send_metric(self, type: str, parameter_id: int | None, trial_job_id: str, sequence: int,  # noqa: A002
                    value: Any) -> None:
        dump({"parameter_id": parameter_id, "trial_job_id": trial_job_id, "type": type, "sequence": sequence,
              "value": dump(value)})
        self.reports += 1
