/**
 * MongoBackend against a real wire-protocol server: congodb in a child
 * process, or the server `MONGODB_URI` names. Ports the reference's
 * test_mongodb.py and test_mongodb_integration.py where they still apply.
 */

import assert from "node:assert/strict";
import { type Document, MongoClient, MongoServerError, MongoServerSelectionError } from "mongodb";
import {
  AsyncRoutingBackend,
  createTracker,
  type DeadLetter,
  emptyMetrics,
  ImproperlyConfigured,
  InMemoryBackend,
  type MetricsSnapshot,
  Tracker,
  type TrackingEvent,
} from "@edx/event-tracking";
import { eventObjectId, MongoBackend, type MongoBackendOptions, mongoEngines } from "@edx/event-tracking/mongo";
import { RecordingLogger } from "../_helpers.ts";
import { freePort, type MongoTestServer, startMongoServer, testDatabaseName } from "../_mongo_server.ts";

const REAL_MONGOD = Deno.env.get("MONGODB_URI") !== undefined;

let server: MongoTestServer;
Deno.test.beforeAll(async () => {
  server = await startMongoServer();
});
Deno.test.afterAll(async () => {
  await server?.stop();
});

/** A fresh database for one test, dropped afterwards, and a client to inspect it. */
async function withDatabase(fn: (database: string, inspect: MongoClient) => Promise<void>): Promise<void> {
  const database = testDatabaseName();
  const inspect = new MongoClient(server.uri);
  try {
    await fn(database, inspect);
  } finally {
    await inspect.db(database).dropDatabase().catch(() => {});
    await inspect.close();
  }
}

function backend(database: string, options: MongoBackendOptions = {}): MongoBackend {
  return new MongoBackend({ uri: server.uri, database, logger: new RecordingLogger(), ...options });
}

/** Events made by a real tracker (frozen, with UUIDv7 ids). */
function makeEvents(count: number, name = "test.event", data: (i: number) => unknown = (i) => ({ sequence: i })) {
  const sink = new InMemoryBackend();
  const tracker = new Tracker({ backends: { sink } });
  for (let i = 0; i < count; i++) tracker.emit(name, data(i) as Record<string, unknown>);
  return sink.events;
}

function skipUnlessRealMongod(reason: string): boolean {
  if (!REAL_MONGOD) console.log(`skipped unless MONGODB_URI is set: ${reason}`);
  return !REAL_MONGOD;
}

Deno.test("MongoBackend does no I/O before the first batch", async () => {
  // Nothing listens on this port: connecting would fail, but nothing connects.
  const mongo = new MongoBackend({ uri: `mongodb://127.0.0.1:${freePort()}/x`, logger: new RecordingLogger() });
  await mongo.close();
  const metrics: MetricsSnapshot = {};
  mongo.collectMetrics("mongo", metrics);
  assert.deepEqual(metrics.mongo, emptyMetrics());
});

