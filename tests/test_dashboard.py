"""The dashboard: its data agrees with the results files, its server updates only on change, its
CLI fails in one line, and in a real NNI search headless Chromium sees every trial, the front of
pareto.json and a new trial arriving without a reload (screenshots saved as artifacts)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import BUNDLED_1T_TABLE, REPO, default_sigint, free_port, rest
from nni_hwnas.dashboard.browser import HeadlessPage, chromium_path
from nni_hwnas.dashboard.server import DashboardServer
from nni_hwnas.dashboard.snapshot import ExperimentData, build_snapshot
from nni_hwnas.dashboard.sources import DatabaseSource, LiveSource, resolve_source, results_dir_data
from nni_hwnas.dashboard.export import write_results_with_dashboard

SCRIPT = Path(sys.executable).with_name("nni-hwnas")
FINISHED = "window.dashboard.snapshot.experiments[0].trials.filter(t => t.status === 'SUCCEEDED').length"
POINTS = "document.querySelectorAll('#front-plot .scatterlayer path.point').length"
FRONT_IN_TABLE = "[...document.querySelectorAll('#trials-table tbody tr[data-front=\"1\"]')].map(r => r.dataset.trial)"
FRONT_TRACE = "document.getElementById('front-plot').data[3].customdata.filter(id => id !== undefined)"


def hand_rows() -> list[dict]:
    """Six trials whose front under a 0.3 ms budget is known by hand: a, b, c (d is over budget)."""
    spec = [("a", 0.60, 0.10), ("b", 0.70, 0.20), ("c", 0.80, 0.30), ("d", 0.95, 0.50), ("e", 0.55, 0.25)]
    rows = [{"trial_id": t, "parameter_id": i, "status": "SUCCEEDED", "duration_s": 1.0, "arch.depth": i + 1,
             "default": acc, "accuracy": acc, "latency_ms": lat, "params": int(lat * 1e4),
             "within_budget": int(lat <= 0.3)} for i, (t, acc, lat) in enumerate(spec)]
    return rows + [{"trial_id": "f", "parameter_id": 5, "status": "FAILED", "duration_s": 1.0, "arch.depth": 2}]


def test_snapshot_front_and_hypervolume_match_results_files(tmp_path):
    write_results_with_dashboard(tmp_path, hand_rows(), {"seed": 0, "hardware": {"budgets": {"latency_ms": 0.3}}})
    data = results_dir_data(tmp_path)
    assert data.budgets.limits() == {"latency_ms": 0.3} and data.objectives == ("accuracy", "latency_ms")
    hv_file = json.loads((tmp_path / "hypervolume.json").read_text())
    snapshot = build_snapshot([data], live=False)
    exp = snapshot["experiments"][0]
    assert exp["front"] == ["a", "b", "c"] == [r["trial_id"] for r in json.loads((tmp_path / "pareto.json").read_text())["front"]]
    assert exp["fronts"]["accuracy|params"] == ["a", "b", "c"]
    assert exp["hypervolume"] == pytest.approx([r["hypervolume"] for r in hv_file["curve"]])
    assert exp["statuses"] == {"SUCCEEDED": 5, "FAILED": 1}
    # The static page embeds this snapshot and Plotly.js, and no URL it would have to fetch.
    page = (tmp_path / "dashboard.html").read_text()
    assert '"front": ["a", "b", "c"]' in page and "Plotly" in page and "<script src=" not in page


def test_front_ids_agree_with_pareto_rows_on_ties_and_budgets():
    """The sort that thins the candidates never changes the front (coarse grid: many exact ties)."""
    import random

    from nni_hwnas.dashboard.snapshot import front_ids
    from nni_hwnas.reporting.results import pareto_rows

    rng = random.Random(1)
    rows = [{"trial_id": f"t{i}", "status": rng.choice(["SUCCEEDED"] * 9 + ["FAILED"]),
             "accuracy": rng.randint(0, 20) / 20, "latency_ms": rng.randint(1, 30) / 100,
             "params": rng.randint(1, 8) * 1000, "within_budget": int(rng.random() < 0.8)} for i in range(600)]
    for objectives in (("accuracy", "latency_ms"), ("accuracy", "params"), ("latency_ms", "params")):
        expected = [r["trial_id"] for r in pareto_rows(rows, objectives)]
        assert front_ids(rows, objectives) == expected and len(expected) >= 3


class _GrowingSource:
    """An in-memory source whose trial list the test extends."""

    def __init__(self, rows):
        self.rows = rows

    def read(self) -> ExperimentData:
        return ExperimentData(label="mem", rows=list(self.rows), budgets={"latency_ms": 0.3})


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def test_server_sends_a_snapshot_only_when_trials_change():
    rows = hand_rows()[:3]
    source = _GrowingSource(rows)
    with DashboardServer([source], port=free_port(), interval_s=0.2) as server:
        assert server.server_address[0] == "127.0.0.1"
        status, page = _get(server.url)
        assert status == 200 and b'src="plotly.min.js"' in page
        assert _get(server.url + "plotly.min.js")[1].startswith(b"/**")
        first = json.loads(_get(server.url + "api/snapshot")[1])
        assert len(first["experiments"][0]["trials"]) == 3
        again = json.loads(_get(server.url + f"api/snapshot?version={first['version']}")[1])
        assert again["unchanged"] and again["version"] == first["version"]
        rows.append(hand_rows()[3])
        deadline = time.monotonic() + 10
        while json.loads(_get(server.url + f"api/snapshot?version={first['version']}")[1]).get("unchanged"):
            assert time.monotonic() < deadline, "the new trial never reached the snapshot"
            time.sleep(0.1)
        latest = json.loads(_get(server.url + "api/snapshot")[1])
        assert latest["version"] == first["version"] + 1 and len(latest["experiments"][0]["trials"]) == 4


def _one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert all(n in lines[0] for n in needles), lines[0]


def test_dashboard_cli_port_in_use_and_unknown_id_fail_in_one_line(tmp_path, nni_home):
    write_results_with_dashboard(tmp_path / "res", hand_rows(), {"seed": 0})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run([str(SCRIPT), "dashboard", str(tmp_path / "res"), "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    _one_line_error(busy, f"port {port}", "--port")
    with socket.socket() as taken:  # `search` checks its dashboard's port before NNI starts
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        search = subprocess.run([str(SCRIPT), "search", "--config", str(REPO / "experiments" / "quickstart.yaml"),
                                 "--port", str(free_port()), "--dashboard-port", str(port)],
                                capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert search.returncode == 2 and "Traceback" not in search.stderr, search.stderr
    last = search.stderr.strip().splitlines()[-1]  # above it: the profile's stale-table warning, if any
    assert last.startswith("nni-hwnas: error: dashboard port") and f"{port}" in last and "--dashboard-port" in last
    assert not (nni_home / "nni-experiments").exists()  # NNI never started
    unknown = subprocess.run([str(SCRIPT), "dashboard", "nosuchexp", "--experiment-dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=60)
    _one_line_error(unknown, "'nosuchexp' not found", "--experiment-dir")


@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (.ci/run installs Debian's package)")
def test_static_report_dashboard_overlays_runs_sorts_filters_and_exports(tmp_path):
    """A two-run report's dashboard.html, from file://: curves overlaid, axes, log scale, table, CSV."""
    from nni_hwnas.reporting.report import write_report

    other = [{**r, "trial_id": r["trial_id"] + "2", "latency_ms": r["latency_ms"] * 2} if "latency_ms" in r
             else {**r, "trial_id": r["trial_id"] + "2"} for r in hand_rows()]
    report = write_report(tmp_path, {"A": [hand_rows()], "B": [other]}, title="two runs")
    assert "[Interactive dashboard](dashboard.html)" in report.read_text()
    with HeadlessPage() as page:
        page.goto((tmp_path / "dashboard.html").as_uri())
        page.wait_for("window.dashboard && window.dashboard.renders > 0")
        assert page.js("document.getElementById('hv-plot').data.map(t => t.name)") == ["A", "B"]
        assert "latency_ms=" in page.js("document.getElementById('hv-reference').textContent")
        assert page.js(POINTS) == 5
        # Hovering a front point shows its architecture and every metric.
        page.hover("#front-plot .scatterlayer .trace:nth-child(4) path.point")
        label = page.wait_for("document.querySelector('#front-plot .hoverlayer').textContent")
        assert all(key in label for key in ("depth", "accuracy", "latency_ms", "params", "within_budget")), label
        # Another cost axis, on a log scale: the front of that pair is drawn.
        page.js("const x = document.getElementById('x-axis'); x.value = 'params'; x.dispatchEvent(new Event('change'));"
                "const l = document.getElementById('log-x'); l.checked = true; l.dispatchEvent(new Event('change')); true")
        assert page.js("document.getElementById('front-plot').layout.xaxis.type") == "log"
        assert sorted(page.js(FRONT_TRACE)) == ["a", "b", "c"]
        # Sort by accuracy, descending on a second click; filter; CSV of what is shown.
        rows = "[...document.querySelectorAll('#trials-table tbody tr')].map(r => r.dataset.trial)"
        page.js("document.querySelector('#trials-table th[data-key=\"accuracy\"]').click(); true")
        assert page.js(rows) == ["e", "a", "b", "c", "d", "f"]
        page.js("document.querySelector('#trials-table th[data-key=\"accuracy\"]').click(); true")
        assert page.js(rows)[:2] == ["d", "c"]
        page.js("const f = document.getElementById('filter-front'); f.value = 'front'; f.dispatchEvent(new Event('change')); true")
        assert sorted(page.js(rows)) == ["a", "b", "c"]
        csv = page.js("window.dashboard.csvText()").splitlines()
        assert csv[0].startswith("#,trial_id,status,front,accuracy,latency_ms") and len(csv) == 4
        page.js("const b = document.getElementById('filter-budget'); b.value = 'over'; b.dispatchEvent(new Event('change'));"
                "const g = document.getElementById('filter-front'); g.value = 'all'; g.dispatchEvent(new Event('change')); true")
        assert page.js(rows) == ["d"]
        page.js("const e = document.getElementById('experiment'); e.value = '1'; e.dispatchEvent(new Event('change')); true")
        assert page.js("document.getElementById('status').textContent").startswith("6 trials")
        assert page.js(rows) == ["d2"]  # within_budget as the trials reported it
        # A results dir's page draws its budget; on a log axis the label must not stretch the range
        # (Plotly wants log10 units for annotations there). The largest cost is 0.5 ms: log10 < 0.
        write_results_with_dashboard(tmp_path / "res", hand_rows(), {"seed": 0, "hardware": {"budgets": {"latency_ms": 0.3}}})
        page.goto((tmp_path / "res" / "dashboard.html").as_uri())
        page.wait_for("window.dashboard && window.dashboard.renders > 0")
        page.js("const l = document.getElementById('log-x'); l.checked = true; l.dispatchEvent(new Event('change')); true")
        assert "budget latency_ms ≤ 0.3" in page.js("document.getElementById('front-plot').textContent")
        assert page.js("document.getElementById('front-plot').layout.xaxis.range[1]") < 0


