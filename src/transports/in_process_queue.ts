/**
 * The default queue transport: a bounded in-memory queue consumed in batches
 * on later turns of the event loop.
 *
 * @module
 */

import * as v from "valibot";
import { type Expect, options, parseOptions, positiveInteger, type SameType } from "../_schema.ts";
import type { QueueConsumer, QueueMessage, QueueTransport } from "./transport.ts";

/** How long the consumer loop runs before it yields to the event loop, in milliseconds. */
const SLICE_MS = 5;

/** Options of {@linkcode InProcessQueue}. */
export interface InProcessQueueOptions {
  /** The most messages held (waiting, delayed for a retry, or in delivery). @default 10000 */
  capacity?: number;
  /** The most messages handed to the consumer at once. @default 500 */
  batchSize?: number;
  /** The most batches in delivery at once, so a sink that batches its own writes is kept busy. @default 4 */
  concurrency?: number;
}

/** The schema of {@linkcode InProcessQueueOptions}, which its constructor checks. */
export const inProcessQueueOptions = /* @__PURE__ */ (() =>
  options({
    capacity: v.optional(positiveInteger(), 10_000),
    batchSize: v.optional(positiveInteger(), 500),
    concurrency: v.optional(positiveInteger(), 4),
  }))();
type _SameOptions = Expect<SameType<v.InferInput<typeof inProcessQueueOptions>, InProcessQueueOptions>>;

/**
 * A bounded FIFO queue in this process. The consumer gets batches of up to
 * `batchSize` messages; between batches the queue yields to the event loop so
 * that producers are never starved.
 *
 * @example
 * ```ts
 * import { InProcessQueue, type QueueMessage } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const queue = new InProcessQueue({ capacity: 2 });
 * const seen: string[] = [];
 * queue.start(async (batch) => void seen.push(...batch.map((m) => m.event.name)));
 * const message = (name: string): QueueMessage => ({
 *   event: { id: name, name, timestamp: "", context: {}, data: {} },
 *   attempts: 0,
 * });
 * assert.equal(queue.enqueue(message("a")), true);
 * assert.equal(queue.enqueue(message("b")), true);
 * assert.equal(queue.enqueue(message("c")), false);
 * await queue.close();
 * assert.deepEqual(seen, ["a", "b"]);
 * ```
 */
export class InProcessQueue implements QueueTransport {
  /** The most messages held at once. */
  readonly capacity: number;
  readonly #batchSize: number;
  readonly #concurrency: number;
  #ready: QueueMessage[] = [];
  #head = 0;
  #inFlight = 0;
  #consumer: QueueConsumer | undefined;
  #scheduled: ReturnType<typeof setTimeout> | undefined;
  // Messages waiting for a retry, by their timer.
  readonly #delayed = new Map<ReturnType<typeof setTimeout>, QueueMessage>();
  #idle: (() => void)[] = [];
  #closed = false;
  #running = false;

  /**
   * Creates an empty queue.
   *
   * @throws {ImproperlyConfigured} If `capacity`, `batchSize` or `concurrency` is not a positive integer, or an
   * option is unknown.
   */
  constructor(options: InProcessQueueOptions = {}) {
    const o = parseOptions(inProcessQueueOptions, options, "InProcessQueue");
    this.capacity = o.capacity;
    this.#batchSize = o.batchSize;
    this.#concurrency = o.concurrency;
  }

  /** Messages waiting, delayed for a retry, or in delivery. */
  get depth(): number {
    return this.#ready.length - this.#head + this.#delayed.size + this.#inFlight;
  }

  /** Why the last refused message was refused. */
  lastRefusal: string | undefined;

  /** Accepts the message unless the queue is full or closed. */
  enqueue(message: QueueMessage): boolean {
    if (this.#closed || this.depth >= this.capacity) {
      this.lastRefusal = this.#closed ? "queue closed" : `queue full (capacity ${this.capacity})`;
      return false;
    }
    this.#ready.push(message);
    this.#schedule();
    return true;
  }

  /** Queues the message again after `delayMs`. */
  retry(message: QueueMessage, delayMs: number): void {
    const timer = setTimeout(() => {
      this.#delayed.delete(timer);
      this.#ready.push(message);
      this.#schedule();
    }, delayMs);
    this.#delayed.set(timer, message);
  }

  /** Removes and returns the messages waiting or delayed for a retry, and refuses new ones. */
  abandon(): QueueMessage[] {
    this.#closed = true;
    const abandoned = this.#ready.slice(this.#head);
    this.#ready = [];
    this.#head = 0;
    for (const [timer, message] of this.#delayed) {
      clearTimeout(timer);
      abandoned.push(message);
    }
    this.#delayed.clear();
    this.#notifyIdle();
    return abandoned;
  }

  /** Starts consuming. */
  start(consumer: QueueConsumer): void {
    if (this.#consumer !== undefined) throw new Error("Cannot start InProcessQueue: it has a consumer already");
    this.#consumer = consumer;
    this.#schedule();
  }

  /** Resolves when nothing is waiting, delayed or in delivery. */
  flush(): Promise<void> {
    if (this.depth === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Refuses new messages, then waits for the queue to drain (retries included). */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }

  #schedule(): void {
    if (this.#scheduled !== undefined || this.#running || this.#consumer === undefined) return;
    if (this.#ready.length === this.#head) return;
    // A macrotask, not a microtask: the producer's synchronous work runs first.
    this.#scheduled = setTimeout(() => this.#pump(), 0);
  }

  #take(): QueueMessage[] {
    const end = Math.min(this.#head + this.#batchSize, this.#ready.length);
    const batch = this.#ready.slice(this.#head, end);
    this.#head = end;
    if (this.#head === this.#ready.length) {
      this.#ready = [];
      this.#head = 0;
    } else if (this.#head > 4096) {
      this.#ready = this.#ready.slice(this.#head);
      this.#head = 0;
    }
    return batch;
  }

  // One consumer loop keeps up to `concurrency` batches in delivery, and
  // yields to the event loop every few milliseconds so producers and I/O are
  // never starved. (A timer per batch would be clamped to 4 ms once nested,
  // capping the drain rate.)
  async #pump(): Promise<void> {
    this.#scheduled = undefined;
    this.#running = true;
    const active = new Set<Promise<void>>();
    let sliceStart = performance.now();
    try {
      while (this.#ready.length > this.#head || active.size > 0) {
        while (active.size < this.#concurrency && this.#ready.length > this.#head) {
          const batch = this.#take();
          this.#inFlight += batch.length;
          const delivery: Promise<void> = this.#consumer!(batch).catch(() => {}).finally(() => {
            this.#inFlight -= batch.length;
            active.delete(delivery);
            this.#notifyIdle();
          });
          active.add(delivery);
        }
        await Promise.race(active);
        if (performance.now() - sliceStart > SLICE_MS) {
          await new Promise((resolve) => setTimeout(resolve, 0));
          sliceStart = performance.now();
        }
      }
    } finally {
      this.#running = false;
      this.#notifyIdle();
    }
  }

  #notifyIdle(): void {
    if (this.depth !== 0) return;
    const idle = this.#idle;
    this.#idle = [];
    for (const resolve of idle) resolve();
  }
}
