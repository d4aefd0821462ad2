/**
 * Error classes that callers catch.
 *
 * @module
 */

/**
 * Thrown by a processor to drop the current event on its branch of the routing
 * tree only. Sibling branches still receive the event.
 *
 * Returning {@linkcode DROP} does the same without the cost of an exception.
 *
 * @example Drop events whose data is empty
 * ```ts
 * import { EventEmissionExit, InMemoryBackend, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * const tracker = new Tracker({
 *   backends: { sink },
 *   processors: [(event) => {
 *     if (Object.keys(event.data as object).length === 0) throw new EventEmissionExit();
 *   }],
 * });
 * tracker.emit("empty");
 * tracker.emit("full", { a: 1 });
 * assert.deepEqual(sink.events.map((e) => e.name), ["full"]);
 * ```
 */
export class EventEmissionExit extends Error {
  /** Creates the signal, optionally with a reason for debugging. */
  constructor(message = "Event emission stopped by a processor") {
    super(message);
    this.name = "EventEmissionExit";
  }
}

/**
 * A configuration error. Its message starts with the path of the offending
 * setting, for example `backends.xapi.OPTIONS.processors[0]: unknown ENGINE "foo.Bar"`.
 *
 * @example Catch a configuration error
 * ```ts
 * import { createTracker, ImproperlyConfigured } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * assert.throws(
 *   () => createTracker({ backends: { xapi: { ENGINE: "foo.Bar" } } }),
 *   ImproperlyConfigured,
 * );
 * ```
 */
export class ImproperlyConfigured extends Error {
  /** Where in the configuration the problem is, e.g. `backends.xapi.OPTIONS`; `""` when not known. */
  readonly path: string;

  /**
   * Creates the error; the message is prefixed with `path` when one is given.
   *
   * @param message What is wrong.
   * @param path Where in the configuration.
   */
  constructor(message: string, path = "", options?: ErrorOptions) {
    super(path ? `${path}: ${message}` : message, options);
    this.name = "ImproperlyConfigured";
    this.path = path;
  }
}
