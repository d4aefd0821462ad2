import assert from "node:assert/strict";
import { InProcessQueue, type QueueMessage } from "../../mod.ts";

const message = (name: string, attempts = 0): QueueMessage => ({
  event: { id: name, name, timestamp: "", context: {}, data: {} },
  attempts,
});

Deno.test("InProcessQueue refuses messages beyond its capacity, counting delayed and in-flight ones", async () => {
  const queue = new InProcessQueue({ capacity: 3, batchSize: 2, concurrency: 1 });
  const batches: string[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  queue.start(async (batch) => {
    batches.push(batch.map((m) => m.event.name));
    await gate;
  });
  assert.ok(queue.enqueue(message("a")));
  assert.ok(queue.enqueue(message("b")));
  assert.ok(queue.enqueue(message("c")));
  assert.equal(queue.enqueue(message("d")), false);
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(queue.depth, 3, "two in flight, one waiting");
  assert.equal(queue.enqueue(message("e")), false);
  release();
  await queue.close();
  assert.deepEqual(batches, [["a", "b"], ["c"]]);
  assert.equal(queue.enqueue(message("late")), false, "closed");
});

Deno.test("InProcessQueue.retry() delivers the message again after the delay, and flush waits for it", async () => {
  const queue = new InProcessQueue();
  const seen: number[] = [];
  queue.start((batch) => {
    for (const m of batch) {
      seen.push(m.attempts);
      if (m.attempts < 2) queue.retry({ ...m, attempts: m.attempts + 1 }, 2);
    }
    return Promise.resolve();
  });
  queue.enqueue(message("a"));
  await queue.flush();
  assert.deepEqual(seen, [0, 1, 2]);
  assert.equal(queue.depth, 0);
});

Deno.test("InProcessQueue refuses a bad capacity or batch size, and a second consumer", () => {
  assert.throws(
    () => new InProcessQueue({ capacity: 0 }),
    /^ImproperlyConfigured: InProcessQueue\.capacity: must be a positive integer, got 0$/,
  );
  assert.throws(() => new InProcessQueue({ batchSize: 2.5 }), {
    name: "ImproperlyConfigured",
    message: "InProcessQueue.batchSize: must be a positive integer, got 2.5",
  });
  const queue = new InProcessQueue();
  queue.start(() => Promise.resolve());
  assert.throws(() => queue.start(() => Promise.resolve()), /has a consumer already/);
});

Deno.test("InProcessQueue keeps up to `concurrency` batches in delivery at once", async () => {
  const queue = new InProcessQueue({ batchSize: 2, concurrency: 2 });
  const started: string[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  queue.start(async (batch) => {
    started.push(batch.map((m) => m.event.name));
    await gate;
  });
  for (const name of ["a", "b", "c", "d", "e"]) queue.enqueue(message(name));
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.deepEqual(started, [["a", "b"], ["c", "d"]]);
  release();
  await queue.close();
  assert.deepEqual(started, [["a", "b"], ["c", "d"], ["e"]]);
});

Deno.test("InProcessQueue.abandon() hands back what waits or is delayed for a retry, and refuses new messages", async () => {
  const queue = new InProcessQueue({ capacity: 10, batchSize: 1, concurrency: 1 });
  let release!: () => void;
  const delivered: string[] = [];
  queue.start(async (batch) => {
    delivered.push(...batch.map((m) => m.event.name));
    await new Promise<void>((resolve) => release = resolve);
  });
  queue.enqueue(message("in-delivery"));
  queue.enqueue(message("waiting"));
  queue.retry(message("delayed", 1), 60_000);
  await new Promise((resolve) => setTimeout(resolve, 10));
  const abandoned = queue.abandon().map((m) => m.event.name);
  assert.deepEqual(abandoned.sort(), ["delayed", "waiting"]);
  assert.deepEqual(delivered, ["in-delivery"]);
  assert.equal(queue.enqueue(message("late")), false);
  assert.equal(queue.lastRefusal, "queue closed");
  release();
  await queue.flush();
  assert.equal(queue.depth, 0);
});
