/**
 * Stores events in a MongoDB collection, in acknowledged, idempotent,
 * batched writes through the official `mongodb` driver.
 *
 * This is the only module that imports `mongodb`: import it from
 * `@edx/event-tracking/mongo`, so that users of the core never load the driver.
 *
 * @module
 */

import {
  BSON,
  type Collection,
  MongoBulkWriteError,
  MongoClient,
  type MongoClientOptions,
  MongoError,
  MongoInvalidArgumentError,
  MongoNetworkError,
  MongoOperationTimeoutError,
  MongoServerError,
  MongoServerSelectionError,
} from "mongodb";
import type { Backend, CloseOptions } from "../backend.ts";
import { Backoff } from "../_backoff.ts";
import { PendingSet } from "../_pending.ts";
import { eventObjectId, type MongoEventDocument, toMongoDocument } from "./mongo_document.ts";
import { type Engine, type EngineDefinition, MONGO_ENGINE_NAMES } from "../config.ts";
import { consoleLogger, type DiagnosticLogger, typeName } from "../diagnostics.ts";
import { ImproperlyConfigured } from "../errors.ts";
import * as v from "valibot";
import {
  type Expect,
  integer,
  logger,
  must,
  nonEmptyString,
  nonNegativeNumber,
  options,
  parseOptions,
  type SameType,
  without,
} from "../_schema.ts";
import type { TrackingEvent } from "../event.ts";
import type { DriverClient, DriverClientOptions } from "./_mongo_types.ts";
import { type BackendMetrics, emptyMetrics, type MetricsSnapshot } from "../metrics.ts";

/**
 * Options of {@linkcode MongoBackend}: the reference's connection options,
 * plus timeouts, batching and (optional) retries.
 */
export interface MongoBackendOptions {
  /** A connection string, as in `MONGODB_URI`; excludes `host` and `port`. */
  uri?: string;
  /** The server's host name. @default "localhost" */
  host?: string;
  /** The server's port. @default 27017 */
  port?: number;
  /** The user to authenticate as (against `database`, as the reference did, unless `authSource` says otherwise). */
  user?: string;
  /** The user's password. */
  password?: string;
  /** The database. @default the database in `uri`, else "eventtracking" */
  database?: string;
  /** The collection. @default "events" */
  collection?: string;
  /**
   * More `MongoClient` options (never mutated). Writes are acknowledged unless this sets `w: 0`;
   * its `serverSelectionTimeoutMS` and `connectTimeoutMS`, when set, win over the options below. @default {}
   */
  extra?: Readonly<DriverClientOptions>;
  /** Use this client instead of creating one (it is not closed by `close()`); excludes the connection options. */
  client?: DriverClient;
  /**
   * How long a write waits for a usable server before it fails, in milliseconds (the driver's
   * `serverSelectionTimeoutMS`, whose own default is 30 s): with MongoDB down or not answering,
   * `send` rejects after about this long. `0` waits without limit. A `serverSelectionTimeoutMS`
   * in `extra` or in `uri` wins. @default 5000
   */
  serverSelectionTimeoutMs?: number;
  /**
   * How long opening one connection (TCP, TLS and handshake) may take, in milliseconds (the
   * driver's `connectTimeoutMS`, whose own default is 30 s), so that a server that accepts
   * connections but never answers is found out. `0` waits without limit. A `connectTimeoutMS`
   * in `extra` or in `uri` wins. @default 5000
   */
  connectTimeoutMs?: number;
  /** The most events written by one `insertMany`. @default 500 */
  batchSize?: number;
  /** How long the first event of a partial batch waits for more, in milliseconds. @default 50 */
  flushIntervalMs?: number;
  /** The most batches being written at once. @default 2 */
  maxConcurrentBatches?: number;
  /**
   * How often this backend itself retries a batch after a transient error (network, server
   * restarting). By default it does not: `send` rejects after one attempt, and the retries are
   * left to the router that owns them (`AsyncRoutingBackend`'s `maxAttempts`, then its
   * dead letters). Set it for a sink used without an async router. @default 0
   */
  maxRetries?: number;
  /**
   * The nominal delay before the first of this backend's own retries, in milliseconds; it doubles
   * at each retry, up to 10 s, with jitter (each delay is 50–100 % of it). @default 100
   */
  retryDelayMs?: number;
  /** The most events buffered or being written; beyond it `send` rejects at once. @default 100000 */
  maxQueueSize?: number;
  /** Where write failures and index-creation failures are reported. @default consoleLogger */
  logger?: DiagnosticLogger;
}

