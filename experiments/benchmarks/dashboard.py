"""Benchmark: is the dashboard cheap to poll and responsive with 2,000 trials?

Generated load, not search results: seeded random trials with the metric contract's keys (and
NNI's REST payload shapes for the polling cost), at 200 and 2,000 trials side by side. Measures

- poll: one polling interval of the live source against a stub NNI serving the same REST payloads:
  unchanged (two GETs plus a status check, hashed: what a running search pays every 2 s) and
  changed (the rows re-joined through ``assemble_trials``);
- rebuild: building the snapshot when a trial finished (fronts for every axis pair, hypervolume);
- in headless Chromium (software WebGL): load and first render, one update with a new trial (and
  its parts; the WebGL views redraw only while on screen), those views drawn once scrolled to,
  changing the x axis, sorting and filtering the trials table.

Medians of ``--repeats`` runs. Prints a table and writes JSON.

    .venv/bin/python experiments/benchmarks/dashboard.py [--sizes 200,2000] [--repeats 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def make_rows(n: int, seed: int) -> list[dict]:
    """``n`` generated trials: accuracy rising with cost, 5% failed, a third over a 0.15 ms budget."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        row = {"trial_id": f"gen{i:05d}", "parameter_id": i, "status": "FAILED" if rng.random() < 0.05 else "SUCCEEDED",
               "duration_s": rng.uniform(5, 9), **{f"arch.conv{k}_filters": rng.choice([16, 32, 64, 128]) for k in range(1, 4)},
               "arch.depth": rng.randint(1, 5)}
        if row["status"] == "SUCCEEDED":
            latency = rng.uniform(0.02, 0.3)
            accuracy = min(0.995, 0.5 + 0.45 * rng.random() ** 0.5 * (latency / 0.3) ** 0.3)
            row.update(default=accuracy, accuracy=accuracy, latency_ms=latency, params=int(latency * 1e5),
                       flops=int(latency * 3e6), peak_mem_kb=latency * 90, within_budget=int(latency <= 0.15))
        rows.append(row)
    return rows


