/**
 * The dashboard page: one static HTML document with its script and styles inline (no build
 * step, nothing fetched from elsewhere). It draws the graph (nodes, topics, request/response
 * services) as SVG with its own layered layout, sparklines per topic and per service, a latency histogram and a live plot of a watched topic,
 * and the pipelines: units grouped by collection with their placement and settings (the units'
 * settings services are shown there, not among the services).
 * (Internal: not part of the public API.)
 * @module
 */

/** The page. */
export const PAGE = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Plexus dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  :root { --bg:#0f1419; --panel:#182029; --text:#d8dee6; --dim:#7d8a99; --node:#2f6fb0; --topic:#2a8a6a; --service:#8a5cc0; --warn:#e0a030; --bad:#e05050; --line:#5d6b7a; }
  * { box-sizing: border-box; }
  body { margin:0; font:13px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--text); }
  header { display:flex; gap:16px; align-items:baseline; padding:10px 16px; background:var(--panel); border-bottom:1px solid #263241; }
  header h1 { font-size:16px; margin:0; }
  #status { color:var(--dim); }
  #status.down { color:var(--bad); }
  main { display:grid; grid-template-columns: minmax(0,1fr) minmax(0,1fr); gap:12px; padding:12px; }
  section { background:var(--panel); border-radius:6px; padding:10px; min-width:0; }
  section h2 { font-size:13px; margin:0 0 8px; color:var(--dim); font-weight:600; text-transform:uppercase; letter-spacing:.05em; }
  #graph svg { width:100%; height:auto; max-height:420px; }
  table { width:100%; border-collapse:collapse; }
  th, td { text-align:right; padding:3px 6px; white-space:nowrap; }
  th:first-child, td:first-child { text-align:left; }
  th { color:var(--dim); font-weight:500; }
  tbody tr { cursor:pointer; }
  tbody tr:hover { background:#202b37; }
  tr.watched { outline:1px solid var(--topic); }
  tr.waits td.waits { color:var(--warn); font-weight:600; }
  tr.drops td.drops { color:var(--bad); font-weight:600; }
  .spark { vertical-align:middle; }
  #watch-title { color:var(--text); text-transform:none; letter-spacing:0; }
  #messages { font:12px/1.35 ui-monospace, monospace; max-height:260px; overflow:auto; white-space:pre-wrap; word-break:break-all; color:#b8c4d0; }
  .wide { grid-column: 1 / -1; }
  .legend span { margin-right:12px; }
  .hint { color:var(--dim); }
  text { fill:var(--text); font-size:12px; }
  text.small { font-size:10px; fill:var(--dim); }
  #graph text { font-size:14px; }
  #graph text.small { font-size:11px; }
  section { overflow-x:auto; }
  fieldset.collection { border:1px solid #304050; border-radius:6px; margin:6px 0; padding:4px 10px 8px; }
  fieldset.collection > legend { color:var(--dim); font-weight:600; padding:0 4px; }
  .unit { display:flex; gap:10px; align-items:baseline; padding:2px 0; }
  .unit .name { font-weight:600; min-width:8em; }
  .unit .placement { color:var(--node); }
  .unit .settings { color:var(--dim); font:12px ui-monospace, monospace; }
  .flows { color:var(--dim); margin:4px 0 0; font:12px ui-monospace, monospace; }
</style>
</head>
<body>
<header><h1>Plexus</h1><span id="status">connecting…</span><span id="summary" class="hint"></span></header>
<main>
  <section id="graph-panel" class="wide"><h2>Graph</h2><div id="graph"></div>
    <div class="legend hint"><span><b style="color:var(--node)">&#9632;</b> node (process / thread)</span><span><b style="color:var(--topic)">&#9679;</b> topic</span><span><b style="color:var(--service)">&#11042;</b> service (request/response; dashed: served by)</span><span>arrow labels: link transport</span><span style="color:var(--warn)">backpressure</span><span style="color:var(--bad)">drops</span></div></section>
  <section id="pipelines-panel" class="wide"><h2>Pipelines</h2><div id="pipelines"><p class="hint">No pipeline runs.</p></div></section>
  <section><h2>Topics</h2>
    <table id="topics"><thead><tr><th>topic</th><th>pub</th><th>sub</th><th>msg/s</th><th>rate</th><th>bytes/s</th><th>bandwidth</th><th>waits</th><th>drops</th></tr></thead><tbody></tbody></table>
    <p class="hint">Click a topic to watch its messages.</p></section>
  <section><h2>Services</h2>
    <table id="services"><thead><tr><th>service</th><th>srv</th><th>cli</th><th>req/s</th><th>rate</th><th>err/s</th><th>errors</th><th>in flight</th><th>rtt ms</th><th>links</th></tr></thead><tbody></tbody></table>
    <p class="hint" id="no-services">No request/response service yet.</p></section>
  <section><h2>Latency <span id="watch-title"></span></h2><div id="histogram"><p class="hint">Watch a topic whose messages carry a <code>sentAt</code> time (ms since the epoch) to see the latency to this dashboard.</p></div></section>
  <section><h2>Live values</h2><div id="plot"></div></section>
  <section><h2>Messages</h2><div id="messages" class="hint">No topic watched.</div></section>
</main>
<script>
"use strict";
const SVGNS = "http://www.w3.org/2000/svg";
const history = new Map();   // topic -> { rate: [], bandwidth: [] }
const serviceHistory = new Map();   // service -> [requests per second]
const HISTORY = 60;
let watched = null;
let lastState = null;
let plotSeries = new Map();  // field -> [values]
let latencies = [];          // recent latencies (ms)
let ws = null;

function el(name, attrs, parent) {
  const e = document.createElementNS(SVGNS, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function human(n, unit) {
  unit = unit || "";
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(2) + "G" + unit;
  if (a >= 1e6) return (n / 1e6).toFixed(2) + "M" + unit;
  if (a >= 1e3) return (n / 1e3).toFixed(2) + "k" + unit;
  return n.toFixed(n >= 100 || n === 0 ? 0 : 1) + unit;
}

// ---- layout: layers by longest path (cycles cut), order by barycenter ----
function layout(vertices, arrows) {
  const layer = new Map(vertices.map(v => [v.id, 0]));
  for (let pass = 0; pass < vertices.length; pass++) {
    let changed = false;
    for (const a of arrows) {
      const want = layer.get(a.from) + 1;
      if (want > layer.get(a.to) && want < vertices.length) { layer.set(a.to, want); changed = true; }
    }
    if (!changed) break;
  }
  const layers = [];
  for (const v of vertices) { const l = layer.get(v.id); (layers[l] = layers[l] || []).push(v); }
  const pos = new Map();
  const compact = layers.filter(Boolean);
  compact.forEach((vs, i) => vs.forEach((v, j) => pos.set(v.id, { layer: i, order: j })));
  for (let sweep = 0; sweep < 4; sweep++) {
    for (const vs of compact) {
      const bary = v => {
        const ns = arrows.filter(a => a.to === v.id).map(a => pos.get(a.from)).concat(arrows.filter(a => a.from === v.id).map(a => pos.get(a.to))).filter(Boolean);
        return ns.length ? ns.reduce((s, p) => s + p.order, 0) / ns.length : pos.get(v.id).order;
      };
      vs.sort((a, b) => bary(a) - bary(b) || a.id.localeCompare(b.id));
      vs.forEach((v, j) => pos.get(v.id).order = j);
    }
  }
  return { layers: compact, pos };
}

function drawGraph(snap, stats) {
  const byTopic = new Map(stats.topics.map(t => [t.topic, t]));
  const servers = snap.servers || [], clients = snap.clients || [];
  const byService = new Map((stats.services || []).map(v => [v.service, v]));
  const busy = new Set(snap.publishers.map(p => p.node).concat(snap.subscribers.map(s => s.node), servers.map(s => s.node), clients.map(c => c.node)));
  const serviceNames = snap.services || [];
  const vertices = snap.nodes.filter(n => busy.has(n.id)).map(n => ({ id: "n:" + n.id, kind: "node", label: n.name, sub: "pid " + n.pid + (n.threadId ? " / thread " + n.threadId : "") }))
    .concat(snap.topics.map(t => ({ id: "t:" + t, kind: "topic", label: t, topic: t })))
    .concat(serviceNames.map(v => ({ id: "v:" + v, kind: "service", label: v, service: v })));
  // Ports a bridge holds for another graph are drawn as that graph's host.
  const owner = p => p.endpoints && p.endpoints.remote ? "h:" + p.endpoints.remote : "n:" + p.node;
  const remotes = Array.from(new Set(snap.publishers.concat(servers).filter(p => p.endpoints && p.endpoints.remote).map(p => p.endpoints.remote))).sort();
  const reported = snap.remote || [];
  for (const r of reported) if (!remotes.includes(r.origin)) remotes.push(r.origin);
  for (const r of remotes) vertices.push({ id: "h:" + r, kind: "node", label: "host " + r, sub: "through a bridge" });
  const arrows = [];
  const seen = new Set();
  for (const p of snap.publishers) { const k = owner(p) + ">" + p.topic; if (!seen.has(k)) { seen.add(k); arrows.push({ from: owner(p), to: "t:" + p.topic, kind: "pub" }); } }
  const transports = new Map();
  for (const t of stats.topics) for (const l of t.links) { const s = transports.get(l.subscriber) || new Set(); s.add(l.transport); transports.set(l.subscriber, s); }
  for (const s of snap.subscribers) {
    const k = s.topic + ">" + s.node;
    const tr = Array.from(transports.get(s.id) || []);
    const existing = arrows.find(a => a.key === k);
    if (existing) { tr.forEach(x => existing.transports.add(x)); continue; }
    arrows.push({ key: k, from: "t:" + s.topic, to: "n:" + s.node, kind: "sub", transports: new Set(tr) });
  }
  for (const e of snap.edges) arrows.push({ from: "t:" + e.from, to: "t:" + e.to, kind: "edge" });
  const calls = new Map();
  for (const v of stats.services || []) for (const l of v.links) { const s = calls.get(l.client) || new Set(); s.add(l.transport); calls.set(l.client, s); }
  for (const c of clients) {
    const k = "call:" + c.node + ">" + c.service;
    const tr = Array.from(calls.get(c.id) || []);
    const existing = arrows.find(a => a.key === k);
    if (existing) { tr.forEach(x => existing.transports.add(x)); continue; }
    arrows.push({ key: k, from: "n:" + c.node, to: "v:" + c.service, kind: "call", transports: new Set(tr) });
  }
  for (const r of reported) for (const q of r.queues) {
    const id = "q:" + r.origin + "/" + q;
    if (vertices.some(v => v.id === id)) continue;
    vertices.push({ id, kind: "node", label: "queue " + q, sub: "bridged by " + r.origin });
    arrows.push({ key: "offers:" + id, from: "h:" + r.origin, to: id, kind: "serve" });
  }
  for (const s of servers) {
    const k = "serve:" + s.service + ">" + owner(s);
    if (!arrows.some(a => a.key === k)) arrows.push({ key: k, from: "v:" + s.service, to: owner(s), kind: "serve" });
  }
  const { layers, pos } = layout(vertices, arrows);
  const W = 170, H = 46, GX = 80, GY = 26;
  const rows = Math.max(1, ...layers.map(l => l.length));
  const width = Math.max(1, layers.length) * (W + GX) + 20, height = rows * (H + GY) + 20;
  const svg = el("svg", { viewBox: "0 0 " + width + " " + height, role: "img", "aria-label": "topic graph" });
  const defs = el("defs", {}, svg);
  const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
  el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8a98a8" }, marker);
  const xy = id => { const p = pos.get(id); const n = layers[p.layer].length; const off = (rows - n) * (H + GY) / 2; return { x: 10 + p.layer * (W + GX), y: 10 + off + p.order * (H + GY) }; };
  for (const a of arrows) {
    if (!pos.has(a.from) || !pos.has(a.to)) continue;
    const s = xy(a.from), t = xy(a.to);
    const x1 = s.x + W, y1 = s.y + H / 2, x2 = t.x, y2 = t.y + H / 2;
    const back = x2 <= x1;
    const d = back ? "M" + x1 + "," + y1 + " C" + (x1 + 60) + "," + (y1 - 80) + " " + (x2 - 60) + "," + (y2 - 80) + " " + x2 + "," + y2
                   : "M" + x1 + "," + y1 + " C" + (x1 + GX / 2) + "," + y1 + " " + (x2 - GX / 2) + "," + y2 + " " + x2 + "," + y2;
    el("path", { d: d, fill: "none", stroke: a.kind === "edge" ? "#9fb4c8" : "var(--line)", "stroke-width": a.kind === "edge" ? 2.5 : 1.5, "stroke-dasharray": a.kind === "serve" ? "5 4" : "", "marker-end": "url(#arrow)", class: "arrow " + a.kind }, svg);
    if ((a.kind === "sub" || a.kind === "call") && a.transports.size) {
      const label = el("text", { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 4, "text-anchor": "middle", class: "small transport" }, svg);
      label.textContent = Array.from(a.transports).sort().join("+");
    }
  }
  for (const v of vertices) {
    const p = xy(v.id);
    const g = el("g", { transform: "translate(" + p.x + "," + p.y + ")", class: v.kind }, svg);
    if (v.kind === "node") {
      el("rect", { width: W, height: H, rx: 4, fill: "var(--node)" }, g);
      el("text", { x: 8, y: 18 }, g).textContent = v.label.length > 24 ? v.label.slice(0, 23) + "…" : v.label;
      el("text", { x: 8, y: 35, class: "small" }, g).textContent = v.sub;
    } else if (v.kind === "service") {
      const t = byService.get(v.service) || { rate: 0, callRate: 0, errorRate: 0, latency: null };
      const rate = Math.max(t.rate, t.callRate);
      g.setAttribute("data-service", v.service);
      g.setAttribute("data-rate", String(rate));
      const c = 14;
      el("polygon", { points: c + ",0 " + (W - c) + ",0 " + W + "," + H / 2 + " " + (W - c) + "," + H + " " + c + "," + H + " 0," + H / 2, fill: "var(--service)", stroke: t.errorRate > 0 ? "var(--bad)" : "transparent", "stroke-width": 3 }, g);
      el("text", { x: W / 2, y: 18, "text-anchor": "middle" }, g).textContent = v.label.length > 22 ? v.label.slice(0, 21) + "…" : v.label;
      el("text", { x: W / 2, y: 35, "text-anchor": "middle", class: "small rate", style: "fill:#eee4fb" }, g).textContent = human(rate) + " req/s" + (t.latency !== null ? " · " + t.latency.toFixed(t.latency < 10 ? 2 : 0) + " ms" : "");
    } else {
      const t = byTopic.get(v.topic) || { rate: 0, bandwidth: 0, waitRate: 0, dropRate: 0, messages: 0 };
      g.setAttribute("data-topic", v.topic);
      g.setAttribute("data-rate", String(t.rate));
      g.setAttribute("data-messages", String(t.messages));
      const stroke = t.dropRate > 0 ? "var(--bad)" : t.waitRate > 0 ? "var(--warn)" : "transparent";
      el("rect", { width: W, height: H, rx: H / 2, fill: "var(--topic)", stroke: stroke, "stroke-width": 3, style: "cursor:pointer" }, g);
      el("text", { x: W / 2, y: 18, "text-anchor": "middle" }, g).textContent = v.label.length > 24 ? v.label.slice(0, 23) + "…" : v.label;
      el("text", { x: W / 2, y: 35, "text-anchor": "middle", class: "small rate" }, g).textContent = human(t.rate) + " msg/s · " + human(t.bandwidth, "B") + "/s";
      g.addEventListener("click", () => watch(v.topic));
    }
  }
  if (vertices.length === 0) { const t = el("text", { x: 10, y: 30 }, svg); t.textContent = "no topics yet"; }
  const host = document.getElementById("graph");
  host.replaceChildren(svg);
}

function spark(values, color, max) {
  const w = 64, h = 18;
  const svg = el("svg", { width: w, height: h, class: "spark" });
  const m = max || Math.max(1e-9, ...values);
  const pts = values.map((v, i) => (i * w / (HISTORY - 1)).toFixed(1) + "," + (h - 1 - (v / m) * (h - 2)).toFixed(1)).join(" ");
  el("polyline", { points: pts, fill: "none", stroke: color, "stroke-width": 1.5 }, svg);
  return svg;
}

function drawTable(stats) {
  const body = document.querySelector("#topics tbody");
  body.replaceChildren();
  for (const t of stats.topics) {
    const h = history.get(t.topic) || { rate: [], bandwidth: [] };
    const tr = document.createElement("tr");
    tr.dataset.topic = t.topic;
    tr.dataset.messages = String(t.messages);
    if (t.waitRate > 0 || t.waits > 0) tr.classList.add("waits");
    if (t.dropRate > 0 || t.drops > 0) tr.classList.add("drops");
    if (t.topic === watched) tr.classList.add("watched");
    const cells = [t.topic, t.publishers, t.subscribers, human(t.rate), null, human(t.bandwidth, "B"), null, t.waits, t.drops];
    const classes = ["topic", "pub", "sub", "rate", "rate-spark", "bandwidth", "bandwidth-spark", "waits", "drops"];
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      td.className = classes[i];
      if (c === null) td.appendChild(spark(i === 4 ? h.rate : h.bandwidth, i === 4 ? "#4fc08d" : "#5aa0e0"));
      else td.textContent = String(c);
      tr.appendChild(td);
    });
    tr.addEventListener("click", () => watch(t.topic));
    body.appendChild(tr);
  }
}

function drawServices(stats) {
  const services = stats.services || [];
  const body = document.querySelector("#services tbody");
  body.replaceChildren();
  document.getElementById("no-services").style.display = services.length ? "none" : "";
  for (const v of services) {
    const tr = document.createElement("tr");
    tr.dataset.service = v.service;
    tr.dataset.requests = String(v.requests);
    if (v.errorRate > 0) tr.classList.add("drops");
    const kinds = new Map();
    for (const l of v.links) kinds.set(l.transport, (kinds.get(l.transport) || 0) + 1);
    const cells = [v.service, v.servers, v.clients, human(Math.max(v.rate, v.callRate)), null, human(v.errorRate), v.errors, v.inFlight, v.latency === null ? "-" : v.latency.toFixed(v.latency < 10 ? 3 : 1), Array.from(kinds).map(k => k[0] + "×" + k[1]).join(" ") || "-"];
    const classes = ["service", "srv", "cli", "rate", "rate-spark", "drops", "errors", "inflight", "latency", "links"];
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      td.className = classes[i];
      if (c === null) td.appendChild(spark(serviceHistory.get(v.service) || [], "#b08ee0"));
      else td.textContent = String(c);
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
}

function record(stats) {
  const alive = new Set();
  for (const v of stats.services || []) {
    alive.add(v.service);
    const h = serviceHistory.get(v.service) || new Array(HISTORY).fill(0);
    h.push(Math.max(v.rate, v.callRate));
    if (h.length > HISTORY) h.shift();
    serviceHistory.set(v.service, h);
  }
  for (const k of Array.from(serviceHistory.keys())) if (!alive.has(k)) serviceHistory.delete(k);
  const live = new Set();
  for (const t of stats.topics) {
    live.add(t.topic);
    const h = history.get(t.topic) || { rate: new Array(HISTORY).fill(0), bandwidth: new Array(HISTORY).fill(0) };
    h.rate.push(t.rate); h.bandwidth.push(t.bandwidth);
    if (h.rate.length > HISTORY) { h.rate.shift(); h.bandwidth.shift(); }
    history.set(t.topic, h);
  }
  for (const k of Array.from(history.keys())) if (!live.has(k)) history.delete(k);
}

function drawHistogram() {
  const host = document.getElementById("histogram");
  if (!watched) return;
  if (latencies.length === 0) { host.innerHTML = '<p class="hint">No latency yet: messages need a numeric <code>sentAt</code> (ms since the epoch).</p>'; return; }
  const sorted = latencies.slice().sort((a, b) => a - b);
  const q = p => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  // log-spaced buckets from 10 µs to 10 s
  const edges = []; for (let e = -2; e <= 4; e += 0.25) edges.push(Math.pow(10, e));
  const counts = new Array(edges.length).fill(0);
  for (const v of sorted) { let i = edges.findIndex(e => v < e); if (i < 0) i = edges.length - 1; counts[i]++; }
  const first = Math.max(0, counts.findIndex(c => c > 0) - 1), last = Math.min(edges.length - 1, counts.length - counts.slice().reverse().findIndex(c => c > 0));
  const shown = counts.slice(first, last + 1), labels = edges.slice(first, last + 1);
  const w = 700, h = 170, bw = w / Math.max(1, shown.length), max = Math.max(...shown);
  const svg = el("svg", { viewBox: "0 0 " + w + " " + (h + 30), width: "100%", id: "latency-histogram" });
  shown.forEach((c, i) => {
    const bh = (c / max) * h;
    el("rect", { x: i * bw + 1, y: h - bh, width: Math.max(1, bw - 2), height: bh, fill: "#4fc08d" }, svg);
    if (i % 2 === 0) { const t = el("text", { x: i * bw + bw / 2, y: h + 14, "text-anchor": "middle", class: "small" }, svg); const v = labels[i]; t.textContent = v < 1 ? (v * 1000).toFixed(0) + "µs" : v < 1000 ? v.toFixed(v < 10 ? 1 : 0) + "ms" : (v / 1000).toFixed(1) + "s"; }
  });
  const cap = el("text", { x: 0, y: h + 28, class: "small" }, svg);
  cap.textContent = sorted.length + " samples · p50 " + q(0.5).toFixed(2) + " ms · p90 " + q(0.9).toFixed(2) + " ms · p99 " + q(0.99).toFixed(2) + " ms (publish → dashboard)";
  host.replaceChildren(svg);
}

function drawPlot() {
  const host = document.getElementById("plot");
  if (!watched) { host.innerHTML = '<p class="hint">No topic watched.</p>'; return; }
  const fields = Array.from(plotSeries.keys()).filter(k => k !== "seq" && k !== "sentAt").slice(0, 4);
  if (fields.length === 0) { host.innerHTML = '<p class="hint">No numbers in these messages (see the summaries below).</p>'; return; }
  const w = 700, h = 200, colors = ["#4fc08d", "#5aa0e0", "#e0a030", "#c678dd"];
  const svg = el("svg", { viewBox: "0 0 " + w + " " + (h + 16), width: "100%", id: "value-plot" });
  fields.forEach((f, k) => {
    const vs = plotSeries.get(f);
    const lo = Math.min(...vs), hi = Math.max(...vs), span = hi - lo || 1;
    const pts = vs.map((v, i) => (i * w / Math.max(1, vs.length - 1)).toFixed(1) + "," + (h - ((v - lo) / span) * (h - 4) - 2).toFixed(1)).join(" ");
    el("polyline", { points: pts, fill: "none", stroke: colors[k], "stroke-width": 1.5 }, svg);
    const t = el("text", { x: k * 175, y: h + 13, class: "small" }, svg);
    t.textContent = f + " " + vs[vs.length - 1].toPrecision(4);
    t.setAttribute("style", "fill:" + colors[k]);
  });
  host.replaceChildren(svg);
}

function onSamples(m) {
  if (m.topic !== watched) return;
  for (const it of m.items) for (const k in it.numbers) { const s = plotSeries.get(k) || []; s.push(it.numbers[k]); if (s.length > 200) s.shift(); plotSeries.set(k, s); }
  latencies = latencies.concat(m.latencies);
  if (latencies.length > 5000) latencies = latencies.slice(-5000);
  const box = document.getElementById("messages");
  box.classList.remove("hint");
  box.textContent = m.count + " message(s) in the last push; latest:\n" + m.items.slice(-8).reverse().map(it => "#" + it.seq + "  " + it.summary).join("\n");
  drawHistogram();
  drawPlot();
}

function watch(topic) {
  watched = topic;
  plotSeries = new Map();
  latencies = [];
  document.getElementById("watch-title").textContent = "— " + topic;
  document.getElementById("messages").textContent = "waiting for messages on " + topic + "…";
  if (ws && ws.readyState === 1) ws.send(JSON.stringify({ type: "watch", topic: topic }));
  if (lastState) drawTable(lastState.stats);
  drawPlot();
}

// A pipeline unit's settings service (<path>#settings) is shown with its unit, not among the services.
const isUnitService = name => /.#settings$/.test(name);
function withoutUnitServices(s) {
  const snap = Object.assign({}, s.snapshot, {
    servers: (s.snapshot.servers || []).filter(v => !isUnitService(v.service)),
    clients: (s.snapshot.clients || []).filter(v => !isUnitService(v.service)),
    services: (s.snapshot.services || []).filter(v => !isUnitService(v)),
  });
  const stats = Object.assign({}, s.stats, { services: (s.stats.services || []).filter(v => !isUnitService(v.service)) });
  return Object.assign({}, s, { snapshot: snap, stats: stats });
}

function drawPipelines(p) {
  const root = document.getElementById("pipelines");
  root.textContent = "";
  if (!p || p.units.length === 0) { const h = document.createElement("p"); h.className = "hint"; h.textContent = "No pipeline runs."; root.appendChild(h); return; }
  const parentOf = path => p.collections.filter(c => path.startsWith(c + "/")).sort((a, b) => b.length - a.length)[0];
  const name = path => path.split("/").pop();
  const label = id => id.startsWith("unit:") ? name(id.slice(5)) : id.slice(6);
  const fill = (box, parent) => {
    for (const u of p.units.filter(x => parentOf(x.path) === parent)) {
      const row = document.createElement("div");
      row.className = "unit";
      row.setAttribute("data-unit", u.path);
      const n = document.createElement("span"); n.className = "name"; n.textContent = name(u.path); row.appendChild(n);
      const pl = document.createElement("span"); pl.className = "placement"; pl.textContent = u.placement; row.appendChild(pl);
      const st = document.createElement("span"); st.className = "settings";
      st.textContent = u.settings ? Object.entries(u.settings).map(([k, v]) => k + "=" + (typeof v === "string" ? v : JSON.stringify(v))).join(" ") : "";
      row.appendChild(st);
      box.appendChild(row);
    }
    for (const c of p.collections.filter(x => parentOf(x) === parent)) {
      const f = document.createElement("fieldset");
      f.className = "collection";
      f.setAttribute("data-collection", c);
      const lg = document.createElement("legend"); lg.textContent = parent === undefined ? c : name(c); f.appendChild(lg);
      fill(f, c);
      if (parent === undefined) {
        const mine = p.arrows.filter(a => a.from.slice(a.from.indexOf(":") + 1).startsWith(c + "/") || a.to.slice(a.to.indexOf(":") + 1).startsWith(c + "/"));
        if (mine.length) {
          const flows = document.createElement("div"); flows.className = "flows";
          flows.textContent = mine.map(a => label(a.from) + " → " + label(a.to) + (a.label ? " (" + a.label + ")" : "")).join(" · ");
          f.appendChild(flows);
        }
      }
      box.appendChild(f);
    }
  };
  fill(root, undefined);
}

function onState(full) {
  const s = withoutUnitServices(full);
  lastState = s;
  drawPipelines(full.pipelines);
  record(s.stats);
  const busy = s.snapshot.nodes.length;
  const services = (s.stats.services || []).length;
  document.getElementById("summary").textContent = busy + " node(s) · " + s.snapshot.topics.length + " topic(s) · " + s.snapshot.edges.length + " edge(s) · " + services + " service(s)";
  drawGraph(s.snapshot, s.stats);
  drawTable(s.stats);
  drawServices(s.stats);
}

function open() {
  const status = document.getElementById("status");
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" + location.search;
  ws = new WebSocket(url);
  ws.onopen = () => { status.textContent = "live"; status.className = ""; if (watched) ws.send(JSON.stringify({ type: "watch", topic: watched })); };
  ws.onmessage = ev => { const m = JSON.parse(ev.data); if (m.type === "state") onState(m); else if (m.type === "samples") onSamples(m); else if (m.type === "error") document.getElementById("messages").textContent = m.message; };
  ws.onclose = () => { status.textContent = "disconnected, retrying…"; status.className = "down"; setTimeout(open, 1000); };
}
const initial = new URLSearchParams(location.search).get("watch");
if (initial) watch(initial);
open();
</script>
</body>
</html>
`;
