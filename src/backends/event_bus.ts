/**
 * Sends allowed events to an event bus; consumers run this backend's
 * processors and nested backends, as the reference's bus consumer does.
 *
 * @module
 */

import type { Backend, CloseOptions } from "../backend.ts";
import { PendingSet } from "../_pending.ts";
import { consoleLogger, type DiagnosticLogger } from "../diagnostics.ts";
import type { TrackingEvent } from "../event.ts";
import { type BackendMetrics, emptyMetrics, type MetricsSnapshot } from "../metrics.ts";
import type { Processor } from "../processor.ts";
import { RoutingBackend } from "../routing.ts";
import { InProcessBus } from "../transports/in_process_bus.ts";
import type { BusTransport } from "../transports/transport.ts";
import * as v from "valibot";
import {
  backends,
  boolean,
  type Expect,
  logger,
  must,
  options,
  parseOptions,
  processors,
  type SameType,
  string,
  strings,
} from "../_schema.ts";

/** Options of {@linkcode EventBusBackend}. */
export interface EventBusBackendOptions {
  /** Backends the consumer delivers to. @default {} */
  backends?: Readonly<Record<string, Backend>> | ReadonlyMap<string, Backend>;
  /** Processors the consumer runs before its backends (the reference runs them on the consumer side). @default [] */
  processors?: readonly Processor[];
  /** The bus topic, and this backend's name in diagnostics. @default "tracking_logs" */
  backendName?: string;
  /** The reference's `SEND_TRACKING_EVENT_EMITTED_SIGNAL`: publish nothing when false (counted as dropped). @default true */
  enabled?: boolean;
  /**
   * The reference's `EVENT_BUS_TRACKING_LOGS`: exact event names allowed onto
   * the bus. The entry `"*"` allows every name. @default []
   */
  eventBusTrackingLogs?: Iterable<string>;
  /** The bus. @default a new InProcessBus */
  transport?: BusTransport;
  /** Subscribe this backend's consumer to the bus in this process. Turn off where another process consumes. @default true */
  consume?: boolean;
  /** Where failures are reported. @default consoleLogger */
  logger?: DiagnosticLogger;
}

/** The schema of {@linkcode EventBusBackendOptions}: what the constructor and the `event_bus` ENGINE check. */
export const eventBusOptions = /* @__PURE__ */ (() =>
  options({
    backends: v.optional(backends()),
    processors: v.optional(processors()),
    backendName: v.optional(string()),
    enabled: v.optional(boolean()),
    eventBusTrackingLogs: v.optional(strings("an array of event names")),
    transport: v.optional(
      v.custom<BusTransport>(
        (value) =>
          typeof (value as BusTransport | null)?.publish === "function" &&
          typeof (value as BusTransport).subscribe === "function",
        must("a BusTransport"),
      ),
    ),
    consume: v.optional(boolean()),
    logger: v.optional(logger()),
  }))();
type _SameOptions = Expect<SameType<v.InferInput<typeof eventBusOptions>, EventBusBackendOptions>>;

/**
 * Publishes events whose name is in `eventBusTrackingLogs` to a bus topic.
 * The consumer subscribed to that topic runs this backend's processors, then
 * its nested backends. Each backend has its own topic, so N event-bus
 * backends deliver each event once per consumer — never N×N, as in the
 * reference.
 *
 * @example
 * ```ts
 * import { EventBusBackend, InMemoryBackend, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const xapi = new InMemoryBackend();
 * const bus = new EventBusBackend({
 *   backendName: "xapi",
 *   eventBusTrackingLogs: ["edx.course.enrollment.activated"],
 *   backends: { xapi },
 * });
 * const tracker = new Tracker({ backends: { xapi: bus } });
 * tracker.emit("edx.course.enrollment.activated");
 * tracker.emit("edx.ui.click");
 * await tracker.flush();
 * assert.deepEqual(xapi.events.map((e) => e.name), ["edx.course.enrollment.activated"]);
 * ```
 */
export class EventBusBackend implements Backend {
  /** The bus topic. */
  readonly backendName: string;
  /** Whether events are published at all. */
  readonly enabled: boolean;
  /** The exact names allowed onto the bus. */
  readonly eventBusTrackingLogs: ReadonlySet<string>;
  /** The bus. */
  readonly transport: BusTransport;
  readonly #consumer: RoutingBackend;
  readonly #counters: BackendMetrics = emptyMetrics();
  readonly #logger: DiagnosticLogger;
  readonly #unsubscribe: (() => void) | undefined;
  readonly #pending = new PendingSet();
  readonly #allowAll: boolean;

