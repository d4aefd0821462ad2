/**
 * SegmentBackend against a local Segment-compatible HTTP server (no network):
 * the reference's test_segment.py cases, as the batch requests the official
 * client makes, plus authentication, retries, flush and close.
 */

import assert from "node:assert/strict";
import {
  AsyncRoutingBackend,
  createTracker,
  type DeadLetter,
  ImproperlyConfigured,
  InMemoryBackend,
  type MetricsSnapshot,
  type RoutingBackend,
  Tracker,
  type TrackingEvent,
} from "@edx/event-tracking";
import { SegmentBackend, type SegmentBackendOptions, segmentEngines } from "@edx/event-tracking/segment";
import { RecordingLogger } from "../_helpers.ts";

/** One batch request as the server saw it. */
interface Received {
  path: string;
  authorization: string | null;
  retryCount: string | null;
  body: { batch: SegmentMessage[]; writeKey: string; sentAt: string };
}

/** One message of a batch (the fields these tests look at). */
interface SegmentMessage {
  type: string;
  userId: string;
  event: string;
  properties: Record<string, unknown>;
  context: Record<string, unknown>;
  timestamp: string;
  messageId: string;
}

/** A local Segment-compatible API: records each batch request and answers with `status()`. */
class FakeSegment {
  readonly requests: Received[] = [];
  status: (request: number) => number | Promise<number> = () => 200;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  constructor() {
    this.#server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
      const body = await request.json();
      this.requests.push({
        path: new URL(request.url).pathname,
        authorization: request.headers.get("authorization"),
        retryCount: request.headers.get("x-retry-count"),
        body,
      });
      const status = await this.status(this.requests.length);
      return new Response(status < 300 ? '{"success":true}' : "error", { status });
    });
  }

  get host(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  /** Every message received, in order. */
  get messages(): SegmentMessage[] {
    return this.requests.flatMap((request) => request.body.batch);
  }

  async stop(): Promise<void> {
    await this.#server.shutdown();
  }
}

async function withSegment(fn: (segment: FakeSegment) => Promise<void>): Promise<void> {
  const segment = new FakeSegment();
  try {
    await fn(segment);
  } finally {
    await segment.stop();
  }
}

function backend(segment: FakeSegment, options: Partial<SegmentBackendOptions> = {}): SegmentBackend {
  return new SegmentBackend({ writeKey: "test-write-key", host: segment.host, flushIntervalMs: 10, ...options });
}

let sequence = 0;
function event(fields: Partial<TrackingEvent> & Record<string, unknown>): TrackingEvent {
  sequence++;
  return {
    id: `01a21e3d-6e90-70f3-a60e-${String(sequence).padStart(12, "0")}`,
    name: "sentinel.name",
    timestamp: "2026-11-27T18:21:12.208Z",
    context: {},
    data: {},
    ...fields,
  } as TrackingEvent;
}

/** The Segment context without what the client adds itself (`library`). */
function mapped(message: SegmentMessage): Record<string, unknown> {
  const { library, ...rest } = message.context;
  assert.deepEqual(library, { name: "@segment/analytics-node", version: (library as { version: string }).version });
  return rest;
}

