// The Worker's counters, global: each isolate's MetricsReporter sends what its counters grew by to the MetricsObject,
// which sums them (and the isolates' live gauges); GET /v1/metrics serves its totals. In-process first (node:sqlite as
// the object's storage, stand-in bindings, two createWorker() instances as two isolates), then in workerd (Miniflare).

import assert from "node:assert/strict";
import { emptyMetrics, type MetricsSnapshot, type TrackerConfig } from "@edx/event-tracking";
import {
  type CloudflareQueueSendRequest,
  createWorker,
  MAX_METRICS_PATHS,
  MAX_STORED_METRICS_PATHS,
  METRICS_GAUGE_TTL_MS,
  type MetricsNamespaceLike,
  MetricsObject,
  type MetricsObjectStub,
  MetricsReporter,
  type WorkerEnv,
} from "@edx/event-tracking/cloudflare";
import { RecordingLogger } from "../_helpers.ts";
import { queueBatchOf, sqliteStorage } from "./_stand_ins.ts";
import { bundleWorker, type Miniflare, startWorker, waitFor } from "./_miniflare.ts";

const TOKEN = "metrics-token-not-a-secret";

/** A MetricsObject over an in-memory SQLite database (node:sqlite), on a clock the test moves, and its namespace. */
function metricsObject() {
  const { sql, transactionSync } = sqliteStorage();
  const clock = { now: 1_000_000 };
  const object = new MetricsObject({ storage: { sql, transactionSync } }, {}, { now: () => clock.now });
  const calls = { add: 0, totals: 0 };
  const stub: MetricsObjectStub = {
    add: (...args) => (calls.add++, object.add(...args)),
    totals: () => (calls.totals++, object.totals()),
  };
  const namespace: MetricsNamespaceLike = { idFromName: (name) => name, get: () => stub };
  return { object, namespace, sql, clock, calls };
}

function counters(values: Partial<ReturnType<typeof emptyMetrics>>) {
  return { ...emptyMetrics(), ...values };
}

Deno.test("MetricsObject sums the isolates' deltas per path, in tree order, and their live gauges", async () => {
  const { object, clock } = metricsObject();
  await object.add("a", {
    "root": counters({ received: 3, passed: 3 }),
    "root/logs": counters({ received: 3, queueDepth: 99 }), // a gauge in deltas is not added
    "root/logs-old": counters({ received: 1 }),
    "root/logs/sink": counters({ delivered: 2, failed: 1, retried: 1 }),
  }, { "root/logs": 2 });
  await object.add("b", { "root": counters({ received: 4 }), "root/logs/sink": counters({ delivered: 1 }) }, {
    "root/logs": 1,
    "root/bus": 0,
  });
  let totals = await object.totals();
  // Depth first, siblings by name (as tracker.metrics() lists them), not as strings sort ("root/logs-old" first).
  assert.deepEqual(Object.keys(totals), ["root", "root/logs", "root/logs/sink", "root/logs-old"]);
  assert.deepEqual(totals["root"], counters({ received: 7, passed: 3 }));
  assert.deepEqual(totals["root/logs"], counters({ received: 3, queueDepth: 3 }));
  assert.deepEqual(totals["root/logs/sink"], counters({ delivered: 3, failed: 1, retried: 1 }));

  // An isolate's latest gauges replace its earlier ones; the counters only grow.
  clock.now += 10_000;
  await object.add("a", {}, { "root/logs": 5 });
  totals = await object.totals();
  assert.equal(totals["root/logs"].queueDepth, 6);
  assert.equal(totals["root"].received, 7);

  // "b" reported 10 s before "a": past the TTL after b's report, only a's gauges count; then none.
  clock.now += METRICS_GAUGE_TTL_MS - 10_000 + 1;
  totals = await object.totals();
  assert.equal(totals["root/logs"].queueDepth, 5, "b's gauges expired");
  clock.now += 10_000;
  totals = await object.totals();
  assert.equal(totals["root/logs"].queueDepth, 0, "a's gauges expired");
  assert.deepEqual(totals["root/logs/sink"], counters({ delivered: 3, failed: 1, retried: 1 }), "totals stay");

  // A gauge of a path with no totals yet is listed too.
  await object.add("c", {}, { "root/new": 4 });
  assert.deepEqual((await object.totals())["root/new"], counters({ queueDepth: 4 }));
});