const MAX_INT32 = 0x7fffffff;
const DATABASE_RULE = 'a database name without /\\. "$ and at most 63 bytes';
const COLLECTION_RULE = 'a collection name without $ that does not start with "system."';

function isDatabaseName(name: string): boolean {
  return !/[/\\. "$\0]/.test(name) && new TextEncoder().encode(name).length <= 63;
}

function isCollectionName(name: string): boolean {
  return !/[$\0]/.test(name) && !name.startsWith("system.");
}

const mongoEntries = /* @__PURE__ */ (() => ({
  uri: v.optional(nonEmptyString()),
  host: v.optional(nonEmptyString()),
  port: v.optional(integer("an integer from 1 to 65535", 1, 65535)),
  user: v.optional(nonEmptyString()),
  // Never shown: it is a secret.
  password: v.optional(v.string("must be a string")),
  database: v.optional(v.pipe(nonEmptyString(DATABASE_RULE), v.check(isDatabaseName, must(DATABASE_RULE)))),
  collection: v.optional(
    v.pipe(nonEmptyString(COLLECTION_RULE), v.check(isCollectionName, must(COLLECTION_RULE))),
  ),
  extra: v.optional(
    v.custom<Readonly<MongoClientOptions>>(
      (value) => typeof value === "object" && value !== null && !Array.isArray(value),
      must("an object of MongoClient options"),
    ),
  ),
  client: v.optional(v.instance(MongoClient, must("a MongoClient"))),
  serverSelectionTimeoutMs: v.optional(nonNegativeNumber()),
  connectTimeoutMs: v.optional(nonNegativeNumber()),
  batchSize: v.optional(integer("a positive integer", 1, MAX_INT32), 500),
  flushIntervalMs: v.optional(nonNegativeNumber(), 50),
  maxConcurrentBatches: v.optional(integer("a positive integer", 1, MAX_INT32), 2),
  maxRetries: v.optional(integer("a non-negative integer", 0, MAX_INT32), 0),
  retryDelayMs: v.optional(nonNegativeNumber(), 100),
  maxQueueSize: v.optional(integer("a positive integer", 1, MAX_INT32), 100_000),
  logger: v.optional(logger()),
}))();

type MongoLike = { readonly [K in keyof MongoBackendOptions]?: unknown };

const CLIENT_EXCLUDES = [
  "uri",
  "host",
  "port",
  "user",
  "password",
  "extra",
  "serverSelectionTimeoutMs",
  "connectTimeoutMs",
] as const;

/** The checks across options: those that exclude each other, and a password needs a user. */
/* @__NO_SIDE_EFFECTS__ */
function crossChecks<T extends MongoLike>() {
  return v.rawCheck<T>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const o: MongoLike = dataset.value;
    for (const [key, others] of [["client", CLIENT_EXCLUDES], ["uri", ["host", "port"]]] as const) {
      const clash = others.find((other) => o[other] !== undefined);
      if (o[key] !== undefined && clash !== undefined) {
        addIssue({ message: `"${key}" and "${clash}" exclude each other: give one` });
        return;
      }
    }
    if (o.password && o.user === undefined) {
      addIssue({
        message: 'is given without "user"',
        path: [{ type: "object", origin: "value", input: dataset.value, key: "password", value: o.password }],
      });
    }
  });
}

const mongoObject = /* @__PURE__ */ (() => options(mongoEntries))();

/** The schema of {@linkcode MongoBackendOptions}: what the constructor and the `mongo` ENGINE check. */
const mongoOptions = /* @__PURE__ */ (() => v.pipe(mongoObject, crossChecks<v.InferOutput<typeof mongoObject>>()))();
type _SameOptions = Expect<SameType<v.InferInput<typeof mongoOptions>, MongoBackendOptions>>;

/** Server error codes that mean "try again" (the driver's retryable-write codes, plus write-concern timeouts). */
const TRANSIENT_CODES = new Set([6, 7, 64, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 134]);
const DUPLICATE_KEY = 11000;
const MAX_RETRY_DELAY_MS = 10_000;
const DEFAULT_TIMEOUT_MS = 5_000;
const INSERT_OPTIONS = { ordered: false } as const;
// deno-lint-ignore no-explicit-any
const INDEXES: { key: any; name: string }[] = [
  { key: { name: 1 }, name: "name_1" },
  { key: { timestamp: -1 }, name: "timestamp_-1" },
];

