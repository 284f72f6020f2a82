//! The cockpit (Autopilot, Isard 2007): one web page served by the master (`/cockpit`, no external CDN)
//! showing machines by state, the repair queue, the rollout in progress and charts of the
//! collected counters, refreshing itself every two seconds from the device manager's and the
//! collection service's JSON routes.

use libactor::{Context, HttpRequest, HttpResponse, Process};

/// The cockpit's process id: the page is `/cockpit`.
pub const COCKPIT_ID: &str = "cockpit";

/// The page: plain HTML, CSS and JavaScript, charts drawn as inline SVG.
const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Keel cockpit</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; background: #fafafa; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  h2 { font-size: 16px; margin: 18px 0 6px; }
  .muted { color: #777; }
  .states { display: flex; gap: 8px; }
  .state { padding: 8px 12px; border-radius: 6px; color: #fff; min-width: 90px; }
  .Healthy { background: #2e7d32; } .Probation { background: #f9a825; }
  .Failure { background: #c62828; } .Replaced { background: #616161; }
  table { border-collapse: collapse; background: #fff; }
  td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
  .bar { width: 240px; height: 12px; background: #eee; display: inline-block; vertical-align: middle; }
  .fill { height: 12px; background: #1565c0; }
  .charts { display: flex; flex-wrap: wrap; gap: 12px; }
  .chart { background: #fff; border: 1px solid #ddd; padding: 6px; }
  pre { background: #fff; border: 1px solid #ddd; padding: 6px; max-height: 160px; overflow: auto; }
</style>
</head>
<body>
<h1>Keel cockpit</h1>
<div class="muted">refreshed <span id="refreshed">never</span></div>

<h2>Machines by state</h2>
<div class="states" id="states"></div>
<table id="machines"><thead><tr><th>Machine</th><th>Type</th><th>State</th><th>Action</th><th>Version</th><th>Error</th></tr></thead><tbody></tbody></table>

<h2>Repair queue</h2>
<div id="repairs" class="muted">none</div>

<h2>Rollout</h2>
<div id="rollout" class="muted">no rollout yet</div>

<h2>Counters</h2>
<div class="charts" id="charts"></div>

<h2>Recent warnings and errors</h2>
<div id="logs" class="muted">none</div>

<script>
"use strict";
const colors = ["#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#5d4037", "#ad1457"];

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function get(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

function stateOf(m) { return m.replaced ? "Replaced" : m.state; }

function showMachines(v) {
  const counts = { Healthy: 0, Probation: 0, Failure: 0, Replaced: 0 };
  for (const m of v.machines) counts[stateOf(m)] += 1;
  const states = document.getElementById("states");
  states.replaceChildren();
  for (const [state, n] of Object.entries(counts)) {
    states.append(el("div", { class: "state " + state, id: "count-" + state }, state + ": " + n));
  }
  const body = document.querySelector("#machines tbody");
  body.replaceChildren();
  for (const m of v.machines) {
    const tr = el("tr", { id: "machine-" + m.id, "data-state": stateOf(m) });
    for (const cell of [m.id, m.machine_type, stateOf(m), m.action, m.manifest_version || "-", m.error || ""]) {
      tr.append(el("td", {}, cell));
    }
    body.append(tr);
  }
  const queue = v.machines.filter(m => !m.replaced && m.state !== "Healthy");
  const repairs = document.getElementById("repairs");
  repairs.replaceChildren();
  repairs.className = queue.length ? "" : "muted";
  repairs.append(el("div", { id: "repair-summary" },
    queue.length + " in repair (cap " + v.repair_cap + ")"));
  for (const m of queue) {
    repairs.append(el("div", { class: "repair", "data-machine": m.id },
      m.id + ": " + m.state + " (" + m.action + ") " + (m.error || "")));
  }
}

function showRollout(v) {
  const box = document.getElementById("rollout");
  const r = v.rollout;
  if (!r) return;
  box.className = "";
  box.replaceChildren();
  const m = r.manifest || {};
  box.append(el("div", { id: "rollout-summary", "data-state": r.state },
    "rollout " + r.id + ": " + m.name + " " + m.version + " to type " + m.machine_type +
    " (from " + (r.previous_version || "nothing") + ") " + r.state +
    ", unit " + r.current_unit + " of " + r.units.length));
  r.units.forEach((u, i) => {
    const done = u.phase === "done" ? u.machines.length : u.healthy;
    const row = el("div", { class: "unit", id: "unit-" + (i + 1), "data-phase": u.phase });
    row.append(el("span", {}, "unit " + (i + 1) + " "));
    const bar = el("span", { class: "bar" });
    const fill = el("div", { class: "fill" });
    fill.style.width = (100 * done / Math.max(1, u.machines.length)) + "%";
    bar.append(fill);
    row.append(bar);
    row.append(el("span", {}, " " + done + "/" + u.machines.length + " Healthy on the new version (" + u.phase + ")"));
    box.append(row);
  });
  if (r.detail) box.append(el("div", { class: "muted" }, r.detail));
}

function chart(name, v) {
  const w = 320, h = 120, pad = 4;
  const series = Object.entries(v.machines);
  let tMin = Infinity, tMax = -Infinity, yMax = 0;
  for (const [, points] of series) for (const [t, y] of points) {
    tMin = Math.min(tMin, t); tMax = Math.max(tMax, t); yMax = Math.max(yMax, y);
  }
  const box = el("div", { class: "chart", "data-counter": name });
  box.append(el("div", {}, name));
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h);
  series.forEach(([machine, points], i) => {
    if (!points.length) return;
    const x = t => pad + (w - 2 * pad) * (tMax > tMin ? (t - tMin) / (tMax - tMin) : 1);
    const y = v => h - pad - (h - 2 * pad) * (yMax > 0 ? v / yMax : 0);
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", points.map(([t, v]) => x(t) + "," + y(v)).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", colors[i % colors.length]);
    line.setAttribute("data-machine", machine);
    svg.append(line);
  });
  box.append(svg);
  box.append(el("div", { class: "muted" }, series.length + " machine(s), max " + yMax));
  return box;
}

async function showCharts() {
  const { counters } = await get("/collector/counters");
  const charts = await Promise.all(counters.map(async name =>
    chart(name, await get("/collector/series?name=" + encodeURIComponent(name)))));
  document.getElementById("charts").replaceChildren(...charts);
  const { logs } = await get("/collector/logs");
  const box = document.getElementById("logs");
  box.replaceChildren();
  for (const [machine, lines] of Object.entries(logs)) {
    if (!lines.length) continue;
    box.className = "";
    box.append(el("div", {}, machine));
    box.append(el("pre", {}, lines.slice(-10).join("\n")));
  }
}

async function refresh() {
  try {
    showMachines(await get("/device-manager/machines"));
    showRollout(await get("/device-manager/rollout"));
    await showCharts();
    document.getElementById("refreshed").textContent = new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById("refreshed").textContent = "failed: " + e.message;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
"##;

/// Serves the cockpit page.
#[derive(Debug, Default)]
pub struct Cockpit;

impl Process for Cockpit {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.route(
            "/",
            |_: &mut Cockpit, _: &mut Context<Self>, _: HttpRequest| {
                HttpResponse::bytes(200, "text/html; charset=utf-8", PAGE)
                    .with_header("cache-control", "no-store")
            },
        );
    }
}
