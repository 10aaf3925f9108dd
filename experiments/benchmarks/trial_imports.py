"""What a trial process imports before it works: the nnictl route against a NAS trial.

Each round starts fresh interpreters with ``python -X importtime``, alternating the two routes so
both see the same machine load, and sums the top-level cumulative import times. The nnictl
route (``nni_hwnas.evaluation.hpo_trial``) must import neither matplotlib nor ``nni.nas``.

    python experiments/benchmarks/trial_imports.py --rounds 5 --seed 0
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROUTES = {
    # hpo_trial's module imports plus what its main() imports before training.
    "nnictl trial (hpo_trial)": "import nni_hwnas.evaluation.hpo_trial, nni; "
                                "import nni_hwnas.experiment.trial_args, nni_hwnas.evaluation.trial",
    # NNI's NAS trial entry imports nni.nas before it runs our evaluator.
    "NAS trial (nni.nas)": "import nni.nas.space, nni.nas.evaluator; import nni_hwnas.evaluation.trial",
}


def measure(code: str) -> dict:
    """One fresh interpreter: total top-level import time (s) and which heavy packages it loaded."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[2])
    total_us, modules = 0, set()
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        modules.add(name.strip())
        if len(name) - len(name.lstrip()) == 1:  # top level: not nested in another import
            total_us += int(cumulative)
    return {"seconds": total_us / 1e6, "matplotlib": "matplotlib" in modules,
            "nni.nas": any(m == "nni.nas" or m.startswith("nni.nas.") for m in modules)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="recorded only: the measurement draws nothing random")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {name: [] for name in ROUTES}
    for _ in range(args.rounds):
        for name, code in ROUTES.items():
            runs[name].append(measure(code))
    rows = []
    for name, samples in runs.items():
        seconds = [s["seconds"] for s in samples]
        rows.append({"route": name, "median_s": statistics.median(seconds), "min_s": min(seconds),
                     "max_s": max(seconds), "imports_matplotlib": any(s["matplotlib"] for s in samples),
                     "imports_nni_nas": any(s["nni.nas"] for s in samples)})
    ratio = rows[1]["median_s"] / rows[0]["median_s"]
    print(f"{'route':28s} {'median s':>9s} {'min s':>7s} {'max s':>7s}  matplotlib  nni.nas")
    for row in rows:
        print(f"{row['route']:28s} {row['median_s']:9.2f} {row['min_s']:7.2f} {row['max_s']:7.2f}  "
              f"{str(row['imports_matplotlib']):10s}  {row['imports_nni_nas']}")
    print(f"NAS / nnictl import time (medians, same run): {ratio:.2f}x over {args.rounds} alternating rounds")
    out = Path(__file__).resolve().parent / "results" / "trial_imports.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"seed": args.seed, "rounds": args.rounds, "rows": rows, "ratio": ratio}, indent=2) + "\n")


if __name__ == "__main__":
    main()
