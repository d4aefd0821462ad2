import assert from "node:assert/strict";
import {
  DROP,
  EventEmissionExit,
  InMemoryBackend,
  type Processor,
  RoutingBackend,
  Tracker,
  type TrackingEvent,
} from "../mod.ts";
import { recordingBackend, RecordingLogger } from "./_helpers.ts";

const sample: TrackingEvent = Object.freeze({
  id: "0",
  name: "sample.event",
  timestamp: "2026-01-01T00:00:00.000Z",
  context: {},
  data: {},
});

// spec §10.3 tests 1–4
Deno.test("RoutingBackend refuses a backend without a callable send, naming it and its value", () => {
  assert.throws(() => new RoutingBackend({ backends: { a: "b" as never } }), {
    name: "ImproperlyConfigured",
    message: 'RoutingBackend.backends.a: must be a backend (an object with a send method), got "b"',
  });
  assert.throws(
    () => new RoutingBackend({ backends: { a: {} as never } }),
    /^ImproperlyConfigured: RoutingBackend\.backends\.a: .*, got \{\}$/,
  );
  assert.throws(
    () => new RoutingBackend({ backends: { a: null as never } }),
    /^ImproperlyConfigured: RoutingBackend\.backends\.a: .*, got null$/,
  );
  assert.throws(
    () => new RoutingBackend({ backends: new Map([["m", 5 as never]]) }),
    /^ImproperlyConfigured: RoutingBackend\.backends\.m: must be a backend .*, got 5$/,
  );
  // Still a TypeError, for callers that caught those.
  assert.throws(() => new RoutingBackend({ backends: { a: "b" as never } }), TypeError);
  // A backend registered later is checked too.
  assert.throws(() => new RoutingBackend().registerBackend("a", {} as never), /Backend Object does not have/);
});

Deno.test("RoutingBackend refuses a processor that is not callable, and unknown options", () => {
  assert.throws(() => new RoutingBackend({ processors: [() => undefined, {} as never] }), {
    name: "ImproperlyConfigured",
    message:
      "RoutingBackend.processors[1]: must be a processor (a function, or an object with a process method), got {}",
  });
  assert.throws(
    () => new RoutingBackend({ processors: ["b" as never] }),
    /^ImproperlyConfigured: RoutingBackend\.processors\[0\]: .*"b"$/,
  );
  assert.throws(
    () => new RoutingBackend({ backends: [] as never }),
    /^ImproperlyConfigured: RoutingBackend\.backends: must be an object or Map of name to backend, got \[\]$/,
  );
  assert.throws(
    () => new RoutingBackend({ backend: {} } as never),
    /^ImproperlyConfigured: RoutingBackend\.backend: unknown option \(expected: backends, processors, logger\)$/,
  );
});

// spec §10.3 tests 5–10
Deno.test("RoutingBackend.send() runs each processor once and sends to every backend once", () => {
  const calls: TrackingEvent[] = [];
  const backends = Object.fromEntries([0, 1, 2, 3, 4].map((i) => [String(i), new InMemoryBackend()]));
  const router = new RoutingBackend({
    backends,
    processors: [0, 1, 2, 3, 4].map(() => (event: TrackingEvent) => (calls.push(event), event)),
  });
  router.send(sample);
  assert.equal(calls.length, 5);
  for (const call of calls) assert.deepEqual(call, sample);
  for (const backend of Object.values(backends)) assert.deepEqual(backend.events, [sample]);
});

// spec §10.3 test_backend_failure, and asynchronous failures
Deno.test("RoutingBackend.send() isolates a throwing or rejecting backend, logging and counting it", async () => {
  const logger = new RecordingLogger();
  const order: string[] = [];
  const router = new RoutingBackend({
    logger,
    backends: {
      "0": recordingBackend("0", order),
      "1": recordingBackend("1", order, () => {
        throw new Error("sync failure");
      }),
      "2": recordingBackend("2", order, () => Promise.reject(new Error("async failure"))),
      "3": recordingBackend("3", order),
    },
  });
  router.send(sample);
  await router.flush();
  assert.deepEqual(order, ["0", "1", "2", "3"]);
  assert.equal(logger.errors.length, 2);
  assert.match(logger.errors[0].message, /Unable to send event "sample.event" to backend "1"/);
  assert.match(logger.errors[1].message, /backend "2"/);
  const metrics: Record<string, { failed: number; delivered: number }> = {};
  router.collectMetrics("r", metrics as never);
  assert.equal(metrics["r/1"].failed, 1);
  assert.equal(metrics["r/2"].failed, 1);
  assert.equal(metrics["r/3"].delivered, 1);
  assert.equal(metrics.r.failed, 2);
  assert.equal(metrics.r.delivered, 2);
});

