// lcstream dashboard, runs: the recent runs, and one run's messages grouped by node, each streaming live.
// It uses dashboard.js's helpers ($, state, withToken, listItem, emptyView, applyFrame). A run's stream
// resumes by itself after a drop (EventSource sends Last-Event-ID: the run cursor of the last event).
"use strict";

const runs = { list: [], selected: null, source: null, messages: new Map(), status: "waiting", dirty: false };

async function pollRuns() {
  if (state.token) return; // a viewer's page: the list is for operators
  try {
    const response = await fetch("/v1/runs", { cache: "no-store" });
    if (response.ok) {
      runs.list = (await response.json()).runs;
      renderRunList();
    }
  } catch (error) {
    // the messages' poll says the gateway is unreachable
  }
  setTimeout(pollRuns, POLL_MS);
}

function renderRunList() {
  $("runs").replaceChildren(
    ...runs.list.map((run) => {
      const item = listItem(run.run_id, run.status, run.run_id === runs.selected, () => selectRun(run.run_id));
      item.dataset.runId = run.run_id;
      return item;
    }),
  );
  $("runs-hint").classList.toggle("hidden", runs.list.length > 0);
}

function selectRun(id) {
  const token = state.token ? "&token=" + encodeURIComponent(state.token) : "";
  history.replaceState(null, "", "#r=" + encodeURIComponent(id) + token);
  openRun(id);
  renderRunList();
}

function closeRun() {
  if (runs.source) runs.source.close();
  runs.source = null;
  runs.selected = null;
  $("run").classList.add("hidden");
}

function openRun(id) {
  if (state.source) state.source.close(); // one thing at a time: the message view stops
  state.selected = null;
  closeRun();
  runs.selected = id;
  runs.messages = new Map();
  runs.status = "running";
  $("empty").classList.add("hidden");
  $("message").classList.add("hidden");
  $("run").classList.remove("hidden");
  const source = new EventSource(withToken(`/v1/runs/${encodeURIComponent(id)}/stream`));
  runs.source = source;
  source.addEventListener("frame", (event) => {
    const frame = JSON.parse(event.data);
    let view = runs.messages.get(frame.message_id);
    if (!view) {
      view = Object.assign(emptyView(frame.message_id), { index: frame.index, node: null });
      runs.messages.set(frame.message_id, view);
    }
    if (frame.kind === "start") view.node = frame.data.node;
    applyFrame(view, frame);
    scheduleRun();
  });
  source.addEventListener("end", (event) => {
    runs.status = JSON.parse(event.data).status;
    source.close(); // the run is over; without this EventSource would reconnect
    scheduleRun();
  });
}

function scheduleRun() {
  if (!runs.dirty) {
    runs.dirty = true;
    requestAnimationFrame(renderRun);
  }
}

function renderRun() {
  runs.dirty = false;
  $("run-id").textContent = runs.selected;
  $("run-status").textContent = runs.status;
  $("run-status").className = `badge ${runs.status === "running" ? "streaming" : runs.status}`;
  const groups = new Map(); // node -> its messages, nodes in the order their first message started
  const ordered = [...runs.messages.values()].sort((a, b) => a.index - b.index);
  for (const view of ordered) {
    const node = view.node || "(no node)";
    if (!groups.has(node)) groups.set(node, []);
    groups.get(node).push(view);
  }
  $("run-groups").replaceChildren(
    ...[...groups].map(([node, views]) => {
      const group = document.createElement("section");
      group.className = "panel node-group";
      group.dataset.node = node;
      const heading = document.createElement("h3");
      heading.textContent = node;
      group.append(heading, ...views.map(runMessage));
      return group;
    }),
  );
}

function runMessage(view) {
  const box = document.createElement("div");
  box.className = "run-message";
  box.dataset.messageId = view.id;
  const head = document.createElement("div");
  head.className = "head";
  const badge = document.createElement("span");
  badge.className = `badge ${view.status}`;
  badge.textContent = view.status;
  const id = document.createElement("code");
  id.className = "message-id";
  id.textContent = view.id;
  const tools = document.createElement("span");
  tools.className = "meta";
  tools.textContent = view.tools.size ? `${view.tools.size} tool calls` : "";
  head.append(badge, id, tools);
  const text = document.createElement("pre");
  text.className = "text";
  text.textContent = view.text;
  box.append(head, text);
  return box;
}

const runFromHash = hash.get("r");
if (runFromHash) selectRun(runFromHash);
pollRuns();
