import assert from "node:assert/strict";
import { type Backend, createTracker, InMemoryBackend, type TrackingEvent } from "@edx/event-tracking";
import {
  encodeEntry,
  encodeTrackingLog,
  RedisStreamsBus,
  RedisStreamsConsumer,
  type RedisStreamsConsumerOptions,
  TRACKING_EVENT_TYPE,
} from "@edx/event-tracking/redis";
import { RecordingLogger } from "../_helpers.ts";
import {
  HAVE_REDIS,
  PYTHON,
  python,
  PYTHON_SCHEMA,
  rawClient,
  type RedisTestServer,
  startRedisServer,
  waitFor,
} from "./_redis.ts";

const ignore = !HAVE_REDIS;

function event(name: string, data: unknown = {}, context: Record<string, unknown> = {}): TrackingEvent {
  return { id: crypto.randomUUID(), name, timestamp: new Date().toISOString(), context, data };
}

async function publish(server: RedisTestServer, events: TrackingEvent[], prefix?: string): Promise<void> {
  const bus = new RedisStreamsBus({ url: server.url, topicPrefix: prefix, maxLen: 0 });
  await Promise.all(events.map((e) => bus.publish("t", e)));
  await bus.close();
}

/** A consumer with short timings for tests; `run()` started. */
function consume(
  server: RedisTestServer,
  options: Partial<RedisStreamsConsumerOptions> & { target: RedisStreamsConsumerOptions["target"] },
) {
  const consumer = new RedisStreamsConsumer({
    url: server.url,
    group: "g",
    consumer: "c1",
    blockMs: 100,
    retryDelayMs: 100,
    lagIntervalMs: 100,
    logger: new RecordingLogger(),
    ...options,
  });
  const running = consumer.run();
  return { consumer, running };
}

async function pendingCount(server: RedisTestServer, stream = "analytics", group = "g"): Promise<number> {
  const raw = await rawClient(server.url);
  try {
    const [count] = await raw.send<[number]>(["XPENDING", stream, group]);
    return count;
  } finally {
    await raw.close();
  }
}

Deno.test({
  name: "a consumer delivers every entry to its target and acknowledges it; lag and counts are metrics",
  ignore,
  async fn() {
    const server = await startRedisServer();
    const sent = Array.from({ length: 250 }, (_, i) => event(`e${i}`, { i, s: "é" }, { user_id: i }));
    await publish(server, sent, "dev");
    const sink = new InMemoryBackend();
    const { consumer, running } = consume(server, { target: sink, topicPrefix: "dev", batchSize: 40 });
    try {
      await waitFor(() => sink.events.length === 250, "250 deliveries");
      assert.deepEqual(sink.events.map((e) => ({ ...e })), sent);
      await waitFor(() => consumer.metrics().delivered === 250, "the acknowledgements");
      const metrics = await consumer.refreshLag();
      assert.equal(metrics.lag, 0);
      assert.equal(metrics.pending, 0);
      assert.equal(metrics.read, 250);
      assert.equal(metrics.failed, 0);
      assert.equal(await pendingCount(server, "dev-analytics"), 0);
      assert.match(
        consumer.toPrometheus(),
        /event_tracking_redis_consumer_delivered_total\{stream="dev-analytics",group="g",consumer="c1"\} 250\n/,
      );
      assert.match(consumer.toPrometheus(), /event_tracking_redis_consumer_lag\{[^}]*\} 0\n/);
    } finally {
      const stopping = Date.now();
      await consumer.stop();
      await running;
      assert.ok(Date.now() - stopping < 1_000, "stops within a read's block time");
      await server.stop();
    }
  },
});

Deno.test({
  name: "a new group starts at the start of the stream; an existing group keeps its position; from: $ skips",
  ignore,
  async fn() {
    const server = await startRedisServer();
    try {
      await publish(server, [event("old-1"), event("old-2")]);
      // from "$": only entries added from now on.
      const latest = new InMemoryBackend();
      const a = consume(server, { target: latest, group: "latest", from: "$" });
      await new Promise((resolve) => setTimeout(resolve, 200));
      await publish(server, [event("new-1")]);
      await waitFor(() => latest.events.length === 1, "new-1");
      await a.consumer.stop();
      await a.running;
      // Added while no consumer of the group runs: read at the next start, even with from "$" (the group exists).
      await publish(server, [event("while-down")]);
      const logger = new RecordingLogger();
      const b = consume(server, { target: latest, group: "latest", from: "$", logger });
      await waitFor(() => latest.events.length === 2, "while-down");
      assert.deepEqual(latest.events.map((e) => e.name), ["new-1", "while-down"]);
      assert.match(logger.warnings[0], /the group exists, so it keeps its position/);
      await b.consumer.stop();
      await b.running;
      // The default: a new group reads everything already in the stream.
      const all = new InMemoryBackend();
      const c = consume(server, { target: all, group: "everything" });
      await waitFor(() => all.events.length === 4, "all four");
      assert.deepEqual(all.events.map((e) => e.name), ["old-1", "old-2", "new-1", "while-down"]);
      await c.consumer.stop();
      await c.running;
    } finally {
      await server.stop();
    }
  },
});

