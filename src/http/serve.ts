/**
 * The collector on one machine: the Hono app served by `Deno.serve`, with an
 * in-process queue and bus, JSON-lines files under `./data/`, and MongoDB when
 * `MONGODB_URI` is set. `deno task start` runs it.
 *
 * Environment: `PORT` (default 8787), `EVENT_TRACKING_TOKEN` (the bearer
 * token; a development token is made and printed when unset),
 * `EVENT_TRACKING_CONFIG` (a JSON file path or inline JSON in the
 * `createTracker` format), `EVENT_TRACKING_DATA_DIR` (default `./data`),
 * `MONGODB_URI`. A tree with a MongoDB branch needs `@edx/event-tracking/mongo`
 * imported first; `deno task start` does that when one is configured.
 * `deno task replay` builds the same tree and feeds its dead letters back.
 *
 * @module
 */

import type { Context } from "hono";
import { upgradeWebSocket } from "hono/deno";
import type { Backend } from "../backend.ts";
import { AsyncRoutingBackend } from "../backends/async_routing.ts";
import { EventBusBackend } from "../backends/event_bus.ts";
import { createTracker, MONGO_ENGINE_NAMES, type TrackerConfig } from "../config.ts";
import { consoleLogger, type DiagnosticLogger } from "../diagnostics.ts";
import { serializeEvent } from "../event.ts";
import { RegexFilter } from "../processors/regex_filter.ts";
import { RoutingBackend } from "../routing.ts";
import type { Tracker } from "../tracker.ts";
import { createCollectorApp } from "./app.ts";
import { HttpError } from "./errors.ts";
import type { CollectorLimits } from "./validate.ts";

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
  /** Where files go. @default "data" */
  dataDir?: string;
  /** Adds a MongoDB branch to the default tree. */
  mongodbUri?: string;
  /** Where diagnostics go. @default consoleLogger */
  logger?: DiagnosticLogger;
  /** Request limits. */
  limits?: CollectorLimits;
}

/** A running collector. */
export interface RunningCollector {
  /** The tracker accepted events go through. */
  readonly tracker: Tracker;
  /** The address it listens on, e.g. `http://127.0.0.1:8787`. */
  readonly url: string;
  /** Stops accepting requests, lets the ones in progress finish, then closes the tracker. */
  shutdown(): Promise<void>;
}

/** The slowest a WebSocket subscriber may fall behind, in bytes, before it is disconnected. */
const MAX_SUBSCRIBER_BACKLOG = 1024 * 1024;

/**
 * The embedded defaults: every event to `<dataDir>/events.jsonl` through an
 * async branch (dead letters under `<dataDir>/dead-letters/`), every event on
 * the in-process bus for WebSocket subscribers, and a MongoDB branch when a
 * URI is given.
 *
 * @example
 * ```ts
 * import { defaultCollectorConfig } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const config = defaultCollectorConfig("data");
 * assert.deepEqual(Object.keys(config.backends!), ["bus", "tracking_logs"]);
 * ```
 */
export function defaultCollectorConfig(dataDir: string, mongodbUri?: string): TrackerConfig {
  const config: TrackerConfig = {
    backends: {
      bus: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["*"] } },
      tracking_logs: {
        ENGINE: "async_routing",
        OPTIONS: {
          backends: {
            file: { ENGINE: "logger", OPTIONS: { path: `${dataDir}/events.jsonl`, max_event_size: null } },
          },
        },
      },
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

function busSubscriber(tracker: Tracker): ((c: Context) => Response | Promise<Response>) | undefined {
  const bus = [...tracker.backends.values()].find((backend) => backend instanceof EventBusBackend) as
    | EventBusBackend
    | undefined;
  if (bus === undefined) return undefined;
  const upgrade = upgradeWebSocket((c) => {
    const patterns = c.req.queries("pattern") ?? [];
    if (patterns.length === 0) {
      throw new HttpError(400, "invalid_pattern", "Give at least one ?pattern= to subscribe to");
    }
    let filter: RegexFilter;
    try {
      filter = new RegexFilter({ filterType: "allowlist", regularExpressions: patterns });
    } catch (error) {
      throw new HttpError(400, "invalid_pattern", (error as Error).message);
    }
    let unsubscribe: (() => void) | undefined;
    return {
      onOpen(_event, ws) {
        unsubscribe = bus.transport.subscribe(bus.backendName, (event) => {
          if (!filter.matches(event.name)) return;
          if (((ws.raw as WebSocket | undefined)?.bufferedAmount ?? 0) > MAX_SUBSCRIBER_BACKLOG) {
            ws.close(1013, "Subscriber too slow: over 1 MiB behind");
            unsubscribe?.();
            return;
          }
          ws.send(serializeEvent(event));
        });
      },
      onClose() {
        unsubscribe?.();
      },
    };
  });
  return (c) => upgrade(c, async () => {}) as Promise<Response>;
}

/**
 * Starts the collector with `Deno.serve`.
 *
 * @example Start on a free port and stop
 * ```ts
 * import { startCollector } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const dataDir = await Deno.makeTempDir();
 * const collector = startCollector({ port: 0, hostname: "127.0.0.1", token: "t", dataDir });
 * const health = await fetch(`${collector.url}/v1/health`);
 * assert.equal(health.status, 200);
 * await health.body?.cancel();
 * await collector.shutdown();
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 */
export function startCollector(options: CollectorServerOptions): RunningCollector {
  const logger = options.logger ?? consoleLogger;
  const dataDir = options.dataDir ?? "data";
  const tracker = createTracker(options.config ?? defaultCollectorConfig(dataDir, options.mongodbUri), {
    logger,
    dataDir,
  });
  const app = createCollectorApp({
    tracker,
    token: options.token,
    busSubscribe: busSubscriber(tracker),
    limits: options.limits,
    clientIp: (c) => (c.env as { remoteAddr?: Deno.NetAddr } | undefined)?.remoteAddr?.hostname,
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
        await server.shutdown();
        await tracker.close();
      })();
    },
  };
}