def nni_payloads(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """The same trials as NNI's ``/trial-jobs`` and ``/metric-data`` return them (doubly encoded data)."""
    jobs, metrics = [], []
    for row in rows:
        sample = {k[5:]: v for k, v in row.items() if k.startswith("arch.")}
        params = json.dumps({"parameter_id": row["parameter_id"], "parameters": {"sample": sample}})
        jobs.append({"trialJobId": row["trial_id"], "status": row["status"], "hyperParameters": [params],
                     "startTime": 1000 * row["parameter_id"], "endTime": 1000 * row["parameter_id"] + 5000})
        values = {k: v for k, v in row.items() if k not in ("trial_id", "parameter_id", "status", "duration_s")
                  and not k.startswith("arch.")}
        if values:
            metrics.append({"trialJobId": row["trial_id"], "parameterId": str(row["parameter_id"]), "type": "FINAL",
                            "sequence": 0, "timestamp": 1000 * row["parameter_id"] + 5000,
                            "data": json.dumps(json.dumps(values))})
    return jobs, metrics


def median_ms(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def stub_nni(jobs: list[dict], metrics: list[dict]):
    """A local HTTP server answering NNI's three REST paths the poller reads, with the given payloads."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bodies = {"/api/v1/nni/trial-jobs": json.dumps(jobs).encode(), "/api/v1/nni/metric-data": json.dumps(metrics).encode(),
              "/api/v1/nni/check-status": b'{"status": "RUNNING"}'}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = bodies[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def poll_timings(jobs: list[dict], metrics: list[dict], repeats: int) -> dict[str, float]:
    """One poller interval against a stub NNI: nothing changed (the common case) vs a changed answer."""
    from nni_hwnas.dashboard.sources import LiveSource

    server = stub_nni(jobs, metrics)
    try:
        port = server.server_address[1]
        warm = LiveSource(port)
        warm.read()
        unchanged = median_ms(warm.read, repeats)
        changed = median_ms(lambda: LiveSource(port).read(), repeats)
    finally:
        server.shutdown()
        server.server_close()
    return {"poll_unchanged_ms": unchanged, "poll_changed_ms": changed}


class ListSource:
    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    def read(self):
        from nni_hwnas.dashboard.snapshot import ExperimentData

        return ExperimentData(label="generated", rows=list(self.rows), budgets={"latency_ms": 0.15})


def browser_timings(rows: list[dict], repeats: int) -> dict[str, float]:
    from nni_hwnas.dashboard.browser import HeadlessPage
    from nni_hwnas.dashboard.server import DashboardServer
    from nni_hwnas.experiment.launch import free_port

    source = ListSource(list(rows[:-1]))
    measured: dict[str, list[float]] = {k: [] for k in ("load_ms", "render_ms", "update_ms", "axis_ms", "sort_ms", "filter_ms")}
    sync = "(action => { const t = performance.now(); action(); document.body.offsetHeight; return performance.now() - t; })"
    with DashboardServer([source], port=free_port(), interval_s=0.25) as server, HeadlessPage(timeout_s=120) as page:
        for i in range(repeats):
            source.rows = list(rows[:-1])
            server.cache.refresh()
            started = time.perf_counter()
            page.goto(server.url)
            page.wait_for("window.dashboard && window.dashboard.renders > 0")
            measured["load_ms"].append((time.perf_counter() - started) * 1000)
            measured["render_ms"].append(page.js("window.dashboard.lastRenderMs"))
            renders = page.js("window.dashboard.renders")
            source.rows = list(rows)  # one more trial finishes
            page.wait_for(f"window.dashboard.renders > {renders}")
            measured["update_ms"].append(page.js("window.dashboard.lastRenderMs"))
            for part, ms in page.js("window.dashboard.timings").items():
                measured.setdefault(f"update_{part}_ms", []).append(ms)
            page.js("document.getElementById('many-view').scrollIntoView(); true")  # then the WebGL views draw
            page.wait_for("window.dashboard.stale.size === 0")
            measured.setdefault("many_on_screen_ms", []).append(page.js("window.dashboard.timings.many"))
            measured.setdefault("parcoords_ms", []).append(page.js("window.dashboard.timings.parcoords"))
            page.js("window.scrollTo(0, 0); window.__x = document.getElementById('x-axis'); true")
            axis = "params" if i % 2 == 0 else "latency_ms"
            measured["axis_ms"].append(page.js(f"{sync}(() => {{ __x.value = '{axis}'; __x.dispatchEvent(new Event('change')); }})"))
            measured["sort_ms"].append(page.js(f"{sync}(() => document.querySelector('#trials-table th[data-key=\"accuracy\"]').click())"))
            measured["filter_ms"].append(page.js(f"{sync}(() => {{ const f = document.getElementById('filter-front'); "
                                                 f"f.value = '{'front' if i % 2 == 0 else 'all'}'; f.dispatchEvent(new Event('change')); }})"))
        points = page.js("document.querySelectorAll('#front-plot .scatterlayer path.point').length")
    result = {k: statistics.median(v) for k, v in measured.items()}
    result["points_drawn"] = points
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,2000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--json", default=str(REPO / "experiments" / "benchmarks" / "results" / "dashboard.json"))
    args = parser.parse_args()

    from nni_hwnas.dashboard.snapshot import ExperimentData, build_snapshot
    from nni_hwnas.experiment.runinfo import machine_info, package_versions

    table = []
    load_before = os.getloadavg()
    for n in [int(s) for s in args.sizes.split(",")]:
        rows = make_rows(n, args.seed)
        jobs, metrics = nni_payloads(rows)
        data = ExperimentData(label="generated", rows=rows, budgets={"latency_ms": 0.15})
        snapshot = build_snapshot([data], live=True)
        entry = {
            "trials": n, "front_size": len(snapshot["experiments"][0]["front"]),
            **poll_timings(jobs, metrics, args.repeats),
            "rebuild_ms": median_ms(lambda: json.dumps(build_snapshot([data], live=True)), args.repeats),
            "snapshot_kb": len(json.dumps(snapshot)) / 1024,
        }
        if not args.no_browser:
            entry.update(browser_timings(rows, args.repeats))
        table.append(entry)
        print(f"measured {n} trials", file=sys.stderr)

    keys = list(table[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for entry in table:
        print("| " + " | ".join(f"{entry[k]:.1f}" if isinstance(entry[k], float) else str(entry[k]) for k in keys) + " |")
    if len(table) > 1:
        ratios = {k: table[-1][k] / table[0][k] for k in keys if k.endswith("_ms") and table[0][k]}
        print(f"ratios {table[-1]['trials']}/{table[0]['trials']} trials: " + ", ".join(f"{k} {v:.1f}x" for k, v in ratios.items()))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seed": args.seed, "repeats": args.repeats, "load": "generated trials (not search results)",
                               "rows": table,
                               "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
                               "machine": machine_info(), "versions": package_versions()}, indent=2) + "\n")
    print(f"load average (1 min) before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
