/**
 * The collector on one machine: the Hono app served by `Deno.serve`, with an
 * in-process queue and bus, JSON-lines files under `./data/`, and MongoDB when
 * `MONGODB_URI` is set. `deno task start` runs it.
 *
 * A 202 means the accepted events are in a write-ahead log under
 * `<dataDir>/wal`: the write completed before the answer, so a crash of the
 * process cannot lose them; they are replayed into the tree at the next start
 * unless their delivery completed.
 *
 * Environment: `PORT` (default 8787), `EVENT_TRACKING_HOSTNAME` (default 0.0.0.0),
 * `EVENT_TRACKING_TOKEN` (the bearer token; when unset, a development token
 * is made and printed, and the collector listens on 127.0.0.1 only),
 * `EVENT_TRACKING_CONFIG` (a JSON file path or inline JSON in the
 * `createTracker` format), `EVENT_TRACKING_DATA_DIR` (default `./data`),
 * `EVENT_TRACKING_FSYNC` (`interval`, the default, `always` or `off`),
 * `EVENT_TRACKING_SHUTDOWN_TIMEOUT_S` (default 20), `EVENT_TRACKING_LOG_PREFIX`
 * (`tutor` or none: the prefix of `<dataDir>/tracking.log`), `EVENT_TRACKING_CATALOG`
 * (a JSON file path or inline JSON: the event catalog, `{ "events": { … } }`,
 * served by `GET /v1/event-types`), `MONGODB_URI`. The
 * MongoDB driver (`@edx/event-tracking/mongo`) is loaded only when the tree
 * has a MongoDB branch. `deno task replay` builds the same tree and feeds its
 * dead letters back.
 *
 * @module
 */

import type { Context } from "hono";
import { EventBusBackend } from "../backends/event_bus.ts";
import {
  createTracker,
  type CreateTrackerOptions,
  type Engine,
  MONGO_ENGINE_NAMES,
  type TrackerConfig,
} from "../config.ts";
import { consoleLogger, type DiagnosticLogger } from "../diagnostics.ts";
import { EventCatalog, type EventCatalogJSON } from "../catalog.ts";
import { serializeEvent } from "../event.ts";
import { RegexFilter } from "../processors/regex_filter.ts";
import type { Tracker } from "../tracker.ts";
import { walkTree } from "../tree.ts";
import { createCollectorApp } from "../http/app.ts";
import { lmsEventsFromEnv, type LmsEventsOptions } from "../http/lms_events.ts";
import { httpError } from "../http/errors.ts";
import { BUS_PROTOCOL, offersBusProtocol } from "../http/bus_ticket.ts";
import type { CollectorLimits } from "../http/validate.ts";
import { openWriteAheadIntake } from "./_wal_intake.ts";
import { fileDeadLetterStore, replayDeadLetters } from "./dead_letters.ts";
import type { FsyncPolicy } from "./write_ahead_log.ts";
import type { LogPrefix } from "../backends/logger.ts";
import { reopenLogFiles, trackingLogBranch, trackingLogPrefix } from "./tracking_log.ts";
import { redisBusFromEnv, type RedisBusSetup } from "../redis/env.ts";
import { asyncBusBranches, checkEventBusTree, resolvePresets } from "../redis/presets.ts";

