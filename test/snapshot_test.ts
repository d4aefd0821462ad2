/**
 * The snapshot `emit` takes of its data: an eager, deeply frozen copy of
 * JSON data, validated with the path of anything JSON cannot represent,
 * whichever way it is copied — spread-free narrow copies, templates for wide
 * objects, and copiers compiled for shapes seen COMPILE_AFTER times.
 *
 * @module
 */

import assert from "node:assert/strict";
import { InMemoryBackend, serializeEvent, Tracker, type TrackingEvent } from "../mod.ts";
import { allowCompiling, COMPILE_AFTER, compiledShapes, MAX_SHAPES, snapshot, WIDE } from "../src/_snapshot.ts";

function setup(): { tracker: Tracker; sink: InMemoryBackend } {
  const sink = new InMemoryBackend();
  return { tracker: new Tracker({ backends: { sink } }), sink };
}

let unique = 0;
/** Key names no other test uses, so that each test starts with shapes never seen (neither templated nor compiled). */
function fresh(prefix: string, count: number): string[] {
  const id = unique++;
  return Array.from({ length: count }, (_, i) => `${prefix}${id}_${i}`);
}

/** Builds an object key by key (`o[k] = v`): from 20 keys on, V8 keeps it in dictionary mode. */
function keyed(entries: [string, unknown][]): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  for (const [key, value] of entries) object[key] = value;
  return object;
}

/** Every object and array reachable from `value` is frozen. */
function assertDeeplyFrozen(value: unknown, path = "data"): void {
  if (typeof value !== "object" || value === null) return;
  assert.ok(Object.isFrozen(value), `${path} is not frozen`);
  for (const [key, item] of Object.entries(value)) assertDeeplyFrozen(item, `${path}.${key}`);
}

/** The event's JSON line, parsed, equals its data; and serializeEvent() equals JSON.stringify(). */
function assertConsistent(event: TrackingEvent): void {
  const line = serializeEvent(event);
  assert.equal(line, JSON.stringify(event));
  assert.deepEqual(JSON.parse(line).data, JSON.parse(JSON.stringify(event.data)));
}

/** Emits `make()` enough times for its shapes to be compiled; returns the last event. */
function emitUntilCompiled(tracker: Tracker, sink: InMemoryBackend, make: () => unknown): TrackingEvent {
  for (let i = 0; i <= COMPILE_AFTER; i++) tracker.emit("warm", make());
  sink.events.length = 0;
  tracker.emit("e", make());
  return sink.events[0];
}

/**
 * A payload with nested objects, an array of objects, and a wide object of
 * `keys`; the narrow objects' keys end with the wide object's first key, so
 * that each test has shapes of its own.
 */
function payload(keys: string[], build: (entries: [string, unknown][]) => Record<string, unknown>) {
  const [a, b, deep, deeper, x, n] = ["a", "b", "deep", "deeper", "x", "n"].map((key) => key + keys[0]);
  const wide = build(keys.map((key, i) => [key, i % 3 === 0 ? `s${i}` : i % 3 === 1 ? i : i % 2 === 0]));
  return build([
    ["wide", wide],
    ["list", [build([[a, 1], [b, [1, 2]]]), build([[a, 2], [b, []]])]],
    ["nested", build([[deep, build([[deeper, build([[x, "y"]])]])]])],
    [n, 1.5],
  ]);
}

const literalBuild = (entries: [string, unknown][]) => Object.fromEntries(entries);