Deno.test("MongoBackend() rejects bad options, naming the option and its current value", () => {
  const cases: [MongoBackendOptions, string][] = [
    [{ batchSize: 0 }, "MongoBackend.batchSize: must be a positive integer, got 0"],
    [{ batchSize: 1.5 }, "MongoBackend.batchSize: must be a positive integer, got 1.5"],
    [{ batchSize: 2 ** 31 }, "MongoBackend.batchSize: must be a positive integer, got 2147483648"],
    [{ flushIntervalMs: -1 }, "MongoBackend.flushIntervalMs: must be a non-negative number, got -1"],
    [{ maxRetries: -1 }, "MongoBackend.maxRetries: must be a non-negative integer, got -1"],
    [{ maxConcurrentBatches: 0 }, "MongoBackend.maxConcurrentBatches: must be a positive integer, got 0"],
    [{ maxQueueSize: 0 }, "MongoBackend.maxQueueSize: must be a positive integer, got 0"],
    [{ retryDelayMs: Infinity }, "MongoBackend.retryDelayMs: must be a non-negative number, got Infinity"],
    [
      { serverSelectionTimeoutMs: -1 },
      "MongoBackend.serverSelectionTimeoutMs: must be a non-negative number, got -1",
    ],
    [{ connectTimeoutMs: "5000" as never }, 'MongoBackend.connectTimeoutMs: must be a non-negative number, got "5000"'],
    [{ connectTimeoutMs: NaN }, "MongoBackend.connectTimeoutMs: must be a non-negative number, got NaN"],
    [{ port: 70000 }, "MongoBackend.port: must be an integer from 1 to 65535, got 70000"],
    [{ host: "" }, 'MongoBackend.host: must be a non-empty string, got ""'],
    [{ uri: "mongodb://a", host: "b" }, 'MongoBackend: "uri" and "host" exclude each other: give one'],
    [
      { client: new MongoClient("mongodb://a"), uri: "mongodb://a" },
      'MongoBackend: "client" and "uri" exclude each other: give one',
    ],
    [
      { client: new MongoClient("mongodb://a"), serverSelectionTimeoutMs: 100 },
      'MongoBackend: "client" and "serverSelectionTimeoutMs" exclude each other: give one',
    ],
    [{ client: {} as never }, "MongoBackend.client: must be a MongoClient, got {}"],
    [{ uri: "http://example.com" }, "MongoBackend: the connection options are not valid: "],
    [{ password: "secret" }, 'MongoBackend.password: is given without "user"'],
    // A password is never shown.
    [{ password: 12345 as never }, "MongoBackend.password: must be a string"],
    [{ extra: [] as never }, "MongoBackend.extra: must be an object of MongoClient options, got []"],
    [
      { database: "a.b" },
      'MongoBackend.database: must be a database name without /\\. "$ and at most 63 bytes, got "a.b"',
    ],
    [
      { uri: "mongodb://h/a%2Eb" },
      'MongoBackend.uri: names the database "a.b", which must be a database name without /\\. "$ and at most 63 bytes',
    ],
    [
      { collection: "system.users" },
      'MongoBackend.collection: must be a collection name without $ that does not start with "system.", got "system.users"',
    ],
    [{ logger: {} as never }, "MongoBackend.logger: must be a logger with warn and error methods, got {}"],
    [{ hots: "x" } as never, "MongoBackend.hots: unknown option (expected: uri, host, port, user, password, database,"],
  ];
  for (const [options, message] of cases) {
    assert.throws(() => new MongoBackend(options), (error: Error) => {
      assert.ok(error instanceof ImproperlyConfigured, `${message}: got ${error}`);
      assert.ok(error.message.startsWith(message), `${error.message} should start with ${message}`);
      return true;
    });
  }
});

Deno.test("MongoBackend() never mutates 'extra' and takes the database from the URI", () => {
  const extra = Object.freeze({ appName: "tracking", auth: Object.freeze({ username: "u", password: "p" }) });
  const mongo = new MongoBackend({ uri: "mongodb://127.0.0.1:1/from_uri?w=1", user: "me", password: "pw", extra });
  assert.deepEqual(extra, { appName: "tracking", auth: { username: "u", password: "p" } });
  assert.equal(mongo.database, "from_uri");
  assert.equal(new MongoBackend({ host: "localhost" }).database, "eventtracking");
});

Deno.test("MongoBackend() warns when 'extra' makes writes unacknowledged", () => {
  const logger = new RecordingLogger();
  new MongoBackend({ extra: { w: 0 }, logger });
  assert.match(logger.warnings[0], /unacknowledged \(w: 0\)/);
});

Deno.test("eventObjectId() is deterministic, keeps the second of a UUIDv7 and separates distinct ids", () => {
  const events = makeEvents(20_000);
  const ids = new Set(events.map((event) => eventObjectId(event.id).toHexString()));
  assert.equal(ids.size, events.length);
  const first = events[0];
  assert.equal(eventObjectId(first.id).toHexString(), eventObjectId(first.id).toHexString());
  assert.equal(
    eventObjectId(first.id).getTimestamp().getTime(),
    Math.floor(Date.parse(first.timestamp) / 1000) * 1000,
  );
  // Not a UUIDv7: the first 12 bytes of its SHA-256.
  assert.equal(eventObjectId("abc").toHexString(), "ba7816bf8f01cfea414140de");
});