// spec §10.13 tests 1, 5–11
Deno.test("SegmentBackend maps events to track calls as the reference does", async () => {
  await withSegment(async (segment) => {
    const cases: [Record<string, unknown>, Record<string, unknown>][] = [
      [{ user_id: 1 }, {}],
      [{ user_id: 1, client_id: "12345.67890" }, { "Google Analytics": { clientId: "12345.67890" } }],
      [{ user_id: 1, ip: "127.0.0.1" }, { ip: "127.0.0.1" }],
      [{ user_id: 1, agent: "Mozilla/5.0" }, { userAgent: "Mozilla/5.0" }],
      [{ user_id: 1, path: "/this/is/a/path" }, { page: { path: "/this/is/a/path" } }],
      [{ user_id: 1, referer: "https://example.com/" }, { page: { referrer: "https://example.com/" } }],
      [{ user_id: 1, page: "https://example.com/page" }, { page: { url: "https://example.com/page" } }],
      [
        { user_id: 1, path: "/this/is/a/path", host: "hostname" },
        { page: { path: "/this/is/a/path", url: "https://hostname/this/is/a/path" } },
      ],
      // A page given wins over the one made from host and path; a falsy path makes none.
      [
        { user_id: 1, path: "/p", host: "hostname", page: "https://elsewhere/x" },
        { page: { path: "/p", url: "https://elsewhere/x" } },
      ],
      [{ user_id: 1, path: "", host: "hostname" }, { page: { path: "" } }],
      // urlunsplit adds the slash a relative path lacks.
      [{ user_id: 1, path: "a/b", host: "hostname" }, { page: { path: "a/b", url: "https://hostname/a/b" } }],
      // Keys the mapping does not know stay out of the Segment context (they are in the properties).
      [{ user_id: "abc", username: "ada", course_id: "course-v1:X+Y+Z" }, {}],
    ];
    const segmentBackend = backend(segment);
    const events = cases.map(([context]) => event({ context, data: { key: "value" } }));
    await Promise.all(events.map((e) => segmentBackend.send(e)));
    await segmentBackend.close();

    const messages = segment.messages;
    assert.equal(messages.length, cases.length);
    for (const [i, [context, expected]] of cases.entries()) {
      const message = messages.find((m) => m.messageId === events[i].id)!;
      assert.ok(message, `case ${i} was sent`);
      assert.equal(message.type, "track");
      assert.equal(message.userId, String(context.user_id));
      assert.equal(message.event, "sentinel.name");
      // The properties are the entire event.
      assert.deepEqual(message.properties, JSON.parse(JSON.stringify(events[i])));
      assert.deepEqual(mapped(message), expected, `case ${i}: ${JSON.stringify(context)}`);
      assert.equal(message.timestamp, events[i].timestamp);
    }
  });
});

// spec §10.13 tests 2–4
Deno.test("SegmentBackend skips events without a name or a context.user_id, and counts them dropped", async () => {
  await withSegment(async (segment) => {
    const segmentBackend = backend(segment);
    const skipped = [
      {} as TrackingEvent, // test_missing_name
      { name: "sentinel.name" } as TrackingEvent, // test_missing_context
      event({ context: {} }), // test_missing_user_id
      event({ context: { user_id: null } }),
      event({ name: "", context: { user_id: 1 } }),
    ];
    for (const e of skipped) assert.equal(segmentBackend.send(e), undefined);
    await segmentBackend.close();
    assert.equal(segment.requests.length, 0);
    const metrics: MetricsSnapshot = {};
    segmentBackend.collectMetrics("segment", metrics);
    assert.equal(metrics.segment.received, 5);
    assert.equal(metrics.segment.dropped, 5);
    assert.equal(metrics.segment.delivered, 0);
  });
});

Deno.test("SegmentBackend authenticates with the write key (HTTP Basic) and posts to host + path", async () => {
  await withSegment(async (segment) => {
    const segmentBackend = backend(segment, { writeKey: "wk:secret", path: "/v2/batch" });
    assert.equal(segmentBackend.url, `${segment.host}/v2/batch`);
    await segmentBackend.send(event({ context: { user_id: 7 } }));
    await segmentBackend.close();
    assert.equal(segment.requests.length, 1);
    const [request] = segment.requests;
    assert.equal(request.path, "/v2/batch");
    assert.equal(request.authorization, `Basic ${btoa("wk:secret:")}`);
    assert.equal(request.body.writeKey, "wk:secret");
  });
});

