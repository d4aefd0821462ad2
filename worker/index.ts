/**
 * The edge collector as a Cloudflare Worker: `fetch` serves the collector's
 * HTTP API, `queue` delivers queued events to the sinks, and
 * {@linkcode EventBusObject} fans bus events out to WebSocket subscribers.
 * `POST /v1/events` answers 202 only once the Queue has stored the events
 * (503 with `Retry-After` when it could not); bus publishes finish after the
 * response, under `waitUntil`. Bindings and environment: see wrangler.toml
 * and README.md beside this file.
 *
 * @module
 */

// @ts-expect-error: Deno types a .wasm import as its instance's exports; wrangler bundles it (CompiledWasm rule) as the compiled WebAssembly.Module this default import is.
import regexWasm from "../wasm/regex_filter.wasm";
import type { ExecutionContext } from "hono";
import { consoleLogger } from "../mod.ts";
import { createCollectorApp } from "../src/http/app.ts";
import { HttpError } from "../src/http/errors.ts";
import type { TrackingEvent } from "../src/event.ts";
import { useRegexWasmModule } from "../src/processors/regex_filter.ts";
import { type CloudflareMessageBatch, receiveQueueBatch } from "../src/transports/cf_queue.ts";
import { EventBusObject } from "../src/transports/durable_object.ts";
import { buildCollector, type Collector, type WorkerEnv } from "./_config.ts";

// Workers cannot compile WebAssembly from bytes: RegexFilter uses the module wrangler compiled.
useRegexWasmModule(regexWasm as WebAssembly.Module);

export { EventBusObject };

type CollectorApp = ReturnType<typeof createCollectorApp>;

// One app per isolate and bindings object; the bindings do not change while an isolate lives.
const apps = new WeakMap<WorkerEnv, CollectorApp>();

/**
 * Sends each event through the tree and resolves once every branch has taken
 * it: for the async_routing branches, once the Queue has stored it. It
 * rejects (the app answers 503 with `Retry-After`) if a branch failed it,
 * after every send has settled.
 */
async function intake(tracker: Collector["tracker"], events: readonly TrackingEvent[]): Promise<void> {
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
    if (topics.length === 0) throw new HttpError(404, "bus_unavailable", "This collector has no event_bus branch");
    if (topic !== undefined && !topics.includes(topic)) {
      throw new HttpError(
        404,
        "unknown_topic",
        `No event_bus branch publishes on topic "${topic}" (topics: ${topics.map((t) => `"${t}"`).join(", ")})`,
      );
    }
    return bus.connect(request, topic ?? topics[0]);
  };
}

function appFor(env: WorkerEnv): CollectorApp {
  let app = apps.get(env);
  if (app === undefined) {
    const collector = buildCollector(env);
    const { tracker } = collector;
    const subscribe = subscriber(collector);
    app = createCollectorApp({
      tracker,
      token: env.EVENT_TRACKING_TOKEN || undefined,
      intake: (events) => intake(tracker, events),
      busSubscribe: (c) => subscribe(c.req.raw, c.req.query("topic") || undefined),
      // What may finish after the 202: bus publishes and the rest of the tree's work.
      waitUntil: (c, work) => c.executionCtx.waitUntil(work),
    });
    apps.set(env, app);
  }
  return app;
}

export default {
  /** Serves the collector's HTTP API. */
  async fetch(request: Request, env: WorkerEnv, ctx: ExecutionContext): Promise<Response> {
    let app: CollectorApp;
    try {
      app = appFor(env);
    } catch (error) {
      consoleLogger.error("Collector: cannot build the tracker from the Worker's configuration", error);
      return Response.json({ error: "misconfigured", message: "The collector is misconfigured" }, { status: 500 });
    }
    return await app.fetch(request, env, ctx);
  },

  /**
   * Delivers a Queue batch to the async_routing branches' nested backends.
   * The tracker is built per batch and closed after it: sink connections
   * (MongoDB sockets) belong to the invocation that opened them.
   */
  async queue(batch: CloudflareMessageBatch, env: WorkerEnv): Promise<void> {
    const { tracker, transports } = buildCollector(env);
    try {
      await receiveQueueBatch(batch, transports);
    } finally {
      await tracker.close().catch((error) =>
        consoleLogger.error("Collector: closing the queue consumer failed", error)
      );
    }
  },
};
