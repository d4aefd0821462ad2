/**
 * The collector's HTTP API, one Hono app shared by the Cloudflare Worker and
 * the Deno server.
 *
 * @module
 */

import { Hono, type MiddlewareHandler } from "hono";
import type { HonoApp, HonoContext } from "./_hono.ts";
import { consoleLogger, type DiagnosticLogger } from "../diagnostics.ts";
import type { TrackingEvent } from "../event.ts";
import { type MetricsSnapshot, toPrometheus } from "../metrics.ts";
import type { EventEmitter, Tracker } from "../tracker.ts";
import { clientBearerAuth, type Tokens } from "./auth.ts";
import { BUS_PROTOCOL, busTickets, offeredTicket, TICKET_LIFETIME_S } from "./bus_ticket.ts";
import type { DeadLetterStore } from "./dead_letters.ts";
import { httpError, httpExceptionResponse, isHttpException } from "./errors.ts";
import { createConsoleApp } from "./console/app.ts";
import { createLmsEventsApp, type LmsEventsOptions } from "./lms_events.ts";
import { requestContext, requestEmitter, type TrackingVariables } from "./tracking_context.ts";
import { ClientGone, type CollectorLimits, resolveLimits, validEvents } from "./validate.ts";

const REQUEST_SCOPE = "edx.request";
const JSON_HEADERS = { "content-type": "application/json" };
const MAX_NEWEST_DEAD_LETTERS = 50;

/** Options of {@linkcode createCollectorApp}. */
export interface CollectorOptions {
  /** Accepted events are emitted through this tracker. */
  tracker: Tracker;
  /** The bearer token, or client name → token. Without one every authenticated route answers 401. */
  token?: Tokens;
  /**
   * Handles `GET /v1/bus/subscribe` (a WebSocket upgrade) once the client is
   * authenticated. An `HTTPException` it throws answers as itself, or as the
   * JSON `{ error, message }` when it has no response of its own.
   */
  busSubscribe?: (c: HonoContext) => Response | Promise<Response>;
  /** Keeps work alive after the response (a Worker passes `c.executionCtx.waitUntil`). */
  waitUntil?: (c: HonoContext, work: Promise<unknown>) => void;
  /**
   * Takes the accepted events of one request into the tree; the 202 is sent
   * only once it resolves, so it decides what a 202 guarantees. A rejection
   * answers 503 with `Retry-After` (an `HTTPException` answers as itself).
   * The Deno server passes its write-ahead log; the Worker waits for the
   * Queue send. @default sends each event through the tracker, without waiting for delivery
   */
  intake?: (events: readonly TrackingEvent[]) => void | Promise<void>;
  /** Request limits. */
  limits?: CollectorLimits;
  /** The client's IP address. @default the `CF-Connecting-IP` header */
  clientIp?: (c: HonoContext) => string | undefined;
  /**
   * Above this {@linkcode Tracker.saturation} new events are refused with 503
   * and `Retry-After`, so clients back off before queues overflow. @default 0.9
   */
  shedAt?: number;
  /** Where internal errors are reported. @default consoleLogger */
  logger?: DiagnosticLogger;
  /**
   * Serves the Open edX LMS's browser-event endpoints too: `GET|POST /event`
   * and `POST /segmentio/event` (see {@linkcode createLmsEventsApp}).
   * @default not served
   */
  lmsEvents?: LmsEventsOptions;
  /**
   * The async branches' dead letters, served by `GET /v1/dead-letters` and
   * `POST /v1/dead-letters/<backendName>/replay`. @default not served (404)
   */
  deadLetters?: DeadLetterStore;
  /**
   * The counters `GET /v1/metrics` serves (the Worker's come from a Durable Object: they may be a promise).
   * @default tracker.metrics()
   */
  metrics?: () => MetricsSnapshot | Promise<MetricsSnapshot>;
  /** Serves the operator console at `GET /console` (a page with no data: it reads the API with the token). @default true */
  console?: boolean;
}

/** The collector app: a Hono app, served with `app.fetch(request, env?, executionContext?)`. */
export type CollectorApp = HonoApp<CollectorEnv>;

/** The Hono environment of the collector app. */
export type CollectorEnv = { Variables: TrackingVariables & { client: string } };

