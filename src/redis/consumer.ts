/**
 * The consumer side of the Redis Streams bus: reads a stream through a
 * consumer group and delivers each tracking event to a tree, acknowledging
 * only what the tree accepted.
 *
 * @module
 */

import * as v from "valibot";
import { consoleLogger, type DiagnosticLogger } from "../diagnostics.ts";
import type { TrackingEvent } from "../event.ts";
import { logger, nonEmptyString, options, parseOptions, positiveInteger, string } from "../_schema.ts";
import { type Arg, isReplyError, RedisConnection } from "./_connection.ts";
import type { RedisClientOptionsAlias } from "./_types.ts";
import { ANALYTICS_TOPIC, decodeEntry, pythonIsoformat, streamName, UnusableEntryError } from "./wire.ts";

/** Where a consumer delivers events: a `Tracker`, or any backend. */
export interface DeliveryTarget {
  /**
   * Takes one event. Returning (or resolving) means the event is accepted —
   * delivered, or dead-lettered by an async branch — and its entry is
   * acknowledged; throwing or rejecting leaves it pending, to be delivered again.
   */
  send(event: TrackingEvent): void | Promise<void> | undefined;
}

/** Options of {@linkcode RedisStreamsConsumer}. */
export interface RedisStreamsConsumerOptions {
  /** Where events go: a tracker (`tracker.send`) or a backend. */
  target: DeliveryTarget;
  /** The consumer group (`consume_events -g`): consumers of one group share the stream. */
  group: string;
  /** This consumer's name in the group: keep it across restarts, so that a restart re-reads its own pending entries first. */
  consumer: string;
  /** The server: `EVENT_BUS_REDIS_CONNECTION_URL`. @default "redis://localhost:6379" */
  url?: string;
  /** More node-redis `createClient` options (TLS certificates, say). */
  clientOptions?: RedisClientOptionsAlias;
  /** The Open edX topic. @default "analytics" */
  topic?: string;
  /** `EVENT_BUS_TOPIC_PREFIX`: the stream is `<prefix>-<topic>`. @default no prefix */
  topicPrefix?: string;
  /**
   * Where a group that does not exist yet starts: `"0"`, the start of the
   * stream (nothing already in it is skipped), `"$"`, only entries added
   * from now on, or an entry id. An existing group keeps its position
   * whatever this says. @default "0"
   */
  from?: string;
  /** Entries read, delivered and acknowledged at a time. @default 100 */
  batchSize?: number;
  /** How long one read waits for new entries, in milliseconds: how soon `stop()` takes effect. @default 1000 */
  blockMs?: number;
  /** Entries pending this long (in milliseconds) on another consumer are claimed (`XAUTOCLAIM`): that consumer is taken for dead. @default 60000 */
  claimIdleMs?: number;
  /** How often stale entries are looked for, in milliseconds. @default 10000 */
  claimIntervalMs?: number;
  /** After a failed delivery, how long until this consumer's pending entries are delivered again, in milliseconds. @default 5000 */
  retryDelayMs?: number;
  /**
   * The most times an entry is delivered: one that failed this many times,
   * or that was delivered more often without being acknowledged (a consumer
   * that crashes on it), goes to the dead-letter stream. @default 5
   */
  maxDeliveries?: number;
  /** Where entries that cannot be delivered go, with the reason. @default "<stream>-dead-letters" */
  deadLetterStream?: string;
  /** How often the group's lag and pending count are read, in milliseconds. @default 5000 */
  lagIntervalMs?: number;
  /** How long connecting may take, in milliseconds. @default 5000 */
  connectTimeoutMs?: number;
  /** How long a command may take (beyond a read's block time), in milliseconds. @default 5000 */
  commandTimeoutMs?: number;
  /** Where problems are reported. @default consoleLogger */
  logger?: DiagnosticLogger;
}

const ENTRY_ID = /^(0|\$|\d+(-\d+)?)$/;

