/**
 * Builds the Worker's tracker from its bindings: `EVENT_TRACKING_CONFIG` (in
 * the `createTracker` format) or a default tree, with `async_routing`
 * branches on the Cloudflare Queue, `event_bus` branches on the Durable
 * Object (each on its own topic), dead letters in the Worker's log and (with
 * the `DEAD_LETTERS` binding) in the {@linkcode DeadLetterObject}, and a
 * `mongo` engine that defaults to `MONGODB_URI`.
 *
 * @module
 */

import { AsyncRoutingBackend } from "../backends/async_routing.ts";
import { EventBusBackend } from "../backends/event_bus.ts";
import { LoggerBackend } from "../backends/logger.ts";
import { createTracker, type Engine, MONGO_ENGINE_NAMES, type TrackerConfig } from "../config.ts";
import type { DiagnosticLogger } from "../diagnostics.ts";
import { ImproperlyConfigured } from "../errors.ts";
import type { DeadLetterStore } from "../http/dead_letters.ts";
import type { Tracker } from "../tracker.ts";
import { walkTree } from "../tree.ts";
import {
  type DeadLetterNamespaceLike,
  DeadLetterObjectSink,
  durableObjectDeadLetterStore,
} from "./dead_letter_object.ts";
import { DurableObjectBus, type DurableObjectNamespaceLike } from "./event_bus_object.ts";
import type { MetricsNamespaceLike } from "./metrics_object.ts";
import { type CloudflareQueue, CloudflareQueueTransport } from "./queue.ts";

/** The Worker's bindings (worker/wrangler.toml): the environment contract of the collector. */
export interface WorkerEnv {
  /** The bearer token clients send; without it every authenticated route answers 401. */
  EVENT_TRACKING_TOKEN?: string;
  /** The tracker tree as JSON, in the `createTracker` format; unset means {@linkcode defaultWorkerConfig}. */
  EVENT_TRACKING_CONFIG?: string;
  /** The MongoDB connection string `mongo` engines use when they name no server. */
  MONGODB_URI?: string;
  /** The Queue producer binding of the async_routing branches. */
  EVENTS_QUEUE: CloudflareQueue;
  /** The Durable Object namespace of the event bus ({@linkcode EventBusObject}). */
  EVENT_BUS: DurableObjectNamespaceLike;
  /**
   * The Durable Object namespace that keeps dead letters ({@linkcode DeadLetterObject}).
   * Unset: dead letters are only logged, and `GET /v1/dead-letters` answers 404.
   */
  DEAD_LETTERS?: DeadLetterNamespaceLike;
  /**
   * The Durable Object namespace that keeps the Worker's counters, summed over
   * its isolates ({@linkcode MetricsObject}): `GET /v1/metrics` serves its totals.
   * Unset: it serves the counters of the isolate that answers.
   */
  METRICS?: MetricsNamespaceLike;
  /** `on` serves the LMS's `/event` and `/segmentio/event` (as does setting any variable below); `off` never. */
  EVENT_TRACKING_LMS_EVENTS?: string;
  /** The LMS's public JWK set (JSON text): identity from the `edx-jwt-cookie-*` cookies. */
  EVENT_TRACKING_JWT_JWKS?: string;
  /** The `iss` the JWT cookies' token must carry. */
  EVENT_TRACKING_JWT_ISSUER?: string;
  /** The `aud` the JWT cookies' token must carry. */
  EVENT_TRACKING_JWT_AUDIENCE?: string;
  /** `off` disables the CSRF check of `POST /event`. */
  EVENT_TRACKING_CSRF?: string;
  /** Comma list of MFE origins allowed by CORS on `/event`. */
  EVENT_TRACKING_CORS_ORIGINS?: string;
  /** The LMS's `SECRET_KEY`, for the `session` hash. */
  EVENT_TRACKING_SESSION_SECRET?: string;
  /** The key of `POST /segmentio/event?key=…`. */
  TRACKING_SEGMENTIO_WEBHOOK_SECRET?: string;
}

