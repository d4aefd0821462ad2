/**
 * Sends events to Segment (or a Segment-compatible service) as `track` calls,
 * through Segment's official client, `@segment/analytics-node`.
 *
 * This is the only module that imports the Segment client: import it from
 * `@edx/event-tracking/segment`, so that users of the core never load it.
 *
 * @module
 */

import { Analytics, type TrackParams } from "@segment/analytics-node";
import * as v from "valibot";
import type { Backend, CloseOptions } from "../backend.ts";
import { type Engine, type EngineDefinition, SEGMENT_ENGINE_NAMES } from "../config.ts";
import { ImproperlyConfigured } from "../errors.ts";
import type { TrackingEvent } from "../event.ts";
import { type BackendMetrics, emptyMetrics, type MetricsSnapshot } from "../metrics.ts";
import { PendingSet, within } from "../_pending.ts";
import {
  type Expect,
  integer,
  isPlainObject,
  must,
  nonNegativeNumber,
  options,
  parseOptions,
  type SameType,
  show,
} from "../_schema.ts";

/** Options of {@linkcode SegmentBackend}. */
export interface SegmentBackendOptions {
  /** The write key of the Segment source; sent as HTTP Basic credentials. It is never shown in error messages. */
  writeKey: string;
  /** The base URL of the API: Segment's, or a Segment-compatible service's. @default "https://api.segment.io" */
  host?: string;
  /** The path of the batch endpoint below `host`. @default "/v1/batch" */
  path?: string;
  /** The most events in one batch request (the client's `flushAt`); a batch is also cut at 480 KB. @default 100 */
  flushAt?: number;
  /** How long the first event of a partial batch waits for more, in milliseconds (the client's `flushInterval`). @default 500 */
  flushIntervalMs?: number;
  /**
   * How often the client itself retries a batch after a network error, a
   * 5xx or a 429 (with exponential backoff from 1 s). By default it does not:
   * `send` rejects after one attempt and the router owns the retries
   * (`AsyncRoutingBackend`: backoff, then dead letters). Set it for a sink
   * used without an async router. @default 0
   */
  maxRetries?: number;
  /** How long one batch request may take, in milliseconds. @default 10000 */
  httpRequestTimeoutMs?: number;
  /** The most events accepted and not yet settled; beyond it `send` rejects at once. @default 100000 */
  maxQueueSize?: number;
}

const MAX_INT32 = 0x7fffffff;
const DEFAULT_HOST = "https://api.segment.io";
const DEFAULT_PATH = "/v1/batch";
/** How long a rate-limited client (429 with Retry-After) waits before failing its batch to the router, in seconds. */
const MAX_RATE_LIMIT_S = 60;
const WRITE_KEY_RULE = "the write key of a Segment source (a non-empty string)";
const HOST_RULE = 'an http(s) URL such as "https://api.segment.io"';
const PATH_RULE = 'a URL path starting with "/"';

/** The engine names of {@linkcode SegmentBackend}: its short name, then the reference's dotted path. */

/** A value described without showing it: the write key is a secret. */
function secretShape(value: unknown): string {
  if (value === undefined || value === null) return String(value);
  if (value === "") return '""';
  return typeof value === "string" ? "a string" : `a ${typeof value}`;
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}

/* @__NO_SIDE_EFFECTS__ */
function writeKey() {
  return v.custom<string>(
    (value) => typeof value === "string" && value !== "",
    (issue) => `must be ${WRITE_KEY_RULE}, got ${secretShape(issue.input)}`,
  );
}

const segmentEntries = /* @__PURE__ */ (() => ({
  writeKey: writeKey(),
  host: v.optional(v.pipe(v.string(must(HOST_RULE)), v.check(isHttpUrl, must(HOST_RULE))), DEFAULT_HOST),
  path: v.optional(v.pipe(v.string(must(PATH_RULE)), v.startsWith("/", must(PATH_RULE))), DEFAULT_PATH),
  flushAt: v.optional(integer("a positive integer", 1, MAX_INT32), 100),
  flushIntervalMs: v.optional(nonNegativeNumber(), 500),
  maxRetries: v.optional(integer("a non-negative integer", 0, 1000), 0),
  httpRequestTimeoutMs: v.optional(integer("a positive integer", 1, MAX_INT32), 10_000),
  maxQueueSize: v.optional(integer("a positive integer", 1, MAX_INT32), 100_000),
}))();

/** The schema of {@linkcode SegmentBackendOptions}: what the constructor and the `segment` ENGINE check. */
const segmentOptions = /* @__PURE__ */ (() => options(segmentEntries))();
type _SameOptions = Expect<SameType<v.InferInput<typeof segmentOptions>, SegmentBackendOptions>>;

