/**
 * edx-platform's tracking-log shim (`track.shim`): the processors that turn
 * an event into the legacy tracking-log record that Aspects' Vector,
 * event-routing-backends and years of research exports read.
 *
 * A shimmed event is still a {@linkcode TrackingEvent} (same `id`, `name`,
 * emit `timestamp`), so it goes through queues, dead letters and replays as
 * any other: its `context` is the shim's context (the moved fields and
 * `client_id` removed), and its `data` holds the record's other top-level
 * fields, in the order the reference builds them: `username`, `session`,
 * `ip`, `agent`, `host`, `referer`, `accept_language`, `event`, `time`,
 * `event_type`, `event_source`, `page`. `LoggerBackend({ format: "openedx" })`
 * writes it as the record `{name, context, …data}`.
 *
 * @module
 */

import { EmittedEvent, restoreEvent, type TrackingEvent } from "../event.ts";
import type { ProcessorObject } from "../processor.ts";
import { pythonJsonDumps } from "../_python_json.ts";
import { type Expect, options, parseOptions, type SameType } from "../_schema.ts";
import type * as v from "valibot";

/** The context fields the shim moves to the top level of the record (default `""`). */
export const LEGACY_CONTEXT_FIELDS: readonly string[] = [
  "username",
  "session",
  "ip",
  "agent",
  "host",
  "referer",
  "accept_language",
];

/** The keys of a shimmed event's `data`, in the record's order. */
export const LEGACY_DATA_KEYS: readonly string[] = [
  ...LEGACY_CONTEXT_FIELDS,
  "event",
  "time",
  "event_type",
  "event_source",
  "page",
];

/** The shim processors take no options. */
// deno-lint-ignore ban-types
export type ShimOptions = {};

/** The schema of {@linkcode ShimOptions}: what the constructors and the `track.shim.*` ENGINEs check. */
export const shimOptions = /* @__PURE__ */ (() => options({}))();
type _SameOptions = Expect<SameType<v.InferInput<typeof shimOptions>, ShimOptions>>;

const ISO = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$/;

/** A parsed instant: milliseconds since the epoch, and the microseconds within the millisecond. */
interface Instant {
  ms: number;
  micros: number;
}

function parseInstant(text: string): Instant | undefined {
  const m = ISO.exec(text);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s = "0", fraction = "", , sign, oh, om] = m;
  const date = new Date(0);
  date.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  date.setUTCHours(Number(h), Number(mi), Number(s), 0);
  if (
    date.getUTCFullYear() !== Number(y) || date.getUTCMonth() !== Number(mo) - 1 || date.getUTCDate() !== Number(d) ||
    Number(h) > 23 || Number(mi) > 59 || Number(s) > 59 || Number(oh ?? 0) > 23 || Number(om ?? 0) > 59
  ) {
    return undefined;
  }
  const micro = Number(fraction.padEnd(6, "0").slice(0, 6));
  const offset = sign === undefined ? 0 : (sign === "-" ? -1 : 1) * (Number(oh) * 60 + Number(om)) * 60_000;
  const ms = date.getTime() - offset + Math.floor(micro / 1000);
  if (!Number.isFinite(ms)) return undefined;
  return { ms, micros: micro % 1000 };
}

function isoOf({ ms, micros }: Instant): string {
  const iso = new Date(ms).toISOString(); // "YYYY-MM-DDTHH:MM:SS.mmmZ" (years 0–9999)
  const fraction = (ms % 1000 + 1000) % 1000 * 1000 + micros;
  return iso.slice(0, 19) + (fraction === 0 ? "" : `.${String(fraction).padStart(6, "0")}`) + "+00:00";
}