Deno.test("MongoBackend.send() stores each event as its memory twin with a BSON Date timestamp", async () => {
  // The reference's test_mongodb_integration.py test_sequential_events.
  await withDatabase(async (database, inspect) => {
    const mongo = backend(database);
    const mem = new InMemoryBackend();
    const tracker = new Tracker({ backends: { mongo, mem } });
    for (let i = 0; i < 10; i++) {
      tracker.emit("org.test.user.login", {
        username: "test_user",
        user_id: 10,
        email: "test@example.com",
        sequence: i,
        current_time: new Date().toISOString(),
      });
    }
    await tracker.close();
    const docs = await inspect.db(database).collection("events").find().sort({ "data.sequence": 1 }).toArray();
    assert.equal(docs.length, 10);
    docs.forEach((doc, i) => {
      const event = mem.events[i];
      assert.ok(doc.timestamp instanceof Date);
      assert.deepEqual(doc, {
        _id: eventObjectId(event.id),
        id: event.id,
        name: event.name,
        timestamp: new Date(event.timestamp),
        context: event.context,
        data: event.data,
      });
      assert.equal("_id" in event, false);
    });
  });
});

/** A client that records the commands it sends. */
function monitoredClient(): { client: MongoClient; commands: Document[] } {
  const client = new MongoClient(server.uri, { monitorCommands: true });
  const commands: Document[] = [];
  client.on("commandStarted", (started) => commands.push(started.command));
  return { client, commands };
}

Deno.test("MongoBackend.send() batches writes into unordered insertMany calls of batchSize events", async () => {
  await withDatabase(async (database) => {
    const { client, commands } = monitoredClient();
    const mongo = new MongoBackend({ client, database, batchSize: 5, flushIntervalMs: 60_000 });
    const sent = makeEvents(12).map((event) => mongo.send(event));
    await sent[9]; // the second full batch is written without waiting for a flush
    await mongo.close();
    await Promise.all(sent);
    const inserts = commands.filter((command) => command.insert === "events");
    assert.deepEqual(inserts.map((command) => command.documents.length), [5, 5, 2]);
    assert.ok(inserts.every((command) => command.ordered === false));
    await client.close();
  });
});

Deno.test("MongoBackend.send() writes a partial batch flushIntervalMs after its first event", async () => {
  await withDatabase(async (database, inspect) => {
    const mongo = backend(database, { batchSize: 1000, flushIntervalMs: 20 });
    await mongo.send(makeEvents(1)[0]);
    assert.equal(await inspect.db(database).collection("events").countDocuments(), 1);
    await mongo.close();
  });
});

Deno.test("MongoBackend.send() never creates a second document when an event is redelivered", async () => {
  await withDatabase(async (database, inspect) => {
    const [event, other] = makeEvents(2);
    const first = backend(database);
    // Twice in one batch, then in a later batch.
    await Promise.all([first.send(event), first.send(other), first.send(event)]);
    await first.send(event);
    const metrics: MetricsSnapshot = {};
    first.collectMetrics("mongo", metrics);
    assert.equal(metrics.mongo.delivered, 4);
    assert.equal(metrics.mongo.failed, 0);
    await first.close();
    // A new process redelivering it (e.g. from a dead-letter file).
    const second = backend(database);
    await second.send(event);
    await second.close();
    const collection = inspect.db(database).collection("events");
    assert.equal(await collection.countDocuments({ id: event.id }), 1);
    assert.equal(await collection.countDocuments(), 2);
  });
});

Deno.test("MongoBackend creates the indexes on name and timestamp (descending) once", async () => {
  await withDatabase(async (database, inspect) => {
    const { client, commands } = monitoredClient();
    const mongo = new MongoBackend({ client, database, batchSize: 2 });
    await Promise.all(makeEvents(6).map((event) => mongo.send(event)));
    await mongo.close();
    assert.equal(commands.filter((command) => command.createIndexes === "events").length, 1);
    const indexes = await inspect.db(database).collection("events").listIndexes().toArray();
    const keys = Object.fromEntries(indexes.map((index) => [index.name, index.key]));
    assert.deepEqual(keys["name_1"], { name: 1 });
    assert.deepEqual(keys["timestamp_-1"], { timestamp: -1 });
    await client.close();
  });
});

