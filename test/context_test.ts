import assert from "node:assert/strict";
import { AsyncLocalStorage } from "node:async_hooks";
import { InMemoryBackend, Tracker } from "../mod.ts";
import { ContextStore, findAsyncLocalStorage, freezeContext, ScopeStack, SyncCellStorage } from "../src/context.ts";

function setup(): { tracker: Tracker; sink: InMemoryBackend } {
  const sink = new InMemoryBackend();
  return { tracker: new Tracker({ backends: { sink } }), sink };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

// spec §10.1 test_single_context
Deno.test("Tracker.enterContext() adds its keys to events until exitContext()", () => {
  const { tracker, sink } = setup();
  tracker.enterContext("single", { ck: "cv" });
  tracker.emit("a", { k: "v" });
  tracker.exitContext("single");
  tracker.emit("b");
  assert.deepEqual(sink.events.map((e) => e.context), [{ ck: "cv" }, {}]);
  assert.deepEqual(sink.events[0].data, { k: "v" });
});

// spec §10.1 test_context_override, §1.4
Deno.test("Tracker.context() nests: later-entered scopes win, and the merge is shallow", () => {
  const { tracker, sink } = setup();
  tracker.context("outer", { k: "v", k2: "v2", nested: { a: 1, b: 2 } }, () => {
    tracker.context("inner", { k: "override", nested: { a: 3 } }, () => tracker.emit("e"));
  });
  assert.deepEqual(sink.events[0].context, { k: "override", k2: "v2", nested: { a: 3 } });
});

// spec §1.4 [probe]: re-entering keeps the original position
Deno.test("Tracker.enterContext() of an existing name replaces it in its original position", () => {
  const { tracker } = setup();
  tracker.enterContext("outer", { a: 1, b: 1 });
  tracker.enterContext("inner", { a: 2 });
  tracker.enterContext("outer", { a: 3, b: 3 });
  assert.deepEqual(tracker.resolveContext(), { a: 2, b: 3 });
});

// spec §1.4 [probe]: no stack
Deno.test("Tracker.context() over an existing name removes that name afterwards", () => {
  const { tracker } = setup();
  tracker.enterContext("n", { a: 1 });
  tracker.context("n", { a: 2 }, () => assert.deepEqual(tracker.resolveContext(), { a: 2 }));
  assert.deepEqual(tracker.resolveContext(), {});
});

// spec §10.1 test_exception_in_context
Deno.test("Tracker.context() exits even when fn throws, and the error propagates", () => {
  const { tracker, sink } = setup();
  assert.throws(() =>
    tracker.context("foo", { a: 1 }, () => {
      throw new RangeError("boom");
    }), RangeError);
  tracker.emit("after");
  assert.deepEqual(sink.events[0].context, {});
});

Deno.test("Tracker.context() with an async fn lasts until its promise settles, then exits", async () => {
  const { tracker, sink } = setup();
  const result = await tracker.context("req", { id: 1 }, async () => {
    await tick();
    tracker.emit("inside");
    return 42;
  });
  assert.equal(result, 42);
  tracker.emit("outside");
  assert.deepEqual(sink.events.map((e) => e.context), [{ id: 1 }, {}]);
  await assert.rejects(
    tracker.context("req", { id: 2 }, async () => {
      await tick();
      throw new Error("late");
    }),
    /late/,
  );
  assert.deepEqual(tracker.resolveContext(), {});
});

Deno.test("Tracker.exitContext() of an unknown name throws, naming the active scopes", () => {
  const { tracker } = setup();
  tracker.enterContext("a", {});
  assert.throws(
    () => tracker.exitContext("missing"),
    /Cannot exit context "missing": it is not active \(active: "a"\)/,
  );
});

Deno.test("Tracker.enterContext() refuses a context that is not a plain object", () => {
  const { tracker } = setup();
  assert.throws(() => tracker.enterContext("n", 5 as unknown as Record<string, unknown>), TypeError);
  assert.throws(() => tracker.enterContext("n", [] as unknown as Record<string, unknown>), /got an array/);
  assert.throws(() => tracker.enterContext("n", { f: () => 1 }), /context\["n"\]\.f is a function/);
});

// spec §10.2, as async tasks instead of threads
Deno.test("Tracker.context() isolates 10,000 concurrent async tasks, each emitting after several awaits", async () => {
  const { tracker, sink } = setup();
  tracker.enterContext("process", { service: "lms" });
  const tasks = Array.from({ length: 10_000 }, (_, i) =>
    tracker.context("edx.request", { request: i }, async () => {
      await tick();
      await Promise.resolve();
      tracker.enterContext("task", { step: i % 7 });
      await tick();
      tracker.emit("task.event", { i });
    }));
  await Promise.all(tasks);
  assert.equal(sink.events.length, 10_000);
  for (const event of sink.events) {
    const i = (event.data as { i: number }).i;
    assert.deepEqual(event.context, { service: "lms", request: i, step: i % 7 });
  }
  assert.deepEqual(tracker.resolveContext(), { service: "lms" });
});

Deno.test("Tracker.context() of one tracker does not leak into another tracker", () => {
  const one = setup();
  const two = setup();
  one.tracker.context("a", { x: 1 }, () => {
    two.tracker.emit("e");
  });
  assert.deepEqual(two.sink.events[0].context, {});
});

Deno.test("Tracker.withContext() adds a scope to its view without changing the tracker", () => {
  const { tracker, sink } = setup();
  tracker.enterContext("outer", { a: 1, b: 1 });
  const view = tracker.withContext("request", { b: 2, c: 2 });
  const deeper = view.withContext("course", { c: 3 });
  view.emit("v");
  deeper.emit("d");
  tracker.emit("t");
  assert.deepEqual(sink.events.map((e) => e.context), [
    { a: 1, b: 2, c: 2 },
    { a: 1, b: 2, c: 3 },
    { a: 1, b: 1 },
  ]);
  assert.deepEqual(view.resolveContext(), { a: 1, b: 2, c: 2 });
  // The view follows the tracker's current scopes.
  tracker.enterContext("later", { d: 4 });
  view.emit("v2");
  assert.deepEqual(sink.events[3].context, { a: 1, b: 2, c: 2, d: 4 });
});

Deno.test("Tracker.withContext() over a name the tracker has replaces that scope entirely", () => {
  const { tracker } = setup();
  tracker.enterContext("request", { user: 1, path: "/a" });
  tracker.enterContext("course", { user: 9 });
  const view = tracker.withContext("request", { user: 2 });
  assert.deepEqual(view.resolveContext(), { user: 2 });
});

// Context storage per runtime: AsyncLocalStorage where the runtime has it (found without a static node: import),
// explicit synchronous scopes elsewhere (browsers).

Deno.test("ContextStore uses the runtime's AsyncLocalStorage, found through process.getBuiltinModule", () => {
  assert.equal(findAsyncLocalStorage(), AsyncLocalStorage);
  assert.equal(new ContextStore().async, true);
  assert.equal(new ContextStore(SyncCellStorage).async, false);
});

Deno.test("Without AsyncLocalStorage, ContextStore.run() scopes what fn runs synchronously, nested and on throw", () => {
  const store = new ContextStore(SyncCellStorage);
  store.enter("process", { service: "lms" });
  const seen: unknown[] = [];
  store.run("outer", { a: 1 }, () => {
    seen.push(store.stack.merged);
    store.run("inner", { a: 2, b: 2 }, () => seen.push(store.stack.merged));
    seen.push(store.stack.merged);
    assert.throws(() =>
      store.run("failing", { c: 3 }, () => {
        seen.push(store.stack.merged);
        throw new RangeError("boom");
      }), RangeError);
    seen.push(store.stack.merged);
  });
  seen.push(store.stack.merged);
  assert.deepEqual(seen, [
    { service: "lms", a: 1 },
    { service: "lms", a: 2, b: 2 },
    { service: "lms", a: 1 },
    { service: "lms", a: 1, c: 3 },
    { service: "lms", a: 1 },
    { service: "lms" },
  ]);
});

Deno.test("Without AsyncLocalStorage, an async fn sees its scope until its first await, then the process-wide scopes", async () => {
  const store = new ContextStore(SyncCellStorage);
  store.enter("process", { service: "lms" });
  const seen: unknown[] = [];
  const done = store.run("request", { id: 1 }, async () => {
    seen.push(store.stack.merged);
    await tick();
    seen.push(store.stack.merged);
    return 42;
  });
  seen.push(store.stack.merged);
  assert.equal(await done, 42);
  assert.deepEqual(seen, [{ service: "lms", id: 1 }, { service: "lms" }, { service: "lms" }]);
  // Explicit scopes (what withContext views carry) need no propagation at all.
  const request = ScopeStack.EMPTY.with("request", freezeContext("request", { id: 2 }));
  assert.deepEqual(store.stack.concat(request).merged, { service: "lms", id: 2 });
});
