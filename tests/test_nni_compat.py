"""The NNI 3.0 workarounds in nni_hwnas/nni_compat, each against the NNI behaviour it answers."""

from __future__ import annotations

import json

import pytest

from nni_hwnas.nni_compat.builtins import builtin_defaults
from nni_hwnas.nni_compat.rest import declared_value, decode_metric, final_parameter_id


def test_builtin_dedup_state_survives_a_json_checkpoint(tmp_path):
    """NNI's own JsonSerializer fails on DeduplicationHelper's frozensets; ours round-trips them."""
    from nni.nas.strategy.utils import DeduplicationHelper
    from nni.nas.utils.serializer import JsonSerializer

    from nni_hwnas.nni_compat.resume import SetSafeJsonSerializer

    helper = DeduplicationHelper()
    for sample in ({"depth": 1, "conv0_filters": 16}, {"depth": 2, "dropout": 0.0, "kernels": [3, 5]}):
        assert helper.dedup(sample)
    state = {"strategy": {"dedup": helper.state_dict()}, "version": 1}
    with pytest.raises(TypeError, match="frozenset"):
        JsonSerializer().save(state, tmp_path / "plain")
    SetSafeJsonSerializer().save(state, tmp_path / "ours")
    json.loads((tmp_path / "ours.json").read_text())  # plain JSON on disk
    loaded = SetSafeJsonSerializer().load(tmp_path / "ours")
    restored = DeduplicationHelper()
    restored.load_state_dict(loaded["strategy"]["dedup"])
    assert not restored.dedup({"conv0_filters": 16, "depth": 1})  # still known: no trial re-runs
    assert not restored.dedup({"depth": 2, "dropout": 0.0, "kernels": [3, 5]})
    assert restored.dedup({"depth": 3})


def test_rest_quirks():
    assert decode_metric(json.dumps(json.dumps({"default": 0.5}))) == {"default": 0.5}
    assert final_parameter_id({"parameterId": "4"}, listed=2) == 4
    assert final_parameter_id({"parameterId": ""}, listed=2) == 2 and final_parameter_id(None, 7) == 7
    assert repr(declared_value([0.0, 0.2], 0)) == "0.0"
    assert declared_value([False, True], 0) == 0 and declared_value([1, 2], True) is True


def test_tpe_maximises_unless_told():
    assert builtin_defaults("TPE", {})["optimize_mode"] == "maximize"
    assert builtin_defaults("TPE", {"optimize_mode": "minimize"})["optimize_mode"] == "minimize"
    assert "optimize_mode" not in builtin_defaults("Random", {})


def test_one_budget_rule_for_strategy_and_results():
    from nni_hwnas.budgets import Budgets
    from nni_hwnas.reporting.results import pareto_rows
    from strategies.hw_evolution import HwEvolution
    from strategies.objectives import ObjectiveConfig

    # Within the latency budget, but over a params budget: the trial's own verdict decides.
    trials = [{"accuracy": 0.9, "latency_ms": 0.04, "within_budget": 0},
              {"accuracy": 0.8, "latency_ms": 0.05, "within_budget": 1},
              {"accuracy": 0.95, "latency_ms": 0.09}]  # no verdict: its costs against the limits decide
    budgets = Budgets(latency_ms=0.06)
    assert [budgets.admits(t) for t in trials] == [False, True, False]
    evo = HwEvolution({"a": (0, 1, 2)}, objectives=ObjectiveConfig(score_metric="accuracy"), budget=0.06, seed=0)
    assert evo.budgets == budgets  # the float argument is the same one object
    for value, metrics in enumerate(trials):
        evo.tell({"a": value}, metrics)
    strategy_front = [r["metrics"]["accuracy"] for r in evo.pareto_front()]
    rows = [{"status": "SUCCEEDED", **t} for t in trials]
    assert strategy_front == [r["accuracy"] for r in pareto_rows(rows, ("accuracy", "latency_ms"), budgets=budgets)] == [0.8]

def test_a_manager_answering_as_another_experiment_gets_no_post():
    """Quirk 4: NNI's start waits for *any* manager on the port, then posts its config there. The
    wait is wrapped so that a manager answering as another experiment is refused first, while a
    fresh manager (no id before NNI's post) or our own passes."""
    import http.server
    import threading

    import nni.experiment.launcher as launcher

    from conftest import free_port
    from nni_hwnas.errors import UserError
    from nni_hwnas.nni_compat.resume import _refuse_foreign_manager

    answers = {"/api/v1/nni/check-status": b'{"status": "RUNNING"}'}

    class Manager(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = answers.get(self.path, b"")
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Manager)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with _refuse_foreign_manager("mine1234"):
            launcher._check_rest_server(port)  # fresh manager: no id yet
            answers["/api/v1/nni/experiment"] = b'{"id": "mine1234"}'
            launcher._check_rest_server(port)
            answers["/api/v1/nni/experiment"] = b'{"id": "plain999"}'
            with pytest.raises(UserError, match="served by experiment 'plain999', not by experiment 'mine1234'"):
                launcher._check_rest_server(port)
        assert launcher._check_rest_server.__name__ == "_check_rest_server"  # restored
    finally:
        server.shutdown()
