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
 * Invalid options or configuration, from a constructor or from
 * `createTracker` alike. Its message starts with where the problem is: the
 * class and option for a constructor (`LoggerBackend.level: must be one of
 * …, got "loud"`), the path in the configuration for `createTracker`
 * (`backends.log.OPTIONS.level: must be one of …, got "loud"`); what follows
 * the path is the same in both.
 *
 * It extends `TypeError`, so code that caught the `TypeError`s constructors
 * threw before keeps working (the `RangeError`s they threw for numbers out of
 * range are `ImproperlyConfigured` too now).
 *
 * @example Catch a configuration error
 * ```ts
 * import { createTracker, ImproperlyConfigured, LoggerBackend } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * assert.throws(
 *   () => createTracker({ backends: { xapi: { ENGINE: "foo.Bar" } } }),
 *   ImproperlyConfigured,
 * );
 * assert.throws(() => new LoggerBackend({ maxEventSize: -1 }), {
 *   name: "ImproperlyConfigured",
 *   path: "LoggerBackend.maxEventSize",
 *   message: "LoggerBackend.maxEventSize: must be null or a non-negative integer, got -1",
 * });
 * ```
 */
export class ImproperlyConfigured extends TypeError {
  /**
   * Where the problem is: a path in the configuration (`backends.xapi.OPTIONS.processors[0]`),
   * or a class and its option (`LoggerBackend.level`); `""` when not known.
   */
  readonly path: string;

  /**
   * Creates the error; the message is prefixed with `path` when one is given.
   *
   * @param message What is wrong.
   * @param path Where in the configuration.
   * @param options The error's `cause`.
   */
  constructor(message: string, path = "", options?: ErrorOptions) {
    super(path ? `${path}: ${message}` : message, options);
    this.name = "ImproperlyConfigured";
    this.path = path;
  }
}

/**
 * Thrown by a processor to refuse an event as bad rather than filter it out:
 * on an `async_routing` branch the event goes to the branch's dead letters,
 * with `EventRejected: <its message>` (which names the failing fields) as
 * the dead letter's `deadLetter.error`; on any other branch it is dropped, as
 * {@linkcode EventEmissionExit} (which it extends) is.
 *
 * @example Dead-letter events without a user
 * ```ts
 * import { AsyncRoutingBackend, EventRejected, InMemoryBackend, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * const letters = new InMemoryBackend();
 * const branch = new AsyncRoutingBackend({
 *   backends: { sink },
 *   deadLetter: letters,
 *   processors: [(event) => {
 *     if ((event.data as { user_id?: number }).user_id === undefined) {
 *       throw new EventRejected("no user", ["data.user_id"]);
 *     }
 *   }],
 * });
 * const tracker = new Tracker({ backends: { branch } });
 * tracker.emit("a", { user_id: 1 });
 * tracker.emit("b", {});
 * await tracker.close();
 * assert.deepEqual(sink.events.map((e) => e.name), ["a"]);
 * assert.equal((letters.events[0] as unknown as { deadLetter: { error: string } }).deadLetter.error, "EventRejected: no user");
 * ```
 */
export class EventRejected extends EventEmissionExit {
  /** The failing fields, e.g. `data.user_id`. */
  readonly fields: readonly string[];

  /** Creates the rejection; `message` should name the failing fields. */
  constructor(message: string, fields: readonly string[] = []) {
    super(message);
    this.name = "EventRejected";
    this.fields = fields;
  }
}