/**
 * Creates the collector app:
 *
 * - `POST /v1/events` — one event `{ name, data?, context? }` or `{ events: [...] }`;
 *   answers `202 { accepted, ids }`, or `400` naming each bad event by index and
 *   field (then nothing is accepted), `413` for a body over the limit, `401`
 *   with `WWW-Authenticate: Bearer` without the right bearer token, `503` with
 *   `Retry-After` while the tracker's queues are nearly full or it is shutting
 *   down — before the body is read.
 * - `GET /v1/health` — no credentials needed.
 * - `GET /v1/metrics` — Prometheus text of `tracker.metrics()`, plus
 *   `event_tracking_client_disconnects_total`: requests whose client went
 *   away mid-request (counted, not logged as errors). With `Accept:
 *   application/json`, or as `GET /v1/metrics.json`: `{ at, backends, clientDisconnects }`.
 * - `GET /v1/bus/subscribe?pattern=…` — a WebSocket of bus events whose names match. Authenticated by
 *   the bearer token, or by a ticket from `POST /v1/bus/tickets` (`{ ticket, protocol, expiresIn }`)
 *   offered as the subprotocol `ticket.<ticket>` beside `event-tracking`, as a browser must.
 * - `GET /v1/dead-letters?newest=5` — with `deadLetters`: `{ branches }`, each async branch's dead-letter
 *   count and newest few; `POST /v1/dead-letters/<backendName>/replay` feeds them back and answers
 *   `{ backendName, replayed, delivered, deadLettered, failed, pending }`.
 * - `GET /console` — the operator console (metrics, throughput, a live tail, dead letters); no credentials
 *   needed for the page itself, which asks for the token.
 * - `GET /v1/event-types` — the tracker's event catalog as JSON, `{ eventTypes, untracked }`: every
 *   documented and observed name with its description, version, schema, `seen`/`invalid` counts
 *   and, for undocumented names, its `inferred` schema (an empty list without a catalog).
 * - With `lmsEvents`: the LMS's `GET|POST /event` and `POST /segmentio/event`
 *   (no bearer token: browsers and Segment call them; see {@linkcode createLmsEventsApp}).
 *
 * Unknown routes answer `404` JSON; an internal error answers a plain `500`
 * that never carries the error's text.
 *
 * @example
 * ```ts
 * import { InMemoryBackend, Tracker } from "@edx/event-tracking";
 * import { createCollectorApp } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * const app = createCollectorApp({ tracker: new Tracker({ backends: { sink } }), token: "secret" });
 * const response = await app.request("/v1/events", {
 *   method: "POST",
 *   headers: { authorization: "Bearer secret" },
 *   body: JSON.stringify({ name: "edx.ui.click", data: { x: 1 } }),
 * });
 * assert.equal(response.status, 202);
 * assert.equal(sink.events[0].name, "edx.ui.click");
 * ```
 *
 * @throws {TypeError} If a token is empty or not an RFC 6750 bearer token.
 * @throws {RangeError} If a limit is not a positive integer.
 */
