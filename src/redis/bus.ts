/**
 * A bus transport over Redis Streams that publishes as `edx-event-bus-redis`
 * does, so that Open edX's own consumers (event-routing-backends, Aspects)
 * read the events unchanged.
 *
 * @module
 */

import { hostname } from "node:os";
import * as v from "valibot";
import { consoleLogger, type DiagnosticLogger } from "../diagnostics.ts";
import type { TrackingEvent } from "../event.ts";
import { PendingSet } from "../_pending.ts";
import { func, logger, nonNegativeInteger, options, parseOptions, positiveInteger, string } from "../_schema.ts";
import type { BusHandler, BusTransport } from "../transports/transport.ts";
import { type Arg, RedisConnection } from "./_connection.ts";
import type { RedisClientOptionsAlias } from "./_types.ts";
import {
  ANALYTICS_TOPIC,
  decodeEntry,
  DEFAULT_STREAM_MAX_LEN,
  encodeEntry,
  OPENEDX_EVENTS_VERSION,
  streamName,
  UnusableEntryError,
} from "./wire.ts";

/** Options of {@linkcode RedisStreamsBus}. */
export interface RedisStreamsBusOptions {
  /** The server: Open edX's `EVENT_BUS_REDIS_CONNECTION_URL` (`redis://[user:password@]host:port[/db]`, `rediss://` for TLS). @default "redis://localhost:6379" */
  url?: string;
  /** More node-redis `createClient` options (TLS certificates, say). The bus sets `RESP`, `disableOfflineQueue` and the reconnection strategy itself. */
  clientOptions?: RedisClientOptionsAlias;
  /** Open edX's `EVENT_BUS_TOPIC_PREFIX`: streams are named `<prefix>-<topic>`. @default no prefix */
  topicPrefix?: string;
  /**
   * The Open edX topic a bus topic (an event-bus backend's `backendName`)
   * publishes to: one for all, or a function of the bus topic. Open edX's
   * tracking events all go to `analytics`. @default "analytics"
   */
  topic?: string | ((busTopic: string) => string);
  /** Open edX's `EVENT_BUS_REDIS_STREAM_MAX_LEN`: `XADD … MAXLEN ~ <maxLen>`; 0 never trims. @default 10000 */
  maxLen?: number;
  /** Open edX's `EVENTS_SERVICE_NAME`: the `source` field is `openedx/<serviceName>/web`. @default "event-tracking" */
  serviceName?: string;
  /** The `sourcehost` field. @default this machine's host name */
  sourceHost?: string;
  /** The `sourcelib` field, a dotted version. @default the openedx-events version whose schema the payload follows */
  sourceLib?: string;
  /** How long connecting may take, in milliseconds. @default 5000 */
  connectTimeoutMs?: number;
  /** How long one `XADD` may take before the publish rejects, in milliseconds. @default 5000 */
  commandTimeoutMs?: number;
  /** How long a subscription's read blocks at most, in milliseconds: how soon `close()` stops it. @default 1000 */
  blockMs?: number;
  /** Where connection errors and subscriber failures are reported. @default consoleLogger */
  logger?: DiagnosticLogger;
}

const busOptions = /* @__PURE__ */ (() =>
  options({
    url: v.optional(string()),
    clientOptions: v.optional(
      v.custom<RedisClientOptionsAlias>((value) => typeof value === "object" && value !== null),
    ),
    topicPrefix: v.optional(string()),
    topic: v.optional(v.union([string(), func<(busTopic: string) => string>()], "must be a string or a function")),
    maxLen: v.optional(nonNegativeInteger()),
    serviceName: v.optional(string()),
    sourceHost: v.optional(string()),
    sourceLib: v.optional(string()),
    connectTimeoutMs: v.optional(positiveInteger()),
    commandTimeoutMs: v.optional(positiveInteger()),
    blockMs: v.optional(positiveInteger()),
    logger: v.optional(logger()),
  }))();

function defaultSourceHost(): string {
  try {
    return hostname();
  } catch {
    return "unknown"; // no permission to read it
  }
}

interface Subscription {
  readonly handlers: Set<BusHandler>;
  /** The id of the last entry read; undefined until the stream's end is known. */
  lastId: string | undefined;
}

type ReadReply = [Uint8Array, [Uint8Array, Uint8Array[] | null][]][] | null;

const decoder = new TextDecoder();

