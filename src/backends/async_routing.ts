/**
 * A router that filters at emit time and delivers later, through a queue,
 * with retries and dead letters: at-least-once, and nothing lost silently.
 *
 * @module
 */

import type { Backend, CloseOptions } from "../backend.ts";
import { Backoff, type BackoffOptions, backoffOptions } from "../_backoff.ts";
import * as v from "valibot";
import {
  backend,
  backends,
  type Expect,
  func,
  logger,
  must,
  nonEmptyString,
  nonNegativeNumber,
  options,
  parseOptions,
  positiveInteger,
  processors,
  type SameType,
  string,
} from "../_schema.ts";
import { PendingSet, within } from "../_pending.ts";
import { ProcessorChain } from "../_processor_chain.ts";
import { consoleLogger, type DiagnosticLogger } from "../diagnostics.ts";
import { restoreEvent, type TrackingEvent } from "../event.ts";
import { type BackendMetrics, emptyMetrics, type MetricsSnapshot } from "../metrics.ts";
import { DROP, type Processor } from "../processor.ts";
import { type DeliveryFailure, RoutingBackend } from "../routing.ts";
import { InProcessQueue } from "../transports/in_process_queue.ts";
import type { QueueMessage, QueueTransport } from "../transports/transport.ts";
import { replayDeadLetterFile } from "./_dead_letter_file.ts";
import { LoggerBackend } from "./logger.ts";

/** How recent a successful delivery must be for a filling queue to count as overload (see `saturation`). */
const DELIVERING_WINDOW_MS = 5_000;

/** What happens to an event the queue has no room for. */
export type OverflowPolicy = "dead_letter" | "drop_newest";

/** Why an event was dead-lettered; dead letters carry it as their `deadLetter` field. */
export interface DeadLetterInfo {
  /** The last error's message. */
  readonly error: string;
  /** Delivery attempts made (0 when the queue was full). */
  readonly attempts: number;
  /** The nested backend that failed, or this branch's name when the queue was full or closed. */
  readonly backend: string;
  /** When it was dead-lettered, ISO-8601 UTC. */
  readonly at: string;
}

/** An event as the dead-letter sink receives it: the original fields plus `deadLetter`. */
export type DeadLetter = TrackingEvent & { readonly deadLetter: DeadLetterInfo };

/** What {@linkcode AsyncRoutingBackend.replayDeadLetters} did. */
export interface ReplayReport {
  /** Dead letters queued again. */
  readonly replayed: number;
  /** Of those, events delivered (or, on a transport that delivers elsewhere, stored by the queue). */
  readonly delivered: number;
  /** Of those, events that failed again and are dead letters once more. */
  readonly deadLettered: number;
  /**
   * Of those, events that could be neither delivered nor dead-lettered again (nor stored by the queue): a
   * replayed file is kept for the next replay then; replayed letters given as an iterable are the caller's to keep.
   */
  readonly failed: number;
}

interface ReplayTally {
  delivered: number;
  deadLettered: number;
  failed: number;
}

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
  backoff?: BackoffOptions;
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
  /** How often, at most, queue overflow and dead letters are reported, in milliseconds. @default 60000 */
  reportIntervalMs?: number;
}

/** The schema of {@linkcode AsyncRoutingBackendOptions}: what the constructor and the `async_routing` ENGINE check. */
export const asyncRoutingOptions = /* @__PURE__ */ (() =>
  v.pipe(
    options({
      backends: v.optional(backends()),
      processors: v.optional(processors()),
      backendName: v.optional(string()),
      transport: v.optional(
        v.custom<QueueTransport>(
          (value) =>
            typeof (value as QueueTransport | null)?.enqueue === "function" &&
            typeof (value as QueueTransport).start === "function",
          must("a QueueTransport"),
        ),
      ),
      maxAttempts: v.optional(positiveInteger(), 5),
      backoff: v.optional(backoffOptions),
      deadLetter: v.optional(backend()),
      deadLetterDir: v.optional(nonEmptyString()),
      queueSize: v.optional(positiveInteger()),
      overflow: v.optional(
        v.picklist(["dead_letter", "drop_newest"], must('"dead_letter" or "drop_newest"')),
        "dead_letter",
      ),
      logger: v.optional(logger()),
      random: v.optional(func<() => number>()),
      reportIntervalMs: v.optional(nonNegativeNumber(), 60_000),
    }),
    v.forward(
      v.check(
        (o) => o.transport === undefined || o.queueSize === undefined,
        "sizes the default queue only: size a custom transport itself",
      ),
      ["queueSize"],
    ),
  ))();