Deno.test({
  name: "poison entries go to <stream>-dead-letters with the reason, are acknowledged, and the rest is delivered",
  ignore,
  async fn() {
    const server = await startRedisServer();
    const raw = await rawClient(server.url);
    const good = [event("good-1"), event("good-2")];
    try {
      await publish(server, [good[0]]);
      await raw.send([
        "XADD",
        "analytics",
        "*",
        "type",
        TRACKING_EVENT_TYPE,
        "id",
        "x",
        "event_data",
        "\xff\x01garbage",
      ]);
      await raw.send([
        "XADD",
        "analytics",
        "*",
        "type",
        "org.openedx.learning.course.enrollment.changed.v1",
        "id",
        "y",
        "event_data",
        "z",
      ]);
      await raw.send(["XADD", "analytics", "*", "hello", "world"]);
      await publish(server, [good[1]]);
      const sink = new InMemoryBackend();
      const { consumer, running } = consume(server, { target: sink });
      await waitFor(
        () => sink.events.length === 2 && consumer.metrics().deadLettered === 3,
        "deliveries and dead letters",
      );
      await consumer.stop();
      await running;
      assert.deepEqual(sink.events.map((e) => e.id), good.map((e) => e.id));
      assert.equal(await pendingCount(server), 0);
      const letters = await raw.send<[string, string[]][]>(["XRANGE", "analytics-dead-letters", "-", "+"]);
      const reasons = letters.map(([, fields]) => {
        const map = new Map<string, string>();
        for (let i = 0; i < fields.length; i += 2) map.set(fields[i], fields[i + 1]);
        assert.equal(map.get("dead_letter_stream"), "analytics");
        assert.equal(map.get("dead_letter_group"), "g");
        assert.equal(map.get("dead_letter_consumer"), "c1");
        assert.match(map.get("dead_letter_id")!, /^\d+-\d+$/);
        return map.get("dead_letter_reason");
      });
      assert.match(reasons[0]!, /^cannot decode: event_data is not an Avro TrackingLogData/);
      assert.match(
        reasons[1]!,
        /^cannot decode: event type "org\.openedx\.learning\.course\.enrollment\.changed\.v1" is not/,
      );
      assert.equal(reasons[2], "cannot decode: no event_data field");
      // The original fields are kept, first, as they were.
      assert.deepEqual(letters[2][1].slice(0, 2), ["hello", "world"]);
    } finally {
      await raw.close();
      await server.stop();
    }
  },
});