/**
 * An ISO-8601 time as Python's `datetime.isoformat()` writes it in UTC:
 * microseconds, omitted when zero, and `+00:00` (a time without an offset is
 * taken as UTC, as the reference's encoder does). `undefined` if it is not
 * an ISO-8601 time.
 *
 * @example
 * ```ts
 * import { pythonIsoformat } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * assert.equal(pythonIsoformat("2024-05-01T12:00:00.123Z"), "2024-05-01T12:00:00.123000+00:00");
 * assert.equal(pythonIsoformat("2024-05-01T14:00:00+02:00"), "2024-05-01T12:00:00+00:00");
 * assert.equal(pythonIsoformat("yesterday"), undefined);
 * ```
 */
export function pythonIsoformat(time: string): string | undefined {
  // Events come in runs of one timestamp (the clock's text changes once a millisecond): the last answer, again.
  if (time === lastIsoformat.time) return lastIsoformat.text;
  const instant = parseInstant(time);
  const text = instant === undefined ? undefined : isoOf(instant);
  lastIsoformat = { time, text };
  return text;
}

let lastIsoformat: { time: string; text: string | undefined } = { time: "", text: undefined };

/**
 * An ISO-8601 time as an event's `timestamp`: UTC, milliseconds, fixed width
 * (`2024-05-01T12:00:00.123Z`; finer digits are truncated). `undefined` if it
 * is not an ISO-8601 time.
 *
 * @example
 * ```ts
 * import { eventTimestamp } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * assert.equal(eventTimestamp("2024-05-01T12:00:00.123456+00:00"), "2024-05-01T12:00:00.123Z");
 * ```
 */
