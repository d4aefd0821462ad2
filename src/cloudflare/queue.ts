/**
 * A queue transport over Cloudflare Queues: an {@linkcode AsyncRoutingBackend}
 * in a Worker sends its events to a Queue, and the Worker's `queue()` handler
 * delivers them to the nested backends, acking each message and retrying
 * failures with the branch's backoff; messages that keep failing reach the
 * Queue's dead-letter queue.
 *
 * Only structural types of the Workers runtime are used, so this module
 * loads (and is tested) anywhere.
 *
 * @module
 */

import { Backoff, type BackoffOptions } from "../_backoff.ts";
import { PendingSet } from "../_pending.ts";
import { consoleLogger, type DiagnosticLogger, typeName } from "../diagnostics.ts";
import { restoreEvent, serializeEvent, type TrackingEvent } from "../event.ts";
import type { QueueConsumer, QueueMessage, QueueTransport } from "../transports/transport.ts";

/** One message to send, as `Queue.sendBatch` takes it. */
export interface CloudflareQueueSendRequest {
  /** The message body. */
  body: unknown;
  /** How the body is encoded; this transport sends `"json"`. */
  contentType?: "text" | "bytes" | "json" | "v8";
  /** Seconds before the message can be delivered. */
  delaySeconds?: number;
}

/** The producer binding of a Cloudflare Queue (`env.<binding>`): the part this transport uses. */
export interface CloudflareQueue {
  /** Sends up to 100 messages (256 KB in all) at once. */
  sendBatch(messages: Iterable<CloudflareQueueSendRequest>): Promise<unknown>;
}

/** One message of a batch, as a Worker's `queue()` handler receives it: the part this transport uses. */
export interface CloudflareQueueMessage {
  /** The platform's message id. */
  readonly id: string;
  /** The body, decoded. */
  readonly body: unknown;
  /** Deliveries so far, this one included (1 on the first). */
  readonly attempts: number;
  /** Marks the message delivered. */
  ack(): void;
  /** Delivers the message again later; past the consumer's `max_retries` it goes to the dead-letter queue. */
  retry(options?: { delaySeconds?: number }): void;
}

/** A batch, as a Worker's `queue()` handler receives it: the part this transport uses. */
export interface CloudflareMessageBatch {
  /** The name of the queue the batch comes from. */
  readonly queue: string;
  /** The messages. */
  readonly messages: readonly CloudflareQueueMessage[];
}

/** Options of {@linkcode CloudflareQueueTransport}. */
export interface CloudflareQueueTransportOptions {
  /** The Queue producer binding. */
  queue: CloudflareQueue;
  /**
   * Which branch the messages belong to: the branch's configuration path
   * (`backends.tracking_logs`), the same in every isolate. The consumer uses it
   * to hand each message to the right branch.
   */
  path: string;
  /** The most messages waiting to be sent or being sent; beyond it `enqueue` refuses. @default 1000 */
  capacity?: number;
  /** Where send failures and unreadable messages are reported. @default consoleLogger */
  logger?: DiagnosticLogger;
  /** Calls of `sendBatch` per batch before its messages are given up (each `settle`d with the error). @default 3 */
  sendAttempts?: number;
  /** The waits between those calls; `{ initialMs: 0 }` does not wait (tests). @default { initialMs: 100, maxMs: 1000 } */
  sendBackoff?: BackoffOptions;
  /**
   * The names of the branch's nested backends: what a message with no
   * `targets` is owed to. With them, a retry of only some of those backends
   * is sent as a new message for just those; without them, such a message is
   * always retried whole by the platform. The Worker passes the branch's
   * `backends.keys()`; `undefined` means not known (yet).
   */
  backendNames?: () => Iterable<string> | undefined;
}

/** The largest message body Cloudflare Queues accepts, in bytes of JSON. */
export const MAX_MESSAGE_BYTES = 128_000;
/** The most messages one `sendBatch` call may carry. */
export const MAX_BATCH_MESSAGES = 100;
/** The most bytes one `sendBatch` call may carry. */
export const MAX_BATCH_BYTES = 256_000;
/** The longest delay Cloudflare Queues accepts, in seconds (12 hours). */
export const MAX_DELAY_SECONDS = 43_200;

// What the platform adds to each message of a batch, estimated.
const MESSAGE_OVERHEAD_BYTES = 100;

