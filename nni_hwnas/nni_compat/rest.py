"""How NNI 3.0's manager hands back what trials reported (REST API, its database, the NAS engine).

Plain functions over NNI's JSON records: no NNI import, so trial processes and reports stay light.
Each quirk is described in ``docs/nni-quirks.md`` under the same heading.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

#: NNI 3.0 trial statuses after which nothing more happens ("Terminal statuses"). NNI has no
#: public constant for them; ``Experiment._wait_completion`` knows only the experiment's statuses.
TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED"})


def decode_metric(data: Any) -> Any:
    """Decode a metric value that NNI 3.0 stored as (possibly doubly) JSON-encoded text ("REST decoding")."""
    value = data
    for _ in range(3):
        if not isinstance(value, str):
            break
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            break
    return value


def final_parameter_id(final_record: Mapping[str, Any] | None, listed: int | None = None) -> int | None:
    """The parameter id a trial really ran ("parameterId join").

    NNI 3.0's manager hands a queued parameter set to whichever trial asks first, so the trial's
    listed hyper-parameters can be another trial's; the final metric's ``parameterId`` is right.
    ``listed`` (the trial's own listing) is only the fallback for trials with no final metric.
    """
    if final_record is not None:
        pid = final_record.get("parameterId")
        if pid not in (None, ""):
            return int(pid)
    return listed


def declared_value(values: Iterable[Any], given: Any) -> Any:
    """The space's own value equal to ``given``, or ``given`` itself when none is ("0.0 vs 0").

    NNI 3.0's manager re-encodes parameters as JSON, so a declared ``0.0`` comes back as ``0``;
    identities hash the values, so the declared one is restored. Booleans never match numbers.
    """
    for value in values:
        if value == given and isinstance(value, bool) == isinstance(given, bool):
            return value
    return given


def manager_experiment_id(port: int, timeout_s: float = 5.0) -> str | None:
    """The id of the experiment whose NNI manager answers on ``port`` (None: nobody, or not NNI)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/nni/experiment", timeout=timeout_s) as r:
            record = json.loads(r.read() or b"null")
    except (OSError, ValueError):
        return None
    return record.get("id") if isinstance(record, dict) else None