/** Python's truth value of a JSON value, as the reference's `if path and not page` tests it. */
function truthy(value: unknown): boolean {
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === "object" && value !== null) return Object.keys(value).length > 0;
  return Boolean(value);
}

/**
 * The reference's mapping of the tracking context to Segment's context:
 * `client_id` → `Google Analytics.clientId`, `ip`, `agent` → `userAgent`, and
 * a `page` block (`path`, `referer` → `referrer`, `page` → `url`, with
 * `https://<host><path>` made up when there is a path and a host but no page).
 */
function segmentContext(context: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const clientId = context.client_id;
  if (clientId != null) out["Google Analytics"] = { clientId };
  if (context.ip != null) out.ip = context.ip;
  if (context.agent != null) out.userAgent = context.agent;
  const path = context.path;
  const referer = context.referer;
  let page = context.page;
  if (truthy(path) && !truthy(page)) {
    const host = context.host;
    // Python's urlunsplit(("https", host, path, "", "")): a path without its leading slash gets one.
    if (truthy(host)) page = `https://${host}${String(path).startsWith("/") ? "" : "/"}${path}`;
  }
  if (path != null || referer != null || page != null) {
    const block: Record<string, unknown> = {};
    if (path != null) block.path = path;
    if (referer != null) block.referrer = referer;
    if (page != null) block.url = page;
    out.page = block;
  }
  return out;
}

/** What `send` does with an event: skip it (no name or user), refuse it, or track it. */
function trackOf(event: TrackingEvent): TrackParams | Error | undefined {
  const name = event?.name;
  const context = isPlainObject(event?.context) ? event.context : {};
  const userId = context.user_id;
  if (typeof name !== "string" || name === "" || userId == null) return undefined;
  let id: string;
  if (typeof userId === "string" && userId !== "") id = userId;
  else if (typeof userId === "number" && Number.isFinite(userId)) id = String(userId);
  else {
    return new TypeError(
      `Cannot send event ${show(name)} to Segment: context.user_id must be a non-empty string or a number, got ${
        userId === "" ? '""' : `a ${typeof userId}`
      }`,
    );
  }
  return {
    userId: id,
    event: name,
    // The reference sends the entire event as the properties.
    properties: event as unknown as Record<string, unknown>,
    context: segmentContext(context),
    // The event's own time and id: a redelivered event is the same Segment message, which Segment deduplicates.
    ...(typeof event.timestamp === "string" && event.timestamp !== "" ? { timestamp: event.timestamp } : {}),
    ...(typeof event.id === "string" && event.id !== "" ? { messageId: event.id } : {}),
  };
}

function noop(): void {}

/** One Segment client and the sends it holds; a flush closes it and later sends go to a new one. */
interface Generation {
  readonly client: Analytics;
  readonly sends: PendingSet;
  /** Set once it is closing: resolves when its sends have all settled. */
  done?: Promise<void>;
}

/**
 * Sends each event that has a name and a `context.user_id` to Segment as a
 * `track` call, as the reference's `SegmentBackend` does: the user is
 * `context.user_id` (a number becomes its text), the event is the event's
 * name, the properties are the entire event, and the Segment context maps
 * `client_id` to `{"Google Analytics": {"clientId"}}`, `ip` to `ip`, `agent`
 * to `userAgent`, and `path`, `referer`, `page` to a `page` block (`path`,
 * `referrer`, `url`, with `url = https://<host><path>` made up when there is
 * a path and a host but no page). The message's `timestamp` is the event's
 * and its `messageId` the event's id, so a redelivered event is deduplicated
 * by Segment. Other events are skipped, as the reference skips them, and
 * counted `dropped`.
 *
 * `send` settles per event: it resolves once Segment has accepted the batch
 * holding the event, and rejects once it cannot be delivered (a refused
 * request, a network error, a timeout), so that the router counts it, and an
 * async router retries and dead-letters it. Batches are sent when `flushAt`
 * events are waiting or `flushIntervalMs` after the first. Like the other
 * sinks it fails fast by default (no retries of its own: `maxRetries` 0).
 * `flush()` sends what is waiting and resolves once every event accepted so
 * far has settled; `close()` does the same (the client's `closeAndFlush`),
 * within `deadlineMs` when given, and later sends reject.
 *
 * @example Create and close without sending
 * ```ts
 * import { SegmentBackend } from "@edx/event-tracking/segment";
 * import assert from "node:assert/strict";
 *
 * const segment = new SegmentBackend({ writeKey: "my-write-key", flushAt: 50 });
 * assert.equal(segment.url, "https://api.segment.io/v1/batch");
 * await segment.close(); // nothing was sent, so nothing connected
 * ```
 *
 * @example Events without a user are skipped, as the reference skips them
 * ```ts
 * import { Tracker } from "@edx/event-tracking";
 * import { SegmentBackend } from "@edx/event-tracking/segment";
 * import assert from "node:assert/strict";
 *
 * const segment = new SegmentBackend({ writeKey: "my-write-key" });
 * const tracker = new Tracker({ backends: { segment } });
 * tracker.emit("edx.ui.click"); // no context.user_id: not sent
 * assert.equal(tracker.metrics()["root/segment"].dropped, 1);
 * await tracker.close();
 * ```
 */