Deno.test("MetricsObject refuses bad arguments with errors naming what is wrong, and changes nothing", async () => {
  const { object, sql } = metricsObject();
  await object.add("a", { root: counters({ received: 1 }) }, {});
  const refused: [unknown[], ErrorConstructor, RegExp][] = [
    [["", {}, {}], TypeError, /'isolate' must be a non-empty string/],
    [["x".repeat(257), {}, {}], TypeError, /'isolate'.*257 characters/],
    [["a", null, {}], TypeError, /'deltas' must be an object of backend path to counters, got null/],
    [["a", [], {}], TypeError, /'deltas' must be an object.*got Array/],
    [["a", {}, "x"], TypeError, /'gauges' must be an object of backend path to queue depth, got String/],
    [["a", { root: 5 }, {}], TypeError, /deltas\["root"\] must be an object of counter to number, got Number/],
    [["a", { root: { recieved: 1 } }, {}], TypeError, /deltas\["root"\] has "recieved", which is not a counter/],
    [["a", { root: { received: "1" } }, {}], TypeError, /deltas\["root"\]\.received must be a number, got String/],
    [["a", { root: { received: -1 } }, {}], RangeError, /deltas\["root"\]\.received must be a finite non-negative/],
    [["a", { root: { failed: Infinity } }, {}], RangeError, /deltas\["root"\]\.failed .*current value is Infinity/],
    [["a", { root: { dropped: NaN } }, {}], RangeError, /deltas\["root"\]\.dropped .*NaN/],
    [["a", {}, { "root/logs": -2 }], RangeError, /gauges\["root\/logs"\] must be a finite non-negative number/],
    [["a", { "": counters({}) }, {}], RangeError, /'deltas' has a backend path of 0 characters/],
    [
      ["a", Object.fromEntries(Array.from({ length: MAX_METRICS_PATHS + 1 }, (_, i) => [`root/${i}`, {}])), {}],
      RangeError,
      /'deltas' has 1001 backend paths, more than 1000/,
    ],
    [
      ["a", {}, Object.fromEntries(Array.from({ length: MAX_METRICS_PATHS + 1 }, (_, i) => [`root/${i}`, 1]))],
      RangeError,
      /'gauges' has 1001 backend paths/,
    ],
  ];
  for (const [args, type, message] of refused) {
    await assert.rejects(
      (object.add as (...args: unknown[]) => Promise<void>)(...args),
      (error: Error) => error instanceof type && message.test(error.message),
      `${JSON.stringify(args).slice(0, 80)}: ${message}`,
    );
  }
  // A bad path after good ones: nothing of the call is added.
  await assert.rejects(object.add("a", { root: counters({ received: 1 }), "root/x": { received: -1 } as never }, {}));
  assert.deepEqual(await object.totals(), { root: counters({ received: 1 }) });

  // The stored paths are bounded: with all but one taken, a call with two new paths is refused whole.
  sql.exec(
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) " +
      "INSERT INTO metrics_totals (path, counter, value) SELECT 'root/p' || i, 'received', 0 FROM n",
    MAX_STORED_METRICS_PATHS - 2,
  );
  await assert.rejects(
    object.add("a", { "root/new1": counters({ received: 1 }), "root/new2": counters({}) }, {}),
    /keeps totals of 9999 backend paths, and 2 more would be more than 10000/,
  );
  await object.add("a", { "root/new1": counters({ received: 1 }), root: counters({ received: 1 }) }, {});
  const totals = await object.totals();
  assert.equal(Object.keys(totals).length, MAX_STORED_METRICS_PATHS);
  assert.deepEqual([totals.root.received, totals["root/new1"].received], [2, 1]);
  assert.equal(totals["root/new2"], undefined);
  // Known paths still add.
  await object.add("a", { root: counters({ received: 1 }) }, {});
  assert.equal((await object.totals()).root.received, 3);
});

Deno.test("MetricsReporter: two isolates' reporters add what grew, and the totals are their sums", async () => {
  const { namespace, calls } = metricsObject();
  const isolates = [{ root: counters({ received: 2 }) }, { root: counters({ received: 5, delivered: 1 }) }];
  const [one, two] = isolates.map((snapshot: MetricsSnapshot) =>
    new MetricsReporter({ namespace, snapshot: () => snapshot })
  );
  assert.notEqual(one.isolate, two.isolate);
  await one.report();
  await two.report();
  assert.deepEqual((await one.totals()).root, counters({ received: 7, delivered: 1 }));
  // Nothing grew: totals() reported nothing (2 adds so far).
  assert.equal(calls.add, 2);
  isolates[0].root.received = 10;
  isolates[1].root.delivered = 4;
  // Reports that overlap send disjoint deltas: nothing counted twice.
  await Promise.all([one.report(), one.report(), two.report()]);
  assert.deepEqual((await two.totals()).root, counters({ received: 15, delivered: 4 }));
  assert.equal(calls.add, 4);
});

