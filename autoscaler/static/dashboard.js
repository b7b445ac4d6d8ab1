// The autoscaler dashboard: plain JavaScript, hand-drawn SVG charts, no external requests.
//
// Polls the API every few seconds, cheaply: lists are fetched with If-None-Match (304 when
// nothing changed), decisions and history with `after` (only what is new). The history comes
// from the server, so a fresh page load shows the last hour at once.
"use strict";

const POLL_MS = 3000;
const DECISIONS_PAGE = 25;
const MIN_WINDOW_MS = 2 * 60 * 1000;
const SOURCES = ["queue", "cloudWatch", "schedule", "reservedCapacity", "pendingCapacity", "prometheus"];

const state = {
  etags: new Map(), // request key -> ETag
  autoscalers: [],
  nodeGroups: [],
  producers: [],
  config: { valid: true, issues: [] },
  decisions: [], // newest first
  decisionSeq: 0,
  history: { seq: 0, intervalSeconds: 5, retentionSeconds: 3600, autoscalers: new Map(), nodeGroups: new Map() },
  freshDecisions: new Set(),
  decisionsRendered: false,
  decisionLimit: DECISIONS_PAGE, // grows with "Show older decisions"
  olderDecisions: false, // the server has decisions older than those shown
};

// ------------------------------------------------------------------ safe HTML

class Html {
  constructor(text) { this.text = text; }
  toString() { return this.text; }
}
const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (value) => String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]);
function part(value) {
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(part).join("");
  if (value === null || value === undefined || value === false) return "";
  return esc(value);
}
/** A template tag: interpolated values are escaped unless they are Html themselves. */
function html(strings, ...values) {
  let out = strings[0];
  values.forEach((value, i) => { out += part(value) + strings[i + 1]; });
  return new Html(out);
}

// ------------------------------------------------------------------ formatting

const key = (o) => `${o.namespace}/${o.name}`;
function num(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (Number.isInteger(v)) return String(v);
  return String(Math.abs(v) >= 100 ? Math.round(v) : +v.toFixed(2));
}
const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const hhmm = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
}
const timeEl = (iso, text) => html`<time datetime="${iso}" title="${iso}">${text}</time>`;

/** Conditions whose status here means "in progress" or "held", not a failure. */
const NOTICE_STATES = { Stabilized: "False", ScalingLimited: "True" };

function chips(conditions) {
  if (!conditions || !conditions.length) return html`<span class="muted">–</span>`;
  return html`<ul class="chips">${conditions.map((c) => {
    // Green when all is well, amber for a normal transient state, red for a failure.
    const notice = NOTICE_STATES[c.type] === c.status;
    const cls = notice || c.status === "Unknown" ? "unknown"
      : (c.type === "ScalingLimited" ? c.status === "False" : c.status === "True") ? "ok" : "bad";
    return html`<li class="chip ${cls}"
      title="${c.message || ""}">${c.type}: ${c.reason || c.status}<span class="sr-only"> (${c.status}) ${c.message || ""}</span></li>`;
  })}</ul>`;
}

// ------------------------------------------------------------------ SVG charts

const W = 600, H = 190, PAD = { l: 42, r: 14, t: 12, b: 26 };