/** Options of {@linkcode startCollector}. */
export interface CollectorServerOptions {
  /** The port to listen on; 0 picks a free one. @default 8787 */
  port?: number;
  /** The address to listen on. @default "0.0.0.0" */
  hostname?: string;
  /** The bearer token. */
  token: string;
  /** The tracker tree. @default defaultCollectorConfig(dataDir, mongodbUri) */
  config?: TrackerConfig;
  /**
   * The tracker's event catalog (`EVENT_TRACKING_CATALOG`), served by
   * `GET /v1/event-types`; it replaces the `catalog` of `config`. @default the catalog of `config`, if any
   */
  catalog?: EventCatalog | EventCatalogJSON;
  /** Where files go. @default "data" */
  dataDir?: string;
  /** Adds a MongoDB branch to the default tree, and is the server of `mongo` sinks that name none. */
  mongodbUri?: string;
  /** The logging prefix of the default tree's `<dataDir>/tracking.log` (`EVENT_TRACKING_LOG_PREFIX`). @default none: bare lines */
  trackingLogPrefix?: LogPrefix;
  /**
   * Engines beyond the built-in ones, by ENGINE name. @default the `mongo`
   * engines of `@edx/event-tracking/mongo` when the tree has a MongoDB sink
   * (the driver loads only then)
   */
  engines?: Readonly<Record<string, Engine>>;
  /** Where diagnostics go. @default consoleLogger */
  logger?: DiagnosticLogger;
  /** Request limits. */
  limits?: CollectorLimits;
  /**
   * Serves the LMS's `/event` and `/segmentio/event` too (`createLmsEventsApp`
   * of `@edx/event-tracking/http`). @default not served
   */
  lmsEvents?: LmsEventsOptions;
  /**
   * The write-ahead log a 202 waits for, under `<dataDir>/wal`, and when it
   * syncs to the device: `interval` (at least every `fsyncIntervalMs`),
   * `always` (before each 202; requests waiting together share one sync) or
   * `off`. `false` answers 202 once the events are queued in memory only.
   * @default { fsync: "interval", fsyncIntervalMs: 100 }
   */
  writeAheadLog?: false | { fsync?: FsyncPolicy; fsyncIntervalMs?: number };
  /** How long `shutdown()` may take, in milliseconds, before what is left is dead-lettered. @default 20000 */
  shutdownTimeoutMs?: number;
  /**
   * Makes the bus of each `event_bus` branch, as `createTracker`'s option does:
   * e.g. the Redis Streams bus of `redisBusFromEnv` (`@edx/event-tracking/redis`).
   * The default tree's bus branch then sits under an async router, so a failed
   * publish is retried and dead-lettered. Close the bus after `shutdown()`.
   * @default an in-process bus
   */
  busTransport?: CreateTrackerOptions["busTransport"];
}

/** A running collector. */
export interface RunningCollector {
  /** The tracker accepted events go through. */
  readonly tracker: Tracker;
  /** The address it listens on, e.g. `http://127.0.0.1:8787`. */
  readonly url: string;
  /**
   * Stops accepting requests, lets the ones in progress finish, then closes
   * the tracker within the shutdown timeout: what is not delivered by then is
   * dead-lettered. Resolves when all of it is written.
   */
  shutdown(): Promise<void>;
}

/** The slowest a WebSocket subscriber may fall behind, in bytes, before it is disconnected. */
const MAX_SUBSCRIBER_BACKLOG = 1024 * 1024;

/**
 * The embedded defaults: every event to `<dataDir>/events.jsonl` through an
 * async branch (dead letters under `<dataDir>/dead-letters/`), every event to
 * `<dataDir>/tracking.log` as the LMS writes it (through the shim processors;
 * `trackingLogPrefix: "tutor"` adds Tutor's prefix), every event on the
 * in-process bus for WebSocket subscribers, and a MongoDB branch when a
 * URI is given.
 *
 * @example
 * ```ts
 * import { defaultCollectorConfig } from "@edx/event-tracking/deno";
 * import assert from "node:assert/strict";
 *
 * const config = defaultCollectorConfig("data");
 * assert.deepEqual(Object.keys(config.backends!), ["bus", "tracking_logs", "openedx_tracking_log"]);
 * ```
 */