function usesMongo(config: unknown): boolean {
  const text = JSON.stringify(config ?? null);
  return MONGO_ENGINE_NAMES.some((name) => text.includes(`"ENGINE":${JSON.stringify(name)}`));
}

async function loadConfig(value: string): Promise<TrackerConfig> {
  const text = value.trimStart().startsWith("{") ? value : await Deno.readTextFile(value);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new SyntaxError(`Cannot read EVENT_TRACKING_CONFIG: not JSON (${(error as Error).message})`);
  }
}

/**
 * Replays the default dead-letter file of every `AsyncRoutingBackend` in the
 * tree (at any depth) through its branch, once the fault is fixed. Returns
 * how many events each branch queued again, by its place in the tree; call
 * `tracker.flush()` or `close()` to wait for their delivery.
 *
 * @example
 * ```ts
 * import { createTracker } from "@edx/event-tracking";
 * import { replayDeadLetters } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const dataDir = await Deno.makeTempDir();
 * const tracker = createTracker({ backends: { logs: { ENGINE: "async_routing" } } }, { dataDir });
 * assert.deepEqual(await replayDeadLetters(tracker), { "root/logs": 0 });
 * await tracker.close();
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 */
export async function replayDeadLetters(tracker: Tracker): Promise<Record<string, number>> {
  const replayed: Record<string, number> = {};
  const visit = async (backends: ReadonlyMap<string, Backend>, path: string): Promise<void> => {
    for (const [name, backend] of backends) {
      const where = `${path}/${name}`;
      if (backend instanceof AsyncRoutingBackend && backend.deadLetterPath !== undefined) {
        replayed[where] = await backend.replayDeadLetters();
      }
      if (backend instanceof RoutingBackend || backend instanceof AsyncRoutingBackend) {
        await visit(backend.backends, where);
      } else if (backend instanceof EventBusBackend) await visit(backend.consumer.backends, where);
    }
  };
  await visit(tracker.backends, "root");
  return replayed;
}

interface Environment {
  token: string | undefined;
  config: TrackerConfig | undefined;
  dataDir: string;
  mongodbUri: string | undefined;
}

async function readEnvironment(): Promise<Environment> {
  const env = Deno.env.toObject();
  const config = env.EVENT_TRACKING_CONFIG ? await loadConfig(env.EVENT_TRACKING_CONFIG) : undefined;
  // The MongoDB driver loads only when a MongoDB branch is configured.
  if (env.MONGODB_URI || usesMongo(config)) await import("../backends/mongo.ts");
  return {
    token: env.EVENT_TRACKING_TOKEN || undefined,
    config,
    dataDir: env.EVENT_TRACKING_DATA_DIR || "data",
    mongodbUri: env.MONGODB_URI || undefined,
  };
}

// `deno task replay`: the same tree as the server, its dead letters fed back, delivered, then exit.
async function replay(): Promise<void> {
  const { config, dataDir, mongodbUri } = await readEnvironment();
  const tracker = createTracker(config ?? defaultCollectorConfig(dataDir, mongodbUri), { dataDir });
  const replayed = await replayDeadLetters(tracker);
  await tracker.close();
  for (const [path, count] of Object.entries(replayed)) console.log(`${path}: ${count} dead letter(s) replayed`);
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
  if (!token) {
    token = `dev-${crypto.randomUUID()}`;
    console.error(`No EVENT_TRACKING_TOKEN set: using the development token ${token}`);
  }
  const collector = startCollector({ ...env, port, token });
  console.error(
    `Event collector listening on ${collector.url}\n` +
      `  curl -X POST ${collector.url}/v1/events -H 'Authorization: Bearer ${token}' ` +
      `-d '{"name":"edx.ui.click","data":{"x":1}}'`,
  );
  const stop = (signal: string) => {
    console.error(`${signal}: closing; every accepted event is written or dead-lettered before exit`);
    collector.shutdown().then(() => Deno.exit(0), (error) => {
      console.error("Shutdown failed", error);
      Deno.exit(1);
    });
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
}

if (import.meta.main) {
  if (Deno.args[0] === "replay") await replay();
  else if (Deno.args.length === 0) await serve();
  else {
    console.error(`Unknown command "${Deno.args[0]}": run with no argument to serve, or "replay"`);
    Deno.exit(2);
  }
}
