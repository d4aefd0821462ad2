/**
 * A router that filters at emit time and delivers later, through a queue,
 * with retries and dead letters: at-least-once, and nothing lost silently.
 *
 * @module
 */

import type { Backend } from "../backend.ts";
import { positiveInteger } from "../_checks.ts";
import { ProcessorChain } from "../_processor_chain.ts";
import { Routes } from "../_routes.ts";
import { consoleLogger, type DiagnosticLogger, typeName } from "../diagnostics.ts";
import { restoreEvent, type TrackingEvent } from "../event.ts";
import { type BackendMetrics, emptyMetrics, type MetricsSnapshot } from "../metrics.ts";
import { DROP, type Processor } from "../processor.ts";
import { InProcessQueue } from "../transports/in_process_queue.ts";
import type { QueueMessage, QueueTransport } from "../transports/transport.ts";
import { LoggerBackend } from "./logger.ts";

/** What happens to an event the queue has no room for. */
export type OverflowPolicy = "dead_letter" | "drop_newest";

/** Why an event was dead-lettered; dead letters carry it as their `deadLetter` field. */
export interface DeadLetterInfo {
  /** The last error's message. */
  readonly error: string;
  /** Delivery attempts made (0 when the queue was full). */
  readonly attempts: number;
  /** The nested backend that failed, or this branch's name when the queue was full. */
  readonly backend: string;
  /** When it was dead-lettered, ISO-8601 UTC. */
  readonly at: string;
}

/** An event as the dead-letter sink receives it: the original fields plus `deadLetter`. */
export type DeadLetter = TrackingEvent & { readonly deadLetter: DeadLetterInfo };

/** Options of {@linkcode AsyncRoutingBackend}. */
export interface AsyncRoutingBackendOptions {
  /** The nested backends that receive events asynchronously. @default {} */
  backends?: Readonly<Record<string, Backend>> | ReadonlyMap<string, Backend>;
  /** Processors run synchronously at emit, before the event is queued. @default [] */
  processors?: readonly Processor[];
  /** This branch's name, used in dead letters, diagnostics and the default dead-letter file. @default "async_routing" */
  backendName?: string;
  /** The queue. @default an InProcessQueue of `queueSize` */
  transport?: QueueTransport;
  /** Delivery attempts per event and nested backend before it is dead-lettered. @default 5 */
  maxAttempts?: number;
  /** Exponential backoff between attempts, with jitter (each delay is 50–100 % of the nominal one). @default { initialMs: 100, maxMs: 30000 } */
  backoff?: { initialMs?: number; maxMs?: number };
  /**
   * Receives events that could not be delivered, as {@linkcode DeadLetter}s.
   * @default a LoggerBackend appending to `<deadLetterDir>/<backendName>.jsonl`
   */
  deadLetter?: Backend;
  /** The folder of the default dead-letter file. @default "data/dead-letters" */
  deadLetterDir?: string;
  /** Capacity of the default in-process queue. @default 10000 */
  queueSize?: number;
  /** What to do with events the queue has no room for; each is counted. @default "dead_letter" */
  overflow?: OverflowPolicy;
  /** Where failures, retries exhausted and overflow are reported. @default consoleLogger */
  logger?: DiagnosticLogger;
  /** Source of randomness for the backoff jitter. @default Math.random */
  random?: () => number;
  /** How often, at most, queue overflow is reported, in milliseconds. @default 60000 */
  reportIntervalMs?: number;
}

function nonNegative(name: string, value: number): number {
  if (typeof value !== "number" || !(value >= 0) || !Number.isFinite(value)) {
    throw new RangeError(
      `Cannot create AsyncRoutingBackend as '${name}' must be a non-negative number: current value is ${value}`,
    );
  }
  return value;
}