function isTransient(error: unknown): boolean {
  // A MongoBulkWriteError without write errors wraps what really failed, e.g. a MongoNetworkError.
  const wrapped = (error as { errorResponse?: unknown } | null)?.errorResponse;
  if (error instanceof MongoBulkWriteError && wrapped instanceof Error && isTransient(wrapped)) return true;
  if (error instanceof MongoNetworkError || error instanceof MongoServerSelectionError) return true;
  if (error instanceof MongoOperationTimeoutError) return true;
  if (error instanceof MongoError && (error.hasErrorLabel("RetryableWriteError") || error.hasErrorLabel("ResetPool"))) {
    return true;
  }
  const code = (error as { code?: unknown } | null)?.code;
  // A system error (EPIPE, ECONNRESET, ERR_SOCKET_CLOSED…): under Deno's node:net a write to a socket the
  // server closed can surface unwrapped, even inside a MongoBulkWriteError, instead of as a MongoNetworkError.
  return typeof code === "number" ? TRANSIENT_CODES.has(code) : typeof code === "string";
}

/** An error caused by one of the documents (BSON, size), not by the batch as a whole. */
function isDocumentError(error: unknown): boolean {
  return BSON.BSONError.isBSONError(error) || error instanceof MongoInvalidArgumentError ||
    (error instanceof MongoServerError && (error.code === 10334 || error.code === 2));
}

function show(value: unknown): string {
  return typeof value === "string"
    ? JSON.stringify(value)
    : typeof value === "object"
    ? typeName(value)
    : String(value);
}

function noop(): void {}

function asArray<T>(value: T | readonly T[]): readonly T[] {
  return Array.isArray(value) ? value as readonly T[] : [value as T];
}

/** What became of the events of one batch: index → error for those that failed. */
type Failures = ReadonlyMap<number, unknown> | undefined;

interface Batch {
  readonly docs: MongoEventDocument[];
  readonly done: Promise<Failures>;
  settle(failures: Failures): void;
}

function newBatch(): Batch {
  const { promise, resolve } = Promise.withResolvers<Failures>();
  return { docs: [], done: promise, settle: resolve };
}

/** The outcome of one insert attempt, by index into the documents tried. */
interface Attempt {
  retry: number[];
  failed: [number, unknown][];
  cause?: unknown;
}

/**
 * Stores each event as a document `{ _id, id, name, timestamp, context, data }`
 * (`timestamp` a BSON date, `_id` from {@linkcode eventObjectId}).
 *
 * `send` buffers the event and returns a promise that resolves once the batch
 * holding it is acknowledged, or rejects once it cannot be written (MongoDB
 * unreachable, or it refused that document). Batches are unordered
 * `insertMany` calls, sent when `batchSize` events are buffered or
 * `flushIntervalMs` after the first. Writing is idempotent: a duplicate-key
 * error for an event already stored counts as delivered, so a batch can be
 * retried, and an event redelivered, without creating a second document.
 *
 * It fails fast and leaves retries to the async router: by default a batch is
 * tried once, and a server that cannot be reached fails it within
 * `serverSelectionTimeoutMs` (5 s), so a dead MongoDB never holds the
 * collector's queues or its shutdown. Put it behind an `AsyncRoutingBackend`,
 * which retries each failed event with backoff and then dead-letters it;
 * `maxRetries` makes the backend retry transient errors itself instead.
 *
 * Nothing connects until the first batch; the indexes on `name` and
 * `timestamp` (descending) are then created once (a failure is logged, not
 * fatal). The driver reconnects by itself after a network error or a restart.
 * `close({ deadlineMs })` returns within the deadline even if MongoDB hangs.
 *
 * @example Create and close without connecting
 * ```ts
 * import { MongoBackend } from "@edx/event-tracking/mongo";
 * import assert from "node:assert/strict";
 *
 * const mongo = new MongoBackend({ uri: "mongodb://127.0.0.1:27017/tracking", batchSize: 100 });
 * assert.equal(mongo.database, "tracking");
 * assert.equal(mongo.collection, "events");
 * await mongo.close(); // nothing was sent, so nothing connected
 * ```
 */
