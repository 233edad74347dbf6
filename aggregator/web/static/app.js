// The live page: one WebSocket to /ws, records rendered as text (never as HTML), a capped
// list so memory stays bounded however long the tab stays open, filters applied on the server,
// and rates per source as the server counts them (every record, whatever this page's filter).
// The filter and the visible columns live in the address, so a link shows the same view.
"use strict";

const MAX_ROWS = 5000;          // rows kept in the page; older ones are removed
const REPLAY = 500;             // records asked for on first connect and on a filter change
const RATE_SECONDS = 60;        // the rate plot's width in seconds
const RECONNECT_MAX_MS = 5000;
const PALETTE_SIZE = 12;        // source colours .c0 … .c11 in app.css
const MESSAGE_KEYS = ["msg", "message", "text", "event", "MESSAGE"];
const FRAME_BUDGET_MS = 12;     // time to build rows in one animation frame
const CHIP_CHARS = 80;          // a field's value is cut to this in the row (whole when opened)
const STATS_MS = 5000;          // how often the counts panel asks /stats
const STAT_ROWS = 8;            // values shown per kind in the counts panel
const COLUMNS = ["ts", "src", "lvl"];
// A level word at the start of a line (after its time), in the spellings programs use.
const LEADING_LEVEL = /^\[?(trace|debug|info|warn|warning|error|err|fatal|critical|crit)\]?:?(?:\s+|$)/i;
const LEVEL_WORDS = { warning: "warn", err: "error", critical: "fatal", crit: "fatal" };

const $ = (id) => document.getElementById(id);
const logView = $("log");
const statusView = $("status");
const errorView = $("error");
const bannerView = $("banner");
const jumpButton = $("jump");
const address = new URLSearchParams(location.search);
const token = address.get("token");

const state = {
  socket: null,
  run: null,
  lastSeq: 0,                   // the last record this page received
  paused: false,
  pausedAtSeq: null,            // the server's last seq when it confirmed the pause
  serverSeq: 0,                 // the server's last seq, from its rates frames
  filter: filterFromAddress(),
  hidden: new Set((address.get("hide") || "").split(",").filter((c) => COLUMNS.includes(c))),
  pending: [],                  // records and notices waiting for the next animation frame
  drawScheduled: false,
  held: [],                     // what came while scrolled up: shown on the way back down
  heldCount: 0,
  reconnectMs: 250,
  attempts: 0,
  received: 0,
  highlight: "",
  colours: new Map(),           // source -> palette index
  rates: [],                    // {at: ms, counts: {source: n}} from the server, oldest first
  srcWidth: 6,
};

function filterFromAddress() {
  const level = address.get("level");
  return {
    sources: (address.get("source") || "").split(",").map((s) => s.trim()).filter(Boolean),
    level: ["trace", "debug", "info", "warn", "error", "fatal"].includes(level) ? level : null,
    grep: address.get("grep") || null,
    where: address.get("where") || null,
  };
}

// The view in the address bar (the token stays where it was): a link shows the same view.
function writeAddress() {
  const params = new URLSearchParams();
  if (token) params.set("token", token);
  const f = state.filter;
  if (f.sources.length) params.set("source", f.sources.join(","));
  if (f.level) params.set("level", f.level);
  if (f.grep) params.set("grep", f.grep);
  if (f.where) params.set("where", f.where);
  if (state.hidden.size) params.set("hide", [...state.hidden].join(","));
  const query = params.toString();
  history.replaceState(null, "", query ? `?${query}` : location.pathname);
}

function colourOf(source) {
  let index = state.colours.get(source);
  if (index === undefined) {
    index = state.colours.size % PALETTE_SIZE;
    state.colours.set(source, index);
  }
  return index;
}

function colourValue(index) {
  return getComputedStyle(document.documentElement).getPropertyValue(`--c${index}`).trim();
}

// --- connection -------------------------------------------------------------------------

