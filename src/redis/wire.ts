/**
 * The Open edX event bus wire format of tracking events, as
 * `edx-event-bus-redis` writes it to a Redis stream: the header fields, then
 * `event_data`, the bare Avro binary of the `TrackingLogData` record of the
 * `org.openedx.analytics.tracking.event.emitted.v1` signal. Pure functions,
 * no network.
 *
 * @module
 */

import avro from "avsc";
import { restoreEvent, type TrackingEvent } from "../event.ts";

/** The event type of tracking events on the Open edX event bus (the `type` field). */
export const TRACKING_EVENT_TYPE = "org.openedx.analytics.tracking.event.emitted.v1";

/** The topic tracking events use on the Open edX event bus. */
export const ANALYTICS_TOPIC = "analytics";

/**
 * The openedx-events version whose `TrackingLogData` schema the payload
 * follows: the default `sourcelib` field.
 */
export const OPENEDX_EVENTS_VERSION = "11.2.0";

/** The default `EVENT_BUS_REDIS_STREAM_MAX_LEN` of edx-event-bus-redis. */
export const DEFAULT_STREAM_MAX_LEN = 10_000;

/**
 * The Avro schema openedx-events generates for the signal: a `CloudEvent`
 * record (namespace = the event type) with one field, `tracking_log`, a
 * `TrackingLogData` record of four strings in this order.
 */
export const TRACKING_LOG_SCHEMA: {
  readonly name: string;
  readonly type: "record";
  readonly namespace: string;
  readonly fields: readonly unknown[];
} = Object.freeze({
  name: "CloudEvent",
  type: "record",
  namespace: TRACKING_EVENT_TYPE,
  fields: Object.freeze([
    Object.freeze({
      name: "tracking_log",
      type: Object.freeze({
        name: "TrackingLogData",
        type: "record",
        fields: Object.freeze(
          ["name", "timestamp", "data", "context"].map((name) => Object.freeze({ name, type: "string" })),
        ),
      }),
    }),
  ]),
});

/** The `TrackingLogData` of openedx-events: what `event_data` carries. */
export interface TrackingLogData {
  /** The event name. */
  readonly name: string;
  /** The event's time, as Python's `datetime.isoformat()` in UTC: `2024-05-01T12:00:00.123000+00:00`. */
  readonly timestamp: string;
  /** The event's data as JSON text (Python's `json.dumps`). */
  readonly data: string;
  /** The event's context as JSON text (Python's `json.dumps`). */
  readonly context: string;
}

/** The header fields of one entry, in the order they are written. */
export interface EventBusHeaders {
  /** The event type: {@linkcode TRACKING_EVENT_TYPE}. */
  readonly type: string;
  /** The message id, a UUID (this library writes the event's own id). */
  readonly id: string;
  /** `openedx/<service>/web`. */
  readonly source: string;
  /** When the message was produced, as Python's UTC `isoformat()`. */
  readonly time: string;
  /** The schema's minor version: `"0"`. */
  readonly minorversion: string;
  /** The producing host's name. */
  readonly sourcehost: string;
  /** The dotted version of the library that produced the message. */
  readonly sourcelib: string;
}

/** The header field names, in the order edx-event-bus-redis writes them; `event_data` follows. */
export const HEADER_FIELDS: readonly (keyof EventBusHeaders)[] = Object.freeze([
  "type",
  "id",
  "source",
  "time",
  "minorversion",
  "sourcehost",
  "sourcelib",
]);

interface AvroType {
  toBuffer(value: unknown): Uint8Array;
  fromBuffer(buffer: Uint8Array): unknown;
}

let avroType: AvroType | undefined;
function trackingLogType(): AvroType {
  return avroType ??= (avro as unknown as { Type: { forSchema(schema: unknown): AvroType } }).Type.forSchema(
    TRACKING_LOG_SCHEMA,
  );
}

/**
 * Encodes a `TrackingLogData` as openedx-events does: bare Avro binary of the
 * `CloudEvent` record, no container header and no schema-registry prefix.
 *
 * @example The golden bytes of openedx-events
 * ```ts
 * import { encodeTrackingLog } from "@edx/event-tracking/redis";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeTrackingLog({
 *   name: "problem_check",
 *   timestamp: "2024-05-01T12:00:00.123456+00:00",
 *   data: "{}",
 *   context: "{}",
 * });
 * assert.equal(bytes.length, 53);
 * assert.equal(bytes[0], 0x1a); // 13, zigzag-encoded: the length of "problem_check"
 * ```
 *
 * @throws {Error} If a field is not a string.
 */
