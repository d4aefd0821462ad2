import assert from "node:assert/strict";
import {
  createTracker,
  EventBusBackend,
  InMemoryBackend,
  InProcessBus,
  NameAllowlistProcessor,
  Tracker,
} from "../../mod.ts";
import { RecordingLogger } from "../_helpers.ts";

const ALLOWED = "edx.course.enrollment.activated";

Deno.test("EventBusBackend publishes only allowed names; its consumer runs the processors, then the backends", async () => {
  const sink = new InMemoryBackend();
  const seen: string[] = [];
  const bus = new EventBusBackend({
    backendName: "xapi",
    eventBusTrackingLogs: [ALLOWED, "edx.course.enrollment.deactivated"],
    processors: [(event) => void seen.push(event.name), new NameAllowlistProcessor({ allowlist: [ALLOWED] })],
    backends: { sink },
  });
  const tracker = new Tracker({ backends: { xapi: bus } });
  tracker.emit(ALLOWED);
  tracker.emit("edx.course.enrollment.deactivated");
  tracker.emit("edx.ui.click");
  assert.deepEqual(seen, [], "processors run on the consumer side, not inside emit");
  await tracker.flush();
  assert.deepEqual(seen, [ALLOWED, "edx.course.enrollment.deactivated"]);
  assert.deepEqual(sink.events.map((e) => e.name), [ALLOWED]);
  const metrics = tracker.metrics();
  assert.deepEqual(
    [metrics["root/xapi"].received, metrics["root/xapi"].passed, metrics["root/xapi"].dropped],
    [3, 2, 1],
  );
  assert.equal(metrics["root/xapi/sink"].delivered, 1);
  await tracker.close();
});

Deno.test("EventBusBackend delivers each event once per consumer with several event-bus backends (never N×N)", async () => {
  const shared = new InProcessBus();
  const sinks = [new InMemoryBackend(), new InMemoryBackend(), new InMemoryBackend()];
  const tracker = new Tracker({
    backends: Object.fromEntries(sinks.map((sink, i) => [
      `bus${i}`,
      new EventBusBackend({
        backendName: `bus${i}`,
        transport: shared,
        eventBusTrackingLogs: [ALLOWED],
        backends: { sink },
      }),
    ])),
  });
  tracker.emit(ALLOWED);
  await tracker.flush();
  assert.deepEqual(sinks.map((sink) => sink.events.length), [1, 1, 1]);
});

Deno.test("EventBusBackend disabled publishes nothing and counts every event as dropped", async () => {
  const logger = new RecordingLogger();
  const sink = new InMemoryBackend();
  const bus = new EventBusBackend({ enabled: false, eventBusTrackingLogs: [ALLOWED], backends: { sink }, logger });
  const tracker = new Tracker({ backends: { bus } });
  tracker.emit(ALLOWED);
  await tracker.flush();
  assert.equal(sink.events.length, 0);
  assert.equal(tracker.metrics()["root/bus"].dropped, 1);
  assert.match(logger.warnings[0], /is disabled: it publishes nothing/);
});

Deno.test("EventBusBackend with consume: false only publishes; a consumer elsewhere receives", async () => {
  const transport = new InProcessBus();
  const producer = new EventBusBackend({
    backendName: "analytics",
    transport,
    consume: false,
    eventBusTrackingLogs: [ALLOWED],
  });
  const sink = new InMemoryBackend();
  const consumer = new EventBusBackend({ backendName: "analytics", transport, backends: { sink } });
  new Tracker({ backends: { producer } }).emit(ALLOWED);
  await transport.flush();
  assert.equal(sink.events.length, 1);
  await consumer.close();
});

