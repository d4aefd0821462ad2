/**
 * The routing tree: a router runs its processors in order, then hands the
 * event to each of its backends in sorted name order. A branch that drops or
 * fails never affects its siblings.
 *
 * @module
 */

import type { Backend, CloseOptions } from "./backend.ts";
import { PendingSet, within } from "./_pending.ts";
import { ProcessorChain } from "./_processor_chain.ts";
import { consoleLogger, type DiagnosticLogger } from "./diagnostics.ts";
import type { TrackingEvent } from "./event.ts";
import { type BackendMetrics, emptyMetrics, type MetricsSnapshot } from "./metrics.ts";
import { type Route, Routes } from "./_routes.ts";
import { DROP, type Processor } from "./processor.ts";
import * as v from "valibot";
import { backends, type Expect, logger, options, parseOptions, processors, type SameType } from "./_schema.ts";

/** Options of {@linkcode RoutingBackend}. */
export interface RoutingBackendOptions {
  /** Child backends by name; they are called in sorted name order. @default {} */
  backends?: Readonly<Record<string, Backend>> | ReadonlyMap<string, Backend>;
  /** Processors run in order before the backends. @default [] */
  processors?: readonly Processor[];
  /** Where failures are reported. @default consoleLogger */
  logger?: DiagnosticLogger;
}

/** The schema of {@linkcode RoutingBackendOptions}: what the constructor and the `routing` ENGINE check. */
export const routingOptions = /* @__PURE__ */ (() =>
  options({
    backends: v.optional(backends()),
    processors: v.optional(processors()),
    logger: v.optional(logger()),
  }))();
type _SameOptions = Expect<SameType<v.InferInput<typeof routingOptions>, RoutingBackendOptions>>;

/** The result of {@linkcode RoutingBackend.processEvent}: the processed event, or {@linkcode DROP}. */
export type ProcessedEvent = TrackingEvent | typeof DROP;

/** A child backend that failed an event, and why. */
export interface DeliveryFailure {
  /** The child backend's name. */
  readonly backend: string;
  /** What it threw or rejected with. */
  readonly error: unknown;
}

function ignore(): void {}

// Shared by every delivery that failed nowhere: callers only read it.
const NO_FAILURES: readonly DeliveryFailure[] = Object.freeze([]);

