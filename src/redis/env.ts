/**
 * Open edX's event-bus settings, read from the environment: what the
 * collector and the consumer task use. The Redis client is loaded only when
 * `EVENT_BUS_REDIS_CONNECTION_URL` is set.
 *
 * @module
 */

import type { BranchInfo } from "../config.ts";
import type { DiagnosticLogger } from "../diagnostics.ts";
import type { BusTransport } from "../transports/transport.ts";
import type { RedisStreamsBus } from "./bus.ts";

/** The event-bus settings, checked. */
export interface RedisBusSettings {
  /** `EVENT_BUS_REDIS_CONNECTION_URL`. */
  readonly url: string;
  /** `EVENT_BUS_TOPIC_PREFIX`, if set. */
  readonly topicPrefix: string | undefined;
  /** `EVENT_BUS_REDIS_STREAM_MAX_LEN` (10000 when unset). */
  readonly maxLen: number;
  /** `EVENTS_SERVICE_NAME`, if set. */
  readonly serviceName: string | undefined;
}

/**
 * Reads Open edX's event-bus settings from an environment:
 * `EVENT_BUS_REDIS_CONNECTION_URL`, `EVENT_BUS_TOPIC_PREFIX`,
 * `EVENT_BUS_REDIS_STREAM_MAX_LEN` (default 10000; 0 never trims) and
 * `EVENTS_SERVICE_NAME`. Empty values count as unset.
 *
 * @example
 * ```ts
 * import { readRedisBusSettings } from "@edx/event-tracking/redis";
 * import assert from "node:assert/strict";
 *
 * assert.equal(readRedisBusSettings({}), undefined);
 * assert.deepEqual(
 *   readRedisBusSettings({ EVENT_BUS_REDIS_CONNECTION_URL: "redis://redis:6379/0", EVENT_BUS_TOPIC_PREFIX: "dev" }),
 *   { url: "redis://redis:6379/0", topicPrefix: "dev", maxLen: 10000, serviceName: undefined },
 * );
 * ```
 *
 * @returns The settings, or `undefined` when `EVENT_BUS_REDIS_CONNECTION_URL` is not set.
 * @throws {RangeError} If `EVENT_BUS_REDIS_STREAM_MAX_LEN` is not a non-negative integer, or the URL is not a `redis:`/`rediss:` URL.
 */
export function readRedisBusSettings(env: Readonly<Record<string, string | undefined>>): RedisBusSettings | undefined {
  const url = env.EVENT_BUS_REDIS_CONNECTION_URL;
  if (!url) return undefined;
  let protocol: string | undefined;
  try {
    protocol = new URL(url).protocol;
  } catch {
    // reported below
  }
  if (protocol !== "redis:" && protocol !== "rediss:") {
    throw new RangeError(
      "'EVENT_BUS_REDIS_CONNECTION_URL' must be a redis:// or rediss:// URL (its value is not shown: it may hold a password)",
    );
  }
  const maxLenText = env.EVENT_BUS_REDIS_STREAM_MAX_LEN || "10000";
  const maxLen = Number(maxLenText);
  if (!/^\d+$/.test(maxLenText.trim()) || !Number.isSafeInteger(maxLen)) {
    throw new RangeError(
      `'EVENT_BUS_REDIS_STREAM_MAX_LEN' must be a non-negative integer: current value is ${env.EVENT_BUS_REDIS_STREAM_MAX_LEN}`,
    );
  }
  return {
    url,
    topicPrefix: env.EVENT_BUS_TOPIC_PREFIX || undefined,
    maxLen,
    serviceName: env.EVENTS_SERVICE_NAME || undefined,
  };
}

/** What {@linkcode redisBusFromEnv} returns: the bus, as `createTracker`'s `busTransport`, and how to close it. */
export interface RedisBusSetup {
  /** The bus every `event_bus` branch publishes to. */
  readonly bus: RedisStreamsBus;
  /** `createTracker`'s (and the collector's) `busTransport` option: the same bus for every branch. */
  readonly busTransport: (branch: BranchInfo) => BusTransport;
  /** A line for the start-up message: `Redis stream dev-analytics at redis://redis:6379/0`. */
  readonly description: string;
  /** Closes the bus; call it after the tracker is closed. */
  close(): Promise<void>;
}

/**
 * Makes the Redis Streams bus the environment asks for, when
 * `EVENT_BUS_REDIS_CONNECTION_URL` is set (see
 * {@linkcode readRedisBusSettings}); the Redis client is loaded only then.
 * Nothing connects until the first publish.
 *
 * @example
 * ```ts
 * import { createTracker } from "@edx/event-tracking";
 * import { redisBusFromEnv } from "@edx/event-tracking/redis";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await redisBusFromEnv({}), undefined);
 * const redis = await redisBusFromEnv({
 *   EVENT_BUS_REDIS_CONNECTION_URL: "redis://127.0.0.1:6379",
 *   EVENT_BUS_TOPIC_PREFIX: "dev",
 *   EVENTS_SERVICE_NAME: "collector",
 * });
 * assert.equal(redis?.description, "Redis stream dev-analytics at redis://127.0.0.1:6379");
 * const tracker = createTracker(
 *   { backends: { bus: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["*"] } } } },
 *   { busTransport: redis?.busTransport },
 * );
 * await tracker.close();
 * await redis?.close();
 * ```
 *
 * @throws {RangeError} As {@linkcode readRedisBusSettings} does.
 */
export async function redisBusFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  options: { logger?: DiagnosticLogger } = {},
): Promise<RedisBusSetup | undefined> {
  const settings = readRedisBusSettings(env);
  if (settings === undefined) return undefined;
  const { RedisStreamsBus } = await import("./bus.ts");
  const bus = new RedisStreamsBus({ ...settings, logger: options.logger });
  return {
    bus,
    busTransport: () => bus,
    description: `Redis stream ${bus.streamFor("")} at ${bus.server}`,
    close: () => bus.close(),
  };
}
