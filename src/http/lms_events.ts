/**
 * The Open edX LMS's browser-event endpoints at the edge: `GET|POST /event`
 * (`track.views.user_track`) and `POST /segmentio/event` (the Segment
 * webhook of the mobile apps), as a Hono app that {@linkcode createCollectorApp}
 * mounts with its `lmsEvents` option, on the Deno server and the Worker alike.
 *
 * @module
 */

import { Hono } from "hono";
import { getCookie } from "hono/cookie";
import { cors } from "hono/cors";
import type { HonoApp, HonoContext } from "./_hono.ts";
import type { DiagnosticLogger } from "../diagnostics.ts";
import type { TrackingEvent } from "../event.ts";
import type { Tracker } from "../tracker.ts";
import { httpError, httpExceptionResponse, isHttpException } from "./errors.ts";
import {
  constantTimeEqual,
  createJwtVerifier,
  csrfTokensMatch,
  JWT_HEADER_PAYLOAD_COOKIE,
  JWT_SIGNATURE_COOKIE,
  type LmsIdentity,
  sessionHash,
} from "./lms_security.ts";
import { requestContext } from "./tracking_context.ts";
import { ClientGone, readBody } from "./validate.ts";

/** Options of the LMS endpoints (`lmsEvents` of {@linkcode createCollectorApp}). */
export interface LmsEventsOptions {
  /** The LMS's public JWK set (`EVENT_TRACKING_JWT_JWKS`); without it every browser event is anonymous. */
  jwks?: string | { keys: readonly Record<string, unknown>[] };
  /** The `iss` the JWT must carry (`EVENT_TRACKING_JWT_ISSUER`). @default not checked */
  issuer?: string;
  /** The `aud` the JWT must carry (`EVENT_TRACKING_JWT_AUDIENCE`). @default not checked */
  audience?: string;
  /** Django's CSRF check on POSTs that carry cookies (`EVENT_TRACKING_CSRF=off` turns it off). @default true */
  csrf?: boolean;
  /** Origins of MFEs on other hostnames allowed by CORS (`EVENT_TRACKING_CORS_ORIGINS`). @default none */
  corsOrigins?: readonly string[];
  /** The LMS's `SECRET_KEY`, for the `session` hash (`EVENT_TRACKING_SESSION_SECRET`). @default `session` is `""` */
  sessionSecret?: string;
  /** The key of `POST /segmentio/event?key=…` (`TRACKING_SEGMENTIO_WEBHOOK_SECRET`); without it every call is 401. */
  segmentioSecret?: string;
  /** The most requests per client IP and window; over it 429. @default no limit */
  rateLimit?: { requests: number; windowMs?: number };
  /** The largest body, in bytes (413 above). @default 65536 */
  maxBodyBytes?: number;
  /** The largest `event` field, in characters (413 above; the LMS's tracking log drops events over 50000). @default 50000 */
  maxEventChars?: number;
}

/** The Hono environment of the LMS app. */
export type LmsEventsEnv = { Variables: Record<string, unknown> };

/** The LMS app: a Hono app, mounted with `app.route("/", lmsApp)` or served with `lmsApp.fetch(request)`. */
export type LmsEventsApp = HonoApp<LmsEventsEnv>;

/** What the LMS app needs from the collector. */
export interface LmsAppDeps {
  /** Accepted events are built by this tracker. */
  tracker: Tracker;
  /** Takes the accepted events into the tree. */
  intake: (events: readonly TrackingEvent[]) => void | Promise<void>;
  /** The client's IP address. @default the `CF-Connecting-IP` header */
  clientIp?: (c: HonoContext) => string | undefined;
  /** Where failures to take events in are reported. */
  logger: DiagnosticLogger;
  /** Keeps work alive after the response. */
  waitUntil?: (c: HonoContext, work: Promise<unknown>) => void;
}

const MAX_FIELD_CHARS = 4096;
const ALLOWED_HEADERS = ["content-type", "x-csrftoken", "use-jwt-cookie", "x-edx-ga-client-id", "x-requested-with"];
// A course run key: `course-v1:Org+Course+Run`, or the old `Org/Course/Run` (`CourseKey.from_string`).
const COURSE_KEY = /^(?:course-v1:([\w.~-]+)\+[\w.~-]+\+[\w.~:-]+|([\w.~-]+)\/[\w.~-]+\/[\w.~:-]+)$/;
// The LMS's `COURSE_REGEX`: the course id after `/courses/` in a page URL.
const COURSE_IN_URL = /^.*?\/courses\/([^/+]+[/+][^/+]+[/+][^/?]+)/;