for (
  const [label, build] of [
    ["literal", literalBuild],
    ["key-by-key", keyed],
  ] as const
) {
  for (const compiled of [false, true]) {
    const how = `${label} objects, ${compiled ? "after compiling" : "before compiling"}`;

    Deno.test(`snapshot of ${how}: equal, deeply frozen, independent of the caller's objects`, () => {
      const { tracker, sink } = setup();
      const keys = fresh("k", WIDE + 5);
      const compiledBefore = compiledShapes();
      const event = compiled
        ? emitUntilCompiled(tracker, sink, () => payload(keys, build))
        : (tracker.emit("e", payload(keys, build)), sink.events[0]);
      // Compiled: the wide shape, the three nested ones and the list's objects'.
      assert.equal(compiledShapes() - compiledBefore, compiled ? 6 : 0);
      const expected = JSON.parse(JSON.stringify(payload(keys, build)));
      assert.deepEqual(event.data, expected);
      assert.deepEqual(Object.keys((event.data as { wide: object }).wide), keys);
      assertDeeplyFrozen(event.data);
      assertConsistent(event);

      // Mutating the caller's objects after emit changes nothing in the event.
      const source = payload(keys, build) as {
        wide: Record<string, unknown>;
        list: Record<string, unknown[] | number>[];
        nested: Record<string, Record<string, Record<string, string>>>;
      } & Record<string, number>;
      const compiledNow = compiledShapes();
      tracker.emit("m", source);
      assert.equal(compiledShapes(), compiledNow);
      const taken = sink.events.at(-1)!;
      const line = serializeEvent(taken);
      source.wide[keys[0]] = "changed";
      source.wide.added = true;
      delete source.wide[keys[1]];
      source.list[0]["a" + keys[0]] = 99;
      (source.list[1]["b" + keys[0]] as unknown[]).push(3);
      source.list.push({});
      source.nested["deep" + keys[0]]["deeper" + keys[0]]["x" + keys[0]] = "changed";
      source["n" + keys[0]] = 0;
      assert.deepEqual(taken.data, expected);
      assert.equal(serializeEvent(taken), line);
    });

    Deno.test(`snapshot of ${how}: a TypeError names the path of a value JSON cannot represent`, () => {
      const { tracker, sink } = setup();
      const keys = fresh("e", WIDE + 2);
      const make = (bad: unknown) => {
        const user = build([["name", "a"], ["id", bad]]);
        return build([
          ["wide", build(keys.map((key, i) => [key, i === 7 ? user : i]))],
          ["list", [build([["ok", 1]]), build([["ok", bad]])]],
        ]);
      };
      if (compiled) emitUntilCompiled(tracker, sink, () => make(1));
      for (
        const [bad, message] of [
          [10n, `data.wide.${keys[7]}.id is a BigInt, which JSON cannot represent`],
          [() => {}, `data.wide.${keys[7]}.id is a function`],
          [Symbol("s"), `data.wide.${keys[7]}.id is a symbol`],
          [NaN, `data.wide.${keys[7]}.id is the number NaN`],
          [-Infinity, `data.wide.${keys[7]}.id is the number -Infinity`],
          [new Map(), `data.wide.${keys[7]}.id is an instance of Map`],
          [new Date("nope"), `data.wide.${keys[7]}.id is an invalid Date`],
        ] as const
      ) {
        assert.throws(() => tracker.emit("bad", make(bad)), (error: unknown) => {
          assert.ok(error instanceof TypeError);
          assert.match(error.message, /^Cannot emit event: /);
          assert.ok(error.message.includes(message), `${error.message} should name ${message}`);
          return true;
        });
      }
      // In an array of objects, after the first object is fine.
      const inList = build([["wide", build(keys.map((key) => [key, 1]))], ["list", [
        build([["ok", 1]]),
        build([["ok", 5n]]),
      ]]]);
      assert.throws(() => tracker.emit("bad", inList), /data\.list\[1\]\.ok is a BigInt/);
    });
  }
}

Deno.test("snapshot: the existing wording, and odd keys quoted in the path", () => {
  assert.throws(
    () => snapshot({ user: { id: 10n } }, "data"),
    new TypeError("Cannot emit event: data.user.id is a BigInt, which JSON cannot represent"),
  );
  assert.throws(() => snapshot({ "odd key": [{ "": NaN }] }, "data"), /data\["odd key"\]\[0\]\[""\] is the number NaN/);
  assert.throws(() => snapshot(5n, "data"), /^TypeError: Cannot emit event: data is a BigInt/);
  assert.throws(
    () => snapshot({ a: () => {} }, 'context["edx.request"]', false, "enter context"),
    /^TypeError: Cannot enter context: context\["edx\.request"\]\.a is a function/,
  );
});

