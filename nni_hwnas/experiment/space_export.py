"""A model space as NNI's HPO search-space JSON (``{"label": {"_type": "choice", "_value": [...]}}``).

The labels and values are exactly what the NAS route's ``ModelSpace.simplify()`` shows, so a
tuner driven by nnictl and a NAS strategy search the same architectures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def nni_search_space(definition: Any) -> dict[str, dict[str, Any]]:
    """Every multi-valued choice label as an NNI ``choice``; single values stay fixed."""
    return {label: {"_type": "choice", "_value": list(values)}
            for label, values in definition.mutable_labels().items()}


def write_search_space(definition: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nni_search_space(definition), indent=2) + "\n")
    return path
