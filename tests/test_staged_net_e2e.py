"""staged_net end to end: a freshly profiled table holds every op, and a real NNI experiment of a
few trials searches it with progressive, three-objective hw_evolution."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import REPO, STAGED_NET_TABLE, free_port, write_staged_net_search
from nni_hwnas.hardware.latency_table import LayerKey
from nni_hwnas.hardware.predictor import LatencyPredictor
from nni_hwnas.hardware.profiler import TimingSettings, open_table, profile_spaces
from nni_hwnas.hardware.profiles import load_profile
from search_spaces import load_preset, make_definition
from search_spaces.ops import ATTENTIONS, OPERATORS

TABLE = STAGED_NET_TABLE


def test_every_op_and_attention_is_in_a_freshly_profiled_table(tmp_path):
    space, choices = load_preset("staged_net_s3")
    definition = make_definition(space, {**choices, "width": [1.0]}, (1, 8, 8), 10)  # every op, fewer widths
    profile = load_profile("host-cpu-1t")
    quick = TimingSettings(warmup_runs=1, n_repeats=3, min_repeats=2, max_seconds=0.002, noisy_retries=0, n_inputs=2)
    table = open_table(profile, tmp_path / "fresh.json", quick, fresh=True)
    report = profile_spaces(table, profile, [definition], quick, fit_models=3, progress=False)
    assert report.layers.measured == len(definition.enumerate_layers()) == len(table)
    keys = set(table.rows)
    assert {k.op for k in keys} == set(OPERATORS) - {"linear"}  # staged_net classifies with gap_linear
    assert {k.attention for k in keys} == {"none", *ATTENTIONS}
    assert any(k.residual for k in keys) and all(t.median_ms > 0 for t in table.rows.values())
    predictor = LatencyPredictor(table, definition)
    rng = np.random.default_rng(0)
    assert all(predictor.predict(definition.random_sample(rng)) > 0 for _ in range(20))


def test_shipped_staged_net_table_covers_the_presets_at_8x8_and_28x28():
    from nni_hwnas.hardware.latency_table import LatencyTable

    table = LatencyTable.load(TABLE, "host-cpu-1t")
    for shape, classes in (((1, 8, 8), 10), ((1, 28, 28), 2), ((1, 28, 28), 4)):
        definition = make_definition(*load_preset("staged_net_s3"), shape, classes)
        assert {LayerKey.from_spec(s) for s in definition.enumerate_layers()} <= set(table.rows)




def test_real_nni_experiment_searches_staged_net_progressively_in_3d(tmp_path, nni_home):
    config = write_staged_net_search(tmp_path / "staged.yaml", "staged-e2e", 5, "exps", concurrency=2,
                                     strategy_args={"progressive": {"after_trials": [2, 3]}})
    script = Path(sys.executable).with_name("nni-hwnas")
    result = subprocess.run([str(script), "search", "--config", str(config), "--port", str(free_port()),
                             "--output", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "out"
    trials = json.loads((out / "trials.json").read_text())
    assert len(trials) == 4 and all(t["status"] == "SUCCEEDED" for t in trials)
    stage_one = set(load_preset("staged_net_s1")[1]["op"])
    assert all(t["latency_ms"] > 0 and t["params"] > 0 and 0 <= t["accuracy"] <= 1 for t in trials)
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto["objectives"] == ["accuracy", "latency_ms", "params"] and 0 < pareto["hypervolume"]["value"] <= 1
    assert (out / "pareto_parallel.png").stat().st_size > 10_000
    ops = {v for t in trials for k, v in t.items() if k.endswith("_op")}
    assert ops <= set(load_preset("staged_net_s3")[1]["op"])
    # The two trials proposed first (before the first widening) use stage 1's ops only.
    by_start = sorted(trials, key=lambda t: t["parameter_id"])[:2]
    assert all(v in stage_one | {"none"} for t in by_start for k, v in t.items() if k.endswith(("_op", "_attn")))
