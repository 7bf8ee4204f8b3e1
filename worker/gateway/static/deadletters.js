// lcstream operations, dead letters: the newest ones in a table; one opens to its letters, outcome and
// stored events, and can be retried (announced again) or deleted, each after a confirmation. It uses
// operations.js's helpers ($, ops, cell, emptyRow, localTime, errorMessage).
"use strict";

function renderDead(dead) {
  const letters = dead.letters || [];
  $("dead-note").textContent = dead.total > letters.length ? `newest ${letters.length} of ${dead.total}` : "";
  const shown = JSON.stringify(letters);
  if (shown !== ops.deadShown) { // rebuilt only when they change: a click on "Open" is never lost
    ops.deadShown = shown;
    const rows = letters.map((letter) => {
      const row = document.createElement("tr");
      row.dataset.messageId = letter.message_id;
      const message = document.createElement("td");
      message.className = "message";
      const link = document.createElement("a");
      link.href = "/#m=" + encodeURIComponent(letter.message_id);
      link.textContent = letter.message_id;
      message.append(link);
      const error = String(letter.error ?? "");
      const action = document.createElement("td");
      const open = document.createElement("button");
      open.type = "button";
      open.className = "open-letter";
      open.textContent = "Open";
      open.addEventListener("click", () => openLetter(letter.message_id));
      action.append(open);
      row.append(
        message,
        cell("reason", letter.reason),
        cell("error", error.length > 120 ? error.slice(0, 119) + "…" : error, error),
        cell("deliveries", letter.deliveries),
        cell("time", localTime(letter.time_ms)),
        action,
      );
      return row;
    });
    $("dead").replaceChildren(...(rows.length ? rows : [emptyRow(6, "no dead letters")]));
  }
  markOpened();
}

function markOpened() {
  for (const row of $("dead").querySelectorAll("tr[data-message-id]")) {
    row.classList.toggle("selected", row.dataset.messageId === ops.letter);
  }
}

// What came of the last request about the open dead letter; kind: "ok", "failed" or "busy".
function showResult(text, kind) {
  $("dead-result").textContent = text;
  $("dead-result").className = `result ${kind}`;
}

async function openLetter(id) {
  ops.letter = id;
  markOpened();
  $("dead-detail").classList.remove("hidden");
  $("dead-detail-id").textContent = id;
  $("dead-detail-id").title = id;
  $("dead-detail-link").href = "/#m=" + encodeURIComponent(id);
  $("dead-letters").replaceChildren();
  $("dead-outcome").textContent = "";
  $("dead-events").replaceChildren();
  $("dead-events-note").textContent = "";
  $("dead-body").classList.add("hidden");
  showResult("loading…", "busy");
  $("dead-detail").scrollIntoView({ block: "nearest" });
  let response, detail;
  try {
    response = await fetch(`/v1/operations/dead/${encodeURIComponent(id)}`, { cache: "no-store" });
    detail = response.ok ? await response.json() : null;
  } catch (error) {
    if (ops.letter === id) showResult("gateway unreachable", "failed");
    return;
  }
  if (ops.letter !== id) return; // another one was opened meanwhile
  if (!detail) {
    showResult(await errorMessage(response), "failed");
    return;
  }
  showResult("", "ok");
  renderDetail(detail);
  $("dead-body").classList.remove("hidden");
}

function renderDetail(detail) {
  const letters = detail.letters || [];
  $("dead-letters").replaceChildren(...(letters.length ? letters.map((letter) => {
    const row = document.createElement("tr");
    row.dataset.entryId = letter.entry_id;
    row.append(
      cell("entry", letter.entry_id),
      cell("reason", letter.reason),
      cell("deliveries", letter.deliveries),
      cell("time", localTime(letter.time_ms)),
      cell("error full", letter.error),
    );
    return row;
  }) : [emptyRow(5, "no dead letters left")]));
  $("dead-outcome").textContent = detail.outcome === null || detail.outcome === undefined
    ? "none recorded" : JSON.stringify(detail.outcome, null, 2);
  const events = detail.events || [];
  const total = detail.events_total ?? events.length;
  $("dead-events-note").textContent = total > events.length
    ? `first ${events.length} of ${total} events` : `${total} event${total === 1 ? "" : "s"}`;
  $("dead-events").replaceChildren(...events.map((event) => {
    const pre = document.createElement("pre");
    pre.className = "event";
    pre.dataset.id = event.id;
    pre.title = event.id;
    pre.textContent = event.raw; // as stored, one line each: the broken one shows as it is
    return pre;
  }));
}

// -- retry, delete: each asks first -----------------------------------------------------------

function confirmThen(text, action) {
  $("confirm-text").textContent = text;
  ops.confirmed = action;
  $("confirm").showModal();
}

$("confirm-yes").addEventListener("click", () => {
  const action = ops.confirmed;
  ops.confirmed = null;
  $("confirm").close();
  if (action) action();
});
$("confirm-no").addEventListener("click", () => {
  ops.confirmed = null;
  $("confirm").close();
});
$("confirm").addEventListener("close", () => { ops.confirmed = null; });

async function act(id, method, suffix, describe) {
  $("dead-retry").disabled = $("dead-delete").disabled = true;
  showResult(method === "DELETE" ? "deleting…" : "retrying…", "busy");
  try {
    const response = await fetch(`/v1/operations/dead/${encodeURIComponent(id)}${suffix}`, { method, cache: "no-store" });
    const text = response.ok ? describe(await response.json()) : await errorMessage(response);
    if (ops.letter === id) showResult(text, response.ok ? "ok" : "failed");
  } catch (error) {
    if (ops.letter === id) showResult("gateway unreachable", "failed");
  } finally {
    $("dead-retry").disabled = $("dead-delete").disabled = false;
  }
}

$("dead-retry").addEventListener("click", () => {
  const id = ops.letter;
  if (id === null) return;
  confirmThen(`Retry message ${id}? It runs again from its stored events.`, () =>
    act(id, "POST", "/retry", (body) => `announced again as ${body.dispatch_id}`));
});

$("dead-delete").addEventListener("click", () => {
  const id = ops.letter;
  if (id === null) return;
  confirmThen(`Delete the dead letters of ${id}? This cannot be undone.`, () =>
    act(id, "DELETE", "", (body) => `deleted ${body.deleted} dead letter${body.deleted === 1 ? "" : "s"}`));
});

$("dead-close").addEventListener("click", () => {
  ops.letter = null;
  $("dead-detail").classList.add("hidden");
  markOpened();
});