Deno.test("SegmentBackend batches by flushAt and settles each send with its batch", async () => {
  await withSegment(async (segment) => {
    const segmentBackend = backend(segment, { flushAt: 3, flushIntervalMs: 60_000 });
    const sends = [1, 2, 3, 4, 5, 6].map((i) => segmentBackend.send(event({ context: { user_id: i } })));
    await Promise.all(sends);
    assert.deepEqual(segment.requests.map((r) => r.body.batch.length), [3, 3]);
    const metrics: MetricsSnapshot = {};
    segmentBackend.collectMetrics("segment", metrics);
    assert.equal(metrics.segment.delivered, 6);
    assert.equal(metrics.segment.queueDepth, 0);
    await segmentBackend.close();
  });
});

Deno.test("SegmentBackend.close() sends what is waiting (flush on close), then refuses sends", async () => {
  await withSegment(async (segment) => {
    // Neither the batch size nor the interval would send these before the test ends.
    const segmentBackend = backend(segment, { flushAt: 100, flushIntervalMs: 60_000 });
    const sends = [1, 2, 3].map((i) => segmentBackend.send(event({ context: { user_id: i } })));
    assert.equal(segment.requests.length, 0);
    await segmentBackend.close();
    assert.deepEqual(segment.requests.map((r) => r.body.batch.length), [3]);
    for (const send of sends) await send; // all resolved
    await assert.rejects(
      async () => await segmentBackend.send(event({ context: { user_id: 1 } })),
      { message: 'Cannot send event "sentinel.name" to SegmentBackend as it is closed' },
    );
    assert.equal(segmentBackend.close(), segmentBackend.close());
  });
});

Deno.test("SegmentBackend.flush() sends what is waiting and resolves once it is delivered; later sends go on", async () => {
  await withSegment(async (segment) => {
    const segmentBackend = backend(segment, { flushAt: 100, flushIntervalMs: 60_000 });
    let settled = 0;
    for (const i of [1, 2]) {
      void (segmentBackend.send(event({ context: { user_id: i } })) as Promise<void>).then(() => settled++);
    }
    await segmentBackend.flush();
    assert.equal(settled, 2);
    assert.equal(segment.messages.length, 2);
    // The backend stays open: a send after a flush is delivered by the next flush (or close).
    const later = segmentBackend.send(event({ context: { user_id: 3 } }));
    await Promise.all([segmentBackend.flush(), segmentBackend.flush()]);
    await later;
    assert.equal(segment.messages.length, 3);
    await segmentBackend.flush(); // nothing waiting
    await segmentBackend.close();
    assert.equal(segment.requests.length, 2);
  });
});

Deno.test("SegmentBackend: a numeric user_id becomes its text; the message id is the event id", async () => {
  await withSegment(async (segment) => {
    const segmentBackend = backend(segment);
    const e = event({ context: { user_id: 10938 } });
    await segmentBackend.send(e);
    await segmentBackend.close();
    assert.equal(segment.messages[0].userId, "10938");
    assert.equal(segment.messages[0].messageId, e.id);
  });
});

Deno.test("SegmentBackend rejects an event whose user_id Segment cannot take, without a request", async () => {
  await withSegment(async (segment) => {
    const segmentBackend = backend(segment);
    for (const userId of ["", true, { id: 1 }]) {
      await assert.rejects(
        async () => await segmentBackend.send(event({ context: { user_id: userId } })),
        (error: unknown) =>
          error instanceof TypeError &&
          /^Cannot send event "sentinel\.name" to Segment: context\.user_id must be a non-empty string or a number/
            .test(error.message),
      );
    }
    await segmentBackend.close();
    assert.equal(segment.requests.length, 0);
    const metrics: MetricsSnapshot = {};
    segmentBackend.collectMetrics("segment", metrics);
    assert.equal(metrics.segment.failed, 3);
  });
});