/** A round step for about `count` ticks over [0, range]; whole numbers for counts. */
function niceStep(range, count, integers) {
  const raw = range / Math.max(count, 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const n = raw / mag;
  const step = (n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 && !integers ? 2.5 : n <= 5 ? 5 : 10) * mag;
  return integers ? Math.max(1, Math.round(step)) : step;
}

function pathData(points, x, y, step) {
  let d = "", drawn = 0, pen = false;
  for (const [t, v] of points) {
    if (v === null || v === undefined || !Number.isFinite(v)) { pen = false; continue; }
    const X = x(t).toFixed(1), Y = y(v).toFixed(1);
    if (!pen) d += `M${X},${Y}`;
    else d += step ? `H${X}V${Y}` : `L${X},${Y}`;
    pen = true;
    drawn += 1;
  }
  return { d, drawn };
}

/**
 * A line chart. series: [{name, cls, step, points: [[ms, value|null], ...]}].
 * Returns the SVG markup; the summary goes into <desc> for screen readers.
 */
function lineChart({ id, title, summary, t0, t1, series }) {
  const values = series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => v !== null && Number.isFinite(v));
  const top = Math.max(1, ...values);
  const step = niceStep(top, 4, values.every(Number.isInteger));
  const yMax = Math.max(step, Math.ceil(top / step) * step);
  const x = (t) => PAD.l + ((t - t0) / Math.max(t1 - t0, 1)) * (W - PAD.l - PAD.r);
  const y = (v) => H - PAD.b - (v / yMax) * (H - PAD.t - PAD.b);

  const grid = [];
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    grid.push(html`<line class="grid" x1="${PAD.l}" x2="${W - PAD.r}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/>
      <text class="axis" x="${PAD.l - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${num(v)}</text>`);
  }
  const span = t1 - t0;
  const tick = [60, 120, 300, 600, 900, 1800].map((s) => s * 1000).find((s) => span / s <= 6) || 3600 * 1000;
  for (let t = Math.ceil(t0 / tick) * tick; t <= t1; t += tick) {
    const X = x(t), label = X > PAD.l + 24 && X < W - PAD.r - 24; // no clipped labels at the edges
    grid.push(html`<line class="grid" x1="${X.toFixed(1)}" x2="${X.toFixed(1)}" y1="${PAD.t}" y2="${H - PAD.b}"/>
      ${label ? html`<text class="axis" x="${X.toFixed(1)}" y="${H - 8}" text-anchor="middle">${hhmm(t)}</text>` : ""}`);
  }
  const lines = series.map((s) => {
    const { d, drawn } = pathData(s.points, x, y, s.step);
    const last = [...s.points].reverse().find((p) => p[1] !== null && Number.isFinite(p[1]));
    const dot = last && s.dot !== false
      ? html`<circle class="dot-${s.cls}" cx="${x(last[0]).toFixed(1)}" cy="${y(last[1]).toFixed(1)}" r="3"/>` : "";
    return html`<path class="series-${s.cls}" data-series="${s.name}" data-points="${drawn}" d="${d}"/>${dot}`;
  });
  const empty = values.length ? "" : html`<text class="empty" x="${W / 2}" y="${H / 2}" text-anchor="middle">collecting samples…</text>`;
  return html`<svg viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="${id}-title ${id}-desc" focusable="false">
    <title id="${id}-title">${title}</title><desc id="${id}-desc">${summary}</desc>
    ${grid}${lines}${empty}</svg>`;
}

const legend = (items) => html`<ul class="legend" aria-hidden="true">${items.map(([cls, label]) =>
  html`<li><span class="swatch ${cls}"></span>${label}</li>`)}</ul>`;

function windowOf(points) {
  const t1 = points.length ? points[points.length - 1].t : Date.now();
  const first = points.length ? points[0].t : t1;
  const t0 = Math.max(t1 - state.history.retentionSeconds * 1000, Math.min(first, t1 - MIN_WINDOW_MS));
  return [t0, t1];
}
const spanText = (t0, t1) => {
  const minutes = Math.round((t1 - t0) / 60000);
  return minutes >= 60 ? "last hour" : `last ${minutes} min`;
};
function range(values) {
  const v = values.filter((x) => x !== null && x !== undefined);
  return v.length ? `${num(Math.min(...v))} to ${num(Math.max(...v))}` : "no data";
}

