"""Results directories are never overwritten by accident.

A rerun with the same ``--output`` used to keep only the second run's files. Every command that
writes results checks its folder first, before any work, and refuses unless told ``--overwrite``.
"""

from __future__ import annotations

import json
from pathlib import Path

from nni_hwnas.errors import UserError


def previous_experiment(out_dir: Path) -> str | None:
    """The experiment id a results directory's ``run.json`` names (None when there is none)."""
    try:
        return json.loads((Path(out_dir) / "run.json").read_text()).get("experiment_id")
    except (OSError, ValueError, AttributeError):
        return None


def check_output_dir(out_dir: Path, *, overwrite: bool, flag: str = "--output", same_experiment: str | None = None) -> None:
    """Refuse a non-empty ``out_dir`` unless ``overwrite``.

    ``same_experiment``: a resume may update the results of the experiment it continues (every
    earlier trial is read back from NNI, so nothing is lost).
    """
    out_dir = Path(out_dir)
    if overwrite or not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise UserError(f"{out_dir} exists and is not a folder; choose another {flag}")
    if not any(out_dir.iterdir()):
        return
    previous = previous_experiment(out_dir)
    if same_experiment is not None and previous == same_experiment:
        return
    what = f"the results of experiment {previous}" if previous else "files"
    raise UserError(f"{out_dir} already holds {what}; choose another {flag}, or pass --overwrite to replace them")
