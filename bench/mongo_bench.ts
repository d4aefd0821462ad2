/**
 * MongoBackend against the raw driver on the same server, with the same
 * documents, in the same run; and the reference's performance test
 * (test_mongodb_performance.py: 20,000 events with a 600-byte payload in at
 * most 1.75 s).
 *
 * Uses the server `MONGODB_URI` names, or starts congodb in a child process:
 *
 *   deno bench --allow-read --allow-write --allow-env --allow-net --allow-run --allow-sys bench/mongo_bench.ts
 *
 * `EVENT_TRACKING_PERF_EVENTS` and `EVENT_TRACKING_PERF_PAYLOAD_SIZE` change the
 * workload, as in the reference.
 */

import { MongoClient } from "mongodb";
import { InMemoryBackend, Tracker } from "@edx/event-tracking";
import { MongoBackend, toMongoDocument } from "@edx/event-tracking/mongo";
import { startMongoServer, testDatabaseName } from "../test/_mongo_server.ts";

const EVENTS = Number(Deno.env.get("EVENT_TRACKING_PERF_EVENTS") ?? 20_000);
const PAYLOAD_SIZE = Number(Deno.env.get("EVENT_TRACKING_PERF_PAYLOAD_SIZE") ?? 600);
const BATCH_SIZE = 500;
const LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

function payload(): string {
  let text = "";
  for (let i = 0; i < PAYLOAD_SIZE; i++) text += LETTERS[Math.floor(Math.random() * LETTERS.length)];
  return text;
}

const server = await startMongoServer();
const client = new MongoClient(server.uri);
const database = testDatabaseName();
const db = client.db(database);
// congodb runs in a child process that stops when this process exits (its standard input closes).

// The same events, and so the same documents, for every variant.
const sink = new InMemoryBackend();
const maker = new Tracker({ backends: { sink } });
for (let i = 0; i < EVENTS; i++) maker.emit("perf.event", { sequence: i, payload: payload() });
const events = sink.events;
const documents = events.map(toMongoDocument);

let collections = 0;
/** A fresh collection with the backend's indexes already made, so both sides maintain the same indexes. */
async function freshCollection(): Promise<string> {
  const name = `events_${collections++}`;
  await db.collection(name).createIndexes([{ key: { name: 1 } }, { key: { timestamp: -1 } }]);
  return name;
}

const group = `insert ${EVENTS} events with a ${PAYLOAD_SIZE}-byte payload`;

Deno.bench({
  name: "raw driver insertMany (unordered, one call)",
  group,
  baseline: true,
  n: 5,
  warmup: 1,
  async fn(b) {
    const collection = db.collection(await freshCollection());
    b.start();
    await collection.insertMany(documents, { ordered: false });
    b.end();
    await collection.drop();
  },
});

Deno.bench({
  name: `MongoBackend.send() + flush() (batchSize ${BATCH_SIZE})`,
  group,
  n: 5,
  warmup: 1,
  async fn(b) {
    const collection = await freshCollection();
    const mongo = new MongoBackend({ client, database, collection, batchSize: BATCH_SIZE });
    b.start();
    for (const event of events) mongo.send(event);
    await mongo.flush();
    b.end();
    await mongo.close();
    await db.collection(collection).drop();
  },
});

Deno.bench({
  name: `reference performance test: Tracker.emit() ${EVENTS} events to MongoBackend, then flush (limit 1.75 s)`,
  group: "reference performance test",
  n: 5,
  warmup: 1,
  async fn(b) {
    const collection = await freshCollection();
    const mongo = new MongoBackend({ client, database, collection, batchSize: BATCH_SIZE });
    const tracker = new Tracker({ backends: { mongo } });
    const payloads = events.map((event) => (event.data as { payload: string }).payload);
    b.start();
    const started = performance.now();
    for (let i = 0; i < EVENTS; i++) tracker.emit("perf.event", { sequence: i, payload: payloads[i] });
    await tracker.flush();
    const elapsed = (performance.now() - started) / 1000;
    b.end();
    console.log(
      `reference performance test: ${EVENTS} events in ${elapsed.toFixed(3)} s (${
        Math.round(EVENTS / elapsed)
      } events/s; limit 1.75 s: ${elapsed <= 1.75 ? "pass" : "FAIL"})`,
    );
    await tracker.close();
    await db.collection(collection).drop();
  },
});
