/**
 * The event record that every processor and backend receives.
 *
 * @module
 */

import { snapshot } from "./_snapshot.ts";

/**
 * One tracked event: an immutable snapshot taken at `emit` time.
 *
 * Events built by `Tracker.emit` are deeply frozen: a processor that wants to
 * change an event returns a new one (`{ ...event, name: "x" }`).
 */
export interface TrackingEvent {
  /** A UUIDv7: time-ordered and unique per emit. */
  readonly id: string;
  /** The event name, e.g. `edx.course.enrollment.activated`. */
  readonly name: string;
  /** ISO-8601 UTC with millisecond precision, fixed width: `2026-11-27T18:08:15.123Z`. */
  readonly timestamp: string;
  /** The merged context scopes that were active at emit time. */
  readonly context: Readonly<Record<string, unknown>>;
  /** The event payload, as JSON-compatible data. */
  readonly data: unknown;
}

/**
 * An event made by the tracker. It carries the JSON of its context and data,
 * made once at emit, so every JSON-writing backend shares one serialisation.
 */
export class EmittedEvent implements TrackingEvent {
  readonly id: string;
  readonly name: string;
  readonly timestamp: string;
  readonly context: Readonly<Record<string, unknown>>;
  readonly data: unknown;
  readonly #contextJson: string;
  readonly #dataJson: string;
  #line: string | undefined;

  constructor(
    id: string,
    name: string,
    timestamp: string,
    context: Readonly<Record<string, unknown>>,
    data: unknown,
    contextJson: string,
    dataJson: string,
  ) {
    this.id = id;
    this.name = name;
    this.timestamp = timestamp;
    this.context = context;
    this.data = data;
    this.#contextJson = contextJson;
    this.#dataJson = dataJson;
    Object.freeze(this);
  }

  /** The same text as `JSON.stringify(this)`, made from the cached parts. */
  toJSONString(): string {
    if (this.#line === undefined) {
      // Events come in runs of one name: quoting it again costs ≈25 ns.
      if (this.name !== quotedName) quoted = JSON.stringify(quotedName = this.name);
      this.#line = `{"id":"${this.id}","name":${quoted},"timestamp":"${this.timestamp}",` +
        `"context":${this.#contextJson},"data":${this.#dataJson}}`;
    }
    return this.#line;
  }
}

let quotedName = "";
let quoted = '""';

/**
 * Serialises an event to one line of JSON (keys in the order id, name,
 * timestamp, context, data for events the tracker made). Events straight from
 * `emit` reuse the JSON made at emit time; others are stringified.
 *
 * @example
 * ```ts
 * import { InMemoryBackend, serializeEvent, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * new Tracker({ backends: { sink } }).emit("a", { x: [1, 2] });
 * const line = serializeEvent(sink.events[0]);
 * assert.equal(line, JSON.stringify(sink.events[0]));
 * ```
 *
 * @throws {TypeError} If an event that a processor built holds a value JSON cannot represent.
 */
export function serializeEvent(event: TrackingEvent): string {
  return event instanceof EmittedEvent ? event.toJSONString() : JSON.stringify(event);
}

/**
 * Rebuilds a frozen event from a plain object, e.g. one read back from JSON
 * (a queue message, a dead-letter file, the event bus). Keys other than the
 * five event fields are left out.
 *
 * @example
 * ```ts
 * import { restoreEvent } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const event = restoreEvent(JSON.parse(
 *   '{"id":"1","name":"a","timestamp":"2026-01-01T00:00:00.000Z","context":{},"data":{"x":1}}',
 * ));
 * assert.ok(Object.isFrozen(event.data));
 * ```
 *
 * @throws {TypeError} If `id`, `name` or `timestamp` is not a string, `context` not an object, or a value is not JSON.
 */
export function restoreEvent(value: unknown): TrackingEvent {
  const record = value as Record<string, unknown> | null;
  if (typeof record !== "object" || record === null) {
    throw new TypeError(`Cannot restore event: expected an object, got ${record === null ? "null" : typeof record}`);
  }
  for (const field of ["id", "name", "timestamp"] as const) {
    if (typeof record[field] !== "string") {
      throw new TypeError(`Cannot restore event: '${field}' must be a string, got ${typeof record[field]}`);
    }
  }
  const context = record.context ?? {};
  if (typeof context !== "object" || context === null || Array.isArray(context)) {
    throw new TypeError("Cannot restore event: 'context' must be an object");
  }
  const contextCopy = snapshot(context, "context", true, "restore event");
  const dataCopy = snapshot(record.data ?? {}, "data", true, "restore event");
  return new EmittedEvent(
    record.id as string,
    record.name as string,
    record.timestamp as string,
    contextCopy.value as Readonly<Record<string, unknown>>,
    dataCopy.value,
    contextCopy.json as string,
    dataCopy.json as string,
  );
}