export function defaultCollectorConfig(
  dataDir: string,
  mongodbUri?: string,
  trackingLogPrefix?: LogPrefix,
): TrackerConfig {
  const config: TrackerConfig = {
    backends: {
      // Published for the WebSocket subscribers only: nothing here consumes the topic (no nested backends).
      bus: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["*"], consume: false } },
      tracking_logs: {
        ENGINE: "async_routing",
        OPTIONS: {
          backends: {
            file: { ENGINE: "logger", OPTIONS: { path: `${dataDir}/events.jsonl`, max_event_size: null } },
          },
        },
      },
      // The LMS's tracking log, for Aspects' Vector and event-routing-backends; reopened on SIGHUP.
      openedx_tracking_log: trackingLogBranch(dataDir, { prefix: trackingLogPrefix }),
    },
  };
  if (mongodbUri) {
    config.backends!.mongo = {
      ENGINE: "async_routing",
      OPTIONS: { backends: { mongo: { ENGINE: "mongo", OPTIONS: { uri: mongodbUri } } } },
    };
  }
  return config;
}

// On a bus of its own (Redis), the default tree's bus branch goes under an async router: retried, dead-lettered.
function collectorConfig(
  dataDir: string,
  mongodbUri: string | undefined,
  trackingLogPrefix: LogPrefix | undefined,
  busTransport: CreateTrackerOptions["busTransport"],
): TrackerConfig {
  const config = defaultCollectorConfig(dataDir, mongodbUri, trackingLogPrefix);
  return busTransport === undefined ? config : asyncBusBranches(config);
}

function busSubscriber(tracker: Tracker): ((c: Context) => Response) | undefined {
  // Each event_bus branch is a topic; `?topic=` picks one, else the first of the tree.
  const buses = new Map<string, EventBusBackend>();
  for (const { backend } of walkTree(tracker.backends)) {
    if (backend instanceof EventBusBackend && !buses.has(backend.backendName)) buses.set(backend.backendName, backend);
  }
  if (buses.size === 0) return undefined;
  return (c) => {
    const topic = c.req.query("topic");
    const bus = topic === undefined ? buses.values().next().value! : buses.get(topic);
    if (bus === undefined) {
      throw httpError(
        404,
        "unknown_topic",
        `No event_bus branch publishes on topic "${topic}" (topics: ${
          [...buses.keys()].map((t) => `"${t}"`).join(", ")
        })`,
      );
    }
    const patterns = c.req.queries("pattern") ?? [];
    if (patterns.length === 0) {
      throw httpError(400, "invalid_pattern", "Give at least one ?pattern= to subscribe to");
    }
    let filter: RegexFilter;
    try {
      filter = new RegexFilter({ filterType: "allowlist", regularExpressions: patterns });
    } catch (error) {
      throw httpError(400, "invalid_pattern", (error as Error).message);
    }
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      throw httpError(426, "upgrade_required", "GET /v1/bus/subscribe opens a WebSocket: send Upgrade: websocket");
    }
    // Deno's own upgrade (what Hono's deprecated `hono/deno` adapter wrapped); the handshake completes with the response.
    const protocol = offersBusProtocol(c.req.header("sec-websocket-protocol")) ? BUS_PROTOCOL : undefined;
    const { socket, response } = Deno.upgradeWebSocket(c.req.raw, { protocol });
    let unsubscribe: (() => void) | undefined;
    socket.onopen = () => {
      unsubscribe = bus.transport.subscribe(bus.backendName, (event) => {
        if (!filter.matches(event.name)) return;
        if (socket.bufferedAmount > MAX_SUBSCRIBER_BACKLOG) {
          socket.close(1013, "Subscriber too slow: over 1 MiB behind");
          unsubscribe?.();
          return;
        }
        socket.send(serializeEvent(event));
      });
    };
    socket.onclose = () => unsubscribe?.();
    // A reset connection is followed by `close`; nothing else to do.
    socket.onerror = () => {};
    return response;
  };
}