export function encodeTrackingLog(log: TrackingLogData): Uint8Array {
  const { name, timestamp, data, context } = log;
  return trackingLogType().toBuffer({ tracking_log: { name, timestamp, data, context } });
}

/**
 * Decodes the `event_data` of an entry: the inverse of
 * {@linkcode encodeTrackingLog}.
 *
 * @example
 * ```ts
 * import { decodeTrackingLog, encodeTrackingLog } from "@edx/event-tracking/redis";
 * import assert from "node:assert/strict";
 *
 * const log = { name: "a", timestamp: "2024-05-01T12:00:00+00:00", data: "{}", context: "{}" };
 * assert.deepEqual(decodeTrackingLog(encodeTrackingLog(log)), log);
 * ```
 *
 * @throws {Error} If the bytes are not exactly one such record (truncated, or with bytes left over).
 */
export function decodeTrackingLog(bytes: Uint8Array): TrackingLogData {
  const record = trackingLogType().fromBuffer(bytes) as { tracking_log: TrackingLogData };
  const { name, timestamp, data, context } = record.tracking_log;
  return { name, timestamp, data, context };
}

/** The stream of a topic: `<prefix>-<topic>`, or the bare topic without a prefix (edx-event-bus-redis's `get_full_topic`). */
export function streamName(topic: string, prefix?: string): string {
  return prefix ? `${prefix}-${topic}` : topic;
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

/** An instant with microseconds: milliseconds since the epoch, and the microseconds beyond them (0–999). */
interface Instant {
  readonly ms: number;
  readonly micros: number;
}

function parseInstant(text: string): Instant {
  const m = ISO.exec(text);
  if (m === null) throw new RangeError(`not an ISO 8601 date and time: ${JSON.stringify(text)}`);
  const [, y, mo, d, h, mi, s = "0", fraction = "", zone = "Z"] = m;
  const digits = (fraction + "000000").slice(0, 6);
  let offsetMin = 0;
  if (zone !== "Z" && zone !== "z") {
    const sign = zone[0] === "-" ? -1 : 1;
    const rest = zone.slice(1).replace(":", "");
    offsetMin = sign * (Number(rest.slice(0, 2)) * 60 + Number(rest.slice(2, 4) || "0"));
  }
  const ms = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s, Number(digits.slice(0, 3))) - offsetMin * 60_000;
  const check = new Date(Date.UTC(+y, +mo - 1, +d, +h, +mi, +s));
  if (
    Number.isNaN(ms) || check.getUTCMonth() !== +mo - 1 || check.getUTCDate() !== +d || +h > 23 || +mi > 59 || +s > 59
  ) {
    throw new RangeError(`not a valid date and time: ${JSON.stringify(text)}`);
  }
  return { ms, micros: Number(digits.slice(3)) };
}

/**
 * Formats a time as Python's `datetime.isoformat()` does for an aware UTC
 * datetime: microseconds (six digits, omitted when zero, as Python does) and
 * `+00:00`, never `Z`. Accepts an ISO 8601 string (up to microseconds, any
 * offset), a `Date` or epoch milliseconds.
 *
 * @example
 * ```ts
 * import { pythonIsoformat } from "@edx/event-tracking/redis";
 * import assert from "node:assert/strict";
 *
 * assert.equal(pythonIsoformat("2024-05-01T12:00:00.123Z"), "2024-05-01T12:00:00.123000+00:00");
 * assert.equal(pythonIsoformat("2024-05-01T12:00:00.000Z"), "2024-05-01T12:00:00+00:00");
 * assert.equal(pythonIsoformat("2024-05-01T14:00:00.123456+02:00"), "2024-05-01T12:00:00.123456+00:00");
 * ```
 *
 * @throws {RangeError} If the string is not an ISO 8601 date and time.
 */
export function pythonIsoformat(time: string | Date | number): string {
  const instant = typeof time === "string"
    ? parseInstant(time)
    : { ms: typeof time === "number" ? time : time.getTime(), micros: 0 };
  const ms = Math.floor(instant.ms);
  const text = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  const micros = (ms - Math.floor(ms / 1000) * 1000) * 1000 + instant.micros;
  return `${text.slice(0, 19)}${micros === 0 ? "" : `.${String(micros).padStart(6, "0")}`}+00:00`;
}

/**
 * The inverse direction: a bus timestamp (Python's `isoformat()`, any
 * offset) as a {@linkcode TrackingEvent} timestamp, ISO 8601 UTC with
 * milliseconds (microseconds beyond them are cut off).
 *
 * @example
 * ```ts
 * import { eventTimestamp } from "@edx/event-tracking/redis";
 * import assert from "node:assert/strict";
 *
 * assert.equal(eventTimestamp("2024-05-01T12:00:00.123456+00:00"), "2024-05-01T12:00:00.123Z");
 * assert.equal(eventTimestamp("2024-05-01T12:00:00+00:00"), "2024-05-01T12:00:00.000Z");
 * ```
 *
 * @throws {RangeError} If the string is not an ISO 8601 date and time.
 */