  /**
   * Creates the backend and, unless `consume` is false, subscribes its consumer.
   *
   * @throws {ImproperlyConfigured} If an option is unknown or invalid: `eventBusTrackingLogs` a string or not an
   * iterable of strings, a backend or processor not usable.
   */
  constructor(options: EventBusBackendOptions = {}) {
    const o = parseOptions(eventBusOptions, options, "EventBusBackend");
    this.#logger = o.logger ?? consoleLogger;
    this.backendName = o.backendName || "tracking_logs";
    this.enabled = o.enabled ?? true;
    const names = o.eventBusTrackingLogs ?? [];
    this.eventBusTrackingLogs = new Set(names);
    this.#allowAll = this.eventBusTrackingLogs.has("*");
    this.transport = o.transport ?? new InProcessBus({ logger: this.#logger });
    this.#consumer = new RoutingBackend({
      backends: o.backends,
      processors: o.processors,
      logger: this.#logger,
    });
    if (o.consume ?? true) {
      this.#unsubscribe = this.transport.subscribe(this.backendName, (event) => this.consume(event));
    }
    if (!this.enabled) this.#logger.warn(`EventBusBackend "${this.backendName}" is disabled: it publishes nothing`);
    else if (this.eventBusTrackingLogs.size === 0) {
      this.#logger.warn(
        `EventBusBackend "${this.backendName}" allows no event names onto the bus: it publishes nothing`,
      );
    }
  }

  /** The consumer's backends, where events from the bus end up. */
  get backends(): ReadonlyMap<string, Backend> {
    return this.#consumer.backends;
  }

  /** The consumer side: the processors and backends events from the bus go through. */
  get consumer(): RoutingBackend {
    return this.#consumer;
  }

  /**
   * Publishes the event if the backend is enabled and its name is allowed;
   * otherwise counts it as dropped.
   *
   * @returns A promise when the bus publishes asynchronously: it resolves once
   *   the bus has taken the event, and rejects if it could not.
   */
  send(event: TrackingEvent): Promise<void> | undefined {
    this.#counters.received++;
    if (!this.enabled || !(this.#allowAll || this.eventBusTrackingLogs.has(event.name))) {
      this.#counters.dropped++;
      return undefined;
    }
    this.#counters.passed++;
    const result = this.transport.publish(this.backendName, event);
    if (result === undefined || typeof result.then !== "function") {
      this.#counters.delivered++;
      return undefined;
    }
    const published = result.then(
      () => void this.#counters.delivered++,
      (error) => {
        this.#counters.failed++;
        this.#logger.error(`EventBusBackend "${this.backendName}" failed to publish event "${event.name}"`, error);
        throw error;
      },
    );
    this.#pending.add(published);
    return published;
  }

  /**
   * Handles one event from the bus: this backend's processors, then its
   * nested backends. Settles as {@linkcode RoutingBackend.send} does, so a bus
   * that redelivers can tell a failure.
   */
  consume(event: TrackingEvent): Promise<void> | undefined {
    return this.#consumer.send(event);
  }

  /** Resolves when published events have been consumed and the nested backends flushed. */
  async flush(): Promise<void> {
    await this.#pending.settled();
    await this.transport.flush?.();
    await this.#consumer.flush();
  }

  /** Flushes the bus, unsubscribes, and closes the nested backends (within `deadlineMs` when given). */
  async close(options: CloseOptions = {}): Promise<void> {
    await this.#pending.settled();
    await this.transport.flush?.();
    this.#unsubscribe?.();
    await this.#consumer.close(options);
  }

  /** Adds the publishing side's counters under `path` and the consumer's nested backends under `path/<name>`. */
  collectMetrics(path: string, into: MetricsSnapshot): void {
    const consumer: MetricsSnapshot = {};
    this.#consumer.collectMetrics(path, consumer);
    const { processorErrors } = consumer[path];
    delete consumer[path];
    Object.assign(into, consumer);
    into[path] = { ...this.#counters, processorErrors };
  }
}