Deno.test("SegmentBackend: the client retries a 5xx (maxRetries) and the send resolves once it succeeds", async () => {
  await withSegment(async (segment) => {
    segment.status = (n) => n === 1 ? 503 : 200;
    const segmentBackend = backend(segment, { maxRetries: 1 });
    await segmentBackend.send(event({ context: { user_id: 1 } }));
    await segmentBackend.close();
    assert.equal(segment.requests.length, 2);
    assert.equal(segment.requests[0].retryCount, null);
    assert.equal(segment.requests[1].retryCount, "1");
    assert.equal(segment.requests[1].body.batch[0].messageId, segment.requests[0].body.batch[0].messageId);
    const metrics: MetricsSnapshot = {};
    segmentBackend.collectMetrics("segment", metrics);
    assert.equal(metrics.segment.retried, 1);
    assert.equal(metrics.segment.delivered, 1);
    assert.equal(metrics.segment.failed, 0);
  });
});

Deno.test("SegmentBackend rejects once the client's retries are spent; a 4xx is not retried", async () => {
  await withSegment(async (segment) => {
    segment.status = () => 500;
    const segmentBackend = backend(segment, { maxRetries: 1 });
    await assert.rejects(
      async () => await segmentBackend.send(event({ context: { user_id: 1 } })),
      { message: 'Segment did not accept event "sentinel.name": [500] Internal Server Error' },
    );
    assert.equal(segment.requests.length, 2);
    segment.status = () => 400;
    await assert.rejects(
      async () => await segmentBackend.send(event({ context: { user_id: 1 } })),
      { message: 'Segment did not accept event "sentinel.name": [400] Bad Request' },
    );
    assert.equal(segment.requests.length, 3);
    await segmentBackend.close();
    const metrics: MetricsSnapshot = {};
    segmentBackend.collectMetrics("segment", metrics);
    assert.equal(metrics.segment.failed, 2);
  });
});

Deno.test("SegmentBackend behind an async router: a 5xx is retried by the router, then dead-lettered", async () => {
  await withSegment(async (segment) => {
    segment.status = (n) => n <= 2 ? 503 : 200;
    const deadLetter = new InMemoryBackend();
    const logger = new RecordingLogger();
    const branch = new AsyncRoutingBackend({
      backendName: "segmentio",
      backends: { segment: backend(segment) }, // fails fast: no retries of its own
      maxAttempts: 3,
      backoff: { initialMs: 1, maxMs: 5 },
      deadLetter,
      logger,
    });
    const tracker = new Tracker({ backends: { segmentio: branch }, logger });
    tracker.enterContext("edx.request", { user_id: 5 });
    await tracker.send(tracker.createEvent("edx.course.enrollment.activated", {}));
    assert.equal(segment.requests.length, 3); // two 503s, then delivered
    assert.equal(deadLetter.events.length, 0);

    segment.status = () => 503;
    await tracker.send(tracker.createEvent("edx.course.enrollment.deactivated", {}));
    assert.equal(deadLetter.events.length, 1);
    const letter = deadLetter.events[0] as DeadLetter;
    assert.equal(letter.name, "edx.course.enrollment.deactivated");
    assert.equal(letter.deadLetter.attempts, 3);
    assert.match(letter.deadLetter.error, /Segment did not accept event .*\[503\] Service Unavailable/);
    const metrics = tracker.metrics();
    assert.equal(metrics["root/segmentio/segment"].delivered, 1);
    assert.equal(metrics["root/segmentio/segment"].failed, 5);
    await tracker.close();
    assert.match(logger.warnings.join("\n"), /1 event\(s\) dead-lettered/);
  });
});

