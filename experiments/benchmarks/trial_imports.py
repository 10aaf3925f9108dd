"""What a trial process imports before it works: the nnictl route against a NAS trial.

Each round starts fresh interpreters with ``python -X importtime``, alternating the routes so
all see the same machine load, and sums the top-level cumulative import times. The nnictl
route (``nni_hwnas.evaluation.hpo_trial``) must import neither matplotlib nor ``nni.nas``.
``nnictl trial, whole run`` is the real trial process end to end (one architecture of the
quickstart space, one epoch on digits, its parameters handed in place of NNI's tuner), so lazy
imports made while it trains and times the model count too.

    python experiments/benchmarks/trial_imports.py --rounds 5 --seed 0
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WHOLE_TRIAL_CONFIG = """\
name: trial-imports
seed: 0
dataset: {name: digits}
space: {preset: conv_net_small}
strategy: {name: hw_evolution}
evaluator: {kind: train, epochs: 1, batch_size: 64}
hardware: {profile: host-cpu-1t, budgets: {latency_ms: 0.15}}
experiment: {max_trials: 1}
"""
WHOLE_TRIAL_PARAMETERS = {"depth": 1, "conv0_filters": 16, "conv0_kernel": 3, "conv0_bn": False, "dropout": 0.0}


def whole_trial_code(config_path: str | Path, parameters: dict | None = None) -> str:
    """Python source that runs ``python -m nni_hwnas.evaluation.hpo_trial --config CONFIG`` as nnictl
    would, with NNI's ``get_next_parameter`` answering ``parameters`` (default
    :data:`WHOLE_TRIAL_PARAMETERS`; no tuner runs outside an experiment), then prints the heavy
    packages the process ended up holding."""
    parameters = WHOLE_TRIAL_PARAMETERS if parameters is None else parameters
    return ("import runpy, sys, nni\n"
            f"nni.get_next_parameter = lambda: {parameters!r}\n"
            f"sys.argv = ['hpo_trial', '--config', {str(config_path)!r}]\n"
            "try:\n    runpy.run_module('nni_hwnas.evaluation.hpo_trial', run_name='__main__')\n"
            "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib' "
            "or m == 'nni.nas' or m.startswith('nni.nas.') or m == 'torch._dynamo'))\n")

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
                            check=True, cwd=REPO)
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
    workdir = Path(tempfile.mkdtemp(prefix="trial-imports-"))
    (workdir / "trial.yaml").write_text(WHOLE_TRIAL_CONFIG)
    routes = {**ROUTES, "nnictl trial, whole run": whole_trial_code(workdir / "trial.yaml")}
    runs: dict[str, list[dict]] = {name: [] for name in routes}
    for _ in range(args.rounds):
        for name, code in routes.items():
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
    from nni_hwnas.experiment.runinfo import machine_info, package_versions

    out.write_text(json.dumps({"seed": args.seed, "rounds": args.rounds, "rows": rows, "ratio": ratio,
                               "command": " ".join(["python", *sys.argv]), "versions": package_versions(),
                               "machine": machine_info()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
