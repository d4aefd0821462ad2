import assert from "node:assert/strict";
import {
  type AsyncRoutingBackend,
  type EventBusBackend,
  ImproperlyConfigured,
  LoggerBackend,
} from "@edx/event-tracking";
import { type MongoBackend, mongoEngines } from "@edx/event-tracking/mongo";
import {
  buildCollector,
  CloudflareQueueTransport,
  DurableObjectBus,
  type WorkerEnv,
} from "@edx/event-tracking/cloudflare";
import { RecordingLogger } from "../_helpers.ts";

function env(vars: Partial<WorkerEnv> = {}): WorkerEnv {
  return {
    EVENTS_QUEUE: { sendBatch: () => Promise.resolve() },
    EVENT_BUS: {
      idFromName: (name: string) => name,
      get: () => ({
        fetch: () => Promise.resolve(new Response(null, { status: 204 })),
        publish: () => Promise.resolve(0),
      }),
    },
    ...vars,
  };
}

Deno.test("buildCollector() builds the default tree on the Queue and the Durable Object without EVENT_TRACKING_CONFIG", async () => {
  const { tracker, transports, bus, invocationBound } = buildCollector(
    env({ MONGODB_URI: "mongodb://127.0.0.1:1/tracking" }),
    { engines: (env) => mongoEngines(env.MONGODB_URI) },
  );
  assert.equal(invocationBound, true, "a mongo sink: the queue consumer builds it per batch");
  const logs = tracker.getBackend("tracking_logs") as AsyncRoutingBackend;
  assert.ok(logs.transport instanceof CloudflareQueueTransport);
  assert.deepEqual([...transports.keys()], ["backends.tracking_logs"]);
  assert.ok(logs.backends.get("console") instanceof LoggerBackend);
  assert.equal((logs.backends.get("mongo") as MongoBackend).database, "tracking");
  assert.ok(logs.deadLetter instanceof LoggerBackend, "dead letters go to the log: Workers have no files");
  const busBranch = tracker.getBackend("event_bus") as EventBusBackend;
  assert.equal(busBranch.transport, bus);
  assert.ok(bus instanceof DurableObjectBus);
  assert.ok(busBranch.eventBusTrackingLogs.has("edx.course.enrollment.activated"));
  await tracker.close();
});

Deno.test("buildCollector() reads EVENT_TRACKING_CONFIG, with reference names and snake_case options", async () => {
  const logger = new RecordingLogger();
  const config = {
    backends: {
      caliper: {
        ENGINE: "eventtracking.backends.async_routing.AsyncRoutingBackend",
        OPTIONS: { max_attempts: 9, backoff: { initial_ms: 10 }, backends: { m: { ENGINE: "memory" } } },
      },
      bus: {
        ENGINE: "eventtracking.backends.event_bus.EventBusRoutingBackend",
        OPTIONS: { EVENT_BUS_TRACKING_LOGS: ["a"], backends: { m: { ENGINE: "memory" } } },
      },
    },
  };
  const { tracker, transports, invocationBound } = buildCollector(
    env({ EVENT_TRACKING_CONFIG: JSON.stringify(config) }),
    {
      logger,
    },
  );
  assert.equal(invocationBound, false);
  assert.deepEqual([...transports.keys()], ["backends.caliper"]);
  assert.equal((tracker.getBackend("caliper") as AsyncRoutingBackend).backendName, "caliper");
  assert.deepEqual([...(tracker.getBackend("bus") as EventBusBackend).eventBusTrackingLogs], ["a"]);
  assert.match(logger.warnings.join("\n"), /backends.bus: this event bus is consumed elsewhere \(consume: false\)/);
  await tracker.close();
});

Deno.test("buildCollector() reports a bad EVENT_TRACKING_CONFIG; a mongo sink without a server uses MONGODB_URI", async () => {
  assert.throws(() => buildCollector(env({ EVENT_TRACKING_CONFIG: "{nope" })), ImproperlyConfigured);
  assert.throws(
    () =>
      buildCollector(
        env({
          EVENT_TRACKING_CONFIG: JSON.stringify({
            backends: { q: { ENGINE: "async_routing", OPTIONS: { colour: 1 } } },
          }),
        }),
      ),
    /backends\.q\.OPTIONS\.colour: unknown option/,
  );
  const { tracker } = buildCollector(
    env({
      EVENT_TRACKING_CONFIG: JSON.stringify({ backends: { db: { ENGINE: "mongo" } } }),
      MONGODB_URI: "mongodb://127.0.0.1:1/from_binding",
    }),
    { engines: (env) => mongoEngines(env.MONGODB_URI) },
  );
  assert.equal((tracker.getBackend("db") as MongoBackend).database, "from_binding");
  await tracker.close();
});

Deno.test("buildCollector() lists the event_bus topics in tree order; publishing does not hold up send()", async () => {
  const calls: string[] = [];
  const logger = new RecordingLogger();
  const { tracker, topics, bus } = buildCollector(
    env({
      EVENT_TRACKING_CONFIG: JSON.stringify({
        backends: {
          first: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["*"] } },
          second: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["*"], backendName: "named" } },
        },
      }),
      EVENT_BUS: {
        idFromName: (name: string) => name,
        get: () => ({
          fetch: () => Promise.resolve(new Response(null, { status: 204 })),
          publish: (topic: string) => {
            calls.push(topic);
            return Promise.reject(new Error("the object is overloaded"));
          },
        }),
      },
    }),
    { logger },
  );
  assert.deepEqual(topics, ["first", "named"]);
  // The Worker's 202 waits for what send() returns: the bus is not part of it.
  assert.equal(tracker.send(tracker.createEvent("a")), undefined);
  await tracker.flush();
  assert.deepEqual(calls.sort(), ["first", "named"]);
  assert.equal(bus.failed, 2);
  assert.match(String((logger.errors[0].detail as Error).message), /the object is overloaded/);
  await tracker.close();
});