/** What the Worker serves with: one tracker and the pieces the handlers need. */
export interface Collector {
  /** The tracker built from the configuration. */
  readonly tracker: Tracker;
  /** The Queue transport of each async_routing branch, by configuration path. */
  readonly transports: ReadonlyMap<string, CloudflareQueueTransport>;
  /** The bus every event_bus branch publishes to. */
  readonly bus: DurableObjectBus;
  /** The topic of each event_bus branch (its `backendName`), in the order of the tree, depth first. */
  readonly topics: readonly string[];
  /**
   * Whether a sink of the tree holds connections that belong to the Worker
   * invocation that opened them (a `mongo` sink: the driver's sockets), so
   * that the tracker must not outlive one queue batch.
   */
  readonly invocationBound: boolean;
  /** The dead letters of the async branches, kept by the {@linkcode DeadLetterObject}; unset without `DEAD_LETTERS`. */
  readonly deadLetters?: DeadLetterStore;
}

/** Options of {@linkcode buildCollector}. */
export interface BuildCollectorOptions<E extends WorkerEnv = WorkerEnv> {
  /**
   * The tracker tree, or a function of the bindings that returns it.
   * @default the JSON of `EVENT_TRACKING_CONFIG`, else defaultWorkerConfig(env)
   */
  config?: TrackerConfig | ((env: E) => TrackerConfig);
  /**
   * Engines beyond the built-in ones, by ENGINE name, or a function of the
   * bindings that returns them: `(env) => mongoEngines(env.MONGODB_URI)`
   * (`@edx/event-tracking/mongo`) lets the tree have MongoDB sinks that
   * default to the `MONGODB_URI` binding. This entry does not load the
   * MongoDB driver itself.
   */
  engines?: Readonly<Record<string, Engine>> | ((env: E) => Readonly<Record<string, Engine>>);
  /** Where diagnostics, failed bus publishes and dead letters go. @default consoleLogger */
  logger?: DiagnosticLogger;
}

/**
 * The tree used when `EVENT_TRACKING_CONFIG` is unset: an async branch
 * writing JSON lines to the console (and to MongoDB when `MONGODB_URI` is
 * set), and an event-bus branch for enrollment events.
 *
 * @example
 * ```ts
 * import { defaultWorkerConfig } from "@edx/event-tracking/cloudflare";
 * import assert from "node:assert/strict";
 *
 * const config = defaultWorkerConfig({ MONGODB_URI: "mongodb://db.example/tracking" });
 * assert.deepEqual(Object.keys(config.backends!), ["tracking_logs", "event_bus"]);
 * ```
 */
export function defaultWorkerConfig(env: Pick<WorkerEnv, "MONGODB_URI">): TrackerConfig {
  const sinks: Record<string, { ENGINE: string; OPTIONS?: Record<string, unknown> }> = {
    console: { ENGINE: "logger", OPTIONS: { max_event_size: null } },
  };
  if (env.MONGODB_URI) sinks.mongo = { ENGINE: "mongo" };
  return {
    backends: {
      tracking_logs: { ENGINE: "async_routing", OPTIONS: { backends: sinks } },
      event_bus: {
        ENGINE: "event_bus",
        OPTIONS: {
          event_bus_tracking_logs: [
            "edx.course.enrollment.activated",
            "edx.course.enrollment.deactivated",
            "edx.course.enrollment.mode_changed",
            "edx.course.grade.passed.first_time",
          ],
        },
      },
    },
  };
}

// Whether any spec of the tree names one of the engines.
function usesEngine(config: unknown, names: readonly string[]): boolean {
  if (Array.isArray(config)) return config.some((item) => usesEngine(item, names));
  if (typeof config !== "object" || config === null) return false;
  const { ENGINE } = config as { ENGINE?: unknown };
  if (typeof ENGINE === "string" && names.includes(ENGINE)) return true;
  return Object.values(config).some((value) => usesEngine(value, names));
}

function readConfig<E extends WorkerEnv>(env: E, config: BuildCollectorOptions<E>["config"]): TrackerConfig {
  if (typeof config === "function") return config(env);
  if (config !== undefined) return config;
  try {
    return env.EVENT_TRACKING_CONFIG ? JSON.parse(env.EVENT_TRACKING_CONFIG) : defaultWorkerConfig(env);
  } catch (error) {
    throw new ImproperlyConfigured(`EVENT_TRACKING_CONFIG is not JSON: ${(error as Error).message}`, "", {
      cause: error,
    });
  }
}