/**
 * `course_id` and `org_id` of a course run key (`""` for both when it is not one).
 *
 * @example
 * ```ts
 * import { courseContext } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(courseContext("course-v1:edX+DemoX+2024"), { course_id: "course-v1:edX+DemoX+2024", org_id: "edX" });
 * assert.deepEqual(courseContext("nonsense"), { course_id: "", org_id: "" });
 * ```
 */
export function courseContext(key: string | undefined | null): { course_id: string; org_id: string } {
  const match = key ? COURSE_KEY.exec(key) : null;
  if (match === null) return { course_id: "", org_id: "" };
  return { course_id: key!, org_id: match[1] ?? match[2] };
}

/**
 * The course context of a page URL (`/courses/<course id>/…`), as the LMS's
 * `course_context_from_url`; `""` for both without one.
 *
 * @example
 * ```ts
 * import { courseContextFromUrl } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(
 *   courseContextFromUrl("https://lms.test/courses/course-v1:edX+DemoX+2024/courseware/a/b"),
 *   { course_id: "course-v1:edX+DemoX+2024", org_id: "edX" },
 * );
 * ```
 */
export function courseContextFromUrl(url: string | undefined | null): { course_id: string; org_id: string } {
  const match = url ? COURSE_IN_URL.exec(url) : null;
  return courseContext(match?.[1]);
}

