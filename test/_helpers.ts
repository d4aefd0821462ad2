/**
 * Test helpers shared by the suites: a diagnostics logger that records what it
 * is told, and a backend that records calls.
 *
 * @module
 */

import type { Backend, DiagnosticLogger, TrackingEvent } from "../mod.ts";

/** A diagnostics logger that keeps every message. */
export class RecordingLogger implements DiagnosticLogger {
  readonly warnings: string[] = [];
  readonly errors: { message: string; detail: unknown }[] = [];
  warn(message: string): void {
    this.warnings.push(message);
  }
  error(message: string, detail?: unknown): void {
    this.errors.push({ message, detail });
  }
}

/** A backend whose send runs `behaviour` and records the event and call order. */
export function recordingBackend(
  name: string,
  order: string[] = [],
  behaviour: (event: TrackingEvent) => void | Promise<void> = () => {},
): Backend & { events: TrackingEvent[] } {
  const events: TrackingEvent[] = [];
  return {
    events,
    send(event) {
      order.push(name);
      events.push(event);
      return behaviour(event);
    },
  };
}

/** A deterministic PRNG (mulberry32), so randomised tests replay the same inputs. */
export function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
