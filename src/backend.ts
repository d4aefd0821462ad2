/**
 * The backend contract: where events go.
 *
 * @module
 */

import type { TrackingEvent } from "./event.ts";
import type { MetricsSnapshot } from "./metrics.ts";

/**
 * Receives events. `send` must not keep a reference it later mutates: events
 * are shared, frozen snapshots.
 *
 * A `send` that throws or rejects is logged and counted by the router that
 * called it; other backends still receive the event.
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
  /** Accepts one event. May return a promise that settles when it is delivered. */
  send(event: TrackingEvent): void | Promise<void>;
  /** Resolves when everything accepted so far has been delivered. */
  flush?(): Promise<void>;
  /** Flushes, then releases resources (files, connections, timers). */
  close?(): Promise<void>;
  /**
   * How full this backend's queues are, from 0 (empty) to 1 (full), so that
   * producers can shed load before events overflow. Routers report their
   * fullest child.
   */
  saturation?(): number;
  /**
   * Adds this backend's counters to `into` under `path` (and its children's
   * under `path/<name>`). Backends without it are counted by their router.
   */
  collectMetrics?(path: string, into: MetricsSnapshot): void;
}