type _SameOptions = Expect<SameType<v.InferInput<typeof asyncRoutingOptions>, AsyncRoutingBackendOptions>>;

function message(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function ignore(): void {}

/** Settles `message` once `first` (dead-letter writes of this attempt) and the retry's own outcome have. */
function after(first: Promise<unknown>, message: QueueMessage): QueueMessage["settle"] {
  const settle = message.settle;
  if (settle === undefined) return undefined;
  return (error) => void first.then(() => settle(error), (failure) => settle(error ?? failure));
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
 * It is three parts: the processors, run at emit; a {@linkcode QueueTransport};
 * and a consumer {@linkcode RoutingBackend} holding the nested backends, fed
 * by the transport. Delivery is at-least-once: a nested backend that throws
 * or rejects is retried, alone, with exponential backoff and jitter; after
 * `maxAttempts` the event goes to the dead-letter sink with the error. When
 * the queue is full, the overflow policy applies and every overflow is
 * counted and reported. `send` returns a promise that settles once the
 * event's fate is final (delivered to every nested backend, or written to the
 * dead letters; on a transport that delivers elsewhere, once the queue has
 * stored it). `flush()` and `close()` resolve once everything accepted has
 * been delivered or dead-lettered; `close({ deadlineMs })` dead-letters what
 * is left at the deadline. It works at any depth and in any tracker.
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
  /** The consumer side: the nested backends queued events are delivered to. */
  readonly consumer: RoutingBackend;
  readonly #chain: ProcessorChain;
  readonly #counters: BackendMetrics = emptyMetrics();
  readonly #logger: DiagnosticLogger;
  readonly #maxAttempts: number;
  readonly #backoff: Backoff;
  readonly #overflow: OverflowPolicy;
  readonly #reportIntervalMs: number;
  readonly #ownsDeadLetter: boolean;
  readonly #deadLetters = new PendingSet();
  // Messages handed to the consumer and not yet settled; a deadline dead-letters them.
  readonly #inDelivery = new Set<QueueMessage>();
  // Events a replay queued and not dead-lettered again (so far): what tells delivered from dead-lettered at the end.
  readonly #replaying = new WeakSet<TrackingEvent>();
  // The last attempt's outcome, and when one last succeeded: a queue that fills while deliveries succeed is
  // overload; one that fills while they fail (or before any succeeded) is a dead sink's.
  #failing = false;
  #lastDelivered = -Infinity;
  #unreportedOverflow = 0;
  #unreportedDeadLetters = 0;
  #lastReport = -Infinity;

  /**
   * Creates the branch and starts its consumer.
   *
   * @throws {ImproperlyConfigured} If an option is unknown or invalid: a backend, processor, the transport or
   * the dead-letter sink not usable, `overflow` unknown, `maxAttempts`, `queueSize` or a backoff delay out of range.
   */
  constructor(options: AsyncRoutingBackendOptions = {}) {
    const o = parseOptions(asyncRoutingOptions, options, "AsyncRoutingBackend");
    this.#logger = o.logger ?? consoleLogger;
    this.backendName = o.backendName || "async_routing";
    this.#chain = new ProcessorChain(this.#logger, this.#counters);
    this.consumer = new RoutingBackend({ backends: o.backends ?? {}, logger: this.#logger });
    this.#chain.addAll("AsyncRoutingBackend", o.processors ?? []);
    this.#maxAttempts = o.maxAttempts;
    this.#backoff = new Backoff("AsyncRoutingBackend.backoff", o.backoff, o.random);
    this.#overflow = o.overflow;
    this.#reportIntervalMs = o.reportIntervalMs;
    if (o.deadLetter !== undefined) {
      this.deadLetter = o.deadLetter;
      this.#ownsDeadLetter = false;
    } else {
      this.deadLetterPath = defaultDeadLetterPath(this.backendName, o.deadLetterDir);
      this.deadLetter = new LoggerBackend({
        name: `${this.backendName} dead letters`,
        path: this.deadLetterPath,
        maxEventSize: null,
        logger: this.#logger,
      });
      this.#ownsDeadLetter = true;
    }
    this.transport = o.transport ?? new InProcessQueue({ capacity: o.queueSize ?? 10_000 });
    this.transport.start((batch) => this.#consume(batch));
  }

  /** The nested backends, in the order they are called. */
  get backends(): ReadonlyMap<string, Backend> {
    return this.consumer.backends;
  }

  /** The processors run at emit. */
  get processors(): readonly Processor[] {
    return this.#chain.processors;
  }

  /** Adds a nested backend, or replaces the one of that name. See {@linkcode RoutingBackend.registerBackend}. */
  registerBackend(name: string, backend: Backend): void {
    this.consumer.registerBackend(name, backend);
  }

  /** Appends a processor. See {@linkcode RoutingBackend.registerProcessor}. */
  registerProcessor(processor: Processor): void {
    this.#chain.add(processor);
  }

  /** Runs the processors; returns the event to queue, or {@linkcode DROP}. */
  processEvent(event: TrackingEvent): TrackingEvent | typeof DROP {
    return this.#chain.run(event);
  }

  /**
   * Runs the processors now and queues the event for its nested backends.
   *
   * A processor that throws `EventRejected` sends the event to the
   * dead letters instead (`deadLetter.attempts` 0, `deadLetter.backend` this
   * branch, `deadLetter.error` the rejection's message).
   *
   * @returns `undefined` if a processor dropped it; otherwise a promise that
   *   resolves once the event is delivered or dead-lettered (or, on a transport
   *   that delivers elsewhere, stored by the queue), and rejects if even that failed.
   */
  send(event: TrackingEvent): Promise<void> | undefined {
    this.#counters.received++;
    const processed = this.#chain.empty ? event : this.#chain.run(event);
    if (processed === DROP) {
      // A processor's EventRejected (e.g. SchemaProcessor's on_invalid: dead_letter): to the dead letters.
      const rejection = this.#chain.takeRejection();
      if (rejection !== undefined) return this.#sendToDeadLetter(event, rejection, 0, this.backendName);
      this.#counters.dropped++;
      return undefined;
    }
    this.#counters.passed++;
    return this.#enqueue(processed, undefined);
  }

  /**
   * Delivers one queued message to the nested backends it is owed to, and
   * returns those that failed this attempt.
   */
  deliver(message: QueueMessage): Promise<readonly DeliveryFailure[]> {
    return this.consumer.deliverTo(message.event, message.targets);
  }

  /**
   * The delay before attempt `attempt + 1`: exponential from `backoff.initialMs`,
   * capped at `backoff.maxMs`, then jittered to 50–100 %.
   */
  backoffDelay(attempt: number): number {
    return this.#backoff.delay(attempt);
  }

  /**
   * Feeds dead letters back through this branch: each is queued again for the
   * nested backend that failed (or all of them, after an overflow), with its
   * attempts reset. By default replays the default dead-letter file; pass a
   * path, or an iterable of dead letters, to replay others. A file is claimed
   * (renamed) first and deleted only once every line is delivered or
   * dead-lettered again; a claimed file left by a crash is resumed; lines that
   * cannot be replayed go to `<name>.rejects.jsonl` beside it.
   *
   * @returns Once every replayed event is delivered or dead-lettered again: how many were queued again, and of
   *   those how many were delivered and how many failed again.
   * @throws {TypeError} If no source is given and the dead-letter sink is not the default file.
   */
  async replayDeadLetters(
    source?: string | Iterable<unknown> | AsyncIterable<unknown>,
  ): Promise<ReplayReport> {
    if (source === undefined) {
      if (this.deadLetterPath === undefined) {
        throw new TypeError(
          "Cannot replay dead letters: this branch has a custom dead-letter sink; pass a path or an iterable of dead letters",
        );
      }
      source = this.deadLetterPath;
    }
    const tally: ReplayTally = { delivered: 0, deadLettered: 0, failed: 0 };
    let replayed = 0;
    if (typeof source === "string") {
      // Dead letters still being written belong in the file before it is claimed; closing our own sink
      // also makes its next write reopen the file by name, so letters that fail again start a new file.
      if (this.#ownsDeadLetter && source === this.deadLetterPath) await this.deadLetter.close?.();
      else await this.deadLetter.flush?.();
      replayed = await replayDeadLetterFile(source, (letter, where) => this.#requeue(letter, where, tally), {
        logger: this.#logger,
        owner: `AsyncRoutingBackend "${this.backendName}"`,
      });
    } else {
      const queued: Promise<void>[] = [];
      const requeue = (letter: unknown) => {
        const settled = this.#requeue(letter, "a replayed dead letter", tally);
        if (settled !== false) queued.push(settled);
      };
      // A plain iterable is queued in one go, so that a transport sends it in batches rather than one by one.
      if (Symbol.iterator in source) { for (const letter of source) requeue(letter); }
      else for await (const letter of source) requeue(letter);
      replayed = queued.length;
      await Promise.allSettled(queued);
    }
    return { replayed, ...tally };
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
    const early = this.consumer.flush().catch(ignore);
    await this.transport.flush();
    await this.#deadLetters.settled();
    this.#report();
    await early;
    await this.#settle("flush", [this.consumer.flush(), this.deadLetter.flush?.()]);
  }

  /**
   * Stops accepting events and waits until everything accepted is delivered
   * or dead-lettered, then closes the nested backends and the default
   * dead-letter sink. With `deadlineMs`, whatever is still queued, waiting for
   * a retry or in delivery at the deadline is dead-lettered (and written)
   * instead, and the nested backends get what time is left to close.
   *
   * @throws {AggregateError} If a nested backend or the dead-letter sink failed to close.
   */
  async close(options: CloseOptions = {}): Promise<void> {
    const deadline = options.deadlineMs === undefined ? undefined : Date.now() + options.deadlineMs;
    const drained = (async () => {
      await this.transport.close();
      await this.#deadLetters.settled();
    })();
    if (deadline === undefined) await drained;
    else if (!(await within(drained, deadline - Date.now()))) await this.#abandon(options.deadlineMs!);
    this.#report();
    const remaining = deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
    const closing = this.consumer.close({ deadlineMs: remaining });
    // A nested backend that still hangs past the deadline is left behind: its events are dead letters already.
    const consumerClosed = remaining === undefined ? closing : within(closing, remaining).then((done) => {
      if (!done) {
        this.#logger.warn(
          `AsyncRoutingBackend "${this.backendName}": a nested backend was still closing at the deadline; it is left to finish`,
        );
      }
    });
    await this.#settle("close", [
      consumerClosed,
      this.#ownsDeadLetter ? this.deadLetter.close?.() : this.deadLetter.flush?.(),
    ]);
  }

  /**
   * How close this branch is to losing events, or to dead-lettering events
   * it could deliver. With `drop_newest`, how full the queue is. With
   * `dead_letter`: how full the queue is while its backends deliver (its
   * last attempt succeeded, within the last 5 s: the queue fills because
   * events come faster than they are taken, and an overflow would
   * dead-letter healthy events, so producers should slow down), but not
   * otherwise (a dead sink, or one not yet heard from: its events go to the
   * dead letters, and the rest of the tree must not be held up for it); and
   * at least its dead-letter sink's saturation.
   */
  saturation(): number {
    const fill = this.transport.depth / this.transport.capacity;
    if (this.#overflow === "drop_newest") return fill;
    const deadLetters = this.deadLetter.saturation?.() ?? 0;
    const delivering = !this.#failing && Date.now() - this.#lastDelivered < DELIVERING_WINDOW_MS;
    return delivering ? Math.max(fill, deadLetters) : deadLetters;
  }

  /** Adds this branch's counters under `path` and its nested backends' under `path/<name>`. */
  collectMetrics(path: string, into: MetricsSnapshot): void {
    this.consumer.collectMetrics(path, into);
    into[path] = { ...this.#counters, queueDepth: this.transport.depth };
  }

  #enqueue(event: TrackingEvent, targets: readonly string[] | undefined): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    promise.catch(ignore);
    const message: QueueMessage = {
      event,
      targets,
      attempts: 0,
      settle: (error) => error === undefined ? resolve() : reject(error),
    };
    if (!this.transport.enqueue(message)) this.#overflowed(message);
    return promise;
  }

  async #consume(batch: readonly QueueMessage[]): Promise<void> {
    await Promise.all(batch.map((message) => this.#attempt(message)));
  }

  // Not an async function: one promise per event less, on the path every event takes.
  #attempt(message: QueueMessage): Promise<void> {
    this.#inDelivery.add(message);
    let delivered: Promise<readonly DeliveryFailure[]>;
    try {
      delivered = this.deliver(message);
    } catch (error) {
      return Promise.resolve(this.#attempted(message, [{ backend: this.backendName, error }]));
    }
    return delivered.then(
      (failures) => this.#attempted(message, failures),
      (error) => this.#attempted(message, [{ backend: this.backendName, error }]),
    );
  }

  #attempted(message: QueueMessage, failures: readonly DeliveryFailure[]): void {
    // Abandoned at a shutdown deadline: it was dead-lettered meanwhile.
    if (!this.#inDelivery.delete(message)) return;
    this.#failing = failures.length > 0;
    if (failures.length === 0) {
      this.#lastDelivered = Date.now();
      this.#counters.delivered++;
      message.settle?.();
      return;
    }
    this.#counters.failed++;
    const attempts = message.attempts + 1;
    const retriable = attempts < this.#maxAttempts
      ? failures.filter((failure) => this.consumer.backends.has(failure.backend))
      : [];
    const written = failures.filter((failure) => !retriable.includes(failure)).map((failure) =>
      this.#sendToDeadLetter(message.event, failure.error, attempts, failure.backend)
    );
    const deadLettered = Promise.all(written);
    if (retriable.length === 0) {
      deadLettered.then(() => message.settle?.(), (error) => message.settle?.(error));
      return;
    }
    this.#counters.retried++;
    this.transport.retry(
      {
        event: message.event,
        targets: retriable.map((failure) => failure.backend),
        attempts,
        settle: written.length === 0 ? message.settle : after(deadLettered, message),
      },
      this.#backoff.delay(attempts),
    );
  }

  // The shutdown deadline: everything not yet delivered becomes a dead letter, written before close goes on.
  async #abandon(deadlineMs: number): Promise<void> {
    const left = [...this.transport.abandon(), ...this.#inDelivery];
    this.#inDelivery.clear();
    const reason = new Error(`not delivered within the shutdown deadline of ${deadlineMs} ms`);
    for (const message of left) {
      const written = this.#sendToDeadLetter(message.event, reason, message.attempts, this.backendName);
      written.then(() => message.settle?.(), (error) => message.settle?.(error));
    }
    if (left.length > 0) {
      this.#logger.warn(
        `AsyncRoutingBackend "${this.backendName}": ${left.length} event(s) not delivered by the shutdown deadline were dead-lettered`,
      );
    }
    await this.#deadLetters.settled();
  }

  #overflowed(message: QueueMessage): void {
    this.#unreportedOverflow++;
    if (this.#overflow === "dead_letter") {
      const reason = this.transport.lastRefusal ?? `queue full (capacity ${this.transport.capacity})`;
      this.#sendToDeadLetter(message.event, new RangeError(reason), 0, this.backendName)
        .then(() => message.settle?.(), (error) => message.settle?.(error));
    } else {
      this.#counters.dropped++;
      message.settle?.();
    }
    if (Date.now() - this.#lastReport >= this.#reportIntervalMs) this.#report();
  }

  #report(): void {
    if (this.#unreportedOverflow === 0 && this.#unreportedDeadLetters === 0) return;
    this.#lastReport = Date.now();
    if (this.#unreportedOverflow > 0) {
      this.#logger.warn(
        `AsyncRoutingBackend "${this.backendName}": the queue refused ${this.#unreportedOverflow} event(s) (last reason: ${
          this.transport.lastRefusal ?? `queue full (capacity ${this.transport.capacity})`
        }); they were ${
          this.#overflow === "dead_letter" ? "dead-lettered" : "dropped (overflow policy drop_newest)"
        } since the last report`,
      );
    }
    if (this.#unreportedDeadLetters > 0) {
      this.#logger.warn(
        `AsyncRoutingBackend "${this.backendName}": ${this.#unreportedDeadLetters} event(s) dead-lettered since the last report${
          this.deadLetterPath === undefined ? "" : ` (in ${this.deadLetterPath})`
        }`,
      );
    }
    this.#unreportedOverflow = 0;
    this.#unreportedDeadLetters = 0;
  }

  #sendToDeadLetter(event: TrackingEvent, error: unknown, attempts: number, backend: string): Promise<void> {
    this.#counters.deadLettered++;
    this.#replaying.delete(event);
    this.#unreportedDeadLetters++;
    if (Date.now() - this.#lastReport >= this.#reportIntervalMs) this.#report();
    const letter: DeadLetter = {
      id: event.id,
      name: event.name,
      timestamp: event.timestamp,
      context: event.context,
      data: event.data,
      deadLetter: { error: message(error), attempts, backend, at: new Date().toISOString() },
    };
    const lost = (sinkError: unknown) => {
      this.#logger.error(
        `AsyncRoutingBackend "${this.backendName}" cannot dead-letter event ${event.id} (${
          message(sinkError)
        }); the dead letter follows: ${JSON.stringify(letter)}`,
        sinkError,
      );
      throw sinkError;
    };
    let written: Promise<void>;
    try {
      written = Promise.resolve(this.deadLetter.send(letter)).then(undefined, lost);
    } catch (sinkError) {
      written = Promise.reject(sinkError).then(undefined, lost);
    }
    written.catch(ignore);
    this.#deadLetters.add(written);
    return written;
  }

  #requeue(letter: unknown, where: string, tally: ReplayTally): Promise<void> | false {
    let event: TrackingEvent;
    try {
      event = restoreEvent(letter);
    } catch (error) {
      this.#logger.error(
        `AsyncRoutingBackend "${this.backendName}" cannot replay ${where}: ${message(error)}; it is kept as: ${
          JSON.stringify(letter)
        }`,
        error,
      );
      return false;
    }
    const backend = (letter as { deadLetter?: { backend?: unknown } }).deadLetter?.backend;
    const targets = typeof backend === "string" && this.consumer.backends.has(backend) ? [backend] : undefined;
    this.#counters.received++;
    this.#counters.passed++;
    this.#replaying.add(event);
    const settled = this.#enqueue(event, targets).then(
      () => void (this.#replaying.delete(event) ? tally.delivered++ : tally.deadLettered++),
      (error) => {
        tally.failed++;
        throw error;
      },
    );
    settled.catch(ignore); // the caller may look at it only once the others are queued
    return settled;
  }

  async #settle(method: "flush" | "close", work: (Promise<void> | undefined)[]): Promise<void> {
    const names = ["nested backends", "dead letters"];
    const failures: { name: string; error: unknown }[] = [];
    (await Promise.allSettled(work)).forEach((result, i) => {
      if (result.status === "rejected") failures.push({ name: names[i], error: result.reason });
    });
    for (const { name, error } of failures) this.#logger.error(`Backend "${name}" failed to ${method}`, error);
    if (failures.length > 0) {
      throw new AggregateError(
        failures.map((failure) => failure.error),
        `Cannot ${method} AsyncRoutingBackend "${this.backendName}": ${failures.length} backend(s) failed`,
      );
    }
  }
}
