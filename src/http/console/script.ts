/**
 * The operator console's browser script, served as `GET /console/console.js`
 * and loaded as a module. Plain DOM, no library: the page must work offline
 * and under a Content-Security-Policy that allows only same-origin scripts.
 *
 * @module
 */

/**
 * The console's script. It signs in with the collector's token (kept in
 * `sessionStorage`), polls `GET /v1/metrics.json` every second and
 * `GET /v1/dead-letters` every 3 s, draws the throughput chart as SVG,
 * replays dead letters, and tails `GET /v1/bus/subscribe` over a WebSocket
 * authenticated by a ticket from `POST /v1/bus/tickets`, so the token never
 * appears in a URL.
 */
// Kept as text (String.raw: its regular expressions keep their backslashes); no backtick or "${" inside.
export const CONSOLE_SCRIPT: string = String
  .raw`// The operator console: signs in with the collector's token (kept in sessionStorage), polls
// /v1/metrics.json and /v1/dead-letters, draws the throughput chart and tails the event bus over a
// WebSocket authenticated by a short-lived ticket. Event data is untrusted: it only ever goes into
// textContent and attributes, never into markup.
const KEY = "event-tracking.console.token";
const POLL_MS = 1000;
const DEAD_POLL_MS = 3000;
const WINDOW_MS = 5 * 60 * 1000;
const MAX_ITEMS = 200;
const METRICS = [
  ["received", "received"],
  ["delivered", "delivered"],
  ["failed", "failed"],
  ["dead_lettered", "deadLettered"],
  ["queue_depth", "queueDepth"],
];
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);
const make = (tag, attributes, text) => {
  const node = document.createElement(tag);
  for (const name in attributes) node.setAttribute(name, attributes[name]);
  if (text !== undefined) node.textContent = text;
  return node;
};
const makeSvg = (tag, attributes, text) => {
  const node = document.createElementNS(SVG, tag);
  for (const name in attributes) node.setAttribute(name, String(attributes[name]));
  if (text !== undefined) node.textContent = text;
  return node;
};
const integer = (value) => (Number.isFinite(value) ? String(Math.trunc(value)) : "0");
const clock = (value) => {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleTimeString(undefined, { hour12: false }) + "." +
    String(date.getMilliseconds()).padStart(3, "0");
};
const when = (value) => {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString(undefined, { hour12: false });
};
const readJson = async (response) => {
  try {
    return await response.json();
  } catch {
    return null;
  }
};
const messageOf = (body, fallback) =>
  body && typeof body.message === "string" && body.message ? body.message : fallback;

class Unauthorized extends Error {}

let token = null;
// Bumped on every sign-in and sign-out: callbacks of an older session do nothing.
let generation = 0;
let metricsTimer;
let deadTimer;
let deadBusy = false;
let deadAgain = false;

const setStatus = (text) => {
  const status = $("status");
  if (status.textContent !== text) status.textContent = text;
};

// Every API call: the bearer token, never cached; a 401 ends the session.
async function api(path, init) {
  const response = await fetch(path, {
    method: (init && init.method) || "GET",
    headers: { authorization: "Bearer " + token, accept: "application/json" },
    cache: "no-store",
    credentials: "omit",
  });
  if (response.status === 401) {
    const body = await readJson(response);
    signOut("Signed out: the collector no longer accepts this token (" + messageOf(body, "401") + ")");
    throw new Unauthorized("unauthorized");
  }
  return response;
}

// --- Sign-in -------------------------------------------------------------------------------

function showSignIn(error) {
  $("console").hidden = true;
  $("sign-out").hidden = true;
  $("signin").hidden = false;
  const message = $("auth-error");
  message.textContent = error || "";
  message.hidden = !error;
  setStatus(error ? "Not signed in" : "Sign in to see the collector");
  $("token").focus();
}

async function signIn(candidate) {
  setStatus("Checking the token…");
  let response;
  try {
    response = await fetch("/v1/metrics.json", {
      headers: { authorization: "Bearer " + candidate, accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    });
  } catch (error) {
    showSignIn("Cannot reach the collector: " + error.message);
    return;
  }
  const body = await readJson(response);
  if (response.status === 401) {
    sessionStorage.removeItem(KEY);
    showSignIn("Wrong token: the collector refused it (" + messageOf(body, "401 Unauthorized") + ")");
    return;
  }
  if (!response.ok || body === null) {
    showSignIn("Cannot sign in: the collector answered " + response.status + " (" + messageOf(body, "no JSON") + ")");
    return;
  }
  token = candidate;
  sessionStorage.setItem(KEY, candidate);
  $("token").value = "";
  $("auth-error").hidden = true;
  $("signin").hidden = true;
  $("console").hidden = false;
  $("sign-out").hidden = false;
  setStatus("Signed in");
  const run = ++generation;
  renderMetrics(body);
  metricsTimer = setTimeout(() => pollMetrics(run), POLL_MS);
  pollDead(run);
  connectTail();
}

function signOut(error) {
  generation++;
  token = null;
  sessionStorage.removeItem(KEY);
  clearTimeout(metricsTimer);
  clearTimeout(deadTimer);
  deadBusy = false;
  deadAgain = false;
  stopTail();
  showSignIn(error);
}

// --- Metrics and the throughput chart ------------------------------------------------------

const rows = new Map();
// Successive polls of each branch's delivered counter: rates are their deltas over elapsed time.
const samples = [];

async function pollMetrics(run) {
  try {
    const response = await api("/v1/metrics.json");
    if (run !== generation) return;
    if (!response.ok) throw new Error("the collector answered " + response.status);
    const body = await response.json();
    if (run !== generation) return;
    renderMetrics(body);
    setStatus("Signed in · metrics live");
  } catch (error) {
    if (error instanceof Unauthorized || run !== generation) return;
    setStatus("Cannot read the metrics (" + error.message + "); retrying");
  }
  if (run === generation) metricsTimer = setTimeout(() => pollMetrics(run), POLL_MS);
}

function renderMetrics(body) {
  const backends = (body && body.backends) || {};
  const paths = Object.keys(backends);
  const tbody = $("metrics-body");
  for (const [path, row] of rows) {
    if (!(path in backends)) {
      row.tr.remove();
      rows.delete(path);
    }
  }
  paths.forEach((path, index) => {
    let row = rows.get(path);
    if (row === undefined) {
      const depth = Math.min(path.split("/").length - 1, 4);
      const tr = make("tr", { "data-backend": path });
      tr.append(make("th", { scope: "row", class: depth > 0 ? "d" + depth : "" }, path));
      const cells = {};
      for (const [name] of METRICS) tr.append(cells[name] = make("td", { "data-metric": name }, "0"));
      row = { tr, cells };
      rows.set(path, row);
    }
    if (tbody.children[index] !== row.tr) tbody.insertBefore(row.tr, tbody.children[index] || null);
    const counters = backends[path] || {};
    for (const [name, key] of METRICS) {
      const text = integer(counters[key]);
      const cell = row.cells[name];
      if (cell.textContent !== text) cell.textContent = text;
      cell.classList.toggle("nonzero-bad", (name === "failed" || name === "dead_lettered") && text !== "0");
    }
  });
  const disconnects = body && Number.isFinite(body.clientDisconnects) && body.clientDisconnects > 0
    ? "; " + body.clientDisconnects + " client disconnect(s)"
    : "";
  $("metrics-caption").textContent = "Counters per backend path, refreshed every second; last update " +
    clock(body && body.at ? body.at : Date.now()) + disconnects + ".";

  const now = performance.now();
  const values = {};
  const branches = paths.filter((path) => path.split("/").length === 2);
  for (const path of branches) values[path] = Number(backends[path].delivered) || 0;
  samples.push({ t: now, values });
  while (samples.length > 2 && samples[1].t < now - WINDOW_MS) samples.shift();
  drawChart(now, branches);
}

function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

const rateText = (value) => (value >= 10 ? String(Math.round(value)) : value.toFixed(1).replace(/\.0$/, ""));

function drawChart(now, branches) {
  const series = branches.map((name) => {
    const points = [];
    for (let i = 1; i < samples.length; i++) {
      const before = samples[i - 1];
      const after = samples[i];
      const seconds = (after.t - before.t) / 1000;
      if (seconds > 0 && name in before.values && name in after.values) {
        points.push([after.t, Math.max(0, after.values[name] - before.values[name]) / seconds]);
      }
    }
    return { name, points };
  });
  let peak = 0;
  for (const { points } of series) for (const [, rate] of points) peak = Math.max(peak, rate);
  const top = niceCeiling(peak);
  const width = 640, height = 230, left = 50, right = 14, upper = 12, lower = 42;
  const x = (t) => left + (1 - (now - t) / WINDOW_MS) * (width - left - right);
  const y = (rate) => upper + (1 - rate / top) * (height - upper - lower);
  const chart = makeSvg("svg", {
    viewBox: "0 0 " + width + " " + height,
    role: "img",
    "aria-labelledby": "chart-title",
  });
  for (let k = 0; k <= 4; k++) {
    const rate = (top * k) / 4;
    chart.append(makeSvg("line", { class: "grid-line", x1: left, x2: width - right, y1: y(rate), y2: y(rate) }));
    chart.append(makeSvg("text", { x: left - 6, y: y(rate) + 4, "text-anchor": "end" }, rateText(rate)));
  }
  for (let minute = 5; minute >= 0; minute--) {
    const at = x(now - minute * 60_000);
    chart.append(makeSvg("line", { class: "axis", x1: at, x2: at, y1: height - lower, y2: height - lower + 4 }));
    chart.append(
      makeSvg("text", { x: at, y: height - lower + 16, "text-anchor": "middle" }, minute ? "−" + minute + " min" : "now"),
    );
  }
  chart.append(makeSvg("line", { class: "axis", x1: left, x2: width - right, y1: height - lower, y2: height - lower }));
  chart.append(makeSvg("line", { class: "axis", x1: left, x2: left, y1: upper, y2: height - lower }));
  chart.append(
    makeSvg("text", { x: (left + width - right) / 2, y: height - 6, "text-anchor": "middle" }, "time (last 5 minutes)"),
  );
  chart.append(
    makeSvg("text", {
      x: 12,
      y: (upper + height - lower) / 2,
      "text-anchor": "middle",
      transform: "rotate(-90 12 " + (upper + height - lower) / 2 + ")",
    }, "events/s"),
  );
  const legend = $("legend");
  legend.replaceChildren();
  series.forEach(({ name, points }, index) => {
    const colour = "s" + (index % 8);
    if (points.length > 0) {
      chart.append(makeSvg("polyline", {
        class: colour,
        "data-branch": name,
        points: points.map(([t, rate]) => x(t).toFixed(1) + "," + y(rate).toFixed(1)).join(" "),
      }));
    }
    const latest = points.length > 0 ? points[points.length - 1][1] : 0;
    const item = make("li", { "data-branch": name });
    item.append(make("span", { class: "swatch " + colour, "aria-hidden": "true" }), name + ": " + rateText(latest) + "/s");
    legend.append(item);
  });
  $("chart").replaceChildren(chart);
}

// --- Dead letters ----------------------------------------------------------------------------

const deadBranches = new Map();

function kickDead() {
  if (deadBusy) {
    deadAgain = true;
    return;
  }
  clearTimeout(deadTimer);
  pollDead(generation);
}

async function pollDead(run) {
  deadBusy = true;
  let again = true;
  try {
    const response = await api("/v1/dead-letters?newest=5");
    if (run !== generation) return;
    const body = await readJson(response);
    if (response.status === 404) {
      deadNote("Dead letters are not available on this collector (" + messageOf(body, "404") + ").");
      again = false;
    } else if (!response.ok || body === null) {
      throw new Error("the collector answered " + response.status);
    } else {
      renderDead(Array.isArray(body.branches) ? body.branches : []);
    }
  } catch (error) {
    if (error instanceof Unauthorized || run !== generation) return;
    deadNote("Cannot read the dead letters (" + error.message + "); retrying.");
  } finally {
    if (run === generation) {
      deadBusy = false;
      if (deadAgain) {
        deadAgain = false;
        pollDead(run);
      } else if (again) {
        deadTimer = setTimeout(() => pollDead(run), DEAD_POLL_MS);
      }
    }
  }
}

function deadNote(text) {
  const box = $("dead-letters");
  let note = box.querySelector(":scope > p.hint");
  if (note === null) {
    note = make("p", { class: "hint" });
    box.prepend(note);
  }
  note.textContent = text;
}

function renderDead(branches) {
  const box = $("dead-letters");
  const names = new Set(branches.map((branch) => String(branch.backendName)));
  for (const [name, entry] of deadBranches) {
    if (!names.has(name)) {
      entry.root.remove();
      deadBranches.delete(name);
    }
  }
  const note = box.querySelector(":scope > p.hint");
  if (branches.length === 0) deadNote("No async branch: nothing here can be dead-lettered.");
  else if (note !== null) note.remove();
  for (const branch of branches) {
    const name = String(branch.backendName);
    let entry = deadBranches.get(name);
    if (entry === undefined) entry = newDeadBranch(name);
    box.append(entry.root); // keeps the server's order
    const count = integer(branch.count);
    entry.count.textContent = count;
    entry.count.setAttribute("data-count", count);
    entry.count.parentElement.classList.toggle("bad", count !== "0");
    entry.path.textContent = branch.path ? String(branch.path) : "";
    const newest = Array.isArray(branch.newest) ? branch.newest : [];
    entry.list.replaceChildren(...newest.map((letter) => {
      const item = make("li", { "data-id": String(letter.id) });
      const error = String(letter.error);
      item.append(
        make("strong", {}, String(letter.name)),
        " · " + integer(letter.attempts) + " attempt(s) · " + String(letter.backend) + " · " + when(letter.at),
        make("span", { class: "dead-error", title: error }, error),
      );
      return item;
    }));
    entry.list.hidden = newest.length === 0;
    if (!entry.busy) entry.button.disabled = count === "0";
  }
}

function newDeadBranch(name) {
  const root = make("div", { class: "dead-branch", "data-branch": name });
  const head = make("div", { class: "dead-head" });
  const count = make("span", { "data-count": "0" }, "0");
  const counter = make("span", { class: "count" });
  counter.append(count, " dead letter(s)");
  const path = make("span", { class: "hint" });
  const button = make("button", { type: "button", class: "secondary", "data-testid": "replay" }, "Replay");
  button.setAttribute("aria-label", "Replay the dead letters of " + name);
  head.append(make("h3", {}, name), counter, path, button);
  const list = make("ol", { class: "dead-list", "aria-label": "Newest dead letters of " + name });
  const report = make("p", { class: "report", "data-replay-report": "", role: "status" });
  report.hidden = true;
  root.append(head, list, report);
  const entry = { root, count, path, list, report, button };
  button.addEventListener("click", () => replay(name, entry));
  deadBranches.set(name, entry);
  return entry;
}

async function replay(name, entry) {
  entry.busy = true;
  entry.button.disabled = true;
  entry.button.textContent = "Replaying…";
  entry.report.hidden = false;
  entry.report.textContent = "Replaying the dead letters of " + name + "…";
  try {
    const response = await api("/v1/dead-letters/" + encodeURIComponent(name) + "/replay", { method: "POST" });
    const body = await readJson(response);
    if (!response.ok || body === null) {
      entry.report.textContent = "Replay failed: " + messageOf(body, "the collector answered " + response.status);
    } else {
      const pending = Number(body.pending) || 0;
      const failed = Number(body.failed) || 0;
      entry.report.textContent = "Replayed " + integer(body.replayed) + ": " + integer(body.delivered) +
        " delivered again, " + integer(body.deadLettered) + " dead-lettered again" +
        (pending > 0 ? ", " + pending + " queued" : "") +
        (failed > 0 ? ", " + failed + " could not be stored (kept for the next replay)" : "") +
        " (" + clock(Date.now()) + ")";
    }
  } catch (error) {
    if (error instanceof Unauthorized) return;
    entry.report.textContent = "Replay failed: " + error.message;
  } finally {
    entry.busy = false;
    entry.button.disabled = false;
    entry.button.textContent = "Replay";
  }
  kickDead();
}

// --- Live tail -------------------------------------------------------------------------------

let socket = null;
let tailRun = 0;
let backoff = 1000;
let reconnectTimer;
let pattern = ".*";
let tailText = "";
let paused = false;
const held = [];
let heldCount = 0;

function setTail(state, text) {
  const status = $("tail-status");
  status.dataset.state = state;
  tailText = text;
  status.textContent = text + (paused ? " · paused: " + heldCount + " new event(s) held" : "");
}

function tailError(text) {
  const error = $("tail-error");
  error.textContent = text || "";
  error.hidden = !text;
}

function stopTail() {
  tailRun++;
  clearTimeout(reconnectTimer);
  if (socket !== null) {
    const closing = socket;
    socket = null;
    closing.onopen = closing.onmessage = closing.onclose = closing.onerror = null;
    closing.close(1000, "closed by the console");
  }
}

function retryLater(run, why) {
  const delay = backoff;
  backoff = Math.min(backoff * 2, 30_000);
  setTail("retrying", why + "; reconnecting in " + Math.round(delay / 1000) + " s");
  reconnectTimer = setTimeout(() => {
    if (run === tailRun) connectTail();
  }, delay);
}

async function connectTail() {
  stopTail();
  const run = tailRun;
  const wanted = pattern;
  setTail("connecting", "Connecting…");
  let ticket;
  try {
    const response = await api("/v1/bus/tickets", { method: "POST" });
    if (run !== tailRun) return;
    const body = await readJson(response);
    if (!response.ok || body === null || typeof body.ticket !== "string") {
      if (response.status >= 500 || response.status === 429) {
        retryLater(run, "No ticket (the collector answered " + response.status + ")");
      } else {
        setTail("error", "Live tail unavailable: " + messageOf(body, "the collector answered " + response.status));
      }
      return;
    }
    ticket = body.ticket;
  } catch (error) {
    if (!(error instanceof Unauthorized) && run === tailRun) retryLater(run, "Cannot reach the collector");
    return;
  }
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
    "/v1/bus/subscribe?pattern=" + encodeURIComponent(wanted);
  const ws = new WebSocket(url, ["event-tracking", "ticket." + ticket]);
  socket = ws;
  let opened = false;
  ws.onopen = () => {
    if (run !== tailRun) return;
    opened = true;
    backoff = 1000;
    tailError("");
    setTail("open", "Live: events whose names match " + wanted);
  };
  ws.onmessage = (message) => {
    if (run === tailRun) receive(message.data);
  };
  ws.onclose = (event) => {
    if (run !== tailRun) return;
    socket = null;
    if (opened) retryLater(run, "Disconnected (" + event.code + (event.reason ? ": " + event.reason : "") + ")");
    else diagnose(run, wanted);
  };
}

// A refused handshake tells the browser nothing: ask the same URL over plain HTTP for the reason.
async function diagnose(run, wanted) {
  try {
    const response = await api("/v1/bus/subscribe?pattern=" + encodeURIComponent(wanted));
    if (run !== tailRun) return;
    const body = await readJson(response);
    if (response.status === 400) {
      tailError("The collector refused the filter: " + messageOf(body, "invalid pattern"));
      setTail("error", "Not connected: change the filter and press Enter");
    } else if (response.status === 404) {
      setTail("error", "Live tail unavailable: " + messageOf(body, "no event bus"));
    } else {
      retryLater(run, "The subscription was refused");
    }
  } catch (error) {
    if (!(error instanceof Unauthorized) && run === tailRun) retryLater(run, "Cannot reach the collector");
  }
}

function receive(data) {
  let event;
  try {
    event = JSON.parse(data);
  } catch {
    return;
  }
  if (event === null || typeof event !== "object") return;
  if (paused) {
    held.push(event);
    heldCount++;
    if (held.length > MAX_ITEMS) held.shift();
    setTail($("tail-status").dataset.state, tailText);
    return;
  }
  addItem(event);
}

function userOf(event) {
  const context = event.context && typeof event.context === "object" ? event.context : {};
  if (context.username !== undefined && context.username !== null && context.username !== "") {
    return String(context.username);
  }
  if (context.user_id !== undefined && context.user_id !== null && context.user_id !== "") {
    return String(context.user_id);
  }
  return "—";
}

function addItem(event) {
  const list = $("tail-list");
  const name = String(event.name);
  const item = make("li", { "data-event-name": name });
  const button = make("button", { type: "button" });
  button.append(
    make("span", { class: "name" }, name),
    make("time", { datetime: String(event.timestamp) }, clock(event.timestamp)),
    make("span", { class: "meta" }, "user: " + userOf(event)),
  );
  button.addEventListener("click", () => {
    const selected = list.querySelector("li.selected");
    if (selected !== null) selected.classList.remove("selected");
    item.classList.add("selected");
    $("tail-detail").textContent = JSON.stringify(event, null, 2);
  });
  item.append(button);
  list.insertBefore(item, list.firstChild);
  while (list.children.length > MAX_ITEMS) list.lastChild.remove();
}

function togglePause() {
  paused = !paused;
  const button = $("tail-pause");
  button.textContent = paused ? "Resume" : "Pause";
  button.setAttribute("aria-pressed", String(paused));
  if (!paused) {
    for (const event of held) addItem(event);
    held.length = 0;
    heldCount = 0;
  }
  setTail($("tail-status").dataset.state, tailText);
}

// --- Wiring --------------------------------------------------------------------------------

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const candidate = $("token").value.trim();
  if (candidate === "") showSignIn("Enter the collector's token");
  else signIn(candidate);
});
$("sign-out").addEventListener("click", () => signOut(""));
$("tail-pause").addEventListener("click", togglePause);
$("tail-filter").addEventListener("keydown", (event) => {
  if (event.key !== "Enter") return;
  event.preventDefault();
  pattern = event.target.value.trim() || ".*";
  $("tail-list").replaceChildren();
  $("tail-detail").textContent = "Select an event to see its JSON.";
  held.length = 0;
  heldCount = 0;
  tailError("");
  backoff = 1000;
  if (token !== null) connectTail();
});

const saved = sessionStorage.getItem(KEY);
if (saved) signIn(saved);
else showSignIn("");
`;
