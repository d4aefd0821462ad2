import assert from "node:assert/strict";
import { AsyncRoutingBackend, InMemoryBackend, Tracker } from "../../mod.ts";
import { createCollectorApp } from "../../src/http/mod.ts";
import { RecordingLogger } from "../_helpers.ts";
import { auth, runApiCases } from "./_api_cases.ts";

runApiCases("createCollectorApp() in-process", (limits) => {
  const sink = new InMemoryBackend();
  const tracker = new Tracker({ backends: { sink } });
  const app = createCollectorApp({ tracker, token: "s3cret-token", limits, logger: new RecordingLogger() });
  return Promise.resolve({
    request: (path, init) => Promise.resolve(app.request(path, init)),
    events: () => sink.events,
    host: "localhost",
    close: () => tracker.close(),
  });
});

Deno.test("createCollectorApp() with no token configured refuses every authenticated request with 401", async () => {
  const app = createCollectorApp({ tracker: new Tracker() });
  const response = await app.request("/v1/events", {
    method: "POST",
    body: "{}",
    headers: { authorization: "Bearer x" },
  });
  assert.equal(response.status, 401);
  assert.match((await response.json()).message, /No token is configured/);
});

Deno.test("createCollectorApp() accepts several clients' tokens and records which client sent an event", async () => {
  const sink = new InMemoryBackend();
  const app = createCollectorApp({
    tracker: new Tracker({ backends: { sink } }),
    token: { lms: "t-lms", studio: "t-studio" },
  });
  await app.request("/v1/events", {
    method: "POST",
    headers: { authorization: "Bearer t-studio" },
    body: '{"name":"a"}',
  });
  assert.equal(sink.events[0].context.client, "studio");
});

Deno.test("createCollectorApp() answers 503 once the tracker is closed, and 404 when it has no bus", async () => {
  const tracker = new Tracker();
  const app = createCollectorApp({ tracker, token: "s3cret-token" });
  await tracker.close();
  const response = await app.request("/v1/events", { method: "POST", headers: auth, body: '{"name":"a"}' });
  assert.equal(response.status, 503);
  assert.equal((await app.request("/v1/bus/subscribe", { headers: auth })).status, 404);
});

Deno.test("createCollectorApp() answers an internal error with a plain 500 that hides its text, and logs it", async () => {
  const logger = new RecordingLogger();
  const app = createCollectorApp({
    tracker: new Tracker(),
    token: "s3cret-token",
    logger,
    busSubscribe: () => {
      throw new Error("secret internals");
    },
  });
  const response = await app.request("/v1/bus/subscribe", { headers: auth });
  assert.equal(response.status, 500);
  const text = await response.text();
  assert.doesNotMatch(text, /secret internals/);
  assert.equal(logger.errors.length, 1);
});

Deno.test("createCollectorApp() refuses an empty token and bad limits", () => {
  assert.throws(() => createCollectorApp({ tracker: new Tracker(), token: "" }), TypeError);
  assert.throws(() => createCollectorApp({ tracker: new Tracker(), limits: { maxBatchSize: 0 } }), RangeError);
});

Deno.test("createCollectorApp() sheds load with 503 and Retry-After while a queue that would drop is nearly full", async () => {
  const sink = new InMemoryBackend();
  const queued = new AsyncRoutingBackend({
    backends: { sink },
    queueSize: 10,
    overflow: "drop_newest",
    deadLetter: new InMemoryBackend(),
  });
  const tracker = new Tracker({ backends: { queued } });
  const app = createCollectorApp({ tracker, token: "s3cret-token" });
  const post = (n: number) =>
    app.request("/v1/events", {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ events: Array.from({ length: n }, () => ({ name: "a" })) }),
    });
  assert.equal((await post(9)).status, 202);
  assert.equal(tracker.saturation(), 0.9);
  const refused = await post(1);
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get("retry-after"), "1");
  assert.equal((await refused.json()).error, "overloaded");
  await tracker.flush();
  assert.equal((await post(1)).status, 202);
  await tracker.close();
  assert.equal(sink.events.length, 10);
});

Deno.test("createCollectorApp() keeps answering 202 while a branch whose overflow is dead-lettered is full", async () => {
  const sink = new InMemoryBackend();
  const deadLetter = new InMemoryBackend();
  const queued = new AsyncRoutingBackend({ backends: { sink }, queueSize: 10, deadLetter });
  const tracker = new Tracker({ backends: { queued } });
  const app = createCollectorApp({ tracker, token: "s3cret-token" });
  const response = await app.request("/v1/events", {
    method: "POST",
    headers: auth,
    body: JSON.stringify({ events: Array.from({ length: 15 }, () => ({ name: "a" })) }),
  });
  assert.equal(response.status, 202);
  assert.equal(tracker.saturation(), 0, "a full queue loses nothing while its dead letters can be written");
  await tracker.close();
  assert.equal(sink.events.length, 10);
  assert.equal(deadLetter.events.length, 5, "the overflow went to the branch's own dead letters");
  assert.equal(tracker.metrics()["root/queued"].deadLettered, 5);
});