Deno.test("MongoBackend logs an index-creation failure and still writes the events", async () => {
  await withDatabase(async (database, inspect) => {
    const client = new MongoClient(server.uri);
    // The server refuses createIndexes (as a user without the createIndex privilege would see).
    const db = client.db.bind(client);
    client.db = ((name: string) => {
      const handle = db(name);
      const collection = handle.collection.bind(handle);
      handle.collection = ((collectionName: string) =>
        Object.assign(collection(collectionName), {
          createIndexes: () => Promise.reject(new MongoServerError({ message: "not authorized", code: 13 })),
        })) as typeof handle.collection;
      return handle;
    }) as typeof client.db;
    const logger = new RecordingLogger();
    const mongo = new MongoBackend({ client, database, logger });
    await mongo.send(makeEvents(1)[0]);
    await mongo.close();
    assert.equal(await inspect.db(database).collection("events").countDocuments(), 1);
    assert.equal(logger.errors.length, 1);
    assert.match(logger.errors[0].message, /could not create the indexes .*events are still written/);
    await client.close();
  });
});

Deno.test({
  name: "MongoBackend logs a conflicting index definition and still writes the events",
  ignore: skipUnlessRealMongod("congodb accepts a second index of the same name with other keys"),
  fn: async () => {
    await withDatabase(async (database, inspect) => {
      await inspect.db(database).collection("events").createIndex({ timestamp: 1 }, { name: "timestamp_-1" });
      const logger = new RecordingLogger();
      const mongo = backend(database, { logger });
      await mongo.send(makeEvents(1)[0]);
      await mongo.close();
      assert.equal(await inspect.db(database).collection("events").countDocuments(), 1);
      assert.equal(logger.errors.length, 1);
    });
  },
});

Deno.test("MongoBackend.send() rejects once its retries are exhausted, and an unawaited rejection is safe", async () => {
  const logger = new RecordingLogger();
  const mongo = new MongoBackend({
    uri: `mongodb://127.0.0.1:${freePort()}/?directConnection=true`,
    extra: { serverSelectionTimeoutMS: 50 },
    maxRetries: 2,
    retryDelayMs: 1,
    logger,
  });
  const [awaited, ignored] = makeEvents(2);
  const result = mongo.send(awaited);
  mongo.send(ignored); // nobody awaits this one: it must not become an unhandled rejection
  await assert.rejects(result, (error: Error) => {
    assert.match(error.message, /Cannot write 2 event\(s\) to MongoDB .*still failing after 2 retries/);
    assert.equal((error.cause as Error).name, "MongoServerSelectionError");
    return true;
  });
  await mongo.close();
  const metrics: MetricsSnapshot = {};
  mongo.collectMetrics("mongo", metrics);
  assert.deepEqual(metrics.mongo, {
    received: 2,
    passed: 0,
    dropped: 0,
    delivered: 0,
    failed: 2,
    processorErrors: 0,
    retried: 4,
    deadLettered: 0,
    queueDepth: 0,
  });
  assert.equal(logger.errors.length, 1);
});

/** A generous bound that proves a call does not hang (the driver's own timeouts are 30 s); not a timing assertion. */
const NO_HANG_MS = 20_000;

/** A loopback server that accepts connections and never answers: a hung MongoDB. */
function silentServer(): { uri: string; close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) conns.push(conn);
    } catch { /* closed */ }
  })();
  return {
    uri: `mongodb://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/?directConnection=true`,
    async close() {
      listener.close();
      await accepting;
      for (const conn of conns) conn.close();
    },
  };
}

/** How a promise settled, and after how many milliseconds. */
async function timed(promise: Promise<unknown>): Promise<{ ms: number; error?: Error }> {
  const started = performance.now();
  try {
    await promise;
    return { ms: performance.now() - started };
  } catch (error) {
    return { ms: performance.now() - started, error: error as Error };
  }
}

