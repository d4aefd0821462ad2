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
 * counts (the Worker's, summed by the MetricsObject from what each isolate's
 * fetch and queue handlers counted), the live tail with and without a filter
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
import { browserSkip } from "./_chromium.ts";
import {
  assertChart,
  assertDeadLetters,
  assertInvalidFilter,
  assertLiveTail,
  assertNoStrayTraffic,
  assertScreenshot,
  assertSignIn,
  assertTable,
  consoleSteps,
  EventPoster,
  runConsoleDriver,
  screenshotPath,
  THIRD,
} from "./_console_harness.ts";

const skip = browserSkip(import.meta.url, "the Worker's operator console browser test");

const TOKEN = "console-worker-test-token";
const AUTHORIZED = { authorization: `Bearer ${TOKEN}` };

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
  const screenshot = await screenshotPath("console-worker.png");
  const home = await Deno.makeTempDir({ prefix: "event-tracking-console-worker-browser-" });

  let output = "";
  let mf: Miniflare | undefined;
  let bundle: string | undefined;
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

    // The counts every step waits for: taken in by fetch() (the root, the bus), delivered by queue() (the console).
    let deadLetteredBeforeThird = 0;
    const poster = new EventPoster(origin, TOKEN);
    const steps = consoleSteps(poster, "root/healthy/console", {
      // The replay only queues them: they come back once they have failed again.
      second: () => ({ afterReplay: poster.posted }),
      third: async () => {
        deadLetteredBeforeThird = (await metrics())["root/failing"].deadLettered;
        return { "root/failing": { dead_lettered: deadLetteredBeforeThird + THIRD.length } };
      },
    });

    const result = await runConsoleDriver({ url: origin, token: TOKEN, screenshot, home, steps });
    assertSignIn(result, TOKEN);

    // The table: one row per backend path of the Worker's counters, in the tree's order (siblings by name), as integers.
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
    // Delivered by the queue consumer: what it counted reached the MetricsObject, and the table.
    assertTable(result, paths, "root/healthy/console");
    assert.deepEqual(Object.keys(result.finalTable), paths);
    assert.equal(result.finalTable["root/bus"].received, "12");
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

    // The live tail over the Durable Object's WebSocket: everything, newest first; then only what its filter passes.
    assertLiveTail(result);

    // Dead letters, kept by the DeadLetterObject: every event of the failing branch after two attempts, the
    // newest five listed. A replay queues them again (pending); failing again, they come back, the same events.
    assertDeadLetters(result, {
      letter: /2 attempt\(s\) · down · .*MongoServerSelectionError/,
      replay: /^Replayed 10: 0 delivered again, 0 dead-lettered again, 10 queued \(/,
    });
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

    assertChart(result, paths);

    // No error; nothing asked of another host; the token in no URL. The expected console errors are the
    // browser's own log lines: the wrong token's 401, then the refused filter's handshake and its 400.
    assert.equal(result.origin, origin);
    assertNoStrayTraffic(result, TOKEN);

    // The screenshot, kept as an artifact.
    assertScreenshot(screenshot);

    // A filter the Durable Object refuses: the handshake fails (400), the page asks the same URL over plain
    // HTTP for the reason and shows it by the filter; no reconnection.
    assertInvalidFilter(
      result,
      `the tail shows "${result.invalidFilterStatus}"; errors: ${JSON.stringify(result.errors)}`,
    );
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
