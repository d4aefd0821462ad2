/**
 * The default bus transport: publish/subscribe inside this process.
 *
 * @module
 */

import { consoleLogger, type DiagnosticLogger } from "../diagnostics.ts";
import type { TrackingEvent } from "../event.ts";
import { PendingSet } from "../_pending.ts";
import type { BusHandler, BusTransport } from "./transport.ts";

/**
 * Delivers each published event to every subscriber of its topic, once, on a
 * later microtask (publishing never runs consumers inside `emit`). A handler
 * that throws or rejects is reported and does not affect the others.
 *
 * @example
 * ```ts
 * import { InProcessBus } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const bus = new InProcessBus();
 * const names: string[] = [];
 * bus.subscribe("analytics", (event) => void names.push(event.name));
 * bus.publish("analytics", { id: "1", name: "a", timestamp: "", context: {}, data: {} });
 * await bus.flush();
 * assert.deepEqual(names, ["a"]);
 * ```
 */
export class InProcessBus implements BusTransport {
  readonly #topics = new Map<string, Set<BusHandler>>();
  readonly #pending = new PendingSet();
  readonly #logger: DiagnosticLogger;

  /** Creates a bus; handler failures go to `logger`. */
  constructor(options: { logger?: DiagnosticLogger } = {}) {
    this.#logger = options.logger ?? consoleLogger;
  }

  /** Publishes to every current subscriber of `topic`. */
  publish(topic: string, event: TrackingEvent): void {
    const handlers = this.#topics.get(topic);
    if (handlers === undefined) return;
    for (const handler of handlers) {
      this.#pending.add(
        Promise.resolve().then(() => handler(event)).then(undefined, (error) => {
          this.#logger.error(`Event bus subscriber of "${topic}" failed on event "${event.name}"`, error);
        }),
      );
    }
  }

  /** Subscribes `handler` to `topic`; returns the function that unsubscribes it. */
  subscribe(topic: string, handler: BusHandler): () => void {
    let handlers = this.#topics.get(topic);
    if (handlers === undefined) this.#topics.set(topic, handlers = new Set());
    handlers.add(handler);
    return () => {
      handlers.delete(handler);
      if (handlers.size === 0) this.#topics.delete(topic);
    };
  }

  /** Resolves when every published event has been handled. */
  async flush(): Promise<void> {
    await this.#pending.settled();
  }

  /** Flushes, then drops every subscription. */
  async close(): Promise<void> {
    await this.flush();
    this.#topics.clear();
  }
}
