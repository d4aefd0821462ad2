/**
 * The collector's HTTP layer, for any runtime with the Fetch API (Deno,
 * Node.js 20 or later, Bun, Cloudflare Workers): the collector app
 * ({@linkcode createCollectorApp}, a Hono app whose `fetch` any server can
 * call), the request-scope middleware for applications that embed the
 * tracker ({@linkcode trackingContext}), and request validation. Nothing here
 * listens on a port or reads files: the Deno server is
 * `@edx/event-tracking/deno`, the Worker `@edx/event-tracking/cloudflare`.
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

export { type CollectorApp, type CollectorEnv, type CollectorOptions, createCollectorApp } from "./app.ts";
export {
  courseContext,
  courseContextFromUrl,
  createLmsEventsApp,
  LMS_ENV_VARIABLES,
  type LmsAppDeps,
  type LmsEventsApp,
  type LmsEventsEnv,
  lmsEventsFromEnv,
  type LmsEventsOptions,
} from "./lms_events.ts";
export {
  constantTimeEqual,
  createJwtVerifier,
  csrfSecret,
  csrfTokensMatch,
  JWT_HEADER_PAYLOAD_COOKIE,
  JWT_SIGNATURE_COOKIE,
  type JwtVerifierOptions,
  type LmsIdentity,
  maskCsrfSecret,
  sessionHash,
} from "./lms_security.ts";
export { clientBearerAuth, type ClientEnv, type Tokens } from "./auth.ts";
export {
  BUS_PROTOCOL,
  type BusTickets,
  busTickets,
  offeredTicket,
  offersBusProtocol,
  TICKET_LIFETIME_S,
  TICKET_PROTOCOL_PREFIX,
} from "./bus_ticket.ts";
export {
  type DeadLetterBranch,
  type DeadLetterEntry,
  deadLetterEntry,
  type DeadLetterReplay,
  type DeadLetterStore,
} from "./dead_letters.ts";
export { type FieldError, httpError, type HttpErrorOptions, isHttpException } from "./errors.ts";
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