interface Outgoing {
  readonly body: Envelope;
  readonly bytes: number;
  readonly delaySeconds: number;
  /** The router's message: what `abandon` gives back, and whose `settle` learns the outcome. */
  readonly message: QueueMessage;
  /**
   * The Queue message in delivery this one replaces (a retry of fewer
   * targets): acked once this one is stored, retried whole if it cannot be.
   */
  readonly replaces?: CloudflareQueueMessage;
}

/** A Queue message being delivered by this isolate, and the targets its envelope names. */
interface Delivering {
  readonly message: CloudflareQueueMessage;
  readonly targets: readonly string[] | undefined;
}

function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      bytes += 1;
      continue;
    }
    // Any other unit is 3 bytes, and so is a lone surrogate (sent as U+FFFD); a
    // surrogate pair is 2 units and 4 bytes: 2 more either way, once per pair.
    bytes += 2;
    const next = text.charCodeAt(i + 1);
    if (c >= 0xd800 && c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) i++;
  }
  return bytes;
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function settle(message: QueueMessage, error?: unknown): void {
  try {
    if (error === undefined) message.settle?.();
    else message.settle?.(error);
  } catch {
    // The router's callback; it does not throw, and a throw must not stop the other messages.
  }
}

/**
 * The message body: the branch's path, the attempts made before it was
 * queued, the nested backends it is owed to, and the event.
 */
interface Envelope {
  path: string;
  attempts: number;
  targets?: string[];
  event: unknown;
}

function readEnvelope(body: unknown): Envelope {
  const envelope = body as Partial<Envelope> | null;
  if (typeof envelope !== "object" || envelope === null || typeof envelope.path !== "string") {
    throw new TypeError(`expected an object with a string 'path', got ${typeName(body)}`);
  }
  if (!Number.isInteger(envelope.attempts) || envelope.attempts! < 0) {
    throw new TypeError(`'attempts' must be a non-negative integer: current value is ${String(envelope.attempts)}`);
  }
  if (
    envelope.targets !== undefined &&
    !(Array.isArray(envelope.targets) && envelope.targets.every((name) => typeof name === "string"))
  ) {
    throw new TypeError("'targets' must be an array of backend names");
  }
  return envelope as Envelope;
}

/**
 * A {@linkcode QueueTransport} over a Cloudflare Queue.
 *
 * Producer side: `enqueue` buffers the message and sends the buffer with
 * `sendBatch` on a later microtask, in calls of at most 100 messages and
 * 256 KB. An event whose message would exceed 128 KB is refused (`enqueue`
 * returns `false`, and the branch's overflow policy dead-letters it, counted),
 * as is any message beyond `capacity`. Once `sendBatch` has stored a message,
 * its `settle()` is called, so the branch's `send` promise resolves: a Worker
 * answers 202 only then. A failed `sendBatch` is tried `sendAttempts` times
 * (3) with `sendBackoff` between calls; messages it still cannot send are
 * logged whole, counted in {@linkcode CloudflareQueueTransport.lost}, and
 * `settle`d with the error, so the branch's `send` promise rejects (the
 * Worker answers 503). `flush()` resolves when everything is sent.
 *
 * Consumer side: {@linkcode CloudflareQueueTransport.receive} gives the
 * messages of a batch to the branch. A delivered message is acked. A failed
 * one is retried with the branch's backoff (rounded up to whole seconds): when
 * every backend it was owed to failed, by the platform
 * (`retry({ delaySeconds })`), and past the consumer's `max_retries` the
 * platform moves it to the dead-letter queue, provided the branch's
 * `maxAttempts` is larger than `max_retries + 1` (otherwise the branch
 * dead-letters it to its own sink and the message is acked). When only some
 * of them failed, the message is acked and a new one, owed to those backends
 * only, is sent with that delay, so that the others do not receive the event
 * again; only if that send fails is the whole message retried by the platform
 * (at-least-once: sinks should ignore an event id they have stored).
 *
 * @example Send and receive through a fake Queue
 * ```ts
 * import { AsyncRoutingBackend, InMemoryBackend, Tracker } from "@edx/event-tracking";
 * import {
 *   type CloudflareQueueMessage,
 *   type CloudflareQueueSendRequest,
 *   CloudflareQueueTransport,
 * } from "@edx/event-tracking/cloudflare";
 * import assert from "node:assert/strict";
 *
 * const sent: CloudflareQueueSendRequest[] = [];
 * const transport = new CloudflareQueueTransport({
 *   queue: { sendBatch: async (messages) => void sent.push(...messages) },
 *   path: "backends.logs",
 * });
 * const sink = new InMemoryBackend();
 * const tracker = new Tracker({ backends: { logs: new AsyncRoutingBackend({ transport, backends: { sink } }) } });
 * // The promise resolves once the Queue has stored the event.
 * await tracker.send(tracker.createEvent("edx.ui.click"));
 * assert.equal(sent.length, 1);
 *
 * // What the Worker's queue() handler does with the batch:
 * const acked: string[] = [];
 * const message: CloudflareQueueMessage = {
 *   id: "m1",
 *   body: JSON.parse(JSON.stringify(sent[0].body)),
 *   attempts: 1,
 *   ack: () => void acked.push("m1"),
 *   retry: () => {},
 * };
 * await transport.receive([message]);
 * assert.deepEqual(sink.events.map((e) => e.name), ["edx.ui.click"]);
 * assert.deepEqual(acked, ["m1"]);
 * ```
 */
