/**
 * The harness of the operator console's browser tests (console_browser_test.ts: the Deno collector;
 * console_worker_browser_test.ts: the Worker in Miniflare): the events they post, the steps the driver
 * (_console_driver.mjs, under Node.js) asks for, the conversation with the driver, and the assertions both
 * make of its result in the same terms.
 *
 * @module
 */

import assert from "node:assert/strict";
import { chromium, devPuppeteer } from "./_chromium.ts";

const HERE = new URL("./", import.meta.url);

/** An event as the tests post it to `/v1/events` (its `data` is the step's number of events posted before it). */
export interface PostedEvent {
  name: string;
  context?: Record<string, unknown>;
}

/** What _console_driver.mjs prints as its last line, under `result`. */
export interface ConsoleDriverResult {
  error?: string;
  authError: string;
  consoleHiddenWhileSignedOut: boolean;
  authErrorHiddenAfterSignIn: boolean;
  storage: { session: [string, string][]; local: number };
  pageUrl: string;
  unfilteredTail: string[];
  firstTable: Record<string, Record<string, string>>;
  filteredTail: string[];
  detail: string;
  firstItemText: string;
  deadCount: number;
  deadNewest: string[];
  deadIds: string[];
  deadBranches: [string, string][];
  replayReport: string;
  /** Only when the answer to "second" holds `afterReplay`. */
  deadCountAfterReplay?: number;
  /** Only when the answer to "second" holds `afterReplay`. */
  deadIdsAfterReplay?: string[];
  pausedTail: string[];
  pausedStatus: string;
  resumedTail: string[];
  chart: { lines: string[]; labels: string[]; legend: string[] };
  finalTable: Record<string, Record<string, string>>;
  afterSignOut: number;
  errorsBeforeInvalidFilter: number;
  invalidFilterError: string;
  invalidFilterState: string;
  invalidFilterStatus: string;
  errors: { kind: string; text: string; url?: string }[];
  requests: string[];
  sockets: string[];
  origin: string;
  wsOrigin: string;
  userAgent: string;
}

/** The answers to the driver's `{"need": "<step>"}`, by step: each posts events and returns what to expect. */
export type ConsoleSteps = Record<string, () => Promise<unknown>>;

/** The names posted at the "first" step (six events, two of them twice), in order. */
export const FIRST = [
  "edx.course.enrollment.activated",
  "edx.video.played",
  "problem_check",
  "edx.course.grade.changed",
  "edx.video.played",
  "edx.course.enrollment.activated",
];
/** The names posted at the "second" step, in order; the last one's context names the user `bob`. */
export const SECOND = [
  "edx.video.paused",
  "edx.course.enrollment.deactivated",
  "problem_check",
  "edx.course.grade.changed",
];
/** The names posted at the "third" step, in order (while the tail is paused). */
export const THIRD = ["edx.course.completed", "edx.video.stopped"];

/** Posts events to a collector's `/v1/events` with its token, and counts them. */
export class EventPoster {
  /** How many events were posted (each accepted: 202). */
  posted = 0;

  constructor(readonly url: string, readonly token: string) {}

