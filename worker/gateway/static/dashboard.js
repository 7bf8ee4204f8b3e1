// lcstream dashboard: polls /v1/messages, and streams the selected message over SSE.
// EventSource reconnects by itself after a drop, sending Last-Event-ID; the gateway resumes there.
// Access: an operator signs in once (POST /v1/session turns the operator token into an HttpOnly
// cookie); a viewer opens #m=<id>&token=<read token>, which shows that one message only.
"use strict";

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

const hash = new URLSearchParams(location.hash.slice(1));
const state = {
  messages: [], selected: null, source: null, view: null, dirty: false, retry: 0,
  token: hash.get("token"), // a read token for one message, never sent anywhere but this gateway
};

function withToken(url) {
  return state.token ? `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(state.token)}` : url;
}

// -- access -----------------------------------------------------------------------------------

function showLogin(reason) {
  $("login").classList.remove("hidden");
  $("login-reason").textContent = reason;
  $("poll-state").textContent = "sign in";
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch("/v1/session", {
    method: "POST", headers: { Authorization: `Bearer ${$("login-token").value.trim()}` },
  });
  $("login-token").value = "";
  if (!response.ok) {
    $("login-reason").textContent = "that is not the operator token";
    return;
  }
  $("login").classList.add("hidden");
  clearTimeout(state.poll);
  poll();
});

// -- the message list -------------------------------------------------------------------------

async function poll() {
  if (state.token) { // a viewer's page: the list is for operators
    $("poll-state").textContent = "one message (read token)";
    return;
  }
  try {
    const response = await fetch("/v1/messages", { cache: "no-store" });
    if (response.status === 401 || response.status === 403) {
      showLogin("this gateway asks operators to sign in");
      return; // polling starts again after signing in
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    state.messages = (await response.json()).messages;
    $("poll-state").textContent = "updated " + new Date().toLocaleTimeString();
    $("poll-state").classList.remove("down");
    renderList();
  } catch (error) {
    $("poll-state").textContent = "gateway unreachable";
    $("poll-state").classList.add("down");
  }
  state.poll = setTimeout(poll, POLL_MS);
}

function age(iso) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  return `${Math.floor(seconds / 3600)}h`;
}

function statusLabel(status) {
  return status === "started" ? "streaming" : status;
}

function listed() {
  // The selected message's own stream knows its end before the next poll does.
  const view = state.view;
  const ended = view && (view.status === "completed" || view.status === "failed");
  return state.messages.map((m) => (ended && m.message_id === view.id ? { ...m, status: view.status } : m));
}

// One row of a sidebar list (messages, runs): a status badge and the id; a click selects it.
function listItem(id, status, selected, onClick) {
  const item = document.createElement("li");
  item.classList.toggle("selected", selected);
  const badge = document.createElement("span");
  badge.className = `badge ${statusLabel(status)}`;
  badge.textContent = statusLabel(status);
  const label = document.createElement("span");
  label.className = "mid";
  label.textContent = id;
  label.title = id;
  item.append(badge, label);
  item.addEventListener("click", onClick);
  return item;
}

function renderList() {
  const messages = listed();
  const counts = { started: 0, completed: 0, failed: 0 };
  for (const m of messages) counts[m.status] = (counts[m.status] || 0) + 1;
  $("count-active").textContent = counts.started;
  $("count-completed").textContent = counts.completed;
  $("count-failed").textContent = counts.failed;
  // Streaming ones first, then the rest newest first (the gateway sends newest first).
  const ordered = [
    ...messages.filter((m) => m.status === "started"),
    ...messages.filter((m) => m.status !== "started"),
  ];
  $("messages").replaceChildren(
    ...ordered.map((m) => {
      const item = listItem(m.message_id, m.status, m.message_id === state.selected, () => select(m.message_id));
      item.dataset.messageId = m.message_id;
      const when = document.createElement("span");
      when.className = "age";
      when.textContent = age(m.updated_at);
      item.append(when);
      return item;
    }),
  );
  $("list-hint").classList.toggle("hidden", state.messages.length > 0);
}

// -- one message, live ------------------------------------------------------------------------

function emptyView(id) {
  return { id, seq: 0, status: "waiting", text: "", reasoning: "", tools: new Map(), output: null, error: null };
}

function applySnapshot(view, snapshot) {
  Object.assign(view, {
    seq: snapshot.seq, status: snapshot.status, text: snapshot.text, reasoning: snapshot.reasoning,
    output: snapshot.output, error: snapshot.error, tools: new Map(),
  });
  for (const call of snapshot.tool_calls) view.tools.set(call.index, { ...call });
}

function applyFrame(view, frame) {
  if (frame.seq <= view.seq) return; // already shown (a snapshot covered it)
  view.seq = frame.seq;
  const data = frame.data;
  switch (frame.kind) {
    case "start": view.status = "streaming"; break;
    case "text": view.text += data; break;
    case "reasoning": view.reasoning += data; break;
    case "tool_call_chunk": {
      const index = data.index ?? 0;
      const call = view.tools.get(index) || { index, id: null, name: null, args: "" };
      call.id = call.id || data.id || null;
      call.name = call.name || data.name || null;
      call.args += data.args || "";
      view.tools.set(index, call);
      break;
    }
    case "output": view.status = "completed"; view.output = data; break;
    case "error": view.status = "failed"; view.error = data; break;
  }
}

function select(id) {
  if (!id) return;
  if (state.token && id !== state.selected && state.selected !== null) state.token = null; // it opens one
  const token = state.token ? "&token=" + encodeURIComponent(state.token) : "";
  history.replaceState(null, "", "#m=" + encodeURIComponent(id) + token);
  open(id);
  renderList();
}