/**
 * Publishes each event to a Redis stream exactly as Open edX's
 * `edx-event-bus-redis` producer does: stream `<prefix>-analytics` (bare
 * `analytics` without a prefix), `XADD <stream> MAXLEN ~ <maxLen> *` with the
 * fields `type`, `id` (the event's id), `source`, `time`, `minorversion`,
 * `sourcehost`, `sourcelib`, then `event_data`, the Avro `TrackingLogData`
 * (see {@linkcode encodeEntry}). Unlike that producer, which logs and drops
 * a failed publish, `publish` returns a promise that rejects when the server
 * is unreachable or does not answer within `commandTimeoutMs`: an
 * {@linkcode EventBusBackend} under an async router then has the event
 * retried and, at last, dead-lettered.
 *
 * It connects on first use. `subscribe(topic, handler)` tails the topic's
 * stream from now on, from every producer sharing it (at most once, for live
 * views such as the collector's WebSocket subscriptions); durable,
 * acknowledged consumption is {@linkcode RedisStreamsConsumer}'s.
 *
 * @example Build a tree that publishes to Redis (nothing connects until an event is published)
 * ```ts
 * import { createTracker, type EventBusBackend } from "@edx/event-tracking";
 * import { RedisStreamsBus } from "@edx/event-tracking/redis";
 * import assert from "node:assert/strict";
 *
 * const bus = new RedisStreamsBus({ url: "redis://127.0.0.1:6379", topicPrefix: "dev", serviceName: "lms" });
 * const tracker = createTracker(
 *   { backends: { analytics: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["problem_check"] } } } },
 *   { busTransport: () => bus },
 * );
 * const backend = tracker.getBackend("analytics") as EventBusBackend;
 * assert.equal(bus.streamFor(backend.backendName), "dev-analytics");
 * assert.equal(bus.source, "openedx/lms/web");
 * await tracker.close();
 * await bus.close();
 * ```
 */
export class RedisStreamsBus implements BusTransport {
  /** `EVENT_BUS_TOPIC_PREFIX`, if any. */
  readonly topicPrefix: string | undefined;
  /** The `MAXLEN ~` of every `XADD`; 0 when streams are not trimmed. */
  readonly maxLen: number;
  /** The `source` field: `openedx/<serviceName>/web`. */
  readonly source: string;
  /** The `sourcehost` field. */
  readonly sourceHost: string;
  /** The `sourcelib` field. */
  readonly sourceLib: string;
  readonly #topic: string | ((busTopic: string) => string);
  readonly #connection: RedisConnection;
  readonly #logger: DiagnosticLogger;
  readonly #blockMs: number;
  readonly #pending = new PendingSet();
  readonly #subscriptions = new Map<string, Subscription>();
  #tailConnection: RedisConnection | undefined;
  #tail: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #closed = false;
  #published = 0;

