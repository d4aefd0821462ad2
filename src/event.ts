/**
 * The event record that every processor and backend receives.
 *
 * @module
 */

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
    return this.#line ??= `{"id":"${this.id}","name":${JSON.stringify(this.name)},"timestamp":"${this.timestamp}",` +
      `"context":${this.#contextJson},"data":${this.#dataJson}}`;
  }
}

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
