/**
 * Counters that every router and backend keeps, and their Prometheus form.
 *
 * @module
 */

/** Counters of one node of the routing tree. All are totals since creation except `queueDepth`. */
export interface BackendMetrics {
  /** Events that reached this node. */
  received: number;
  /** Events handed on by this node's processors to its backends. */
  passed: number;
  /** Events this node did not pass on on purpose: dropped by a processor, or over a size limit. */
  dropped: number;
  /** Successful deliveries: `send` calls that returned (or resolved) without error. */
  delivered: number;
  /** Failed deliveries: `send` calls that threw or rejected. */
  failed: number;
  /** Processor calls that threw something other than `EventEmissionExit`. */
  processorErrors: number;
  /** Delivery attempts repeated after a failure. */
  retried: number;
  /** Events handed to a dead-letter sink. */
  deadLettered: number;
  /** Events accepted but not yet delivered. */
  queueDepth: number;
}

/** Metrics of a whole tree, keyed by backend path (`root`, `root/tracking_logs`, …). */
export type MetricsSnapshot = Record<string, BackendMetrics>;

/**
 * Creates a zeroed set of counters.
 *
 * @example
 * ```ts
 * import { emptyMetrics } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * assert.equal(emptyMetrics().received, 0);
 * ```
 *
 * @returns A new counters object with every field at 0.
 */
export function emptyMetrics(): BackendMetrics {
  return {
    received: 0,
    passed: 0,
    dropped: 0,
    delivered: 0,
    failed: 0,
    processorErrors: 0,
    retried: 0,
    deadLettered: 0,
    queueDepth: 0,
  };
}

const HELP: Record<keyof BackendMetrics, [string, "counter" | "gauge"]> = {
  received: ["Events that reached the node", "counter"],
  passed: ["Events passed on by the node's processors", "counter"],
  dropped: ["Events dropped on purpose (processors, size limits)", "counter"],
  delivered: ["Successful deliveries", "counter"],
  failed: ["Failed deliveries", "counter"],
  processorErrors: ["Processor calls that threw", "counter"],
  retried: ["Delivery attempts repeated after a failure", "counter"],
  deadLettered: ["Events handed to a dead-letter sink", "counter"],
  queueDepth: ["Events accepted but not yet delivered", "gauge"],
};

function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

/**
 * Renders a metrics snapshot in the Prometheus text exposition format
 * (version 0.0.4), one metric family per counter, labelled by backend path.
 *
 * @example Render a tracker's metrics
 * ```ts
 * import { InMemoryBackend, toPrometheus, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const tracker = new Tracker({ backends: { sink: new InMemoryBackend() } });
 * tracker.emit("a");
 * const text = toPrometheus(tracker.metrics());
 * assert.match(text, /event_tracking_received_total\{backend="root\/sink"\} 1/);
 * ```
 *
 * @param snapshot What `tracker.metrics()` returned.
 * @param prefix The metric name prefix.
 * @returns The exposition text, ending with a newline.
 */
export function toPrometheus(snapshot: MetricsSnapshot, prefix = "event_tracking"): string {
  const paths = Object.keys(snapshot);
  let out = "";
  for (const key of Object.keys(HELP) as (keyof BackendMetrics)[]) {
    const [help, type] = HELP[key];
    const name = `${prefix}_${snakeCase(key)}${type === "counter" ? "_total" : ""}`;
    out += `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
    for (const path of paths) {
      out += `${name}{backend="${escapeLabel(path)}"} ${snapshot[path][key]}\n`;
    }
  }
  return out;
}