export class MongoBackend implements Backend {
  /** The database name. */
  readonly database: string;
  /** The collection name. */
  readonly collection: string;
  readonly #client: MongoClient;
  readonly #ownsClient: boolean;
  readonly #target: Collection<MongoEventDocument>;
  readonly #logger: DiagnosticLogger;
  readonly #batchSize: number;
  readonly #flushIntervalMs: number;
  readonly #maxConcurrent: number;
  readonly #maxRetries: number;
  readonly #backoff: Backoff;
  readonly #maxQueueSize: number;
  readonly #counters: BackendMetrics = emptyMetrics();
  readonly #ready: Batch[] = [];
  /** The batch writes and the index creation in progress: what `flush` waits for. */
  readonly #pending = new PendingSet();
  /** Cancels the backoff waits once `close` has given up on the writes in progress. */
  readonly #abandon = new AbortController();
  #writing = 0;
  #open: Batch | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #queued = 0;
  #indexes: "todo" | "running" | "done" = "todo";
  #used = false;
  #closed: Promise<void> | undefined;

  /**
   * Creates the backend; it does no I/O.
   *
   * @throws {ImproperlyConfigured} If an option is unknown or invalid, options that exclude each other are
   * combined, or `uri` cannot be parsed.
   */
  constructor(options: MongoBackendOptions = {}) {
    const o = parseOptions(mongoOptions, options, "MongoBackend");
    this.#batchSize = o.batchSize;
    this.#flushIntervalMs = o.flushIntervalMs;
    this.#maxConcurrent = o.maxConcurrentBatches;
    this.#maxRetries = o.maxRetries;
    this.#backoff = new Backoff("MongoBackend", { initialMs: o.retryDelayMs, maxMs: MAX_RETRY_DELAY_MS });
    const serverSelectionTimeoutMs = o.serverSelectionTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    const connectTimeoutMs = o.connectTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#maxQueueSize = o.maxQueueSize;
    const logger = o.logger ?? consoleLogger;
    this.#logger = logger;
    const uri = o.uri;
    const host = o.host ?? "localhost";
    const port = o.port ?? 27017;
    const user = o.user;
    const extra = o.extra ?? {};

    const uriDatabase = uri === undefined ? undefined : /^mongodb(?:\+srv)?:\/\/[^/?]*\/([^?]+)/.exec(uri)?.[1];
    this.database = o.database ?? (uriDatabase ? decodeURIComponent(uriDatabase) : "eventtracking");
    if (!isDatabaseName(this.database)) {
      throw new ImproperlyConfigured(
        `names the database ${show(this.database)}, which must be ${DATABASE_RULE}`,
        "MongoBackend.uri",
      );
    }
    this.collection = o.collection ?? "events";

    if (o.client !== undefined) {
      this.#client = o.client;
      this.#ownsClient = false;
    } else {
      const clientOptions: MongoClientOptions = { ...extra };
      // Short timeouts unless the user chose theirs (in `extra` or in the URI): a dead server fails a write fast.
      if (extra.serverSelectionTimeoutMS === undefined && !/[?&]serverSelectionTimeoutMS=/i.test(uri ?? "")) {
        clientOptions.serverSelectionTimeoutMS = serverSelectionTimeoutMs;
      }
      if (extra.connectTimeoutMS === undefined && !/[?&]connectTimeoutMS=/i.test(uri ?? "")) {
        clientOptions.connectTimeoutMS = connectTimeoutMs;
      }
      if (user !== undefined) {
        clientOptions.auth = { username: user, password: o.password ?? "" };
        if (extra.authSource === undefined && !/[?&]authSource=/i.test(uri ?? "")) {
          clientOptions.authSource = this.database;
        }
      }
      const url = uri ?? `mongodb://${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${port}/`;
      try {
        this.#client = new MongoClient(url, clientOptions);
      } catch (error) {
        throw new ImproperlyConfigured(
          `the connection options are not valid: ${(error as Error).message}`,
          "MongoBackend",
          { cause: error },
        );
      }
      this.#ownsClient = true;
      const w = extra.w ?? extra.writeConcern?.w ?? /[?&]w=(\w+)/.exec(uri ?? "")?.[1];
      if (w === 0 || w === "0") {
        logger.warn(
          "MongoBackend writes are unacknowledged (w: 0): send() resolves before MongoDB has stored the event, and failures go unnoticed",
        );
      }
    }
    this.#target = this.#client.db(this.database).collection<MongoEventDocument>(this.collection);
  }