Deno.test("snapshot: a Date becomes its ISO string, in objects, arrays and wide objects", () => {
  const at = new Date(Date.UTC(2012, 4, 1, 7, 27, 1, 200));
  const iso = "2012-05-01T07:27:01.200Z";
  const keys = fresh("d", WIDE);
  const { value, json } = snapshot({ at, list: [at], wide: keyed(keys.map((key) => [key, at])) }, "data", true);
  assert.deepEqual(value, { at: iso, list: [iso], wide: Object.fromEntries(keys.map((key) => [key, iso])) });
  assert.equal(json, JSON.stringify(value));
});

Deno.test("snapshot: keys whose value is undefined are left out; undefined and holes in arrays become null", () => {
  const keys = fresh("u", WIDE + 1);
  // deno-lint-ignore no-sparse-arrays
  const sparse = [1, , 3];
  sparse[5] = 6;
  const wide = keyed(keys.map((key, i) => [key, i % 2 === 0 ? undefined : i]));
  const { value, json } = snapshot({ a: undefined, b: 1, list: [undefined, sparse], wide }, "data", true);
  const expected = {
    b: 1,
    list: [null, [1, null, 3, null, null, 6]],
    wide: Object.fromEntries(keys.flatMap((key, i) => i % 2 === 0 ? [] : [[key, i]])),
  };
  assert.deepEqual(value, expected);
  assert.ok(!Object.hasOwn(value as object, "a"));
  assert.equal(json, JSON.stringify(expected));
  assertDeeplyFrozen(value);
});

Deno.test("snapshot: undefined keys are left out after compiling too", () => {
  const { tracker, sink } = setup();
  const keys = fresh("v", WIDE);
  let i = 0;
  const event = emitUntilCompiled(
    tracker,
    sink,
    () => keyed(keys.map((key, j) => [key, j === 3 && i++ > 0 ? undefined : j])),
  );
  assert.ok(!Object.hasOwn(event.data as object, keys[3]));
  assert.deepEqual(Object.keys(event.data as object), keys.filter((_, j) => j !== 3));
  assertDeeplyFrozen(event.data);
  assertConsistent(event);
});

Deno.test("snapshot: -0 stays -0 in the copy and is written 0, as JSON writes it", () => {
  const { value, json } = snapshot({ z: -0, list: [-0] }, "data", true);
  assert.ok(Object.is((value as { z: number }).z, -0));
  assert.ok(Object.is((value as { list: number[] }).list[0], -0));
  assert.equal(json, '{"z":0,"list":[0]}');
});

Deno.test("snapshot: an array's extra properties are left out, as JSON leaves them", () => {
  const list: unknown[] & { extra?: number } = [1, 2];
  list.extra = 3;
  const { value, json } = snapshot({ list }, "data", true);
  assert.deepEqual(value, { list: [1, 2] });
  assert.equal(json, '{"list":[1,2]}');
});

Deno.test("snapshot: getters are read once, whichever way the object is copied", () => {
  const { tracker, sink } = setup();
  for (const width of [2, WIDE + 1]) {
    const keys = fresh("g", width);
    let reads = 0;
    const make = () => {
      const object: Record<string, unknown> = {};
      for (const key of keys) object[key] = 1;
      Object.defineProperty(object, keys[1], { get: () => ++reads, enumerable: true });
      return object;
    };
    reads = 0;
    tracker.emit("e", make());
    assert.equal(reads, 1);
    assert.equal((sink.events.at(-1)!.data as Record<string, number>)[keys[1]], 1);
    const event = emitUntilCompiled(tracker, sink, make);
    reads = 0;
    tracker.emit("e", make());
    assert.equal(reads, 1);
    assert.ok(Object.isFrozen(event.data));
    assert.deepEqual(Object.getOwnPropertyDescriptor(event.data, keys[1])?.writable, false);
  }
  let reads = 0;
  const list = [1, 2];
  Object.defineProperty(list, 0, { get: () => ++reads, enumerable: true });
  tracker.emit("e", { list });
  assert.equal(reads, 1);
  assert.deepEqual(sink.events.at(-1)!.data, { list: [1, 2] });
});