const consumerOptions = /* @__PURE__ */ (() =>
  options({
    target: v.custom<DeliveryTarget>(
      (value) => typeof (value as DeliveryTarget | null)?.send === "function",
      (issue) => `must be a tracker or a backend (an object with a send method), got ${String(issue.input)}`,
    ),
    group: nonEmptyString(),
    consumer: nonEmptyString(),
    url: v.optional(string()),
    clientOptions: v.optional(
      v.custom<RedisClientOptionsAlias>((value) => typeof value === "object" && value !== null),
    ),
    topic: v.optional(nonEmptyString()),
    topicPrefix: v.optional(string()),
    from: v.optional(v.pipe(string(), v.regex(ENTRY_ID, 'must be "0", "$" or an entry id'))),
    batchSize: v.optional(positiveInteger()),
    blockMs: v.optional(positiveInteger()),
    claimIdleMs: v.optional(positiveInteger()),
    claimIntervalMs: v.optional(positiveInteger()),
    retryDelayMs: v.optional(positiveInteger()),
    maxDeliveries: v.optional(positiveInteger()),
    deadLetterStream: v.optional(nonEmptyString()),
    lagIntervalMs: v.optional(positiveInteger()),
    connectTimeoutMs: v.optional(positiveInteger()),
    commandTimeoutMs: v.optional(positiveInteger()),
    logger: v.optional(logger()),
  }))();

/** What a consumer has done, and how far behind its group is. Counts are totals since the consumer was created. */
export interface RedisConsumerMetrics {
  /** Entries read: new ones, this consumer's pending ones read again, and claimed ones. */
  read: number;
  /** Entries whose event the target accepted, then acknowledged. */
  delivered: number;
  /** Deliveries the target failed (the entry stays pending and is delivered again). */
  failed: number;
  /** Entries moved to the dead-letter stream: undecodable, or delivered too many times. */
  deadLettered: number;
  /** Entries claimed from consumers that stopped (`XAUTOCLAIM`). */
  claimed: number;
  /** Pending entries whose data the stream had already trimmed (`MAXLEN ~`): acknowledged, and lost. */
  trimmed: number;
  /** Events handed to the target and not yet settled. */
  inFlight: number;
  /** Entries of the stream the group has not read yet (`XINFO GROUPS` lag), when last read; `null` when unknown. */
  lag: number | null;
  /** Entries the group has read and not acknowledged, when last read; `null` when unknown. */
  pending: number | null;
}

type Entry = [Uint8Array, Uint8Array[] | null];
type ReadReply = [Uint8Array, Entry[]][] | null;

const decoder = new TextDecoder();
const idText = (id: Uint8Array | string) => typeof id === "string" ? id : decoder.decode(id);

function compareIds(a: string, b: string): number {
  const [am, as = "0"] = a.split("-");
  const [bm, bs = "0"] = b.split("-");
  const major = BigInt(am) - BigInt(bm);
  if (major !== 0n) return major < 0n ? -1 : 1;
  const minor = BigInt(as) - BigInt(bs);
  return minor === 0n ? 0 : minor < 0n ? -1 : 1;
}

/** Error replies that trying again cannot fix: the key is not a stream, no permission, an old server. */
const FATAL_REPLIES = /^(WRONGTYPE|NOPERM|NOAUTH|WRONGPASS|ERR unknown command|ERR syntax)/;