  /**
   * Buffers the event for the next batch.
   *
   * @returns A promise that resolves when the event is stored (or was already),
   *   and rejects if it cannot be. It never goes unhandled, even if nobody awaits it.
   */
  send(event: TrackingEvent): Promise<void> {
    this.#counters.received++;
    if (this.#closed !== undefined) {
      return this.#refuse(new Error(`Cannot send event "${event?.name}" to MongoBackend as it is closed`));
    }
    if (this.#queued >= this.#maxQueueSize) {
      return this.#refuse(
        new RangeError(
          `Cannot send event "${event.name}" to MongoBackend as its queue is full: capacity is ${this.#maxQueueSize} events`,
        ),
      );
    }
    let doc: MongoEventDocument;
    try {
      doc = toMongoDocument(event);
    } catch (error) {
      return this.#refuse(error);
    }
    const batch = this.#open ??= newBatch();
    const index = batch.docs.push(doc) - 1;
    this.#queued++;
    if (batch.docs.length >= this.#batchSize) this.#seal();
    else this.#timer ??= setTimeout(() => this.#seal(), this.#flushIntervalMs);
    const result = batch.done.then((failures) => {
      if (failures?.has(index)) throw failures.get(index);
    });
    result.catch(noop);
    return result;
  }

  /**
   * Writes the partial batch now; resolves when every event sent so far is
   * stored or has failed (with an unreachable server, within
   * `serverSelectionTimeoutMs`, plus the backoff of `maxRetries` if set).
   */
  async flush(): Promise<void> {
    this.#seal();
    await this.#pending.settled();
  }