export class SegmentBackend implements Backend {
  /** Where batches are posted. */
  readonly url: string;
  readonly #settings: v.InferOutput<typeof segmentOptions>;
  readonly #counters: BackendMetrics = emptyMetrics();
  /** The generations closing (flushed), until their sends have settled. */
  readonly #closing = new Set<Generation>();
  #current: Generation | undefined;
  #inFlight = 0;
  #closed: Promise<void> | undefined;

  /**
   * Creates the backend; it does no I/O, and makes the Segment client only
   * when the first event is sent.
   *
   * @throws {ImproperlyConfigured} If `writeKey` is missing or empty, or another option is unknown or invalid; the
   * message names the option (`SegmentBackend.writeKey: …`) and never shows the write key.
   */
  constructor(options: SegmentBackendOptions) {
    this.#settings = parseOptions(segmentOptions, options, "SegmentBackend");
    this.url = new URL(this.#settings.path, this.#settings.host).href.replace(/\/$/, "");
  }

  /**
   * Hands the event to the Segment client, or skips it (no name or no
   * `context.user_id`: counted `dropped`, nothing returned).
   *
   * @returns A promise that resolves once Segment accepted the event's batch
   *   and rejects if it cannot be delivered; it never goes unhandled.
   */
  send(event: TrackingEvent): void | Promise<void> {
    this.#counters.received++;
    if (this.#closed !== undefined) {
      return this.#refuse(new Error(`Cannot send event ${show(event?.name)} to SegmentBackend as it is closed`));
    }
    const track = trackOf(event);
    if (track === undefined) {
      this.#counters.dropped++;
      return;
    }
    if (track instanceof Error) return this.#refuse(track);
    if (this.#inFlight >= this.#settings.maxQueueSize) {
      return this.#refuse(
        new RangeError(
          `Cannot send event ${
            show(track.event)
          } to SegmentBackend as its queue is full: capacity is ${this.#settings.maxQueueSize} events`,
        ),
      );
    }
    const generation = this.#current ??= this.#newGeneration();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    let settled = false;
    const settle = (error: unknown) => {
      if (settled) return;
      settled = true;
      this.#inFlight--;
      if (error == null) {
        this.#counters.delivered++;
        resolve();
      } else {
        this.#counters.failed++;
        const reason = error instanceof Error ? error.message : String(error);
        reject(new Error(`Segment did not accept event ${show(track.event)}: ${reason}`, { cause: error }));
      }
    };
    this.#inFlight++;
    try {
      generation.client.track(track, settle);
    } catch (error) {
      settle(error ?? new Error("the Segment client refused the event"));
    }
    promise.catch(noop);
    generation.sends.add(promise);
    return promise;
  }

