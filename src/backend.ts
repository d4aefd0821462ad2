/**
 * The backend contract: where events go.
 *
 * @module
 */

import type { TrackingEvent } from "./event.ts";
import type { MetricsSnapshot } from "./metrics.ts";

/** Options of {@linkcode Backend.close}. */
export interface CloseOptions {
  /**
   * The most time `close` may take, in milliseconds. What is still queued or
   * waiting for a retry then is written to its branch's dead letters, and
   * `close` resolves. @default no limit: everything accepted is delivered or dead-lettered first
   */
  deadlineMs?: number;
}

/**
 * Receives events. `send` must not keep a reference it later mutates: events
 * are shared, frozen snapshots.
 *
 * `send` settles per event: it returns once the event is written, or returns
 * a promise that resolves once it is and rejects if it cannot be. A `send`
 * that throws or rejects is counted `failed` by the router that called it
 * (retried and then dead-lettered on an async branch); other backends still
 * receive the event. Routers resolve once every child has settled: failures
 * are theirs to count, retry and dead-letter.
 *
 * @example A backend that counts events by name
 * ```ts
 * import { type Backend, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const counts = new Map<string, number>();
 * const counter: Backend = {
 *   send(event) {
 *     counts.set(event.name, (counts.get(event.name) ?? 0) + 1);
 *   },
 * };
 * const tracker = new Tracker({ backends: { counter } });
 * tracker.emit("a");
 * tracker.emit("a");
 * assert.equal(counts.get("a"), 2);
 * ```
 */
export interface Backend {
  /** Accepts one event; a returned promise settles when it is written, or rejects when it cannot be. */
  send(event: TrackingEvent): void | Promise<void>;
  /** Resolves when everything accepted so far has been delivered. */
  flush?(): Promise<void>;
  /** Flushes, then releases resources (files, connections, timers); within `deadlineMs` when given. */
  close?(options?: CloseOptions): Promise<void>;
  /**
   * How close this backend is to losing events, from 0 to 1 (its buffers are
   * full: the next event would be refused with nowhere else to go), so that
   * producers can shed load first. Routers report their fullest child; an
   * async branch whose overflow is dead-lettered reports how full its queue
   * is while its backends deliver, and only its dead-letter sink otherwise.
   */
  saturation?(): number;
  /**
   * Adds this backend's counters to `into` under `path` (and its children's
   * under `path/<name>`). Backends without it are counted by their router.
   */
  collectMetrics?(path: string, into: MetricsSnapshot): void;
}
