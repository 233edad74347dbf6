// The live page: one WebSocket to /ws, records rendered as text (never as HTML), a capped
// list so memory stays bounded however long the tab stays open, filters applied on the server.
"use strict";

const MAX_ROWS = 5000;          // rows kept in the page; older ones are removed
const REPLAY = 500;             // records asked for on first connect and on a filter change
const RATE_SECONDS = 60;        // the rate plot's width in seconds
const RECONNECT_MAX_MS = 5000;

const $ = (id) => document.getElementById(id);
const logView = $("log");
const statusView = $("status");
const errorView = $("error");
const token = new URLSearchParams(location.search).get("token");

const state = {
  socket: null,
  run: null,
  lastSeq: 0,
  paused: false,
  filter: { sources: [], level: null, grep: null },
  pending: [],                  // rows waiting for the next animation frame
  drawScheduled: false,
  reconnectMs: 250,
  received: 0,
  highlight: "",
  colours: new Map(),
  rates: new Map(),             // source -> counts per second, newest last
  rateSecond: Math.floor(Date.now() / 1000),
};

function colourOf(source) {
  let colour = state.colours.get(source);
  if (!colour) {
    let hash = 0;
    for (const char of source) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
    colour = `hsl(${hash % 360}, 70%, 62%)`;
    state.colours.set(source, colour);
  }
  return colour;
}

// --- connection -------------------------------------------------------------------------

