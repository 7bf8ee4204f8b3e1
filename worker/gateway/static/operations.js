// lcstream operations: polls /v1/operations for the charts' samples (only the new ones, ?after=<seq>),
// the consumers and the dead letters (charts.js draws, deadletters.js shows a dead letter and acts on
// it). Operators only: the gateway serves this page to a signed-in operator alone (signin.js turns the
// operator token into an HttpOnly session cookie), and reloading it after the session ends signs in again.
"use strict";

const $ = (id) => document.getElementById(id);
const ops = {
  samples: [], seq: null, intervalMs: 1000, windowS: 300, partitions: 0, timer: 0,
  drawn: false, deadShown: null, letter: null, confirmed: null,
};

// -- access -----------------------------------------------------------------------------------

function setState(text, down) {
  $("ops-state").textContent = text;
  $("ops-state").classList.toggle("down", down);
}

// The gateway's errors are {"error": {"code", "message"}}: the message, or the status without one.
async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return String(body.error.message);
  } catch (error) {
    // not JSON
  }
  return `HTTP ${response.status}`;
}

// -- polling ----------------------------------------------------------------------------------

async function poll() {
  clearTimeout(ops.timer);
  const after = ops.seq;
  let response;
  try {
    response = await fetch(after === null ? "/v1/operations" : `/v1/operations?after=${after}`, { cache: "no-store" });
  } catch (error) {
    setState("gateway unreachable", true);
    ops.timer = setTimeout(poll, ops.intervalMs);
    return;
  }
  if (response.status === 401) {
    location.reload(); // the session ended: the gateway answers the page with its sign-in form
    return;
  }
  if (response.status === 403) {
    setState("operators only", true);
    return; // retrying can't help
  }
  if (!response.ok) {
    setState(`gateway error: ${await errorMessage(response)}`, true);
  } else {
    const data = await response.json();
    const samples = data.samples || [];
    if (after !== null && samples.some((sample) => sample.seq <= after)) {
      // The gateway restarted and its seqs started again: forget what was drawn, take it all.
      ops.samples = [];
      ops.seq = null;
      poll();
      return;
    }
    take(data, samples);
    setState("live", false);
  }
  ops.timer = setTimeout(poll, ops.intervalMs);
}

function take(data, samples) {
  ops.intervalMs = Math.max(200, (data.interval_s || 1) * 1000);
  const windowChanged = data.window_s !== ops.windowS || data.partitions !== ops.partitions;
  ops.windowS = data.window_s || 300;
  ops.partitions = data.partitions || 0;
  if (samples.length) {
    ops.samples.push(...samples);
    ops.seq = samples[samples.length - 1].seq;
    const oldest = samples[samples.length - 1].time_ms - ops.windowS * 1000;
    ops.samples = ops.samples.filter((sample) => sample.time_ms >= oldest);
  }
  if (samples.length || windowChanged || !ops.drawn) {
    renderCharts(ops.samples, ops.windowS, ops.partitions);
    ops.drawn = true;
  }
  const workers = data.workers || [];
  const newest = ops.samples[ops.samples.length - 1];
  const lags = newest && Array.isArray(newest.lag) ? newest.lag.filter(Number.isFinite) : [];
  $("ops-workers").textContent = workers.filter((worker) => worker.running).length;
  $("ops-lag").textContent = lags.length ? lags.reduce((a, b) => a + b, 0) : "—";
  $("ops-dead").textContent = data.dead_letters ? data.dead_letters.total : "—";
  $("ops-problem").textContent = data.problem || "";
  $("ops-problem").classList.toggle("hidden", !data.problem);
  renderWorkers(workers);
  renderDead(data.dead_letters || { total: 0, letters: [] });
}

// -- formatting -------------------------------------------------------------------------------

function duration(ms) {
  if (!Number.isFinite(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

function ago(ms) {
  if (!Number.isFinite(ms)) return "—";
  const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  return `${Math.floor(seconds / 3600)} h ago`;
}

function localTime(ms) {
  return Number.isFinite(ms) ? new Date(ms).toLocaleString() : "—";
}

function cell(className, text, title) {
  const td = document.createElement("td");
  td.className = className;
  td.textContent = text === null || text === undefined ? "—" : String(text);
  if (title) td.title = title;
  return td;
}

function emptyRow(columns, text) {
  const row = document.createElement("tr");
  row.className = "empty-row";
  const td = cell("muted", text);
  td.colSpan = columns;
  row.append(td);
  return row;
}

// -- consumers --------------------------------------------------------------------------------

function renderWorkers(workers) {
  const rows = workers.map((worker) => {
    const row = document.createElement("tr");
    row.dataset.consumer = worker.consumer;
    row.classList.toggle("gone", !worker.running);
    const status = document.createElement("td");
    const badge = document.createElement("span");
    badge.className = `badge state ${worker.running ? "running" : "gone"}`;
    badge.textContent = worker.running ? "running" : "gone";
    status.append(badge);
    row.append(
      status,
      cell("consumer", worker.consumer),
      cell("host", worker.host == null && worker.pid == null ? "—" : `${worker.host ?? "?"}:${worker.pid ?? "?"}`),
      cell("partitions", (worker.partitions || []).join(", ")),
      cell("open", worker.open_messages),
      cell("pending", worker.pending),
      cell("holds", worker.holds_entries ? "yes" : "no"),
      cell("idle", duration(worker.idle_ms)),
      cell("seen", ago(worker.last_seen_ms)),
    );
    return row;
  });
  $("workers").replaceChildren(...(rows.length ? rows : [emptyRow(9, "no consumers yet")]));
}

// -- start ------------------------------------------------------------------------------------

// Once every script has run (deadletters.js comes after this one).
document.addEventListener("DOMContentLoaded", () => {
  renderCharts([], ops.windowS, 0);
  poll();
});