  /** Posts `events` (each with `data: { step }`, the count before them); returns their names. */
  async post(events: PostedEvent[]): Promise<string[]> {
    const response = await fetch(`${this.url}/v1/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
      body: JSON.stringify({ events: events.map((event) => ({ ...event, data: { step: this.posted } })) }),
    });
    const body = await response.text();
    assert.equal(response.status, 202, body);
    this.posted += events.length;
    return events.map((event) => event.name);
  }
}

/**
 * The steps the driver asks for, posting FIRST, SECOND and THIRD through `poster`. Every step waits for the
 * counts of all that was posted on `root`, `root/bus` and the healthy branch's sink `healthySink` (its path,
 * e.g. "root/healthy/file"). "first" sets the tail's filter (`edx\.course\.`); "second" names what it lets
 * through, newest first, the total and the failing branch ("failing"), plus what `more.second()` adds, called
 * once the events are posted; "third" waits, too, for what `more.third()` returns (more cells), called before
 * posting them.
 */
export function consoleSteps(
  poster: EventPoster,
  healthySink: string,
  more: {
    second?: () => Record<string, unknown>;
    third?: () => Promise<Record<string, Record<string, number>>>;
  } = {},
): ConsoleSteps {
  const expectAll = () => ({
    root: { received: poster.posted },
    "root/bus": { received: poster.posted },
    [healthySink]: { delivered: poster.posted, failed: 0 },
  });
  return {
    first: async () => ({
      posted: await poster.post(FIRST.map((name) => ({ name }))),
      expect: expectAll(),
      filter: String.raw`edx\.course\.`,
    }),
    second: async () => {
      const names = await poster.post(
        SECOND.map((name, i) => i === 3 ? { name, context: { username: "bob" } } : { name }),
      );
      return {
        matching: names.filter((name) => name.startsWith("edx.course.")).reverse(),
        expect: expectAll(),
        total: poster.posted,
        failingBranch: "failing",
        ...more.second?.(),
      };
    },
    third: async () => {
      const cells = await more.third?.();
      return { posted: await poster.post(THIRD.map((name) => ({ name }))), expect: { ...expectAll(), ...cells } };
    },
  };
}

// The driver's stdout, line by line.
async function* linesOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let end;
    while ((end = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
    }
  }
  if (buffered.trim()) yield buffered;
}

/**
 * Runs `node _console_driver.mjs` (with dev/node_modules' puppeteer-core and the Chromium _chromium.ts found)
 * against the console at `url`, signing in with `token`, its screenshot written to `screenshot`, `HOME` at
 * `home`, for at most `timeoutMs`; answers each `{"need": "<step>"}` with `steps[step]()`, as one JSON line.
 * Asserts that the driver asked for known steps only, exited 0, printed a result and that the result holds
 * no error; logs the browser's version (and, with `DEBUG_CONSOLE_BROWSER` set, the whole result). Returns
 * the result.
 */
export async function runConsoleDriver(
  { url, token, screenshot, home, steps, timeoutMs = 120_000 }: {
    url: string;
    token: string;
    screenshot: string;
    home: string;
    steps: ConsoleSteps;
    timeoutMs?: number;
  },
): Promise<ConsoleDriverResult> {
  let result: ConsoleDriverResult | undefined;
  const child = new Deno.Command("node", {
    args: [
      new URL("_console_driver.mjs", HERE).pathname,
      devPuppeteer.href,
      chromium!,
      JSON.stringify({ url, token, screenshot }),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { HOME: home, NO_PROXY: "*" },
    signal: AbortSignal.timeout(timeoutMs),
  }).spawn();
  const errorText = new Response(child.stderr).text();
  const stdin = child.stdin.getWriter();
  const seen: string[] = [];
  for await (const line of linesOf(child.stdout)) {
    seen.push(line);
    const message = JSON.parse(line);
    if (message.result !== undefined) {
      result = message.result;
      continue;
    }
    const step = steps[message.need];
    assert.ok(step, `the driver asked for an unknown step: ${line}`);
    await stdin.write(new TextEncoder().encode(JSON.stringify(await step()) + "\n"));
  }
  await stdin.close().catch(() => {});
  const status = await child.status;
  const stderr = await errorText;
  assert.equal(status.code, 0, `the driver failed:\n${seen.join("\n")}\n${stderr}`);
  assert.ok(result, `the driver printed no result:\n${seen.join("\n")}\n${stderr}`);
  console.log(`ran in ${result.userAgent}`);
  if (Deno.env.get("DEBUG_CONSOLE_BROWSER")) console.log(JSON.stringify(result, null, 1));
  assert.equal(result.error, undefined, `${result.error}\n${JSON.stringify(result.errors)}\n${stderr}`);
  return result;
}

/** Sign-in: a wrong token is refused with a clear message; the right one is kept in sessionStorage only. */
export function assertSignIn(result: ConsoleDriverResult, token: string): void {
  assert.match(result.authError, /^Wrong token: the collector refused it \(.+\)$/);
  assert.equal(result.consoleHiddenWhileSignedOut, true);
  assert.equal(result.authErrorHiddenAfterSignIn, true);
  assert.deepEqual(result.storage.session.map(([, value]) => value), [token]);
  assert.equal(result.storage.local, 0);
  assert.equal(result.afterSignOut, 0);
}

/**
 * The table: first, one row per backend path of `paths`, in their order, with the five columns; the root's
 * counts after the first step (6) and at the end (12), the healthy sink's deliveries at the end (12); every
 * cell a plain integer.
 */
export function assertTable(result: ConsoleDriverResult, paths: string[], healthySink: string): void {
  assert.deepEqual(Object.keys(result.firstTable), paths);
  assert.deepEqual(Object.keys(result.firstTable.root), [
    "received",
    "delivered",
    "failed",
    "dead_lettered",
    "queue_depth",
  ]);
  assert.equal(result.firstTable.root.received, "6");
  assert.equal(result.finalTable.root.received, "12");
  assert.equal(result.finalTable[healthySink].delivered, "12");
  for (const row of Object.values(result.finalTable)) {
    for (const value of Object.values(row)) assert.match(value, /^\d+$/);
  }
}

/**
 * The live tail: everything, newest first; then only what the filter lets through, bob's event's detail;
 * paused, the new matching event is held and counted, not shown; resumed, shown on top.
 */
export function assertLiveTail(result: ConsoleDriverResult): void {
  assert.deepEqual(result.unfilteredTail, [...FIRST].reverse());
  assert.deepEqual(result.filteredTail, ["edx.course.grade.changed", "edx.course.enrollment.deactivated"]);
  const detail = JSON.parse(result.detail);
  assert.equal(detail.name, "edx.course.grade.changed");
  assert.equal(detail.context.username, "bob");
  assert.match(detail.id, /^[0-9a-f-]{36}$/);
  assert.match(result.firstItemText, /user: bob/);
  assert.deepEqual(result.pausedTail, result.filteredTail);
  assert.match(result.pausedStatus, /paused: 1 new event/);
  assert.deepEqual(result.resumedTail, ["edx.course.completed", ...result.filteredTail]);
}

/**
 * Dead letters: the ten events of the failing branch (none of the healthy one's), the newest five listed,
 * each matching `letter`; the replay's report matching `replay`.
 */
export function assertDeadLetters(
  result: ConsoleDriverResult,
  { letter, replay }: { letter: RegExp; replay: RegExp },
): void {
  assert.equal(result.deadCount, 10);
  assert.deepEqual(Object.fromEntries(result.deadBranches), { failing: "10", healthy: "0" });
  assert.equal(result.deadNewest.length, 5);
  for (const text of result.deadNewest) assert.match(text, letter);
  assert.match(result.replayReport, replay);
}

/** The chart: drawn from successive polls, with its axes and a legend entry per branch of `paths`. */
export function assertChart(result: ConsoleDriverResult, paths: string[]): void {
  assert.ok(result.chart.lines.length > 0);
  assert.ok(result.chart.labels.includes("now") && result.chart.labels.includes("events/s"));
  assert.equal(result.chart.legend.length, paths.filter((path) => path.split("/").length === 2).length);
}

/**
 * A filter the collector refuses: its reason, by the filter (`message`: what to say if not); no reconnection.
 * The console errors after it are the refused handshake's and its 400.
 */
export function assertInvalidFilter(result: ConsoleDriverResult, message?: string): void {
  const refused = /^The collector refused the filter: /;
  if (message === undefined) assert.match(result.invalidFilterError, refused);
  else assert.match(result.invalidFilterError, refused, message);
  assert.equal(result.invalidFilterState, "error");
  for (const error of result.errors.slice(result.errorsBeforeInvalidFilter)) {
    assert.ok(error.kind === "console" && /\b400\b/.test(error.text), JSON.stringify(error));
    assert.ok(`${error.url} ${error.text}`.includes("/v1/bus/subscribe?pattern=edx.(course"), JSON.stringify(error));
  }
}

/**
 * No error before the invalid filter but the browser's own log line of the wrong token's 401; nothing asked
 * of another host (requests to the page's origin or data: URLs, at least two sockets to its bus); `token` in
 * no URL.
 */
export function assertNoStrayTraffic(result: ConsoleDriverResult, token: string): void {
  const before = result.errors.slice(0, result.errorsBeforeInvalidFilter);
  const unexpected = before.filter((error) =>
    !(error.kind === "console" && /status of 401/.test(error.text) && error.url?.endsWith("/v1/metrics.json"))
  );
  assert.deepEqual(unexpected, []);
  assert.ok(before.length <= 1, JSON.stringify(result.errors));
  for (const url of result.requests) {
    assert.ok(url.startsWith(`${result.origin}/`) || url.startsWith("data:"), `a request to another host: ${url}`);
  }
  assert.ok(result.sockets.length >= 2);
  for (const url of result.sockets) assert.ok(url.startsWith(`${result.wsOrigin}/v1/bus/subscribe?pattern=`), url);
  for (const url of [...result.requests, ...result.sockets, result.pageUrl]) assert.ok(!url.includes(token), url);
}

/** Where the screenshot `name` goes (test/artifacts/, made if missing), any earlier one removed. */
export async function screenshotPath(name: string): Promise<string> {
  const artifacts = new URL("../artifacts/", import.meta.url);
  await Deno.mkdir(artifacts, { recursive: true });
  const screenshot = new URL(name, artifacts).pathname;
  await Deno.remove(screenshot).catch(() => {});
  return screenshot;
}

/** The screenshot at `path`, kept as an artifact: a real picture (over 10 kB). */
export function assertScreenshot(path: string): void {
  assert.ok(Deno.statSync(path).size > 10_000);
}