Deno.test("MongoBackend with default options fails fast when MongoDB is down or does not answer", async () => {
  // No retries of its own and 5 s timeouts, where the driver would wait 30 s: the router owns the retries.
  const silent = silentServer();
  try {
    const down = new MongoBackend({
      uri: `mongodb://127.0.0.1:${freePort()}/?directConnection=true`,
      logger: new RecordingLogger(),
    });
    const hung = new MongoBackend({ uri: silent.uri, logger: new RecordingLogger() });
    const [event] = makeEvents(1);
    const [refused, unanswered] = await Promise.all([timed(down.send(event)), timed(hung.send(event))]);
    console.log(`port closed: send rejected after ${Math.round(refused.ms)} ms (${refused.error?.message})`);
    console.log(`server silent: send rejected after ${Math.round(unanswered.ms)} ms (${unanswered.error?.message})`);
    assert.ok(refused.error instanceof MongoServerSelectionError, String(refused.error));
    assert.ok(unanswered.error instanceof MongoServerSelectionError, String(unanswered.error));
    assert.match(unanswered.error.message, /timed out/);
    assert.ok(refused.ms < NO_HANG_MS && unanswered.ms < NO_HANG_MS, `${refused.ms} ms, ${unanswered.ms} ms`);
    for (const mongo of [down, hung]) {
      const closed = await timed(mongo.close());
      console.log(`close() resolved after ${Math.round(closed.ms)} ms`);
      assert.equal(closed.error, undefined);
      assert.ok(closed.ms < NO_HANG_MS, `${closed.ms} ms`);
      const metrics: MetricsSnapshot = {};
      mongo.collectMetrics("mongo", metrics);
      assert.deepEqual([metrics.mongo.failed, metrics.mongo.retried, metrics.mongo.queueDepth], [1, 0, 0]);
    }
  } finally {
    await silent.close();
  }
});

Deno.test("MongoBackend passes its timeouts to the client unless 'extra' or 'uri' sets them", async () => {
  const silent = silentServer();
  const cases: [MongoBackendOptions, RegExp][] = [
    [{ serverSelectionTimeoutMs: 300, connectTimeoutMs: 0 }, /^Server selection timed out after 300 ms$/],
    [
      { serverSelectionTimeoutMs: 60_000, connectTimeoutMs: 0, extra: { serverSelectionTimeoutMS: 300 } },
      /^Server selection timed out after 300 ms$/,
    ],
    [
      { uri: `${silent.uri}&serverselectiontimeoutms=300`, serverSelectionTimeoutMs: 60_000, connectTimeoutMs: 0 },
      /^Server selection timed out after 300 ms$/,
    ],
    [{ serverSelectionTimeoutMs: 600, connectTimeoutMs: 100 }, /^connection .* timed out$/],
    [
      { serverSelectionTimeoutMs: 600, connectTimeoutMs: 100, extra: { connectTimeoutMS: 0 } },
      /^Server selection timed out after 600 ms$/,
    ],
    [
      { uri: `${silent.uri}&connectTimeoutMS=0`, serverSelectionTimeoutMs: 600, connectTimeoutMs: 100 },
      /^Server selection timed out after 600 ms$/,
    ],
  ];
  try {
    for (const [options, message] of cases) {
      const mongo = new MongoBackend({ uri: silent.uri, logger: new RecordingLogger(), ...options });
      await assert.rejects(mongo.send(makeEvents(1)[0]), (error: Error) => {
        assert.ok(error instanceof MongoServerSelectionError, String(error));
        assert.match(error.message, message, JSON.stringify(options));
        return true;
      });
      await mongo.close();
    }
  } finally {
    await silent.close();
  }
});