// spec §10.3 tests 11–13, 16
Deno.test("RoutingBackend.processEvent() chains processors: a returned event replaces the current one", () => {
  const sink = new InMemoryBackend();
  const router = new RoutingBackend({
    backends: { sink },
    processors: [
      { process: (event) => ({ ...event, name: "changed" }) },
      (event) => ({ ...event, data: { other: "other", to_remove: true } }),
      (event) => {
        const { to_remove, ...rest } = event.data as Record<string, unknown>;
        assert.equal(to_remove, true);
        return { ...event, data: rest };
      },
    ],
  });
  router.send(sample);
  assert.equal(sink.events[0].name, "changed");
  assert.deepEqual(sink.events[0].data, { other: "other" });
});

// spec §10.3 tests 14–15
Deno.test("RoutingBackend.processEvent() logs a failing processor and continues with the event as it was", () => {
  const logger = new RecordingLogger();
  const sink = new InMemoryBackend();
  const router = new RoutingBackend({
    logger,
    backends: { sink },
    processors: [
      () => {
        throw new RangeError("bad processor");
      },
      () => undefined,
      (event) => ({ ...event, name: "changed" }),
    ],
  });
  router.send(sample);
  assert.equal(sink.events[0].name, "changed");
  assert.equal(logger.errors.length, 1);
  assert.match(logger.errors[0].message, /Processor 0 \(function\) failed on event "sample.event"/);
  const metrics: Record<string, { processorErrors: number }> = {};
  router.collectMetrics("r", metrics as never);
  assert.equal(metrics.r.processorErrors, 1);
});

// spec §10.3 test_processor_abort
Deno.test("RoutingBackend.send() stops at EventEmissionExit or DROP: later processors and backends never run", () => {
  const drops: Processor[] = [() => {
    throw new EventEmissionExit();
  }, () => DROP];
  for (const drop of drops) {
    let later = 0;
    const sink = new InMemoryBackend();
    const router = new RoutingBackend({ backends: { sink }, processors: [drop, () => void later++] });
    router.send(sample);
    assert.equal(later, 0);
    assert.equal(sink.events.length, 0);
    const metrics: Record<string, { dropped: number; received: number }> = {};
    router.collectMetrics("r", metrics as never);
    assert.equal(metrics.r.dropped, 1);
    assert.equal(metrics.r.received, 1);
  }
});

// spec §10.3 test_nested_routing_with_abort
Deno.test("RoutingBackend: EventEmissionExit in a child router stops only that branch", () => {
  const left = new InMemoryBackend();
  const right = new InMemoryBackend();
  let aborts = 0;
  const tracker = new Tracker({
    backends: {
      left: new RoutingBackend({
        backends: { left },
        processors: [() => {
          aborts++;
          throw new EventEmissionExit();
        }],
      }),
      right: new RoutingBackend({ backends: { right } }),
    },
  });
  tracker.emit("e");
  assert.equal(aborts, 1);
  assert.equal(left.events.length, 0);
  assert.equal(right.events.length, 1);
});

// spec §10.3 test_backend_call_order, §2.1 sorted order
Deno.test("RoutingBackend calls backends in sorted name order, whatever the registration order", () => {
  const order: string[] = [];
  const router = new RoutingBackend({
    backends: Object.fromEntries(["b", "4", "a", "0", "C", "10", "9"].map((n) => [n, recordingBackend(n, order)])),
  });
  router.registerBackend("B", recordingBackend("B", order));
  router.send(sample);
  assert.deepEqual(order, ["0", "10", "4", "9", "B", "C", "a", "b"]);
});

Deno.test("RoutingBackend.registerBackend() of an existing name replaces it in place", () => {
  const first = new InMemoryBackend();
  const second = new InMemoryBackend();
  const router = new RoutingBackend({ backends: { a: first, b: new InMemoryBackend() } });
  router.registerBackend("a", second);
  assert.deepEqual([...router.backends.keys()], ["a", "b"]);
  router.send(sample);
  assert.equal(first.events.length, 0);
  assert.equal(second.events.length, 1);
});