function open(id) {
  if (typeof closeRun === "function") closeRun(); // runs.js: one thing at a time
  if (state.source) state.source.close();
  clearTimeout(state.retry);
  state.selected = id;
  state.view = emptyView(id);
  $("empty").classList.add("hidden");
  $("message").classList.remove("hidden");
  setConn("connecting");
  render();
  connect(state.view, "snapshot=1");
}

// EventSource resumes by itself (Last-Event-ID) after a dropped connection; after an error status
// (the gateway could not reach Redis) it gives up, so resume from the last frame shown a bit later.
const RETRY_MS = 3000;

function connect(view, query) {
  const path = `/v1/messages/${encodeURIComponent(view.id)}`;
  const source = new EventSource(withToken(`${path}/stream?${query}`));
  state.source = source;
  const ended = () => view.status === "completed" || view.status === "failed";
  const take = (apply) => (event) => {
    apply(view, JSON.parse(event.data));
    schedule();
    if (ended()) finish(source);
  };
  source.addEventListener("snapshot", take(applySnapshot));
  source.addEventListener("frame", take(applyFrame));
  source.onopen = () => setConn("live");
  source.onerror = () => {
    if (state.source !== source) return;
    if (source.readyState !== EventSource.CLOSED) {
      setConn("reconnecting");
    } else if (!ended()) {
      refused(path).then((denied) => {
        if (state.source !== source) return;
        if (denied) {
          setConn(denied); // retrying can't help: a new token or a sign-in can
          return;
        }
        setConn("retrying");
        state.retry = setTimeout(() => {
          if (state.source === source) connect(view, `after=${view.seq}`);
        }, RETRY_MS);
      });
    }
  };
}

// EventSource does not say why it closed: ask the message's outcome endpoint, which has the same access.
async function refused(path) {
  try {
    const response = await fetch(withToken(path), { cache: "no-store" });
    if (response.status === 401) return "unauthorized";
    if (response.status === 403) return "forbidden";
  } catch (error) {
    // the gateway is unreachable: retry
  }
  return null;
}

function finish(source) {
  source.close(); // the stream is over; without this EventSource would reconnect
  if (state.source === source) {
    setConn("ended");
    renderList();
  }
}

function setConn(text) {
  $("conn").textContent = text;
}

function schedule() {
  if (!state.dirty) {
    state.dirty = true;
    requestAnimationFrame(render);
  }
}

function keepAtBottom(element, update) {
  const atBottom = element.scrollHeight - element.scrollTop - element.clientHeight < 24;
  update();
  if (atBottom) element.scrollTop = element.scrollHeight;
}

function render() {
  state.dirty = false;
  const view = state.view;
  if (!view) return;
  $("message-id").textContent = view.id;
  $("message-id").title = view.id;
  $("status").textContent = view.status;
  $("status").className = `badge ${view.status}`;
  $("frames").textContent = view.seq;
  $("text-chars").textContent = view.text.length;
  $("tool-count").textContent = view.tools.size;
  keepAtBottom($("text"), () => { $("text").textContent = view.text; });
  $("reasoning-panel").classList.toggle("hidden", !view.reasoning);
  keepAtBottom($("reasoning"), () => { $("reasoning").textContent = view.reasoning; });
  renderTools(view);
  renderUsage(view);
  renderOutcome(view);
}

function renderTools(view) {
  $("tools-panel").classList.toggle("hidden", view.tools.size === 0);
  const calls = [...view.tools.values()].sort((a, b) => a.index - b.index);
  $("tool-calls").replaceChildren(
    ...calls.map((call) => {
      const box = document.createElement("div");
      box.className = "tool-call";
      box.dataset.index = call.index;
      const head = document.createElement("div");
      head.className = "head";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = call.name || "…";
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = `#${call.index}${call.id ? " · " + call.id : ""}`;
      head.append(name, meta);
      const args = document.createElement("pre");
      args.className = "args";
      args.textContent = call.args;
      box.append(head, args);
      return box;
    }),
  );
}

function renderUsage(view) {
  const usage = view.output && view.output.data && view.output.data.usage_metadata;
  if (!usage) {
    $("usage").innerHTML = '<div class="muted">when the message completes</div>';
    return;
  }
  const rows = [["input", usage.input_tokens], ["output", usage.output_tokens], ["total", usage.total_tokens]];
  $("usage").replaceChildren(
    ...rows.map(([label, value]) => {
      const cell = document.createElement("div");
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = value ?? "–";
      cell.append(dt, dd);
      return cell;
    }),
  );
}

function renderOutcome(view) {
  const box = $("outcome");
  if (view.status === "completed") {
    box.className = "outcome";
    box.innerHTML = '<span class="badge completed">completed</span>';
  } else if (view.status === "failed") {
    box.className = "outcome";
    const badge = '<span class="badge failed">failed</span> ';
    box.innerHTML = badge + '<span class="code"></span><div class="error-message"></div>';
    box.querySelector(".code").textContent = (view.error && view.error.code) || "";
    box.querySelector(".error-message").textContent = (view.error && view.error.message) || "";
  } else {
    box.className = "outcome muted";
    box.textContent = "in progress";
  }
}

// -- start ------------------------------------------------------------------------------------

$("open-form").addEventListener("submit", (event) => {
  event.preventDefault();
  select($("open-id").value.trim());
});

const fromHash = hash.get("m");
if (fromHash) select(fromHash);
poll();