CONFIG = """
name: dashboard-e2e
seed: 5
dataset: {name: digits}
space: {preset: conv_net_small}
strategy: {name: Random}
evaluator: {epochs: 1, latency_repeats: 3}
hardware: {profile: host-cpu-1t, table: """ + str(BUNDLED_1T_TABLE) + """, budgets: {latency_ms: 0.06}}
experiment: {max_trials: 4, concurrency: 1, working_directory: exps}
"""


def _artifacts(tmp_path: Path) -> Path:
    path = Path(os.environ.get("NNI_HWNAS_ARTIFACTS", tmp_path / "artifacts")) / "dashboard"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (.ci/run installs Debian's package)")
def test_live_dashboard_of_a_real_search_in_headless_chromium(tmp_path, nni_home):
    config = tmp_path / "dash.yaml"
    config.write_text(CONFIG)
    out, port, board_port = tmp_path / "results", free_port(), free_port()
    proc = subprocess.Popen([str(SCRIPT), "search", "--config", str(config), "--port", str(port), "--output", str(out),
                             "--dashboard-port", str(board_port), "--keep-ui"], cwd=REPO, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=default_sigint)
    shots = _artifacts(tmp_path)
    try:
        with HeadlessPage() as page:
            deadline = time.monotonic() + 240
            while True:  # open the page once some, but not all, trials finished
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "no trial finished in 240 s"
                try:
                    done = sum(j["status"] == "SUCCEEDED" for j in rest(port, "/trial-jobs") or [])
                except (OSError, ValueError):  # manager starting: no answer, or its web page instead of JSON
                    done = 0
                if done >= 1:
                    break
                time.sleep(0.5)
            page.goto(f"http://127.0.0.1:{board_port}/")
            before = page.wait_for(f"window.dashboard.renders > 0 && {FINISHED}")
            assert before < 4, "every trial finished before the page opened; nothing left to arrive"
            page.js("window.__sameDocument = true")
            # `nni-hwnas dashboard <id>` finds the running experiment's REST API through NNI's experiment list.
            experiment_id = rest(port, "/experiment")["id"]
            live = resolve_source(experiment_id)
            assert isinstance(live, LiveSource) and live.port == port
            # A new trial appears without a reload: more points, same document.
            page.wait_for(f"{POINTS} > {before} && {FINISHED} > {before}", timeout_s=180)
            assert page.js("window.__sameDocument === true")
            page.screenshot(shots / "live-while-running.png")

            while not (out / "run.json").exists():  # run.json is written last
                assert proc.poll() is None and time.monotonic() < deadline + 240, "search did not finish"
                time.sleep(1)
            time.sleep(1)
            jobs = rest(port, "/trial-jobs")
            succeeded = sum(j["status"] == "SUCCEEDED" for j in jobs)
            page.wait_for(f"{FINISHED} === {succeeded} && {POINTS} === {succeeded}", timeout_s=30)
            assert page.js("window.__sameDocument === true")
            # One point per finished trial; the front is pareto.json's, in the table and in the plot.
            front = [r["trial_id"] for r in json.loads((out / "pareto.json").read_text())["front"]]
            assert sorted(page.js(FRONT_IN_TABLE)) == sorted(front)
            assert sorted(page.js(FRONT_TRACE)) == sorted(front)
            assert page.js("document.querySelectorAll('#trials-table tbody tr').length") == len(jobs)
            over = sum(t.get("within_budget") == 0 for t in json.loads((out / "trials.json").read_text()))
            assert page.js("document.querySelectorAll('#front-plot .scatterlayer .trace')[1]"
                           ".querySelectorAll('path.point').length") == over
            assert "budget latency_ms ≤ 0.06" in page.js("document.getElementById('front-plot').textContent")
            # A click on a point opens NNI's web UI (its trial list: NNI 3.0 has no per-trial URL).
            page.js("window.scrollTo(0, 0); window.open = (url) => { window.__opened = url; }; true")
            page.hover("#front-plot .scatterlayer .trace:nth-child(4) path.point", click=True)
            assert page.wait_for("window.__opened") == f"http://127.0.0.1:{port}/detail"
            for view in ("front-view", "progress-view", "many-view", "table-view"):
                page.screenshot(shots / f"live-{view}.png", f"#{view}")
            page.screenshot(shots / "live-full.png")

            # The static export opens offline from file:// with the same points.
            page.goto((out / "dashboard.html").resolve().as_uri())
            page.wait_for("window.dashboard && window.dashboard.renders > 0")
            assert page.js(POINTS) == succeeded
            assert sorted(page.js(FRONT_IN_TABLE)) == sorted(front)
            page.screenshot(shots / "static-full.png")
    finally:
        _interrupt(proc)
    assert proc.returncode == 0
    log = proc.stdout.read()
    assert f"dashboard at http://127.0.0.1:{board_port}/" in log
    for shot in shots.glob("live-*.png"):
        assert shot.stat().st_size > 5_000
    # Stopped, the same id is read from NNI's database instead, with the same trials.
    assert isinstance(resolve_source(experiment_id, [tmp_path / "exps"]), DatabaseSource)
    served = dashboard_serves(experiment_id, dict(os.environ), "--experiment-dir", str(tmp_path / "exps"))
    assert sorted(t["trial_id"] for t in served["trials"]) == sorted(j["trialJobId"] for j in jobs)
    assert served["front"] == front


def dashboard_serves(source: str, env: dict, *options: str) -> dict:
    """Run ``nni-hwnas dashboard SOURCE`` and return the experiment its server sends (then Ctrl-C it)."""
    port = free_port()
    proc = subprocess.Popen([str(SCRIPT), "dashboard", source, "--port", str(port), *options], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                snapshot = json.loads(_get(f"http://127.0.0.1:{port}/api/snapshot")[1])
                if "experiments" in snapshot:
                    return snapshot["experiments"][0]
            except OSError:
                pass
            assert time.monotonic() < deadline, "the dashboard did not answer in 120 s"
            time.sleep(0.5)
    finally:
        _interrupt(proc)


def _interrupt(proc: subprocess.Popen) -> int:
    """Ctrl-C the search (it writes results, then stops NNI); kill its group only if it hangs."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()