  /**
   * Creates the bus; nothing connects until the first publish or subscription.
   *
   * @throws {ImproperlyConfigured} If an option is unknown or invalid.
   */
  constructor(options: RedisStreamsBusOptions = {}) {
    const o = parseOptions(busOptions, options, "RedisStreamsBus");
    this.#logger = o.logger ?? consoleLogger;
    this.topicPrefix = o.topicPrefix || undefined;
    this.#topic = o.topic ?? ANALYTICS_TOPIC;
    this.maxLen = o.maxLen ?? DEFAULT_STREAM_MAX_LEN;
    this.source = `openedx/${o.serviceName || "event-tracking"}/web`;
    this.sourceHost = o.sourceHost ?? defaultSourceHost();
    this.sourceLib = o.sourceLib ?? OPENEDX_EVENTS_VERSION;
    this.#blockMs = o.blockMs ?? 1_000;
    this.#connection = new RedisConnection({
      url: o.url,
      clientOptions: o.clientOptions,
      connectTimeoutMs: o.connectTimeoutMs,
      commandTimeoutMs: o.commandTimeoutMs,
      logger: this.#logger,
      label: "RedisStreamsBus",
    });
  }

  /** The server, without credentials. */
  get server(): string {
    return this.#connection.server;
  }

  /** Events published (acknowledged by the server) so far. */
  get published(): number {
    return this.#published;
  }

  /** The stream a bus topic publishes to: `<prefix>-<Open edX topic>`. */
  streamFor(busTopic: string): string {
    const topic = typeof this.#topic === "function" ? this.#topic(busTopic) : this.#topic;
    return streamName(topic, this.topicPrefix);
  }

  /**
   * Where a bus topic's events go, as one string (the server without
   * credentials, and the stream): two event-bus backends with the same
   * destination publish to the same stream (see {@linkcode checkEventBusTree}).
   */
  destination(busTopic: string): string {
    return `${this.server} ${this.streamFor(busTopic)}`;
  }

  /**
   * Adds the event to the topic's stream.
   *
   * @returns A promise that resolves once the server has added the entry, and
   *   rejects if it could not (unreachable, a timeout, an error reply, a
   *   closed bus) or should not: an event whose id is not a UUID (Open edX
   *   consumers parse it as one) or whose timestamp is not ISO 8601.
   */
  publish(topic: string, event: TrackingEvent): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("RedisStreamsBus is closed"));
    let args: Arg[];
    try {
      const stream = this.streamFor(topic);
      const trim = this.maxLen > 0 ? ["MAXLEN", "~", String(this.maxLen)] : [];
      args = [
        "XADD",
        stream,
        ...trim,
        "*",
        ...encodeEntry(event, { source: this.source, sourcehost: this.sourceHost, sourcelib: this.sourceLib }),
      ];
    } catch (error) {
      return Promise.reject(error);
    }
    const added = this.#connection.command<string>(args).then(() => void this.#published++);
    this.#pending.add(added);
    return added;
  }

  /**
   * Tails the topic's stream from its current end: `handler` receives every
   * tracking event any producer adds from now on, while subscribed (entries
   * that are not tracking events are skipped). Reads block for at most
   * `blockMs`, on a connection of their own.
   *
   * @returns The function that unsubscribes.
   */
  subscribe(topic: string, handler: BusHandler): () => void {
    if (this.#closed) throw new Error("RedisStreamsBus is closed");
    const stream = this.streamFor(topic);
    let subscription = this.#subscriptions.get(stream);
    if (subscription === undefined) {
      this.#subscriptions.set(stream, subscription = { handlers: new Set(), lastId: undefined });
    }
    subscription.handlers.add(handler);
    this.#startTail();
    return () => {
      subscription.handlers.delete(handler);
      if (subscription.handlers.size === 0 && this.#subscriptions.get(stream) === subscription) {
        this.#subscriptions.delete(stream);
      }
    };
  }

  #startTail(): void {
    this.#tail ??= this.#runTail().finally(() => {
      this.#tail = undefined;
      // A subscription made while the loop was finishing: start again.
      if (!this.#closed && this.#subscriptions.size > 0) this.#startTail();
    });
  }

  async #runTail(): Promise<void> {
    const connection = this.#tailConnection ??= this.#connection.duplicate("RedisStreamsBus subscription");
    while (!this.#closed && this.#subscriptions.size > 0) {
      try {
        for (const [stream, subscription] of this.#subscriptions) {
          if (subscription.lastId !== undefined) continue;
          const last = await connection.command<[string, unknown][]>(["XREVRANGE", stream, "+", "-", "COUNT", "1"]);
          subscription.lastId = last.length > 0 ? last[0][0] : "0-0";
        }
        const streams = [...this.#subscriptions.keys()];
        if (streams.length === 0) break;
        const ids = streams.map((stream) => this.#subscriptions.get(stream)!.lastId!);
        const reply = await connection.command<ReadReply>(
          ["XREAD", "COUNT", "500", "BLOCK", String(this.#blockMs), "STREAMS", ...streams, ...ids],
          { binary: true, blockMs: this.#blockMs },
        );
        for (const [streamBytes, entries] of reply ?? []) {
          const subscription = this.#subscriptions.get(decoder.decode(streamBytes));
          for (const [idBytes, fields] of entries) {
            if (subscription === undefined) break;
            subscription.lastId = decoder.decode(idBytes);
            if (fields !== null) this.#dispatch(subscription, fields);
          }
        }
      } catch {
        // The connection reported it; try again shortly.
        if (!this.#closed) await this.#sleep(1_000);
      }
    }
  }

  #dispatch(subscription: Subscription, fields: Uint8Array[]): void {
    let event: TrackingEvent;
    try {
      event = decodeEntry(fields).event;
    } catch (error) {
      if (error instanceof UnusableEntryError) return; // not a tracking event: nothing for a tail to show
      throw error;
    }
    for (const handler of subscription.handlers) {
      try {
        const result = handler(event);
        if (result !== undefined && typeof result.then === "function") {
          result.then(undefined, (error) => this.#subscriberFailed(event, error));
        }
      } catch (error) {
        this.#subscriberFailed(event, error);
      }
    }
  }

  #subscriberFailed(event: TrackingEvent, error: unknown): void {
    this.#logger.error(`RedisStreamsBus: a subscriber failed on event "${event.name}"`, error);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }

  /** Resolves when every publish started so far has settled. */
  async flush(): Promise<void> {
    await this.#pending.settled();
  }

  /** Flushes, stops the subscriptions (within `blockMs`), and closes the connections; later publishes reject. */
  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
    this.#wake?.();
    await this.#tail;
    await Promise.all([this.#connection.close(), this.#tailConnection?.close()]);
  }
}