Deno.test("MetricsReporter: a failed add keeps its deltas for the next report, logged once per failure streak", async () => {
  const { object } = metricsObject();
  const logger = new RecordingLogger();
  const down = { value: true };
  const namespace: MetricsNamespaceLike = {
    idFromName: (name) => name,
    get: () => ({
      add: (...args) => down.value ? Promise.reject(new Error("object unavailable")) : object.add(...args),
      totals: () => object.totals(),
    }),
  };
  const snapshot: MetricsSnapshot = { root: counters({ received: 1 }), "root/logs": counters({ queueDepth: 1 }) };
  const reporter = new MetricsReporter({ namespace, snapshot: () => snapshot, logger, isolate: "isolate-1" });
  await reporter.report();
  snapshot.root.received = 3;
  await reporter.report();
  snapshot.root.received = 4;
  await reporter.report();
  assert.equal(logger.errors.length, 1, "once per failure streak");
  assert.match(
    logger.errors[0].message,
    /^MetricsReporter isolate-1: reporting to the metrics object failed \(object unavailable\); the deltas are kept/,
  );
  assert.deepEqual(await object.totals(), {});

  down.value = false;
  await reporter.report();
  assert.deepEqual(await object.totals(), {
    root: counters({ received: 4 }),
    "root/logs": counters({ queueDepth: 1 }),
  });
  assert.deepEqual(logger.warnings, ["MetricsReporter isolate-1: reports reach the metrics object again"]);

  // A new streak is logged again.
  down.value = true;
  snapshot.root.received = 5;
  await reporter.report();
  await reporter.report();
  snapshot.root.received = 6;
  await reporter.report();
  assert.equal(logger.errors.length, 2);
  down.value = false;
  assert.equal((await reporter.totals()).root.received, 6);

  assert.throws(() => new MetricsReporter({ namespace: {} as never, snapshot: () => ({}) }), TypeError);
  assert.throws(() => new MetricsReporter({ namespace, snapshot: undefined as never }), TypeError);
  assert.throws(() => new MetricsReporter({ namespace, snapshot: () => ({}), intervalMs: -1 }), RangeError);
});

// ---------------------------------------------------------------------------------------------------------------
// createWorker() with the METRICS binding, in-process.

const TREE: TrackerConfig = {
  backends: { logs: { ENGINE: "async_routing", OPTIONS: { backends: { sink: { ENGINE: "memory" } } } } },
};

/** An invocation context whose waitUntil promises the test awaits (they include the reports' timers). */
function invocation() {
  const pending: Promise<unknown>[] = [];
  const ctx = { waitUntil: (promise: Promise<unknown>) => void pending.push(promise), passThroughOnException() {} };
  return {
    ctx,
    async settled(): Promise<void> {
      while (pending.length > 0) await Promise.all(pending.splice(0));
    },
  };
}

function bindings(metrics: MetricsNamespaceLike | undefined) {
  const sent: CloudflareQueueSendRequest[] = [];
  const env: WorkerEnv = {
    EVENT_TRACKING_TOKEN: TOKEN,
    EVENTS_QUEUE: { sendBatch: (messages) => Promise.resolve(void sent.push(...messages)) },
    EVENT_BUS: { idFromName: (name) => name, get: () => ({ fetch, publish: () => Promise.resolve(0) }) },
    METRICS: metrics,
  };
  return { env, sent };
}

function post(count: number): Request {
  return new Request("https://collector.test/v1/events", {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ events: Array.from({ length: count }, () => ({ name: "edx.ui.click" })) }),
  });
}

async function metricsOf(worker: ReturnType<typeof createWorker>, env: WorkerEnv): Promise<MetricsSnapshot> {
  const { ctx, settled } = invocation();
  const response = await worker.fetch(
    new Request("https://collector.test/v1/metrics.json", { headers: { authorization: `Bearer ${TOKEN}` } }),
    env,
    ctx,
  );
  assert.equal(response.status, 200);
  const { backends } = await response.json() as { backends: MetricsSnapshot };
  await settled();
  return backends;
}

