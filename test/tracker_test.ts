import assert from "node:assert/strict";
import {
  emit,
  getTracker,
  InMemoryBackend,
  registerTracker,
  serializeEvent,
  Tracker,
  type TrackingEvent,
} from "../mod.ts";
import { RecordingLogger } from "./_helpers.ts";

function setup(): { tracker: Tracker; sink: InMemoryBackend } {
  const sink = new InMemoryBackend();
  return { tracker: new Tracker({ backends: { sink } }), sink };
}

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

// spec §10.1 test_event_simple_event_without_data
Deno.test("Tracker.emit() sends name, empty data and empty context", () => {
  const { tracker, sink } = setup();
  tracker.emit("edx.test");
  assert.equal(sink.events.length, 1);
  const [event] = sink.events;
  assert.equal(event.name, "edx.test");
  assert.deepEqual(event.data, {});
  assert.deepEqual(event.context, {});
});

// spec §10.1 test_event_simple_event_without_type / _or_data
Deno.test("Tracker.emit() names an event without a name 'unknown'", () => {
  const { tracker, sink } = setup();
  tracker.emit(undefined, { k: "v" });
  tracker.emit();
  tracker.emit("");
  assert.deepEqual(sink.events.map((e) => e.name), ["unknown", "unknown", "unknown"]);
  assert.deepEqual(sink.events[0].data, { k: "v" });
  assert.deepEqual(sink.events[1].data, {});
});

// spec §10.1 test_event_simple_event_with_data; §1.3 non-dict data passes through
Deno.test("Tracker.emit() keeps data as given, and falsy data becomes {}", () => {
  const { tracker, sink } = setup();
  tracker.emit("a", { k: "v" });
  tracker.emit("b", [1]);
  tracker.emit("c", "str");
  tracker.emit("d", 0);
  tracker.emit("e", null);
  assert.deepEqual(sink.events.map((e) => e.data), [{ k: "v" }, [1], "str", {}, {}]);
});

Deno.test("Tracker.emit() returns the event's UUIDv7 id and stamps an ISO-8601 UTC timestamp", () => {
  const { tracker, sink } = setup();
  const before = Date.now();
  const ids = Array.from({ length: 1000 }, (_, i) => tracker.emit("e", { i }));
  assert.deepEqual(sink.events.map((e) => e.id), ids);
  assert.equal(new Set(ids).size, ids.length);
  for (const event of sink.events) {
    assert.match(event.id, UUID_V7);
    assert.match(event.timestamp, ISO_UTC);
    assert.equal(event.timestamp.length, 24);
  }
  // Time-ordered: ids sort in emit order, and their timestamp is the emit time.
  assert.deepEqual([...ids].sort(), ids);
  const ms = parseInt(ids[0].slice(0, 8) + ids[0].slice(9, 13), 16);
  assert.ok(ms >= before && ms <= Date.now());
  assert.equal(new Date(ms).toISOString(), sink.events[0].timestamp);
});

Deno.test("Tracker.emit() refuses data JSON cannot represent, naming its path, and sends nothing", () => {
  const { tracker, sink } = setup();
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  const cases: [unknown, RegExp][] = [
    [{ user: { id: 10n } }, /data\.user\.id is a BigInt/],
    [{ f() {} }, /data\.f is a function/],
    [{ list: [1, Symbol("s")] }, /data\.list\[1\] is a symbol/],
    [{ nested: cyclic }, /data\.nested\.self is a reference to one of its own ancestors/],
    [{ m: new Map() }, /data\.m is an instance of Map/],
    [{ "odd key": { n: NaN } }, /data\["odd key"\]\.n is the number NaN/],
    [{ when: new Date("nope") }, /data\.when is an invalid Date/],
  ];
  for (const [data, message] of cases) {
    assert.throws(() => tracker.emit("bad", data), (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, message);
      return true;
    });
  }
  assert.equal(sink.events.length, 0);
});

Deno.test("Tracker.emit() refuses a non-string name", () => {
  const { tracker } = setup();
  assert.throws(() => tracker.emit(42 as unknown as string), TypeError);
});

Deno.test("Tracker.emit() stores a Date as its ISO string", () => {
  const { tracker, sink } = setup();
  tracker.emit("d", { at: new Date(Date.UTC(2012, 4, 1, 7, 27, 1, 200)) });
  assert.deepEqual(sink.events[0].data, { at: "2012-05-01T07:27:01.200Z" });
});

