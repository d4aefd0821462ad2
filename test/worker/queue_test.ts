import assert from "node:assert/strict";
import {
  AsyncRoutingBackend,
  type DeadLetter,
  InMemoryBackend,
  Tracker,
  type TrackingEvent,
} from "@edx/event-tracking";
import {
  type CloudflareQueueMessage,
  type CloudflareQueueSendRequest,
  CloudflareQueueTransport,
  MAX_BATCH_BYTES,
  MAX_BATCH_MESSAGES,
  receiveQueueBatch,
} from "@edx/event-tracking/cloudflare";
import { recordingBackend, RecordingLogger } from "../_helpers.ts";

/** A fake Queue binding that records each sendBatch call, serialised as the platform would. */
function fakeQueue(fail = 0) {
  const calls: { body: Record<string, unknown>; bytes: number; delaySeconds?: number }[][] = [];
  return {
    calls,
    sendBatch(messages: Iterable<CloudflareQueueSendRequest>): Promise<void> {
      if (fail-- > 0) return Promise.reject(new Error("Queue unavailable"));
      calls.push([...messages].map((message) => {
        assert.equal(message.contentType, "json");
        const json = JSON.stringify(message.body);
        return {
          body: JSON.parse(json),
          bytes: new TextEncoder().encode(json).length,
          delaySeconds: message.delaySeconds,
        };
      }));
      return Promise.resolve();
    },
  };
}

/** A Queue message as a consumer receives it, recording what the consumer did with it. */
function delivered(id: string, body: unknown, attempts = 1) {
  const outcome: { acked: boolean; retried?: { delaySeconds?: number } } = { acked: false };
  const message: CloudflareQueueMessage = {
    id,
    body,
    attempts,
    ack: () => void (outcome.acked = true),
    retry: (options = {}) => void (outcome.retried = options),
  };
  return { message, outcome };
}

function branch(
  transport: CloudflareQueueTransport,
  backends: Record<string, InMemoryBackend | ReturnType<typeof recordingBackend>>,
  deadLetter = new InMemoryBackend(),
) {
  const backend = new AsyncRoutingBackend({
    transport,
    backends,
    deadLetter,
    backoff: { initialMs: 1_500, maxMs: 1_500 },
    maxAttempts: 3,
    random: () => 1,
    logger: new RecordingLogger(),
  });
  return { backend, deadLetter, tracker: new Tracker({ backends: { queue: backend }, logger: new RecordingLogger() }) };
}

Deno.test("CloudflareQueueTransport.enqueue() sends batches of at most 100 messages and 256 KB", async () => {
  const queue = fakeQueue();
  const { tracker } = branch(new CloudflareQueueTransport({ queue, path: "backends.queue" }), {});
  for (let i = 0; i < 250; i++) tracker.emit("small", { i });
  for (let i = 0; i < 5; i++) tracker.emit("large", { text: "é".repeat(50_000) }); // 100 KB each in UTF-8
  await tracker.flush();
  assert.deepEqual(queue.calls.map((call) => call.length), [100, 100, 52, 2, 1]);
  for (const call of queue.calls) {
    assert.ok(call.length <= MAX_BATCH_MESSAGES);
    assert.ok(call.reduce((sum, message) => sum + message.bytes, 0) <= MAX_BATCH_BYTES);
  }
  assert.deepEqual(queue.calls[0][0].body, {
    path: "backends.queue",
    attempts: 0,
    event: queue.calls[0][0].body.event,
  });
  assert.equal((queue.calls[0][0].body.event as TrackingEvent).name, "small");
});

Deno.test("CloudflareQueueTransport.enqueue() refuses an event over 128 KB, which the branch dead-letters", async () => {
  const queue = fakeQueue();
  const logger = new RecordingLogger();
  const transport = new CloudflareQueueTransport({ queue, path: "backends.queue", logger });
  const { tracker, deadLetter } = branch(transport, {});
  tracker.emit("huge", { text: "x".repeat(130_000) });
  tracker.emit("fine");
  await tracker.flush();
  assert.deepEqual(queue.calls.flat().map((message) => (message.body.event as TrackingEvent).name), ["fine"]);
  assert.deepEqual(deadLetter.events.map((event) => event.name), ["huge"]);
  assert.equal(tracker.metrics()["root/queue"].deadLettered, 1);
  assert.match(logger.warnings[0], /over the 128000-byte limit/);
  const letter = deadLetter.events[0] as DeadLetter;
  assert.match(
    letter.deadLetter.error,
    /^RangeError: message of \d+ bytes, over the 128000-byte limit of Cloudflare Queues$/,
  );
});

