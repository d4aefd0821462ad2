/**
 * {@linkcode createWorker}: the collector's Worker handlers, built from the
 * bindings, so that a Worker is one `export default createWorker()`.
 *
 * @module
 */

import { consoleLogger } from "../diagnostics.ts";
import type { TrackingEvent } from "../event.ts";
import { createCollectorApp } from "../http/app.ts";
import { httpError } from "../http/errors.ts";
import { lmsEventsFromEnv } from "../http/lms_events.ts";
import type { CollectorLimits } from "../http/validate.ts";
import { emptyMetrics, type MetricsSnapshot } from "../metrics.ts";
import type { Tracker } from "../tracker.ts";
import { buildCollector, type BuildCollectorOptions, type Collector, type WorkerEnv } from "./collector.ts";
import { MetricsReporter } from "./metrics_object.ts";
import { type CloudflareMessageBatch, receiveQueueBatch } from "./queue.ts";

/** A Worker invocation's context (`ctx`): the part the handlers use. */
export interface WorkerExecutionContext {
  /** Keeps the invocation alive until the promise settles. */
  waitUntil(promise: Promise<unknown>): void;
  /** Lets the request go on to the origin if the Worker throws. */
  passThroughOnException(): void;
}

/**
 * How long the queue consumer's tracker lives:
 * - `"isolate"`: built at the first batch, reused by every later batch of the isolate;
 * - `"batch"`: built for each batch and closed after it;
 * - `"auto"`: per batch when a sink of the tree holds connections that belong
 *   to the invocation that opened them (a `mongo` sink), else per isolate.
 */
export type ConsumerLifetime = "auto" | "isolate" | "batch";

/** Options of {@linkcode createWorker}. */
export interface CreateWorkerOptions<E extends WorkerEnv = WorkerEnv> extends BuildCollectorOptions<E> {
  /** How long the queue consumer's tracker lives. @default "auto" */
  consumer?: ConsumerLifetime;
  /** Request limits of `POST /v1/events`. */
  limits?: CollectorLimits;
}

/** The Worker's handlers: export them as the Worker's default export. */
export interface CollectorWorker<E extends WorkerEnv = WorkerEnv> {
  /**
   * Serves the collector's HTTP API (`@edx/event-tracking/http`):
   * `POST /v1/events` answers 202 once the Queue has stored the events (503
   * with `Retry-After` when it could not), `GET /v1/bus/subscribe` is handed
   * to the Durable Object. A configuration that cannot be built answers 500
   * (and is logged).
   */
  fetch(request: Request, env: E, ctx: WorkerExecutionContext): Promise<Response>;
  /**
   * Delivers a Queue batch to the async_routing branches' nested backends:
   * acks each delivered message, retries the others with the branch's backoff.
   */
  queue(batch: CloudflareMessageBatch, env: E, ctx: WorkerExecutionContext): Promise<void>;
}

const LIFETIMES: readonly ConsumerLifetime[] = ["auto", "isolate", "batch"];

function ignore(): void {}

/** The counters of several trackers of one tree, summed per path (`queueDepth` too). */
function sumMetrics(snapshots: readonly (MetricsSnapshot | undefined)[]): MetricsSnapshot {
  const sum: MetricsSnapshot = {};
  for (const snapshot of snapshots) {
    for (const [path, counters] of Object.entries(snapshot ?? {})) {
      const total = sum[path] ??= emptyMetrics();
      for (const key of Object.keys(total) as (keyof typeof total)[]) total[key] += counters[key] ?? 0;
    }
  }
  return sum;
}

/**
 * Sends each event through the tree and resolves once every branch has taken
 * it: for the async_routing branches, once the Queue has stored it. It
 * rejects (the app answers 503 with `Retry-After`) if a branch failed it,
 * after every send has settled.
 */
async function intake(tracker: Tracker, events: readonly TrackingEvent[]): Promise<void> {
  const sends = await Promise.allSettled(events.map((event) => tracker.send(event)));
  const failures = sends.filter((send) => send.status === "rejected").map((send) => send.reason);
  if (failures.length === 1) throw failures[0];
  if (failures.length > 1) throw new AggregateError(failures, `${failures.length} event(s) could not be taken in`);
}

/**
 * Subscribes a WebSocket to the topic named by `?topic=`, or else to that of
 * the first event_bus branch of the tree (as the Deno server does).
 */