  /**
   * Flushes, then closes the client unless it was given in the options. Later
   * sends reject.
   *
   * With `deadlineMs`, it resolves within about that time: if the flush has
   * not finished by then it stops waiting for it (the router that set the
   * deadline has dead-lettered those events), stops retrying, closes the
   * client (which fails the writes in progress) and resolves. A second call
   * returns the first call's promise.
   */
  close(options?: CloseOptions): Promise<void> {
    return this.#closed ??= (async () => {
      const deadlineMs = options?.deadlineMs;
      const flushed = this.flush();
      let finished = true;
      if (typeof deadlineMs === "number" && deadlineMs < Infinity) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const expired = new Promise<false>((resolve) =>
          timer = setTimeout(() => resolve(false), Math.max(0, deadlineMs))
        );
        finished = await Promise.race([flushed.then(() => true), expired]);
        clearTimeout(timer);
      } else {
        await flushed;
      }
      if (!finished) {
        this.#abandon.abort();
        this.#logger.warn(
          `MongoBackend closed before ${this.#queued} event(s) were written to ${this.database}.${this.collection}: the ${deadlineMs} ms deadline expired`,
        );
      }
      if (this.#ownsClient && this.#used) await this.#client.close(!finished);
    })();
  }

  /** How full the queue is: events buffered or being written, over `maxQueueSize`. */
  saturation(): number {
    return Math.min(1, this.#queued / this.#maxQueueSize);
  }

  /** Adds this backend's counters under `path`; `queueDepth` counts events buffered or being written. */
  collectMetrics(path: string, into: MetricsSnapshot): void {
    into[path] = { ...this.#counters, queueDepth: this.#queued };
  }

  #refuse(error: unknown): Promise<void> {
    this.#counters.failed++;
    const result = Promise.reject(error);
    result.catch(noop);
    return result;
  }

  /** Moves the open batch to the ready queue and starts writing what the concurrency limit allows. */
  #seal(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#open !== undefined) {
      this.#ready.push(this.#open);
      this.#open = undefined;
    }
    while (this.#writing < this.#maxConcurrent && this.#ready.length > 0) {
      const batch = this.#ready.shift()!;
      this.#writing++;
      this.#pending.add(
        this.#write(batch).finally(() => {
          this.#writing--;
          this.#seal();
        }),
      );
    }
  }

  async #write(batch: Batch): Promise<void> {
    const docs = batch.docs;
    const failures = new Map<number, unknown>();
    let indices: number[] | undefined; // undefined: the whole batch
    for (let retries = 0;; retries++) {
      const tried = indices === undefined ? docs : indices.map((i) => docs[i]);
      let attempt: Attempt;
      try {
        attempt = await this.#attempt(tried);
      } catch (error) {
        attempt = { retry: [], failed: tried.map((_, i) => [i, error]), cause: error };
      }
      const global = (i: number) => indices === undefined ? i : indices[i];
      for (const [i, error] of attempt.failed) failures.set(global(i), error);
      if (attempt.retry.length === 0) break;
      const next = attempt.retry.map(global);
      if (retries >= this.#maxRetries || this.#abandon.signal.aborted) {
        // Without retries of its own, the backend fails with the driver's error as is: the router retries.
        const error = retries === 0 && attempt.cause !== undefined ? attempt.cause : new Error(
          `Cannot write ${next.length} event(s) to MongoDB ${this.database}.${this.collection}: still failing after ${retries} retries: ${
            (attempt.cause as Error)?.message ?? String(attempt.cause)
          }`,
          { cause: attempt.cause },
        );
        for (const i of next) failures.set(i, error);
        break;
      }
      this.#counters.retried += next.length;
      await this.#waitBeforeRetry(retries + 1);
      indices = next;
    }
    if (failures.size > 0) {
      const first = failures.values().next().value;
      this.#logger.error(
        `MongoBackend could not write ${failures.size} of ${docs.length} event(s) to ${this.database}.${this.collection}`,
        first,
      );
    }
    this.#counters.failed += failures.size;
    this.#counters.delivered += docs.length - failures.size;
    this.#queued -= docs.length;
    batch.settle(failures.size > 0 ? failures : undefined);
  }

  /** The backoff delay after attempt number `attempt`; cut short when `close` gives up on the writes. */
  async #waitBeforeRetry(attempt: number): Promise<void> {
    const signal = this.#abandon.signal;
    const ms = this.#backoff.delay(attempt);
    if (ms <= 0 || signal.aborted) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener("abort", done);
    });
  }

  /** One `insertMany`; sorts the documents into stored, to retry and failed. */
  async #attempt(docs: MongoEventDocument[]): Promise<Attempt> {
    try {
      // After close gave up, never connect again (connect() would reopen a closed client).
      if (this.#abandon.signal.aborted) {
        throw new Error(
          `Cannot write ${docs.length} event(s) to MongoDB ${this.database}.${this.collection} as the backend was closed before they were written`,
        );
      }
      this.#used = true;
      await this.#client.connect();
      if (this.#indexes === "todo") this.#createIndexes();
      await this.#target.insertMany(docs, INSERT_OPTIONS);
      return { retry: [], failed: [] };
    } catch (error) {
      if (error instanceof MongoBulkWriteError && (error.err !== undefined || asArray(error.writeErrors).length > 0)) {
        return await this.#sortWriteErrors(docs, error);
      }
      if (isTransient(error)) return { retry: docs.map((_, i) => i), failed: [], cause: error };
      if (docs.length > 1 && isDocumentError(error)) return await this.#oneByOne(docs);
      return { retry: [], failed: docs.map((_, i) => [i, error]), cause: error };
    }
  }

  async #sortWriteErrors(docs: MongoEventDocument[], error: MongoBulkWriteError): Promise<Attempt> {
    const result: Attempt = { retry: [], failed: [], cause: error };
    const duplicates: number[] = [];
    const seen = new Set<number>();
    for (const writeError of asArray(error.writeErrors)) {
      seen.add(writeError.index);
      if (writeError.code === DUPLICATE_KEY) duplicates.push(writeError.index);
      else if (TRANSIENT_CODES.has(writeError.code)) result.retry.push(writeError.index);
      else {
        result.failed.push([
          writeError.index,
          new Error(
            `MongoDB refused event "${docs[writeError.index].id}": ${writeError.errmsg} (code ${writeError.code})`,
          ),
        ]);
      }
    }
    // A write-concern error leaves the rest unconfirmed: write them again (a duplicate then means stored).
    if (error.err !== undefined) {
      for (let i = 0; i < docs.length; i++) if (!seen.has(i)) result.retry.push(i);
    }
    if (duplicates.length > 0) await this.#checkDuplicates(docs, duplicates, result);
    return result;
  }

  /** A duplicate `_id` means "already stored" only if the stored document has the same event id. */
  async #checkDuplicates(docs: MongoEventDocument[], duplicates: number[], result: Attempt): Promise<void> {
    let stored: Map<string, string>;
    try {
      const found = await this.#target
        .find({ _id: { $in: duplicates.map((i) => docs[i]._id) } }, { projection: { id: 1 } })
        .toArray();
      stored = new Map(found.map((doc) => [doc._id.toHexString(), doc.id]));
    } catch (error) {
      if (isTransient(error)) result.retry.push(...duplicates);
      else for (const i of duplicates) result.failed.push([i, error]);
      return;
    }
    for (const i of duplicates) {
      const id = stored.get(docs[i]._id.toHexString());
      if (id === docs[i].id) continue;
      if (id === undefined) result.retry.push(i); // deleted meanwhile
      else {
        result.failed.push([
          i,
          new Error(
            `Cannot write event "${docs[i].id}" to MongoDB: its _id ${docs[i]._id} already holds event "${id}"`,
          ),
        ]);
      }
    }
  }

  /** Isolates the documents a whole-batch error came from by writing each alone. */
  async #oneByOne(docs: MongoEventDocument[]): Promise<Attempt> {
    const result: Attempt = { retry: [], failed: [] };
    for (let i = 0; i < docs.length; i++) {
      const single = await this.#attempt([docs[i]]);
      if (single.retry.length > 0) result.retry.push(i);
      if (single.failed.length > 0) result.failed.push([i, single.failed[0][1]]);
      result.cause ??= single.cause;
    }
    return result;
  }

  #createIndexes(): void {
    this.#indexes = "running";
    this.#pending.add((async () => {
      try {
        await this.#target.createIndexes(INDEXES);
        this.#indexes = "done";
      } catch (error) {
        // A transient failure is tried again with the next batch; any other is final.
        this.#indexes = isTransient(error) ? "todo" : "done";
        this.#logger.error(
          `MongoBackend could not create the indexes on name and timestamp of ${this.database}.${this.collection}; events are still written`,
          error,
        );
      }
    })());
  }
}