Deno.test("CloudflareQueueTransport.enqueue() counts a 4-byte character as 4 bytes against the 128 KB limit", async () => {
  const queue = fakeQueue();
  const transport = new CloudflareQueueTransport({ queue, path: "backends.queue", logger: new RecordingLogger() });
  const { tracker, deadLetter } = branch(transport, {});
  tracker.emit("emoji", { text: "😀".repeat(32_000) }); // 64,000 UTF-16 units, 128,000 bytes of UTF-8
  tracker.emit("accented", { text: "é".repeat(60_000) }); // 120,000 bytes
  await tracker.flush();
  assert.deepEqual(deadLetter.events.map((event) => event.name), ["emoji"]);
  assert.deepEqual(queue.calls.flat().map((message) => (message.body.event as TrackingEvent).name), ["accented"]);
});

Deno.test("CloudflareQueueTransport.receive() acks delivered messages and retries failed ones with the backoff", async () => {
  const queue = fakeQueue();
  const transport = new CloudflareQueueTransport({ queue, path: "backends.queue" });
  const sink = recordingBackend("sink", [], (event) => {
    if (event.name === "bad") throw new Error("sink down");
  });
  const { tracker, deadLetter } = branch(transport, { sink });
  tracker.emit("good");
  tracker.emit("bad");
  await tracker.flush();
  const [good, bad] = queue.calls[0].map((sent, i) => delivered(`m${i}`, sent.body));
  const lastTry = delivered("m2", queue.calls[0][1].body, 3);
  await transport.receive([good.message, bad.message, lastTry.message]);

  assert.deepEqual(sink.events.map((event) => event.name), ["good", "bad", "bad"]);
  assert.deepEqual(good.outcome, { acked: true });
  // 1,500 ms of backoff, rounded up to whole seconds.
  assert.deepEqual(bad.outcome, { acked: false, retried: { delaySeconds: 2 } });
  // The third delivery reaches maxAttempts (3): the branch dead-letters the event and the message is acked.
  assert.deepEqual(lastTry.outcome, { acked: true });
  assert.deepEqual(deadLetter.events.map((event) => [event.name, (event as DeadLetter).deadLetter.attempts]), [[
    "bad",
    3,
  ]]);
  assert.equal(transport.depth, 0);
});

Deno.test("CloudflareQueueTransport.receive() retries a message it cannot read", async () => {
  const logger = new RecordingLogger();
  const transport = new CloudflareQueueTransport({ queue: fakeQueue(), path: "backends.queue", logger });
  const sink = new InMemoryBackend();
  branch(transport, { sink });
  const garbage = delivered("m1", { path: "backends.queue", attempts: 0, event: { name: 1 } });
  const stranger = delivered("m2", { path: "backends.other", attempts: 0, event: {} });
  await transport.receive([garbage.message, stranger.message]);
  assert.deepEqual(garbage.outcome, { acked: false, retried: {} });
  assert.deepEqual(stranger.outcome, { acked: false, retried: {} });
  assert.equal(sink.events.length, 0);
  assert.equal(logger.errors.length, 2);
  assert.match(logger.errors[1].message, /belongs to "backends.other"/);
});

Deno.test("receiveQueueBatch() hands each message to the branch its path names and retries the others", async () => {
  const queue = fakeQueue();
  const a = new CloudflareQueueTransport({ queue, path: "backends.a" });
  const b = new CloudflareQueueTransport({ queue, path: "backends.b" });
  const sinkA = new InMemoryBackend();
  const sinkB = new InMemoryBackend();
  const tracker = new Tracker({
    backends: {
      a: new AsyncRoutingBackend({ transport: a, backends: { sinkA }, deadLetter: new InMemoryBackend() }),
      b: new AsyncRoutingBackend({ transport: b, backends: { sinkB }, deadLetter: new InMemoryBackend() }),
    },
  });
  tracker.emit("x");
  await tracker.flush();
  const messages = queue.calls.flat().map((sent, i) => delivered(`m${i}`, sent.body));
  const unknown = delivered("m9", { path: "backends.gone", attempts: 0, event: {} });
  const logger = new RecordingLogger();
  await receiveQueueBatch(
    { queue: "edx-events", messages: [...messages, unknown].map((m) => m.message) },
    new Map([["backends.a", a], ["backends.b", b]]),
    logger,
  );
  assert.equal(sinkA.events.length, 1);
  assert.equal(sinkB.events.length, 1);
  assert.ok(messages.every((m) => m.outcome.acked));
  assert.deepEqual(unknown.outcome, { acked: false, retried: {} });
  assert.match(logger.errors[0].message, /no async_routing branch at "backends.gone"/);
});

