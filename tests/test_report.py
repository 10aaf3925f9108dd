"""Reports: hypervolume summaries over seeds, budgets, and the Markdown/PNG files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nni_hwnas.reporting.hypervolume_trace import HvReference
from nni_hwnas.reporting.report import first_reaching, summarise, write_report


def rows(*points):
    return [{"status": "SUCCEEDED", "accuracy": a, "latency_ms": l} for a, l in points]


def test_first_reaching_counts_trials_from_one():
    assert first_reaching(np.array([0.1, 0.5, 0.9]), 0.5) == 2
    assert first_reaching(np.array([0.1, 0.2]), 0.5) is None


def test_summary_medians_and_budgets():
    groups = {"good": [rows((0.9, 0.1)), rows((0.5, 0.5), (0.9, 0.1))],
              "bad": [rows((0.5, 0.5)), rows((0.5, 0.5), (0.6, 0.9))]}
    summaries, curves = summarise(groups, HvReference(cost_worst=1.0), cost_levels=[0.2])
    good, bad = (s.row() for s in summaries)
    assert good["hv_median"] == pytest.approx(0.81) and bad["hv_median"] == pytest.approx((0.25 + 0.26) / 2)
    assert good["trials_to_90pct"] == 1.5  # runs reached 0.9 * 0.81 at trials 1 and 2
    assert bad["trials_to_90pct"] is None
    assert good["best_acc_latency_ms<=0.2"] == 0.9 and bad["best_acc_latency_ms<=0.2"] is None


def test_write_report_files(tmp_path):
    path = write_report(tmp_path, {"A": [rows((0.9, 0.2), (0.8, 0.1))]}, title="t")
    assert path.read_text().startswith("# t")
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["rows"][0]["strategy"] == "A" and len(data["curves"]["A"][0]) == 2
    assert (tmp_path / "hypervolume.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "fronts.png").read_bytes()[:4] == b"\x89PNG"
