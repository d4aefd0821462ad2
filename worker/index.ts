/// <reference types="@cloudflare/workers-types" />
/**
 * The edge collector as a Cloudflare Worker: `createWorker` (of
 * `@edx/event-tracking/cloudflare`) builds the handlers from the bindings —
 * `fetch` serves the collector's HTTP API, `queue` delivers queued events to
 * the sinks — {@linkcode EventBusObject} fans bus events out to WebSocket
 * subscribers, {@linkcode DeadLetterObject} keeps dead letters until they
 * are replayed, and {@linkcode MetricsObject} sums the counters of the
 * Worker's isolates. Bindings and environment: see wrangler.toml and README.md
 * beside this file.
 *
 * The reference above brings the Workers runtime's global types
 * (`ExportedHandler`, and `Request`, `Response`… as workerd has them), so this
 * file is type-checked in a program of its own (`deno check --config
 * dev/deno.json worker/index.ts`): in one with Deno's types they would clash.
 *
 * @module
 */

// @ts-expect-error: Deno types a .wasm import as its instance's exports; wrangler bundles it (CompiledWasm rule) as the compiled WebAssembly.Module this default import is.
import regexWasm from "../wasm/regex_filter.wasm";
import { mongoEngines } from "../src/backends/mongo.ts";
import { useRegexWasmModule } from "../src/processors/regex_filter.ts";
import {
  createWorker,
  DeadLetterObject,
  EventBusObject,
  MetricsObject,
  type WorkerEnv,
} from "../src/cloudflare/mod.ts";

// Workers cannot compile WebAssembly from bytes: RegexFilter uses the module wrangler compiled.
useRegexWasmModule(regexWasm as WebAssembly.Module);

export { DeadLetterObject, EventBusObject, MetricsObject };

// `mongo` sinks default to MONGODB_URI; a tree with one is built per queue batch, any other once per isolate.
export default createWorker<WorkerEnv>({
  engines: (env) => mongoEngines(env.MONGODB_URI || undefined),
}) satisfies ExportedHandler<WorkerEnv>;