Deno.test("createWorker() with METRICS: the intake of one isolate and the delivery of another, summed by the object", async () => {
  const { namespace, calls } = metricsObject();
  // Two isolates: two Worker instances (their own trackers and reporters) with the same bindings.
  const intake = createWorker({ config: TREE });
  const consumer = createWorker({ config: TREE });
  const { env, sent } = bindings(namespace);

  // Three requests in a row: one report now, then one for the two others, a second later (under waitUntil).
  const { ctx, settled } = invocation();
  for (const count of [2, 1, 3]) {
    const response = await intake.fetch(post(count), env, ctx);
    assert.equal(response.status, 202);
  }
  await settled();
  assert.equal(calls.add, 2, "at most one report a second");

  const delivery = invocation();
  await consumer.queue(queueBatchOf(sent.splice(0)), env, delivery.ctx);
  await delivery.settled();
  assert.equal(calls.add, 3, "reported at the end of the batch");

  // Either isolate answers the same totals.
  const fromIntake = await metricsOf(intake, env);
  const fromConsumer = await metricsOf(consumer, env);
  assert.deepEqual(fromIntake, fromConsumer);
  assert.deepEqual(Object.keys(fromIntake), ["root", "root/logs", "root/logs/sink"]);
  assert.equal(fromIntake["root"].received, 6);
  assert.equal(fromIntake["root/logs"].received, 6, "counted by the intake isolate");
  assert.equal(fromIntake["root/logs/sink"].delivered, 6, "counted by the consumer isolate");
  assert.equal(fromIntake["root/logs"].queueDepth, 0);

  // Prometheus text from the same totals.
  const { ctx: textCtx, settled: textSettled } = invocation();
  const text = await (await intake.fetch(
    new Request("https://collector.test/v1/metrics", { headers: { authorization: `Bearer ${TOKEN}` } }),
    env,
    textCtx,
  )).text();
  await textSettled();
  assert.match(text, /event_tracking_delivered_total\{backend="root\/logs\/sink"\} 6\n/);
  assert.match(text, /event_tracking_received_total\{backend="root"\} 6\n/);
});

Deno.test("createWorker() with METRICS: a per-batch consumer's retired counters are reported; an object down is a 503", async () => {
  const { namespace, object } = metricsObject();
  const worker = createWorker({ config: TREE, consumer: "batch" });
  const { env, sent } = bindings(namespace);
  const { ctx, settled } = invocation();
  assert.equal((await worker.fetch(post(2), env, ctx)).status, 202);
  await worker.queue(queueBatchOf(sent.splice(0)), env, ctx);
  await settled();
  // Reported at the end of the batch, before any metrics request.
  assert.equal((await object.totals())["root/logs/sink"].delivered, 2);

  const logger = new RecordingLogger();
  const broken: MetricsNamespaceLike = {
    idFromName: (name) => name,
    get: () => ({ add: () => Promise.reject(new Error("down")), totals: () => Promise.reject(new Error("down")) }),
  };
  const other = createWorker({ config: TREE, logger });
  const { env: brokenEnv } = bindings(broken);
  const response = await other.fetch(
    new Request("https://collector.test/v1/metrics.json", { headers: { authorization: `Bearer ${TOKEN}` } }),
    brokenEnv,
    ctx,
  );
  await settled();
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("retry-after"), "1");
  assert.deepEqual(await response.json(), {
    error: "metrics_unavailable",
    message: "The metrics object could not be read (down); retry later",
  });
  assert.equal(logger.errors.length, 1);
  assert.match(logger.errors[0].message, /reporting to the metrics object failed \(down\)/);
});

Deno.test("createWorker() without METRICS: the answering isolate's counters, as before", async () => {
  const worker = createWorker({ config: TREE });
  const { env, sent } = bindings(undefined);
  const { ctx, settled } = invocation();
  assert.equal((await worker.fetch(post(2), env, ctx)).status, 202);
  await worker.queue(queueBatchOf(sent.splice(0)), env, ctx);
  await settled();
  const metrics = await metricsOf(worker, env);
  assert.equal(metrics["root/logs"].received, 2);
  assert.equal(metrics["root/logs/sink"].delivered, 2);
  // Another isolate has counted nothing.
  assert.equal((await metricsOf(createWorker({ config: TREE }), env))["root/logs"].received, 0);
});

// ---------------------------------------------------------------------------------------------------------------
// In workerd.

