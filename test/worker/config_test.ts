import assert from "node:assert/strict";
import {
  type AsyncRoutingBackend,
  type EventBusBackend,
  ImproperlyConfigured,
  LoggerBackend,
} from "@edx/event-tracking";
import type { MongoBackend } from "@edx/event-tracking/mongo";
import { CloudflareQueueTransport } from "@edx/event-tracking/cf-queue";
import { DurableObjectBus } from "@edx/event-tracking/durable-object";
import { buildCollector, type WorkerEnv } from "../../worker/_config.ts";
import { RecordingLogger } from "../_helpers.ts";

function env(vars: Partial<WorkerEnv> = {}): WorkerEnv {
  return {
    EVENTS_QUEUE: { sendBatch: () => Promise.resolve() },
    EVENT_BUS: {
      idFromName: (name: string) => name,
      get: () => ({ fetch: () => Promise.resolve(new Response(null, { status: 204 })) }),
    },
    ...vars,
  };
}

Deno.test("buildCollector() builds the default tree on the Queue and the Durable Object without EVENT_TRACKING_CONFIG", async () => {
  const { tracker, transports, bus } = buildCollector(env({ MONGODB_URI: "mongodb://127.0.0.1:1/tracking" }));
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
  const { tracker, transports } = buildCollector(env({ EVENT_TRACKING_CONFIG: JSON.stringify(config) }), logger);
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
    /backends.q.OPTIONS: unknown option "colour"/,
  );
  const { tracker } = buildCollector(env({
    EVENT_TRACKING_CONFIG: JSON.stringify({ backends: { db: { ENGINE: "mongo" } } }),
    MONGODB_URI: "mongodb://127.0.0.1:1/from_binding",
  }));
  assert.equal((tracker.getBackend("db") as MongoBackend).database, "from_binding");
  await tracker.close();
});

Deno.test("buildCollector() lists the event_bus topics in tree order; publishing does not hold up send()", async () => {
  const requests: string[] = [];
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
          fetch: (url: Request | string) => {
            requests.push(String(url));
            return Promise.resolve(new Response(null, { status: 503 }));
          },
        }),
      },
    }),
    new RecordingLogger(),
  );
  assert.deepEqual(topics, ["first", "named"]);
  // The Worker's 202 waits for what send() returns: the bus is not part of it.
  assert.equal(tracker.send(tracker.createEvent("a")), undefined);
  await tracker.flush();
  assert.deepEqual(requests.sort(), [
    "https://event-bus.internal/publish?topic=first",
    "https://event-bus.internal/publish?topic=named",
  ]);
  assert.equal(bus.failed, 2);
  await tracker.close();
});