Deno.test("AsyncRoutingBackend owns the retries of a dead MongoBackend and dead-letters every event", async () => {
  const deadLetter = new InMemoryBackend();
  const logger = new RecordingLogger();
  const mongo = new MongoBackend({
    uri: `mongodb://127.0.0.1:${freePort()}/?directConnection=true`,
    serverSelectionTimeoutMs: 300,
    logger,
  });
  const tracker = new Tracker({
    backends: {
      events: new AsyncRoutingBackend({
        backendName: "events",
        backends: { mongo },
        maxAttempts: 2,
        backoff: { initialMs: 0 },
        deadLetter,
        logger,
      }),
    },
  });
  for (let i = 0; i < 10; i++) tracker.emit("dead.mongo", { i });
  const flushed = await timed(tracker.flush());
  console.log(`tracker.flush() resolved after ${Math.round(flushed.ms)} ms`);
  assert.equal(flushed.error, undefined);
  const letters = deadLetter.events as DeadLetter[];
  assert.equal(letters.length, 10);
  assert.deepEqual(letters.map((letter) => (letter.data as { i: number }).i).sort((a, b) => a - b), [
    ...Array(10).keys(),
  ]);
  for (const { deadLetter: info } of letters) {
    assert.equal(info.backend, "mongo");
    assert.equal(info.attempts, 2);
    assert.match(info.error, /ECONNREFUSED|Server selection timed out/);
  }
  const metrics: MetricsSnapshot = {};
  mongo.collectMetrics("mongo", metrics);
  assert.deepEqual([metrics.mongo.received, metrics.mongo.failed, metrics.mongo.retried], [20, 20, 0]);
  const closed = await timed(tracker.close());
  assert.equal(closed.error, undefined);
  assert.ok(closed.ms < NO_HANG_MS, `${closed.ms} ms`);
});

Deno.test("MongoBackend.close({ deadlineMs }) stops waiting for writes to a dead server", async () => {
  // Server selection would wait a minute; in the second case a retry would wait 30 to 60 s.
  const cases: MongoBackendOptions[] = [
    { serverSelectionTimeoutMs: 60_000 },
    { serverSelectionTimeoutMs: 50, maxRetries: 5, retryDelayMs: 60_000 },
  ];
  for (const options of cases) {
    const logger = new RecordingLogger();
    const mongo = new MongoBackend({
      uri: `mongodb://127.0.0.1:${freePort()}/?directConnection=true`,
      flushIntervalMs: 0,
      logger,
      ...options,
    });
    const sent = makeEvents(3).map((event) => mongo.send(event));
    await new Promise((resolve) => setTimeout(resolve, 100)); // the batch is being written, or waiting to retry
    const closed = await timed(mongo.close({ deadlineMs: 200 }));
    console.log(`close({ deadlineMs: 200 }) resolved after ${Math.round(closed.ms)} ms`);
    assert.equal(closed.error, undefined);
    assert.ok(closed.ms < 10_000, `${closed.ms} ms`);
    // The writes given up on fail promptly, without connecting again.
    const results = await Promise.allSettled(sent);
    assert.deepEqual(results.map((result) => result.status), ["rejected", "rejected", "rejected"]);
    assert.match(logger.warnings[0], /closed before 3 event\(s\) were written .*the 200 ms deadline expired/);
    const metrics: MetricsSnapshot = {};
    mongo.collectMetrics("mongo", metrics);
    assert.deepEqual([metrics.mongo.failed, metrics.mongo.queueDepth], [3, 0]);
    assert.equal(mongo.saturation(), 0);
    await assert.rejects(mongo.send(makeEvents(1)[0]), /as it is closed/);
  }
});

Deno.test("MongoBackend.close({ deadlineMs }) flushes as usual when MongoDB answers in time", async () => {
  await withDatabase(async (database, inspect) => {
    const logger = new RecordingLogger();
    const mongo = backend(database, { flushIntervalMs: 60_000, logger });
    const sent = makeEvents(3).map((event) => mongo.send(event));
    await mongo.close({ deadlineMs: 10_000 });
    await Promise.all(sent);
    assert.deepEqual(logger.warnings, []);
    assert.equal(await inspect.db(database).collection("events").countDocuments(), 3);
  });
});

Deno.test("MongoBackend.saturation() is the share of maxQueueSize buffered or being written", async () => {
  await withDatabase(async (database) => {
    const mongo = backend(database, { batchSize: 10, flushIntervalMs: 60_000, maxQueueSize: 4 });
    assert.equal(mongo.saturation(), 0);
    const sent = makeEvents(3).map((event) => mongo.send(event));
    assert.equal(mongo.saturation(), 0.75);
    await mongo.flush();
    await Promise.all(sent);
    assert.equal(mongo.saturation(), 0);
    await mongo.close();
  });
});

