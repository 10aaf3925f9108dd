// nni-hwnas dashboard: draws one snapshot (see nni_hwnas/dashboard/snapshot.py); computes no front itself.
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("dashboard-config").textContent);
  const embedded = JSON.parse(document.getElementById("snapshot").textContent);
  // Tests and the benchmark read this object (version, render counts, timings).
  const state = { snapshot: null, version: -1, experiment: 0, sort: { key: "#", desc: false },
                  renders: 0, updates: 0, lastRenderMs: null, timings: {}, tableLimit: 200 };
  window.dashboard = state;
  const $ = (id) => document.getElementById(id);
  const FAILED = new Set(["FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED"]);
  const isNum = (v) => typeof v === "number" && isFinite(v);
  const fmt = (v) => (isNum(v) && !Number.isInteger(v) ? Number(v.toPrecision(4)).toString() : v === null || v === undefined ? "" : String(v));
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  const experiment = () => state.snapshot.experiments[state.experiment] || state.snapshot.experiments[0];

  function axisTitle(name) {
    const m = state.snapshot.metrics[name];
    return m ? `${name}${m.unit ? " (" + m.unit + ")" : ""} ${m.higher_is_better ? "↑" : "↓"}` : name;
  }

  function fillSelect(select, values, labels, fallback) {
    const key = values.join("\u0001") + labels.join("\u0001");
    const current = select.value;
    if (select.dataset.options !== key) {
      select.innerHTML = values.map((v, i) => `<option value="${esc(v)}">${esc(labels[i])}</option>`).join("");
      select.dataset.options = key;
    }
    select.value = values.includes(current) ? current : values.includes(fallback) ? fallback : values[0] || "";
  }

  function metricKeys(exp) {
    const skip = new Set(["trial_id", "parameter_id", "status", "duration_s", "_index"]);
    const keys = new Set();
    for (const row of exp.trials) for (const k of Object.keys(row)) if (!skip.has(k) && !k.startsWith("arch.")) keys.add(k);
    const first = [...exp.objectives, ...exp.score_axes, ...exp.cost_axes, "within_budget"];
    return [...new Set([...first.filter((k) => keys.has(k)), ...[...keys].sort()])];
  }

  function hover(row, exp) {
    const lines = [`<b>${esc(row.trial_id)}</b> (#${row._index}, ${esc(row.status)})`];
    for (const label of exp.arch_labels) if (label in row) lines.push(`${esc(label.slice(5))}: ${esc(fmt(row[label]))}`);
    for (const key of exp._metricKeys) if (key in row) lines.push(`<i>${esc(key)}</i>: ${esc(fmt(row[key]))}`);
    if (exp.nni_url) lines.push("click: open NNI's trial list");
    return lines.join("<br>");
  }

  function drawFront() {
    const exp = experiment();
    const x = $("x-axis").value, y = $("y-axis").value;
    const onFront = new Set(exp.fronts[`${y}|${x}`] || []);
    const groups = { within: [], over: [], failed: [], front: [] };
    let failedNoMetrics = 0;
    for (const row of exp.trials) {
      const placed = isNum(row[x]) && isNum(row[y]);
      if (FAILED.has(row.status)) { if (placed) groups.failed.push(row); else failedNoMetrics += 1; continue; }
      if (row.status !== "SUCCEEDED" || !placed) continue;
      if (onFront.has(row.trial_id)) groups.front.push(row);
      else if (row.within_budget === 0) groups.over.push(row);
      else groups.within.push(row);
    }
    groups.front.sort((a, b) => a[x] - b[x]);
    // An empty trace gets one null point so that its legend entry (e.g. "failed (0)") still shows.
    const trace = (rows, name, marker, extra) => Object.assign({
      type: "scatter", mode: "markers", name, x: rows.length ? rows.map((r) => r[x]) : [null], y: rows.length ? rows.map((r) => r[y]) : [null],
      text: rows.map((r) => hover(r, exp)), customdata: rows.map((r) => r.trial_id), hoverinfo: "text", marker }, extra || {});
    const failedName = `failed (${groups.failed.length + failedNoMetrics}${failedNoMetrics ? ", " + failedNoMetrics + " without metrics" : ""})`;
    const traces = [
      trace(groups.within, `within budget (${groups.within.length})`, { color: "#4a78b5", size: 7, opacity: 0.7 }),
      trace(groups.over, `over budget (${groups.over.length})`, { color: "#e08a2c", size: 8, symbol: "x" }),
      trace(groups.failed, failedName, { color: "#b00", size: 9, symbol: "x-thin-open", line: { width: 2 } }, { visible: true }),
      trace(groups.front, `Pareto front (${groups.front.length})`, { color: "#d62728", size: 11, line: { color: "#fff", width: 1 } },
            { mode: "lines+markers", line: { shape: "hv", color: "#d62728", width: 2 } }),
    ];
    const shapes = [], annotations = [];
    for (const [axis, metric] of [["x", x], ["y", y]]) {
      const limit = exp.budgets[metric];
      if (!isNum(limit)) continue;
      const line = { type: "line", line: { color: "#e08a2c", dash: "dash", width: 2 } };
      if (axis === "x") shapes.push(Object.assign(line, { xref: "x", yref: "paper", x0: limit, x1: limit, y0: 0, y1: 1 }));
      else shapes.push(Object.assign(line, { xref: "paper", yref: "y", x0: 0, x1: 1, y0: limit, y1: limit }));
      // Plotly places annotations on a log axis in log10 units (shapes take data values).
      const at = $(`log-${axis}`).checked ? Math.log10(limit) : limit;
      annotations.push(axis === "x"
        ? { x: at, xref: "x", y: 1, yref: "paper", text: `budget ${metric} ≤ ${fmt(limit)}`, showarrow: false, xanchor: "left", font: { color: "#a65" } }
        : { y: at, yref: "y", x: 1, xref: "paper", text: `budget ${metric} ≤ ${fmt(limit)}`, showarrow: false, yanchor: "bottom", font: { color: "#a65" } });
    }
    const layout = {
      margin: { t: 20, r: 20 }, hovermode: "closest", shapes, annotations, uirevision: `${exp.label}|${x}|${y}`,
      xaxis: { title: { text: axisTitle(x) }, type: $("log-x").checked ? "log" : "linear" },
      yaxis: { title: { text: axisTitle(y) }, type: $("log-y").checked ? "log" : "linear" },
      legend: { orientation: "h", y: -0.18 },
    };
    Plotly.react("front-plot", traces, layout, { responsive: true, displaylogo: false });
    $("front-hint").textContent = `${onFront.size} trials on the front of ${y} vs ${x} (within budget only). ` +
      (Object.keys(exp.budgets).length ? `Budgets: ${Object.entries(exp.budgets).map(([k, v]) => k + " ≤ " + fmt(v)).join(", ")}. ` : "No budget set. ") +
      `${[...FAILED].reduce((n, k) => n + (exp.statuses[k] || 0), 0)} failed trials (red ✕ where they reported both metrics). ` +
      "Hover a point for its architecture and every metric" + (exp.nni_url ? "; click it to open NNI's trial list." : ".");
  }

  function drawProgress() {
    const snap = state.snapshot, ref = snap.reference;
    const traces = snap.experiments.map((exp) => ({
      // Markers only while few: thousands of SVG markers would make every update slow.
      type: "scatter", mode: exp.hypervolume.length > 300 ? "lines" : "lines+markers", name: exp.label, marker: { size: 4 }, line: { shape: "hv" },
      x: exp.hypervolume.map((_, i) => i + 1), y: exp.hypervolume }));
    Plotly.react("hv-plot", traces, {
      margin: { t: 20, r: 20 }, xaxis: { title: { text: "trials" } }, yaxis: { title: { text: "hypervolume (normalised)" }, rangemode: "tozero" },
      legend: { orientation: "h", y: -0.18 }, uirevision: "hv" }, { responsive: true, displaylogo: false });
    $("hv-reference").textContent = `Reference point: ${ref.meaning} (normalised to (1, 1)); ${ref.score} in ` +
      `[${fmt(ref.score_worst)}, ${fmt(ref.score_best)}], ${ref.cost} in [${fmt(ref.cost_best)}, ${fmt(ref.cost_worst)}]. ` +
      `In-budget, finished trials only; ${snap.experiments.length} experiment(s) against the same reference.`;
  }

  // The WebGL views (parcoords, splom) are the slow ones with thousands of trials: redraw them only
  // while their section is on screen, and once more when it scrolls into view.
  const onScreen = {};
  state.stale = new Set();
  function drawMany() {
    if (!onScreen["many-view"]) { state.stale.add("many-view"); return; }
    state.stale.delete("many-view");
    const exp = experiment();
    // `default` repeats accuracy (or the proxy score) unless it is itself an objective.
    const scores = exp.score_axes.filter((d) => d !== "default" || exp.objectives.includes("default") || exp.score_axes.length === 1);
    const dims = [...new Set([...exp.objectives, ...scores, ...exp.cost_axes])];
    const rows = exp.trials.filter((r) => r.status === "SUCCEEDED" && dims.every((d) => isNum(r[d])));
    const section = $("many-view");
    if (dims.length < 3) { section.style.display = "none"; return; }
    section.style.display = "";
    const front = new Set(exp.front);
    const color = rows.map((r) => (front.has(r.trial_id) ? 1 : 0));
    const scale = [[0, "#8aa6c8"], [1, "#d62728"]];
    const started = performance.now();
    Plotly.react("parcoords-plot", [{
      type: "parcoords", line: { color, colorscale: scale, cmin: 0, cmax: 1 },
      dimensions: dims.map((d) => ({ label: d, values: rows.map((r) => r[d]) })) }],
      { margin: { t: 50, l: 70, r: 90, b: 20 } }, { responsive: true, displaylogo: false });
    state.timings.parcoords = performance.now() - started;
    Plotly.react("splom-plot", [{
      type: "splom", dimensions: dims.map((d) => ({ label: d, values: rows.map((r) => r[d]) })),
      text: rows.map((r) => r.trial_id), marker: { color, colorscale: scale, cmin: 0, cmax: 1, size: 5 },
      showupperhalf: false, diagonal: { visible: false } }],
      { margin: { t: 20 }, hovermode: "closest", dragmode: "select" }, { responsive: true, displaylogo: false });
  }

  function tableColumns(exp) {
    return ["#", "trial_id", "status", "front", ...exp._metricKeys, "duration_s", ...exp.arch_labels];
  }

  function cell(row, column, front) {
    if (column === "#") return row._index;
    if (column === "front") return front.has(row.trial_id) ? 1 : 0;
    return row[column];
  }

  function filteredRows(exp) {
    const budget = $("filter-budget").value, frontFilter = $("filter-front").value, status = $("filter-status").value;
    const front = new Set(exp.front);
    const rows = exp.trials.filter((r) => {
      if (budget === "in" && r.within_budget !== 1) return false;
      if (budget === "over" && r.within_budget !== 0) return false;
      if (frontFilter === "front" && !front.has(r.trial_id)) return false;
      if (frontFilter === "rest" && front.has(r.trial_id)) return false;
      if (status === "SUCCEEDED" && r.status !== "SUCCEEDED") return false;
      if (status === "failed" && !FAILED.has(r.status)) return false;
      if (status === "running" && (r.status === "SUCCEEDED" || FAILED.has(r.status))) return false;
      return true;
    });
    const { key, desc } = state.sort;
    const value = (r) => cell(r, key, front);
    rows.sort((a, b) => {
      const va = value(a), vb = value(b);
      const missing = (va === undefined || va === null) - (vb === undefined || vb === null);
      if (missing) return missing;  // empty cells last either way
      const order = isNum(va) && isNum(vb) ? va - vb : String(va).localeCompare(String(vb));
      return desc ? -order : order;
    });
    return { rows, front };
  }

  function drawTable() {
    const exp = experiment();
    const columns = tableColumns(exp);
    const { rows, front } = filteredRows(exp);
    const head = columns.map((c) => `<th data-key="${esc(c)}" class="${state.sort.key === c ? (state.sort.desc ? "sorted-desc" : "sorted-asc") : ""}">${esc(c.startsWith("arch.") ? c.slice(5) : c)}</th>`);
    $("trials-table").tHead.innerHTML = `<tr>${head.join("")}</tr>`;
    // Only the first rows go into the DOM (2,000 rows of 20 cells make sorting sluggish); CSV has them all.
    const html = rows.slice(0, state.tableLimit).map((r) => {
      const classes = [front.has(r.trial_id) ? "front" : "", r.within_budget === 0 ? "over" : "", FAILED.has(r.status) ? "failed" : ""].join(" ");
      const cells = columns.map((c) => {
        const v = cell(r, c, front);
        if (c === "trial_id" && exp.nni_url) return `<td><a href="${esc(exp.nni_url)}/detail" target="_blank" title="NNI's trial list">${esc(v)}</a></td>`;
        return `<td>${esc(fmt(v))}</td>`;
      });
      return `<tr class="${classes}" data-trial="${esc(r.trial_id)}" data-front="${front.has(r.trial_id) ? 1 : 0}">${cells.join("")}</tr>`;
    });
    $("trials-table").tBodies[0].innerHTML = html.join("");
    const shown = Math.min(rows.length, state.tableLimit);
    $("table-count").textContent = `${rows.length} of ${exp.trials.length} trials match` + (shown < rows.length ? `, first ${shown} listed` : "");
    $("show-more").style.display = shown < rows.length ? "" : "none";
  }

  function csvText() {
    const exp = experiment();
    const columns = tableColumns(exp);
    const { rows, front } = filteredRows(exp);
    const quote = (v) => { const s = v === undefined || v === null ? "" : String(v); return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s; };
    return [columns.map(quote).join(","), ...rows.map((r) => columns.map((c) => quote(cell(r, c, front))).join(","))].join("\n") + "\n";
  }
  state.csvText = csvText;

  function drawStatus() {
    const exp = experiment(), s = exp.statuses;
    const failed = [...FAILED].reduce((n, k) => n + (s[k] || 0), 0);
    const running = (s.RUNNING || 0) + (s.WAITING || 0);
    const when = new Date().toLocaleTimeString();
    const mode = state.snapshot.live ? `live from ${exp.source}, refreshed every ${config.pollMs / 1000} s, updated ${when}` : `static export of ${exp.source}`;
    $("status").textContent = `${exp.trials.length} trials · ${s.SUCCEEDED || 0} succeeded · ${failed} failed · ${running} waiting/running` +
      (exp.status ? ` · ${exp.status}` : "") + ` · ${mode}`;
    $("status").classList.remove("stale");
  }

  function timed(name, draw) {
    const started = performance.now();
    draw();
    state.timings[name] = performance.now() - started;
  }

  function render() {
    const started = performance.now();
    drawStatus();
    timed("front", drawFront); timed("progress", drawProgress); timed("many", drawMany); timed("table", drawTable);
    const plot = $("front-plot");
    if (!state.clickAttached && plot.on) {  // NNI 3.0's web UI has no per-trial URL: open its trial list
      plot.on("plotly_click", () => { const url = experiment().nni_url; if (url) window.open(`${url}/detail`, "_blank"); });
      state.clickAttached = true;
    }
    state.lastRenderMs = performance.now() - started;
    state.renders += 1;
  }

  function apply(snapshot) {
    state.snapshot = snapshot;
    state.version = snapshot.version;
    for (const exp of snapshot.experiments) {
      exp.trials.forEach((row, i) => { row._index = i + 1; });
      exp._metricKeys = metricKeys(exp);
    }
    fillSelect($("experiment"), snapshot.experiments.map((_, i) => String(i)), snapshot.experiments.map((e) => e.label), "0");
    $("experiment").parentElement.style.display = snapshot.experiments.length > 1 ? "" : "none";
    state.experiment = Number($("experiment").value || 0);
    const exp = experiment();
    fillSelect($("y-axis"), exp.score_axes, exp.score_axes.map(axisTitle), exp.objectives[0]);
    fillSelect($("x-axis"), exp.cost_axes, exp.cost_axes.map(axisTitle), exp.objectives[1]);
    render();
    state.updates += 1;
  }

  async function poll() {
    try {
      const response = await fetch(`api/snapshot?version=${state.version}`, { cache: "no-store" });
      const data = await response.json();
      if (!data.unchanged) apply(data);
    } catch (error) {
      $("status").textContent = `dashboard server not answering (${error}); showing the last data`;
      $("status").classList.add("stale");
    }
    setTimeout(poll, config.pollMs);
  }

  for (const id of ["x-axis", "y-axis", "log-x", "log-y"]) $(id).addEventListener("change", () => { if (state.snapshot) timed("front", drawFront); });
  $("experiment").addEventListener("change", () => apply(state.snapshot));
  for (const id of ["filter-budget", "filter-front", "filter-status"]) $(id).addEventListener("change", drawTable);
  $("trials-table").addEventListener("click", (event) => {
    const th = event.target.closest("th");
    if (!th) return;
    state.sort = { key: th.dataset.key, desc: state.sort.key === th.dataset.key ? !state.sort.desc : false };
    drawTable();
  });
  $("show-more").addEventListener("click", () => { state.tableLimit += 500; drawTable(); });
  $("download-csv").addEventListener("click", () => {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([csvText()], { type: "text/csv" }));
    link.download = `${experiment().label}-trials.csv`;
    link.click();
  });
  new IntersectionObserver((entries) => {
    for (const entry of entries) onScreen[entry.target.id] = entry.isIntersecting;
    if (onScreen["many-view"] && state.stale.has("many-view") && state.snapshot) timed("many", drawMany);
  }).observe($("many-view"));
  if (embedded) apply(embedded); else poll();
})();
