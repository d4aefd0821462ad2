/**
 * The processor contract: what a processor may do with an event.
 *
 * @module
 */

import type { TrackingEvent } from "./event.ts";

/**
 * Returned by a processor to drop the current event on its branch only, like
 * throwing {@linkcode EventEmissionExit} but without the cost of an exception.
 * Built-in filters return it.
 *
 * @example A processor that drops debug events
 * ```ts
 * import { DROP, InMemoryBackend, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * const tracker = new Tracker({
 *   backends: { sink },
 *   processors: [(event) => event.name.startsWith("debug.") ? DROP : undefined],
 * });
 * tracker.emit("debug.ping");
 * tracker.emit("edx.ui.click");
 * assert.deepEqual(sink.events.map((e) => e.name), ["edx.ui.click"]);
 * ```
 */
export const DROP: unique symbol = Symbol.for("@edx/event-tracking/DROP");

/** What a processor returns: `undefined` keeps the event, an event replaces it, {@linkcode DROP} drops it. */
export type ProcessorResult = TrackingEvent | undefined | void | typeof DROP;

/** A processor written as a function. */
export type ProcessorFunction = (event: TrackingEvent) => ProcessorResult;

/** A processor written as an object with a `process` method (such as the built-in filters). */
export interface ProcessorObject {
  /** Processes one event; see {@linkcode ProcessorResult}. */
  process(event: TrackingEvent): ProcessorResult;
}

/**
 * Transforms or drops events on one branch of the routing tree.
 *
 * Returning `undefined` keeps the event; returning an event replaces it;
 * returning {@linkcode DROP} or throwing {@linkcode EventEmissionExit} drops it on
 * that branch only. Any other exception is logged and counted, and the chain
 * continues with the event as it was.
 */
export type Processor = ProcessorFunction | ProcessorObject;