Deno.test("MongoBackend.send() fails only the event MongoDB cannot store, without retrying it", async () => {
  await withDatabase(async (database, inspect) => {
    const [good] = makeEvents(1);
    const data: Record<string, unknown> = {};
    data.self = data; // BSON cannot encode a cycle
    const bad: TrackingEvent = { ...makeEvents(1)[0], data };
    const mongo = backend(database);
    const results = await Promise.allSettled([mongo.send(good), mongo.send(bad)]);
    await mongo.close();
    assert.equal(results[0].status, "fulfilled");
    assert.equal(results[1].status, "rejected");
    assert.match(String((results[1] as PromiseRejectedResult).reason), /circular/i);
    const metrics: MetricsSnapshot = {};
    mongo.collectMetrics("mongo", metrics);
    assert.deepEqual([metrics.mongo.delivered, metrics.mongo.failed, metrics.mongo.retried], [1, 1, 0]);
    assert.equal(await inspect.db(database).collection("events").countDocuments(), 1);
  });
});

Deno.test("MongoBackend.send() rejects an event without an id, a full queue and a closed backend", async () => {
  await withDatabase(async (database, inspect) => {
    const mongo = backend(database, { batchSize: 10, flushIntervalMs: 60_000, maxQueueSize: 2 });
    const [a, b, c] = makeEvents(3);
    await assert.rejects(mongo.send({ ...a, id: "" }), TypeError);
    const accepted = [mongo.send(a), mongo.send(b)];
    await assert.rejects(mongo.send(c), /queue is full: capacity is 2 events/);
    await mongo.close();
    await Promise.all(accepted);
    await assert.rejects(mongo.send(c), /as it is closed/);
    assert.equal(await inspect.db(database).collection("events").countDocuments(), 2);
  });
});

Deno.test("MongoBackend.collectMetrics() counts received, delivered and queued events", async () => {
  await withDatabase(async (database) => {
    const mongo = backend(database, { flushIntervalMs: 200 });
    const tracker = new Tracker({ backends: { mongo } });
    for (const name of ["a", "b", "c"]) tracker.emit(name);
    assert.equal(tracker.metrics()["root/mongo"].queueDepth, 3);
    assert.equal(tracker.metrics()["root/mongo"].received, 3);
    await tracker.flush();
    const after = tracker.metrics()["root/mongo"];
    assert.deepEqual([after.received, after.delivered, after.failed, after.queueDepth], [3, 3, 0, 0]);
    await tracker.close();
  });
});

Deno.test("MongoBackend.close() leaves an injected client open", async () => {
  await withDatabase(async (database) => {
    const client = new MongoClient(server.uri);
    const mongo = new MongoBackend({ client, database });
    await mongo.send(makeEvents(1)[0]);
    await mongo.close();
    await mongo.close(); // a second close is a no-op
    assert.equal(await client.db(database).collection("events").countDocuments(), 1);
    await client.close();
  });
});