function socketUrl(resume) {
  const params = new URLSearchParams({ format: "json" });
  const f = state.filter;
  if (f.sources.length) params.set("source", f.sources.join(","));
  if (f.level) params.set("level", f.level);
  if (f.grep) params.set("grep", f.grep);
  if (f.where) params.set("where", f.where);
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
    state.attempts += 1;
    const why = event.code && event.code !== 1006 ? ` (${event.code}${event.reason ? ": " + event.reason : ""})` : "";
    showBanner(`disconnected from the server${why}; reconnecting in ${wait / 1000}s` +
      (state.attempts > 1 ? ` (attempt ${state.attempts})` : ""));
    setStatus("disconnected");
    setTimeout(() => {
      showBanner(`reconnecting to ${location.host}…` + (state.attempts > 1 ? ` (attempt ${state.attempts})` : ""));
      connect(true);
    }, wait);
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
    if (typeof message.seq === "number") onRecord(message);
    else if (message.rates) onRates(message);
    else if (message.hello) onHello(message.hello);
    else if (message.notice) onNotice(message);
    else if (message.error) showError(message.error);
  }
}

function onHello(hello) {
  if (state.run && hello.run !== state.run) {
    addNotice("the server restarted: a new run begins");
    if (state.pausedAtSeq !== null) state.pausedAtSeq = 0;   // all of the new run is new
  }
  state.run = hello.run;
  state.serverSeq = hello.seq;
  state.reconnectMs = 250;
  state.attempts = 0;
  document.body.dataset.state = "live";
  bannerView.hidden = true;
  drawRates();
  setStatus(state.paused ? "paused" : "live");
}

function onNotice(message) {
  if (message.notice === "filter") {
    clearRows();
    document.body.dataset.filter = JSON.stringify(message.filter);
    const f = message.filter ?? {};   // the server took it: now it is the view to link to
    state.filter = { sources: f.sources ?? [], level: f.level ?? null, grep: f.grep ?? null, where: f.where ?? null };
    writeAddress();
  } else if (message.notice === "pause") {
    if (!message.paused) state.pausedAtSeq = null;
    else if (state.pausedAtSeq === null) state.pausedAtSeq = Math.max(message.last_seq ?? 0, state.lastSeq);
    document.body.dataset.paused = String(message.paused);
    updateJump();
  } else if (message.notice === "gap") {
    addNotice(`${message.count} records are no longer held by the server and were missed`);
  } else if (message.notice === "dropped") {
    addNotice(`${message.count} records dropped: this page fell behind`);
  }
}

function onRecord(record) {
  state.lastSeq = record.seq;
  state.received += 1;
  queue({ record });
}

// --- rendering --------------------------------------------------------------------------