Deno.test("CloudflareQueueTransport logs and counts the messages sendBatch keeps refusing, and settles them with the error", async () => {
  const logger = new RecordingLogger();
  const queue = fakeQueue(3);
  const transport = new CloudflareQueueTransport({
    queue,
    path: "backends.queue",
    logger,
    sendBackoff: { initialMs: 0 },
  });
  const { tracker } = branch(transport, {});
  const sent = tracker.send(tracker.createEvent("lost"));
  assert.ok(sent instanceof Promise);
  await assert.rejects(sent, /Queue unavailable/);
  assert.equal(transport.lost, 1);
  assert.equal(queue.calls.length, 0);
  assert.match(logger.errors[0].message, /lost 1 message\(s\): sendBatch failed 3 times .*"name":"lost"/s);
  await tracker.close();
});

Deno.test("CloudflareQueueTransport settles a message once sendBatch has stored it, trying sendAttempts times", async () => {
  const queue = fakeQueue(1);
  let release!: () => void;
  const stored = new Promise<void>((resolve) => release = resolve);
  const slow = {
    async sendBatch(messages: Iterable<CloudflareQueueSendRequest>) {
      await stored;
      return queue.sendBatch(messages);
    },
  };
  const transport = new CloudflareQueueTransport({
    queue: slow,
    path: "backends.queue",
    sendAttempts: 2,
    sendBackoff: { initialMs: 0 },
  });
  const { tracker } = branch(transport, {});
  let settled = false;
  const sent = tracker.send(tracker.createEvent("kept"))!.then(() => settled = true);
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(settled, false, "not settled before sendBatch resolves");
  assert.equal(transport.depth, 1);
  release();
  await sent;
  // The first call failed, the second stored it.
  assert.deepEqual(queue.calls.flat().map((message) => (message.body.event as TrackingEvent).name), ["kept"]);
  assert.equal(transport.lost, 0);
  await tracker.close();
});

Deno.test("CloudflareQueueTransport checks sendAttempts and sendBackoff", () => {
  const queue = fakeQueue();
  assert.throws(() => new CloudflareQueueTransport({ queue, path: "p", sendAttempts: 0 }), /'sendAttempts' must be/);
  assert.throws(
    () => new CloudflareQueueTransport({ queue, path: "p", sendBackoff: { initialMs: -1 } }),
    /initialMs: must be a non-negative number/,
  );
});

Deno.test("CloudflareQueueTransport.abandon() returns the messages not yet sent and refuses new ones", async () => {
  const queue = fakeQueue();
  const transport = new CloudflareQueueTransport({ queue, path: "backends.queue" });
  const event = (id: string): TrackingEvent => ({ id, name: id, timestamp: "", context: {}, data: {} });
  transport.start(() => Promise.resolve());
  assert.ok(transport.enqueue({ event: event("a"), attempts: 0 }));
  assert.ok(transport.enqueue({ event: event("b"), targets: ["sink"], attempts: 1 }));
  const abandoned = transport.abandon();
  assert.deepEqual(abandoned.map((message) => [message.event.id, message.targets, message.attempts]), [
    ["a", undefined, 0],
    ["b", ["sink"], 1],
  ]);
  assert.equal(transport.enqueue({ event: event("c"), attempts: 0 }), false);
  assert.equal(transport.lastRefusal, "queue closed");
  await transport.flush();
  assert.equal(queue.calls.length, 0);
  assert.equal(transport.depth, 0);
});