Deno.test("EventBusBackend refuses a string for eventBusTrackingLogs (the reference would test substrings)", () => {
  assert.throws(() => new EventBusBackend({ eventBusTrackingLogs: "edx.course" as never }), {
    name: "ImproperlyConfigured",
    message: 'EventBusBackend.eventBusTrackingLogs: must be an array of event names, got "edx.course"',
  });
  assert.throws(() => new EventBusBackend({ eventBusTrackingLogs: ["a", 1] as never }), {
    message: "EventBusBackend.eventBusTrackingLogs[1]: must be a string, got 1",
  });
});

Deno.test("InProcessBus reports a failing subscriber and still delivers to the others", async () => {
  const logger = new RecordingLogger();
  const bus = new InProcessBus({ logger });
  const names: string[] = [];
  bus.subscribe("t", () => {
    throw new Error("bad subscriber");
  });
  const unsubscribe = bus.subscribe("t", (event) => void names.push(event.name));
  bus.publish("t", { id: "1", name: "a", timestamp: "", context: {}, data: {} });
  await bus.flush();
  unsubscribe();
  bus.publish("t", { id: "2", name: "b", timestamp: "", context: {}, data: {} });
  await bus.close();
  assert.deepEqual(names, ["a"]);
  assert.match(logger.errors[0].message, /Event bus subscriber of "t" failed on event "a"/);
});

Deno.test("createTracker() builds event_bus from the reference's engine and setting names", async () => {
  const logger = new RecordingLogger();
  const tracker = createTracker({
    backends: {
      xapi: {
        ENGINE: "eventtracking.backends.event_bus.EventBusBackend",
        OPTIONS: {
          SEND_TRACKING_EVENT_EMITTED_SIGNAL: true,
          EVENT_BUS_TRACKING_LOGS: [ALLOWED],
          backends: { xapi: { ENGINE: "memory" } },
        },
      },
      caliper: {
        ENGINE: "eventtracking.backends.event_bus.EventBusRoutingBackend",
        OPTIONS: { event_bus_tracking_logs: [ALLOWED], backend_name: "caliper_topic" },
      },
    },
  }, { logger });
  const xapi = tracker.getBackend("xapi") as EventBusBackend;
  assert.equal(xapi.backendName, "xapi");
  assert.deepEqual([...xapi.eventBusTrackingLogs], [ALLOWED]);
  assert.equal((tracker.getBackend("caliper") as EventBusBackend).backendName, "caliper_topic");
  tracker.emit(ALLOWED);
  await tracker.close();
  assert.equal((xapi.consumer.backends.get("xapi") as InMemoryBackend).events.length, 1);
  assert.throws(
    () =>
      createTracker({
        backends: { x: { ENGINE: "event_bus", OPTIONS: { enabled: true, SEND_TRACKING_EVENT_EMITTED_SIGNAL: true } } },
      }),
    /^ImproperlyConfigured: backends\.x\.OPTIONS: "SEND_TRACKING_EVENT_EMITTED_SIGNAL" and "enabled" are the same option: give one$/,
  );
  assert.throws(
    () => createTracker({ backends: { x: { ENGINE: "event_bus", OPTIONS: { EVENT_BUS_TRACKING_LOGS: "a" } } } }),
    /^ImproperlyConfigured: backends\.x\.OPTIONS\.EVENT_BUS_TRACKING_LOGS: must be an array of event names, got "a"$/,
  );
  // The reference's setting names belong to configurations, not to the constructor.
  assert.throws(
    () => new EventBusBackend({ EVENT_BUS_TRACKING_LOGS: ["a"] } as never),
    /^ImproperlyConfigured: EventBusBackend\.EVENT_BUS_TRACKING_LOGS: unknown option/,
  );
});

Deno.test('EventBusBackend with "*" in eventBusTrackingLogs publishes every name', async () => {
  const sink = new InMemoryBackend();
  const tracker = new Tracker({
    backends: { bus: new EventBusBackend({ eventBusTrackingLogs: ["*"], backends: { sink } }) },
  });
  tracker.emit("a");
  tracker.emit("b");
  await tracker.close();
  assert.deepEqual(sink.events.map((e) => e.name), ["a", "b"]);
});
