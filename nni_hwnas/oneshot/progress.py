"""Progress of an in-process super-network search: a terminal bar and a results directory that fills live.

The one-shot route runs no NNI trials (NNI's web UI shows none), so progress goes where our own
tools read it: a tqdm bar per phase (super-network training, search), and ``trials.json`` /
``pareto.json`` rewritten every few seconds, which ``nni-hwnas dashboard <results dir>`` (and the
dashboard the search starts) re-reads as they change. The final ``write_results`` replaces them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from nni_hwnas.reporting.results import pareto_rows, write_json


def bar(total: int, desc: str, unit: str) -> Any:
    """A tqdm bar on stderr (hidden when stderr is not a terminal, so logs and tests stay clean)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, disable=None)


class LiveResults:
    """Rewrites ``trials.json`` and ``pareto.json`` of ``out_dir`` at most every ``interval_s`` seconds."""

    def __init__(self, out_dir: Path, objectives: Sequence[str], interval_s: float = 3.0) -> None:
        self.out_dir, self.objectives, self.interval_s = Path(out_dir), tuple(objectives), interval_s
        self._last = 0.0
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.write([], force=True)

    def write(self, rows: Iterable[Mapping[str, Any]], force: bool = False) -> bool:
        """Write the rows so far unless the last write is recent; True when written."""
        now = time.monotonic()
        if not force and now - self._last < self.interval_s:
            return False
        rows = [dict(r) for r in rows]
        write_json(self.out_dir / "trials.json", rows)
        write_json(self.out_dir / "pareto.json", {"objectives": list(self.objectives), "only_within_budget": True,
                                                  "trials_completed": len(rows), "live": True,
                                                  "front": pareto_rows(rows, self.objectives) if rows else []})
        self._last = now
        return True