/**
 * Starts the collector with `Deno.serve`: opens the write-ahead log, replays
 * what it holds into the tree, then listens.
 *
 * @example Start on a free port and stop
 * ```ts
 * import { startCollector } from "@edx/event-tracking/deno";
 * import assert from "node:assert/strict";
 *
 * const dataDir = await Deno.makeTempDir();
 * const collector = await startCollector({ port: 0, hostname: "127.0.0.1", token: "t", dataDir });
 * const health = await fetch(`${collector.url}/v1/health`);
 * assert.equal(health.status, 200);
 * await health.body?.cancel();
 * await collector.shutdown();
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 */
export async function startCollector(options: CollectorServerOptions): Promise<RunningCollector> {
  const logger = options.logger ?? consoleLogger;
  const dataDir = options.dataDir ?? "data";
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? 20_000;
  let config = options.config ??
    collectorConfig(dataDir, options.mongodbUri, options.trackingLogPrefix, options.busTransport);
  if (options.catalog !== undefined) config = { ...config, catalog: options.catalog };
  const tracker = createTracker(config, {
    logger,
    dataDir,
    engines: options.engines ?? await mongoEnginesFor(config, options.mongodbUri),
    busTransport: options.busTransport,
  });
  try {
    checkEventBusTree(tracker, { logger }); // two event-bus backends publishing one event to one stream
  } catch (error) {
    await tracker.close();
    throw error;
  }
  const wal = options.writeAheadLog === false
    ? undefined
    : await openWriteAheadIntake(tracker, { dir: `${dataDir}/wal`, logger, ...options.writeAheadLog });
  const app = createCollectorApp({
    tracker,
    token: options.token,
    busSubscribe: busSubscriber(tracker),
    limits: options.limits,
    lmsEvents: options.lmsEvents,
    clientIp: (c) => (c.env as { remoteAddr?: Deno.NetAddr } | undefined)?.remoteAddr?.hostname,
    intake: wal?.intake,
    deadLetters: fileDeadLetterStore(tracker),
    logger,
  });
  let url = "";
  const server = Deno.serve({
    port: options.port ?? 8787,
    hostname: options.hostname ?? "0.0.0.0",
    onListen({ hostname, port }) {
      url = `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
    },
  }, (request, info) => app.fetch(request, { remoteAddr: info.remoteAddr }));
  let closing: Promise<void> | undefined;
  return {
    tracker,
    get url() {
      return url;
    },
    shutdown() {
      return closing ??= (async () => {
        const deadline = Date.now() + shutdownTimeoutMs;
        await server.shutdown();
        await wal?.finishReplay(deadline);
        try {
          await tracker.close({ deadlineMs: Math.max(0, deadline - Date.now()) });
        } finally {
          await wal?.close();
        }
      })();
    },
  };
}

function usesMongo(config: unknown): boolean {
  const text = JSON.stringify(config ?? null);
  return MONGO_ENGINE_NAMES.some((name) => text.includes(`"ENGINE":${JSON.stringify(name)}`));
}

// The MongoDB driver loads only when a MongoDB branch is configured.
async function mongoEnginesFor(
  config: TrackerConfig,
  mongodbUri: string | undefined,
): Promise<Readonly<Record<string, Engine>> | undefined> {
  if (!usesMongo(config)) return undefined;
  const { mongoEngines } = await import("../backends/mongo.ts");
  return mongoEngines(mongodbUri);
}

async function loadConfig(value: string): Promise<TrackerConfig> {
  const text = value.trimStart().startsWith("{") ? value : await Deno.readTextFile(value);
  let config: TrackerConfig;
  try {
    config = JSON.parse(text);
  } catch (error) {
    throw new SyntaxError(`Cannot read EVENT_TRACKING_CONFIG: not JSON (${(error as Error).message})`);
  }
  return resolvePresets(config); // "preset:aspects" and the like, in allowlists
}

/**
 * Reads an event catalog from a JSON file path or inline JSON (text that
 * starts with `{`), as `EVENT_TRACKING_CATALOG` gives it.
 *
 * @example
 * ```ts
 * import { loadCatalog } from "./serve.ts";
 * import assert from "node:assert/strict";
 *
 * const catalog = await loadCatalog('{"events":{"a":{"description":"A.","version":1,"schema":{}}}}');
 * assert.equal(catalog.describe("a")?.version, 1);
 * ```
 *
 * @throws {ImproperlyConfigured} If it is not JSON or not a catalog; the message names the event.
 */
export async function loadCatalog(value: string): Promise<EventCatalog> {
  const text = value.trimStart().startsWith("{") ? value : await Deno.readTextFile(value);
  return EventCatalog.fromJSON(text, "EVENT_TRACKING_CATALOG");
}

interface Environment {
  token: string | undefined;
  config: TrackerConfig | undefined;
  catalog: EventCatalog | undefined;
  dataDir: string;
  mongodbUri: string | undefined;
  trackingLogPrefix: LogPrefix | undefined;
  fsync: FsyncPolicy;
  shutdownTimeoutMs: number;
  redis: RedisBusSetup | undefined;
  lmsEvents: LmsEventsOptions | undefined;
}

/** `EVENT_TRACKING_LMS_RATE_LIMIT`: requests per minute and client IP on the LMS endpoints (0: none). @default 600 */
function lmsRateLimit(text: string | undefined): { requests: number; windowMs: number } | undefined {
  const requests = Number(text || "600");
  if (!Number.isSafeInteger(requests) || requests < 0) {
    throw new RangeError(
      `Cannot start the collector as 'EVENT_TRACKING_LMS_RATE_LIMIT' must be a non-negative integer: current value is ${text}`,
    );
  }
  return requests === 0 ? undefined : { requests, windowMs: 60_000 };
}

const FSYNC_POLICIES: readonly FsyncPolicy[] = ["interval", "always", "off"];

async function readEnvironment(): Promise<Environment> {
  const env = Deno.env.toObject();
  const config = env.EVENT_TRACKING_CONFIG ? await loadConfig(env.EVENT_TRACKING_CONFIG) : undefined;
  const fsync = (env.EVENT_TRACKING_FSYNC || "interval") as FsyncPolicy;
  if (!FSYNC_POLICIES.includes(fsync)) {
    throw new RangeError(
      `Cannot start the collector as 'EVENT_TRACKING_FSYNC' must be one of ${
        FSYNC_POLICIES.join(", ")
      }: current value is ${env.EVENT_TRACKING_FSYNC}`,
    );
  }
  const timeout = Number(env.EVENT_TRACKING_SHUTDOWN_TIMEOUT_S || "20");
  if (!(timeout >= 0) || !Number.isFinite(timeout)) {
    throw new RangeError(
      `Cannot start the collector as 'EVENT_TRACKING_SHUTDOWN_TIMEOUT_S' must be a non-negative number of seconds: current value is ${env.EVENT_TRACKING_SHUTDOWN_TIMEOUT_S}`,
    );
  }
  return {
    token: env.EVENT_TRACKING_TOKEN || undefined,
    config,
    catalog: env.EVENT_TRACKING_CATALOG ? await loadCatalog(env.EVENT_TRACKING_CATALOG) : undefined,
    dataDir: env.EVENT_TRACKING_DATA_DIR || "data",
    mongodbUri: env.MONGODB_URI || undefined,
    trackingLogPrefix: trackingLogPrefix(env.EVENT_TRACKING_LOG_PREFIX),
    fsync,
    shutdownTimeoutMs: timeout * 1000,
    // EVENT_BUS_REDIS_CONNECTION_URL, EVENT_BUS_TOPIC_PREFIX, EVENT_BUS_REDIS_STREAM_MAX_LEN, EVENTS_SERVICE_NAME
    redis: await redisBusFromEnv(env),
    // EVENT_TRACKING_JWT_JWKS, …_ISSUER, …_AUDIENCE, EVENT_TRACKING_CSRF, EVENT_TRACKING_CORS_ORIGINS,
    // EVENT_TRACKING_SESSION_SECRET, TRACKING_SEGMENTIO_WEBHOOK_SECRET; a per-IP limit on this server.
    lmsEvents: lmsEventsFromEnv(env, { rateLimit: lmsRateLimit(env.EVENT_TRACKING_LMS_RATE_LIMIT) }),
  };
}

// `deno task replay`: the same tree as the server, its dead letters fed back, delivered, then exit.
async function replay(): Promise<void> {
  const env = await readEnvironment();
  const busTransport = env.redis?.busTransport;
  let config = env.config ?? collectorConfig(env.dataDir, env.mongodbUri, env.trackingLogPrefix, busTransport);
  if (env.catalog !== undefined) config = { ...config, catalog: env.catalog };
  const engines = await mongoEnginesFor(config, env.mongodbUri);
  const tracker = createTracker(config, { dataDir: env.dataDir, engines, busTransport });
  const replayed = await replayDeadLetters(tracker);
  await tracker.close();
  await env.redis?.close();
  for (const [path, { replayed: count, delivered, deadLettered }] of Object.entries(replayed)) {
    console.log(
      `${path}: ${count} dead letter(s) replayed, ${delivered} delivered, ${deadLettered} dead-lettered again`,
    );
  }
}

async function serve(): Promise<void> {
  const env = await readEnvironment();
  const port = Number(Deno.env.get("PORT") ?? "8787");
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(
      `Cannot start the collector as 'PORT' must be a port number: current value is ${Deno.env.get("PORT")}`,
    );
  }
  let token = env.token;
  // A development token is printed to the console: only this machine may use it.
  let hostname = Deno.env.get("EVENT_TRACKING_HOSTNAME") || "0.0.0.0";
  if (!token) {
    token = `dev-${crypto.randomUUID()}`;
    hostname = "127.0.0.1";
    console.error(`No EVENT_TRACKING_TOKEN set: listening on 127.0.0.1 only, with the development token ${token}`);
  }
  // A signal during start-up stops the collector once it has started.
  const started = Promise.withResolvers<RunningCollector>();
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    const seconds = env.shutdownTimeoutMs / 1000;
    console.error(
      `${signal}: closing; every accepted event is written or dead-lettered within ${seconds} s before exit`,
    );
    // Should a sink hang even past the deadline, the process still exits: its events are dead letters by then.
    setTimeout(() => {
      console.error(`Shutdown did not finish ${seconds + 5} s after ${signal}; exiting`);
      Deno.exit(1);
    }, env.shutdownTimeoutMs + 5_000);
    started.promise.then((collector) => collector.shutdown()).then(() => env.redis?.close()).then(
      () => Deno.exit(0),
      (error) => {
        console.error("Shutdown failed", error);
        Deno.exit(1);
      },
    );
  };
  // Listening for signals before announcing the address: a supervisor may send one right away.
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
  // logrotate's convention: after it has moved the log files away, SIGHUP makes the next lines go to new files.
  Deno.addSignalListener("SIGHUP", () => {
    started.promise.then((collector) => reopenLogFiles(collector.tracker)).then(
      (paths) => console.error(`SIGHUP: reopened ${paths.join(", ") || "no log file"}`),
      (error) => console.error("SIGHUP: cannot reopen the log files", error),
    );
  });
  const { redis, ...settings } = env;
  const collector = await startCollector({
    ...settings,
    port,
    hostname,
    token,
    writeAheadLog: { fsync: env.fsync },
    busTransport: redis?.busTransport,
  });
  if (redis) console.error(`Event bus: ${redis.description}`);
  if (env.lmsEvents) {
    console.error(
      `LMS endpoints: GET|POST /event, POST /segmentio/event (identity from JWT cookies: ${
        env.lmsEvents.jwks ? "on" : "off"
      })`,
    );
  }
  started.resolve(collector);
  console.error(
    `Event collector listening on ${collector.url}\n` +
      `  curl -X POST ${collector.url}/v1/events -H 'Authorization: Bearer ${token}' ` +
      `-d '{"name":"edx.ui.click","data":{"x":1}}'\n` +
      `  Console: ${collector.url}/console (sign in with the token)`,
  );
}

if (import.meta.main) {
  if (Deno.args[0] === "replay") await replay();
  else if (Deno.args.length === 0) await serve();
  else {
    console.error(`Unknown command "${Deno.args[0]}": run with no argument to serve, or "replay"`);
    Deno.exit(2);
  }
}