/** A branch with sinks `a` and `b`, where `b` fails, and its transport told their names. */
function twoSinks(queue: ReturnType<typeof fakeQueue>, known = true) {
  // The transport exists before its branch: the names are read when a retry needs them.
  const owner: { backend?: AsyncRoutingBackend } = {};
  const transport = new CloudflareQueueTransport({
    queue,
    path: "backends.queue",
    sendBackoff: { initialMs: 0 },
    logger: new RecordingLogger(),
    backendNames: known ? () => owner.backend?.backends.keys() : undefined,
  });
  const a = new InMemoryBackend();
  const b = recordingBackend("b", [], () => {
    throw new Error("b down");
  });
  const built = branch(transport, { a, b });
  owner.backend = built.backend;
  return { ...built, transport, a, b };
}

Deno.test("CloudflareQueueTransport.retry() of fewer targets than the message's acks it and sends a new message for them", async () => {
  const queue = fakeQueue();
  const { tracker, transport, a, b } = twoSinks(queue);
  await tracker.send(tracker.createEvent("x"));
  const first = delivered("m1", queue.calls[0][0].body);
  await transport.receive([first.message]);
  assert.equal(a.events.length, 1);
  assert.equal(b.events.length, 1);
  // a has the event: the Queue message is acked, and a new one owes it to b only, after the backoff.
  assert.deepEqual(first.outcome, { acked: true });
  const retry = queue.calls[1][0];
  assert.deepEqual(retry.body, { path: "backends.queue", attempts: 1, targets: ["b"], event: retry.body.event });
  assert.equal((retry.body.event as TrackingEvent).name, "x");
  assert.equal(retry.delaySeconds, 2);

  // Its delivery goes to b alone; b failing again is a retry of the same targets: the platform's.
  const second = delivered("m2", JSON.parse(JSON.stringify(retry.body)));
  await transport.receive([second.message]);
  assert.equal(a.events.length, 1);
  assert.equal(b.events.length, 2);
  assert.deepEqual(second.outcome, { acked: false, retried: { delaySeconds: 2 } });
  assert.equal(queue.calls.length, 2);
  assert.equal(transport.depth, 0);
  await tracker.close();
});

Deno.test("CloudflareQueueTransport.retry() falls back to the platform retry when the new message cannot be sent", async () => {
  const queue = fakeQueue();
  const { tracker, transport } = twoSinks(queue);
  await tracker.send(tracker.createEvent("x"));
  const body = queue.calls[0][0].body;
  queue.sendBatch = fakeQueue(3).sendBatch;
  const first = delivered("m1", body);
  await transport.receive([first.message]);
  // sendBatch failed 3 times: the whole message is retried by the platform, so a gets the event again (at-least-once).
  assert.deepEqual(first.outcome, { acked: false, retried: { delaySeconds: 2 } });
  assert.equal(transport.lost, 0);
  assert.equal(transport.depth, 0);
  await tracker.close();
});

Deno.test("CloudflareQueueTransport.retry() leaves a message to the platform when its branch's backends are not known", async () => {
  const queue = fakeQueue();
  const { tracker, transport } = twoSinks(queue, false);
  await tracker.send(tracker.createEvent("x"));
  const first = delivered("m1", queue.calls[0][0].body);
  await transport.receive([first.message]);
  assert.deepEqual(first.outcome, { acked: false, retried: { delaySeconds: 2 } });
  assert.equal(queue.calls.length, 1);
  // A message that names its targets is compared with them.
  const named = delivered("m2", { ...queue.calls[0][0].body, targets: ["a", "b"] });
  await transport.receive([named.message]);
  assert.deepEqual(named.outcome, { acked: true });
  assert.deepEqual(queue.calls[1][0].body.targets, ["b"]);
  await tracker.close();
});

Deno.test("CloudflareQueueTransport.retry() sends a message not in delivery again, with its delay", async () => {
  const queue = fakeQueue();
  const transport = new CloudflareQueueTransport({ queue, path: "backends.queue" });
  const event: TrackingEvent = { id: "1", name: "a", timestamp: "", context: {}, data: {} };
  transport.retry({ event, targets: ["sink"], attempts: 2 }, 2_500);
  await transport.flush();
  assert.deepEqual(queue.calls[0][0].body, { path: "backends.queue", attempts: 2, targets: ["sink"], event });
  assert.equal(queue.calls[0][0].delaySeconds, 3);
});
