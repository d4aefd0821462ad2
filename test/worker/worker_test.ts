// The collector Worker end to end, in workerd through Miniflare, as wrangler bundles it:
// POST → Queue → queue() → sinks (console, MongoDB), retries then the dead-letter queue,
// 503 when the Queue send fails, the Durable Object's WebSocket fan-out by topic, and
// request validation through the Worker.

import assert from "node:assert/strict";
import { MongoClient } from "mongodb";
import { freePort, startMongoServer, testDatabaseName } from "../_mongo_server.ts";
import { bundleWorker, deadLetters, type Miniflare, REJECTED_CALLS_PATH, startWorker, waitFor } from "./_miniflare.ts";

const TOKEN = "test-token-not-a-secret";
const ORIGIN = "http://collector.test";
/** The collector with its EVENTS_QUEUE replaced by a stand-in whose sendBatch always rejects. */
const QUEUE_DOWN = "http://queue-down.test";
/** The collector with two event_bus branches, each allowing every event. */
const TWO_BUSES = "http://two-buses.test";
const AUTHORIZED = { authorization: `Bearer ${TOKEN}` };

function post(mf: Miniflare, body: string, headers: Record<string, string> = AUTHORIZED, origin = ORIGIN) {
  return mf.dispatchFetch(`${origin}/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
}

async function accept(mf: Miniflare, events: { name: string; data?: unknown }[], origin = ORIGIN): Promise<string[]> {
  const response = await post(mf, JSON.stringify({ events }), AUTHORIZED, origin);
  const answer = await response.json() as { accepted: number; ids: string[] };
  assert.equal(response.status, 202, JSON.stringify(answer));
  assert.equal(answer.accepted, events.length);
  return answer.ids;
}

async function subscribe(
  mf: Miniflare,
  patterns: string[],
  { origin = ORIGIN, topic }: { origin?: string; topic?: string } = {},
) {
  const query = [
    ...(topic === undefined ? [] : [`topic=${encodeURIComponent(topic)}`]),
    ...patterns.map((pattern) => `pattern=${encodeURIComponent(pattern)}`),
  ].join("&");
  const response = await mf.dispatchFetch(`${origin}/v1/bus/subscribe?${query}`, {
    headers: { upgrade: "websocket", ...AUTHORIZED },
  });
  assert.equal(response.status, 101, await response.text());
  const socket = response.webSocket!;
  const names: string[] = [];
  const ids: string[] = [];
  const frames: string[] = [];
  socket.addEventListener("message", (event) => {
    const frame = String(event.data);
    frames.push(frame);
    if (frame === "pong") return;
    const { name, id } = JSON.parse(frame);
    names.push(name);
    ids.push(id);
  });
  socket.accept();
  return { names, ids, frames, send: (text: string) => socket.send(text), close: () => socket.close(1000, "done") };
}

Deno.test({
  name: "worker serves the collector: fetch() → Queue → queue() → sinks, dead letters, bus fan-out, validation",
  // Miniflare keeps process-wide hooks after dispose(): exit-signal listeners, a message port and a timer
  // (measured with the sanitizers on); everything this test opens is closed in `finally`.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const mongo = await startMongoServer({ forceCongo: true });
    const database = testDatabaseName();
    const client = new MongoClient(mongo.uri);
    const deadMongo = `mongodb://127.0.0.1:${freePort()}/?directConnection=true&serverSelectionTimeoutMS=200`;
    const config = {
      backends: {
        logs: {
          ENGINE: "async_routing",
          OPTIONS: {
            processors: [{ ENGINE: "name_allowlist", OPTIONS: { allowlist: ["edx.ui.click", "edx.ui.scroll"] } }],
            backends: { console: { ENGINE: "logger", OPTIONS: { max_event_size: null } } },
          },
        },
        partial: {
          ENGINE: "async_routing",
          OPTIONS: {
            processors: [{ ENGINE: "name_allowlist", OPTIONS: { allowlist: ["edx.test.partial"] } }],
            backoff: { initial_ms: 1000, max_ms: 1000 },
            max_attempts: 2,
            backends: {
              console: { ENGINE: "logger", OPTIONS: { max_event_size: null } },
              down: { ENGINE: "mongo", OPTIONS: { uri: deadMongo, max_retries: 0 } },
            },
          },
        },
        stored: {
          ENGINE: "async_routing",
          OPTIONS: {
            processors: [{ ENGINE: "name_allowlist", OPTIONS: { allowlist: ["edx.test.stored"] } }],
            backends: { mongo: { ENGINE: "mongo", OPTIONS: { database } } },
          },
        },
        failing: {
          ENGINE: "async_routing",
          OPTIONS: {
            processors: [{ ENGINE: "name_allowlist", OPTIONS: { allowlist: ["edx.test.failing"] } }],
            backoff: { initial_ms: 1000, max_ms: 1000 },
            backends: { mongo: { ENGINE: "mongo", OPTIONS: { uri: deadMongo, max_retries: 0 } } },
          },
        },
        bus: {
          ENGINE: "event_bus",
          OPTIONS: {
            event_bus_tracking_logs: ["edx.course.enrollment.activated", "edx.course.grade.passed.first_time"],
          },
        },
      },
    };
    let output = "";
    let mf: Miniflare | undefined;
    try {
      const bundle = await bundleWorker();
      const everything = { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["*"] } };
      mf = await startWorker({
        bundle,
        vars: { EVENT_TRACKING_TOKEN: TOKEN, EVENT_TRACKING_CONFIG: JSON.stringify(config), MONGODB_URI: mongo.uri },
        stdout: (text) => output += text,
        variants: [
          {
            host: new URL(QUEUE_DOWN).host,
            rejectingQueue: true,
            vars: {
              EVENT_TRACKING_TOKEN: TOKEN,
              EVENT_TRACKING_CONFIG: JSON.stringify({
                backends: {
                  logs: { ENGINE: "async_routing", OPTIONS: { backends: { console: { ENGINE: "logger" } } } },
                },
              }),
            },
          },
          {
            host: new URL(TWO_BUSES).host,
            vars: {
              EVENT_TRACKING_TOKEN: TOKEN,
              EVENT_TRACKING_CONFIG: JSON.stringify({ backends: { first: everything, second: everything } }),
            },
          },
        ],
      });
      await Deno.remove(bundle, { recursive: true });
      const worker = mf;

      await t.step("worker queue() writes accepted events to the console logger, one JSON line each", async () => {
        const ids = await accept(worker, [{ name: "edx.ui.click", data: { x: 1 } }, { name: "edx.ui.scroll" }]);
        const lines = await waitFor("both events on the Worker's console", () => {
          const found = output.split("\n").filter((line) => ids.some((id) => line.includes(id)));
          return found.length >= 2 ? found : undefined;
        });
        const events = lines.map((line) => JSON.parse(line.slice(line.indexOf("{"))));
        assert.deepEqual(events.map((event) => event.name).sort(), ["edx.ui.click", "edx.ui.scroll"]);
        assert.deepEqual(events.find((event) => event.name === "edx.ui.click").data, { x: 1 });
      });

      await t.step(
        "worker queue() stores events in MongoDB (MONGODB_URI) from workerd, batch after batch",
        async () => {
          const events = client.db(database).collection("events");
          const ids: string[] = [];
          // Each batch is a separate queue() invocation, with its own MongoDB connections.
          for (const n of [2, 4]) {
            ids.push(...await accept(worker, [{ name: "edx.test.stored", data: { n } }, { name: "edx.test.stored" }]));
            await waitFor(`${n} documents in MongoDB`, async () => await events.countDocuments() >= n || undefined);
          }
          const stored = await events.find({}).toArray();
          assert.deepEqual(stored.map((doc) => doc.id).sort(), [...ids].sort());
        },
      );

      await t.step(
        "worker queue() retries a failing sink with backoff, then leaves it to the dead-letter queue",
        async () => {
          const started = Date.now();
          const [id] = await accept(worker, [{ name: "edx.test.failing" }]);
          const kv = await deadLetters(worker);
          const letter = await waitFor("the message in the dead-letter queue", async () => {
            for (const { name } of (await kv.list()).keys) {
              const body = JSON.parse((await kv.get(name))!);
              if (body.event?.id === id) return body;
            }
            return undefined;
          }, 30_000);
          assert.equal(letter.path, "backends.failing");
          assert.equal(letter.event.name, "edx.test.failing");
          // Three deliveries (max_retries 2) with a delay of at least one second before each retry.
          assert.ok(Date.now() - started >= 2_000, `dead-lettered after ${Date.now() - started} ms`);
          // One failed write per delivery: the first and two retries (max_retries 2).
          assert.equal(output.match(/MongoServerSelectionError/g)?.length, 3);
        },
      );

      await t.step(
        "worker queue() retries only the sink that failed: a new message for it, the others get the event once",
        async () => {
          const [id] = await accept(worker, [{ name: "edx.test.partial" }]);
          const events = () =>
            output.split("\n").filter((line) => line.includes(id)).flatMap((line) => {
              try {
                return [JSON.parse(line.slice(line.indexOf("{")))];
              } catch {
                return [];
              }
            }).filter((event) => event.id === id);
          // Two attempts (max_attempts 2), the second a new message owed to "down" only; then the branch's dead letter.
          const letter = await waitFor(
            "the dead letter of the failing sink",
            () => events().find((event) => event.deadLetter !== undefined),
            30_000,
          );
          assert.equal(letter.deadLetter.backend, "down");
          assert.equal(letter.deadLetter.attempts, 2);
          assert.equal(events().filter((event) => event.deadLetter === undefined).length, 1, "console got it once");
          const kv = await deadLetters(worker);
          for (const { name } of (await kv.list()).keys) {
            assert.notEqual(JSON.parse((await kv.get(name))!).event?.id, id, "not in the dead-letter queue");
          }
        },
      );

      await t.step(
        "EventBusObject sends each bus event to the WebSocket subscribers whose patterns match",
        async () => {
          const enrollments = await subscribe(worker, [String.raw`edx\.course\.enrollment\.`]);
          const grades = await subscribe(worker, [String.raw`edx\.course\.grade\.`, "nothing"]);
          try {
            await accept(worker, [
              { name: "edx.course.enrollment.activated" },
              { name: "edx.course.grade.passed.first_time" },
              { name: "edx.course.enrollment.deactivated" }, // not allowed onto the bus
              { name: "edx.course.enrollment.activated" },
            ]);
            await waitFor("the fan-out", () => enrollments.names.length >= 2 && grades.names.length >= 1 || undefined);
            assert.deepEqual(enrollments.names, ["edx.course.enrollment.activated", "edx.course.enrollment.activated"]);
            assert.deepEqual(grades.names, ["edx.course.grade.passed.first_time"]);
          } finally {
            enrollments.close();
            grades.close();
          }
        },
      );

      await t.step(
        "worker fetch() answers 503 with Retry-After, and accepts nothing, when the Queue send fails",
        async () => {
          const response = await post(
            worker,
            JSON.stringify({ events: [{ name: "edx.test.refused" }, { name: "edx.test.refused" }] }),
            AUTHORIZED,
            QUEUE_DOWN,
          );
          const answer = await response.json() as Record<string, unknown>;
          assert.equal(response.status, 503, JSON.stringify(answer));
          assert.equal(response.headers.get("retry-after"), "1");
          assert.equal(answer.error, "unavailable");
          assert.equal(answer.ids, undefined);
          assert.equal(answer.accepted, undefined);
          // The transport tried sendBatch 3 times (sendAttempts) before giving the events up.
          const calls = await worker.dispatchFetch(`${QUEUE_DOWN}${REJECTED_CALLS_PATH}`);
          assert.deepEqual(await calls.json(), { calls: 3 });
          await waitFor("the send failure in the log", () => output.includes("lost 2 message(s)") || undefined);
          assert.match(output, /sendBatch failed 3 times \(Error: Queue unavailable \(test double\)/);
        },
      );

      await t.step(
        "EventBusObject sends each event once to a subscriber of one topic when two event_bus branches publish it",
        async () => {
          // No ?topic=: the first event_bus branch's ("first"), as the Deno server does.
          const first = await subscribe(worker, [".*"], { origin: TWO_BUSES });
          const second = await subscribe(worker, [".*"], { origin: TWO_BUSES, topic: "second" });
          try {
            const ids = await accept(worker, [{ name: "edx.a" }, { name: "edx.b" }, { name: "edx.c" }], TWO_BUSES);
            await waitFor("the fan-out", () => first.ids.length >= 3 && second.ids.length >= 3 || undefined);
            // Anything more would have arrived with the rest.
            await new Promise((resolve) => setTimeout(resolve, 300));
            assert.deepEqual(first.ids, ids);
            assert.deepEqual(second.ids, ids);
            assert.deepEqual(first.names, ["edx.a", "edx.b", "edx.c"]);

            first.send("ping");
            await waitFor("the pong", () => first.frames.includes("pong") || undefined);
          } finally {
            first.close();
            second.close();
          }
          const unknown = await worker.dispatchFetch(`${TWO_BUSES}/v1/bus/subscribe?topic=third&pattern=.*`, {
            headers: { upgrade: "websocket", ...AUTHORIZED },
          });
          assert.equal(unknown.status, 404);
          assert.equal((await unknown.json() as { error: string }).error, "unknown_topic");
        },
      );

      await t.step("EventBusObject refuses subscriptions without a valid pattern", async () => {
        const headers = { upgrade: "websocket", authorization: `Bearer ${TOKEN}` };
        for (const query of ["", "?pattern=(%3F%3C%3De)dx", `?pattern=${"a".repeat(2_100)}`]) {
          const response = await worker.dispatchFetch(`${ORIGIN}/v1/bus/subscribe${query}`, { headers });
          const answer = await response.json() as { error: string };
          assert.equal(response.status, 400, query);
          assert.equal(answer.error, "bad_request");
        }
        const anonymous = await worker.dispatchFetch(`${ORIGIN}/v1/bus/subscribe?pattern=a`, {
          headers: { upgrade: "websocket" },
        });
        await anonymous.body?.cancel();
        assert.equal(anonymous.status, 401);
      });

      await t.step("worker fetch() refuses bad requests: token, size, JSON, batch validation", async () => {
        const body = JSON.stringify({ name: "edx.ui.click" });
        const refused = async (response: { status: number; text(): Promise<string> }, status: number) => {
          const text = await response.text();
          assert.equal(response.status, status, text);
          return text;
        };
        await refused(await post(worker, body, {}), 401);
        await refused(await post(worker, body, { authorization: "Bearer wrong" }), 401);
        await refused(await post(worker, JSON.stringify({ name: "x", data: { s: "a".repeat(1_100_000) } })), 413);
        await refused(await post(worker, "{not json"), 400);
        const batch = await refused(
          await post(worker, JSON.stringify({ events: [{ name: "ok" }, { data: {} }] })),
          400,
        );
        assert.match(batch, /events\[1\]|1/);
        const health = await worker.dispatchFetch(`${ORIGIN}/v1/health`);
        assert.equal(health.status, 200);
        await health.body?.cancel();
      });
    } catch (error) {
      console.error(`The Worker's output:\n${output.slice(-8_000)}`);
      throw error;
    } finally {
      if (Deno.env.get("DUMP_WORKER_OUTPUT")) console.log(output);
      await mf?.dispose();
      await client.close();
      await mongo.stop();
    }
  },
});