// spec §10.17: a processor returning a falsy value
Deno.test("RoutingBackend.processEvent() keeps the event when a processor returns undefined", () => {
  const router = new RoutingBackend({ processors: [() => undefined, () => {}] });
  assert.equal(router.processEvent(sample), sample);
});

Deno.test("RoutingBackend: a processor's replacement is seen by its branch only", () => {
  const renamed = new InMemoryBackend();
  const untouched = new InMemoryBackend();
  const tracker = new Tracker({
    backends: {
      a: new RoutingBackend({ backends: { renamed }, processors: [(e) => ({ ...e, name: "renamed" })] }),
      b: new RoutingBackend({ backends: { untouched } }),
    },
  });
  tracker.emit("original");
  assert.equal(renamed.events[0].name, "renamed");
  assert.equal(untouched.events[0].name, "original");
});

Deno.test("RoutingBackend builds arbitrarily deep trees", () => {
  const leaf = new InMemoryBackend();
  let node = new RoutingBackend({ backends: { leaf } });
  for (let i = 0; i < 20; i++) node = new RoutingBackend({ backends: { [`level${i}`]: node } });
  new Tracker({ backends: { root: node } }).emit("deep");
  assert.equal(leaf.events.length, 1);
});

Deno.test("RoutingBackend.close() closes every backend even when one fails, then reports the failure", async () => {
  const closed: string[] = [];
  const logger = new RecordingLogger();
  const router = new RoutingBackend({
    logger,
    backends: {
      a: { send() {}, close: () => Promise.reject(new Error("cannot close")) },
      b: { send() {}, close: () => (closed.push("b"), Promise.resolve()) },
    },
  });
  await assert.rejects(router.close(), AggregateError);
  assert.deepEqual(closed, ["b"]);
  assert.match(logger.errors[0].message, /Backend "a" failed to close/);
});

Deno.test("RoutingBackend.flush() flushes a batching backend whose sends settle only when it writes", async () => {
  const waiting: (() => void)[] = [];
  const batching = {
    send: () => new Promise<void>((resolve) => waiting.push(resolve)),
    flush: () => {
      for (const resolve of waiting.splice(0)) resolve();
      return Promise.resolve();
    },
  };
  const router = new RoutingBackend({ backends: { batching } });
  router.send(sample);
  router.send(sample);
  await router.flush();
  const metrics: Record<string, { delivered: number }> = {};
  router.collectMetrics("r", metrics as never);
  assert.equal(metrics["r/batching"].delivered, 2);
});

Deno.test("RoutingBackend.send() settles per event: undefined when all take it at once, else once every child has", async () => {
  const sync = new RoutingBackend({ backends: { a: new InMemoryBackend(), b: new InMemoryBackend() } });
  assert.equal(sync.send(sample), undefined);

  let finish!: () => void;
  const order: string[] = [];
  const slow = { send: () => new Promise<void>((resolve) => finish = () => (order.push("slow"), resolve())) };
  const router = new RoutingBackend({ backends: { fast: new InMemoryBackend(), slow } });
  const settled = router.send(sample);
  assert.ok(settled instanceof Promise);
  settled.then(() => order.push("router"));
  await Promise.resolve();
  assert.deepEqual(order, []);
  finish();
  await settled;
  assert.deepEqual(order, ["slow", "router"]);
});

Deno.test("RoutingBackend.send() rejects with a child's failure, after logging and counting it; siblings still get the event", async () => {
  const logger = new RecordingLogger();
  const sibling = new InMemoryBackend();
  const failing = { send: () => Promise.reject(new Error("disk full")) };
  const router = new RoutingBackend({ backends: { failing, sibling }, logger });
  await assert.rejects(router.send(sample)!, /disk full/);
  assert.equal(sibling.events.length, 1);
  assert.equal(logger.errors.length, 1);
  const metrics: Record<string, { failed: number; delivered: number }> = {};
  router.collectMetrics("root", metrics as never);
  assert.equal(metrics["root/failing"].failed, 1);
  assert.equal(metrics["root/sibling"].delivered, 1);

  const throwing = new RoutingBackend({
    backends: {
      t: {
        send: () => {
          throw new Error("boom");
        },
      },
    },
    logger,
  });
  await assert.rejects(throwing.send(sample)!, /boom/);
});