Deno.test("snapshot: symbol keys are ignored — not validated, not copied, not written", () => {
  const secret = Symbol("secret");
  for (const width of [1, WIDE]) {
    const object: Record<string | symbol, unknown> = Object.fromEntries(fresh("y", width).map((key) => [key, 1]));
    object[secret] = { mutable: 10n };
    const { value, json } = snapshot({ object }, "data", true);
    const copy = (value as { object: Record<string | symbol, unknown> }).object;
    assert.equal(Object.getOwnPropertySymbols(copy).length, 0);
    assert.ok(!json!.includes("mutable"));
  }
});

Deno.test("snapshot: cycles are refused, shared objects are copied", () => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  assert.throws(
    () => snapshot({ nested: cyclic }, "data"),
    /data\.nested\.self is a reference to one of its own ancestors/,
  );
  const list: unknown[] = [1];
  list.push({ back: list });
  assert.throws(() => snapshot({ list }, "data"), /data\.list\[1\]\.back is a reference to one of its own ancestors/);
  const keys = fresh("c", WIDE);
  const wide: Record<string, unknown> = keyed(keys.map((key) => [key, 1]));
  wide[keys[4]] = { up: wide };
  assert.throws(() => snapshot(wide, "data"), new RegExp(`data\\.${keys[4]}\\.up is a reference`));
  // The same object twice (not a cycle) is fine.
  const shared = { x: 1 };
  const { value } = snapshot({ a: shared, b: [shared, shared] }, "data");
  assert.deepEqual(value, { a: { x: 1 }, b: [{ x: 1 }, { x: 1 }] });
});

Deno.test("snapshot: nests up to 64 objects and arrays deep, not more", () => {
  const nest = (levels: number) => {
    let value: unknown = "leaf";
    for (let i = levels - 1; i >= 0; i--) value = i % 2 === 0 ? { k: value } : [value];
    return value;
  };
  assert.doesNotThrow(() => snapshot(nest(64), "data"));
  assert.throws(() => snapshot(nest(65), "data"), (error: unknown) => {
    assert.ok(error instanceof TypeError);
    assert.match(error.message, /^Cannot emit event: data(\.k\[0\]){32} is nested deeper than 64 levels/);
    return true;
  });
});

Deno.test('snapshot: prototype-less objects are copied as plain objects, "__proto__" keys as own keys', () => {
  const bare = Object.assign(Object.create(null), { a: 1, b: { c: 2 } });
  const keys = fresh("p", WIDE);
  const wideBare = Object.assign(Object.create(null), Object.fromEntries(keys.map((key) => [key, 1])));
  const proto = JSON.parse('{"__proto__": {"x": 1}, "y": 2}');
  const wideProto = JSON.parse(`{"__proto__": 0, ${keys.map((key) => `"${key}": 1`).join(", ")}}`);
  const { value, json } = snapshot({ bare, wideBare, proto, wideProto }, "data", true);
  const copy = value as Record<string, Record<string, unknown>>;
  assert.deepEqual({ ...copy.bare }, { a: 1, b: { c: 2 } });
  assert.deepEqual(Object.keys(copy.wideBare), keys);
  for (const object of [copy.proto, copy.wideProto]) {
    assert.equal(Object.getPrototypeOf(object), Object.prototype);
    assert.ok(Object.hasOwn(object, "__proto__"));
  }
  assert.deepEqual(copy.proto.__proto__, { x: 1 });
  assert.equal(json, JSON.stringify({ bare, wideBare, proto, wideProto }));
  assertDeeplyFrozen(value);
});

