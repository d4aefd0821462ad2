/**
 * End to end: the operator console (`GET /console`) in headless Chromium
 * against the collector Worker as it deploys (wrangler's bundle), run by
 * Miniflare in workerd with its Queue and Durable Objects. The tree has an
 * event bus publishing every event (the EventBusObject's WebSockets: the live
 * tail), a healthy async branch, and an async branch whose MongoDB sink
 * points at a closed port, so its events dead-letter into the
 * DeadLetterObject after two attempts (a Queue retry). The same driver as the
 * Deno collector's test (_console_driver.mjs) signs in with a wrong then the
 * right token and asks this test to post events at each step; it checks the
 * counts (this isolate's: its fetch tracker's plus its queue consumer's, and
 * Miniflare runs one isolate), the live tail with and without a filter
 * (applied by the Durable Object; the ticket travels as a WebSocket
 * subprotocol through workerd), pause and resume, the dead letters and their
 * replay (queued again, `pending`, then failing again), the chart; no console
 * error, no request to another host, no token in a URL. The screenshot is
 * kept in test/artifacts/console-worker.png.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { MetricsSnapshot } from "@edx/event-tracking";
import type { DeadLetterBranch } from "@edx/event-tracking/http";
import { freePort } from "../_mongo_server.ts";
import { bundleWorker, type Miniflare, startWorker } from "../worker/_miniflare.ts";

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
if (skip) console.warn(`console_worker_browser_test.ts: skipping the Worker's operator console browser test: ${skip}`);

const TOKEN = "console-worker-test-token";
const AUTHORIZED = { authorization: `Bearer ${TOKEN}` };

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
  deadIds: string[];
  deadBranches: [string, string][];
  replayReport: string;
  deadCountAfterReplay?: number;
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
  name: "the console on the Worker (Miniflare) in headless Chromium: sign-in, counts, the Durable Object's " +
    "filtered tail, dead letters replayed through the Queue, the chart",
  ignore: skip !== undefined,
  // Miniflare keeps process-wide hooks after dispose() (see test/worker/worker_test.ts); all is closed in `finally`.
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  // The failing branch's sink: a MongoDB server that is not there (a closed port, a short server selection).
  const deadMongo = `mongodb://127.0.0.1:${freePort()}/?directConnection=true&serverSelectionTimeoutMS=200`;
  const config = {
    backends: {
      bus: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["*"] } },
      healthy: {
        ENGINE: "async_routing",
        OPTIONS: { backends: { console: { ENGINE: "logger", OPTIONS: { max_event_size: null } } } },
      },
      failing: {
        ENGINE: "async_routing",
        OPTIONS: {
          // Two attempts: the second is a retry through the Queue (its delay rounds up to 1 s).
          max_attempts: 2,
          backoff: { initial_ms: 10, max_ms: 20 },
          backends: { down: { ENGINE: "mongo", OPTIONS: { uri: deadMongo, max_retries: 0 } } },
        },
      },
    },
  };
  const artifacts = new URL("../artifacts/", import.meta.url);
  await Deno.mkdir(artifacts, { recursive: true });
  const screenshot = new URL("console-worker.png", artifacts).pathname;
  await Deno.remove(screenshot).catch(() => {});
  const home = await Deno.makeTempDir({ prefix: "event-tracking-console-worker-browser-" });

  let output = "";
  let mf: Miniflare | undefined;
  let bundle: string | undefined;
  let result: DriverResult | undefined;
  let stderr = "";
  try {
    bundle = await bundleWorker();
    mf = await startWorker({
      bundle,
      vars: { EVENT_TRACKING_TOKEN: TOKEN, EVENT_TRACKING_CONFIG: JSON.stringify(config) },
      stdout: (text) => output += text,
    });
    // Miniflare's own HTTP server (127.0.0.1, a free port): what the browser opens, and where the test posts.
    const origin = String(await mf.ready).replace(/\/$/, "");
    const api = async <T>(path: string): Promise<T> => {
      const response = await fetch(`${origin}${path}`, { headers: AUTHORIZED });
      assert.equal(response.status, 200, path);
      return await response.json() as T;
    };
    const metrics = async () => (await api<{ backends: MetricsSnapshot }>("/v1/metrics.json")).backends;

    let posted = 0;
    const post = async (events: PostedEvent[]) => {
      const response = await fetch(`${origin}/v1/events`, {
        method: "POST",
        headers: { ...AUTHORIZED, "content-type": "application/json" },
        body: JSON.stringify({ events: events.map((event) => ({ ...event, data: { step: posted } })) }),
      });
      const body = await response.text();
      assert.equal(response.status, 202, body);
      posted += events.length;
      return events.map((event) => event.name);
    };
    // The counts every step waits for: taken in by fetch() (the root, the bus), delivered by queue() (the console).
    const expectAll = () => ({
      root: { received: posted },
      "root/bus": { received: posted },
      "root/healthy/console": { delivered: posted, failed: 0 },
    });
    const first = ["edx.course.enrollment.activated", "edx.video.played", "problem_check", "edx.course.grade.changed"];
    const second = [
      "edx.video.paused",
      "edx.course.enrollment.deactivated",
      "problem_check",
      "edx.course.grade.changed",
    ];
    const third = ["edx.course.completed", "edx.video.stopped"];
    let deadLetteredBeforeThird = 0;
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
          // The replay only queues them: they come back once they have failed again.
          afterReplay: posted,
        };
      },
      third: async () => {
        deadLetteredBeforeThird = (await metrics())["root/failing"].deadLettered;
        return {
          posted: await post(third.map((name) => ({ name }))),
          expect: { ...expectAll(), "root/failing": { dead_lettered: deadLetteredBeforeThird + third.length } },
        };
      },
    };

    const child = new Deno.Command("node", {
      args: [
        new URL("_console_driver.mjs", HERE).pathname,
        puppeteer.href,
        chromium!,
        JSON.stringify({ url: origin, token: TOKEN, screenshot }),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { HOME: home, NO_PROXY: "*" },
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

    // The table: one row per backend path of the isolate's counters, in their order (siblings by name), as integers.
    const final = await metrics();
    const paths = Object.keys(final);
    assert.deepEqual(paths, [
      "root",
      "root/bus",
      "root/failing",
      "root/failing/down",
      "root/healthy",
      "root/healthy/console",
    ]);
    assert.deepEqual(Object.keys(result.firstTable), paths);
    assert.deepEqual(Object.keys(result.finalTable), paths);
    assert.deepEqual(Object.keys(result.firstTable.root), [
      "received",
      "delivered",
      "failed",
      "dead_lettered",
      "queue_depth",
    ]);
    assert.equal(result.firstTable.root.received, "6");
    assert.equal(result.finalTable.root.received, "12");
    assert.equal(result.finalTable["root/bus"].received, "12");
    // Delivered by the queue consumer of the same isolate: its counters are in the table too.
    assert.equal(result.finalTable["root/healthy/console"].delivered, "12");
    assert.equal(result.finalTable["root/healthy/console"].failed, "0");
    // Every event of the failing branch dead-lettered once, the ten replayed ones twice (taken in again by the
    // consumer), each after two failed attempts: the counts the Deno collector shows for the same events.
    assert.equal(deadLetteredBeforeThird, 20);
    assert.deepEqual(result.finalTable["root/failing"], {
      received: "22",
      delivered: "0",
      failed: "44",
      dead_lettered: "22",
      queue_depth: "0",
    });
    assert.deepEqual([result.finalTable["root/failing/down"].received, result.finalTable["root/failing/down"].failed], [
      "44",
      "44",
    ]);
    // Once everything has settled, the page shows what the API answers, cell for cell.
    const cells = { received: "received", delivered: "delivered", failed: "failed", deadLettered: "dead_lettered" };
    for (const path of paths) {
      for (const [key, metric] of Object.entries(cells)) {
        assert.equal(
          result.finalTable[path][metric],
          String(final[path][key as keyof typeof cells]),
          `${path} ${metric}`,
        );
      }
      assert.equal(final[path].queueDepth, 0, path);
    }
    for (const row of Object.values(result.finalTable)) {
      for (const value of Object.values(row)) assert.match(value, /^\d+$/);
    }

    // The live tail over the Durable Object's WebSocket: everything, newest first; then only what its filter passes.
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

    // Dead letters, kept by the DeadLetterObject: every event of the failing branch after two attempts, the
    // newest five listed. A replay queues them again (pending); failing again, they come back, the same events.
    assert.equal(result.deadCount, 10);
    assert.deepEqual(Object.fromEntries(result.deadBranches), { failing: "10", healthy: "0" });
    assert.equal(result.deadNewest.length, 5);
    for (const letter of result.deadNewest) assert.match(letter, /2 attempt\(s\) · down · .*MongoServerSelectionError/);
    assert.match(result.replayReport, /^Replayed 10: 0 delivered again, 0 dead-lettered again, 10 queued \(/);
    assert.equal(result.deadCountAfterReplay, 10);
    assert.equal(result.deadIdsAfterReplay?.length, 5);
    const { branches } = await api<{ branches: DeadLetterBranch[] }>("/v1/dead-letters?newest=20");
    const failing = branches.find((branch) => branch.backendName === "failing")!;
    assert.equal(failing.count, 12);
    const letters = new Set(failing.newest.map((letter) => letter.id));
    for (const id of [...result.deadIds, ...result.deadIdsAfterReplay!]) assert.ok(letters.has(id), id);
    // Each of the first ten events dead-lettered twice: before the replay and after it (the Worker logs them whole).
    for (const id of result.deadIds) {
      const lines = output.split("\n").filter((line) => line.includes(`"id":"${id}"`) && line.includes("deadLetter"));
      assert.equal(lines.length, 2, `event ${id} dead-lettered twice (logged)`);
    }

    // The chart: drawn from successive polls, with its axes and a legend entry per branch.
    assert.ok(result.chart.lines.length > 0);
    assert.ok(result.chart.labels.includes("now") && result.chart.labels.includes("events/s"));
    assert.equal(result.chart.legend.length, paths.filter((path) => path.split("/").length === 2).length);

    // No error; nothing asked of another host; the token in no URL. The expected console errors are the
    // browser's own log lines: the wrong token's 401, then the refused filter's handshake and its 400.
    const before = result.errors.slice(0, result.errorsBeforeInvalidFilter);
    const unexpected = before.filter((error) =>
      !(error.kind === "console" && /status of 401/.test(error.text) && error.url?.endsWith("/v1/metrics.json"))
    );
    assert.deepEqual(unexpected, []);
    assert.ok(before.length <= 1, JSON.stringify(result.errors));
    assert.equal(result.origin, origin);
    for (const url of result.requests) {
      assert.ok(url.startsWith(`${result.origin}/`) || url.startsWith("data:"), `a request to another host: ${url}`);
    }
    assert.ok(result.sockets.length >= 2);
    for (const url of result.sockets) assert.ok(url.startsWith(`${result.wsOrigin}/v1/bus/subscribe?pattern=`), url);
    for (const url of [...result.requests, ...result.sockets, result.pageUrl]) assert.ok(!url.includes(TOKEN), url);

    // The screenshot, kept as an artifact.
    assert.ok(Deno.statSync(screenshot).size > 10_000);

    // A filter the Durable Object refuses: the handshake fails (400), the page asks the same URL over plain
    // HTTP for the reason and shows it by the filter; no reconnection.
    assert.equal(result.invalidFilterState, "error");
    assert.match(
      result.invalidFilterError,
      /^The collector refused the filter: /,
      `the tail shows "${result.invalidFilterStatus}"; errors: ${JSON.stringify(result.errors)}`,
    );
    for (const error of result.errors.slice(result.errorsBeforeInvalidFilter)) {
      assert.ok(error.kind === "console" && /\b400\b/.test(error.text), JSON.stringify(error));
      assert.ok(`${error.url} ${error.text}`.includes("/v1/bus/subscribe?pattern=edx.(course"), JSON.stringify(error));
    }
  } catch (error) {
    console.error(`The Worker's output:\n${output.slice(-8_000)}`);
    throw error;
  } finally {
    if (Deno.env.get("DUMP_WORKER_OUTPUT")) console.log(output);
    await mf?.dispose();
    if (bundle !== undefined) await Deno.remove(bundle, { recursive: true });
    await Deno.remove(home, { recursive: true });
  }
});