export function eventTimestamp(isoformat: string): string {
  return new Date(parseInstant(isoformat).ms).toISOString();
}

// One pass over JSON.stringify's output: a string literal, a separator, or a number.
const JSON_TOKENS = /"(?:[^"\\]|\\.)*"|[,:]|-?\d[\d.eE+-]*/g;
const NON_ASCII = /[^\x20-\x7e]/g;

function pythonFloat(token: string): string {
  // Python's repr switches to exponent notation below 1e-4 (JavaScript below 1e-6), with a two-digit exponent.
  if (!/e-|^-?0\.0000/.test(token)) return token;
  return Number(token).toExponential().replace(/e([+-])(\d)$/, "e$10$2");
}

/**
 * Serialises a JSON value as Python's `json.dumps` does with its defaults, as
 * the Python library does for `data` and `context`: separators `", "` and
 * `": "`, every character outside printable ASCII escaped as `\uXXXX`
 * (astral ones as surrogate pairs), and floats below 1e-4 in Python's
 * exponent notation (`1e-05`). Numbers are otherwise JavaScript's shortest
 * form, which is Python's for non-integers; a whole number prints without
 * `.0`, as a Python `int` would.
 *
 * @example
 * ```ts
 * import { pythonJsonDumps } from "@edx/event-tracking/redis";
 * import assert from "node:assert/strict";
 *
 * assert.equal(pythonJsonDumps({ a: [1, "é"], b: null }), '{"a": [1, "\\u00e9"], "b": null}');
 * ```
 *
 * @throws {TypeError} As `JSON.stringify` does (a cycle, a BigInt).
 */