/**
 * Builds the tracker from the bindings: `async_routing` branches queue on the
 * Cloudflare Queue, `event_bus` branches publish to the Durable Object on
 * their own topic (without holding up the other branches: the Worker's 202
 * waits for the Queue, and bus calls finish under `waitUntil`), dead
 * letters go to the log (Workers have no files) and, with the `DEAD_LETTERS`
 * binding, to the {@linkcode DeadLetterObject} too ({@linkcode DeadLetterObjectSink};
 * `deadLetters` lists and replays them), and the `engines` given
 * (e.g. `mongo`, defaulting to `MONGODB_URI`) are added to the built-in ones —
 * so the same JSON works in the Worker and in a Deno server. {@linkcode createWorker} calls it; call it yourself to
 * write handlers of your own.
 *
 * @example
 * ```ts
 * import { type AsyncRoutingBackend, InMemoryBackend } from "@edx/event-tracking";
 * import { buildCollector, CloudflareQueueTransport } from "@edx/event-tracking/cloudflare";
 * import assert from "node:assert/strict";
 *
 * const env = {
 *   EVENTS_QUEUE: { sendBatch: () => Promise.resolve() },
 *   EVENT_BUS: { idFromName: (name: string) => name, get: () => ({ fetch, publish: () => Promise.resolve(0) }) },
 *   EVENT_TRACKING_CONFIG: JSON.stringify({
 *     backends: { logs: { ENGINE: "async_routing", OPTIONS: { backends: { sink: { ENGINE: "memory" } } } } },
 *   }),
 * };
 * const { tracker, transports, topics, invocationBound, deadLetters } = buildCollector(env);
 * const logs = tracker.getBackend("logs") as AsyncRoutingBackend;
 * assert.ok(logs.transport instanceof CloudflareQueueTransport);
 * assert.ok(logs.backends.get("sink") instanceof InMemoryBackend);
 * assert.deepEqual([[...transports.keys()], topics, invocationBound], [["backends.logs"], [], false]);
 * assert.equal(deadLetters, undefined); // no DEAD_LETTERS binding: dead letters are only logged
 * await tracker.close();
 * ```
 *
 * @throws {ImproperlyConfigured} If `EVENT_TRACKING_CONFIG` is not JSON or not a valid tree.
 */
export function buildCollector<E extends WorkerEnv>(env: E, options: BuildCollectorOptions<E> = {}): Collector {
  const { logger } = options;
  const config = readConfig(env, options.config);
  const transports = new Map<string, CloudflareQueueTransport>();
  // Each Queue transport's branch, so that a retry of some of its backends can be told from a retry of all.
  const branches = new Map<CloudflareQueueTransport, AsyncRoutingBackend>();
  const topics: string[] = [];
  const bus = new DurableObjectBus({ namespace: env.EVENT_BUS, awaitPublish: false, logger });
  const engines = typeof options.engines === "function" ? options.engines(env) : options.engines;
  // Each branch's path in the tree (as metrics name it), known once the tree is built: where its letters are filed.
  const branchPaths = new Map<string, string>();
  const deadLetterObjects = env.DEAD_LETTERS;
  const tracker = createTracker(config, {
    logger,
    engines,
    queueTransport({ path, queueSize }) {
      const transport: CloudflareQueueTransport = new CloudflareQueueTransport({
        queue: env.EVENTS_QUEUE,
        path,
        capacity: queueSize,
        logger,
        backendNames: () => branches.get(transport)?.backends.keys(),
      });
      transports.set(path, transport);
      return transport;
    },
    busTransport: () => bus,
    deadLetterSink: ({ backendName, path }) =>
      deadLetterObjects === undefined
        ? new LoggerBackend({ name: `${backendName} dead letters`, level: "error", maxEventSize: null, logger })
        : new DeadLetterObjectSink({
          namespace: deadLetterObjects,
          backendName,
          path: () => branchPaths.get(backendName) ?? path,
          logger,
        }),
  });
  for (const { backend, path } of walkTree(tracker.backends)) {
    if (backend instanceof AsyncRoutingBackend) {
      if (!branchPaths.has(backend.backendName)) branchPaths.set(backend.backendName, path);
      if (backend.transport instanceof CloudflareQueueTransport) branches.set(backend.transport, backend);
    } else if (
      backend instanceof EventBusBackend && backend.transport === bus && !topics.includes(backend.backendName)
    ) {
      topics.push(backend.backendName);
    }
  }
  return {
    tracker,
    transports,
    bus,
    topics,
    invocationBound: usesEngine(config, MONGO_ENGINE_NAMES),
    deadLetters: deadLetterObjects === undefined ? undefined : durableObjectDeadLetterStore(deadLetterObjects, tracker),
  };
}
