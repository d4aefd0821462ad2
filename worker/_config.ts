/**
 * Builds the Worker's tracker from its bindings: `EVENT_TRACKING_CONFIG` (in
 * the `createTracker` format) or a default tree, with `async_routing`
 * branches on the Cloudflare Queue, `event_bus` branches on the Durable
 * Object (each on its own topic), and a `mongo` engine that defaults to
 * `MONGODB_URI`.
 *
 * @module
 */

import {
  AsyncRoutingBackend,
  createTracker,
  type DiagnosticLogger,
  EventBusBackend,
  ImproperlyConfigured,
  LoggerBackend,
  registerEngine,
  type Tracker,
  type TrackerConfig,
  walkTree,
} from "../mod.ts";
import { mongoEngine } from "../src/backends/mongo.ts";
import { MONGO_ENGINE_NAMES } from "../src/config.ts";
import { type CloudflareQueue, CloudflareQueueTransport } from "../src/transports/cf_queue.ts";
import { DurableObjectBus, type DurableObjectNamespaceLike } from "../src/transports/durable_object.ts";

/** The Worker's bindings (wrangler.toml): the environment contract of the collector. */
export interface WorkerEnv {
  /** The bearer token clients send; without it every authenticated route answers 401. */
  EVENT_TRACKING_TOKEN?: string;
  /** The tracker tree as JSON, in the `createTracker` format; unset means {@linkcode defaultConfig}. */
  EVENT_TRACKING_CONFIG?: string;
  /** The MongoDB connection string `mongo` engines use when they name no server. */
  MONGODB_URI?: string;
  /** The Queue producer binding of the async_routing branches. */
  EVENTS_QUEUE: CloudflareQueue;
  /** The Durable Object namespace of the event bus. */
  EVENT_BUS: DurableObjectNamespaceLike;
}

/** What the Worker serves with. */
export interface Collector {
  /** The tracker built from the configuration. */
  readonly tracker: Tracker;
  /** The Queue transport of each async_routing branch, by configuration path. */
  readonly transports: ReadonlyMap<string, CloudflareQueueTransport>;
  /** The bus every event_bus branch publishes to. */
  readonly bus: DurableObjectBus;
  /** The topic of each event_bus branch (its `backendName`), in the order of the tree, depth first. */
  readonly topics: readonly string[];
}

/**
 * The tree used when `EVENT_TRACKING_CONFIG` is unset: an async branch
 * writing JSON lines to the console (and to MongoDB when `MONGODB_URI` is
 * set), and an event-bus branch for enrollment events.
 */
export function defaultConfig(env: Pick<WorkerEnv, "MONGODB_URI">): TrackerConfig {
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

/**
 * Builds the tracker from the bindings: `async_routing` branches queue on the
 * Cloudflare Queue, `event_bus` branches publish to the Durable Object on
 * their own topic (without holding up the other branches: the Worker's 202
 * waits for the Queue, and bus requests finish under `waitUntil`), dead
 * letters go to the log (Workers have no files), and `mongo` engines that
 * name no server use `MONGODB_URI` — so the same JSON works in the Worker and
 * in a Deno server.
 *
 * @throws {ImproperlyConfigured} If `EVENT_TRACKING_CONFIG` is not JSON or not a valid tree.
 */
export function buildCollector(env: WorkerEnv, logger?: DiagnosticLogger): Collector {
  let config: TrackerConfig;
  try {
    config = env.EVENT_TRACKING_CONFIG ? JSON.parse(env.EVENT_TRACKING_CONFIG) : defaultConfig(env);
  } catch (error) {
    throw new ImproperlyConfigured(`EVENT_TRACKING_CONFIG is not JSON: ${(error as Error).message}`, "", {
      cause: error,
    });
  }
  const transports = new Map<string, CloudflareQueueTransport>();
  // Each Queue transport's branch, so that a retry of some of its backends can be told from a retry of all.
  const branches = new Map<CloudflareQueueTransport, AsyncRoutingBackend>();
  const topics: string[] = [];
  const bus = new DurableObjectBus({ namespace: env.EVENT_BUS, awaitPublish: false, logger });
  for (const name of MONGO_ENGINE_NAMES) registerEngine(name, mongoEngine(env.MONGODB_URI || undefined));
  const tracker = createTracker(config, {
    logger,
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
    deadLetterSink: ({ backendName }) =>
      new LoggerBackend({ name: `${backendName} dead letters`, level: "error", maxEventSize: null, logger }),
  });
  for (const { backend } of walkTree(tracker.backends)) {
    if (backend instanceof AsyncRoutingBackend && backend.transport instanceof CloudflareQueueTransport) {
      branches.set(backend.transport, backend);
    } else if (
      backend instanceof EventBusBackend && backend.transport === bus && !topics.includes(backend.backendName)
    ) {
      topics.push(backend.backendName);
    }
  }
  return { tracker, transports, bus, topics };
}