Deno.test('snapshot: "__proto__" keys stay own keys after compiling', () => {
  const { tracker, sink } = setup();
  const keys = fresh("q", WIDE);
  const text = `{"__proto__": {"x": 1}, ${keys.map((key) => `"${key}": 1`).join(", ")}}`;
  const event = emitUntilCompiled(tracker, sink, () => JSON.parse(text));
  assert.equal(Object.getPrototypeOf(event.data), Object.prototype);
  assert.deepEqual((event.data as { __proto__: unknown }).__proto__, { x: 1 });
  assertConsistent(event);
});

Deno.test("snapshot: key order is kept, integer-like keys first as JavaScript orders them", () => {
  const keys = fresh("o", WIDE);
  const object = keyed([["b", 1], ["10", 2], ["a", 3], ["2", 4], ...keys.map((key): [string, unknown] => [key, 0])]);
  const { value, json } = snapshot(object, "data", true);
  assert.deepEqual(Object.keys(value as object), Object.keys(object));
  assert.equal(json, JSON.stringify(object));
});

Deno.test("snapshot: many shapes, past the shape registry's bound, are copied right", () => {
  const { tracker, sink } = setup();
  const hot = fresh("h", WIDE);
  for (let i = 0; i < MAX_SHAPES * 2 + 10; i++) {
    const own = fresh("x", WIDE);
    tracker.emit("e", keyed(own.map((key) => [key, i])));
    tracker.emit("e", keyed(hot.map((key) => [key, i])));
  }
  assert.equal(sink.events.length, (MAX_SHAPES * 2 + 10) * 2);
  sink.events.forEach((event, n) => {
    const i = Math.floor(n / 2);
    assert.deepEqual(Object.values(event.data as object), Array(WIDE).fill(i));
    assertDeeplyFrozen(event.data);
  });
});

Deno.test("snapshot: the same copies where code cannot be generated (templates only)", () => {
  const { tracker, sink } = setup();
  const keys = fresh("t", WIDE + 3);
  allowCompiling(false);
  try {
    const event = emitUntilCompiled(tracker, sink, () => payload(keys, keyed));
    assert.deepEqual(event.data, JSON.parse(JSON.stringify(payload(keys, keyed))));
    assertDeeplyFrozen(event.data);
    assertConsistent(event);
    assert.throws(() => tracker.emit("bad", { ...payload(keys, keyed), n: 1n }), /data\.n is a BigInt/);
  } finally {
    allowCompiling(true);
  }
});

Deno.test("snapshot: a getter that emits while its object is copied gets a snapshot of its own", () => {
  const { tracker, sink } = setup();
  const data = {
    list: [1, 2],
    get inner() {
      tracker.emit("inner", { nested: { list: ["x"] } });
      return { v: 1 };
    },
    after: [3],
  };
  tracker.emit("outer", data);
  assert.deepEqual(sink.events.map((e) => e.name), ["inner", "outer"]);
  assert.deepEqual(sink.events[0].data, { nested: { list: ["x"] } });
  assert.deepEqual(sink.events[1].data, { list: [1, 2], inner: { v: 1 }, after: [3] });
  for (const event of sink.events) {
    assertDeeplyFrozen(event.data);
    assertConsistent(event);
  }
});

Deno.test("snapshot: class instances are refused, naming the class", () => {
  class Point {
    x = 1;
  }
  assert.throws(() => snapshot({ p: new Point() }, "data"), /data\.p is an instance of Point/);
  assert.throws(() => snapshot({ s: new Set() }, "data"), /data\.s is an instance of Set/);
  assert.throws(() => snapshot({ b: new Uint8Array(1) }, "data"), /data\.b is an instance of Uint8Array/);
});
