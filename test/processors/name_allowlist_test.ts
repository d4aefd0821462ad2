import assert from "node:assert/strict";
import { DROP, ImproperlyConfigured, NameAllowlistProcessor, type TrackingEvent } from "../../mod.ts";

const named = (name: string): TrackingEvent => ({ id: "0", name, timestamp: "", context: {}, data: {} });

// spec §10.15 tests 1–4
Deno.test("NameAllowlistProcessor passes listed names and drops the rest", () => {
  const processor = new NameAllowlistProcessor({ whitelist: ["A", "C"] });
  assert.equal(processor.process(named("A")), undefined);
  assert.equal(processor.process(named("C")), undefined);
  assert.equal(processor.process(named("B")), DROP);
  assert.equal(new NameAllowlistProcessor({ allowlist: [] }).process(named("A")), DROP);
});

// spec §10.15 tests 5–8
Deno.test("NameAllowlistProcessor refuses a missing, non-iterable or string list", () => {
  const names = "must be an array, Set or object of event names";
  const cases: [unknown, string][] = [
    [10, `NameAllowlistProcessor.whitelist: ${names}, got 10`],
    ["foobar", `NameAllowlistProcessor.whitelist: ${names}, got "foobar"`],
    [null, `NameAllowlistProcessor.whitelist: ${names}, got null`],
    [["a", 5], "NameAllowlistProcessor.whitelist[1]: must be a string, got 5"],
  ];
  for (const [bad, message] of cases) {
    assert.throws(
      () => new NameAllowlistProcessor({ whitelist: bad as never }),
      (error: unknown) =>
        error instanceof ImproperlyConfigured && error instanceof TypeError && error.message === message,
    );
  }
  assert.throws(() => new NameAllowlistProcessor({ whitelist: undefined }), {
    message:
      'NameAllowlistProcessor.allowlist: must be an array, Set or object of event names (or give it as "whitelist"), got undefined',
  });
  assert.throws(() => new NameAllowlistProcessor({ allowlist: ["a"], whitelist: ["b"] }), {
    message: 'NameAllowlistProcessor: "allowlist" and "whitelist" (its reference name) are the same option: give one',
  });
  assert.throws(() => new NameAllowlistProcessor(undefined as never), ImproperlyConfigured);
});

// spec §10.15 tests 9–10
Deno.test("NameAllowlistProcessor accepts a Set, or an object whose keys are the names", () => {
  const fromSet = new NameAllowlistProcessor({ allowlist: new Set(["A"]) });
  assert.equal(fromSet.process(named("A")), undefined);
  assert.equal(fromSet.process(named("B")), DROP);
  const fromObject = new NameAllowlistProcessor({ whitelist: { A: "x" } });
  assert.equal(fromObject.process(named("A")), undefined);
  assert.equal(fromObject.process(named("B")), DROP);
});

// spec §8.2 batches
Deno.test("NameAllowlistProcessor filters a batch into a new array and never drops it", () => {
  const processor = new NameAllowlistProcessor({ allowlist: ["A"] });
  const batch = [named("A"), named("B"), named("A")];
  assert.deepEqual(processor.process(batch).map((e) => e.name), ["A", "A"]);
  assert.deepEqual(processor.process([named("B")]), []);
});

Deno.test("NameAllowlistProcessor drops an event without a name (fails closed)", () => {
  const processor = new NameAllowlistProcessor({ allowlist: ["A"] });
  assert.equal(processor.process({} as TrackingEvent), DROP);
});