export class CloudflareQueueTransport implements QueueTransport {
  /** The branch's configuration path, carried by every message. */
  readonly path: string;
  /** The most messages waiting to be sent or being sent. */
  readonly capacity: number;
  readonly #queue: CloudflareQueue;
  readonly #logger: DiagnosticLogger;
  readonly #pathJson: string;
  readonly #sendAttempts: number;
  readonly #sendBackoff: Backoff;
  readonly #backendNames: (() => Iterable<string> | undefined) | undefined;
  #buffer: Outgoing[] = [];
  #sending = 0;
  readonly #work = new PendingSet();
  // Sends of retries that replace a message in delivery; receive() waits for them, so the ack or retry is in time.
  readonly #replacements = new PendingSet();
  readonly #inDelivery = new Map<TrackingEvent, Delivering>();
  #consumer: QueueConsumer | undefined;
  #closed = false;
  #lost = 0;

  /**
   * Creates the transport; it does no I/O.
   *
   * @throws {TypeError} If `queue` has no `sendBatch` or `path` is empty.
   * @throws {RangeError} If `capacity` or `sendAttempts` is not a positive integer.
   * @throws {ImproperlyConfigured} If a `sendBackoff` delay is negative or an option of it unknown.
   */
  constructor(options: CloudflareQueueTransportOptions) {
    if (typeof options?.queue?.sendBatch !== "function") {
      throw new TypeError(
        `Cannot create CloudflareQueueTransport: 'queue' must be a Queue binding, got ${typeName(options?.queue)}`,
      );
    }
    if (typeof options.path !== "string" || options.path === "") {
      throw new TypeError("Cannot create CloudflareQueueTransport: 'path' must be a non-empty string");
    }
    const capacity = options.capacity ?? 1000;
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(
        `Cannot create CloudflareQueueTransport as 'capacity' must be a positive integer: current value is ${capacity}`,
      );
    }
    const sendAttempts = options.sendAttempts ?? 3;
    if (!Number.isInteger(sendAttempts) || sendAttempts < 1) {
      throw new RangeError(
        `Cannot create CloudflareQueueTransport as 'sendAttempts' must be a positive integer: current value is ${sendAttempts}`,
      );
    }
    this.#queue = options.queue;
    this.path = options.path;
    this.#pathJson = JSON.stringify(options.path);
    this.capacity = capacity;
    this.#logger = options.logger ?? consoleLogger;
    this.#sendAttempts = sendAttempts;
    this.#sendBackoff = new Backoff("CloudflareQueueTransport", {
      initialMs: 100,
      maxMs: 1_000,
      ...options.sendBackoff,
    });
    this.#backendNames = options.backendNames;
  }

  /** Messages waiting to be sent, being sent, or being delivered by this isolate. */
  get depth(): number {
    return this.#buffer.length + this.#sending + this.#inDelivery.size;
  }

  /** Messages that could not be sent to the Queue (each was logged whole). */
  get lost(): number {
    return this.#lost;
  }

  /** Why the last refused message was refused. */
  lastRefusal: string | undefined;

  /** Buffers the message for the next `sendBatch`; refuses it when full, closed, or over 128 KB. */
  enqueue(message: QueueMessage): boolean {
    if (this.#closed || this.#buffer.length + this.#sending >= this.capacity) {
      this.lastRefusal = this.#closed ? "queue closed" : `queue full (capacity ${this.capacity})`;
      return false;
    }
    return this.#push(message, 0);
  }

  /**
   * Retries a message after `delayMs` (rounded up to whole seconds). One being
   * delivered by {@linkcode CloudflareQueueTransport.receive} is retried by
   * the platform (`retry({ delaySeconds })`) when it is owed to the same
   * backends as before; when it is owed to fewer, the Queue message is acked
   * and a new one for those backends is sent with that delay (the platform
   * retry is the fallback if that send fails). Any other message is sent
   * again with that delay.
   */
  retry(message: QueueMessage, delayMs: number): void {
    const delaySeconds = Math.min(MAX_DELAY_SECONDS, Math.max(0, Math.ceil(delayMs / 1000)));
    const delivering = this.#inDelivery.get(message.event);
    if (delivering !== undefined) {
      this.#inDelivery.delete(message.event);
      if (!this.#narrows(delivering.targets, message.targets)) {
        delivering.message.retry({ delaySeconds });
        settle(message);
        return;
      }
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#replacements.add(promise);
      const replacement: QueueMessage = {
        event: message.event,
        targets: message.targets,
        attempts: message.attempts,
        settle: (error) => {
          resolve();
          if (error === undefined) {
            delivering.message.ack();
          } else {
            this.#logger.warn(
              `CloudflareQueueTransport "${this.path}" cannot send the retry of event ${message.event.id} to ${
                message.targets!.join(", ")
              } (${describe(error)}); message ${delivering.message.id} is retried whole instead`,
            );
            delivering.message.retry({ delaySeconds });
          }
          // Either way the Queue holds the event.
          settle(message);
        },
      };
      if (!this.#push(replacement, delaySeconds, delivering.message)) {
        replacement.settle!(new RangeError(this.lastRefusal));
      }
      return;
    }
    if (!this.#push(message, delaySeconds)) {
      this.#lost++;
      this.#logger.error(
        `CloudflareQueueTransport "${this.path}" cannot retry event ${message.event.id}: its message is over ${MAX_MESSAGE_BYTES} bytes; the event follows: ${
          serializeEvent(message.event)
        }`,
      );
      settle(message, new RangeError(this.lastRefusal));
    }
  }

  /**
   * Registers the branch's consumer, which {@linkcode CloudflareQueueTransport.receive} calls.
   *
   * @throws {Error} If a consumer is registered already.
   */
  start(consumer: QueueConsumer): void {
    if (this.#consumer !== undefined) {
      throw new Error(`Cannot start CloudflareQueueTransport "${this.path}": it has a consumer already`);
    }
    this.#consumer = consumer;
  }

  /**
   * Delivers messages of a Queue batch that carry this transport's path:
   * restores each event, gives them to the branch's consumer, then acks each
   * message the branch did not retry, and waits until the retries that
   * replace a message are sent (or have fallen back to the platform retry).
   * An unreadable message is logged and retried, so that it ends in the
   * dead-letter queue.
   *
   * @throws {Error} If no consumer is registered (no branch uses this transport).
   */
  async receive(messages: readonly CloudflareQueueMessage[]): Promise<void> {
    const consumer = this.#consumer;
    if (consumer === undefined) {
      throw new Error(
        `Cannot receive messages on CloudflareQueueTransport "${this.path}": no AsyncRoutingBackend uses it`,
      );
    }
    const batch: QueueMessage[] = [];
    for (const message of messages) {
      let queued: QueueMessage;
      try {
        const envelope = readEnvelope(message.body);
        if (envelope.path !== this.path) {
          throw new TypeError(`it belongs to "${envelope.path}", not "${this.path}"`);
        }
        queued = {
          event: restoreEvent(envelope.event),
          targets: envelope.targets,
          attempts: envelope.attempts + Math.max(0, message.attempts - 1),
        };
      } catch (error) {
        this.#logger.error(
          `CloudflareQueueTransport "${this.path}" cannot read message ${message.id} (${
            describe(error)
          }); it is retried until it reaches the dead-letter queue`,
          error,
        );
        message.retry();
        continue;
      }
      this.#inDelivery.set(queued.event, { message, targets: queued.targets });
      batch.push(queued);
    }
    const delivery = this.#deliver(consumer, batch);
    this.#track(delivery);
    await delivery;
    await this.#replacements.settled();
  }

  /** Resolves when every buffered message is sent and every delivery in this isolate is settled. */
  flush(): Promise<void> {
    return this.#work.settled();
  }

  /** Refuses new messages, then flushes. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }

  /**
   * Refuses new messages, and removes and returns those buffered and not yet
   * handed to `sendBatch` (a bounded shutdown dead-letters them). Retries
   * that replace a Queue message in delivery stay: they settle that message.
   */
  abandon(): QueueMessage[] {
    this.#closed = true;
    const abandoned = this.#buffer.filter((outgoing) => outgoing.replaces === undefined);
    this.#buffer = this.#buffer.filter((outgoing) => outgoing.replaces !== undefined);
    return abandoned.map((outgoing) => outgoing.message);
  }

  // Whether a retry owed to `retried` is owed to fewer backends than the delivery of `owed`.
  #narrows(owed: readonly string[] | undefined, retried: readonly string[] | undefined): boolean {
    if (retried === undefined) return false;
    let all: Iterable<string> | undefined = owed;
    if (all === undefined) {
      try {
        all = this.#backendNames?.();
      } catch (error) {
        this.#logger.error(`CloudflareQueueTransport "${this.path}": 'backendNames' failed`, error);
      }
    }
    if (all === undefined) return false;
    for (const name of all) if (!retried.includes(name)) return true;
    return false;
  }

  async #deliver(consumer: QueueConsumer, batch: QueueMessage[]): Promise<void> {
    let failure: unknown;
    try {
      await consumer(batch);
    } catch (error) {
      failure = error;
      this.#logger.error(`CloudflareQueueTransport "${this.path}": the consumer failed; its batch is retried`, error);
    }
    for (const { event } of batch) {
      const delivering = this.#inDelivery.get(event);
      if (delivering === undefined) continue;
      this.#inDelivery.delete(event);
      if (failure === undefined) delivering.message.ack();
      else delivering.message.retry();
    }
  }

  #push(message: QueueMessage, delaySeconds: number, replaces?: CloudflareQueueMessage): boolean {
    const { event, attempts, targets } = message;
    // The size is that of the JSON the Queue will store, counted from the event's cached JSON.
    const json = serializeEvent(event);
    const head = `{"path":${this.#pathJson},"attempts":${attempts}${
      targets === undefined ? "" : `,"targets":${JSON.stringify(targets)}`
    },"event":`;
    const length = head.length + json.length + 1;
    const bytes = length * 3 <= MAX_MESSAGE_BYTES ? length : utf8Length(head) + utf8Length(json) + 1;
    if (bytes > MAX_MESSAGE_BYTES) {
      this.lastRefusal = `message of ${bytes} bytes, over the ${MAX_MESSAGE_BYTES}-byte limit of Cloudflare Queues`;
      this.#logger.warn(
        `CloudflareQueueTransport "${this.path}" refuses event ${event.id} ("${event.name}"): ${this.lastRefusal}`,
      );
      return false;
    }
    const body: Envelope = targets === undefined
      ? { path: this.path, attempts, event }
      : { path: this.path, attempts, targets: [...targets], event };
    if (this.#buffer.length === 0) this.#track(Promise.resolve().then(() => this.#sendBuffer()));
    this.#buffer.push({ body, bytes, delaySeconds, message, replaces });
    return true;
  }

  #track(work: Promise<void>): void {
    this.#work.add(work.catch((error) => {
      this.#logger.error(`CloudflareQueueTransport "${this.path}" failed unexpectedly`, error);
    }));
  }

  async #sendBuffer(): Promise<void> {
    const messages = this.#buffer;
    this.#buffer = [];
    this.#sending += messages.length;
    let start = 0;
    while (start < messages.length) {
      let end = start;
      let bytes = 0;
      while (
        end < messages.length && end - start < MAX_BATCH_MESSAGES &&
        bytes + messages[end].bytes + MESSAGE_OVERHEAD_BYTES <= MAX_BATCH_BYTES
      ) {
        bytes += messages[end].bytes + MESSAGE_OVERHEAD_BYTES;
        end++;
      }
      const chunk = messages.slice(start, end);
      try {
        await this.#sendChunk(chunk);
      } finally {
        this.#sending -= chunk.length;
      }
      start = end;
    }
  }

  async #sendChunk(chunk: Outgoing[]): Promise<void> {
    const requests = chunk.map(({ body, delaySeconds }): CloudflareQueueSendRequest => ({
      body,
      contentType: "json",
      ...(delaySeconds > 0 ? { delaySeconds } : {}),
    }));
    let error: unknown;
    for (let attempt = 1;; attempt++) {
      try {
        await this.#queue.sendBatch(requests);
        for (const outgoing of chunk) settle(outgoing.message);
        return;
      } catch (failure) {
        error = failure ?? new Error("sendBatch rejected without a reason");
      }
      if (attempt >= this.#sendAttempts) break;
      await this.#sendBackoff.wait(attempt);
    }
    // Retries that replace a message in delivery fall back to the platform's retry of it: not lost.
    const lost = chunk.filter((outgoing) => outgoing.replaces === undefined);
    if (lost.length > 0) {
      this.#lost += lost.length;
      this.#logger.error(
        `CloudflareQueueTransport "${this.path}" lost ${lost.length} message(s): sendBatch failed ${this.#sendAttempts} times (${
          describe(error)
        }); the messages follow:\n${lost.map((outgoing) => JSON.stringify(outgoing.body)).join("\n")}`,
        error,
      );
    }
    for (const outgoing of chunk) settle(outgoing.message, error);
  }
}

