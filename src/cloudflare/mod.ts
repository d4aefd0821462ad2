/**
 * The collector on Cloudflare Workers: {@linkcode createWorker} returns the
 * Worker's `fetch` and `queue` handlers, built from its bindings;
 * {@linkcode EventBusObject} is the Durable Object that fans bus events out
 * to WebSocket subscribers, {@linkcode DeadLetterObject} the one that
 * keeps the async branches' dead letters until they are replayed, and
 * {@linkcode MetricsObject} the one that sums the counters of the Worker's
 * isolates ({@linkcode MetricsReporter} reports each isolate's). Under
 * them: the Queue transport of `async_routing` branches
 * ({@linkcode CloudflareQueueTransport}, {@linkcode receiveQueueBatch}) and
 * the Durable Object bus of `event_bus` branches ({@linkcode DurableObjectBus}).
 *
 * A Worker is three lines (plus RegexFilter's WebAssembly, which a Worker
 * cannot compile from bytes; bindings as in worker/wrangler.toml):
 *
 * ```ts ignore
 * import wasm from "./regex_filter.wasm"; // a copy of the package's wasm/regex_filter.wasm
 * import { useRegexWasmModule } from "@edx/event-tracking";
 * import { createWorker, DeadLetterObject, EventBusObject, MetricsObject } from "@edx/event-tracking/cloudflare";
 * import { mongoEngines } from "@edx/event-tracking/mongo"; // only for MongoDB sinks
 *
 * useRegexWasmModule(wasm);
 * export { DeadLetterObject, EventBusObject, MetricsObject };
 * export default createWorker({ engines: (env) => mongoEngines(env.MONGODB_URI) }) satisfies ExportedHandler<Env>;
 * ```
 *
 * Only structural types of the Workers runtime are used (names ending in
 * `Like`, or prefixed `Cloudflare`), so this entry loads, and is tested, in
 * any runtime; `EventBusObject`, `DeadLetterObject` and `MetricsObject` extend the runtime's
 * `DurableObject` in workerd only.
 *
 * @example The queue() handler delivers what fetch() queued
 * ```ts
 * import { createWorker, type CloudflareQueueMessage, type WorkerEnv } from "@edx/event-tracking/cloudflare";
 * import assert from "node:assert/strict";
 *
 * const worker = createWorker({
 *   config: { backends: { logs: { ENGINE: "async_routing", OPTIONS: { backends: { sink: { ENGINE: "memory" } } } } } },
 * });
 * const bodies: unknown[] = [];
 * const env: WorkerEnv = {
 *   EVENT_TRACKING_TOKEN: "secret",
 *   EVENTS_QUEUE: { sendBatch: async (messages) => void bodies.push(...[...messages].map((m) => m.body)) },
 *   EVENT_BUS: { idFromName: (name) => name, get: () => ({ fetch, publish: () => Promise.resolve(0) }) },
 * };
 * const ctx = { waitUntil() {}, passThroughOnException() {} };
 * const request = new Request("https://collector.example/v1/events", {
 *   method: "POST",
 *   headers: { authorization: "Bearer secret" },
 *   body: JSON.stringify({ name: "edx.ui.click" }),
 * });
 * assert.equal((await worker.fetch(request, env, ctx)).status, 202);
 *
 * const acked: string[] = [];
 * const messages: CloudflareQueueMessage[] = bodies.map((body, i) => ({
 *   id: `m${i}`,
 *   body: JSON.parse(JSON.stringify(body)),
 *   attempts: 1,
 *   ack: () => void acked.push(`m${i}`),
 *   retry() {},
 * }));
 * await worker.queue({ queue: "edx-events", messages }, env, ctx);
 * assert.deepEqual(acked, ["m0"]); // delivered to every sink of its branch
 * ```
 *
 * @module
 */

export {
  buildCollector,
  type BuildCollectorOptions,
  type Collector,
  defaultWorkerConfig,
  type WorkerEnv,
} from "./collector.ts";
export {
  type CollectorWorker,
  type ConsumerLifetime,
  createWorker,
  type CreateWorkerOptions,
  type WorkerExecutionContext,
} from "./worker.ts";
export {
  DEAD_LETTER_OBJECT_NAME,
  type DeadLetterBatch,
  type DeadLetterNamespaceLike,
  DeadLetterObject,
  DeadLetterObjectSink,
  type DeadLetterObjectSinkOptions,
  type DeadLetterObjectStateLike,
  type DeadLetterObjectStub,
  durableObjectDeadLetterStore,
  type DurableObjectDeadLetterStoreOptions,
  MAX_DEAD_LETTERS_PER_BRANCH,
  MAX_DEAD_LETTERS_PER_CALL,
  MAX_REPLAY_PER_REQUEST,
  REPLAY_CHUNK,
  type SqlCursorLike,
  type SqlStorageLike,
} from "./dead_letter_object.ts";
export {
  MAX_METRICS_PATHS,
  MAX_STORED_METRICS_PATHS,
  METRICS_GAUGE_TTL_MS,
  METRICS_OBJECT_NAME,
  METRICS_REPORT_INTERVAL_MS,
  type MetricsNamespaceLike,
  MetricsObject,
  type MetricsObjectOptions,
  type MetricsObjectStateLike,
  type MetricsObjectStub,
  MetricsReporter,
  type MetricsReporterOptions,
} from "./metrics_object.ts";
export {
  DurableObjectBase,
  DurableObjectBus,
  type DurableObjectBusOptions,
  type DurableObjectConstructor,
  type DurableObjectNamespaceLike,
  type DurableObjectStateLike,
  EVENT_BUS_OBJECT_NAME,
  EventBusObject,
  type EventBusObjectStub,
  type HibernatableWebSocket,
  MAX_CACHED_FILTERS,
  MAX_PATTERN_BYTES,
  MAX_TOPIC_LENGTH,
} from "./event_bus_object.ts";
export {
  type CloudflareMessageBatch,
  type CloudflareQueue,
  type CloudflareQueueMessage,
  type CloudflareQueueSendRequest,
  CloudflareQueueTransport,
  type CloudflareQueueTransportOptions,
  MAX_BATCH_BYTES,
  MAX_BATCH_MESSAGES,
  MAX_DELAY_SECONDS,
  MAX_MESSAGE_BYTES,
  receiveQueueBatch,
} from "./queue.ts";