function replicasChart(id, a, points) {
  const [t0, t1] = windowOf(points);
  const pts = (f) => points.map((p) => [p.t, f(p)]);
  const desired = points.map((p) => p.desiredReplicas), ready = points.map((p) => p.readyReplicas);
  const last = points[points.length - 1] || {};
  const summary = `Over the ${spanText(t0, t1)}, desired replicas ranged ${range(desired)} and ready ` +
    `replicas ${range(ready)}; now desired ${num(last.desiredReplicas)}, ready ${num(last.readyReplicas)}, ` +
    `bounds ${a.spec.minReplicas} to ${a.spec.maxReplicas}.`;
  return html`<figure class="chart" data-chart="replicas">
    <figcaption>Desired vs ready replicas <span class="muted">· ${spanText(t0, t1)}</span></figcaption>
    ${lineChart({
      id, title: `${key(a)}: desired vs ready replicas`, summary, t0, t1,
      series: [
        { name: "max", cls: "bound", step: true, dot: false, points: pts((p) => p.maxReplicas) },
        { name: "min", cls: "bound", step: true, dot: false, points: pts((p) => p.minReplicas) },
        { name: "ready", cls: "ready", step: true, points: pts((p) => p.readyReplicas) },
        { name: "desired", cls: "desired", step: true, points: pts((p) => p.desiredReplicas) },
      ],
    })}
    ${legend([["desired", "desired"], ["ready", "ready nodes"], ["bound", "min / max"]])}
  </figure>`;
}

function metricChart(id, a, metric, index, points) {
  const [t0, t1] = windowOf(points);
  const at = (p) => p.metrics.find((m) => m.name === metric.name) || p.metrics[index] || null;
  const values = points.map((p) => [p.t, at(p) ? at(p).value : null]);
  const targets = points.map((p) => [p.t, at(p) ? at(p).targetLevel : null]);
  const average = metric.targetType === "AverageValue";
  const targetLabel = average ? `target: ${num(metric.target)} per replica × current replicas`
    : metric.targetType === "Utilization" ? `target: ${num(metric.target)}%` : `target: ${num(metric.target)}`;
  const summary = `Over the ${spanText(t0, t1)}, ${metric.name} ranged ${range(values.map((v) => v[1]))}; ` +
    `now ${num(metric.value)} against a ${targetLabel}.`;
  const now = metric.error
    ? html`<p class="metric-now error">Failed: ${metric.error}</p>`
    : html`<p class="metric-now">Now <strong>${num(metric.value)}</strong> · asks for
        <strong>${num(metric.recommendation)}</strong> replicas <span class="muted">(${metric.reason || ""})</span></p>`;
  return html`<figure class="chart" data-chart="metric" data-metric="${metric.name}">
    <figcaption>${metric.name} <span class="muted">· value vs ${metric.targetType} target · ${spanText(t0, t1)}</span></figcaption>
    ${lineChart({
      id, title: `${key(a)}: ${metric.name} value vs target`, summary, t0, t1,
      series: [
        { name: "target", cls: "target", step: true, points: targets },
        { name: "value", cls: "value", step: false, points: values },
      ],
    })}
    ${legend([["value", "value"], ["target", targetLabel]])}
    ${now}
  </figure>`;
}

// ------------------------------------------------------------------ rendering