/** Fails unless no counter of `later` is below the same counter of `earlier` (queueDepth is a gauge). */
function assertMonotonic(earlier: MetricsSnapshot, later: MetricsSnapshot, what: string): void {
  for (const [path, before] of Object.entries(earlier)) {
    const after = later[path];
    assert.ok(after !== undefined, `${what}: ${path} is gone`);
    for (const key of Object.keys(before) as (keyof typeof before)[]) {
      if (key === "queueDepth") continue;
      assert.ok(after[key] >= before[key], `${what}: ${path} ${key} went from ${before[key]} to ${after[key]}`);
    }
  }
}

Deno.test({
  name: "worker metrics in workerd: totals from the MetricsObject, never backwards, and kept across a restart",
  // Miniflare keeps process-wide hooks after dispose() (see worker_test.ts); everything opened is closed in `finally`.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const vars = { EVENT_TRACKING_TOKEN: TOKEN, EVENT_TRACKING_CONFIG: JSON.stringify(TREE) };
    const persist = await Deno.makeTempDir({ prefix: "event-tracking-metrics-do-" });
    let output = "";
    let mf: Miniflare | undefined;
    let bundle: string | undefined;
    try {
      bundle = await bundleWorker();
      mf = await startWorker({ bundle, vars, persist, stdout: (text) => output += text });
      let origin = String(await mf.ready).replace(/\/$/, "");
      const get = (path: string) =>
        mf!.dispatchFetch(`${origin}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      const postEvents = async (count: number) => {
        const response = await mf!.dispatchFetch(`${origin}/v1/events`, {
          method: "POST",
          headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
          body: JSON.stringify({ events: Array.from({ length: count }, (_, i) => ({ name: `edx.test.metric.${i}` })) }),
        });
        assert.equal(response.status, 202, await response.text());
      };
      const polls: MetricsSnapshot[] = [];
      const poll = async () => {
        const response = await get("/v1/metrics.json");
        assert.equal(response.status, 200);
        const { backends } = await response.json() as { backends: MetricsSnapshot };
        if (polls.length > 0) assertMonotonic(polls.at(-1)!, backends, `poll ${polls.length}`);
        polls.push(backends);
        return backends;
      };
      const delivered = (count: number) =>
        waitFor(`${count} events delivered`, async () => {
          const backends = await poll();
          return backends["root/logs/sink"]?.delivered === count && backends["root/logs"].queueDepth === 0
            ? backends
            : undefined;
        }, 30_000);

      await t.step("posted events, delivered by the queue consumer: the totals count each once", async () => {
        await postEvents(3);
        await postEvents(2);
        const backends = await delivered(5);
        assert.deepEqual(Object.keys(backends), ["root", "root/logs", "root/logs/sink"]);
        assert.deepEqual(backends["root"], counters({ received: 5, passed: 5, delivered: 5 }));
        assert.deepEqual(backends["root/logs"], counters({ received: 5, passed: 5, delivered: 5 }));
        assert.deepEqual(backends["root/logs/sink"], counters({ received: 5, delivered: 5 }));
        const text = await (await get("/v1/metrics")).text();
        assert.match(text, /event_tracking_delivered_total\{backend="root\/logs\/sink"\} 5\n/);
        assert.match(text, /event_tracking_received_total\{backend="root"\} 5\n/);
      });

      await t.step("polls while events flow never go backwards", async () => {
        for (let i = 0; i < 4; i++) {
          await postEvents(2);
          await poll();
        }
        await delivered(13);
        assert.ok(polls.length > 6, `${polls.length} polls`);
      });

      await t.step("a new isolate (a restart) answers the object's totals, and adds to them", async () => {
        await mf!.dispose();
        mf = undefined;
        mf = await startWorker({ bundle: bundle!, vars, persist, stdout: (text) => output += text });
        origin = String(await mf.ready).replace(/\/$/, "");
        // This isolate has counted nothing yet: these are the object's.
        const backends = await poll();
        assert.equal(backends["root"].received, 13);
        assert.equal(backends["root/logs/sink"].delivered, 13);
        await postEvents(1);
        await delivered(14);
        assert.equal(polls.at(-1)!["root"].received, 14);
      });
      assert.doesNotMatch(output, /MetricsReporter .* failed/);
    } catch (error) {
      console.error(`The Worker's output:\n${output.slice(-8_000)}`);
      throw error;
    } finally {
      if (Deno.env.get("DUMP_WORKER_OUTPUT")) console.log(output);
      await mf?.dispose();
      if (bundle !== undefined) await Deno.remove(bundle, { recursive: true });
      await Deno.remove(persist, { recursive: true });
    }
  },
});
