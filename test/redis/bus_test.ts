import assert from "node:assert/strict";
import { createClient } from "redis";
import { createTracker, EventBusBackend, InMemoryBackend, Tracker, type TrackingEvent } from "@edx/event-tracking";
import { createCollectorApp } from "@edx/event-tracking/http";
import { defaultCollectorConfig } from "@edx/event-tracking/deno";
import {
  asyncBusBranches,
  checkEventBusTree,
  decodeEntry,
  redisBusFromEnv,
  RedisStreamsBus,
  TRACKING_EVENT_TYPE,
} from "@edx/event-tracking/redis";
import { RecordingLogger } from "../_helpers.ts";
import { HAVE_REDIS, PYTHON, python, PYTHON_SCHEMA, rawClient, startRedisServer, waitFor } from "./_redis.ts";

const ignore = !HAVE_REDIS;

function event(name: string, data: unknown = {}, context: Record<string, unknown> = {}): TrackingEvent {
  return { id: crypto.randomUUID(), name, timestamp: "2024-05-01T12:00:00.123Z", context, data };
}

type Entry = [string, string[]];

Deno.test({
  name: "publish: XADD <prefix>-analytics MAXLEN ~ n * with the header fields in order, as redis-py sends them",
  ignore,
  async fn() {
    const server = await startRedisServer();
    const monitor = createClient({ url: server.url, RESP: 2 });
    monitor.on("error", () => {});
    await monitor.connect();
    const commands: string[] = [];
    await monitor.monitor((line: string) => commands.push(line));
    const bus = new RedisStreamsBus({
      url: server.url,
      topicPrefix: "dev",
      maxLen: 500,
      serviceName: "lms",
      sourceHost: "web-1",
      logger: new RecordingLogger(),
    });
    try {
      await bus.publish("tracking_logs", event("problem_check", { a: 1 }, { user_id: 7 }));
      assert.equal(bus.published, 1);
      if (PYTHON !== undefined) {
        // The Python producer: walrus's Stream.add is redis-py's xadd(maxlen=…, approximate=True).
        await python(
          `
import json, redis, sys
r = redis.Redis.from_url(json.load(sys.stdin))
r.xadd("dev-analytics", {"type": "t", "id": "i", "source": "s", "time": "x", "minorversion": "0", "sourcehost": "h", "sourcelib": "1.0", "event_data": b"\\x00"}, maxlen=500, approximate=True)
print("null")
`,
          server.url,
        );
      }
      await waitFor(
        () => commands.filter((c) => c.includes('"XADD"')).length >= (PYTHON === undefined ? 1 : 2),
        "MONITOR",
      );
      const [ours, theirs] = commands.filter((c) => c.includes('"XADD"')).map((line) =>
        line.slice(line.indexOf('"XADD"')).match(/"(?:[^"\\]|\\.)*"/g)!.map((token) =>
          token.slice(1, -1).replace(/\\(["\\])/g, "$1")
        )
      );
      assert.deepEqual(ours.slice(0, 6), ["XADD", "dev-analytics", "MAXLEN", "~", "500", "*"]);
      assert.deepEqual(ours.slice(6).filter((_: string, i: number) => i % 2 === 0), [
        "type",
        "id",
        "source",
        "time",
        "minorversion",
        "sourcehost",
        "sourcelib",
        "event_data",
      ]);
      if (theirs !== undefined) {
        assert.deepEqual(ours.slice(0, 6), theirs.slice(0, 6));
        assert.deepEqual(
          ours.slice(6).filter((_: string, i: number) => i % 2 === 0),
          theirs.slice(6).filter((_: string, i: number) => i % 2 === 0),
        );
      }
    } finally {
      await monitor.close();
      await bus.close();
      await server.stop();
    }
  },
});

Deno.test({
  name: "oracle: Python (redis-py + avro) reads what the tree published as Open edX's consumer would",
  ignore: ignore || PYTHON === undefined,
  async fn() {
    const server = await startRedisServer();
    const bus = new RedisStreamsBus({
      url: server.url,
      topicPrefix: "prod",
      serviceName: "collector",
      sourceHost: "edge-1",
    });
    const sink = new InMemoryBackend();
    const tracker = new Tracker({
      backends: {
        sink,
        bus: new EventBusBackend({ eventBusTrackingLogs: ["*"], transport: bus, consume: false }),
      },
    });
    try {
      tracker.context(
        "edx.request",
        { user_id: 10938, username: "jöse", course_id: "course-v1:edX+DemoX+Demo" },
        () => {
          tracker.emit("problem_check", { problem_id: "p1", answers: { "1_2_1": ["choice_0", "😀"] }, grade: 0.5 });
          tracker.emit("edx.video.played", { currentTime: 1.5e-5, code: "html5" });
        },
      );
      await tracker.flush();
      const sent = sink.events;
      const read = await python<
        { fields: string[]; metadata: Record<string, unknown>; log: Record<string, unknown> }[]
      >(
        `
import io, json, sys, uuid
from datetime import datetime
import avro.io, avro.schema, redis
schema = avro.schema.parse(${JSON.stringify(PYTHON_SCHEMA)})
r = redis.Redis.from_url(json.load(sys.stdin))
out = []
for msg_id, data in r.xrange("prod-analytics"):
    fields = [k.decode() for k in data.keys()]
    h = {k.decode(): v for k, v in data.items()}
    # edx-event-bus-redis's get_metadata_from_headers, then the Avro deserializer
    metadata = {
        "event_type": h["type"].decode(),
        "id": str(uuid.UUID(h["id"].decode())),
        "source": h["source"].decode(),
        "time": datetime.fromisoformat(h["time"].decode()).isoformat(),
        "minorversion": int(h["minorversion"]),
        "sourcehost": h["sourcehost"].decode(),
        "sourcelib": [int(p) if p.isdigit() else p for p in h["sourcelib"].decode().split(".")],
        "time_utcoffset": datetime.fromisoformat(h["time"].decode()).utcoffset().total_seconds(),
    }
    record = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(h["event_data"])))["tracking_log"]
    # event-routing-backends' handler: name, timestamp as a datetime, data and context parsed
    log = {
        "name": record["name"],
        "timestamp": datetime.fromisoformat(record["timestamp"]).isoformat(),
        "timestamp_raw": record["timestamp"],
        "data": json.loads(record["data"]),
        "context": json.loads(record["context"]),
        "data_raw": record["data"],
    }
    out.append({"fields": fields, "metadata": metadata, "log": log})
print(json.dumps(out))
`,
        server.url,
      );
      assert.equal(read.length, 2);
      read.forEach((entry, i) => {
        assert.deepEqual(entry.fields, [
          "type",
          "id",
          "source",
          "time",
          "minorversion",
          "sourcehost",
          "sourcelib",
          "event_data",
        ]);
        assert.equal(entry.metadata.event_type, TRACKING_EVENT_TYPE);
        assert.equal(entry.metadata.id, sent[i].id);
        assert.equal(entry.metadata.source, "openedx/collector/web");
        assert.equal(entry.metadata.minorversion, 0);
        assert.equal(entry.metadata.sourcehost, "edge-1");
        assert.deepEqual(entry.metadata.sourcelib, [11, 2, 0]);
        assert.equal(entry.metadata.time_utcoffset, 0);
        assert.equal(entry.log.name, sent[i].name);
        assert.equal(new Date(entry.log.timestamp as string).toISOString(), sent[i].timestamp);
        assert.match(entry.log.timestamp_raw as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$/);
        assert.deepEqual(entry.log.data, sent[i].data);
        assert.deepEqual(entry.log.context, sent[i].context);
      });
      assert.equal(
        read[0].log.data_raw,
        '{"problem_id": "p1", "answers": {"1_2_1": ["choice_0", "\\ud83d\\ude00"]}, "grade": 0.5}',
      );
      assert.equal(read[1].log.data_raw, '{"currentTime": 1.5e-05, "code": "html5"}');
    } finally {
      await tracker.close();
      await bus.close();
      await server.stop();
    }
  },
});

Deno.test({
  name: "a failed publish rejects, is retried by the async router, and is dead-lettered — never swallowed",
  ignore,
  async fn() {
    const server = await startRedisServer();
    const dataDir = await Deno.makeTempDir();
    const logger = new RecordingLogger();
    const bus = new RedisStreamsBus({ url: server.url, logger, commandTimeoutMs: 500, connectTimeoutMs: 500 });
    const tracker = createTracker(
      asyncBusBranches({
        backends: { bus: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["*"] } } },
      }),
      { busTransport: () => bus, dataDir, logger },
    );
    const raw = await rawClient(server.url);
    try {
      // Up: published.
      await tracker.send(tracker.createEvent("first"));
      assert.equal(await raw.send(["XLEN", "analytics"]), 1);
      await raw.close();
      // Down: the direct publish rejects at once.
      await server.kill();
      await assert.rejects(bus.publish("bus", event("direct")));
      const backend = (tracker.getBackend("bus") as unknown as { backends: Map<string, EventBusBackend> }).backends
        .get("bus")!;
      await assert.rejects(Promise.resolve(backend.send(event("through the backend"))));
      // Through the tree: retried, then dead-lettered with the error.
      const lost = tracker.createEvent("while down", { n: 1 });
      await tracker.send(lost);
      const letters = (await Deno.readTextFile(`${dataDir}/dead-letters/bus.jsonl`)).trim().split("\n").map((line) =>
        JSON.parse(line)
      );
      assert.equal(letters.length, 1);
      assert.equal(letters[0].id, lost.id);
      assert.equal(letters[0].deadLetter.backend, "bus");
      const metrics = tracker.metrics();
      assert.equal(metrics["root/bus"].deadLettered, 1);
      assert.ok(metrics["root/bus/bus"].failed >= 1);
      // Up again: the same client reconnects and publishes.
      await server.start();
      await waitFor(async () => {
        try {
          await bus.publish("bus", event("after"));
          return true;
        } catch {
          return false;
        }
      }, "a publish after the restart");
      const raw2 = await rawClient(server.url);
      const entries = await raw2.send<Entry[]>(["XRANGE", "analytics", "-", "+"]);
      assert.equal(entries.length, 1); // the restarted server kept nothing (--save ""); the new one is there
      await raw2.close();
    } finally {
      await tracker.close();
      await bus.close();
      await server.stop();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a bus whose server never answered rejects publishes quickly",
  ignore,
  async fn() {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const logger = new RecordingLogger();
    const bus = new RedisStreamsBus({ url: `redis://127.0.0.1:${port}`, logger, connectTimeoutMs: 500 });
    const started = Date.now();
    await assert.rejects(bus.publish("t", event("a")));
    await assert.rejects(bus.publish("t", event("b"))); // within the reconnect pause: the same failure, no new attempt
    assert.ok(Date.now() - started < 2_000);
    assert.equal(logger.errors.length, 1);
    assert.match(logger.errors[0].message, /RedisStreamsBus: Redis connection error at redis:\/\/127\.0\.0\.1:\d+/);
    await bus.close();
    await assert.rejects(bus.publish("t", event("c")), /closed/);
  },
});

Deno.test({
  name: "the collector's default tree on the Redis bus: a POSTed event lands in the stream and in events.jsonl",
  ignore,
  async fn() {
    const server = await startRedisServer();
    const dataDir = await Deno.makeTempDir();
    const logger = new RecordingLogger();
    const redis = await redisBusFromEnv({
      EVENT_BUS_REDIS_CONNECTION_URL: server.url,
      EVENT_BUS_TOPIC_PREFIX: "dev",
      EVENT_BUS_REDIS_STREAM_MAX_LEN: "1000",
      EVENTS_SERVICE_NAME: "collector",
    }, { logger });
    assert.ok(redis !== undefined);
    assert.equal(redis.description, `Redis stream dev-analytics at ${server.url}`);
    const tracker = createTracker(asyncBusBranches(defaultCollectorConfig(dataDir)), {
      busTransport: redis.busTransport,
      dataDir,
      logger,
    });
    checkEventBusTree(tracker, { logger });
    assert.deepEqual(logger.warnings, []);
    const app = createCollectorApp({ tracker, token: "t", logger });
    const raw = await rawClient(server.url);
    try {
      const response = await app.fetch(
        new Request("http://collector/v1/events", {
          method: "POST",
          headers: { authorization: "Bearer t", "content-type": "application/json" },
          body: JSON.stringify({
            events: [
              { name: "edx.course.enrollment.activated", data: { course_id: "course-v1:edX+DemoX+Demo" } },
              { name: "problem_check", data: { grade: 1 }, context: { user_id: 5 } },
            ],
          }),
        }),
      );
      assert.equal(response.status, 202);
      const { ids } = await response.json();
      await tracker.flush();
      const entries = await raw.sendBinary<[Uint8Array, Uint8Array[]][]>(["XRANGE", "dev-analytics", "-", "+"]);
      const events = entries.map(([, fields]) => decodeEntry(fields));
      assert.deepEqual(events.map((e) => e.event.id), ids);
      assert.equal(events[1].event.context.user_id, 5);
      assert.equal(events[0].headers.source, "openedx/collector/web");
      const lines = (await Deno.readTextFile(`${dataDir}/events.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual(lines.map((l) => l.id), ids);
      // The stream's events are the file's, context included.
      assert.deepEqual(events.map((e) => ({ ...e.event })), lines);
    } finally {
      await raw.close();
      await tracker.close();
      await redis.close();
      await server.stop();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "subscribe tails the stream: events every producer adds from now on, not those before",
  ignore,
  async fn() {
    const server = await startRedisServer();
    const logger = new RecordingLogger();
    const producerA = new RedisStreamsBus({ url: server.url, logger });
    const producerB = new RedisStreamsBus({ url: server.url, logger, topic: "analytics" });
    const viewer = new RedisStreamsBus({ url: server.url, logger, blockMs: 200 });
    const raw = await rawClient(server.url);
    try {
      await producerA.publish("x", event("before"));
      const seen: string[] = [];
      const unsubscribe = viewer.subscribe("anything", (e) => void seen.push(e.name));
      await new Promise((resolve) => setTimeout(resolve, 300)); // the tail has found the stream's end
      await raw.send(["XADD", "analytics", "*", "not", "a tracking event"]);
      await producerA.publish("x", event("from A"));
      await producerB.publish("y", event("from B"));
      await waitFor(() => seen.length >= 2, "the tail", 5_000);
      assert.deepEqual(seen, ["from A", "from B"]);
      unsubscribe();
      await new Promise((resolve) => setTimeout(resolve, 300));
      await producerA.publish("x", event("after unsubscribe"));
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual(seen, ["from A", "from B"]);
    } finally {
      await raw.close();
      const closing = Date.now();
      await Promise.all([producerA.close(), producerB.close(), viewer.close()]);
      assert.ok(Date.now() - closing < 2_000);
      await server.stop();
    }
  },
});
