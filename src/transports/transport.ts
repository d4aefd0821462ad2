/**
 * Transport contracts: how an {@linkcode AsyncRoutingBackend} hands events to
 * its consumers (a queue), and how an {@linkcode EventBusBackend} fans them out
 * (a bus). In-process implementations are the defaults; Cloudflare Queues and
 * a Durable Object implement the same contracts at the edge.
 *
 * @module
 */

import type { TrackingEvent } from "../event.ts";

/** One queued delivery: an event and the nested backends it is still owed to. */
export interface QueueMessage {
  /** The processed event. */
  readonly event: TrackingEvent;
  /** Names of the nested backends still to deliver to; `undefined` means all of them. */
  readonly targets?: readonly string[];
  /** Delivery attempts made so far. */
  readonly attempts: number;
  /**
   * Called once, when the event's fate on this branch is final. It is local to
   * the process that enqueued the message and is never serialised. A transport
   * that delivers in this process leaves it to the router (called with no
   * argument once the event is delivered to every target or dead-lettered); a
   * transport that hands messages to another process (Cloudflare Queues) calls
   * it once the queue has stored the message, or with the error when it could
   * not.
   */
  readonly settle?: (error?: unknown) => void;
}

/** Called by a queue transport with a batch of messages to deliver. It never rejects. */
export type QueueConsumer = (batch: readonly QueueMessage[]) => Promise<void>;

/**
 * A bounded queue between an async router and its consumer.
 *
 * `enqueue` must not block: it accepts the message or refuses it (full), and
 * the router applies its overflow policy to refused messages.
 */
export interface QueueTransport {
  /** Accepts the message, or returns `false` if it cannot (full, closed, too large). */
  enqueue(message: QueueMessage): boolean;
  /** Why the last refused `enqueue` was refused, e.g. `queue full (capacity 10000)`. */
  readonly lastRefusal?: string;
  /** Queues the message again after `delayMs`, for a retry. It is never refused. */
  retry(message: QueueMessage, delayMs: number): void;
  /** Starts delivering queued messages to `consumer`. Called once. */
  start(consumer: QueueConsumer): void;
  /** Messages accepted and not yet consumed: waiting, delayed or in delivery. */
  readonly depth: number;
  /** The most messages the queue holds. */
  readonly capacity: number;
  /** Resolves when the queue is empty and nothing is in delivery. */
  flush(): Promise<void>;
  /** Flushes, then stops; later `enqueue` calls return `false`. */
  close(): Promise<void>;
  /**
   * Removes and returns every message still waiting or delayed for a retry
   * (not those in delivery), and refuses new ones: a bounded shutdown
   * dead-letters them.
   */
  abandon(): QueueMessage[];
}

/** Receives events published on a bus topic. */
export type BusHandler = (event: TrackingEvent) => void | Promise<void>;

/** A publish/subscribe channel between event-bus producers and consumers. */
export interface BusTransport {
  /** Publishes an event to every subscriber of the topic. */
  publish(topic: string, event: TrackingEvent): void | Promise<void>;
  /** Subscribes to a topic; returns the function that unsubscribes. */
  subscribe(topic: string, handler: BusHandler): () => void;
  /** Resolves when every published event has reached its subscribers. */
  flush?(): Promise<void>;
  /** Flushes, then releases resources. */
  close?(): Promise<void>;
}
