import assert from "node:assert/strict";
import type { TrackerConfig } from "@edx/event-tracking";
import { mongoEngines } from "@edx/event-tracking/mongo";
import {
  type CloudflareQueueMessage,
  type CloudflareQueueSendRequest,
  createWorker,
  type CreateWorkerOptions,
  type WorkerEnv,
} from "@edx/event-tracking/cloudflare";
import { RecordingLogger } from "../_helpers.ts";

const TOKEN = "worker-token";
const ctx = { waitUntil() {}, passThroughOnException() {} };

/** Bindings whose Queue records what is sent and whose Durable Object records what it is asked. */
function bindings(vars: Partial<WorkerEnv> = {}) {
  const sent: CloudflareQueueSendRequest[] = [];
  const connects: string[] = [];
  const env: WorkerEnv = {
    EVENT_TRACKING_TOKEN: TOKEN,
    EVENTS_QUEUE: { sendBatch: (messages) => Promise.resolve(void sent.push(...messages)) },
    EVENT_BUS: {
      idFromName: (name) => name,
      get: () => ({
        fetch: (input: Request | string) => {
          connects.push(new Request(input).url);
          return Promise.resolve(new Response("upgraded", { status: 200 }));
        },
        publish: () => Promise.resolve(0),
      }),
    },
    ...vars,
  };
  return { env, sent, connects };
}

function post(events: { name: string }[]): Request {
  return new Request("https://collector.test/v1/events", {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ events }),
  });
}

/** The Queue messages of what was sent, as the queue() handler receives them. */
function delivery(sent: CloudflareQueueSendRequest[]) {
  const acked: string[] = [];
  const retried: string[] = [];
  const messages: CloudflareQueueMessage[] = sent.map((request, i) => ({
    id: `m${i}`,
    body: JSON.parse(JSON.stringify(request.body)),
    attempts: 1,
    ack: () => void acked.push(`m${i}`),
    retry: () => void retried.push(`m${i}`),
  }));
  return { batch: { queue: "edx-events", messages }, acked, retried };
}

/** A worker whose `config` counts how often a tree is built. */
function counting(config: TrackerConfig, options: CreateWorkerOptions = {}) {
  const builds = { count: 0 };
  const worker = createWorker({
    ...options,
    config: () => {
      builds.count++;
      return config;
    },
  });
  return { worker, builds };
}

const MEMORY_TREE: TrackerConfig = {
  backends: { logs: { ENGINE: "async_routing", OPTIONS: { backends: { sink: { ENGINE: "memory" } } } } },
};
// A MongoDB server nobody listens on: nothing is delivered to it in these tests, so nothing connects.
const MONGO_TREE: TrackerConfig = {
  backends: {
    logs: {
      ENGINE: "async_routing",
      OPTIONS: { backends: { db: { ENGINE: "mongo", OPTIONS: { uri: "mongodb://127.0.0.1:1/x" } } } },
    },
  },
};

Deno.test("createWorker(): fetch() builds the tracker once per bindings object and answers 202 once the Queue has the events", async () => {
  const { worker, builds } = counting(MEMORY_TREE);
  const { env, sent } = bindings();
  for (let i = 0; i < 3; i++) {
    const response = await worker.fetch(post([{ name: "edx.ui.click" }]), env, ctx);
    assert.equal(response.status, 202);
    await response.body?.cancel();
  }
  assert.equal(sent.length, 3);
  assert.equal(builds.count, 1);
  // Other bindings (another environment in the same isolate) get their own tracker.
  const other = bindings();
  await (await worker.fetch(post([{ name: "edx.ui.click" }]), other.env, ctx)).body?.cancel();
  assert.equal(builds.count, 2);
});

Deno.test("createWorker(): queue() reuses one tracker for every batch when no sink is bound to an invocation", async () => {
  const { worker, builds } = counting(MEMORY_TREE);
  const { env, sent } = bindings();
  for (let i = 0; i < 2; i++) {
    await (await worker.fetch(post([{ name: "edx.ui.click" }, { name: "edx.ui.scroll" }]), env, ctx)).body?.cancel();
    const { batch, acked, retried } = delivery(sent.splice(0));
    await worker.queue(batch, env, ctx);
    assert.deepEqual([acked, retried], [["m0", "m1"], []]);
  }
  // One tree for fetch(), one for queue(): not one per batch.
  assert.equal(builds.count, 2);
});

Deno.test("createWorker(): queue() builds a tree with a mongo sink per batch and closes it, unless told otherwise", async () => {
  const empty = { queue: "edx-events", messages: [] };
  for (
    const [consumer, tree, expected] of [
      [undefined, MONGO_TREE, 3],
      ["isolate", MONGO_TREE, 1],
      ["batch", MEMORY_TREE, 3],
      ["auto", MEMORY_TREE, 1],
    ] as const
  ) {
    const { worker, builds } = counting(tree, { consumer, engines: mongoEngines() });
    const { env } = bindings();
    for (let i = 0; i < 3; i++) await worker.queue(empty, env, ctx);
    assert.equal(builds.count, expected, `consumer ${consumer}, ${tree === MONGO_TREE ? "mongo" : "memory"} tree`);
  }
  assert.throws(() => createWorker({ consumer: "sometimes" as never }), RangeError);
});

Deno.test("createWorker(): a configuration that cannot be built answers 500 and is logged; queue() throws it", async () => {
  const logger = new RecordingLogger();
  const worker = createWorker({ logger });
  const { env } = bindings({ EVENT_TRACKING_CONFIG: "{not json" });
  const response = await worker.fetch(post([{ name: "edx.ui.click" }]), env, ctx);
  assert.equal(response.status, 500);
  assert.equal((await response.json() as { error: string }).error, "misconfigured");
  assert.match(logger.errors[0].message, /cannot build the tracker/);
  await assert.rejects(
    worker.queue({ queue: "edx-events", messages: [] }, env, ctx),
    /EVENT_TRACKING_CONFIG is not JSON/,
  );
});

Deno.test("createWorker(): GET /v1/bus/subscribe goes to the Durable Object with the topic of the tree's first event_bus branch", async () => {
  const worker = createWorker({
    config: {
      backends: {
        first: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["*"] } },
        second: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["*"] } },
      },
    },
  });
  const { env, connects } = bindings();
  const subscribe = (query: string) =>
    worker.fetch(
      new Request(`https://collector.test/v1/bus/subscribe?${query}`, {
        headers: { authorization: `Bearer ${TOKEN}`, upgrade: "websocket" },
      }),
      env,
      ctx,
    );
  assert.equal(await (await subscribe("pattern=.*")).text(), "upgraded");
  assert.equal(await (await subscribe("pattern=.*&topic=second")).text(), "upgraded");
  assert.deepEqual(connects.map((url) => new URL(url).searchParams.get("topic")), ["first", "second"]);
  const unknown = await subscribe("pattern=.*&topic=third");
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json() as { error: string }).error, "unknown_topic");
});