function renderAutoscalers() {
  const root = document.getElementById("autoscalers");
  root.setAttribute("aria-busy", "false");
  if (!state.autoscalers.length) {
    root.innerHTML = part(html`<p class="muted">No autoscalers. Add a HorizontalAutoscaler to the spec files.</p>`);
    return;
  }
  const groups = new Map(state.nodeGroups.map((g) => [key(g), g]));
  root.innerHTML = part(state.autoscalers.map((a, i) => {
    const k = key(a), target = `${a.namespace}/${a.spec.scaleTargetRef.name}`;
    const group = groups.get(target);
    const series = state.history.autoscalers.get(k);
    const points = series ? series.points : [];
    const metrics = a.status.currentMetrics || (a.spec.metrics || []).map((m, j) => ({ name: `metric ${j + 1}` }));
    const ready = group && group.status.replicas !== undefined ? group.status.replicas : null;
    const id = `as-${i}`;
    return html`<article class="card" data-autoscaler="${k}" aria-labelledby="${id}-name">
      <div class="card-head">
        <h3 id="${id}-name">${k}</h3>
        <span class="muted">scales node group <a href="#ng-${target}">${target}</a></span>
      </div>
      <dl class="stats">
        <div><dt>Desired</dt><dd data-field="desired">${num(a.status.desiredReplicas)}</dd></div>
        <div><dt>Current</dt><dd data-field="current">${num(a.status.currentReplicas)}</dd></div>
        <div><dt>Ready</dt><dd data-field="ready">${num(ready)}</dd></div>
        <div><dt>Min</dt><dd>${num(a.spec.minReplicas)}</dd></div>
        <div><dt>Max</dt><dd>${num(a.spec.maxReplicas)}</dd></div>
        <div><dt>Last scale</dt><dd class="small">${a.status.lastScaleTime ? timeEl(a.status.lastScaleTime, ago(a.status.lastScaleTime)) : "–"}</dd></div>
      </dl>
      ${chips(a.status.conditions)}
      <div class="charts">
        ${replicasChart(`${id}-replicas`, a, points)}
        ${metrics.map((m, j) => metricChart(`${id}-metric-${j}`, a, m, j, points))}
      </div>
      ${a.status.reasons && a.status.reasons.length
        ? html`<div class="why"><strong>Why ${num(a.status.desiredReplicas)}:</strong>
            <ul>${a.status.reasons.map((r) => html`<li>${r}</li>`)}</ul></div>` : ""}
    </article>`;
  }));
}

function fillTable(id, rows, columns, empty) {
  const body = document.querySelector(`#${id} tbody`);
  body.innerHTML = rows.length ? part(rows) : part(html`<tr><td colspan="${columns}" class="muted">${empty}</td></tr>`);
}

function renderNodeGroups() {
  fillTable("nodegroups", state.nodeGroups.map((g) => {
    const s = g.status;
    const bounds = s.minSize !== undefined || s.maxSize !== undefined ? `${num(s.minSize)} / ${num(s.maxSize)}` : "–";
    return html`<tr data-node-group="${key(g)}" id="ng-${key(g)}">
      <th scope="row">${key(g)}</th>
      <td>${g.spec.type}<br><span class="muted">${g.spec.id}</span></td>
      <td class="num" data-field="desired">${num(g.spec.replicas)}</td>
      <td class="num" data-field="ready">${num(s.replicas)}</td>
      <td class="num">${bounds}</td>
      <td>${chips(s.conditions)}</td>
      <td>${s.lastUpdated ? timeEl(s.lastUpdated, ago(s.lastUpdated)) : html`<span class="muted">not yet</span>`}</td>
    </tr>`;
  }), 7, "No node groups.");
}

function renderProducers() {
  fillTable("producers", state.producers.map((p) => {
    const s = p.status;
    const source = SOURCES.find((name) => name in p.spec) || Object.keys(p.spec).find((k) => k !== "intervalSeconds") || "?";
    const signals = (s.signals || []).map((sig) => {
      const labels = Object.entries(sig.labels || {}).map(([k, v]) => `${k}=${v}`).join(",");
      return html`<div><span class="muted">${sig.name}${labels ? `{${labels}}` : ""} =</span> <strong>${num(sig.value)}</strong></div>`;
    });
    const status = s.error
      ? html`<span class="error" role="note"><strong>${s.error.code}</strong>: ${s.error.message}</span>`
      : chips(s.conditions);
    return html`<tr data-producer="${key(p)}">
      <th scope="row">${key(p)}</th>
      <td>${source}<br><span class="muted">every ${num(p.spec.intervalSeconds)} s</span></td>
      <td data-field="value">${signals.length ? signals : html`<span class="muted">no value yet</span>`}</td>
      <td>${s.lastObservedTime ? timeEl(s.lastObservedTime, ago(s.lastObservedTime)) : html`<span class="muted">never</span>`}</td>
      <td>${status}</td>
    </tr>`;
  }), 5, "No producers.");
}