function subscriber({ bus, topics }: Collector): (request: Request, topic: string | undefined) => Promise<Response> {
  return (request, topic) => {
    if (topics.length === 0) throw httpError(404, "bus_unavailable", "This collector has no event_bus branch");
    if (topic !== undefined && !topics.includes(topic)) {
      throw httpError(
        404,
        "unknown_topic",
        `No event_bus branch publishes on topic "${topic}" (topics: ${topics.map((t) => `"${t}"`).join(", ")})`,
      );
    }
    return bus.connect(request, topic ?? topics[0]);
  };
}

/**
 * Creates the collector Worker's handlers. Both build the tracker from the
 * bindings ({@linkcode buildCollector}: `EVENT_TRACKING_CONFIG` or the
 * default tree, the Queue, the Durable Object, `MONGODB_URI`):
 *
 * - `fetch` builds it once per isolate (and bindings object) and keeps it;
 * - `queue` builds its own, once per isolate too, unless a sink of the tree
 *   holds connections that belong to one invocation (a `mongo` sink: a Worker
 *   cannot use a socket opened by another invocation), in which case it
 *   builds one per batch and closes it after the batch (`consumer` option).
 *
 * The app lists and replays dead letters (`/v1/dead-letters`) when the
 * `DEAD_LETTERS` binding is set ({@linkcode DeadLetterObject}, global). Its
 * counters (`/v1/metrics`, `/v1/metrics.json`) are the Worker's, over all
 * its isolates, when the `METRICS` binding is set: each isolate's
 * {@linkcode MetricsReporter} sends what its counters (its fetch tracker's
 * plus its queue consumer's, summed per path) grew by to the
 * {@linkcode MetricsObject}, at most once a second after requests (under
 * `ctx.waitUntil`, after the response), at the end of each queue batch, and
 * before the metrics are answered; they are then the object's totals (a
 * `503` with `Retry-After` if it cannot be read). Without the binding they
 * are the answering isolate's only.
 *
 * Export {@linkcode EventBusObject}, {@linkcode DeadLetterObject} and
 * {@linkcode MetricsObject} beside it and bind them as in
 * worker/wrangler.toml. In a Worker, RegexFilter's WebAssembly needs the
 * module wrangler compiled: `useRegexWasmModule(wasm)` (see worker/index.ts).
 *
 * @example A Worker, with a stand-in Queue and Durable Object
 * ```ts
 * import { createWorker, type WorkerEnv } from "@edx/event-tracking/cloudflare";
 * import assert from "node:assert/strict";
 *
 * const worker = createWorker();
 * const queued: unknown[] = [];
 * const env: WorkerEnv = {
 *   EVENT_TRACKING_TOKEN: "secret",
 *   EVENTS_QUEUE: { sendBatch: async (messages) => void queued.push(...messages) },
 *   EVENT_BUS: { idFromName: (name) => name, get: () => ({ fetch, publish: () => Promise.resolve(0) }) },
 * };
 * const ctx = { waitUntil() {}, passThroughOnException() {} };
 * const response = await worker.fetch(
 *   new Request("https://collector.example/v1/events", {
 *     method: "POST",
 *     headers: { authorization: "Bearer secret" },
 *     body: JSON.stringify({ name: "edx.ui.click" }),
 *   }),
 *   env,
 *   ctx,
 * );
 * assert.equal(response.status, 202); // the Queue has the event
 * assert.equal(queued.length, 1);
 * ```
 *
 * @throws {RangeError} If `consumer` is not one of `auto`, `isolate`, `batch`.
 */