/**
 * Hands each message of a Worker's Queue batch to the transport of the branch
 * named in it (`path`), and waits for every delivery. A message for no known
 * branch (the configuration changed) or with no readable path is logged and
 * retried, so that it ends in the dead-letter queue.
 *
 * @example What a Worker's queue() handler does with a batch
 * ```ts
 * import { AsyncRoutingBackend, InMemoryBackend, Tracker } from "@edx/event-tracking";
 * import {
 *   type CloudflareQueueMessage,
 *   type CloudflareQueueSendRequest,
 *   CloudflareQueueTransport,
 *   receiveQueueBatch,
 * } from "@edx/event-tracking/cloudflare";
 * import assert from "node:assert/strict";
 *
 * const sent: CloudflareQueueSendRequest[] = [];
 * const transport = new CloudflareQueueTransport({
 *   queue: { sendBatch: async (messages) => void sent.push(...messages) },
 *   path: "backends.logs",
 * });
 * const sink = new InMemoryBackend();
 * const tracker = new Tracker({ backends: { logs: new AsyncRoutingBackend({ transport, backends: { sink } }) } });
 * await tracker.send(tracker.createEvent("edx.ui.click"));
 *
 * const acked: string[] = [];
 * const retried: string[] = [];
 * const message = (id: string, body: unknown): CloudflareQueueMessage => ({
 *   id,
 *   body,
 *   attempts: 1,
 *   ack: () => void acked.push(id),
 *   retry: () => void retried.push(id),
 * });
 * const messages = [message("m1", JSON.parse(JSON.stringify(sent[0].body))), message("m2", { path: "backends.gone" })];
 * await receiveQueueBatch({ queue: "edx-events", messages }, new Map([[transport.path, transport]]), {
 *   warn() {},
 *   error() {},
 * });
 * assert.deepEqual(sink.events.map((event) => event.name), ["edx.ui.click"]);
 * assert.deepEqual([acked, retried], [["m1"], ["m2"]]); // no branch at "backends.gone": left to the dead-letter queue
 * ```
 */
export async function receiveQueueBatch(
  batch: CloudflareMessageBatch,
  transports: ReadonlyMap<string, CloudflareQueueTransport>,
  logger: DiagnosticLogger = consoleLogger,
): Promise<void> {
  const byPath = new Map<CloudflareQueueTransport, CloudflareQueueMessage[]>();
  for (const message of batch.messages) {
    const path = (message.body as { path?: unknown } | null)?.path;
    const transport = typeof path === "string" ? transports.get(path) : undefined;
    if (transport === undefined) {
      logger.error(
        `Cannot deliver message ${message.id} of queue "${batch.queue}": ${
          typeof path === "string" ? `no async_routing branch at "${path}"` : "it has no 'path'"
        } (known: ${
          [...transports.keys()].map((p) => `"${p}"`).join(", ") || "none"
        }); it is retried until it reaches the dead-letter queue`,
      );
      message.retry();
      continue;
    }
    const messages = byPath.get(transport);
    if (messages === undefined) byPath.set(transport, [message]);
    else messages.push(message);
  }
  await Promise.all([...byPath].map(([transport, messages]) => transport.receive(messages)));
}