export { eventObjectId, type MongoEventDocument, toMongoDocument };

/** The options of the `mongo` ENGINE: those of {@linkcode MongoBackend} but the ones only code can give. */
/* @__NO_SIDE_EFFECTS__ */
function mongoConfigOptions() {
  const object = options(without(mongoEntries, "client", "logger"));
  return v.pipe(object, crossChecks<v.InferOutput<typeof object>>());
}

/**
 * The `mongo` ENGINE, under its short name and the reference's
 * (`eventtracking.backends.mongodb.MongoBackend`), for
 * `createTracker(config, { engines })`: the core leaves it out so that it
 * never loads the MongoDB driver. `defaultUri` is used by the specs that name
 * no server (no `uri`, `host` or `port`), e.g. a Worker's `MONGODB_URI`
 * binding.
 *
 * @example Build a tracker with a MongoDB branch
 * ```ts
 * import { createTracker } from "@edx/event-tracking";
 * import { MongoBackend, mongoEngines } from "@edx/event-tracking/mongo";
 * import assert from "node:assert/strict";
 *
 * const tracker = createTracker(
 *   { backends: { mongo: { ENGINE: "mongo", OPTIONS: { batch_size: 100 } } } },
 *   { engines: mongoEngines("mongodb://127.0.0.1:27017/tracking") },
 * );
 * const mongo = tracker.getBackend("mongo") as MongoBackend;
 * assert.equal(mongo.database, "tracking");
 * await tracker.close(); // nothing was sent, so nothing connected
 * ```
 */
export function mongoEngines(defaultUri?: string): Readonly<Record<string, Engine>> {
  const engine: EngineDefinition<v.InferOutput<ReturnType<typeof mongoConfigOptions>>> = {
    schema: mongoConfigOptions(),
    create(options, { logger }) {
      const named = options.uri !== undefined || options.host !== undefined || options.port !== undefined;
      return new MongoBackend({
        ...(named || defaultUri === undefined ? {} : { uri: defaultUri }),
        ...options,
        logger,
      });
    },
  };
  return Object.fromEntries(MONGO_ENGINE_NAMES.map((name) => [name, engine]));
}