export function createWorker<E extends WorkerEnv = WorkerEnv>(
  options: CreateWorkerOptions<E> = {},
): CollectorWorker<E> {
  const logger = options.logger ?? consoleLogger;
  const lifetime = options.consumer ?? "auto";
  if (!LIFETIMES.includes(lifetime)) {
    throw new RangeError(
      `Cannot create the Worker as 'consumer' must be one of ${LIFETIMES.join(", ")}: current value is ${lifetime}`,
    );
  }
  type CollectorApp = ReturnType<typeof createCollectorApp>;
  // One per isolate and bindings object: the bindings do not change while an isolate lives.
  const apps = new WeakMap<E, { app: CollectorApp; tracker: Tracker }>();
  const consumers = new WeakMap<E, Collector>();
  // The counters of the queue consumer's trackers built per batch and closed since, summed.
  const retired = new WeakMap<E, MetricsSnapshot>();
  // With the METRICS binding: what reports this isolate's counters to the MetricsObject.
  const reporters = new WeakMap<E, MetricsReporter>();

  /** This isolate's counters: its fetch tracker's (intake) plus its queue consumer's (delivery), per path. */
  function isolateMetrics(env: E): MetricsSnapshot {
    return sumMetrics([apps.get(env)?.tracker.metrics(), consumers.get(env)?.tracker.metrics(), retired.get(env)]);
  }

  function reporterFor(env: E): MetricsReporter | undefined {
    if (env.METRICS === undefined) return undefined;
    let reporter = reporters.get(env);
    if (reporter === undefined) {
      reporter = new MetricsReporter({ namespace: env.METRICS, snapshot: () => isolateMetrics(env), logger });
      reporters.set(env, reporter);
    }
    return reporter;
  }

  /** The Worker's counters, from the MetricsObject once this isolate's are reported. */
  async function globalMetrics(reporter: MetricsReporter): Promise<MetricsSnapshot> {
    try {
      return await reporter.totals();
    } catch (error) {
      throw httpError(
        503,
        "metrics_unavailable",
        `The metrics object could not be read (${error instanceof Error ? error.message : String(error)}); retry later`,
        { retryAfter: 1, cause: error },
      );
    }
  }

  function appFor(env: E): CollectorApp {
    let app = apps.get(env)?.app;
    if (app === undefined) {
      const reporter = reporterFor(env);
      const collector = buildCollector(env, options);
      const { tracker } = collector;
      const subscribe = subscriber(collector);
      app = createCollectorApp({
        tracker,
        token: env.EVENT_TRACKING_TOKEN || undefined,
        intake: (events) => intake(tracker, events),
        busSubscribe: (c) => subscribe(c.req.raw, c.req.query("topic") || undefined),
        // What may finish after the 202: bus calls and the rest of the tree's work (then a report of what it counted).
        waitUntil: (c, work) => {
          c.executionCtx.waitUntil(work);
          if (reporter !== undefined) {
            c.executionCtx.waitUntil(work.then(ignore, ignore).then(() => reporter.schedule(c.executionCtx)));
          }
        },
        limits: options.limits,
        logger: options.logger,
        // Rate limits belong to Cloudflare's WAF rules here: an isolate sees only part of the traffic.
        lmsEvents: lmsEventsFromEnv(env as unknown as Record<string, unknown>),
        deadLetters: collector.deadLetters,
        // The Worker's (every isolate's, summed by the MetricsObject), or else this isolate's.
        metrics: reporter === undefined ? () => isolateMetrics(env) : () => globalMetrics(reporter),
      });
      apps.set(env, { app, tracker });
    }
    return app;
  }

  return {
    async fetch(request, env, ctx) {
      let app: CollectorApp;
      try {
        app = appFor(env);
      } catch (error) {
        logger.error("Collector: cannot build the tracker from the Worker's configuration", error);
        return Response.json({ error: "misconfigured", message: "The collector is misconfigured" }, { status: 500 });
      }
      try {
        return await app.fetch(request, env, ctx as Parameters<CollectorApp["fetch"]>[2]);
      } finally {
        // What this request counted reaches the MetricsObject after the response, at most once a second.
        reporters.get(env)?.schedule(ctx);
      }
    },

    async queue(batch, env, ctx) {
      const reporter = reporterFor(env);
      let collector = consumers.get(env);
      let perBatch = false;
      if (collector === undefined) {
        collector = buildCollector(env, options);
        perBatch = lifetime === "batch" || (lifetime === "auto" && collector.invocationBound);
        if (!perBatch) consumers.set(env, collector);
      }
      try {
        await receiveQueueBatch(batch, collector.transports, logger);
      } finally {
        if (perBatch) {
          await collector.tracker.close().catch((error) =>
            logger.error("Collector: closing the queue consumer failed", error)
          );
          // Its counters live on in the isolate's metrics; nothing is queued in a closed tracker.
          const counters = collector.tracker.metrics();
          for (const path in counters) counters[path].queueDepth = 0;
          retired.set(env, sumMetrics([retired.get(env), counters]));
        }
        // What the batch counted, reported now (after the batch, not holding it up).
        if (reporter !== undefined) ctx.waitUntil(reporter.report());
      }
    },
  };
}