function isFatal(error: unknown): boolean {
  return isReplyError(error) && FATAL_REPLIES.test(message(error));
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Reads an Open edX event-bus stream (written by {@linkcode RedisStreamsBus}
 * or by `edx-event-bus-redis`) through a consumer group and delivers each
 * entry's tracking event to a target — a tracker or a backend. Unlike the
 * Python consumer, it:
 *
 * - acknowledges an entry only once the target accepted its event (the
 *   promise `tracker.send` returns resolved: for a file sink, the line is
 *   written; for an async branch, delivered or dead-lettered); a failed
 *   delivery stays pending and is delivered again after `retryDelayMs`;
 * - re-reads its own pending entries first when it starts, and claims the
 *   entries other consumers left pending for `claimIdleMs` (`XAUTOCLAIM`);
 * - creates a missing group at the start of the stream (`from`, `"0"`) and
 *   never moves an existing one, so entries added while no consumer ran are
 *   read, not skipped;
 * - moves an entry it cannot decode, or one delivered `maxDeliveries` times
 *   without success, to `<stream>-dead-letters` with the original fields and
 *   `dead_letter_reason`, then acknowledges it and carries on;
 * - counts what it does, and reads the group's lag ({@linkcode metrics},
 *   {@linkcode toPrometheus});
 * - blocks for at most `blockMs` per read, so {@linkcode stop} takes effect
 *   within about a second.
 *
 * Several consumers of one group share the stream: each entry goes to one of
 * them (again to another only if the first stops before acknowledging it).
 * Delivery is at least once: an entry delivered but not yet acknowledged when
 * a consumer dies is delivered again, with the same event id.
 *
 * @example Create and stop without connecting
 * ```ts
 * import { InMemoryBackend } from "@edx/event-tracking";
 * import { RedisStreamsConsumer } from "@edx/event-tracking/redis";
 * import assert from "node:assert/strict";
 *
 * const consumer = new RedisStreamsConsumer({
 *   url: "redis://127.0.0.1:6379",
 *   topicPrefix: "dev",
 *   group: "event_tracking",
 *   consumer: "worker-1",
 *   target: new InMemoryBackend(),
 * });
 * assert.equal(consumer.stream, "dev-analytics");
 * assert.equal(consumer.deadLetterStream, "dev-analytics-dead-letters");
 * await consumer.stop(); // never started: nothing to wait for
 * ```
 */