export function createCollectorApp(options: CollectorOptions): CollectorApp {
  const { tracker, busSubscribe, waitUntil, clientIp } = options;
  const intake = options.intake ?? ((events: readonly TrackingEvent[]) => {
    for (const event of events) tracker.send(event);
  });
  const shedAt = options.shedAt ?? 0.9;
  const logger = options.logger ?? consoleLogger;
  const limits = resolveLimits(options.limits);
  const authenticate = clientBearerAuth<CollectorEnv>(options.token);
  const app = new Hono<CollectorEnv>();
  let clientsGone = 0;

  app.onError((error, c) => {
    if (isHttpException(error)) return httpExceptionResponse(error);
    // The client went away mid-request: nobody reads the answer, and nothing went wrong here.
    if (error instanceof ClientGone || c.req.raw.signal.aborted) {
      clientsGone++;
      return c.body(null, 499 as never);
    }
    logger.error(`Collector: internal error on ${c.req.method} ${new URL(c.req.url).pathname}`, error);
    return c.json({ error: "internal", message: "Internal server error" }, 500);
  });
  app.notFound((c) =>
    c.json({ error: "not_found", message: `No route for ${c.req.method} ${new URL(c.req.url).pathname}` }, 404)
  );

  app.get("/v1/health", (c) => c.json({ status: "ok" }));
  if (options.console !== false) app.route("/", createConsoleApp());

  if (options.lmsEvents !== undefined) {
    app.route("/", createLmsEventsApp(options.lmsEvents, { tracker, intake, clientIp, logger, waitUntil }));
  }

  for (
    const path of [
      "/v1/events",
      "/v1/metrics",
      "/v1/metrics.json",
      "/v1/event-types",
      "/v1/bus/tickets",
      "/v1/dead-letters",
      "/v1/dead-letters/*",
    ]
  ) {
    app.use(path, authenticate);
  }
  // A browser's WebSocket carries no Authorization header: it offers a ticket as a subprotocol instead.
  const tickets = busTickets(options.token);
  app.use("/v1/bus/subscribe", async function ticketOrBearer(c, next) {
    const ticket = offeredTicket(c.req.header("sec-websocket-protocol"));
    if (ticket === undefined) return authenticate(c, next);
    const client = await tickets.verify(ticket);
    if (client === undefined) {
      throw httpError(401, "unauthorized", "Invalid or expired bus ticket: ask POST /v1/bus/tickets for a new one");
    }
    c.set("client", client);
    await next();
  });

  // The tracker's catalog: every documented and observed name, with its counts and (undocumented) inferred schema.
  app.get("/v1/event-types", (c) => {
    const catalog = tracker.catalog;
    return c.json({ eventTypes: catalog?.eventTypes() ?? [], untracked: catalog?.untracked ?? 0 });
  });

  // Refuses new events while the tracker is closed or close to losing events.
  const refuseIfBusy = () => {
    if (tracker.closed) {
      throw httpError(503, "unavailable", "The collector is shutting down; retry later", { retryAfter: 1 });
    }
    if (tracker.saturation() >= shedAt) {
      throw httpError(503, "overloaded", "The collector's queues are nearly full; retry later", { retryAfter: 1 });
    }
  };
  // Before the body is read: a collector that sheds load spends nothing on it.
  const shedLoad: MiddlewareHandler<CollectorEnv> = function shedLoad(_c, next) {
    refuseIfBusy();
    return next();
  };
  const unavailable = (accepted: readonly TrackingEvent[], error: unknown): never => {
    if (isHttpException(error)) throw error;
    logger.error(`Collector: could not take in ${accepted.length} event(s); answered 503`, error);
    throw httpError(503, "unavailable", "The collector could not store the events; retry later", {
      retryAfter: 1,
      cause: error,
    });
  };
  // The 202: `{"accepted":n,"ids":[...]}`, built as text (ids are UUIDs: nothing to escape).
  const answer = (c: HonoContext, accepted: readonly TrackingEvent[]): Response => {
    if (waitUntil !== undefined) {
      waitUntil(
        c,
        tracker.flush().catch((error) => logger.error("Collector: flush failed", error)),
      );
    }
    let ids = "";
    for (let i = 0; i < accepted.length; i++) ids += (i === 0 ? '"' : ',"') + accepted[i].id + '"';
    return new Response(`{"accepted":${accepted.length},"ids":[${ids}]}`, { status: 202, headers: JSON_HEADERS });
  };

  app.post(
    "/v1/events",
    shedLoad,
    validEvents<CollectorEnv>(limits),
    function acceptEvents(c) {
      const events = c.req.valid("json");
      // Again once the body is in: reading it took time, and the queues may have filled meanwhile.
      refuseIfBusy();
      // The request scope, entered once for every event of the request: a view of the tracker rather than
      // an async-local scope around the rest of the request, since nothing else is emitted while handling it.
      const scope = requestContext(c, clientIp);
      scope.client = c.get("client");
      c.set("trackingContext", scope);
      let request: EventEmitter | undefined;
      const accepted = events.map((event) =>
        event.context === undefined
          ? (request ??= tracker.withContext(REQUEST_SCOPE, scope)).createEvent(event.name, event.data)
          : requestEmitter(tracker, scope, event.context, REQUEST_SCOPE).createEvent(event.name, event.data)
      );
      let taken: void | Promise<void>;
      try {
        taken = intake(accepted);
      } catch (error) {
        return unavailable(accepted, error);
      }
      if (taken === undefined) return answer(c, accepted);
      return taken.then(() => answer(c, accepted), (error) => unavailable(accepted, error));
    },
  );

  const metrics = options.metrics ?? (() => tracker.metrics());
  const metricsJson = async (c: HonoContext) =>
    c.json({ at: new Date().toISOString(), backends: await metrics(), clientDisconnects: clientsGone });
  app.get("/v1/metrics.json", metricsJson);
  app.get("/v1/metrics", async (c) => {
    if (c.req.header("accept")?.includes("application/json")) return metricsJson(c);
    return c.text(
      toPrometheus(await metrics()) +
        "# HELP event_tracking_client_disconnects_total Requests whose client went away before the answer\n" +
        "# TYPE event_tracking_client_disconnects_total counter\n" +
        `event_tracking_client_disconnects_total ${clientsGone}\n`,
      200,
      { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    );
  });

  const deadLetters = () => {
    if (options.deadLetters === undefined) {
      throw httpError(404, "dead_letters_unavailable", "This collector keeps no dead letters it can list");
    }
    return options.deadLetters;
  };
  app.get("/v1/dead-letters", async (c) => {
    const newest = c.req.query("newest") ?? "5";
    if (!/^\d{1,2}$/.test(newest) || Number(newest) > MAX_NEWEST_DEAD_LETTERS) {
      throw httpError(
        400,
        "invalid_query",
        `'newest' must be an integer from 0 to ${MAX_NEWEST_DEAD_LETTERS}: current value is ${JSON.stringify(newest)}`,
      );
    }
    return c.json({ branches: await deadLetters().list(Number(newest)) });
  });
  app.post(
    "/v1/dead-letters/:backendName/replay",
    async (c) => c.json(await deadLetters().replay(c.req.param("backendName"))),
  );

  const requireBus = () => {
    if (busSubscribe === undefined) throw httpError(404, "bus_unavailable", "This collector has no event bus");
    return busSubscribe;
  };
  app.post("/v1/bus/tickets", async (c) => {
    requireBus();
    return c.json({
      ticket: await tickets.issue(c.get("client")),
      protocol: BUS_PROTOCOL,
      expiresIn: TICKET_LIFETIME_S,
    });
  });

  app.get("/v1/bus/subscribe", (c) => requireBus()(c));

  return app;
}
