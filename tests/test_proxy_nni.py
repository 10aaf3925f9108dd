"""The proxy evaluator inside a real NNI experiment: trials score candidates with RMI (no
training) and NNI's REST API, what the web UI reads, shows the whole metric dict."""

from __future__ import annotations


import pytest
from conftest import decode, free_port, rest

from nni_hwnas.experiment.nni_rest import NniRestClient
from nni_hwnas.evaluation.proxy_trial import make_context, proxy_metrics
from nni_hwnas.evaluation.reference import prepare_reference
from nni_hwnas.hardware.timing import torch_threads
from search_spaces import make_definition

DIGITS = {"name": "digits", "data_root": None, "download": False, "val_fraction": 0.2, "test_fraction": 0.2}
CHOICES = {"depth": [1, 2], "filters": [16, 32], "kernel": [3], "batch_norm": [False, True], "dropout": [0.0]}




def test_rmi_proxy_evaluator_reports_through_nni(tmp_path, nni_home):
    from nni.nas.evaluator import FunctionalEvaluator
    from nni.nas.experiment import NasExperiment
    from nni.nas.strategy import Random

    from nni_hwnas.evaluation.proxy_trial import score_and_report
    from search_spaces import make_model_space

    reference = prepare_reference(DIGITS, training={"epochs": 1, "train_subset": 128}, seed=0,
                                  cache_dir=tmp_path / "refs")
    space = make_model_space("conv_net", CHOICES, (1, 8, 8), 10)
    evaluator = FunctionalEvaluator(score_and_report, dataset=DIGITS, proxy="rmi", seed=0, reference=reference,
                                    batch_size=64, train_steps=0, threads=1)
    experiment = NasExperiment(space, evaluator, Random(seed=0, dedup=True))
    experiment.config.max_trial_number = 3
    experiment.config.trial_concurrency = 2
    experiment.config.experiment_working_directory = str(tmp_path / "exps")
    port = free_port()
    try:
        experiment.start(port)
        experiment._wait_completion()
        jobs = rest(port, "/trial-jobs")
        assert len(jobs) == 3 and all(job["status"] == "SUCCEEDED" for job in jobs), jobs
        finals = [decode(m["data"]) for m in rest(port, "/metric-data") if m["type"] == "FINAL"]
        views = NniRestClient(port).trials()
    finally:
        experiment.stop()

    assert len(finals) == 3
    definition = make_definition("conv_net", CHOICES, (1, 8, 8), 10)
    for metrics in finals:
        assert {"default", "proxy_score", "params", "flops", "peak_mem_kb", "within_budget"} <= set(metrics)
        assert metrics["default"] == metrics["proxy_score"] and 0.0 < metrics["default"] <= 1.0
        assert metrics["within_budget"] == 1 and metrics["params"] > 0 and metrics["flops"] > 0
    # Each trial's score is the one this process computes for the same architecture (deterministic).
    context = make_context(DIGITS, 0, 64, reference)
    with torch_threads(1):
        for view in views:
            expected = proxy_metrics(definition.describe(view.sample), context, "rmi", seed=0)
            assert view.metrics["default"] == pytest.approx(expected["default"], abs=1e-9)
            assert view.metrics["params"] == expected["params"]
    assert (tmp_path / "exps").is_dir()
