/**
 * A Hono middleware that opens the request scope, as Open edX's tracking
 * middleware does, for applications that embed the tracker in their own app.
 *
 * @module
 */

import type { HonoContext as Context, HonoMiddleware } from "./_hono.ts";
import type { EventEmitter, Tracker } from "../tracker.ts";

/** The Hono variables this middleware sets. */
export interface TrackingVariables {
  /** The request scope's context, as entered. */
  trackingContext: Record<string, unknown>;
}

/** Options of {@linkcode trackingContext}. */
export interface TrackingContextOptions {
  /** The tracker whose scope is opened. */
  tracker: Tracker;
  /** The scope name. @default "edx.request" */
  name?: string;
  /** The client's IP address. @default the `CF-Connecting-IP` header */
  clientIp?: (c: Context) => string | undefined;
  /** Extra keys for the scope, e.g. the authenticated client. */
  extra?: (c: Context) => Record<string, unknown>;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * What the request scope carries: request id (from a well-formed
 * `X-Request-Id`, or a new UUID), ip, user agent, host, path, referer and
 * accept language (`accept_language`, as the LMS records it).
 * Keys without a value are left out.
 *
 * @example In a route of your own
 * ```ts
 * import { Hono } from "hono";
 * import { requestContext } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const app = new Hono().get("/courses", (c) => c.json(requestContext(c, () => "203.0.113.7")));
 * const response = await app.request("https://lms.test/courses", { headers: { "x-request-id": "req-1" } });
 * assert.deepEqual(await response.json(), { request_id: "req-1", ip: "203.0.113.7", host: "lms.test", path: "/courses" });
 * ```
 */
export function requestContext(c: Context, clientIp?: (c: Context) => string | undefined): Record<string, unknown> {
  const headers = c.req.raw.headers;
  const given = headers.get("x-request-id");
  const url = new URL(c.req.url);
  // Keys are added only when they have a value (a deleted key would leave the object slow to copy).
  const context: Record<string, unknown> = {
    request_id: given !== null && REQUEST_ID.test(given) ? given : crypto.randomUUID(),
  };
  const ip = (clientIp ?? ((c) => c.req.header("cf-connecting-ip")))(c);
  if (ip !== undefined) context.ip = ip;
  const agent = headers.get("user-agent");
  if (agent !== null) context.agent = agent;
  context.host = headers.get("host") ?? url.host;
  context.path = url.pathname;
  const referer = headers.get("referer");
  if (referer !== null) context.referer = referer;
  // The LMS's tracking middleware records it too: Open edX tracking-log lines carry it.
  const acceptLanguage = headers.get("accept-language");
  if (acceptLanguage !== null) context.accept_language = acceptLanguage;
  return context;
}

/**
 * Opens a named context scope around the rest of the request, so that every
 * event emitted while handling it carries the request's id, ip, user agent,
 * host, path, referer and accept language. Concurrent requests never see each other's scope.
 *
 * @example Embed the tracker in a Hono app
 * ```ts
 * import { Hono } from "hono";
 * import { InMemoryBackend, Tracker } from "@edx/event-tracking";
 * import { trackingContext } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * const tracker = new Tracker({ backends: { sink } });
 * const app = new Hono();
 * app.use(trackingContext({ tracker }));
 * app.get("/courses", (c) => {
 *   tracker.emit("edx.course.list.viewed");
 *   return c.text("ok");
 * });
 * await app.request("/courses", { headers: { "x-request-id": "req-1", "user-agent": "test" } });
 * assert.equal(sink.events[0].context.request_id, "req-1");
 * assert.equal(sink.events[0].context.path, "/courses");
 * ```
 */
export function trackingContext(options: TrackingContextOptions): HonoMiddleware<{ Variables: TrackingVariables }> {
  const { tracker, clientIp, extra } = options;
  const name = options.name ?? "edx.request";
  return function trackingContext(c, next) {
    const context = { ...requestContext(c, clientIp), ...extra?.(c) };
    c.set("trackingContext", context);
    return tracker.context(name, context, () => next());
  };
}

/**
 * The view events of this request are emitted through: the client's own
 * `context` first, the request scope over it (a key in both takes the
 * request's value). Without a client context it is the tracker itself.
 *
 * @example
 * ```ts
 * import { InMemoryBackend, Tracker } from "@edx/event-tracking";
 * import { requestEmitter } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * const tracker = new Tracker({ backends: { sink } });
 * const emitter = requestEmitter(tracker, { request_id: "req-1", path: "/v1/events" }, { course_id: "c1", path: "x" });
 * emitter.emit("edx.ui.click");
 * assert.deepEqual(sink.events[0].context, { course_id: "c1", path: "/v1/events", request_id: "req-1" });
 * ```
 */
export function requestEmitter(
  tracker: Tracker,
  requestScope: Record<string, unknown>,
  clientContext: Record<string, unknown> | undefined,
  name = "edx.request",
): EventEmitter {
  if (clientContext === undefined) return tracker;
  return tracker.withContext("event", clientContext).withContext(name, requestScope);
}