export function eventTimestamp(time: string): string | undefined {
  const instant = parseInstant(time);
  if (instant === undefined) return undefined;
  const date = new Date(instant.ms);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/**
 * Whether the event is already shimmed: its `data` holds exactly the
 * record's top-level fields, in the record's order.
 *
 * @example
 * ```ts
 * import { InMemoryBackend, isLegacyEvent, LegacyFieldMappingProcessor, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * new Tracker({ backends: { sink }, processors: [new LegacyFieldMappingProcessor()] }).emit("a", { x: 1 });
 * assert.equal(isLegacyEvent(sink.events[0]), true);
 * ```
 */
export function isLegacyEvent(event: TrackingEvent): boolean {
  const data = event?.data;
  if (typeof data !== "object" || data === null || Array.isArray(data)) return false;
  const keys = Object.keys(data);
  return keys.length === LEGACY_DATA_KEYS.length && keys.every((key, i) => key === LEGACY_DATA_KEYS[i]);
}

function isDict(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `context.timestamp` as the record's `time`: an ISO-8601 text in Python's UTC form, anything else as it is. */
function legacyTime(value: unknown): unknown {
  return typeof value === "string" ? pythonIsoformat(value) ?? value : value;
}

/**
 * The shimmed form of an event: what `LegacyFieldMappingProcessor` returns
 * (a new frozen event; the one given is not changed). An event already
 * shimmed is returned as it is.
 *
 * @example
 * ```ts
 * import { legacyFields } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const shimmed = legacyFields({
 *   id: "019ac6a1-2b3c-7123-8456-789abcdef012",
 *   name: "edx.ui.click",
 *   timestamp: "2024-05-01T12:00:00.123Z",
 *   context: { user_id: 7, username: "ada", client_id: "ga", event_source: "browser" },
 *   data: { x: 1 },
 * });
 * assert.deepEqual(shimmed.context, { user_id: 7 });
 * assert.equal((shimmed.data as Record<string, unknown>).event, '{"x": 1}');
 * assert.equal((shimmed.data as Record<string, unknown>).time, "2024-05-01T12:00:00.123000+00:00");
 * ```
 *
 * @throws {TypeError} If the event's context is not an object or it holds a value JSON cannot represent.
 */
export function legacyFields(event: TrackingEvent): TrackingEvent {
  if (isLegacyEvent(event)) return event;
  const { context, record } = shim(event);
  if (!(event instanceof EmittedEvent)) {
    return restoreEvent({ id: event.id, name: event.name, timestamp: event.timestamp, context, data: record });
  }
  // Made of the tracker's deep-frozen snapshot and strings: freezing the two new objects keeps it immutable, and
  // nothing needs checking or copying again (as restoreEvent does for an event from elsewhere).
  return Object.freeze({
    id: event.id,
    name: event.name,
    timestamp: event.timestamp,
    context: Object.freeze(context),
    data: Object.freeze(record),
  });
}

/** The shim's context and top-level fields of an event not yet shimmed, as new objects. */
function shim(event: TrackingEvent): { context: Record<string, unknown>; record: Record<string, unknown> } {
  const context: Record<string, unknown> = { ...event.context };
  const record: Record<string, unknown> = {};
  const move = (field: string, fallback: unknown) => {
    if (Object.hasOwn(context, field)) {
      record[field] = context[field];
      delete context[field];
    } else {
      record[field] = fallback;
    }
  };
  for (const field of LEGACY_CONTEXT_FIELDS) move(field, "");
  delete context.client_id;
  const data = event.data === undefined ? {} : event.data;
  record.event = event.context.event_source === "browser" && isDict(data) ? pythonJsonDumps(data) : data;
  if (Object.hasOwn(context, "timestamp")) {
    record.time = legacyTime(context.timestamp);
    delete context.timestamp;
  } else {
    record.time = legacyTime(event.timestamp);
  }
  move("event_type", event.name);
  move("event_source", "server");
  move("page", null);
  return { context, record };
}

/**
 * The tracking-log record of an event, as a plain object in the key order
 * the reference writes: `name`, `context`, then the shimmed fields (the
 * event is shimmed first unless it already is). The event's id is kept as
 * `context.event_id` (unless the context has one), where Vector,
 * event-routing-backends and the LMS's own consumers ignore it, so that a
 * line can be traced to the request that was acknowledged.
 *
 * @example
 * ```ts
 * import { trackingLogRecord } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const record = trackingLogRecord({
 *   id: "019ac6a1-2b3c-7123-8456-789abcdef012",
 *   name: "problem_check",
 *   timestamp: "2024-05-01T12:00:00.000Z",
 *   context: { user_id: 7 },
 *   data: {},
 * });
 * assert.deepEqual(record.context, { user_id: 7, event_id: "019ac6a1-2b3c-7123-8456-789abcdef012" });
 * assert.equal(record.time, "2024-05-01T12:00:00+00:00");
 * ```
 */
export function trackingLogRecord(event: TrackingEvent): Record<string, unknown> {
  let context: Record<string, unknown>;
  let fields: Record<string, unknown>;
  if (isLegacyEvent(event)) {
    context = { ...event.context };
    fields = event.data as Record<string, unknown>;
  } else {
    ({ context, record: fields } = shim(event));
  }
  if (!Object.hasOwn(context, "event_id")) context.event_id = event.id;
  return { name: event.name, context, ...fields };
}

/**
 * The reference's `track.shim.LegacyFieldMappingProcessor`: moves the request
 * fields (`username`, `session`, `ip`, `agent`, `host`, `referer`,
 * `accept_language`) from the context to the top level of the record
 * (default `""`) and removes `client_id`; `data` becomes `event` (for a
 * browser event with object data, its Python JSON text); `time` is
 * `context.timestamp` (removed from the context) or the emit time, in
 * Python's UTC `isoformat()`; `event_type` (default: the name),
 * `event_source` (default `"server"`) and `page` (default `null`) move to
 * the top level too. It returns a new event and changes nothing; an event
 * already shimmed passes unchanged. See the module for the shimmed form.
 *
 * @example edx-platform's `tracking_logs` branch, as JSON
 * ```ts
 * import { createTracker, LoggerBackend } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const tracker = createTracker({
 *   backends: {
 *     tracking_logs: {
 *       ENGINE: "eventtracking.backends.routing.RoutingBackend",
 *       OPTIONS: {
 *         backends: { capture: { ENGINE: "test.Capture" } },
 *         processors: [
 *           { ENGINE: "track.shim.LegacyFieldMappingProcessor" },
 *           { ENGINE: "track.shim.PrefixedEventProcessor" },
 *         ],
 *       },
 *     },
 *   },
 * }, { engines: { "test.Capture": () => new LoggerBackend({ format: "openedx", write: (l) => lines.push(l) }) } });
 * tracker.emit("problem_check", { answer: 42 });
 * const record = JSON.parse(lines[0]);
 * assert.deepEqual(Object.keys(record).slice(0, 3), ["name", "context", "username"]);
 * assert.deepEqual(record.event, { answer: 42 });
 * assert.equal(record.event_source, "server");
 * ```
 */
export class LegacyFieldMappingProcessor implements ProcessorObject {
  /**
   * Creates the processor.
   *
   * @throws {ImproperlyConfigured} If an option is given (there are none).
   */
  constructor(options: ShimOptions = {}) {
    parseOptions(shimOptions, options, "LegacyFieldMappingProcessor");
  }

  /** Returns the shimmed event, or `undefined` (keep) for one already shimmed. */
  process(event: TrackingEvent): TrackingEvent | undefined {
    return isLegacyEvent(event) ? undefined : legacyFields(event);
  }
}

// ---- PrefixedEventProcessor: the reference's event transformers ----

type Payload = Record<string, unknown>;

/** What a transformer may change: the record's fields, the context, the name and the payload. */
interface Draft {
  name: string;
  context: Record<string, unknown>;
  record: Record<string, unknown>;
  payload: unknown;
}

interface Transformer {
  /** Whether the legacy event type and fields apply to this event. */
  legacy(draft: Draft): boolean;
  legacyEventType(draft: Draft): string;
  legacyFields?(draft: Draft): void;
  process?(draft: Draft): void;
  /** For a prefix transformer: whether it handles this name at all. */
  handles?(name: string): boolean;
}

function payloadOf(draft: Draft): Payload {
  if (!isDict(draft.payload)) {
    throw new TypeError(`event "${draft.name}": its payload must be an object, got ${JSON.stringify(draft.payload)}`);
  }
  return draft.payload;
}

function tab(payload: Payload, field: string, name: string): number {
  const value = payload[field];
  if (typeof value !== "number") {
    throw new TypeError(`event "${name}": "${field}" must be a number, got ${JSON.stringify(value) ?? "nothing"}`);
  }
  return value;
}

function linear(offset: number, legacyType: string, boundary: (p: Payload, name: string) => boolean): Transformer {
  return {
    legacy: (draft) => !boundary(payloadOf(draft), draft.name),
    legacyEventType: () => legacyType,
    legacyFields(draft) {
      const payload = payloadOf(draft);
      const current = tab(payload, "current_tab", draft.name);
      payload.old = current;
      payload.new = current + offset;
    },
  };
}

const VIDEO_EVENT_TYPES: Readonly<Record<string, string>> = {
  "edx.video.played": "play_video",
  "edx.video.paused": "pause_video",
  "edx.video.stopped": "stop_video",
  "edx.video.loaded": "load_video",
  "edx.video.position.changed": "seek_video",
  "edx.video.seeked": "seek_video",
  "edx.video.transcript.shown": "show_transcript",
  "edx.video.transcript.hidden": "hide_transcript",
  "edx.video.language_menu.shown": "video_show_cc_menu",
  "edx.video.language_menu.hidden": "video_hide_cc_menu",
};

const BLOCK_KEY = /^(?:block-v1|lib-block-v1):[^+]+(?:\+[^+]+)*\+type@[\w\-.:~%]+\+block@([\w\-.:~%]+)$/;
const DEPRECATED_KEY = /^i4x:\/\/([^/]+)\/([^/]+)\/([^/]+)\/([^@/]+)$/;

/**
 * The HTML id of a usage key, as opaque-keys' `html_id()`: the block id of a
 * `block-v1:`/`lib-block-v1:` key, `i4x-org-course-type-id` (non-word
 * characters as `_`) of a deprecated `i4x://` one; `undefined` otherwise.
 */
function usageKeyHtmlId(key: unknown): string | undefined {
  if (typeof key !== "string") return undefined;
  const block = BLOCK_KEY.exec(key);
  if (block !== null) return block[1];
  const old = DEPRECATED_KEY.exec(key);
  if (old !== null) return ["i4x", old[1], old[2], old[3], old[4]].join("-").replace(/[^\w-]/g, "_");
  return undefined;
}

function has(payload: Payload, key: string): boolean {
  return Object.hasOwn(payload, key);
}

/** Python's truthiness of a JSON value. */
function truthy(value: unknown): boolean {
  if (Array.isArray(value)) return value.length > 0;
  if (isDict(value)) return Object.keys(value).length > 0;
  return Boolean(value);
}

const video: Transformer = {
  handles: (name) => Object.hasOwn(VIDEO_EVENT_TYPES, name),
  legacy: () => true,
  legacyEventType: (draft) => VIDEO_EVENT_TYPES[draft.name],
  process(draft) {
    if (draft.name === "edx.video.seeked") draft.name = "edx.video.position.changed";
    if (!truthy(draft.payload)) return;
    if (!isDict(draft.payload)) return; // a truthy non-object payload has nothing to rename
    const payload = draft.payload;
    if (has(payload, "module_id")) {
      const id = usageKeyHtmlId(payload.module_id);
      if (id !== undefined) payload.id = id;
      delete payload.module_id;
    }
    if (has(payload, "current_time")) {
      const value = payload.current_time;
      delete payload.current_time;
      payload.currentTime = value;
    }
    if (has(payload, "seek_type")) {
      if (payload.seek_type === "slide") payload.type = "onSlideSeek";
      else if (payload.seek_type === "skip") payload.type = "onSkipSeek";
      delete payload.seek_type;
    }
    if (has(payload, "requested_skip_interval")) {
      const interval = payload.requested_skip_interval;
      if (typeof interval !== "number") {
        throw new TypeError(`event "${draft.name}": "requested_skip_interval" must be a number`);
      }
      if (Math.abs(interval) !== 30 && has(payload, "type")) payload.type = "onSlideSeek";
    }
    if (Object.hasOwn(draft.context, "open_in_browser_url")) {
      const url = draft.context.open_in_browser_url;
      if (typeof url !== "string") throw new TypeError(`event "${draft.name}": "open_in_browser_url" must be a string`);
      delete draft.context.open_in_browser_url;
      draft.record.page = url.slice(0, Math.max(0, url.lastIndexOf("/")));
    }
    // iOS build 1.0.02 reported a -30 s skip as +30.
    const app = draft.context.application;
    if (
      isDict(app) && app.version === "1.0.02" && app.name === "edx.mobileapp.iOS" &&
      payload.requested_skip_interval === 30 && payload.type === "onSkipSeek"
    ) {
      payload.requested_skip_interval = -30;
    }
  },
};

const EXACT: Readonly<Record<string, Transformer>> = {
  "edx.ui.lms.sequence.tab_selected": {
    legacy: () => true,
    legacyEventType: () => "seq_goto",
    legacyFields(draft) {
      const payload = payloadOf(draft);
      if (!has(payload, "current_tab")) throw new TypeError(`event "${draft.name}": no "current_tab"`);
      if (!has(payload, "target_tab")) throw new TypeError(`event "${draft.name}": no "target_tab"`);
      payload.old = payload.current_tab;
      payload.new = payload.target_tab;
    },
  },
  "edx.ui.lms.sequence.next_selected": linear(
    1,
    "seq_next",
    (p, name) => tab(p, "current_tab", name) === p.tab_count,
  ),
  "edx.ui.lms.sequence.previous_selected": linear(-1, "seq_prev", (p, name) => tab(p, "current_tab", name) === 1),
};

const PREFIXES: readonly [string, Transformer][] = [["edx.video.", video]];

function transformerFor(name: string): Transformer | undefined {
  if (typeof name !== "string") return undefined;
  if (Object.hasOwn(EXACT, name)) return EXACT[name];
  // The longest matching prefix wins.
  let best: [string, Transformer] | undefined;
  for (const entry of PREFIXES) {
    if (name.startsWith(entry[0]) && (best === undefined || entry[0].length > best[0].length)) best = entry;
  }
  return best?.[1];
}

/**
 * The reference's `track.shim.PrefixedEventProcessor`: for the events that
 * edx-platform's event transformers handle, restores the legacy form
 * analytics expects. It runs after `LegacyFieldMappingProcessor` (it reads
 * the shimmed record). `edx.ui.lms.sequence.tab_selected` becomes
 * `event_type` `seq_goto` with `old`/`new` (the current and target tabs);
 * `…next_selected` and `…previous_selected` within a sequence become
 * `seq_next`/`seq_prev` with `old`/`new` (current tab ±1). Mobile video
 * events (`edx.video.played` → `play_video`, `edx.video.position.changed`
 * and `edx.video.seeked` → `seek_video`, …) get their legacy `event_type`,
 * `edx.video.seeked` is renamed `edx.video.position.changed`, and the payload
 * is renamed as the reference does (`module_id` → the block's HTML `id`,
 * `current_time` → `currentTime`, `seek_type` → `type`
 * `onSlideSeek`/`onSkipSeek`, `open_in_browser_url` → `page`, the iOS 1.0.02
 * +30 s skip → -30). A JSON-text payload stays JSON text (Python's). Other
 * events pass unchanged; it returns a new event and changes nothing. An
 * event it cannot transform (a missing field) makes it throw: the error is
 * logged and counted, and the event goes on unchanged, as in the reference.
 *
 * @example
 * ```ts
 * import {
 *   InMemoryBackend,
 *   LegacyFieldMappingProcessor,
 *   PrefixedEventProcessor,
 *   Tracker,
 * } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * const tracker = new Tracker({
 *   backends: { sink },
 *   processors: [new LegacyFieldMappingProcessor(), new PrefixedEventProcessor()],
 * });
 * tracker.emit("edx.ui.lms.sequence.next_selected", { current_tab: 2, tab_count: 5 });
 * const record = sink.events[0].data as Record<string, unknown>;
 * assert.equal(record.event_type, "seq_next");
 * assert.deepEqual(record.event, { current_tab: 2, tab_count: 5, old: 2, new: 3 });
 * ```
 */
export class PrefixedEventProcessor implements ProcessorObject {
  /**
   * Creates the processor.
   *
   * @throws {ImproperlyConfigured} If an option is given (there are none).
   */
  constructor(options: ShimOptions = {}) {
    parseOptions(shimOptions, options, "PrefixedEventProcessor");
  }

  /**
   * Returns the transformed event, or `undefined` (keep) for an event no
   * transformer handles.
   *
   * @throws {TypeError} If the event is not shimmed yet, or lacks a field its transformer needs.
   * @throws {SyntaxError} If its payload is text that is not JSON.
   */
  process(event: TrackingEvent): TrackingEvent | undefined {
    const transformer = transformerFor(event?.name);
    if (transformer === undefined || transformer.handles?.(event.name) === false) return undefined;
    if (!isLegacyEvent(event)) {
      throw new TypeError(
        `PrefixedEventProcessor: event "${event.name}" is not shimmed; run LegacyFieldMappingProcessor before it`,
      );
    }
    const record: Record<string, unknown> = { ...event.data as Record<string, unknown> };
    const text = typeof record.event === "string";
    const draft: Draft = {
      name: event.name,
      context: { ...event.context },
      record,
      // A deep, unfrozen copy: the transformers edit it in place.
      payload: text ? JSON.parse(record.event as string) : structuredClone(record.event),
    };
    if (transformer.legacy(draft)) {
      record.event_type = transformer.legacyEventType(draft);
      transformer.legacyFields?.(draft);
    }
    transformer.process?.(draft);
    record.event = text ? pythonJsonDumps(draft.payload) : draft.payload;
    return restoreEvent({
      id: event.id,
      name: draft.name,
      timestamp: event.timestamp,
      context: draft.context,
      data: record,
    });
  }
}
