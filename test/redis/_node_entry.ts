/**
 * Entry of the Node.js bundle of test/redis/node_test.ts: publishes an event
 * through a tree to the Redis server named by the argument, consumes it back,
 * and prints what it got as JSON.
 *
 * @module
 */

import process from "node:process";
import { EventBusBackend, InMemoryBackend, Tracker } from "../../mod.ts";
import { RedisStreamsBus, RedisStreamsConsumer } from "../../src/redis/mod.ts";

const url = process.argv[2];
const bus = new RedisStreamsBus({ url, topicPrefix: "node", serviceName: "node" });
const tracker = new Tracker({
  backends: { bus: new EventBusBackend({ eventBusTrackingLogs: ["*"], transport: bus, consume: false }) },
});
tracker.context("edx.request", { user_id: 3 }, () => tracker.emit("node.event", { é: 1 }));
await tracker.close();
await bus.close();

const sink = new InMemoryBackend();
const consumer = new RedisStreamsConsumer({
  url,
  topicPrefix: "node",
  group: "g",
  consumer: "n",
  target: sink,
  blockMs: 100,
});
const running = consumer.run();
const deadline = Date.now() + 10_000;
while (consumer.metrics().delivered < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
await consumer.stop();
await running;
console.log(JSON.stringify({ events: sink.events, published: bus.published, metrics: consumer.metrics() }));