function socketUrl(resume) {
  const params = new URLSearchParams({ format: "json" });
  const f = state.filter;
  if (f.sources.length) params.set("source", f.sources.join(","));
  if (f.level) params.set("level", f.level);
  if (f.grep) params.set("grep", f.grep);
  if (resume && state.run) {
    params.set("since", String(state.lastSeq));
    params.set("run", state.run);
  } else {
    params.set("replay", String(REPLAY));
  }
  if (state.paused) params.set("pause", "true");   // what comes meanwhile waits for resume
  if (token) params.set("token", token);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws?${params}`;
}

function connect(resume) {
  const socket = new WebSocket(socketUrl(resume));
  state.socket = socket;
  socket.onmessage = (event) => onFrame(event.data);
  socket.onclose = (event) => {
    if (state.socket !== socket) return;
    document.body.dataset.state = "reconnecting";
    const wait = state.reconnectMs;
    state.reconnectMs = Math.min(wait * 2, RECONNECT_MAX_MS);
    setStatus(`disconnected (${event.code || "no answer"}); retrying in ${wait / 1000}s`);
    setTimeout(() => connect(true), wait);
  };
}

function send(message) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) {
    state.socket.send(JSON.stringify(message));
  }
}

function onFrame(data) {
  for (const text of data.split("\n")) {
    if (!text) continue;
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      continue;
    }
    if (message.hello) onHello(message.hello);
    else if (message.notice) onNotice(message);
    else if (message.error) showError(message.error);
    else if (typeof message.seq === "number") onRecord(message);
  }
}

function onHello(hello) {
  if (state.run && hello.run !== state.run) {
    addNotice("the server restarted: a new run begins");
  }
  state.run = hello.run;
  state.reconnectMs = 250;
  document.body.dataset.state = "live";
  setStatus(state.paused ? "paused" : "live");
}

function onNotice(message) {
  if (message.notice === "filter") {
    clearRows();
    document.body.dataset.filter = JSON.stringify(message.filter);
  } else if (message.notice === "pause") {
    document.body.dataset.paused = String(message.paused);
  } else if (message.notice === "gap") {
    addNotice(`${message.count} records are no longer held by the server and were missed`);
  } else if (message.notice === "dropped") {
    addNotice(`${message.count} records dropped: this page fell behind`);
  }
}

function onRecord(record) {
  state.lastSeq = record.seq;
  state.received += 1;
  countRate(record.source);
  queueRow(renderRecord(record));
}

// --- rendering --------------------------------------------------------------------------

function span(className, text) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

function renderRecord(record) {
  const row = document.createElement("div");
  row.className = "row";
  if (record.level) row.classList.add(`lvl-${record.level}`);
  if (record.late) row.classList.add("late");
  row.dataset.seq = record.seq;
  const source = span("src", record.source);
  source.style.color = colourOf(record.source);
  const line = span("line", "");
  fillLine(line, record.line);
  row.append(span("ts", record.ts.slice(0, 23) + "Z "), source, span("sep", " | "), line);
  return row;
}

// The line as text nodes, with <mark> elements around what the highlight matches.
function fillLine(element, text) {
  const needle = state.highlight;
  if (!needle) {
    element.textContent = text;
    return;
  }
  element.replaceChildren();
  const lower = text.toLowerCase();
  const wanted = needle.toLowerCase();
  let from = 0;
  let at = lower.indexOf(wanted);
  while (at !== -1) {
    element.append(document.createTextNode(text.slice(from, at)));
    const mark = document.createElement("mark");
    mark.textContent = text.slice(at, at + needle.length);
    element.append(mark);
    from = at + needle.length;
    at = lower.indexOf(wanted, from);
  }
  element.append(document.createTextNode(text.slice(from)));
}

function addNotice(text) {
  const row = document.createElement("div");
  row.className = "row notice";
  row.textContent = `— ${text} —`;
  queueRow(row);
}

function queueRow(row) {
  state.pending.push(row);
  if (state.pending.length > MAX_ROWS) state.pending.splice(0, state.pending.length - MAX_ROWS);
  if (!state.drawScheduled) {
    state.drawScheduled = true;
    requestAnimationFrame(drawRows);
  }
}

function drawRows() {
  state.drawScheduled = false;
  const fragment = document.createDocumentFragment();
  fragment.append(...state.pending);
  state.pending = [];
  logView.append(fragment);
  let excess = logView.childElementCount - MAX_ROWS;
  while (excess-- > 0) logView.firstElementChild.remove();
  if ($("follow").checked) logView.scrollTop = logView.scrollHeight;
  setStatus(state.paused ? "paused" : "live");
}

function clearRows() {
  state.pending = [];
  logView.replaceChildren();
}

function setStatus(text) {
  statusView.textContent = `${text} · ${state.received} received · ${logView.childElementCount} shown`;
}

function showError(text) {
  errorView.textContent = text;
  errorView.hidden = false;
}

// --- rate per source --------------------------------------------------------------------

function rollRates() {
  const now = Math.floor(Date.now() / 1000);
  while (state.rateSecond < now) {
    state.rateSecond += 1;
    for (const counts of state.rates.values()) {
      counts.push(0);
      if (counts.length > RATE_SECONDS) counts.shift();
    }
  }
}

function countRate(source) {
  rollRates();
  let counts = state.rates.get(source);
  if (!counts) {
    counts = new Array(RATE_SECONDS).fill(0);
    state.rates.set(source, counts);
  }
  counts[counts.length - 1] += 1;
}

function drawRates() {
  rollRates();
  const canvas = $("plot");
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  let peak = 1;
  for (const counts of state.rates.values()) peak = Math.max(peak, ...counts);
  const step = canvas.width / (RATE_SECONDS - 1);
  const legend = [];
  for (const [source, counts] of state.rates) {
    context.strokeStyle = colourOf(source);
    context.beginPath();
    counts.forEach((count, index) => {
      const y = canvas.height - 2 - (count / peak) * (canvas.height - 4);
      if (index === 0) context.moveTo(0, y);
      else context.lineTo(index * step, y);
    });
    context.stroke();
    const item = document.createElement("li");
    item.textContent = `${source} ${counts[counts.length - 2] ?? 0}/s`;
    item.style.color = colourOf(source);
    legend.push(item);
  }
  $("legend").replaceChildren(...legend);
}

// --- controls ---------------------------------------------------------------------------

$("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  errorView.hidden = true;
  const sources = $("sources").value.split(",").map((s) => s.trim()).filter(Boolean);
  const filter = { sources, level: $("level").value || null, grep: $("grep").value || null };
  state.filter = filter;
  send({ filter, replay: REPLAY });
});

$("pause").addEventListener("click", () => {
  state.paused = !state.paused;
  $("pause").textContent = state.paused ? "resume" : "pause";
  send({ pause: state.paused });
  setStatus(state.paused ? "paused" : "live");
});

$("highlight").addEventListener("input", (event) => {
  state.highlight = event.target.value;
  for (const line of logView.querySelectorAll(".row:not(.notice) .line")) {
    fillLine(line, line.textContent);
  }
});

logView.addEventListener("scroll", () => {
  const atBottom = logView.scrollHeight - logView.scrollTop - logView.clientHeight < 4;
  $("follow").checked = atBottom;
});

setInterval(drawRates, 1000);
connect(false);