Deno.test("SegmentBackend.close({ deadlineMs }) returns within the deadline when Segment hangs", async () => {
  await withSegment(async (segment) => {
    const release = Promise.withResolvers<number>();
    segment.status = () => release.promise;
    const segmentBackend = backend(segment, { httpRequestTimeoutMs: 400 });
    const send = segmentBackend.send(event({ context: { user_id: 1 } })) as Promise<void>;
    const outcome = send.then(() => "delivered", (error: Error) => error.message);
    while (segment.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const started = performance.now();
    await segmentBackend.close({ deadlineMs: 100 });
    assert.ok(performance.now() - started < 350, `close took ${performance.now() - started} ms`);
    assert.match(await outcome, /^Segment did not accept event "sentinel\.name": /);
    release.resolve(200);
  });
});

Deno.test("SegmentBackend refuses sends beyond maxQueueSize and reports its saturation", async () => {
  await withSegment(async (segment) => {
    const segmentBackend = backend(segment, { maxQueueSize: 2, flushIntervalMs: 60_000 });
    const sends = [1, 2].map((i) => segmentBackend.send(event({ context: { user_id: i } })));
    assert.equal(segmentBackend.saturation(), 1);
    await assert.rejects(
      async () => await segmentBackend.send(event({ context: { user_id: 3 } })),
      { message: 'Cannot send event "sentinel.name" to SegmentBackend as its queue is full: capacity is 2 events' },
    );
    await segmentBackend.close();
    await Promise.all(sends);
    assert.equal(segmentBackend.saturation(), 0);
  });
});

Deno.test("SegmentBackend() rejects bad options, naming the option, never showing the write key", () => {
  const cases: [unknown, string][] = [
    [{}, "SegmentBackend.writeKey: must be the write key of a Segment source (a non-empty string), got undefined"],
    [
      { writeKey: "" },
      'SegmentBackend.writeKey: must be the write key of a Segment source (a non-empty string), got ""',
    ],
    [
      { writeKey: 12345 },
      "SegmentBackend.writeKey: must be the write key of a Segment source (a non-empty string), got a number",
    ],
    [
      { writeKey: "k", host: "api.segment.io" },
      'SegmentBackend.host: must be an http(s) URL such as "https://api.segment.io", got "api.segment.io"',
    ],
    [{ writeKey: "k", path: "v1/batch" }, 'SegmentBackend.path: must be a URL path starting with "/", got "v1/batch"'],
    [{ writeKey: "k", flushAt: 0 }, "SegmentBackend.flushAt: must be a positive integer, got 0"],
    [{ writeKey: "k", flushIntervalMs: -1 }, "SegmentBackend.flushIntervalMs: must be a non-negative number, got -1"],
    [{ writeKey: "k", maxRetries: 1.5 }, "SegmentBackend.maxRetries: must be a non-negative integer, got 1.5"],
    [
      { writeKey: "k", maxEventsInBatch: 5 },
      "SegmentBackend.maxEventsInBatch: unknown option (expected: writeKey, host, path, flushAt, flushIntervalMs, maxRetries, httpRequestTimeoutMs, maxQueueSize)",
    ],
  ];
  for (const [options, message] of cases) {
    assert.throws(
      () => new SegmentBackend(options as SegmentBackendOptions),
      (error: unknown) => error instanceof ImproperlyConfigured && error.message === message,
      message,
    );
  }
});

const LMS_SEGMENTIO = (segmentOptions?: Record<string, unknown>) => ({
  backends: {
    segmentio: {
      ENGINE: "eventtracking.backends.routing.RoutingBackend",
      OPTIONS: {
        backends: {
          segment: {
            ENGINE: "eventtracking.backends.segment.SegmentBackend",
            ...(segmentOptions === undefined ? {} : { OPTIONS: segmentOptions }),
          },
        },
        processors: [{
          ENGINE: "eventtracking.processors.whitelist.NameWhitelistProcessor",
          OPTIONS: { whitelist: ["edx.course.enrollment.activated", "edx.course.enrollment.deactivated"] },
        }],
      },
    },
  },
  processors: [],
});

Deno.test("createTracker loads the LMS's segmentio branch (NameWhitelistProcessor → SegmentBackend)", async () => {
  await withSegment(async (segment) => {
    const tracker = createTracker(
      LMS_SEGMENTIO({ write_key: "json-key", host: segment.host, flush_interval_ms: 10, flush_at: 20 }),
      { engines: segmentEngines() },
    );
    const branch = tracker.getBackend("segmentio") as RoutingBackend;
    assert.ok(branch.backends.get("segment") instanceof SegmentBackend);
    tracker.context("edx.request", { user_id: 10938, ip: "10.0.0.1", agent: "Mozilla/5.0" }, () => {
      tracker.emit("edx.course.enrollment.activated", { course_id: "course-v1:edX+DemoX+Demo_Course" });
      tracker.emit("edx.ui.lms.link_clicked", { url: "https://example.com" }); // not in the whitelist
    });
    tracker.emit("edx.course.enrollment.deactivated", {}); // no user: skipped
    await tracker.close();
    assert.equal(segment.requests.length, 1);
    assert.equal(segment.requests[0].authorization, `Basic ${btoa("json-key:")}`);
    const [message] = segment.messages;
    assert.equal(message.event, "edx.course.enrollment.activated");
    assert.equal(message.userId, "10938");
    assert.deepEqual(mapped(message), { ip: "10.0.0.1", userAgent: "Mozilla/5.0" });
    assert.deepEqual(message.properties.data, { course_id: "course-v1:edX+DemoX+Demo_Course" });
    const metrics = tracker.metrics()["root/segmentio/segment"];
    assert.equal(metrics.received, 2);
    assert.equal(metrics.dropped, 1);
    assert.equal(metrics.delivered, 1);
  });
});

Deno.test("segmentEngines(defaultWriteKey) gives the key to specs without one; the short name works too", async () => {
  await withSegment(async (segment) => {
    // The reference's spec, as the LMS writes it: no OPTIONS (its key is a Django setting).
    const unchanged = createTracker(LMS_SEGMENTIO(), { engines: segmentEngines("default-key") });
    const lms = (unchanged.getBackend("segmentio") as RoutingBackend).backends.get("segment") as SegmentBackend;
    assert.equal(lms.url, "https://api.segment.io/v1/batch");
    await unchanged.close();

    const tracker = createTracker(
      { backends: { segment: { ENGINE: "segment", OPTIONS: { host: segment.host, flush_interval_ms: 10 } } } },
      { engines: segmentEngines("default-key") },
    );
    tracker.enterContext("edx.request", { user_id: 1 });
    tracker.emit("edx.course.enrollment.activated");
    await tracker.close();
    assert.equal(segment.requests[0].authorization, `Basic ${btoa("default-key:")}`);
  });
});

Deno.test("createTracker: the segment ENGINE's OPTIONS are checked and reported by path", () => {
  const path = "backends.segmentio.OPTIONS.backends.segment.OPTIONS";
  const cases: [Record<string, unknown> | undefined, string][] = [
    [undefined, `${path}.writeKey: must be the write key of a Segment source (a non-empty string), got undefined`],
    [
      { host: "https://api.segment.io" },
      `${path}.writeKey: must be the write key of a Segment source (a non-empty string), got undefined`,
    ],
    [{ write_key: "" }, `${path}.write_key: must be the write key of a Segment source (a non-empty string), got ""`],
    [{ write_key: "k", flush_at: -1 }, `${path}.flush_at: must be a positive integer, got -1`],
    [
      { write_key: "k", flush_interval: 5 },
      `${path}.flush_interval: unknown option (expected: writeKey, host, path, flushAt, flushIntervalMs, maxRetries, httpRequestTimeoutMs, maxQueueSize)`,
    ],
  ];
  for (const [options, message] of cases) {
    assert.throws(
      () => createTracker(LMS_SEGMENTIO(options), { engines: segmentEngines() }),
      (error: unknown) => error instanceof ImproperlyConfigured && error.message === message,
      message,
    );
  }
  // Without the engines, the ENGINE is unknown.
  assert.throws(() => createTracker(LMS_SEGMENTIO({ write_key: "k" })), ImproperlyConfigured);
  assert.throws(() => segmentEngines(""), {
    message: 'segmentEngines(defaultWriteKey): must be the write key of a Segment source (a non-empty string), got ""',
  });
});