/** One promise for many: settles when all have, rejects with the first failure; never left unhandled. */
function settleAll(waiting: Promise<void>[]): Promise<void> {
  const all = waiting.length === 1 ? waiting[0] : Promise.all(waiting).then(ignore);
  all.catch(ignore);
  return all;
}

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
  readonly #pending = new PendingSet();
  readonly #counters: BackendMetrics = emptyMetrics();
  readonly #logger: DiagnosticLogger;

  /**
   * Creates a router.
   *
   * @throws {ImproperlyConfigured} If a backend has no callable `send`, a processor is not callable, or an option is unknown.
   */
  constructor(options: RoutingBackendOptions = {}) {
    const checked = parseOptions(routingOptions, options, "RoutingBackend");
    this.#logger = checked.logger ?? consoleLogger;
    this.#chain = new ProcessorChain(this.#logger, this.#counters);
    this.#routes.registerAll("RoutingBackend", checked.backends ?? {});
    this.#chain.addAll("RoutingBackend", checked.processors ?? []);
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
   *
   * @returns `undefined` when every child took the event synchronously and
   *   none failed; otherwise a promise that settles once every child has, and
   *   rejects with the first failure (already logged and counted).
   */
  sendToBackends(event: TrackingEvent): Promise<void> | undefined {
    const routes = this.#routes.list;
    let waiting: Promise<void>[] | undefined;
    for (let i = 0; i < routes.length; i++) {
      const route = routes[i];
      route.counters.received++;
      try {
        const result = route.backend.send(event);
        if (result !== undefined && typeof result.then === "function") {
          (waiting ??= []).push(this.#track(route, event, result));
        } else route.counters.delivered++;
      } catch (error) {
        this.#failed(route, event, error);
        (waiting ??= []).push(Promise.reject(error));
      }
    }
    return waiting === undefined ? undefined : settleAll(waiting);
  }

  /**
   * Delivers the event to the named children (all of them when `targets` is
   * undefined) and resolves with those that failed, counted but not logged:
   * the caller decides whether a failure is retried or final. The consumer
   * side of an async branch uses it.
   */
  deliverTo(event: TrackingEvent, targets?: readonly string[]): Promise<readonly DeliveryFailure[]> {
    const routes = targets === undefined ? this.#routes.list : targets;
    // The usual case, one backend: one promise per event, no arrays or closures (this runs for every event).
    if (routes.length === 1 && typeof routes[0] !== "string") return this.#deliverToOne(routes[0], event);
    return this.#deliverToMany(event, routes);
  }

  #deliverToOne(route: Route, event: TrackingEvent): Promise<readonly DeliveryFailure[]> {
    route.counters.received++;
    let result: void | Promise<void>;
    try {
      result = route.backend.send(event);
    } catch (error) {
      route.counters.failed++;
      return Promise.resolve([{ backend: route.name, error }]);
    }
    if (result === undefined || typeof result.then !== "function") {
      route.counters.delivered++;
      return Promise.resolve(NO_FAILURES);
    }
    return result.then(() => {
      route.counters.delivered++;
      return NO_FAILURES;
    }, (error) => {
      route.counters.failed++;
      return [{ backend: route.name, error }];
    });
  }

  async #deliverToMany(event: TrackingEvent, routes: readonly (Route | string)[]): Promise<DeliveryFailure[]> {
    const failures: DeliveryFailure[] = [];
    let waiting: Promise<void>[] | undefined;
    for (let i = 0; i < routes.length; i++) {
      const target = routes[i];
      const route = typeof target === "string" ? this.#routes.get(target) : target;
      if (route === undefined) {
        failures.push({ backend: target as string, error: new Error(`no backend named "${target as string}"`) });
        continue;
      }
      route.counters.received++;
      const failed = (error: unknown) => {
        route.counters.failed++;
        failures.push({ backend: route.name, error });
      };
      try {
        const result = route.backend.send(event);
        if (result === undefined || typeof result.then !== "function") route.counters.delivered++;
        else (waiting ??= []).push(result.then(() => void route.counters.delivered++, failed));
      } catch (error) {
        failed(error);
      }
    }
    if (waiting !== undefined) await Promise.all(waiting);
    return failures;
  }

  /**
   * Processes the event, then sends it to the backends unless a processor
   * dropped it. See {@linkcode RoutingBackend.sendToBackends} for what it returns.
   */
  send(event: TrackingEvent): Promise<void> | undefined {
    this.#counters.received++;
    const processed = this.#chain.empty ? event : this.#chain.run(event);
    if (processed === DROP) {
      this.#counters.dropped++;
      return undefined;
    }
    this.#counters.passed++;
    return this.sendToBackends(processed);
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
    await this.#pending.settled();
    await flushing;
  }

  /**
   * Flushes, then closes every child backend. With `deadlineMs` the children
   * close at once, each within the deadline (async branches then dead-letter
   * what they could not deliver), and deliveries in progress are waited for
   * only until it.
   *
   * @throws {AggregateError} If a child backend failed to flush or close; the others are still closed.
   */
  async close(options: CloseOptions = {}): Promise<void> {
    let flushError: unknown;
    if (options.deadlineMs === undefined) {
      try {
        await this.flush();
      } catch (error) {
        flushError = error;
      }
      await this.#each("close", {}, flushError);
      return;
    }
    // Children close at once, each within the deadline (their deliveries are what this router waits for).
    const deadline = Date.now() + options.deadlineMs;
    try {
      await this.#each("close", options);
    } finally {
      await within(this.#pending.settled(), deadline - Date.now());
    }
  }

  /** The fullest child's saturation (0 when no child can lose events). */
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

  #failed(route: Route, event: TrackingEvent, error: unknown): void {
    route.counters.failed++;
    this.#logger.error(`Unable to send event "${event?.name}" to backend "${route.name}"`, error);
  }

  #track(route: Route, event: TrackingEvent, result: Promise<void>): Promise<void> {
    route.counters.queueDepth++;
    const settled = result.then(
      () => {
        route.counters.queueDepth--;
        route.counters.delivered++;
      },
      (error) => {
        route.counters.queueDepth--;
        this.#failed(route, event, error);
        throw error;
      },
    );
    this.#pending.add(settled);
    return settled;
  }

  async #each(method: "flush" | "close", options?: CloseOptions, earlier?: unknown): Promise<void> {
    const failures = await this.#routes.each(method, options);
    for (const { name, error } of failures) this.#logger.error(`Backend "${name}" failed to ${method}`, error);
    const errors = failures.map((failure) => failure.error);
    if (earlier !== undefined) {
      if (errors.length === 0) throw earlier;
      errors.unshift(earlier);
    }
    if (errors.length > 0) {
      throw new AggregateError(errors, `Cannot ${method} the routing tree: ${errors.length} backend(s) failed`);
    }
  }
}