Deno.test({
  name:
    "an entry is acknowledged only once the tree accepted it: a failed delivery stays pending and is delivered again",
  ignore,
  async fn() {
    const server = await startRedisServer();
    const dataDir = await Deno.makeTempDir();
    let down = true;
    const delivered: string[] = [];
    const flaky: Backend = {
      send(e) {
        if (down) throw new Error("sink down");
        delivered.push(e.name);
      },
    };
    // A synchronous sink under a plain router: tracker.send rejects while it is down.
    const tracker = createTracker({ backends: { sink: { ENGINE: "flaky" } } }, {
      engines: { flaky: () => flaky },
      logger: new RecordingLogger(),
      dataDir,
    });
    try {
      await publish(server, [event("a"), event("b")]);
      const { consumer, running } = consume(server, { target: tracker, maxDeliveries: 100 });
      await waitFor(() => consumer.metrics().failed >= 4, "failed deliveries");
      assert.equal(await pendingCount(server), 2);
      assert.equal(consumer.metrics().delivered, 0);
      down = false;
      await waitFor(() => consumer.metrics().delivered === 2, "deliveries once the sink is back");
      assert.deepEqual(delivered, ["a", "b"]);
      assert.equal(await pendingCount(server), 0);
      await consumer.stop();
      await running;
    } finally {
      await tracker.close();
      await server.stop();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "an entry that fails maxDeliveries times is dead-lettered with the error",
  ignore,
  async fn() {
    const server = await startRedisServer();
    const raw = await rawClient(server.url);
    try {
      const poison = event("always-fails");
      await publish(server, [event("fine"), poison]);
      const sink = new InMemoryBackend();
      const target: Backend = {
        send(e) {
          if (e.id === poison.id) return Promise.reject(new Error("refused by the sink"));
          return sink.send(e);
        },
      };
      const { consumer, running } = consume(server, { target, maxDeliveries: 3 });
      await waitFor(() => consumer.metrics().deadLettered === 1, "the dead letter");
      await consumer.stop();
      await running;
      assert.deepEqual(sink.events.map((e) => e.name), ["fine"]);
      assert.equal(consumer.metrics().failed, 3);
      assert.equal(await pendingCount(server), 0);
      const [[, fields]] = await raw.send<[string, string[]][]>(["XRANGE", "analytics-dead-letters", "-", "+"]);
      const i = fields.indexOf("dead_letter_reason");
      assert.equal(fields[i + 1], "delivery failed 3 time(s): refused by the sink");
      assert.equal(fields[fields.indexOf("id") + 1], poison.id);
    } finally {
      await raw.close();
      await server.stop();
    }
  },
});

Deno.test({
  name: "stale entries of a dead consumer are claimed (XAUTOCLAIM) and delivered",
  ignore,
  async fn() {
    const server = await startRedisServer();
    const raw = await rawClient(server.url);
    try {
      const sent = Array.from({ length: 10 }, (_, i) => event(`e${i}`));
      await publish(server, sent);
      await raw.send(["XGROUP", "CREATE", "analytics", "g", "0"]);
      // A consumer that read five entries and died before acknowledging them.
      await raw.send(["XREADGROUP", "GROUP", "g", "ghost", "COUNT", "5", "STREAMS", "analytics", ">"]);
      const sink = new InMemoryBackend();
      const { consumer, running } = consume(server, { target: sink, claimIdleMs: 300, claimIntervalMs: 100 });
      await waitFor(() => sink.events.length === 10, "all ten");
      await consumer.stop();
      await running;
      assert.deepEqual(new Set(sink.events.map((e) => e.id)), new Set(sent.map((e) => e.id)));
      assert.equal(consumer.metrics().claimed, 5);
      assert.equal(await pendingCount(server), 0);
    } finally {
      await raw.close();
      await server.stop();
    }
  },
});

Deno.test({
  name: "an entry delivered more than maxDeliveries times without acknowledgement (a crash loop) is dead-lettered",
  ignore,
  async fn() {
    const server = await startRedisServer();
    const raw = await rawClient(server.url);
    try {
      await publish(server, [event("crashes-the-consumer")]);
      await raw.send(["XGROUP", "CREATE", "analytics", "g", "0"]);
      await raw.send(["XREADGROUP", "GROUP", "g", "c1", "STREAMS", "analytics", ">"]);
      for (let i = 0; i < 3; i++) await raw.send(["XREADGROUP", "GROUP", "g", "c1", "STREAMS", "analytics", "0"]);
      const sink = new InMemoryBackend();
      const { consumer, running } = consume(server, { target: sink, maxDeliveries: 4 });
      await waitFor(() => consumer.metrics().deadLettered === 1, "the dead letter");
      await consumer.stop();
      await running;
      assert.equal(sink.events.length, 0);
      const [[, fields]] = await raw.send<[string, string[]][]>(["XRANGE", "analytics-dead-letters", "-", "+"]);
      assert.equal(
        fields[fields.indexOf("dead_letter_reason") + 1],
        "delivered 5 times without being acknowledged (more than maxDeliveries 4)",
      );
    } finally {
      await raw.close();
      await server.stop();
    }
  },
});

Deno.test({
  name: "two consumers of one group share the stream: each entry delivered once",
  ignore,
  async fn() {
    const server = await startRedisServer();
    const one = new InMemoryBackend();
    const two = new InMemoryBackend();
    const a = consume(server, { target: one, consumer: "one", batchSize: 10 });
    const b = consume(server, { target: two, consumer: "two", batchSize: 10 });
    try {
      await new Promise((resolve) => setTimeout(resolve, 200)); // both are reading
      const sent: TrackingEvent[] = [];
      for (let round = 0; round < 20; round++) {
        const batch = Array.from({ length: 25 }, (_, i) => event(`r${round}-${i}`));
        sent.push(...batch);
        await publish(server, batch);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await waitFor(() => one.events.length + two.events.length >= sent.length, "500 deliveries");
      await new Promise((resolve) => setTimeout(resolve, 200));
      const ids = [...one.events, ...two.events].map((e) => e.id);
      assert.equal(ids.length, sent.length, "no entry delivered twice");
      assert.deepEqual(new Set(ids), new Set(sent.map((e) => e.id)));
      assert.ok(
        one.events.length > 0 && two.events.length > 0,
        `both consumers got entries: ${one.events.length}, ${two.events.length}`,
      );
      assert.equal(await pendingCount(server), 0);
    } finally {
      await Promise.all([a.consumer.stop(), b.consumer.stop()]);
      await Promise.all([a.running, b.running]);
      await server.stop();
    }
  },
});

Deno.test({
  name: "a consumer waits out a Redis outage, re-reads what it had pending, and goes on",
  ignore,
  async fn() {
    const server = await startRedisServer();
    const sink = new InMemoryBackend();
    const logger = new RecordingLogger();
    const { consumer, running } = consume(server, { target: sink, logger });
    try {
      await publish(server, [event("before")]);
      await waitFor(() => sink.events.length === 1, "before");
      await server.kill();
      await new Promise((resolve) => setTimeout(resolve, 500));
      await server.start(); // empty: nothing was saved
      await publish(server, [event("after")]);
      await waitFor(() => sink.events.length === 2, "after", 10_000);
      assert.deepEqual(sink.events.map((e) => e.name), ["before", "after"]);
      assert.ok(logger.errors.some((e) => /Redis connection error/.test(e.message)));
    } finally {
      await consumer.stop();
      await running;
      await server.stop();
    }
  },
});

Deno.test({
  name: "oracle: an entry written by Python as edx-event-bus-redis writes it is consumed with its data and context",
  ignore: ignore || PYTHON === undefined,
  async fn() {
    const server = await startRedisServer();
    try {
      await python(
        `
import io, json, sys, uuid
from datetime import datetime, timezone
import avro.io, avro.schema, redis
schema = avro.schema.parse(${JSON.stringify(PYTHON_SCHEMA)})
url = json.load(sys.stdin)
out = io.BytesIO()
# event-tracking's EventBusRoutingBackend: json.dumps of data and context, the timestamp as a datetime
log = {
    "name": "edx.course.enrollment.activated",
    "timestamp": datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc).isoformat(),
    "data": json.dumps({"course_id": "course-v1:edX+DemoX+Demo", "user_id": 42, "mode": "audit", "é": [1.5, None]}),
    "context": json.dumps({"user_id": 42, "org_id": "edX", "path": "/event"}),
}
avro.io.DatumWriter(schema).write({"tracking_log": log}, avro.io.BinaryEncoder(out))
fields = {
    "type": "org.openedx.analytics.tracking.event.emitted.v1",
    "id": str(uuid.UUID("6f1c5a2e-0b7d-11ef-9b4e-0242ac120002")),
    "source": "openedx/lms/web",
    "time": datetime(2024, 5, 1, 12, 0, 0, 200000, tzinfo=timezone.utc).isoformat(),
    "minorversion": "0",
    "sourcehost": "lms-1",
    "sourcelib": "9.5.1",
    "event_data": out.getvalue(),
}
redis.Redis.from_url(url).xadd("analytics", fields, maxlen=10000, approximate=True)
print("null")
`,
        server.url,
      );
      const sink = new InMemoryBackend();
      const { consumer, running } = consume(server, { target: sink });
      await waitFor(() => sink.events.length === 1, "the Python entry");
      await consumer.stop();
      await running;
      assert.deepEqual({ ...sink.events[0] }, {
        id: "6f1c5a2e-0b7d-11ef-9b4e-0242ac120002",
        name: "edx.course.enrollment.activated",
        timestamp: "2024-05-01T12:00:00.123Z",
        context: { user_id: 42, org_id: "edX", path: "/event" },
        data: { course_id: "course-v1:edX+DemoX+Demo", user_id: 42, mode: "audit", é: [1.5, null] },
      });
    } finally {
      await server.stop();
    }
  },
});

Deno.test({
  name: "a key that is not a stream stops the consumer with the server's refusal",
  ignore,
  async fn() {
    const server = await startRedisServer();
    const raw = await rawClient(server.url);
    try {
      await raw.send(["SET", "analytics", "not a stream"]);
      const { running } = consume(server, { target: new InMemoryBackend() });
      await assert.rejects(running, /WRONGTYPE/);
    } finally {
      await raw.close();
      await server.stop();
    }
  },
});

Deno.test("the consumer checks its options", () => {
  const target = new InMemoryBackend();
  assert.throws(() => new RedisStreamsConsumer({ group: "", consumer: "c", target }), /RedisStreamsConsumer\.group/);
  assert.throws(
    () => new RedisStreamsConsumer({ group: "g", consumer: "c", target, from: "later" }),
    /RedisStreamsConsumer\.from: must be "0", "\$" or an entry id/,
  );
  assert.throws(
    () => new RedisStreamsConsumer({ group: "g", consumer: "c", target: {} as never }),
    /RedisStreamsConsumer\.target: must be a tracker or a backend/,
  );
  void encodeEntry;
  void encodeTrackingLog;
});