Deno.test({
  // Always on a congodb of its own (even with MONGODB_URI set): the test must stop and restart the server.
  name: "MongoBackend delivers every event exactly once when the server restarts mid-stream",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "mongo_fault_" });
    const own = await startMongoServer({ persistPath: `${dir}/db.json`, forceCongo: true });
    const inspect = new MongoClient(own.uri);
    try {
      const mongo = new MongoBackend({
        uri: own.uri,
        database: "fault",
        batchSize: 20,
        flushIntervalMs: 5,
        maxRetries: 30,
        retryDelayMs: 50,
        extra: { serverSelectionTimeoutMS: 1_000 },
        logger: new RecordingLogger(),
      });
      const events = makeEvents(600);
      const sent: Promise<void>[] = [];
      let restart: Promise<void> | undefined;
      for (let i = 0; i < events.length; i++) {
        sent.push(mongo.send(events[i]));
        if (i === 200) restart = own.restart(300);
        if (i % 20 === 19) await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await restart;
      const results = await Promise.allSettled(sent);
      const rejected = results.filter((result) => result.status === "rejected");
      assert.deepEqual(rejected, []);
      await mongo.close();
      const metrics: MetricsSnapshot = {};
      mongo.collectMetrics("mongo", metrics);
      assert.equal(metrics.mongo.delivered, 600);
      assert.ok(metrics.mongo.retried > 0, "the restart should have made some batches retry");
      const collection = inspect.db("fault").collection("events");
      assert.equal(await collection.countDocuments(), 600);
      const repeated = await collection.aggregate([
        { $group: { _id: "$id", n: { $sum: 1 } } },
        { $match: { n: { $gt: 1 } } },
      ]).toArray();
      assert.deepEqual(repeated, []);
      const stored = new Set((await collection.find({}, { projection: { id: 1 } }).toArray()).map((doc) => doc.id));
      assert.deepEqual(stored, new Set(events.map((event) => event.id)));
    } finally {
      await inspect.close();
      await own.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("createTracker() builds MongoBackend from the reference's ENGINE and snake_case options", async () => {
  await withDatabase(async (database, inspect) => {
    const tracker = createTracker({
      backends: {
        mongo: {
          ENGINE: "eventtracking.backends.mongodb.MongoBackend",
          OPTIONS: {
            uri: server.uri,
            database,
            collection: "tracking",
            batch_size: 10,
            flush_interval_ms: 5,
            server_selection_timeout_ms: 2_000,
            connect_timeout_ms: 2_000,
          },
        },
      },
    }, { logger: new RecordingLogger(), engines: mongoEngines() });
    assert.ok(tracker.getBackend("mongo") instanceof MongoBackend);
    for (let i = 0; i < 25; i++) tracker.emit("config.test", { i });
    await tracker.close();
    assert.equal(await inspect.db(database).collection("tracking").countDocuments({}), 25);
  });
  const engines = mongoEngines();
  assert.throws(
    () => createTracker({ backends: { m: { ENGINE: "mongo", OPTIONS: { hots: "x" } } } }, { engines }),
    /^ImproperlyConfigured: backends\.m\.OPTIONS\.hots: unknown option \(expected: uri, host, port, user, password, database, collection, extra, server_?/i,
  );
  // The same check, and the same message after the path, as the constructor's.
  for (
    const [options, snake] of [[{ batchSize: 0 }, { batch_size: 0 }], [
      { uri: "mongodb://a", host: "b" },
      null,
    ]] as const
  ) {
    let constructorMessage = "";
    try {
      new MongoBackend(options as MongoBackendOptions);
    } catch (error) {
      constructorMessage = (error as ImproperlyConfigured).message;
    }
    assert.throws(
      () => createTracker({ backends: { m: { ENGINE: "mongo", OPTIONS: snake ?? options } } }, { engines }),
      (error: unknown) => {
        assert.ok(error instanceof ImproperlyConfigured);
        const where = snake === null ? "backends.m.OPTIONS" : "backends.m.OPTIONS.batch_size";
        assert.equal(error.message, where + constructorMessage.slice(constructorMessage.indexOf(":")));
        return true;
      },
    );
  }
  // Only code gives a client or a logger.
  assert.throws(
    () => createTracker({ backends: { m: { ENGINE: "mongo", OPTIONS: { client: {} } } } }, { engines }),
    /^ImproperlyConfigured: backends\.m\.OPTIONS\.client: unknown option/,
  );
  // Without its engines, the configuration says where they are.
  assert.throws(
    () => createTracker({ backends: { m: { ENGINE: "mongo" } } }),
    /^ImproperlyConfigured: backends\.m: the MongoDB backend lives in "@edx\/event-tracking\/mongo".*engines: mongoEngines\(\)/,
  );
});

Deno.test("mongoEngines(defaultUri) gives both ENGINE names; the default URI serves the specs that name no server", async () => {
  const engines = mongoEngines("mongodb://127.0.0.1:1/fromdefault");
  assert.deepEqual(Object.keys(engines).sort(), ["eventtracking.backends.mongodb.MongoBackend", "mongo"]);
  const tracker = createTracker({
    backends: {
      a: { ENGINE: "mongo" },
      b: { ENGINE: "eventtracking.backends.mongodb.MongoBackend", OPTIONS: { host: "127.0.0.1", port: 1 } },
    },
  }, { engines, logger: new RecordingLogger() });
  assert.equal((tracker.getBackend("a") as MongoBackend).database, "fromdefault");
  assert.equal((tracker.getBackend("b") as MongoBackend).database, "eventtracking");
  await tracker.close(); // nothing was sent, so nothing connected
});
