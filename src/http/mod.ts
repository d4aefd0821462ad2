/**
 * The edge collector's HTTP layer: the Hono app, the request-scope middleware
 * for applications that embed the tracker, and the Deno server.
 *
 * @example Embed the tracker's request scope in a Hono app
 * ```ts
 * import { Hono } from "hono";
 * import { InMemoryBackend, Tracker } from "@edx/event-tracking";
 * import { trackingContext } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * const tracker = new Tracker({ backends: { sink } });
 * const app = new Hono().use(trackingContext({ tracker }));
 * app.get("/", (c) => (tracker.emit("home.viewed"), c.text("ok")));
 * await app.request("/");
 * assert.equal(sink.events[0].context.path, "/");
 * ```
 *
 * @module
 */

export { type CollectorEnv, type CollectorOptions, createCollectorApp } from "./app.ts";
export { BearerAuth, type Tokens } from "./auth.ts";
export { type FieldError, HttpError } from "./errors.ts";
export {
  requestContext,
  requestEmitter,
  trackingContext,
  type TrackingContextOptions,
  type TrackingVariables,
} from "./tracking_context.ts";
export {
  type CollectorLimits,
  type IncomingEvent,
  parseEvents,
  readBody,
  type ResolvedLimits,
  resolveLimits,
} from "./validate.ts";
export {
  type CollectorServerOptions,
  defaultCollectorConfig,
  replayDeadLetters,
  type RunningCollector,
  startCollector,
} from "./serve.ts";
