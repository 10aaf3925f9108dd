"""What a trial means, and which of an experiment's runs each trial ran under.

A resume that changes training, budgets, data, hardware or the strategy would silently mix
trials that are not comparable. Each run of an experiment appends the settings that decide what
a trial means to ``<working dir>/<id>/nni-hwnas-settings.json``, together with the trials that
existed before it; a resume compares its settings with the last ones and names every changed
key. When the user allows the change, each trial is labelled with the settings it ran under
(``settings`` column) and the front is drawn from the current settings' trials only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from nni_hwnas.errors import UserError

FILE_NAME = "nni-hwnas-settings.json"
#: Config sections that change what a trial's numbers mean (not ``experiment``: trial count,
#: concurrency, port, duration; not ``name`` or ``output``).
MEANING_SECTIONS = ("seed", "dataset", "evaluator", "hardware", "strategy")


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def trial_meaning(config: Mapping[str, Any], space_name: str, choices: Mapping[str, Any]) -> dict[str, Any]:
    """The flat ``{dotted key: value}`` that decides what a trial means (``config`` as ``to_dict()``)."""
    meaning = _flatten({k: config[k] for k in MEANING_SECTIONS if k in config})
    meaning = {k: v for k, v in meaning.items() if not k.startswith("dataset.download")}
    meaning["space.name"] = space_name
    meaning.update({f"space.choices.{label}": list(values) for label, values in sorted(choices.items())})
    return json.loads(json.dumps(meaning, default=str))  # JSON-normal, so saved and fresh compare equal


def changed_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def read_runs(experiment_dir: Path) -> list[dict[str, Any]]:
    try:
        return list(json.loads((Path(experiment_dir) / FILE_NAME).read_text())["runs"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _describe(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def check_resume(experiment_dir: Path, meaning: Mapping[str, Any], allow_changes: bool) -> list[str]:
    """Changed keys against the experiment's last run; refuse them unless ``allow_changes``.

    A changed space is refused always: the strategy's saved state and NNI's trials speak of the
    old space's labels. An experiment without a record (made before this file existed) passes.
    """
    runs = read_runs(experiment_dir)
    if not runs:
        return []
    changed = changed_keys(runs[-1]["meaning"], meaning)
    space = [k for k in changed if k.startswith("space.")]
    if space:
        raise UserError(f"--resume: the search space changed ({_describe(space)}); a resumed search must keep "
                        "its space: restore it, or start a new search without --resume")
    if changed and not allow_changes:
        raise UserError(f"--resume: the config changed what a trial means ({_describe(changed)}); restore those "
                        "keys, or pass --allow-changes to continue with each trial labelled by its settings")
    return changed


def record_run(experiment_dir: Path, meaning: Mapping[str, Any], trials_before: Iterable[str]) -> int:
    """Append this run's settings (unless they equal the last run's) and return their number."""
    runs = read_runs(experiment_dir)
    if runs and not changed_keys(runs[-1]["meaning"], meaning):
        return int(runs[-1]["settings"])
    number = len(runs)
    runs.append({"settings": number, "meaning": dict(meaning), "trials_before": sorted(trials_before)})
    Path(experiment_dir).mkdir(parents=True, exist_ok=True)
    (Path(experiment_dir) / FILE_NAME).write_text(json.dumps({"runs": runs}, indent=2, default=str) + "\n")
    return number


def label_rows(rows: list[dict[str, Any]], experiment_dir: Path) -> None:
    """Set each row's ``settings``: the last run whose start it did not predate."""
    runs = read_runs(experiment_dir)
    for row in rows:
        row["settings"] = max((int(r["settings"]) for r in runs if row["trial_id"] not in set(r["trials_before"])),
                              default=0)