function renderDecisions() {
  fillTable("decisions", state.decisions.map((d) => {
    const arrow = d.direction === "up" ? "▲" : d.direction === "down" ? "▼" : "=";
    const word = d.direction === "up" ? "scale up" : d.direction === "down" ? "scale down" : "no change";
    const metrics = (d.metrics || []).map((m) => html`<tr><td>${m.name}</td><td class="num">${num(m.value)}</td>
      <td>${m.targetType} ${num(m.target)}</td><td class="num">${num(m.recommendation)}</td><td>${m.error || m.reason || ""}</td></tr>`);
    return html`<tr class="decision${state.freshDecisions.has(d.seq) ? " fresh" : ""}" data-seq="${d.seq}">
      <td>${timeEl(d.time, clock(Date.parse(d.time)))}</td>
      <td>${d.autoscaler}</td>
      <td class="${d.direction}"><span aria-hidden="true">${arrow}</span> ${d.from} → ${d.to}<span class="sr-only"> (${word})</span></td>
      <td>${d.limitedBy ? html`<span class="rule" data-field="limitedBy">${d.limitedBy}</span>` : html`<span class="muted">–</span>`}</td>
      <td><ul class="reasons">${d.reasons.map((r) => html`<li>${r}</li>`)}</ul>
        ${metrics.length ? html`<details><summary>metrics</summary><table>
          <thead><tr><th scope="col">Metric</th><th scope="col" class="num">Value</th><th scope="col">Target</th>
          <th scope="col" class="num">Asks for</th><th scope="col">Outcome</th></tr></thead>
          <tbody>${metrics}</tbody></table></details>` : ""}</td>
    </tr>`;
  }), 5, "No decisions yet.");
  document.getElementById("older-decisions").hidden = !state.olderDecisions;
}

function renderConfig() {
  const box = document.getElementById("config-issues");
  const issues = state.config.issues || [];
  box.hidden = state.config.valid || !issues.length;
  box.innerHTML = box.hidden ? "" : part(html`<strong>The spec files have ${issues.length} problem(s); the last good specs keep running.</strong>
    <ul>${issues.map((i) => html`<li><code>${i.file}:${i.line}</code> ${i.path}: ${i.message}</li>`)}</ul>`);
}

// ------------------------------------------------------------------ polling

class HttpError extends Error {}

/** GET JSON; with a cache key, sends If-None-Match and returns null on 304 Not Modified. */
async function getJSON(url, cacheKey) {
  const headers = { Accept: "application/json" };
  const etag = cacheKey && state.etags.get(cacheKey);
  if (etag) headers["If-None-Match"] = etag;
  const response = await fetch(url, { cache: "no-store", headers });
  if (response.status === 304) return null;
  if (!response.ok) {
    let detail = response.statusText;
    try { const problem = await response.json(); detail = problem.detail || problem.title || detail; } catch (_) { /* not JSON */ }
    throw new HttpError(`${url}: ${response.status} ${detail}`);
  }
  if (cacheKey && response.headers.get("ETag")) state.etags.set(cacheKey, response.headers.get("ETag"));
  return response.json();
}

async function loadList(path, field) {
  const body = await getJSON(`/api/v1/${path}`, path);
  if (body === null) return false;
  state[field] = body.items;
  return true;
}

function resetHistory() {
  state.history.seq = 0;
  state.history.autoscalers.clear();
  state.history.nodeGroups.clear();
  state.etags.delete("history");
  state.decisions = [];
  state.decisionSeq = 0;
}

async function loadHistory() {
  const h = state.history;
  const body = await getJSON(`/api/v1/history${h.seq ? `?after=${h.seq}` : ""}`, "history");
  if (body === null) return false;
  if (body.metadata.latestSeq < h.seq) { // the server restarted: start over
    resetHistory();
    return loadHistory();
  }
  h.seq = body.metadata.latestSeq;
  h.intervalSeconds = body.metadata.intervalSeconds;
  h.retentionSeconds = body.metadata.retentionSeconds;
  const merge = (map, items, name) => {
    const seen = new Set();
    for (const item of items) {
      const k = item[name];
      seen.add(k);
      const series = map.get(k) || { points: [] };
      series.nodeGroup = item.nodeGroup;
      for (const p of item.points) p.t = Date.parse(p.time);
      series.points.push(...item.points);
      const newest = series.points.length ? series.points[series.points.length - 1].t : 0;
      const oldest = newest - h.retentionSeconds * 1000;
      while (series.points.length && series.points[0].t < oldest) series.points.shift();
      map.set(k, series);
    }
    for (const k of [...map.keys()]) if (!seen.has(k)) map.delete(k);
  };
  merge(h.autoscalers, body.autoscalers, "autoscaler");
  merge(h.nodeGroups, body.nodeGroups, "nodeGroup");
  return true;
}