export function pythonJsonDumps(value: unknown): string {
  const json = JSON.stringify(value);
  if (json === undefined) return "null";
  return json.replace(JSON_TOKENS, (token) => {
    const first = token.charCodeAt(0);
    if (first === 0x22) { // a string
      NON_ASCII.lastIndex = 0;
      return NON_ASCII.test(token)
        ? token.replace(NON_ASCII, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)
        : token;
    }
    if (first === 0x2c) return ", ";
    if (first === 0x3a) return ": ";
    return pythonFloat(token);
  });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What {@linkcode encodeEntry} needs besides the event. */
export interface EntryMetadata {
  /** `source`: `openedx/<service>/web`. */
  readonly source: string;
  /** `sourcehost`. */
  readonly sourcehost: string;
  /** `sourcelib`: a dotted version. @default OPENEDX_EVENTS_VERSION */
  readonly sourcelib?: string;
  /** `time`: when the message is produced. @default now */
  readonly time?: Date | number;
}

/** A field name or value of a stream entry: text, or bytes. */
export type EntryValue = string | Uint8Array;

/**
 * The field/value list of the stream entry for an event, in edx-event-bus-redis's
 * order: `type`, `id` (the event's id), `source`, `time`, `minorversion`,
 * `sourcehost`, `sourcelib`, then `event_data` (the Avro `TrackingLogData`,
 * with `data` and `context` as Python JSON text and the timestamp in
 * Python's UTC `isoformat()`).
 *
 * @example
 * ```ts
 * import { encodeEntry } from "@edx/event-tracking/redis";
 * import assert from "node:assert/strict";
 *
 * const fields = encodeEntry(
 *   { id: "0190a0c0-0000-7000-8000-000000000000", name: "problem_check", timestamp: "2024-05-01T12:00:00.123Z", context: {}, data: {} },
 *   { source: "openedx/lms/web", sourcehost: "web-1", time: Date.UTC(2024, 4, 1, 12) },
 * );
 * assert.deepEqual(fields.filter((_, i) => i % 2 === 0), [
 *   "type", "id", "source", "time", "minorversion", "sourcehost", "sourcelib", "event_data",
 * ]);
 * assert.equal(fields[7], "2024-05-01T12:00:00+00:00");
 * ```
 *
 * @throws {TypeError} If the event's id is not a UUID (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`): the `id` field is one.
 * @throws {RangeError} If the event's timestamp is not an ISO 8601 date and time.
 */
export function encodeEntry(event: TrackingEvent, metadata: EntryMetadata): EntryValue[] {
  if (!UUID.test(event.id)) {
    throw new TypeError(
      `Cannot publish event "${event.name}": its id ${
        JSON.stringify(event.id)
      } is not a UUID (Open edX consumers parse the id field as one)`,
    );
  }
  const eventData = encodeTrackingLog({
    name: event.name,
    timestamp: pythonIsoformat(event.timestamp),
    data: pythonJsonDumps(event.data),
    context: pythonJsonDumps(event.context),
  });
  return [
    "type",
    TRACKING_EVENT_TYPE,
    "id",
    event.id,
    "source",
    metadata.source,
    "time",
    pythonIsoformat(metadata.time ?? Date.now()),
    "minorversion",
    "0",
    "sourcehost",
    metadata.sourcehost,
    "sourcelib",
    metadata.sourcelib ?? OPENEDX_EVENTS_VERSION,
    "event_data",
    eventData,
  ];
}

/** A stream entry that is not a tracking event this library can deliver; `message` says why. */
export class UnusableEntryError extends Error {
  /** Creates the error with the reason. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UnusableEntryError";
  }
}

/** A decoded entry: the tracking event and the header fields. */
export interface DecodedEntry {
  /** The tracking event: `id` from the `id` field, the rest from `event_data`, `data` and `context` parsed. */
  readonly event: TrackingEvent;
  /** The header fields present, as text. */
  readonly headers: Readonly<Partial<Record<keyof EventBusHeaders, string>>>;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
function text(value: EntryValue): string {
  return typeof value === "string" ? value : utf8.decode(value);
}

/**
 * Decodes the field/value list of a stream entry (from any producer: this
 * library or edx-event-bus-redis) into a tracking event, as the Python
 * consumer reads it: the `type` must be the tracking event type, `id` names
 * the event, `event_data` is the Avro record; `data` and `context` are
 * parsed back from JSON (a `null` becomes `{}`), and the timestamp becomes
 * ISO 8601 UTC with milliseconds.
 *
 * @example
 * ```ts
 * import { decodeEntry, encodeEntry } from "@edx/event-tracking/redis";
 * import assert from "node:assert/strict";
 *
 * const event = { id: "0190a0c0-0000-7000-8000-000000000000", name: "a", timestamp: "2024-05-01T12:00:00.123Z", context: { user_id: 7 }, data: { x: "é" } };
 * const decoded = decodeEntry(encodeEntry(event, { source: "openedx/lms/web", sourcehost: "h" }));
 * assert.deepEqual({ ...decoded.event }, event);
 * assert.equal(decoded.headers.source, "openedx/lms/web");
 * ```
 *
 * @throws {UnusableEntryError} With the reason, if the entry is not a tracking event (missing or wrong
 *   fields, bytes that are not the Avro record, JSON that does not parse).
 */
export function decodeEntry(fields: readonly EntryValue[]): DecodedEntry {
  const headers: Partial<Record<keyof EventBusHeaders, string>> = {};
  let eventData: EntryValue | undefined;
  try {
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const key = text(fields[i]);
      if (key === "event_data") eventData = fields[i + 1];
      else if ((HEADER_FIELDS as readonly string[]).includes(key)) {
        headers[key as keyof EventBusHeaders] = text(fields[i + 1]);
      }
    }
  } catch (error) {
    throw new UnusableEntryError(`a header field is not UTF-8 text`, { cause: error });
  }
  if (eventData === undefined) throw new UnusableEntryError("no event_data field");
  if (headers.type !== TRACKING_EVENT_TYPE) {
    throw new UnusableEntryError(
      `event type ${JSON.stringify(headers.type ?? null)} is not ${TRACKING_EVENT_TYPE}`,
    );
  }
  if (!headers.id) throw new UnusableEntryError("no id field");
  let log: TrackingLogData;
  try {
    log = decodeTrackingLog(typeof eventData === "string" ? new TextEncoder().encode(eventData) : eventData);
  } catch (error) {
    throw new UnusableEntryError(`event_data is not an Avro TrackingLogData: ${(error as Error).message}`, {
      cause: error,
    });
  }
  let timestamp: string;
  try {
    timestamp = eventTimestamp(log.timestamp);
  } catch (error) {
    throw new UnusableEntryError(`timestamp: ${(error as Error).message}`, { cause: error });
  }
  const parse = (field: "data" | "context") => {
    try {
      return JSON.parse(log[field]);
    } catch (error) {
      throw new UnusableEntryError(`${field} is not JSON: ${(error as Error).message}`, { cause: error });
    }
  };
  const data = parse("data");
  const context = parse("context");
  try {
    return {
      event: restoreEvent({ id: headers.id, name: log.name, timestamp, context, data }),
      headers,
    };
  } catch (error) {
    throw new UnusableEntryError((error as Error).message, { cause: error });
  }
}
