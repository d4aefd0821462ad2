/**
 * The Open edX event bus over Redis Streams, for Deno and Node.js (the
 * official node-redis client): {@linkcode RedisStreamsBus} publishes an
 * {@linkcode EventBusBackend}'s events exactly as `edx-event-bus-redis`
 * does, so event-routing-backends and Aspects read them unchanged;
 * {@linkcode RedisStreamsConsumer} reads such a stream (written by this
 * library or by Open edX) through a consumer group into a tracker,
 * acknowledging only what the tree accepted; {@linkcode presets} are the
 * allowlists of Open edX's consumers, and {@linkcode checkEventBusTree}
 * refuses a tree that would publish an event twice to one stream.
 *
 * Several collectors can publish to one stream, and several consumers of one
 * group share it: the way to scale beyond one machine. `deno task consume`
 * runs a consumer ({@link ./consume.ts}).
 *
 * @example Publish from a tree, then consume into another (needs a Redis server)
 * ```ts ignore
 * import { createTracker, InMemoryBackend } from "@edx/event-tracking";
 * import { asyncBusBranches, RedisStreamsBus, RedisStreamsConsumer } from "@edx/event-tracking/redis";
 *
 * const bus = new RedisStreamsBus({ url: "redis://localhost:6379", topicPrefix: "dev", serviceName: "lms" });
 * const producer = createTracker(
 *   asyncBusBranches({ backends: { analytics: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["*"] } } } }),
 *   { busTransport: () => bus },
 * );
 * producer.emit("problem_check", { problem_id: "p1" });
 * await producer.close();
 * await bus.close();
 *
 * const sink = new InMemoryBackend();
 * const consumer = new RedisStreamsConsumer({
 *   url: "redis://localhost:6379",
 *   topicPrefix: "dev",
 *   group: "event_tracking",
 *   consumer: "worker-1",
 *   target: sink,
 * });
 * const running = consumer.run();
 * // … later
 * await consumer.stop();
 * await running;
 * ```
 *
 * @module
 */

export { RedisStreamsBus, type RedisStreamsBusOptions } from "./bus.ts";
export {
  type DeliveryTarget,
  type RedisConsumerMetrics,
  RedisStreamsConsumer,
  type RedisStreamsConsumerOptions,
} from "./consumer.ts";
export { readRedisBusSettings, redisBusFromEnv, type RedisBusSettings, type RedisBusSetup } from "./env.ts";
export {
  asyncBusBranches,
  type BusDestination,
  checkEventBusTree,
  type CheckEventBusTreeOptions,
  EventNamePreset,
  type Presets,
  presets,
  resolvePresets,
} from "./presets.ts";
export {
  ANALYTICS_TOPIC,
  type DecodedEntry,
  decodeEntry,
  decodeTrackingLog,
  DEFAULT_STREAM_MAX_LEN,
  encodeEntry,
  encodeTrackingLog,
  type EntryMetadata,
  type EntryValue,
  type EventBusHeaders,
  eventTimestamp,
  HEADER_FIELDS,
  OPENEDX_EVENTS_VERSION,
  pythonIsoformat,
  pythonJsonDumps,
  streamName,
  TRACKING_EVENT_TYPE,
  TRACKING_LOG_SCHEMA,
  type TrackingLogData,
  UnusableEntryError,
} from "./wire.ts";
export type { RedisClientOptionsAlias } from "./_types.ts";
