/**
 * The routing tree: a router runs its processors in order, then hands the
 * event to each of its backends in sorted name order. A branch that drops or
 * fails never affects its siblings.
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import { ProcessorChain } from "./_processor_chain.ts";
import { consoleLogger, type DiagnosticLogger } from "./diagnostics.ts";
import type { TrackingEvent } from "./event.ts";
import { type BackendMetrics, emptyMetrics, type MetricsSnapshot } from "./metrics.ts";
import { type Route, Routes } from "./_routes.ts";
import { DROP, type Processor } from "./processor.ts";

/** Options of {@linkcode RoutingBackend}. */
export interface RoutingBackendOptions {
  /** Child backends by name; they are called in sorted name order. @default {} */
  backends?: Readonly<Record<string, Backend>> | ReadonlyMap<string, Backend>;
  /** Processors run in order before the backends. @default [] */
  processors?: readonly Processor[];
  /** Where failures are reported. @default consoleLogger */
  logger?: DiagnosticLogger;
}

/** The result of {@linkcode RoutingBackend.processEvent}: the processed event, or {@linkcode DROP}. */
export type ProcessedEvent = TrackingEvent | typeof DROP;

/**
 * A node of the routing tree. Itself a {@linkcode Backend}, so routers nest
 * into trees where each branch has its own processors.
 *
 * Events are frozen snapshots shared by every branch, so no branch can change
 * what another sees, and no copy is made per branch.
 *
 * @example A tree with one filtered branch
 * ```ts
 * import {
 *   InMemoryBackend,
 *   NameAllowlistProcessor,
 *   RoutingBackend,
 *   Tracker,
 * } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const all = new InMemoryBackend();
 * const enrollments = new InMemoryBackend();
 * const tracker = new Tracker({
 *   backends: {
 *     all,
 *     segment: new RoutingBackend({
 *       processors: [new NameAllowlistProcessor({ allowlist: ["edx.course.enrollment.activated"] })],
 *       backends: { enrollments },
 *     }),
 *   },
 * });
 * tracker.emit("edx.course.enrollment.activated");
 * tracker.emit("edx.ui.click");
 * assert.equal(all.events.length, 2);
 * assert.equal(enrollments.events.length, 1);
 * ```
 */
export class RoutingBackend implements Backend {
  readonly #routes = new Routes();
  readonly #chain: ProcessorChain;
  readonly #pending = new Set<Promise<void>>();
  readonly #counters: BackendMetrics = emptyMetrics();
  readonly #logger: DiagnosticLogger;

  /**
   * Creates a router.
   *
   * @throws {TypeError} If a backend has no callable `send` or a processor is not callable.
   */
  constructor(options: RoutingBackendOptions = {}) {
    this.#logger = options.logger ?? consoleLogger;
    this.#chain = new ProcessorChain(this.#logger, this.#counters);
    this.#routes.registerAll("RoutingBackend", options.backends ?? {});
    this.#chain.addAll("RoutingBackend", options.processors ?? []);
  }

  /** The child backends in the order they are called (sorted by name). */
  get backends(): ReadonlyMap<string, Backend> {
    return this.#routes.backends;
  }

  /** The processors in the order they run. */
  get processors(): readonly Processor[] {
    return this.#chain.processors;
  }

  /**
   * Adds a child backend, or replaces the one of that name in place.
   *
   * @throws {TypeError} If `backend` has no callable `send` method.
   */
  registerBackend(name: string, backend: Backend): void {
    this.#routes.register(name, backend);
  }

  /**
   * Appends a processor to the chain.
   *
   * @throws {TypeError} If `processor` is neither a function nor an object with a `process` method.
   */
  registerProcessor(processor: Processor): void {
    this.#chain.add(processor);
  }

  /**
   * Runs the processors in order and returns the resulting event, or
   * {@linkcode DROP} if one of them dropped it. A processor that throws
   * anything but {@linkcode EventEmissionExit} is logged and counted, and the
   * chain goes on with the event as it was.
   */
  processEvent(event: TrackingEvent): ProcessedEvent {
    return this.#chain.run(event);
  }

  /**
   * Hands the event to every child backend in order. A backend that throws or
   * rejects is logged and counted; the others still receive the event.
   */
  sendToBackends(event: TrackingEvent): void {
    const routes = this.#routes.list;
    for (let i = 0; i < routes.length; i++) {
      const route = routes[i];
      route.counters.received++;
      try {
        const result = route.backend.send(event);
        if (result !== undefined && typeof result.then === "function") this.#track(route, event, result);
        else this.#delivered(route);
      } catch (error) {
        this.#failed(route, event, error);
      }
    }
  }

  /** Processes the event, then sends it to the backends unless a processor dropped it. */
  send(event: TrackingEvent): void {
    this.#counters.received++;
    const processed = this.#chain.empty ? event : this.#chain.run(event);
    if (processed === DROP) {
      this.#counters.dropped++;
      return;
    }
    this.#counters.passed++;
    this.sendToBackends(processed);
  }

  /**
   * Resolves when every delivery started so far has settled and every child
   * backend has flushed.
   *
   * @throws {AggregateError} If a child backend's `flush` rejected; the others are still flushed.
   */
  async flush(): Promise<void> {
    // Children flush while their deliveries settle: a batching child resolves
    // its sends only when it writes, and flush() is what makes it write now.
    const flushing = this.#each("flush");
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
    await flushing;
  }

  /**
   * Flushes, then closes every child backend.
   *
   * @throws {AggregateError} If a child backend failed to flush or close; the others are still closed.
   */
  async close(): Promise<void> {
    let flushError: unknown;
    try {
      await this.flush();
    } catch (error) {
      flushError = error;
    }
    await this.#each("close", flushError);
  }

  /** The fullest child's saturation (0 when no child queues). */
  saturation(): number {
    return this.#routes.saturation();
  }

  /** Adds this router's counters under `path` and its children's under `path/<name>`. */
  collectMetrics(path: string, into: MetricsSnapshot): void {
    let delivered = 0;
    let failed = 0;
    for (const route of this.#routes.list) {
      delivered += route.counters.delivered;
      failed += route.counters.failed;
    }
    into[path] = { ...this.#counters, delivered, failed };
    this.#routes.collectMetrics(path, into);
  }

  #delivered(route: Route): void {
    route.counters.delivered++;
  }

  #failed(route: Route, event: TrackingEvent, error: unknown): void {
    route.counters.failed++;
    this.#logger.error(`Unable to send event "${event?.name}" to backend "${route.name}"`, error);
  }

  #track(route: Route, event: TrackingEvent, result: Promise<void>): void {
    route.counters.queueDepth++;
    const settled = result.then(
      () => {
        route.counters.queueDepth--;
        this.#delivered(route);
      },
      (error) => {
        route.counters.queueDepth--;
        this.#failed(route, event, error);
      },
    ).finally(() => this.#pending.delete(settled));
    this.#pending.add(settled);
  }

  async #each(method: "flush" | "close", earlier?: unknown): Promise<void> {
    const errors: unknown[] = earlier === undefined ? [] : [earlier];
    for (const { name, error } of await this.#routes.each(method)) {
      errors.push(error);
      this.#logger.error(`Backend "${name}" failed to ${method}`, error);
    }
    if (errors.length === 1 && earlier !== undefined) throw earlier;
    if (errors.length > 0) {
      throw new AggregateError(errors, `Cannot ${method} the routing tree: ${errors.length} backend(s) failed`);
    }
  }
}
