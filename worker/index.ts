/**
 * The edge collector as a Cloudflare Worker: `fetch` serves the collector's
 * HTTP API, `queue` delivers queued events to the sinks, and
 * {@linkcode EventBusObject} fans bus events out to WebSocket subscribers.
 * Bindings and environment: see wrangler.toml and README.md beside this file.
 *
 * @module
 */

// @ts-expect-error: Deno types a .wasm import as its instance's exports; wrangler bundles it (CompiledWasm rule) as the compiled WebAssembly.Module this default import is.
import regexWasm from "../wasm/regex_filter.wasm";
import type { ExecutionContext } from "hono";
import { consoleLogger } from "../mod.ts";
import { createCollectorApp } from "../src/http/app.ts";
import { useRegexWasmModule } from "../src/processors/regex_filter.ts";
import { type CloudflareMessageBatch, receiveQueueBatch } from "../src/transports/cf_queue.ts";
import { EventBusObject } from "../src/transports/durable_object.ts";
import { buildCollector, type WorkerEnv } from "./_config.ts";

// Workers cannot compile WebAssembly from bytes: RegexFilter uses the module wrangler compiled.
useRegexWasmModule(regexWasm as WebAssembly.Module);

export { EventBusObject };

type CollectorApp = ReturnType<typeof createCollectorApp>;

// One app per isolate and bindings object; the bindings do not change while an isolate lives.
const apps = new WeakMap<WorkerEnv, CollectorApp>();

function appFor(env: WorkerEnv): CollectorApp {
  let app = apps.get(env);
  if (app === undefined) {
    const { tracker, bus } = buildCollector(env);
    app = createCollectorApp({
      tracker,
      token: env.EVENT_TRACKING_TOKEN || undefined,
      busSubscribe: (c) => bus.connect(c.req.raw),
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