  /**
   * Sends what is waiting now, and resolves once every event sent so far has
   * been delivered or has failed (its `send` settled). Events sent meanwhile
   * go to a new batch.
   */
  async flush(): Promise<void> {
    this.#retire();
    await Promise.all([...this.#closing].map((generation) => generation.done));
  }

  /**
   * Flushes through the client's `closeAndFlush`, then refuses later sends.
   *
   * With `deadlineMs`, it resolves within about that time: the client then
   * stops sending and fails what is left (their `send` promises reject), and
   * the router that set the deadline dead-letters those events. Without it,
   * the client's own limit applies (75 s, or 1.25 × `flushIntervalMs` if
   * longer). A second call returns the first call's promise.
   */
  close(options?: CloseOptions): Promise<void> {
    return this.#closed ??= (async () => {
      const deadlineMs = options?.deadlineMs;
      const bounded = typeof deadlineMs === "number" && deadlineMs < Infinity;
      this.#retire(bounded ? deadlineMs : undefined);
      const all = Promise.all([...this.#closing].map((generation) => generation.done));
      if (bounded) await within(all, deadlineMs);
      else await all;
    })();
  }

  /** How full the queue is: events accepted and not yet settled, over `maxQueueSize`. */
  saturation(): number {
    return Math.min(1, this.#inFlight / this.#settings.maxQueueSize);
  }

  /**
   * Adds this backend's counters under `path`: `dropped` counts events
   * without a name or a `context.user_id`, `retried` the events of batches
   * the client sent again, `queueDepth` events accepted and not yet settled.
   */
  collectMetrics(path: string, into: MetricsSnapshot): void {
    into[path] = { ...this.#counters, queueDepth: this.#inFlight };
  }

  #refuse(error: Error): Promise<void> {
    this.#counters.failed++;
    const result = Promise.reject(error);
    result.catch(noop);
    return result;
  }

  #newGeneration(): Generation {
    const s = this.#settings;
    const client = new Analytics({
      writeKey: s.writeKey,
      host: s.host,
      path: s.path,
      flushAt: s.flushAt,
      flushInterval: s.flushIntervalMs,
      maxRetries: s.maxRetries,
      httpRequestTimeout: s.httpRequestTimeoutMs,
      maxRateLimitDuration: MAX_RATE_LIMIT_S,
    });
    client.on("http_request", ({ headers, body }) => {
      if (headers["X-Retry-Count"] === undefined) return;
      try {
        this.#counters.retried += (JSON.parse(body) as { batch: unknown[] }).batch.length;
      } catch {
        // Not a batch: nothing to count.
      }
    });
    return { client, sends: new PendingSet() };
  }

  /** Closes the current client (later sends make a new one); `timeoutMs` bounds its `closeAndFlush`. */
  #retire(timeoutMs?: number): void {
    const generation = this.#current;
    if (generation === undefined) return;
    this.#current = undefined;
    // The client treats a timeout of 0 as none.
    const closing = generation.client.closeAndFlush(
      timeoutMs === undefined ? undefined : { timeout: Math.max(1, timeoutMs) },
    );
    generation.done = closing.then(() => generation.sends.settled()).finally(() => {
      this.#closing.delete(generation);
    });
    this.#closing.add(generation);
  }
}

/**
 * The `segment` ENGINE, under its short name and the reference's
 * (`eventtracking.backends.segment.SegmentBackend`), for
 * `createTracker(config, { engines })`: the core leaves it out so that it
 * never loads the Segment client. Its OPTIONS are those of
 * {@linkcode SegmentBackend} in snake_case (`write_key`, `host`, `path`,
 * `flush_at`, `flush_interval_ms`, `max_retries`, `http_request_timeout_ms`,
 * `max_queue_size`). `defaultWriteKey` is used by the specs that give no
 * `write_key` — the reference's spec has no options, its key being a Django
 * setting — so the LMS's `segmentio` branch loads unchanged, and the key can
 * come from the environment rather than the JSON.
 *
 * @throws {ImproperlyConfigured} If `defaultWriteKey` is given but is not a non-empty string.
 *
 * @example Load the LMS's `segmentio` branch
 * ```ts
 * import { createTracker } from "@edx/event-tracking";
 * import { segmentEngines } from "@edx/event-tracking/segment";
 *
 * const tracker = createTracker(
 *   {
 *     backends: {
 *       segmentio: {
 *         ENGINE: "eventtracking.backends.routing.RoutingBackend",
 *         OPTIONS: {
 *           backends: { segment: { ENGINE: "eventtracking.backends.segment.SegmentBackend" } },
 *           processors: [{
 *             ENGINE: "eventtracking.processors.whitelist.NameWhitelistProcessor",
 *             OPTIONS: { whitelist: ["edx.course.enrollment.activated"] },
 *           }],
 *         },
 *       },
 *     },
 *   },
 *   { engines: segmentEngines("my-write-key") }, // e.g. Deno.env.get("SEGMENT_WRITE_KEY")
 * );
 * await tracker.close(); // nothing was sent, so nothing connected
 * ```
 */
export function segmentEngines(defaultWriteKey?: string): Readonly<Record<string, Engine>> {
  if (defaultWriteKey !== undefined && (typeof defaultWriteKey !== "string" || defaultWriteKey === "")) {
    throw new ImproperlyConfigured(
      `must be ${WRITE_KEY_RULE}, got ${secretShape(defaultWriteKey)}`,
      "segmentEngines(defaultWriteKey)",
    );
  }
  const schema = options({
    ...segmentEntries,
    writeKey: defaultWriteKey === undefined ? writeKey() : v.optional(writeKey(), defaultWriteKey),
  });
  const engine: EngineDefinition<v.InferOutput<typeof schema>> = {
    schema,
    create: (options) => new SegmentBackend(options),
  };
  return Object.fromEntries(SEGMENT_ENGINE_NAMES.map((name) => [name, engine]));
}