function message(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/**
 * The default dead-letter file of a branch: `<dir>/<backendName>.jsonl`, the
 * name made safe for a file name.
 *
 * @example
 * ```ts
 * import { defaultDeadLetterPath } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * assert.equal(defaultDeadLetterPath("caliper"), "data/dead-letters/caliper.jsonl");
 * ```
 */
export function defaultDeadLetterPath(backendName: string, dir = "data/dead-letters"): string {
  return `${dir}/${backendName.replace(/[^A-Za-z0-9._-]+/g, "_") || "async_routing"}.jsonl`;
}

/**
 * A router whose processors run synchronously at emit (so filtering happens
 * before the queue, as the reference's users asked) and whose nested backends
 * receive accepted events later, through a {@linkcode QueueTransport}.
 *
 * Delivery is at-least-once: a nested backend that throws or rejects is
 * retried, alone, with exponential backoff and jitter; after `maxAttempts`
 * the event goes to the dead-letter sink with the error. When the queue is
 * full, the overflow policy applies and every overflow is counted and
 * reported. `flush()` and `close()` resolve once everything accepted has been
 * delivered or dead-lettered. It works at any depth and in any tracker.
 *
 * @example Deliver in the background, then flush
 * ```ts
 * import { AsyncRoutingBackend, InMemoryBackend, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * const tracker = new Tracker({
 *   backends: { caliper: new AsyncRoutingBackend({ backendName: "caliper", backends: { sink } }) },
 * });
 * tracker.emit("edx.course.enrollment.activated");
 * assert.equal(sink.events.length, 0);
 * await tracker.flush();
 * assert.equal(sink.events.length, 1);
 * await tracker.close();
 * ```
 */
export class AsyncRoutingBackend implements Backend {
  /** This branch's name. */
  readonly backendName: string;
  /** The queue between emit and delivery. */
  readonly transport: QueueTransport;
  /** Where undeliverable events go. */
  readonly deadLetter: Backend;
  /** The default dead-letter file, when {@linkcode AsyncRoutingBackend.deadLetter} is the default sink. */
  readonly deadLetterPath: string | undefined;
  readonly #routes = new Routes();
  readonly #chain: ProcessorChain;
  readonly #counters: BackendMetrics = emptyMetrics();
  readonly #logger: DiagnosticLogger;
  readonly #maxAttempts: number;
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #overflow: OverflowPolicy;
  readonly #random: () => number;
  readonly #reportIntervalMs: number;
  readonly #ownsDeadLetter: boolean;
  readonly #deadLetterPending = new Set<Promise<void>>();
  #unreportedOverflow = 0;
  #lastOverflowReport = -Infinity;

  /**
   * Creates the branch and starts its consumer.
   *
   * @throws {TypeError} If a backend, processor, the transport or the dead-letter sink is not usable, or `overflow` is unknown.
   * @throws {RangeError} If `maxAttempts`, `queueSize` or a backoff delay is out of range.
   */
  constructor(options: AsyncRoutingBackendOptions = {}) {
    this.#logger = options.logger ?? consoleLogger;
    this.backendName = options.backendName || "async_routing";
    this.#chain = new ProcessorChain(this.#logger, this.#counters);
    this.#routes.registerAll("AsyncRoutingBackend", options.backends ?? {});
    this.#chain.addAll("AsyncRoutingBackend", options.processors ?? []);
    this.#maxAttempts = positiveInteger("AsyncRoutingBackend", "maxAttempts", options.maxAttempts ?? 5);
    this.#initialMs = nonNegative("backoff.initialMs", options.backoff?.initialMs ?? 100);
    this.#maxMs = nonNegative("backoff.maxMs", options.backoff?.maxMs ?? 30_000);
    this.#overflow = options.overflow ?? "dead_letter";
    if (this.#overflow !== "dead_letter" && this.#overflow !== "drop_newest") {
      throw new TypeError(
        `Cannot create AsyncRoutingBackend: unknown overflow policy "${this.#overflow}" (expected "dead_letter" or "drop_newest")`,
      );
    }
    this.#random = options.random ?? Math.random;
    this.#reportIntervalMs = options.reportIntervalMs ?? 60_000;
    if (options.deadLetter !== undefined) {
      if (typeof options.deadLetter?.send !== "function") {
        throw new TypeError(
          `Cannot create AsyncRoutingBackend: 'deadLetter' must be a backend, got ${typeName(options.deadLetter)}`,
        );
      }
      this.deadLetter = options.deadLetter;
      this.#ownsDeadLetter = false;
    } else {
      this.deadLetterPath = defaultDeadLetterPath(this.backendName, options.deadLetterDir);
      this.deadLetter = new LoggerBackend({
        name: `${this.backendName} dead letters`,
        path: this.deadLetterPath,
        maxEventSize: null,
        logger: this.#logger,
      });
      this.#ownsDeadLetter = true;
    }
    if (options.transport !== undefined) {
      if (options.queueSize !== undefined) {
        throw new TypeError(
          "Cannot create AsyncRoutingBackend: 'queueSize' sizes the default queue; size a custom 'transport' itself",
        );
      }
      if (typeof options.transport?.enqueue !== "function" || typeof options.transport.start !== "function") {
        throw new TypeError(
          `Cannot create AsyncRoutingBackend: 'transport' must be a QueueTransport, got ${typeName(options.transport)}`,
        );
      }
      this.transport = options.transport;
    } else {
      this.transport = new InProcessQueue({
        capacity: positiveInteger("AsyncRoutingBackend", "queueSize", options.queueSize ?? 10_000),
      });
    }
    this.transport.start((batch) => this.#consume(batch));
  }

  /** The nested backends, in the order they are called. */
  get backends(): ReadonlyMap<string, Backend> {
    return this.#routes.backends;
  }

  /** The processors run at emit. */
  get processors(): readonly Processor[] {
    return this.#chain.processors;
  }

  /** Adds a nested backend, or replaces the one of that name. See {@linkcode RoutingBackend.registerBackend}. */
  registerBackend(name: string, backend: Backend): void {
    this.#routes.register(name, backend);
  }

  /** Appends a processor. See {@linkcode RoutingBackend.registerProcessor}. */
  registerProcessor(processor: Processor): void {
    this.#chain.add(processor);
  }

  /** Runs the processors; returns the event to queue, or {@linkcode DROP}. */
  processEvent(event: TrackingEvent): TrackingEvent | typeof DROP {
    return this.#chain.run(event);
  }

  /** Runs the processors now and queues the event for its nested backends. */
  send(event: TrackingEvent): void {
    this.#counters.received++;
    const processed = this.#chain.empty ? event : this.#chain.run(event);
    if (processed === DROP) {
      this.#counters.dropped++;
      return;
    }
    this.#counters.passed++;
    if (!this.transport.enqueue({ event: processed, attempts: 0 })) this.#overflowed(processed);
  }

  /**
   * Delivers one queued message to the nested backends it is owed to. Used by
   * the consumer of any transport (the in-process queue, or a Worker's queue
   * handler); returns the backends that failed this attempt.
   */
  async deliver(message: QueueMessage): Promise<{ backend: string; error: unknown }[]> {
    const routes = message.targets === undefined
      ? this.#routes.list
      : message.targets.map((name) => this.#routes.get(name) ?? name);
    const failures: { backend: string; error: unknown }[] = [];
    let pending: Promise<void>[] | undefined;
    for (const route of routes) {
      if (typeof route === "string") {
        failures.push({ backend: route, error: new Error(`no nested backend "${route}"`) });
        continue;
      }
      route.counters.received++;
      const failed = (error: unknown) => {
        route.counters.failed++;
        failures.push({ backend: route.name, error });
      };
      try {
        const result = route.backend.send(message.event);
        // Synchronous backends take no promise round trip.
        if (result === undefined || typeof result.then !== "function") route.counters.delivered++;
        else (pending ??= []).push(result.then(() => void route.counters.delivered++, failed));
      } catch (error) {
        failed(error);
      }
    }
    if (pending !== undefined) await Promise.all(pending);
    return failures;
  }

  /**
   * The delay before attempt `attempt + 1`: exponential from `backoff.initialMs`,
   * capped at `backoff.maxMs`, then jittered to 50–100 %.
   */
  backoffDelay(attempt: number): number {
    const nominal = Math.min(this.#maxMs, this.#initialMs * 2 ** (attempt - 1));
    return nominal / 2 + this.#random() * (nominal / 2);
  }

  /**
   * Feeds dead letters back through this branch: each is queued again for the
   * nested backend that failed (or all of them, after an overflow), with its
   * attempts reset. By default reads and removes the default dead-letter file;
   * pass a path, or an iterable of dead letters, to replay others.
   *
   * @returns How many events were queued again.
   * @throws {TypeError} If no source is given and the dead-letter sink is not the default file.
   */
  async replayDeadLetters(
    source?: string | Iterable<unknown> | AsyncIterable<unknown>,
  ): Promise<number> {
    if (source === undefined) {
      if (this.deadLetterPath === undefined) {
        throw new TypeError(
          "Cannot replay dead letters: this branch has a custom dead-letter sink; pass a path or an iterable of dead letters",
        );
      }
      source = this.deadLetterPath;
    }
    if (typeof source === "string") return await this.#replayFile(source);
    let replayed = 0;
    for await (const letter of source) if (this.#requeue(letter, "a replayed dead letter")) replayed++;
    return replayed;
  }

  /**
   * Resolves when everything accepted has been delivered or dead-lettered,
   * and the nested backends and the dead-letter sink have flushed.
   *
   * @throws {AggregateError} If a nested backend or the dead-letter sink failed to flush.
   */
  async flush(): Promise<void> {
    // Nested backends flush while the queue drains: a batching sink resolves
    // its sends only when it writes, and flush() makes it write now.
    const early = this.#routes.each("flush");
    await this.transport.flush();
    while (this.#deadLetterPending.size > 0) await Promise.allSettled([...this.#deadLetterPending]);
    if (this.#unreportedOverflow > 0) this.#reportOverflow();
    await early;
    const failures = await this.#routes.each("flush");
    try {
      await this.deadLetter.flush?.();
    } catch (error) {
      failures.push({ name: "dead letters", error });
    }
    this.#throwIfFailed("flush", failures);
  }

  /**
   * Stops accepting events, waits until everything accepted is delivered or
   * dead-lettered, then closes the nested backends and the default dead-letter sink.
   *
   * @throws {AggregateError} If a nested backend or the dead-letter sink failed to close.
   */
  async close(): Promise<void> {
    await this.transport.close();
    await this.flush().catch(() => {});
    const failures = await this.#routes.each("close");
    try {
      if (this.#ownsDeadLetter) await this.deadLetter.close?.();
      else await this.deadLetter.flush?.();
    } catch (error) {
      failures.push({ name: "dead letters", error });
    }
    this.#throwIfFailed("close", failures);
  }

  /** How full the queue is (depth / capacity), or a nested backend's saturation if higher. */
  saturation(): number {
    return Math.max(this.transport.depth / this.transport.capacity, this.#routes.saturation());
  }

  /** Adds this branch's counters under `path` and its nested backends' under `path/<name>`. */
  collectMetrics(path: string, into: MetricsSnapshot): void {
    into[path] = { ...this.#counters, queueDepth: this.transport.depth };
    this.#routes.collectMetrics(path, into);
  }

  async #consume(batch: readonly QueueMessage[]): Promise<void> {
    await Promise.all(batch.map((message) => this.#attempt(message)));
  }

  async #attempt(message: QueueMessage): Promise<void> {
    let failures;
    try {
      failures = await this.deliver(message);
    } catch (error) {
      failures = [{ backend: this.backendName, error }];
    }
    if (failures.length === 0) {
      this.#counters.delivered++;
      return;
    }
    this.#counters.failed++;
    const attempts = message.attempts + 1;
    const retriable = attempts < this.#maxAttempts
      ? failures.filter((failure) => this.#routes.get(failure.backend) !== undefined)
      : [];
    for (const failure of failures) {
      if (!retriable.includes(failure)) this.#sendToDeadLetter(message.event, failure.error, attempts, failure.backend);
    }
    if (retriable.length > 0) {
      this.#counters.retried++;
      this.transport.retry(
        { event: message.event, targets: retriable.map((failure) => failure.backend), attempts },
        this.backoffDelay(attempts),
      );
    }
  }

  #overflowed(event: TrackingEvent): void {
    this.#unreportedOverflow++;
    if (this.#overflow === "dead_letter") {
      const reason = this.transport.lastRefusal ?? `queue full (capacity ${this.transport.capacity})`;
      this.#sendToDeadLetter(event, new RangeError(reason), 0, this.backendName);
    } else {
      this.#counters.dropped++;
    }
    if (Date.now() - this.#lastOverflowReport >= this.#reportIntervalMs) this.#reportOverflow();
  }

  #reportOverflow(): void {
    this.#lastOverflowReport = Date.now();
    this.#logger.warn(
      `AsyncRoutingBackend "${this.backendName}": the queue refused ${this.#unreportedOverflow} event(s) (last reason: ${
        this.transport.lastRefusal ?? `queue full (capacity ${this.transport.capacity})`
      }); they were ${
        this.#overflow === "dead_letter" ? "dead-lettered" : "dropped (overflow policy drop_newest)"
      } since the last report`,
    );
    this.#unreportedOverflow = 0;
  }

  #sendToDeadLetter(event: TrackingEvent, error: unknown, attempts: number, backend: string): void {
    this.#counters.deadLettered++;
    const letter: DeadLetter = {
      id: event.id,
      name: event.name,
      timestamp: event.timestamp,
      context: event.context,
      data: event.data,
      deadLetter: { error: message(error), attempts, backend, at: new Date().toISOString() },
    };
    const lost = (sinkError: unknown) =>
      this.#logger.error(
        `AsyncRoutingBackend "${this.backendName}" cannot dead-letter event ${event.id} (${
          message(sinkError)
        }); the dead letter follows: ${JSON.stringify(letter)}`,
        sinkError,
      );
    try {
      const result = this.deadLetter.send(letter);
      if (result !== undefined && typeof result.then === "function") {
        const pending = result.then(undefined, lost).finally(() => this.#deadLetterPending.delete(pending));
        this.#deadLetterPending.add(pending);
      }
    } catch (sinkError) {
      lost(sinkError);
    }
  }

  #requeue(letter: unknown, what: string): boolean {
    let event: TrackingEvent;
    try {
      event = restoreEvent(letter);
    } catch (error) {
      this.#logger.error(
        `AsyncRoutingBackend "${this.backendName}" cannot replay ${what}: ${message(error)}; it is kept as: ${
          JSON.stringify(letter)
        }`,
        error,
      );
      return false;
    }
    const backend = (letter as { deadLetter?: { backend?: unknown } }).deadLetter?.backend;
    const targets = typeof backend === "string" && this.#routes.get(backend) !== undefined ? [backend] : undefined;
    this.#counters.received++;
    this.#counters.passed++;
    if (!this.transport.enqueue({ event, targets, attempts: 0 })) this.#overflowed(event);
    return true;
  }

  async #replayFile(path: string): Promise<number> {
    const fs = await import("node:fs/promises");
    await this.deadLetter.flush?.();
    const claimed = `${path}.replaying-${Date.now()}`;
    try {
      await fs.rename(path, claimed);
    } catch (error) {
      if ((error as { code?: string }).code === "ENOENT") return 0;
      throw error;
    }
    const text = await fs.readFile(claimed, "utf8");
    let replayed = 0;
    for (const [i, line] of text.split("\n").entries()) {
      if (line.trim() === "") continue;
      let letter: unknown;
      try {
        letter = JSON.parse(line);
      } catch (error) {
        this.#logger.error(
          `AsyncRoutingBackend "${this.backendName}" cannot replay line ${i + 1} of ${path}: ${
            message(error)
          }; it is kept as: ${line}`,
          error,
        );
        continue;
      }
      if (this.#requeue(letter, `line ${i + 1} of ${path}`)) replayed++;
    }
    await fs.rm(claimed);
    return replayed;
  }

  #throwIfFailed(method: string, failures: { name: string; error: unknown }[]): void {
    for (const { name, error } of failures) this.#logger.error(`Backend "${name}" failed to ${method}`, error);
    if (failures.length > 0) {
      throw new AggregateError(
        failures.map((failure) => failure.error),
        `Cannot ${method} AsyncRoutingBackend "${this.backendName}": ${failures.length} backend(s) failed`,
      );
    }
  }
}