// Control characters (ANSI escapes included) shown as \xNN, as the terminal shows them; tab
// and newline (the lines of a multiline record) stay as they are.
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;
function visible(text) {
  return text.replace(CONTROL, (c) => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"));
}

// A time at the start of a line (ISO 8601 or RFC 3339, syslog's "Nov 25 10:00:00"), with the
// spaces after it: the time column shows it already.
const LEADING_TIME = new RegExp(
  "^\\[?(?:\\d{4}-\\d\\d-\\d\\d[T ]\\d\\d:\\d\\d:\\d\\d(?:[.,]\\d+)?(?:Z|[+-]\\d\\d:?\\d\\d| ?UTC)?" +
  "|[A-Z][a-z]{2} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)?)\\]?(?:\\s+|$)");

// Whether the time that starts a line is the record's own (to the second): only then is it
// left out of the line. A line whose time was not understood keeps it, beside the time read.
function sameTime(prefix, ts) {
  let text = prefix.trim().replace(/^\[|\]$/g, "");
  if (/^[A-Z][a-z]{2} /.test(text)) {
    text = `${text.slice(0, 6)} ${ts.slice(0, 4)} ${text.slice(7)} UTC`;   // syslog: no year
  } else {
    text = text.replace(" UTC", "Z").replace(" ", "T").replace(",", ".");
    if (!/(Z|[+-]\d\d:?\d\d)$/.test(text)) text += "Z";                 // no zone: UTC
    text = text.replace(/\.(\d{3})\d+/, ".$1").replace(/([+-]\d\d)(\d\d)$/, "$1:$2");
  }
  const at = Date.parse(text);
  return Number.isFinite(at) && Math.abs(at - Date.parse(ts)) < 1000;
}

function span(className, text) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

// A logfmt line: every field the codec found is written in it as key=…
function isLogfmt(text, fields) {
  const names = Object.keys(fields);
  return names.length > 0 && names.every((name) => text.includes(`${name}=`));
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function asText(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

// The levels a row is coloured by: anything else (a remote peer's "very bad") gets no class,
// since a class name cannot hold a space and classList.add would throw for the whole batch.
const LEVEL_CLASSES = new Set(["trace", "debug", "info", "warn", "error", "fatal"]);

function levelClass(level) {
  return LEVEL_CLASSES.has(level) ? `lvl-${level}` : "";
}

function renderRecord(record) {
  const row = document.createElement("div");
  row.className = "row";
  if (LEVEL_CLASSES.has(record.level)) row.classList.add(`lvl-${record.level}`);
  if (record.late) row.classList.add("late");
  row.dataset.seq = record.seq;
  row.record = record;
  const ts = span("ts", record.ts.slice(11, 23));   // the time of day; the whole on hover
  ts.title = record.late ? `${record.ts}: late (came after newer records were sent)` : record.ts;
  // A remote record shows its node before its source, as text does (web-7d4b9/app); a click
  // on the node filters by it.
  const source = span(`src c${colourOf(record.source)}`, "");
  let label = record.source;
  if (typeof record.node === "string" && record.node) {
    const node = span("node", visible(record.node));
    node.dataset.node = record.node;
    node.title = `show only node ${visible(record.node)}`;
    source.append(node, "/");
    label = `${record.node}/${label}`;
  }
  source.append(record.source);
  source.title = record.origin ? `${label} · ${record.origin}` : label;
  noteSourceWidth(label);
  const level = span("lvl", record.level ?? "");
  const body = span("body", "");
  const line = span("line", "");
  body.append(line);
  const fields = isObject(record.fields) ? record.fields : null;
  let text = record.line;
  if (fields && (text.trimStart().startsWith("{") || isLogfmt(text, fields))) {
    // A JSON or logfmt record: its message as the line, the other fields as key=value after
    // it (time and level are in their columns already).
    const key = MESSAGE_KEYS.find((name) => typeof fields[name] === "string");
    text = key ? fields[key] : "";
    const chips = span("fields", "");
    for (const [name, value] of Object.entries(fields)) {
      if (name === key) continue;
      const chip = span("kv", "");
      let shown = asText(value);
      if (shown.length > CHIP_CHARS) shown = shown.slice(0, CHIP_CHARS) + "…";
      chip.append(span("k", visible(name)), "=", span("v", visible(shown)));
      chips.append(chip);
    }
    body.append(chips);
  } else {
    const leading = LEADING_TIME.exec(text);
    if (leading && sameTime(leading[0], record.ts)) {
      ts.title += ` (the line's own: ${leading[0].trim()})`;
      text = text.slice(leading[0].length);
    }
    const word = LEADING_LEVEL.exec(text);   // the level column shows it already
    if (word && record.level && (LEVEL_WORDS[word[1].toLowerCase()] ?? word[1].toLowerCase()) === record.level) {
      text = text.slice(word[0].length);
    }
  }
  line.dataset.text = visible(text);
  fillLine(line);
  if (fields || record.parse_error || record.truncated) row.classList.add("has-fields");
  row.append(ts, source, level, body);
  return row;
}

// The record's every field, and what it came with, as key/value pairs under its row.
function toggleDetail(row) {
  const open = row.nextElementSibling?.classList.contains("detail-row");
  if (open) {
    row.nextElementSibling.remove();
    row.classList.remove("open");
    return;
  }
  const record = row.record;
  const holder = document.createElement("div");
  holder.className = "row detail-row";
  const list = document.createElement("dl");
  list.className = "detail";
  const add = (name, value, meta) => {
    const term = span("", visible(name));
    const dt = document.createElement("dt");
    dt.append(term);
    if (meta) dt.className = "meta";
    const dd = document.createElement("dd");
    dd.textContent = visible(isObject(value) || Array.isArray(value) ? JSON.stringify(value, null, 2) : String(value));
    list.append(dt, dd);
  };
  for (const [name, value] of Object.entries(record.fields ?? {})) add(name, value, false);
  add("ts", record.ts, true);
  if (record.level) add("level", record.level, true);
  add("source", record.source, true);
  if (record.origin) add("origin", record.origin, true);
  if (record.node) add("node", record.node, true);
  add("seq", record.seq, true);
  if (record.parse_error) add("parse_error", record.parse_error, true);
  if (record.truncated) add("truncated", "true", true);
  add("line", record.line, true);
  holder.append(list);
  row.classList.add("open");
  row.after(holder);
}

function noteSourceWidth(source) {
  if (source.length > state.srcWidth && state.srcWidth < 24) {
    state.srcWidth = Math.min(source.length, 24);
    logView.style.setProperty("--src-width", `${state.srcWidth}ch`);
  }
}

// The line as text nodes, with <mark> elements around what the highlight matches.
function fillLine(element) {
  const text = element.dataset.text;
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

function renderNotice(text) {
  const row = document.createElement("div");
  row.className = "row notice";
  row.textContent = `— ${text} —`;
  return row;
}

function addNotice(text) {
  queue({ notice: text });
}

function queue(item) {
  state.pending.push(item);
  if (state.pending.length > 2 * MAX_ROWS) state.pending.splice(0, state.pending.length - MAX_ROWS);
  scheduleDraw();
}

function scheduleDraw() {
  if (!state.drawScheduled) {
    state.drawScheduled = true;
    requestAnimationFrame(drawRows);
  }
}

// Where the page itself last put the view: at the bottom, after a draw or a jump. Only a
// scroll above it is the reader's (a layout change, rows trimmed above or a pane resized, is
// not), and only that stops following.
let stuckAt = 0;

function stickToBottom() {
  logView.scrollTop = logView.scrollHeight;
  stuckAt = logView.scrollTop;
}

function following() {
  return $("follow").checked;
}

// Once a frame: what came is shown, at most MAX_ROWS of it, and only the rows that stay are
// ever built. While scrolled up, it is held instead, so the rows being read do not move.
function drawRows() {
  state.drawScheduled = false;
  let items = state.pending;
  state.pending = [];
  if (!following()) {
    state.heldCount += items.filter((item) => item.record).length;
    state.held.push(...items);
    if (state.held.length > MAX_ROWS) state.held.splice(0, state.held.length - MAX_ROWS);
    updateJump();
    setStatus(state.paused ? "paused" : "live");
    return;
  }
  if (state.held.length) {
    items = state.held.concat(items);
    state.held = [];
  }
  state.heldCount = 0;
  if (items.length > MAX_ROWS) items = items.slice(items.length - MAX_ROWS);
  // Rows are built for FRAME_BUDGET_MS at most; the rest waits for the next frame, so a burst
  // never blocks the page for long.
  const started = performance.now();
  const fragment = document.createDocumentFragment();
  let index = 0;
  while (index < items.length && performance.now() - started < FRAME_BUDGET_MS) {
    const end = Math.min(index + 100, items.length);
    for (; index < end; index++) {
      const item = items[index];
      fragment.append(item.record ? renderRecord(item.record) : renderNotice(item.notice));
    }
  }
  if (index < items.length) {
    state.pending = items.slice(index);
    scheduleDraw();
  }
  logView.append(fragment);
  let excess = logView.childElementCount - MAX_ROWS;
  if (excess > 0) {
    const range = document.createRange();
    range.setStartBefore(logView.firstElementChild);
    range.setEndAfter(logView.children[excess - 1]);
    range.deleteContents();
  }
  stickToBottom();
  updateJump();
  setStatus(state.paused ? "paused" : "live");
}

function clearRows() {
  state.pending = [];
  state.held = [];
  state.heldCount = 0;
  logView.replaceChildren();
  updateJump();
}

function setStatus(text) {
  statusView.textContent = `${text} · ${state.received} received · ${logView.childElementCount} shown`;
}

function showError(text) {
  errorView.textContent = text;
  errorView.hidden = false;
}

function showBanner(text) {
  bannerView.textContent = text;
  bannerView.hidden = false;
}

// "N new": while paused, what the server took since the pause (it sends nothing meanwhile; a
// filter may pass fewer); while scrolled up, what came and waits below.
function updateJump() {
  let label = null;
  if (state.paused && state.pausedAtSeq !== null) {
    const count = Math.max(0, state.serverSeq - state.pausedAtSeq);
    const f = state.filter;
    const filtered = f.sources.length || f.level || f.grep || f.where;
    label = count ? `${filtered ? "≤ " : ""}${count} new · resume` : null;
  } else if (state.heldCount) {
    label = `↓ ${state.heldCount} new`;
  } else if (!following() && logView.childElementCount) {
    label = "↓ bottom";
  }
  jumpButton.hidden = label === null;
  if (label !== null) jumpButton.textContent = label;
  document.body.dataset.newCount = String(state.paused ? Math.max(0, state.serverSeq - (state.pausedAtSeq ?? state.serverSeq)) : state.heldCount);
}

function jumpToBottom() {
  $("follow").checked = true;
  if (state.held.length) scheduleDraw();
  stickToBottom();
  updateJump();
}

// --- rate per source, as the server counts it -------------------------------------------

function onRates(message) {
  state.serverSeq = message.last_seq ?? state.serverSeq;
  for (const source of Object.keys(message.rates)) colourOf(source);
  state.rates.push({ at: Date.now(), interval: message.interval || 1, counts: message.rates });
  const horizon = Date.now() - (RATE_SECONDS + 2) * 1000;
  while (state.rates.length && state.rates[0].at < horizon) state.rates.shift();
  drawRates();
  if (state.paused) updateJump();
}

function drawRates() {
  const canvas = $("plot");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600;
  const height = canvas.clientHeight || 64;
  if (canvas.width !== Math.round(width * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  const now = Date.now();
  const window_ = RATE_SECONDS * 1000;
  const sources = [...new Set(state.rates.flatMap((sample) => Object.keys(sample.counts)))];
  // One stacked bar a second, sources in the server's order: a quiet second is an empty
  // slot, a missing one (disconnected) a gap, so the axis is time, not samples.
  let peak = 1;
  for (const sample of state.rates) {
    const total = Object.values(sample.counts).reduce((sum, count) => sum + count, 0);
    peak = Math.max(peak, total / sample.interval);
  }
  const styles = getComputedStyle(document.documentElement);
  context.fillStyle = styles.getPropertyValue("--line").trim();
  context.fillRect(0, height - 1, width, 1);
  const slot = width / RATE_SECONDS;
  const top = 12;
  for (const sample of state.rates) {
    const right = width - ((now - sample.at) / window_) * width;
    let base = height - 1;
    for (const source of sources) {
      const rate = (sample.counts[source] ?? 0) / sample.interval;
      if (!rate) continue;
      const tall = Math.max(1, (rate / peak) * (height - 1 - top));
      context.fillStyle = colourValue(colourOf(source));
      context.fillRect(right - slot + 1, base - tall, Math.max(1, slot - 1), tall);
      base -= tall;
    }
  }
  context.fillStyle = styles.getPropertyValue("--dim").trim();
  context.font = "10px sans-serif";
  context.textBaseline = "top";
  context.fillText(state.rates.length ? `peak ${peak}/s` : "rates: waiting for the server", 2, 0);
  context.textAlign = "right";
  context.fillText(`last ${RATE_SECONDS}s`, width - 2, 0);
  context.textAlign = "left";
  const latest = state.rates[state.rates.length - 1];
  const legend = sources.map((source) => {
    const item = document.createElement("li");
    item.className = `c${colourOf(source)}`;
    item.dataset.source = source;
    const rate = latest ? (latest.counts[source] ?? 0) / latest.interval : 0;
    item.append(visible(source) + " ", span("rate", `${rate}/s`));
    return item;
  });
  $("legend").replaceChildren(...legend);
}

// --- controls ---------------------------------------------------------------------------

$("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  errorView.hidden = true;
  const sources = $("sources").value.split(",").map((s) => s.trim()).filter(Boolean);
  const filter = {
    sources,
    level: $("level").value || null,
    grep: $("grep").value || null,
    where: $("where").value.trim() || null,
  };
  send({ filter, replay: REPLAY });   // the address changes once the server has taken it
});

// --- the view: columns, download ---------------------------------------------------------

function showFilterInputs() {
  const f = state.filter;
  $("sources").value = f.sources.join(", ");
  $("level").value = f.level ?? "";
  $("grep").value = f.grep ?? "";
  $("where").value = f.where ?? "";
}

function applyColumns() {
  for (const column of COLUMNS) logView.classList.toggle(`hide-${column}`, state.hidden.has(column));
  for (const box of document.querySelectorAll("#columns input")) {
    box.checked = !state.hidden.has(box.dataset.column);
  }
}

$("columns").addEventListener("change", (event) => {
  const column = event.target.dataset.column;
  if (!column) return;
  if (event.target.checked) state.hidden.delete(column);
  else state.hidden.add(column);
  applyColumns();
  writeAddress();
});

// Every control character escaped, newline and tab too: one record, one line.
const ALL_CONTROL = /[\x00-\x1f\x7f-\x9f]/g;
function escapedLine(text) {
  return text.replace(ALL_CONTROL, (c) => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"));
}

// What is shown (the server's filter applied), as NDJSON or as the text format.
function download() {
  const records = [...logView.querySelectorAll(".row[data-seq]")].map((row) => row.record);
  const ndjson = $("download-format").value === "ndjson";
  const lines = records.map((record) => ndjson
    ? JSON.stringify(record).replace(/[\x7f-\x9f]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"))
    : `${record.ts} ${record.node ? record.node + "/" : ""}${escapedLine(record.source)} | ${escapedLine(record.line)}`);
  const blob = new Blob([lines.join("\n") + (lines.length ? "\n" : "")],
    { type: ndjson ? "application/x-ndjson" : "text/plain" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `aggregator-${new Date().toISOString().replace(/[:.]/g, "-")}.${ndjson ? "ndjson" : "log"}`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

$("download").addEventListener("click", download);

// --- live counts, as the server takes them over every record -------------------------------

async function pollStats() {
  try {
    const answer = await fetch(`/stats${token ? `?token=${encodeURIComponent(token)}` : ""}`,
      { cache: "no-store" });
    if (answer.ok) showStats(await answer.json());
  } catch {
    // the banner says when the server is away; the panel keeps its last counts
  }
  setTimeout(pollStats, STATS_MS);
}

function showStats(stats) {
  const one = stats.windows?.["1m"] ?? {};
  const five = stats.windows?.["5m"] ?? {};
  const list = (key, clickable) => {
    const recent = one[key] ?? {};
    const longer = five[key] ?? {};
    return Object.keys(longer).slice(0, STAT_ROWS).map((name) => {
      const item = document.createElement("li");
      item.append(span("name", visible(name)), " ", span("n", `${recent[name] ?? 0} · ${longer[name]}`));
      if (clickable && name !== "(none)" && name !== "(other)") {
        item.dataset[key] = name;
        item.tabIndex = 0;
        item.title = `show only ${key} ${name}`;
        if (key === "level") item.className = levelClass(name);
        else item.className = `c${colourOf(name)}`;
      }
      return item;
    });
  };
  $("stat-levels").replaceChildren(...list("level", true));
  $("stat-sources").replaceChildren(...list("source", true));
  const field = stats.field ? list("field", false) : [];
  if (field.length) field.unshift(span("title", visible(stats.field)));
  $("stat-field").replaceChildren(...field);
  $("stats").hidden = !(five.total > 0);   // nothing counted yet: no empty panel
}

// A click on a level or a source in the panel filters by it.
$("stats").addEventListener("click", (event) => {
  const item = event.target.closest("li[data-level], li[data-source]");
  if (!item) return;
  if (item.dataset.level) $("level").value = item.dataset.level;
  else $("sources").value = item.dataset.source;
  $("filters").requestSubmit();
});
$("stats").addEventListener("keydown", (event) => {
  if (event.key === "Enter") event.target.closest("li[data-level], li[data-source]")?.click();
});

function togglePause() {
  state.paused = !state.paused;
  $("pause").textContent = state.paused ? "resume" : "pause";
  $("pause").setAttribute("aria-pressed", String(state.paused));
  if (!state.paused) {
    state.pausedAtSeq = null;
    $("follow").checked = true;
  }
  send({ pause: state.paused });
  updateJump();
  setStatus(state.paused ? "paused" : "live");
}

$("pause").addEventListener("click", togglePause);

jumpButton.addEventListener("click", () => {
  if (state.paused) togglePause();
  jumpToBottom();
});

$("highlight").addEventListener("input", (event) => {
  state.highlight = event.target.value;
  for (const line of logView.querySelectorAll(".row .line")) fillLine(line);
});

// A pane that grows or shrinks (the legend, the counts) moves the bottom: follow it.
new ResizeObserver(() => {
  if (following() && !state.paused) stickToBottom();
}).observe(logView);

$("follow").addEventListener("change", () => {
  if (following()) jumpToBottom();
  else updateJump();
});

logView.addEventListener("scroll", () => {
  const atBottom = logView.scrollHeight - logView.scrollTop - logView.clientHeight < 4;
  if (!atBottom && following() && logView.scrollTop >= stuckAt - 4) {
    stickToBottom(); // the layout moved, not the reader: stay at the bottom
    return;
  }
  if (atBottom !== following()) {
    $("follow").checked = atBottom;
    if (atBottom) jumpToBottom();
    else updateJump();
  }
});

// where's clause for one node; a where that is only another node's clause gives way to it,
// any other is kept (and-ed).
const NODE_ONLY = /^node\s*=\s*"(?:[^"\\]|\\.)*"$/i;

function filterByNode(node) {
  const clause = `node = ${JSON.stringify(node)}`;
  const current = $("where").value.trim();
  $("where").value = !current || NODE_ONLY.test(current) ? clause : `(${current}) and ${clause}`;
  $("filters").requestSubmit();
}

logView.addEventListener("click", (event) => {
  if (window.getSelection()?.toString()) return;   // selecting text is not a click
  const node = event.target.closest(".row > .src > .node");
  if (node) {
    filterByNode(node.dataset.node);
    return;
  }
  const row = event.target.closest(".row.has-fields");
  if (row) toggleDetail(row);
});

showFilterInputs();
applyColumns();
connect(false);
pollStats();