/** New decisions only (`after` the newest shown), or the newest page at first. */
async function loadDecisions() {
  const after = state.decisionSeq ? `&after=${state.decisionSeq}` : "";
  const body = await getJSON(`/api/v1/decisions?limit=${state.decisionLimit}${after}`);
  state.freshDecisions = new Set(state.decisionSeq ? body.items.map((d) => d.seq) : []);
  if (!state.decisionSeq) state.olderDecisions = Boolean(body.metadata && body.metadata.continue);
  if (!body.items.length) return false;
  const merged = [...body.items, ...state.decisions];
  if (merged.length > state.decisionLimit) state.olderDecisions = true;
  state.decisions = merged.slice(0, state.decisionLimit);
  state.decisionSeq = Math.max(state.decisionSeq, ...body.items.map((d) => d.seq));
  return true;
}

/** "Show older decisions": one more page, fetched as a longer newest-first list. */
async function showOlderDecisions() {
  state.decisionLimit += DECISIONS_PAGE;
  const body = await getJSON(`/api/v1/decisions?limit=${state.decisionLimit}`);
  state.decisions = body.items;
  state.olderDecisions = Boolean(body.metadata && body.metadata.continue);
  state.freshDecisions = new Set();
  if (body.items.length) state.decisionSeq = Math.max(state.decisionSeq, body.items[0].seq);
  renderDecisions();
}

async function loadConfig() {
  const body = await getJSON("/api/v1/config", "config");
  if (body === null) return false;
  state.config = body;
  return true;
}

let timer = null;
let failures = 0;

function setStatus(kind, text) {
  const status = document.getElementById("status");
  if (status.dataset.state !== kind || status.textContent !== text) {
    status.dataset.state = kind;
    status.textContent = text; // announced politely only when it changes
  }
}

async function poll() {
  clearTimeout(timer);
  try {
    const historyChanged = await loadHistory();
    const [autoscalers, nodeGroups, producers, decisions, config] = await Promise.all([
      loadList("horizontalautoscalers", "autoscalers"),
      loadList("scalablenodegroups", "nodeGroups"),
      loadList("metricsproducers", "producers"),
      loadDecisions(),
      loadConfig(),
    ]);
    if (autoscalers || nodeGroups || historyChanged) renderAutoscalers();
    if (nodeGroups) renderNodeGroups();
    if (producers) renderProducers();
    if (decisions || !state.decisionsRendered) renderDecisions(); // keeps open <details> otherwise
    state.decisionsRendered = true;
    if (config) renderConfig();
    failures = 0;
    setStatus("live", "Live");
    const updated = document.getElementById("updated");
    updated.textContent = `updated ${clock(Date.now())}`;
    updated.dataset.polls = String(Number(updated.dataset.polls || 0) + 1);
  } catch (err) {
    failures += 1;
    setStatus("error", `Cannot reach the service (${err.message}); retrying`);
  } finally {
    const delay = Math.min(POLL_MS * 2 ** Math.min(failures, 4), 60000);
    if (!document.hidden) timer = setTimeout(poll, delay);
  }
}

document.getElementById("older-decisions").addEventListener("click", () => {
  showOlderDecisions().catch((err) => setStatus("error", `Cannot load older decisions (${err.message})`));
});
document.addEventListener("visibilitychange", () => {
  if (document.hidden) clearTimeout(timer);
  else poll();
});
poll();