export class RedisStreamsConsumer {
  /** The stream read. */
  readonly stream: string;
  /** The consumer group. */
  readonly group: string;
  /** This consumer's name. */
  readonly consumer: string;
  /** Where undeliverable entries go. */
  readonly deadLetterStream: string;
  readonly #target: DeliveryTarget;
  readonly #from: string;
  readonly #fromGiven: boolean;
  readonly #batchSize: number;
  readonly #blockMs: number;
  readonly #claimIdleMs: number;
  readonly #claimIntervalMs: number;
  readonly #retryDelayMs: number;
  readonly #maxDeliveries: number;
  readonly #lagIntervalMs: number;
  readonly #logger: DiagnosticLogger;
  readonly #connection: RedisConnection;
  #metricsConnection: RedisConnection | undefined;
  readonly #metrics: RedisConsumerMetrics = {
    read: 0,
    delivered: 0,
    failed: 0,
    deadLettered: 0,
    claimed: 0,
    trimmed: 0,
    inFlight: 0,
    lag: null,
    pending: null,
  };
  #running: Promise<void> | undefined;
  #stopping = false;
  #abandonDelivery: () => void = () => {};
  readonly #abandon = new Promise<void>((resolve) => this.#abandonDelivery = resolve);
  #wake: (() => void) | undefined;
  #nextPendingScan = 0;
  #nextClaim = 0;
  #nextLag = 0;
  #lastRefusalReport = -Infinity;

  /**
   * Creates the consumer; nothing connects until {@linkcode run}.
   *
   * @throws {ImproperlyConfigured} If an option is missing, unknown or invalid.
   */
  constructor(options: RedisStreamsConsumerOptions) {
    const o = parseOptions(consumerOptions, options, "RedisStreamsConsumer");
    this.#target = o.target;
    this.group = o.group;
    this.consumer = o.consumer;
    this.stream = streamName(o.topic ?? ANALYTICS_TOPIC, o.topicPrefix || undefined);
    this.deadLetterStream = o.deadLetterStream ?? `${this.stream}-dead-letters`;
    this.#from = o.from ?? "0";
    this.#fromGiven = o.from !== undefined;
    this.#batchSize = o.batchSize ?? 100;
    this.#blockMs = o.blockMs ?? 1_000;
    this.#claimIdleMs = o.claimIdleMs ?? 60_000;
    this.#claimIntervalMs = o.claimIntervalMs ?? 10_000;
    this.#retryDelayMs = o.retryDelayMs ?? 5_000;
    this.#maxDeliveries = o.maxDeliveries ?? 5;
    this.#lagIntervalMs = o.lagIntervalMs ?? 5_000;
    this.#logger = o.logger ?? consoleLogger;
    this.#connection = new RedisConnection({
      url: o.url,
      clientOptions: o.clientOptions,
      connectTimeoutMs: o.connectTimeoutMs,
      commandTimeoutMs: o.commandTimeoutMs,
      logger: this.#logger,
      label: `RedisStreamsConsumer ${this.group}/${this.consumer}`,
    });
  }

  /** The server, without credentials. */
  get server(): string {
    return this.#connection.server;
  }

  /** Whether {@linkcode run} is running. */
  get running(): boolean {
    return this.#running !== undefined;
  }

  /**
   * Consumes until {@linkcode stop} is called: creates the group if needed,
   * delivers this consumer's pending entries, claims stale ones, then reads
   * new entries. While the server is unreachable it waits and tries again.
   *
   * @returns A promise that resolves once the consumer has stopped and closed its connection.
   * @throws {Error} (rejects) If the server refuses the stream for good (`WRONGTYPE`: the key is not a
   *   stream; `NOPERM`/`NOAUTH`; a server without `XAUTOCLAIM`, before Redis 6.2), or if it is already running.
   *   Other refusals (`LOADING`, `READONLY`, `OOM`…) are reported and retried every second.
   */
  run(): Promise<void> {
    if (this.#running !== undefined) return Promise.reject(new Error("RedisStreamsConsumer is already running"));
    if (this.#stopping) return Promise.reject(new Error("RedisStreamsConsumer is stopped"));
    return this.#running = this.#loop().finally(async () => {
      await Promise.all([this.#connection.close(), this.#metricsConnection?.close()]);
    });
  }

  /**
   * Stops: no new reads; the batch in delivery is waited for up to
   * `timeoutMs`, then acknowledged as far as it was accepted (what is not
   * stays pending, for the next start or another consumer to deliver).
   * Resolves once {@linkcode run} has finished.
   */
  async stop(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    const running = this.#running;
    if (running === undefined) {
      await Promise.all([this.#connection.close(), this.#metricsConnection?.close()]);
      return;
    }
    const timer = setTimeout(() => this.#abandonDelivery(), options.timeoutMs ?? 5_000);
    try {
      await running.catch(() => {});
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The counts, and the lag and pending count last read (every
   * `lagIntervalMs` while running, or by {@linkcode refreshLag}).
   */
  metrics(): RedisConsumerMetrics {
    return { ...this.#metrics };
  }

  /**
   * Reads the group's lag and pending count now (`XINFO GROUPS`), on a
   * connection of its own (so a scrape never waits for a blocking read).
   *
   * @returns The metrics, updated.
   * @throws {Error} If the server cannot be reached.
   */
  async refreshLag(): Promise<RedisConsumerMetrics> {
    this.#metricsConnection ??= this.#connection.duplicate(`${this.#label} (metrics)`);
    const groups = await this.#metricsConnection.command<unknown[][]>(["XINFO", "GROUPS", this.stream]);
    for (const flat of groups) {
      const info = new Map<string, unknown>();
      for (let i = 0; i + 1 < flat.length; i += 2) info.set(String(flat[i]), flat[i + 1]);
      if (info.get("name") !== this.group) continue;
      const lag = info.get("lag");
      this.#metrics.lag = typeof lag === "number" ? lag : null;
      const pending = info.get("pending");
      this.#metrics.pending = typeof pending === "number" ? pending : null;
    }
    return this.metrics();
  }

  /**
   * The metrics in the Prometheus text format, labelled by stream, group
   * and consumer (`event_tracking_redis_consumer_delivered_total{…}`, `…_lag`).
   *
   * @example
   * ```ts
   * import { InMemoryBackend } from "@edx/event-tracking";
   * import { RedisStreamsConsumer } from "@edx/event-tracking/redis";
   * import assert from "node:assert/strict";
   *
   * const consumer = new RedisStreamsConsumer({ group: "g", consumer: "c", target: new InMemoryBackend() });
   * assert.match(
   *   consumer.toPrometheus(),
   *   /event_tracking_redis_consumer_delivered_total\{stream="analytics",group="g",consumer="c"\} 0/,
   * );
   * await consumer.stop();
   * ```
   */
  toPrometheus(prefix = "event_tracking_redis_consumer"): string {
    const label = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
    const labels = `{stream="${label(this.stream)}",group="${label(this.group)}",consumer="${label(this.consumer)}"}`;
    const m = this.#metrics;
    const rows: [string, string, "counter" | "gauge", number | null][] = [
      ["read", "Entries read", "counter", m.read],
      ["delivered", "Entries whose event the tree accepted, acknowledged", "counter", m.delivered],
      ["failed", "Deliveries the tree failed (left pending)", "counter", m.failed],
      ["dead_lettered", "Entries moved to the dead-letter stream", "counter", m.deadLettered],
      ["claimed", "Entries claimed from stopped consumers", "counter", m.claimed],
      ["trimmed", "Pending entries already trimmed from the stream (lost)", "counter", m.trimmed],
      ["in_flight", "Events in delivery", "gauge", m.inFlight],
      ["lag", "Entries of the stream the group has not read", "gauge", m.lag],
      ["pending", "Entries the group has read and not acknowledged", "gauge", m.pending],
    ];
    let out = "";
    for (const [key, help, type, value] of rows) {
      const name = `${prefix}_${key}${type === "counter" ? "_total" : ""}`;
      out += `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name}${labels} ${value ?? "NaN"}\n`;
    }
    return out;
  }

  async #loop(): Promise<void> {
    await this.#ensureGroup();
    while (!this.#stopping) {
      try {
        const now = Date.now();
        if (now >= this.#nextPendingScan) await this.#deliverOwnPending();
        if (!this.#stopping && now >= this.#nextClaim) await this.#claimStale();
        if (!this.#stopping && now >= this.#nextLag) {
          this.#nextLag = now + this.#lagIntervalMs;
          // Best effort: a metric that cannot be read now is unknown, not a reason to stop consuming.
          await this.refreshLag().catch(() => {
            this.#metrics.lag = null;
            this.#metrics.pending = null;
          });
        }
        if (!this.#stopping) await this.#readNew();
      } catch (error) {
        if (this.#stopping) break;
        if (isReplyError(error) && message(error).startsWith("NOGROUP")) {
          this.#logger.warn(`${this.#label}: the group is gone (${message(error)}); creating it again`);
          await this.#ensureGroup();
          continue;
        }
        if (isFatal(error)) throw error;
        // A connection problem (the connection reports it) or a passing refusal (LOADING, READONLY, OOM…):
        // afterwards, what this consumer read may be pending.
        if (isReplyError(error)) this.#reportRefusal(error);
        this.#nextPendingScan = 0;
        await this.#sleep(1_000);
      }
    }
  }

  get #label(): string {
    return `RedisStreamsConsumer ${this.stream}/${this.group}/${this.consumer}`;
  }

  async #ensureGroup(): Promise<void> {
    while (!this.#stopping) {
      try {
        await this.#connection.command(["XGROUP", "CREATE", this.stream, this.group, this.#from, "MKSTREAM"]);
        return;
      } catch (error) {
        if (isReplyError(error) && message(error).startsWith("BUSYGROUP")) {
          if (this.#fromGiven) {
            this.#logger.warn(
              `${this.#label}: the group exists, so it keeps its position ("from" applies to a new group only; XGROUP SETID moves one)`,
            );
          }
          return;
        }
        if (isFatal(error)) throw error;
        if (isReplyError(error)) this.#reportRefusal(error);
        await this.#sleep(1_000);
      }
    }
  }

  #reportRefusal(error: unknown): void {
    const now = Date.now();
    if (now - this.#lastRefusalReport < 30_000) return;
    this.#lastRefusalReport = now;
    this.#logger.error(`${this.#label}: Redis refused a command; trying again every second`, error);
  }

  async #deliverOwnPending(): Promise<void> {
    let cursor = "0-0";
    let failures = 0;
    while (!this.#stopping) {
      const entries = await this.#readGroup(cursor);
      if (entries.length === 0) break;
      cursor = idText(entries[entries.length - 1][0]);
      failures += await this.#handle(entries, true);
    }
    this.#nextPendingScan = failures > 0 ? Date.now() + this.#retryDelayMs : Infinity;
  }

  async #claimStale(): Promise<void> {
    let cursor = "0-0";
    do {
      const reply = await this.#connection.command<[Uint8Array, Entry[], Uint8Array[]?]>(
        [
          "XAUTOCLAIM",
          this.stream,
          this.group,
          this.consumer,
          String(this.#claimIdleMs),
          cursor,
          "COUNT",
          String(this.#batchSize),
        ],
        { binary: true },
      );
      cursor = idText(reply[0]);
      const deleted = reply[2] ?? [];
      if (deleted.length > 0) this.#trimmed(deleted.map(idText));
      const entries = reply[1].filter((entry) => entry !== null);
      this.#metrics.claimed += entries.length;
      if (entries.length > 0) {
        const failures = await this.#handle(entries, true);
        if (failures > 0) this.#nextPendingScan = Math.min(this.#nextPendingScan, Date.now() + this.#retryDelayMs);
      }
    } while (cursor !== "0-0" && !this.#stopping);
    this.#nextClaim = Date.now() + this.#claimIntervalMs;
  }

  async #readNew(): Promise<void> {
    const entries = await this.#readGroup(">", this.#blockMs);
    if (entries.length === 0) return;
    const failures = await this.#handle(entries, false);
    if (failures > 0) this.#nextPendingScan = Math.min(this.#nextPendingScan, Date.now() + this.#retryDelayMs);
  }

  /**
   * `XREADGROUP` of this consumer: from `cursor` in its own pending entries,
   * or `>` for entries never delivered (then blocking up to `blockMs`).
   */
  async #readGroup(cursor: string, blockMs?: number): Promise<Entry[]> {
    const block = blockMs === undefined ? [] : ["BLOCK", String(blockMs)];
    const reply = await this.#connection.command<ReadReply>(
      [
        "XREADGROUP",
        "GROUP",
        this.group,
        this.consumer,
        "COUNT",
        String(this.#batchSize),
        ...block,
        "STREAMS",
        this.stream,
        cursor,
      ],
      { binary: true, blockMs },
    );
    return reply?.[0]?.[1] ?? [];
  }

  #trimmed(ids: string[]): void {
    this.#metrics.trimmed += ids.length;
    this.#logger.error(
      `${this.#label}: ${ids.length} pending entr${
        ids.length === 1 ? "y was" : "ies were"
      } trimmed from the stream before delivery (MAXLEN ~): lost (${ids.slice(0, 5).join(", ")}${
        ids.length > 5 ? ", …" : ""
      }); raise EVENT_BUS_REDIS_STREAM_MAX_LEN or add consumers`,
    );
  }

  /** How many times each entry of the range was delivered to this consumer (`XPENDING`). */
  async #deliveryCounts(first: string, last: string, count: number): Promise<Map<string, number>> {
    const rows = await this.#connection.command<[string, string, number, number][]>([
      "XPENDING",
      this.stream,
      this.group,
      first,
      last,
      String(count),
      this.consumer,
    ]);
    return new Map(rows.map(([id, , , deliveries]) => [String(id), Number(deliveries)]));
  }

  /** Delivers a batch; acknowledges what was accepted, dead-letters what cannot be delivered. Returns the failures left pending. */
  async #handle(entries: Entry[], recovered: boolean): Promise<number> {
    this.#metrics.read += entries.length;
    const ids = entries.map(([id]) => idText(id));
    let counts: Map<string, number> | undefined;
    if (recovered) {
      const sorted = [...ids].sort(compareIds);
      counts = await this.#deliveryCounts(sorted[0], sorted[sorted.length - 1], Math.max(ids.length * 4, 100));
    }
    const acks: string[] = [];
    const trimmed: string[] = [];
    const deadLetters: { id: string; fields: Uint8Array[]; reason: string; deliveries: number }[] = [];
    const deliveries: { id: string; attempts: number; fields: Uint8Array[]; result: Promise<void> }[] = [];
    entries.forEach(([, fields], i) => {
      const id = ids[i];
      if (fields === null) return void trimmed.push(id);
      const attempts = counts?.get(id) ?? 1;
      if (attempts > this.#maxDeliveries) {
        deadLetters.push({
          id,
          fields,
          deliveries: attempts,
          reason:
            `delivered ${attempts} times without being acknowledged (more than maxDeliveries ${this.#maxDeliveries})`,
        });
        return;
      }
      let event: TrackingEvent;
      try {
        event = decodeEntry(fields).event;
      } catch (error) {
        if (!(error instanceof UnusableEntryError)) throw error;
        deadLetters.push({ id, fields, deliveries: attempts, reason: `cannot decode: ${error.message}` });
        return;
      }
      let result: Promise<void>;
      try {
        result = Promise.resolve(this.#target.send(event));
      } catch (error) {
        result = Promise.reject(error);
      }
      deliveries.push({ id, attempts, fields, result });
    });
    if (trimmed.length > 0) {
      this.#trimmed(trimmed);
      acks.push(...trimmed);
    }
    let failures = 0;
    if (deliveries.length > 0) {
      this.#metrics.inFlight += deliveries.length;
      const outcomes: (PromiseSettledResult<void> | undefined)[] = deliveries.map(() => undefined);
      const settled = Promise.all(deliveries.map((d, i) =>
        d.result.then(
          () => void (outcomes[i] = { status: "fulfilled", value: undefined }),
          (reason) => void (outcomes[i] = { status: "rejected", reason }),
        )
      ));
      const heartbeat = setInterval(() => this.#keepClaimed(deliveries.map((d) => d.id)), this.#claimIdleMs / 3);
      let abandoned = false;
      try {
        abandoned = await Promise.race([settled.then(() => false), this.#abandon.then(() => true)]);
      } finally {
        clearInterval(heartbeat);
        this.#metrics.inFlight -= deliveries.length;
      }
      if (abandoned) {
        // Stopping, and the deadline passed: what was accepted is acknowledged below, the rest stays pending.
        const left = outcomes.filter((outcome) => outcome === undefined).length;
        this.#logger.warn(`${this.#label}: stopped with ${left} event(s) still in delivery; they stay pending`);
      }
      outcomes.forEach((outcome, i) => {
        const d = deliveries[i];
        if (outcome === undefined) return;
        if (outcome.status === "fulfilled") {
          acks.push(d.id);
          this.#metrics.delivered++;
          return;
        }
        this.#metrics.failed++;
        if (d.attempts >= this.#maxDeliveries) {
          deadLetters.push({
            id: d.id,
            fields: d.fields,
            deliveries: d.attempts,
            reason: `delivery failed ${d.attempts} time(s): ${message(outcome.reason)}`,
          });
        } else {
          failures++;
          if (failures === 1) {
            this.#logger.error(
              `${this.#label}: delivery of entry ${d.id} failed (attempt ${d.attempts} of ${this.#maxDeliveries}); it stays pending`,
              outcome.reason,
            );
          }
        }
      });
    }
    await this.#ack(acks);
    for (const dead of deadLetters) await this.#deadLetter(dead);
    return failures;
  }

  #keepClaimed(ids: string[]): void {
    // Resets the entries' idle time, so that other consumers do not claim what is still in delivery here.
    this.#connection.command(["XCLAIM", this.stream, this.group, this.consumer, "0", ...ids, "JUSTID"]).catch(
      () => {},
    );
  }

  async #ack(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.#connection.command(["XACK", this.stream, this.group, ...ids]);
  }

  async #deadLetter(dead: { id: string; fields: Uint8Array[]; reason: string; deliveries: number }): Promise<void> {
    const fields: Arg[] = [
      ...dead.fields,
      "dead_letter_reason",
      dead.reason,
      "dead_letter_stream",
      this.stream,
      "dead_letter_id",
      dead.id,
      "dead_letter_group",
      this.group,
      "dead_letter_consumer",
      this.consumer,
      "dead_letter_deliveries",
      String(dead.deliveries),
      "dead_letter_time",
      pythonIsoformat(Date.now()),
    ];
    await this.#connection.transaction([
      ["XADD", this.deadLetterStream, "*", ...fields],
      ["XACK", this.stream, this.group, dead.id],
    ]);
    this.#metrics.deadLettered++;
    this.#logger.warn(`${this.#label}: entry ${dead.id} moved to ${this.deadLetterStream}: ${dead.reason}`);
  }

  #sleep(ms: number): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const wake = () => done();
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = wake;
    });
  }
}
