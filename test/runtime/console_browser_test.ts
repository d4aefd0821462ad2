/**
 * End to end: the operator console (`GET /console`) in headless Chromium
 * against the real Deno collector (`startCollector`), whose tree has an event
 * bus, a healthy async branch and an async branch that cannot write (its file
 * lies under a regular file: ENOTDIR), so it dead-letters everything. The
 * driver (_console_driver.mjs, under Node.js) signs in with a wrong then the
 * right token, and asks this test to post events at each step; it checks the
 * counts, the live tail with and without a filter, pause and resume, the dead
 * letters and their replay, the chart; no console error, no request to
 * another host, no token in a URL. The screenshot is kept in
 * test/artifacts/console.png; `UPDATE_SCREENSHOT=1` copies it to
 * docs/console.png for the README.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startCollector } from "../../src/deno/serve.ts";
import { RecordingLogger } from "../_helpers.ts";

const HERE = new URL("./", import.meta.url);
const ROOT = new URL("../../", import.meta.url);

function isFile(path: string | URL): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

const chromium = [Deno.env.get("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"]
  .find((path) => path && isFile(path));
const puppeteer = new URL("dev/node_modules/puppeteer-core/lib/esm/puppeteer/puppeteer-core.js", ROOT);
const skip = chromium === undefined
  ? "no Chromium at $CHROMIUM or /usr/bin/chromium (Debian: apt-get install -y chromium)"
  : !isFile(puppeteer)
  ? "no puppeteer-core in dev/node_modules (deno install --config dev/deno.json)"
  : undefined;
if (skip) console.warn(`console_browser_test.ts: skipping the operator console browser test: ${skip}`);

const TOKEN = "console-test-token";

interface PostedEvent {
  name: string;
  context?: Record<string, unknown>;
}

interface DriverResult {
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
  deadBranches: [string, string][];
  replayReport: string;
  pausedTail: string[];
  pausedStatus: string;
  resumedTail: string[];
  chart: { lines: string[]; labels: string[]; legend: string[] };
  finalTable: Record<string, Record<string, string>>;
  afterSignOut: number;
  errorsBeforeInvalidFilter: number;
  invalidFilterError: string;
  invalidFilterState: string;
  errors: { kind: string; text: string; url?: string }[];
  requests: string[];
  sockets: string[];
  origin: string;
  wsOrigin: string;
  userAgent: string;
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

Deno.test({
  name: "the console in headless Chromium: sign-in, counts, a filtered live tail, dead letters replayed, the chart",
  ignore: skip !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "event-tracking-console-browser-" });
  // The failing branch writes under a regular file: every write fails with ENOTDIR.
  const blocker = `${dataDir}/a-regular-file`;
  await Deno.writeTextFile(blocker, "nothing can be written under a regular file\n");
  const logger = new RecordingLogger();
  const collector = await startCollector({
    port: 0,
    hostname: "127.0.0.1",
    token: TOKEN,
    dataDir,
    logger,
    config: {
      backends: {
        bus: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["*"], consume: false } },
        healthy: {
          ENGINE: "async_routing",
          OPTIONS: {
            backends: {
              file: { ENGINE: "logger", OPTIONS: { path: `${dataDir}/events.jsonl`, max_event_size: null } },
            },
          },
        },
        failing: {
          ENGINE: "async_routing",
          OPTIONS: {
            max_attempts: 2,
            backoff: { initial_ms: 10, max_ms: 20 },
            backends: { file: { ENGINE: "logger", OPTIONS: { path: `${blocker}/events.jsonl` } } },
          },
        },
      },
    },
  });
  const artifacts = new URL("../artifacts/", import.meta.url);
  await Deno.mkdir(artifacts, { recursive: true });
  const screenshot = new URL("console.png", artifacts).pathname;
  await Deno.remove(screenshot).catch(() => {});

  let posted = 0;
  const post = async (events: PostedEvent[]) => {
    const response = await fetch(`${collector.url}/v1/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ events: events.map((event) => ({ ...event, data: { step: posted } })) }),
    });
    const body = await response.text();
    assert.equal(response.status, 202, body);
    posted += events.length;
    return events.map((event) => event.name);
  };
  // The counts every step waits for: the events went through the root, the bus and the healthy file.
  const expectAll = () => ({
    root: { received: posted },
    "root/bus": { received: posted },
    "root/healthy/file": { delivered: posted, failed: 0 },
  });
  const first = ["edx.course.enrollment.activated", "edx.video.played", "problem_check", "edx.course.grade.changed"];
  const second = ["edx.video.paused", "edx.course.enrollment.deactivated", "problem_check", "edx.course.grade.changed"];
  const third = ["edx.course.completed", "edx.video.stopped"];
  const steps: Record<string, () => Promise<unknown>> = {
    first: async () => ({
      posted: await post([...first, "edx.video.played", "edx.course.enrollment.activated"].map((name) => ({ name }))),
      expect: expectAll(),
      filter: String.raw`edx\.course\.`,
    }),
    second: async () => {
      const names = await post(second.map((name, i) => i === 3 ? { name, context: { username: "bob" } } : { name }));
      return {
        matching: names.filter((name) => name.startsWith("edx.course.")).reverse(),
        expect: expectAll(),
        total: posted,
        failingBranch: "failing",
      };
    },
    third: async () => ({ posted: await post(third.map((name) => ({ name }))), expect: expectAll() }),
  };

  let result: DriverResult | undefined;
  let stderr = "";
  try {
    const child = new Deno.Command("node", {
      args: [
        new URL("_console_driver.mjs", HERE).pathname,
        puppeteer.href,
        chromium!,
        JSON.stringify({ url: collector.url, token: TOKEN, screenshot }),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { HOME: dataDir, NO_PROXY: "*" },
      signal: AbortSignal.timeout(120_000),
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
    stderr = await errorText;
    assert.equal(status.code, 0, `the driver failed:\n${seen.join("\n")}\n${stderr}`);
    assert.ok(result, `the driver printed no result:\n${seen.join("\n")}\n${stderr}`);
    console.log(`ran in ${result.userAgent}`);
    if (Deno.env.get("DEBUG_CONSOLE_BROWSER")) console.log(JSON.stringify(result, null, 1));
    assert.equal(result.error, undefined, `${result.error}\n${JSON.stringify(result.errors)}\n${stderr}`);

    // Sign-in: a wrong token is refused with a clear message; the right one is kept in sessionStorage only.
    assert.match(result.authError, /^Wrong token: the collector refused it \(.+\)$/);
    assert.equal(result.consoleHiddenWhileSignedOut, true);
    assert.equal(result.authErrorHiddenAfterSignIn, true);
    assert.deepEqual(result.storage.session.map(([, value]) => value), [TOKEN]);
    assert.equal(result.storage.local, 0);
    assert.equal(result.afterSignOut, 0);

    // The table: one row per backend path, in the tree's order, as plain integers.
    const paths = Object.keys(collector.tracker.metrics());
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
    assert.equal(result.finalTable["root/healthy/file"].delivered, "12");
    for (const row of Object.values(result.finalTable)) {
      for (const value of Object.values(row)) assert.match(value, /^\d+$/);
    }

    // The live tail: everything, newest first; then only what the collector's filter lets through.
    assert.deepEqual(
      result.unfilteredTail,
      [...first, "edx.video.played", "edx.course.enrollment.activated"].reverse(),
    );
    assert.deepEqual(result.filteredTail, ["edx.course.grade.changed", "edx.course.enrollment.deactivated"]);
    const detail = JSON.parse(result.detail);
    assert.equal(detail.name, "edx.course.grade.changed");
    assert.equal(detail.context.username, "bob");
    assert.match(detail.id, /^[0-9a-f-]{36}$/);
    assert.match(result.firstItemText, /user: bob/);
    // Paused: the new matching event is held and counted, not shown; resumed: shown on top.
    assert.deepEqual(result.pausedTail, result.filteredTail);
    assert.match(result.pausedStatus, /paused: 1 new event/);
    assert.deepEqual(result.resumedTail, ["edx.course.completed", ...result.filteredTail]);

    // Dead letters: every event of the failing branch, the newest five listed; a replay fails them again.
    assert.equal(result.deadCount, 10);
    assert.deepEqual(Object.fromEntries(result.deadBranches), { failing: "10", healthy: "0" });
    assert.equal(result.deadNewest.length, 5);
    for (const letter of result.deadNewest) assert.match(letter, /2 attempt\(s\)/);
    assert.match(result.replayReport, /^Replayed 10: 0 delivered again, 10 dead-lettered again/);

    // The chart: drawn from successive polls, with its axes and a legend entry per branch.
    assert.ok(result.chart.lines.length > 0);
    assert.ok(result.chart.labels.includes("now") && result.chart.labels.includes("events/s"));
    assert.equal(result.chart.legend.length, paths.filter((path) => path.split("/").length === 2).length);

    // A filter the collector refuses: its reason, by the filter; no reconnection.
    assert.match(result.invalidFilterError, /^The collector refused the filter: /);
    assert.equal(result.invalidFilterState, "error");

    // No error; nothing asked of another host; the token in no URL. The expected console errors are the
    // browser's own log lines: the wrong token's 401, then the refused filter's handshake and its 400.
    const before = result.errors.slice(0, result.errorsBeforeInvalidFilter);
    const unexpected = before.filter((error) =>
      !(error.kind === "console" && /status of 401/.test(error.text) && error.url?.endsWith("/v1/metrics.json"))
    );
    assert.deepEqual(unexpected, []);
    assert.ok(before.length <= 1, JSON.stringify(result.errors));
    for (const error of result.errors.slice(result.errorsBeforeInvalidFilter)) {
      assert.ok(error.kind === "console" && /\b400\b/.test(error.text), JSON.stringify(error));
      assert.ok(`${error.url} ${error.text}`.includes("/v1/bus/subscribe?pattern=edx.(course"), JSON.stringify(error));
    }
    for (const url of result.requests) {
      assert.ok(url.startsWith(`${result.origin}/`) || url.startsWith("data:"), `a request to another host: ${url}`);
    }
    assert.ok(result.sockets.length >= 2);
    for (const url of result.sockets) assert.ok(url.startsWith(`${result.wsOrigin}/v1/bus/subscribe?pattern=`), url);
    for (const url of [...result.requests, ...result.sockets, result.pageUrl]) assert.ok(!url.includes(TOKEN), url);

    // The screenshot, kept as an artifact; the README's copy only on request.
    assert.ok(Deno.statSync(screenshot).size > 10_000);
    if (Deno.env.get("UPDATE_SCREENSHOT") === "1") {
      await Deno.mkdir(new URL("docs/", ROOT), { recursive: true });
      await Deno.copyFile(screenshot, new URL("docs/console.png", ROOT));
    }
  } finally {
    await collector.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});