/** The `event` field as the LMS takes it: absent → `{}`, JSON text parsed, other text kept as it is. */
function eventData(text: string | undefined): unknown {
  if (text === undefined) return {};
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The Google Analytics client id of a `_ga` cookie (`GA1.2.<id>.<time>` → `<id>.<time>`). */
function gaClientId(c: HonoContext): string | undefined {
  const header = c.req.header("x-edx-ga-client-id");
  if (header) return header.slice(0, 256);
  const ga = getCookie(c, "_ga");
  if (!ga) return undefined;
  const parts = ga.split(".");
  return (parts.length >= 4 ? parts.slice(2).join(".") : ga).slice(0, 256);
}

/** A per-key fixed-window counter. */
class RateLimiter {
  #counts = new Map<string, number>();
  #windowStart = 0;
  constructor(readonly requests: number, readonly windowMs: number) {}
  /** Seconds until the window ends when `key` is over the limit, else 0. */
  take(key: string): number {
    const now = Date.now();
    if (now - this.#windowStart >= this.windowMs) {
      this.#counts.clear();
      this.#windowStart = now;
    }
    const count = (this.#counts.get(key) ?? 0) + 1;
    this.#counts.set(key, count);
    return count > this.requests ? Math.max(1, Math.ceil((this.#windowStart + this.windowMs - now) / 1000)) : 0;
  }
}

/** Reads the fields of a POST body: form-urlencoded (or text), or multipart. */
async function formFields(c: HonoContext, maxBytes: number): Promise<Map<string, string>> {
  const type = (c.req.header("content-type") ?? "").toLowerCase();
  const text = await readBody(c.req.raw, maxBytes);
  const fields = new Map<string, string>();
  if (type.startsWith("multipart/form-data")) {
    let form: FormData;
    try {
      form = await new Response(text, { headers: { "content-type": type } }).formData();
    } catch {
      throw httpError(400, "bad_form", "The multipart body could not be read");
    }
    for (const [name, value] of form) if (typeof value === "string" && !fields.has(name)) fields.set(name, value);
    return fields;
  }
  if (type !== "" && !type.startsWith("application/x-www-form-urlencoded") && !type.startsWith("text/plain")) {
    throw httpError(
      415,
      "unsupported_media_type",
      "POST /event takes a form (application/x-www-form-urlencoded or multipart/form-data)",
    );
  }
  for (const [name, value] of new URLSearchParams(text)) if (!fields.has(name)) fields.set(name, value);
  return fields;
}

/**
 * The LMS endpoints as a Hono app, to mount at the root of a collector app
 * (which {@linkcode createCollectorApp} does with its `lmsEvents` option):
 *
 * - `GET /event` (fields in the query) and `POST /event` (a form): emits the
 *   `event_type` event (`"unknown"` without one) with the `event` field as
 *   data (JSON text parsed, other text kept, `{}` without one) in the
 *   `edx.course.browser` context — `course_id`/`org_id` from `courserun_key`
 *   or the page URL, `username`/`user_id` from the verified JWT cookies
 *   (`"anonymous"`/`null` without), `event_source: "browser"`, `page`, and
 *   the request fields `ip`, `host`, `agent`, `path`, `referer`,
 *   `accept_language`, `client_id`, `session`; answers 200 `success`.
 *   A POST carrying cookies needs an `X-CSRFToken` matching the `csrftoken`
 *   cookie, and an `Origin`, when sent, of the request's host or a CORS
 *   origin (else 403).
 * - `POST /segmentio/event?key=…`: a Segment `track` event from the mobile
 *   apps (401 with a wrong key, 405 for other methods, else 200), emitted with
 *   `event_source: "mobile"` and the Segment context under `context.client`.
 *
 * @example
 * ```ts
 * import { InMemoryBackend, Tracker } from "@edx/event-tracking";
 * import { createLmsEventsApp } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * const tracker = new Tracker({ backends: { sink } });
 * const app = createLmsEventsApp({}, { tracker, intake: (events) => events.forEach((e) => tracker.send(e)), logger: console });
 * const response = await app.request("/event?event_type=page_close&page=https://lms.test/courses/course-v1:edX%2BD%2B1/");
 * assert.equal(await response.text(), "success");
 * assert.equal(sink.events[0].context.course_id, "course-v1:edX+D+1");
 * ```
 *
 * @throws {SyntaxError} If `jwks` is JSON text that does not parse.
 * @throws {TypeError} If `jwks` is not a JWK set, or a limit is not a positive integer.
 */
export function createLmsEventsApp(options: LmsEventsOptions, deps: LmsAppDeps): LmsEventsApp {
  const { tracker, intake, logger, waitUntil } = deps;
  const clientIp = deps.clientIp ?? ((c: HonoContext) => c.req.header("cf-connecting-ip"));
  const verify = options.jwks === undefined
    ? undefined
    : createJwtVerifier({ jwks: options.jwks, issuer: options.issuer, audience: options.audience });
  const csrf = options.csrf ?? true;
  const origins = new Set((options.corsOrigins ?? []).map((origin) => origin.replace(/\/+$/, "")));
  const maxBodyBytes = options.maxBodyBytes ?? 65_536;
  const maxEventChars = options.maxEventChars ?? 50_000;
  for (const [name, value] of [["maxBodyBytes", maxBodyBytes], ["maxEventChars", maxEventChars]] as const) {
    if (!Number.isSafeInteger(value) || value <= 0) throw new TypeError(`'${name}' must be a positive integer`);
  }
  const limiter = options.rateLimit === undefined
    ? undefined
    : new RateLimiter(options.rateLimit.requests, options.rateLimit.windowMs ?? 60_000);
  const app = new Hono<LmsEventsEnv>();

  app.onError((error, c) => {
    if (isHttpException(error)) return httpExceptionResponse(error);
    if (error instanceof ClientGone || c.req.raw.signal.aborted) return c.body(null, 499 as never);
    logger.error(`Collector: internal error on ${c.req.method} ${new URL(c.req.url).pathname}`, error);
    return c.json({ error: "bad_request", message: "The request could not be handled" }, 400);
  });

  const corsHandler = cors({
    origin: (origin) => origins.has(origin) ? origin : null as unknown as string,
    credentials: true,
    allowMethods: ["GET", "POST", "OPTIONS"],
    allowHeaders: ALLOWED_HEADERS,
    maxAge: 600,
  });
  for (const path of ["/event", "/event/", "/segmentio/event", "/segmentio/event/"]) {
    app.use(path, corsHandler);
    if (limiter !== undefined) {
      app.use(path, (c, next) => {
        const retryAfter = limiter.take(clientIp(c) ?? "");
        if (retryAfter > 0) {
          throw httpError(429, "too_many_requests", "Too many events from this address; retry later", { retryAfter });
        }
        return next();
      });
    }
  }

  const take = async (c: HonoContext, events: TrackingEvent[]): Promise<void> => {
    try {
      await intake(events);
    } catch (error) {
      if (isHttpException(error)) throw error;
      logger.error(`Collector: could not take in an LMS event; answered 503`, error);
      throw httpError(503, "unavailable", "The collector could not store the event; retry later", { retryAfter: 1 });
    }
    if (waitUntil !== undefined) {
      waitUntil(c, tracker.flush().catch((error) => logger.error("Collector: flush failed", error)));
    }
  };

  const refuseIfClosed = () => {
    if (tracker.closed) {
      throw httpError(503, "unavailable", "The collector is shutting down; retry later", { retryAfter: 1 });
    }
  };

  const checkCsrf = (c: HonoContext) => {
    if (!csrf) return;
    const origin = c.req.header("origin");
    if (origin !== undefined && origin !== "null") {
      let host: string | undefined;
      try {
        host = new URL(origin).host;
      } catch { /* an unparsable origin is a foreign one */ }
      const own = c.req.header("host") ?? new URL(c.req.url).host;
      if (host !== own && !origins.has(origin)) throw httpError(403, "forbidden", "CSRF: the origin is not trusted");
    } else if (origin === "null") {
      throw httpError(403, "forbidden", "CSRF: the origin is not trusted");
    }
    if (!c.req.header("cookie")) return; // no ambient credentials: nothing to forge
    const cookie = getCookie(c, "csrftoken");
    if (cookie === undefined) throw httpError(403, "forbidden", "CSRF cookie not set");
    if (!csrfTokensMatch(c.req.header("x-csrftoken"), cookie)) {
      throw httpError(403, "forbidden", "CSRF token missing or incorrect");
    }
  };

  const userTrack = async (c: HonoContext, fields: { get(name: string): string | undefined | null }) => {
    const field = (name: string, max = MAX_FIELD_CHARS): string | undefined => {
      const value = fields.get(name) ?? undefined;
      if (value !== undefined && value.length > max) {
        throw httpError(413, "field_too_large", `The '${name}' field is over ${max} characters`);
      }
      return value;
    };
    const name = field("event_type") || "unknown";
    const data = eventData(field("event", maxEventChars));
    const page = field("page") ?? null;
    const courserunKey = field("courserun_key");
    let course = courseContextFromUrl(page);
    if (courserunKey) {
      const given = courseContext(courserunKey);
      if (given.course_id !== "") course = given;
    }
    let identity: LmsIdentity | undefined;
    if (verify !== undefined) {
      identity = await verify(getCookie(c, JWT_HEADER_PAYLOAD_COOKIE), getCookie(c, JWT_SIGNATURE_COOKIE));
    }
    const context = requestContext(c, clientIp);
    context.user_id = identity?.userId ?? null;
    context.session = sessionHash(options.sessionSecret, getCookie(c, "sessionid"));
    const clientId = gaClientId(c);
    if (clientId !== undefined) context.client_id = clientId;
    const browser = { ...course, username: identity?.username ?? "anonymous", event_source: "browser", page };
    refuseIfClosed();
    const event = tracker.withContext("edx.request", context).withContext("edx.course.browser", browser)
      .createEvent(name, data);
    await take(c, [event]);
    return c.text("success", 200);
  };

  for (const path of ["/event", "/event/"]) {
    app.get(path, (c) => userTrack(c, new URL(c.req.url).searchParams));
    app.post(path, async (c) => {
      checkCsrf(c);
      const fields = await formFields(c, maxBodyBytes);
      return userTrack(c, fields);
    });
    app.all(path, () => {
      throw httpError(405, "method_not_allowed", "/event takes GET or POST");
    });
  }

  for (const path of ["/segmentio/event", "/segmentio/event/"]) {
    app.post(path, async (c) => {
      const key = c.req.query("key") ?? "";
      if (!options.segmentioSecret || !constantTimeEqual(key, options.segmentioSecret)) {
        throw httpError(401, "unauthorized", "Wrong or missing key");
      }
      const text = await readBody(c.req.raw, maxBodyBytes);
      let segment: Record<string, unknown>;
      try {
        segment = JSON.parse(text);
      } catch {
        return c.text("", 200); // the LMS answers 200 whatever the body, so that Segment does not retry
      }
      if (segment === null || typeof segment !== "object" || Array.isArray(segment)) return c.text("", 200);
      if (segment.type !== undefined && segment.type !== "track") return c.text("", 200);
      const name = typeof segment.event === "string" && segment.event !== "" ? segment.event.slice(0, 255) : undefined;
      const properties = isRecord(segment.properties) ? segment.properties : {};
      if (name === undefined) return c.text("", 200);
      const given = isRecord(properties.context) ? properties.context : {};
      const client = isRecord(segment.context) ? segment.context : {};
      const context: Record<string, unknown> = {
        ...given,
        ...courseContext(typeof given.course_id === "string" ? given.course_id : undefined),
        client,
        event_source: "mobile",
        user_id: typeof segment.userId === "number" || typeof segment.userId === "string" ? segment.userId : null,
      };
      if (typeof client.ip === "string") context.ip = client.ip;
      if (typeof client.userAgent === "string") context.agent = client.userAgent;
      if (isRecord(client.app) && typeof client.app.name === "string") context.application = client.app;
      if (typeof segment.receivedAt === "string") context.received_at = segment.receivedAt;
      if (typeof segment.timestamp === "string") context.timestamp = segment.timestamp;
      refuseIfClosed();
      const event = tracker.withContext("edx.request", requestContext(c, clientIp))
        .withContext("edx.mobile", context).createEvent(name, properties.data ?? {});
      await take(c, [event]);
      return c.text("", 200);
    });
    app.all(path, () => {
      throw httpError(405, "method_not_allowed", "/segmentio/event takes POST");
    });
  }
  return app;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** The environment variables {@linkcode lmsEventsFromEnv} reads. */
export const LMS_ENV_VARIABLES = [
  "EVENT_TRACKING_LMS_EVENTS",
  "EVENT_TRACKING_JWT_JWKS",
  "EVENT_TRACKING_JWT_ISSUER",
  "EVENT_TRACKING_JWT_AUDIENCE",
  "EVENT_TRACKING_CSRF",
  "EVENT_TRACKING_CORS_ORIGINS",
  "EVENT_TRACKING_SESSION_SECRET",
  "TRACKING_SEGMENTIO_WEBHOOK_SECRET",
] as const;

/**
 * The LMS endpoints' options from environment variables (or Worker bindings):
 * served when `EVENT_TRACKING_LMS_EVENTS=on` or any of
 * `EVENT_TRACKING_JWT_JWKS`, `EVENT_TRACKING_JWT_ISSUER`,
 * `EVENT_TRACKING_JWT_AUDIENCE`, `EVENT_TRACKING_CSRF`,
 * `EVENT_TRACKING_CORS_ORIGINS` (comma list), `EVENT_TRACKING_SESSION_SECRET`,
 * `TRACKING_SEGMENTIO_WEBHOOK_SECRET` is set, and never with
 * `EVENT_TRACKING_LMS_EVENTS=off`; `undefined` when not served.
 *
 * @example
 * ```ts
 * import { lmsEventsFromEnv } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * assert.equal(lmsEventsFromEnv({}), undefined);
 * assert.deepEqual(lmsEventsFromEnv({ EVENT_TRACKING_CORS_ORIGINS: "https://apps.test, https://learn.test", EVENT_TRACKING_CSRF: "off" })?.corsOrigins, [
 *   "https://apps.test",
 *   "https://learn.test",
 * ]);
 * ```
 *
 * @throws {RangeError} If `EVENT_TRACKING_CSRF` or `EVENT_TRACKING_LMS_EVENTS` is not `on` or `off`.
 */
export function lmsEventsFromEnv(
  env: Readonly<Record<string, unknown>>,
  extra: Partial<LmsEventsOptions> = {},
): LmsEventsOptions | undefined {
  const get = (name: string): string | undefined => {
    const value = env[name];
    return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
  };
  const onOff = (name: string): boolean | undefined => {
    const value = get(name)?.toLowerCase();
    if (value === undefined) return undefined;
    if (["on", "true", "1"].includes(value)) return true;
    if (["off", "false", "0"].includes(value)) return false;
    throw new RangeError(`'${name}' must be on or off: current value is ${env[name]}`);
  };
  const enabled = onOff("EVENT_TRACKING_LMS_EVENTS");
  if (enabled === false) return undefined;
  if (enabled === undefined && !LMS_ENV_VARIABLES.some((name) => get(name) !== undefined)) return undefined;
  return {
    jwks: get("EVENT_TRACKING_JWT_JWKS"),
    issuer: get("EVENT_TRACKING_JWT_ISSUER"),
    audience: get("EVENT_TRACKING_JWT_AUDIENCE"),
    csrf: onOff("EVENT_TRACKING_CSRF") ?? true,
    corsOrigins: (get("EVENT_TRACKING_CORS_ORIGINS") ?? "").split(",").map((o) => o.trim()).filter((o) => o !== ""),
    sessionSecret: get("EVENT_TRACKING_SESSION_SECRET"),
    segmentioSecret: get("TRACKING_SEGMENTIO_WEBHOOK_SECRET"),
    ...extra,
  };
}