Deno.test("Tracker.emit() snapshots: later changes to the caller's data or context never reach an event", () => {
  const { tracker, sink } = setup();
  const data = { nested: { list: [1, 2] }, value: "before" };
  const context = { user: { id: 1 } };
  tracker.enterContext("request", context);
  tracker.emit("e", data);
  data.value = "after";
  data.nested.list.push(3);
  context.user.id = 2;
  tracker.emit("e2");
  assert.deepEqual(sink.events[0].data, { nested: { list: [1, 2] }, value: "before" });
  assert.deepEqual(sink.events[0].context, { user: { id: 1 } });
  assert.deepEqual(sink.events[1].context, { user: { id: 1 } });
});

Deno.test("Tracker.emit() events are deeply frozen, so one branch cannot change what another sees", () => {
  const seen: unknown[] = [];
  const tracker = new Tracker({
    logger: new RecordingLogger(),
    backends: {
      a_mutator: {
        send(event: TrackingEvent) {
          (event.data as { nested: { list: number[] } }).nested.list.push(99);
        },
      },
      b_reader: { send: (event: TrackingEvent) => void seen.push(event.data) },
    },
  });
  tracker.emit("e", { nested: { list: [1] } });
  assert.deepEqual(seen, [{ nested: { list: [1] } }]);
  assert.ok(Object.isFrozen((seen[0] as { nested: { list: number[] } }).nested.list));
});

// spec §10.1 test_global_tracker, test_missing_tracker
Deno.test("emit() goes to the registered default tracker; getTracker() of an unknown name throws", () => {
  const { tracker, sink } = setup();
  registerTracker(tracker);
  assert.equal(getTracker(), tracker);
  emit("global.event", { a: 1 });
  assert.equal(sink.events[0].name, "global.event");
  assert.throws(() => getTracker("foobar"), /Cannot get tracker "foobar"/);
  registerTracker(tracker, "named");
  assert.equal(getTracker("named"), tracker);
});

Deno.test("registerTracker() refuses something that is not a Tracker", () => {
  assert.throws(() => registerTracker({} as Tracker), TypeError);
});

Deno.test("Tracker without backends emits silently", () => {
  const tracker = new Tracker();
  assert.match(tracker.emit("nobody.listens"), /^[0-9a-f-]{36}$/);
});

Deno.test("Tracker.getBackend() returns a root backend and throws for an unknown name", () => {
  const { tracker, sink } = setup();
  assert.equal(tracker.getBackend("sink"), sink);
  assert.throws(() => tracker.getBackend("nope"), /Cannot get backend "nope": no such backend \(configured: "sink"\)/);
  assert.deepEqual([...tracker.backends.keys()], ["sink"]);
  assert.deepEqual(tracker.processors, []);
});

Deno.test("Tracker.close() flushes and closes backends; emits afterwards throw", async () => {
  const calls: string[] = [];
  const tracker = new Tracker({
    backends: {
      slow: {
        send: () => new Promise<void>((resolve) => setTimeout(() => (calls.push("delivered"), resolve()), 5)),
        flush: () => (calls.push("flush"), Promise.resolve()),
        close: () => (calls.push("close"), Promise.resolve()),
      },
    },
  });
  tracker.emit("a");
  await tracker.close();
  // flush() is asked for while deliveries settle (a batching backend writes then); close() comes after both.
  assert.deepEqual(calls.slice().sort(), ["close", "delivered", "flush"]);
  assert.equal(calls[2], "close");
  assert.throws(() => tracker.emit("late"), /Cannot emit event "late": the tracker is closed/);
});

Deno.test("Tracker.flush() waits for asynchronous deliveries", async () => {
  let delivered = 0;
  const tracker = new Tracker({
    backends: {
      later: { send: () => new Promise<void>((resolve) => setTimeout(() => (delivered++, resolve()), 2)) },
    },
  });
  for (let i = 0; i < 10; i++) tracker.emit("a");
  await tracker.flush();
  assert.equal(delivered, 10);
  assert.equal(tracker.metrics()["root/later"].delivered, 10);
});

Deno.test("Tracker.emit() names the data itself when it is a bad top-level value", () => {
  const { tracker } = setup();
  assert.throws(() => tracker.emit("e", 5n), /^TypeError: Cannot emit event: data is a BigInt/);
  assert.throws(() => tracker.emit("e", Symbol("x")), /data is a symbol/);
});

Deno.test("serializeEvent() of an emitted event equals JSON.stringify of it", () => {
  const { tracker, sink } = setup();
  tracker.enterContext("scope", { list: [1, { a: "é\u2028" }], quote: '"' });
  tracker.emit('name "with" quotes', { arr: [[1], { b: [true, null] }], s: "\n", d: new Date(0) });
  tracker.emit("plain", "just a string");
  for (const event of sink.events) assert.equal(serializeEvent(event), JSON.stringify(event));
  assert.equal(
    serializeEvent({ ...sink.events[0], name: "copied" }),
    JSON.stringify({ ...sink.events[0], name: "copied" }),
  );
});
