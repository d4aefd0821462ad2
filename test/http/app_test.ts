import assert from "node:assert/strict";
import { AsyncRoutingBackend, InMemoryBackend, Tracker, type TrackingEvent } from "../../mod.ts";
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

/** A request body that records whether anyone read it. */
function watchedBody(text: string): { body: ReadableStream<Uint8Array>; read: () => boolean } {
  let read = false;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      read = true;
      controller.enqueue(new TextEncoder().encode(text));
      controller.close();
    },
  }, { highWaterMark: 0 });
  return { body, read: () => read };
}

Deno.test("createCollectorApp() sheds load with 503 and Retry-After while a queue that would drop is nearly full, before reading the body", async () => {
  // The sink holds every event until the gate opens, so that the queue stays as full as the test made it.
  const sink = new InMemoryBackend();
  const gate = Promise.withResolvers<void>();
  const held = { send: (event: TrackingEvent) => gate.promise.then(() => sink.send(event)) };
  const queued = new AsyncRoutingBackend({
    backends: { held },
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
  const { body, read } = watchedBody('{"name":"a"}');
  const refused = await app.request("/v1/events", { method: "POST", headers: auth, body });
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get("retry-after"), "1");
  assert.equal((await refused.json()).error, "overloaded");
  assert.equal(read(), false, "the body of a refused request is not read");
  gate.resolve();
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

Deno.test("createCollectorApp() answers 503 to a closed tracker without reading the body", async () => {
  const tracker = new Tracker();
  const app = createCollectorApp({ tracker, token: "s3cret-token" });
  await tracker.close();
  const { body, read } = watchedBody('{"name":"a"}');
  const response = await app.request("/v1/events", { method: "POST", headers: auth, body });
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("retry-after"), "1");
  assert.deepEqual(await response.json(), {
    error: "unavailable",
    message: "The collector is shutting down; retry later",
  });
  assert.equal(read(), false);
});

Deno.test("createCollectorApp() answers each 401 with WWW-Authenticate: Bearer and the JSON body", async () => {
  const app = createCollectorApp({ tracker: new Tracker(), token: "s3cret-token" });
  const cases: [Record<string, string>, string, string][] = [
    [{}, 'Bearer realm="event-tracking"', "Missing bearer token: send 'Authorization: Bearer <token>'"],
    [
      { authorization: "Basic abc" },
      'Bearer error="invalid_request"',
      "Missing bearer token: send 'Authorization: Bearer <token>'",
    ],
    [
      { authorization: "Bearer two words" },
      'Bearer error="invalid_request"',
      "Missing bearer token: send 'Authorization: Bearer <token>'",
    ],
    [{ authorization: "Bearer wrong" }, 'Bearer error="invalid_token"', "Wrong bearer token"],
    [{ authorization: "Bearer s3cret-token-" }, 'Bearer error="invalid_token"', "Wrong bearer token"],
  ];
  for (const [headers, challenge, message] of cases) {
    const response = await app.request("/v1/events", { method: "POST", headers, body: '{"name":"a"}' });
    assert.equal(response.status, 401, JSON.stringify(headers));
    assert.equal(response.headers.get("www-authenticate"), challenge);
    assert.match(response.headers.get("content-type")!, /^application\/json/);
    assert.deepEqual(await response.json(), { error: "unauthorized", message });
  }
  const lowercase = await app.request("/v1/events", {
    method: "POST",
    headers: { authorization: "bearer s3cret-token" },
    body: '{"name":"a"}',
  });
  assert.equal(lowercase.status, 202, "the scheme is case-insensitive");
  await lowercase.body?.cancel();
});

Deno.test("createCollectorApp() refuses a token that is not an RFC 6750 bearer token", () => {
  for (const token of ["has space", "p@ss", "é", "a=b"]) {
    assert.throws(() => createCollectorApp({ tracker: new Tracker(), token }), TypeError, token);
  }
  assert.throws(
    () => createCollectorApp({ tracker: new Tracker(), token: { lms: "ok", studio: "not ok" } }),
    /"studio"/,
  );
  createCollectorApp({ tracker: new Tracker(), token: "AZaz09-._~+/==" });
});

Deno.test("createCollectorApp() takes the body as JSON whatever its Content-Type (sendBeacon, curl -d)", async () => {
  const sink = new InMemoryBackend();
  const app = createCollectorApp({ tracker: new Tracker({ backends: { sink } }), token: "s3cret-token" });
  const types = [
    undefined,
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "application/json",
    "application/json; charset=utf-8",
    "application/vnd.api+json",
  ];
  for (const type of types) {
    const headers: Record<string, string> = type === undefined ? { ...auth } : { ...auth, "content-type": type };
    const response = await app.request("/v1/events", {
      method: "POST",
      headers,
      body: JSON.stringify({ name: "typed", data: { type: type ?? null } }),
    });
    assert.equal(response.status, 202, String(type));
    await response.body?.cancel();
  }
  assert.deepEqual(sink.events.map((e) => (e.data as { type: string }).type), types.map((t) => t ?? null));
  // A Worker's incoming request has immutable headers.
  const frozen = new Request("http://localhost/v1/events", {
    method: "POST",
    headers: { ...auth, "content-type": "text/plain" },
    body: '{"name":"frozen"}',
  });
  frozen.headers.set = () => {
    throw new TypeError("Can't modify immutable headers.");
  };
  const fromWorker = await app.fetch(frozen);
  assert.equal(fromWorker.status, 202);
  await fromWorker.body?.cancel();
  assert.equal(sink.events.at(-1)!.name, "frozen");
  const malformed = await app.request("/v1/events", {
    method: "POST",
    headers: { ...auth, "content-type": "text/plain" },
    body: "{nope",
  });
  assert.equal(malformed.status, 400);
  const body = await malformed.json();
  assert.equal(body.error, "invalid_json");
  assert.match(body.message, /^The request body is not JSON: ./);
});

Deno.test("createCollectorApp() nests data and context up to 32 levels and names every problem of an event", async () => {
  const sink = new InMemoryBackend();
  const app = createCollectorApp({ tracker: new Tracker({ backends: { sink } }), token: "s3cret-token" });
  const nest = (levels: number) => {
    let value: unknown = 1;
    for (let i = 0; i < levels; i++) value = i % 2 ? [value] : { k: value };
    return value;
  };
  const post = (body: unknown) =>
    app.request("/v1/events", { method: "POST", headers: auth, body: JSON.stringify(body) });
  const fine = await post({ events: [{ name: "a", data: nest(32), context: nest(31) as Record<string, unknown> }] });
  assert.equal(fine.status, 202);
  await fine.body?.cancel();
  const refused = await post({ events: [{ name: "a" }, { name: 7, data: nest(33), context: { k: nest(32) } }] });
  assert.equal(refused.status, 400);
  const body = await refused.json();
  assert.equal(body.error, "invalid_events");
  assert.deepEqual(body.errors, [
    { index: 1, field: "name", message: "must be a string, got number" },
    { index: 1, field: "data", message: "must not nest deeper than 32 levels" },
    { index: 1, field: "context", message: "must not nest deeper than 32 levels" },
  ]);
  assert.equal(sink.events.length, 1);
});

Deno.test("createCollectorApp() measures an event as its JSON: at the limit it passes, a byte over it is refused", async () => {
  const limit = 200;
  const app = createCollectorApp({
    tracker: new Tracker(),
    token: "s3cret-token",
    limits: { maxEventBytes: limit },
  });
  const post = (event: unknown) =>
    app.request("/v1/events", { method: "POST", headers: auth, body: JSON.stringify({ events: [event] }) });
  const sized = (bytes: number, char: string) => {
    const overhead = JSON.stringify({ name: "a", data: "" }).length;
    const width = new TextEncoder().encode(char).byteLength;
    return { name: "a", data: char.repeat((bytes - overhead) / width) };
  };
  for (const char of ["x", "é", "😀"]) {
    const bytes = limit - ((limit - 22) % new TextEncoder().encode(char).byteLength);
    const at = await post(sized(bytes, char));
    assert.equal(at.status, 202, char);
    await at.body?.cancel();
  }
  const over = await post(sized(limit + 1, "x"));
  assert.equal(over.status, 400);
  assert.deepEqual((await over.json()).errors, [
    { index: 0, field: "", message: `is ${limit + 1} bytes, over the limit of ${limit}` },
  ]);
  // Measured as the JSON the event becomes: `1e20` takes 21 bytes there, not 4.
  const expanding = await post({ name: "a", data: Array.from({ length: 12 }, () => 1e20) });
  assert.equal(expanding.status, 400);
  assert.match((await expanding.json()).errors[0].message, /^is \d+ bytes, over the limit of 200$/);
  const control = await post({ name: "a", data: "\u0001".repeat(30) });
  assert.equal(control.status, 400, "a control character takes 6 bytes as JSON");
  await control.body?.cancel();
});

Deno.test("createCollectorApp() answers an HTTPException of its own handlers as itself, or as JSON when it has no response", async () => {
  const { HTTPException } = await import("hono/http-exception");
  for (
    const [thrown, status, body] of [
      [new HTTPException(404, { message: "no such topic" }), 404, { error: "not_found", message: "no such topic" }],
      [new HTTPException(418), 418, { error: "http_418", message: "http_418" }],
    ] as const
  ) {
    const app = createCollectorApp({
      tracker: new Tracker(),
      token: "s3cret-token",
      busSubscribe: () => {
        throw thrown;
      },
    });
    const response = await app.request("/v1/bus/subscribe", { headers: auth });
    assert.equal(response.status, status);
    assert.deepEqual(await response.json(), body);
  }
});

/** Runs `fn` while counting the SHA-256 digests Web Crypto computes. */
async function countingDigests<T>(fn: (count: () => number) => Promise<T>): Promise<T> {
  const subtle = crypto.subtle;
  const original = subtle.digest;
  let digests = 0;
  Object.defineProperty(subtle, "digest", {
    configurable: true,
    value: (...args: Parameters<SubtleCrypto["digest"]>) => {
      digests++;
      return original.apply(subtle, args);
    },
  });
  try {
    return await fn(() => digests);
  } finally {
    delete (subtle as { digest?: unknown }).digest;
  }
}

Deno.test("createCollectorApp() digests a valid token once, then knows it; other tokens are digested every time", async () => {
  const sink = new InMemoryBackend();
  const app = createCollectorApp({
    tracker: new Tracker({ backends: { sink } }),
    token: { lms: "t-lms", studio: "t-studio" },
  });
  const post = async (token: string) => {
    const response = await app.request("/v1/events", {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      body: '{"name":"a"}',
    });
    await response.body?.cancel();
    return response.status;
  };
  await countingDigests(async (digests) => {
    assert.equal(await post("t-studio"), 202);
    assert.equal(digests(), 3, "the two configured tokens, then the one given");
    assert.equal(await post("t-studio"), 202);
    assert.equal(await post("t-studio"), 202);
    assert.equal(digests(), 3, "a token verified once is not digested again");
    for (const wrong of ["nope", "t-studio-", "t-stud", "nope"]) assert.equal(await post(wrong), 401, wrong);
    assert.equal(digests(), 7, "every unknown token is compared as a digest, each time it comes");
    assert.equal(await post("t-lms"), 202);
    assert.equal(await post("t-lms"), 202);
    assert.equal(digests(), 8);
  });
  assert.deepEqual(sink.events.map((event) => event.context.client), [
    "studio",
    "studio",
    "studio",
    "lms",
    "lms",
  ]);
});

Deno.test("createCollectorApp() gives every request its own scope, shared by the events of its batch", async () => {
  const sink = new InMemoryBackend();
  const tracker = new Tracker({ backends: { sink } });
  tracker.enterContext("service", { service: "collector", path: "overridden" });
  const app = createCollectorApp({ tracker, token: "s3cret-token" });
  const post = (id: string, body: unknown) =>
    app.request("/v1/events", {
      method: "POST",
      headers: { ...auth, "x-request-id": id },
      body: JSON.stringify(body),
    });
  const responses = await Promise.all([
    post("req-1", { events: [{ name: "a" }, { name: "b", context: { course_id: "c1", request_id: "spoofed" } }] }),
    post("req-2", { name: "c" }),
  ]);
  assert.deepEqual(responses.map((response) => response.status), [202, 202]);
  const bodies = await Promise.all(responses.map((response) => response.json()));
  assert.deepEqual(bodies.map((body) => body.accepted), [2, 1]);
  const byName = Object.fromEntries(sink.events.map((event) => [event.name, event]));
  assert.deepEqual(bodies.flatMap((body) => body.ids), ["a", "b", "c"].map((name) => byName[name].id));
  assert.equal(byName.a.context.request_id, "req-1");
  assert.equal(byName.b.context.request_id, "req-1", "the request scope wins over the event's own context");
  assert.equal(byName.b.context.course_id, "c1");
  assert.equal(byName.c.context.request_id, "req-2");
  for (const event of sink.events) {
    assert.equal(event.context.service, "collector", "process-wide scopes still apply");
    assert.equal(event.context.path, "/v1/events");
    assert.equal(event.context.client, "default");
  }
  assert.deepEqual(tracker.resolveContext(), { service: "collector", path: "overridden" });
  await tracker.close();
});

Deno.test("createCollectorApp() records the client's Accept-Language in the request scope, as the LMS does", async () => {
  const sink = new InMemoryBackend();
  const tracker = new Tracker({ backends: { sink } });
  const app = createCollectorApp({ tracker, token: "s3cret-token" });
  const response = await app.request("/v1/events", {
    method: "POST",
    headers: { ...auth, "accept-language": "fr-CA,fr;q=0.9" },
    body: JSON.stringify({ name: "edx.ui.click" }),
  });
  assert.equal(response.status, 202);
  assert.equal(sink.events[0].context.accept_language, "fr-CA,fr;q=0.9");
  await tracker.close();
});

Deno.test("createCollectorApp() answers 503 while a delivering branch's queue is nearly full, instead of dead-lettering the overflow", async () => {
  let release: () => void = () => {};
  let gate = Promise.resolve();
  const slow = { send: () => gate };
  const deadLetter = new InMemoryBackend();
  const queued = new AsyncRoutingBackend({ backends: { slow }, queueSize: 10, deadLetter });
  const tracker = new Tracker({ backends: { queued } });
  const app = createCollectorApp({ tracker, token: "s3cret-token" });
  const post = (count: number) =>
    app.request("/v1/events", {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ events: Array.from({ length: count }, () => ({ name: "a" })) }),
    });
  assert.equal((await post(1)).status, 202);
  await tracker.flush(); // delivered: the branch is known to deliver
  gate = new Promise<void>((resolve) => release = resolve);
  assert.equal((await post(9)).status, 202);
  const shed = await post(5);
  assert.equal(shed.status, 503);
  assert.equal((await shed.json()).error, "overloaded");
  release();
  await tracker.close();
  assert.equal(deadLetter.events.length, 0, "nothing was dead-lettered");
});
