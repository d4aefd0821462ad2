/**
 * Dead letters on Cloudflare Workers, kept durably: Workers have no files, so
 * the `async_routing` branches of a Worker write their dead letters to the log
 * (as before) and also to one Durable Object, {@linkcode DeadLetterObject},
 * which keeps them in its SQLite storage until they are replayed. The
 * collector's `GET /v1/dead-letters` and `POST /v1/dead-letters/<backendName>/replay`
 * read them through {@linkcode durableObjectDeadLetterStore}.
 *
 * - {@linkcode DeadLetterObjectSink}: a branch's dead-letter sink: logs each
 *   letter, and sends the letters of one microtask to the object in one RPC
 *   call (`stub.add(backendName, path, letters)`).
 * - {@linkcode DeadLetterObject}: the object: `add`, `list`, `take`, `remove`
 *   over RPC, at most {@linkcode MAX_DEAD_LETTERS_PER_BRANCH} letters per branch.
 * - {@linkcode durableObjectDeadLetterStore}: the collector's view of them;
 *   a replay queues the letters on the branch's Cloudflare Queue again and only
 *   then removes them from the object.
 *
 * Like {@linkcode EventBusObject}, the object extends the runtime's
 * `DurableObject` in workerd only ({@linkcode DurableObjectBase}); only
 * structural types of the Workers runtime are used, so this module loads (and
 * is tested) anywhere.
 *
 * @module
 */

import type { Backend } from "../backend.ts";
import { PendingSet } from "../_pending.ts";
import { AsyncRoutingBackend } from "../backends/async_routing.ts";
import { LoggerBackend } from "../backends/logger.ts";
import { consoleLogger, type DiagnosticLogger, typeName } from "../diagnostics.ts";
import type { TrackingEvent } from "../event.ts";
import {
  type DeadLetterBranch,
  deadLetterEntry,
  type DeadLetterReplay,
  type DeadLetterStore,
} from "../http/dead_letters.ts";
import { httpError } from "../http/errors.ts";
import type { Tracker } from "../tracker.ts";
import { walkTree } from "../tree.ts";
import { DurableObjectBase, type DurableObjectStateLike } from "./event_bus_object.ts";

/** The name of the one object all dead letters go to. */
export const DEAD_LETTER_OBJECT_NAME = "dead-letters";
/**
 * The most dead letters {@linkcode DeadLetterObject} keeps per branch. Beyond
 * it `add` keeps no more of that branch (and says how many it kept): its
 * sink logs an error, and the letters it could not keep are in the Worker's
 * log already (each dead letter is logged whole before it is stored), so
 * none is lost silently. Replaying the branch makes room again.
 */
export const MAX_DEAD_LETTERS_PER_BRANCH = 100_000;
/** The most letters `take` hands out at once, and the most `list` shows per branch. */
export const MAX_DEAD_LETTERS_PER_CALL = 1_000;
/** How many letters a replay takes from the object, queues again and removes at a time. */
export const REPLAY_CHUNK = 100;
/**
 * The most letters one replay request handles: each chunk costs subrequests
 * (take, remove, and the Queue's `sendBatch` calls), and a Worker invocation
 * may make only so many. What is left stays for the next replay.
 */
export const MAX_REPLAY_PER_REQUEST = 5_000;

/** A cursor of the SQLite storage API (`ctx.storage.sql.exec(...)`): the part this module uses. */
export interface SqlCursorLike {
  /** Every row, as an object of column → value. */
  toArray(): Record<string, unknown>[];
}

/** The SQLite storage API of a Durable Object (`ctx.storage.sql`): the part this module uses. */
export interface SqlStorageLike {
  /** Runs one statement with `?` bindings. */
  exec(query: string, ...bindings: unknown[]): SqlCursorLike;
}

/** The state (`ctx`) of a SQLite-backed Durable Object: the part {@linkcode DeadLetterObject} uses. */
export interface DeadLetterObjectStateLike {
  /** The object's storage. */
  readonly storage: {
    /** Its SQLite database. */
    readonly sql: SqlStorageLike;
    /** Runs `fn` in one transaction (rolled back if it throws); where absent, the runtime's implicit one is used. */
    transactionSync?<T>(fn: () => T): T;
  };
}

/** What `take` hands out: the oldest letters of a branch (after a key), and their keys for `remove`. */
export interface DeadLetterBatch {
  /** The letters' keys, ascending. */
  readonly keys: number[];
  /** The dead letters, as JSON text, in the order of `keys`. */
  readonly letters: string[];
}

/**
 * A stub of {@linkcode DeadLetterObject} (`namespace.get(id)`): in workerd
 * every public method of the object is callable on its stub over RPC.
 */
export interface DeadLetterObjectStub {
  /** Calls {@linkcode DeadLetterObject.add}. */
  add(backendName: string, path: string, letters: string[]): Promise<number>;
  /** Calls {@linkcode DeadLetterObject.list}. */
  list(newest: number): Promise<DeadLetterBranch[]>;
  /** Calls {@linkcode DeadLetterObject.take}. */
  take(backendName: string, max: number, after?: number): Promise<DeadLetterBatch>;
  /** Calls {@linkcode DeadLetterObject.remove}. */
  remove(keys: number[]): Promise<number>;
}

/** A Durable Object namespace binding of {@linkcode DeadLetterObject} (`env.DEAD_LETTERS`): the part this module uses. */
export interface DeadLetterNamespaceLike {
  /** The id of the object of that name. */
  idFromName(name: string): unknown;
  /** The stub of the object of that id. */
  get(id: never): DeadLetterObjectStub;
}

function stubOf(namespace: DeadLetterNamespaceLike, name: string): DeadLetterObjectStub {
  return namespace.get(namespace.idFromName(name) as never);
}

function checkNamespace(namespace: DeadLetterNamespaceLike, what: string): void {
  if (typeof namespace?.idFromName !== "function" || typeof namespace.get !== "function") {
    throw new TypeError(
      `Cannot create ${what}: 'namespace' must be a Durable Object namespace binding, got ${typeName(namespace)}`,
    );
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function ignore(): void {}

/** Options of {@linkcode DeadLetterObjectSink}. */
export interface DeadLetterObjectSinkOptions {
  /** The Durable Object namespace binding of {@linkcode DeadLetterObject}. */
  namespace: DeadLetterNamespaceLike;
  /** The branch's `backendName`: what its letters are filed under, and what a replay names. */
  backendName: string;
  /** The branch's path in the tree, as metrics name it (`root/tracking_logs`), or a function that returns it. */
  path: string | (() => string);
  /** The object's name. @default "dead-letters" */
  name?: string;
  /** Where failed writes to the object are reported (each letter is written to the console, `console.error`). @default consoleLogger */
  logger?: DiagnosticLogger;
}

/**
 * The dead-letter sink of an `async_routing` branch in a Worker: logs each
 * dead letter whole (a `LoggerBackend` named `<backendName> dead letters`,
 * level `error`, as the Worker always did), then buffers it and sends the
 * buffer to {@linkcode DeadLetterObject} in one RPC call on a later
 * microtask (`stub.add(backendName, path, letters)`: one call per emit loop or
 * queue batch, not per letter). `send` resolves once that call has settled,
 * so a queue message is acked only after its dead letter is stored.
 *
 * A call that fails, or letters the object refuses (the branch holds
 * {@linkcode MAX_DEAD_LETTERS_PER_BRANCH} already), is reported as an error
 * through the logger and `send` still resolves: each letter is in the log
 * already, so nothing is lost silently, and a full store does not make the
 * Queue deliver the same failing events over and over.
 *
 * @example Two letters of one microtask go to the object in one call
 * ```ts
 * import { DeadLetterObjectSink } from "@edx/event-tracking/cloudflare";
 * import type { DeadLetter } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const calls: [string, string, string[]][] = [];
 * const namespace = {
 *   idFromName: (name: string) => name,
 *   get: () => ({
 *     add: async (backendName: string, path: string, letters: string[]) => (calls.push([backendName, path, letters]), letters.length),
 *     list: () => Promise.resolve([]),
 *     take: () => Promise.resolve({ keys: [], letters: [] }),
 *     remove: () => Promise.resolve(0),
 *   }),
 * };
 * const sink = new DeadLetterObjectSink({ namespace, backendName: "logs", path: "root/logs" });
 * const letter = (id: string): DeadLetter => ({
 *   id, name: "edx.ui.click", timestamp: "2026-01-01T00:00:00.000Z", context: {}, data: {},
 *   deadLetter: { error: "Error: down", attempts: 1, backend: "mongo", at: "2026-01-01T00:00:01.000Z" },
 * });
 * // Each is written to the console too (console.error), as one JSON line.
 * await Promise.all([sink.send(letter("a")), sink.send(letter("b"))]);
 * assert.equal(calls.length, 1);
 * assert.deepEqual(calls[0][2].map((line) => JSON.parse(line).id), ["a", "b"]);
 * ```
 */
export class DeadLetterObjectSink implements Backend {
  /** The branch whose letters this sink keeps. */
  readonly backendName: string;
  readonly #namespace: DeadLetterNamespaceLike;
  readonly #name: string;
  readonly #path: () => string;
  readonly #log: LoggerBackend;
  readonly #logger: DiagnosticLogger;
  readonly #pending = new PendingSet();
  // The letters waiting for the next call to the object, and that call.
  #batch: { readonly letters: string[]; readonly sent: Promise<void> } | undefined;

  /**
   * Creates the sink; it does no I/O.
   *
   * @throws {TypeError} If `namespace` is not a Durable Object namespace binding, or `backendName` is empty.
   */
  constructor(options: DeadLetterObjectSinkOptions) {
    checkNamespace(options?.namespace, "DeadLetterObjectSink");
    if (typeof options.backendName !== "string" || options.backendName === "") {
      throw new TypeError("Cannot create DeadLetterObjectSink: 'backendName' must be a non-empty string");
    }
    const { path } = options;
    this.#namespace = options.namespace;
    this.backendName = options.backendName;
    this.#name = options.name ?? DEAD_LETTER_OBJECT_NAME;
    this.#path = typeof path === "function" ? path : () => path;
    this.#logger = options.logger ?? consoleLogger;
    this.#log = new LoggerBackend({
      name: `${this.backendName} dead letters`,
      level: "error",
      maxEventSize: null,
      logger: this.#logger,
    });
  }

  /**
   * Logs the letter, then queues it for the next call to the object.
   *
   * @returns A promise that resolves once the call that carries it has settled (a failure is logged, not thrown).
   */
  send(letter: TrackingEvent): Promise<void> {
    const logged = this.#log.send(letter);
    let batch = this.#batch;
    if (batch === undefined) {
      const letters: string[] = [];
      const sent = Promise.resolve().then(() => this.#write(letters));
      batch = { letters, sent };
      this.#batch = batch;
      this.#pending.add(sent);
    }
    batch.letters.push(JSON.stringify(letter));
    return logged === undefined ? batch.sent : Promise.all([logged, batch.sent]).then(ignore);
  }

  /** Resolves once every letter sent has reached the object (or its failure was logged). */
  async flush(): Promise<void> {
    await this.#pending.settled();
    await this.#log.flush();
  }

  /** Flushes. */
  async close(): Promise<void> {
    await this.flush();
    await this.#log.close();
  }

  async #write(letters: string[]): Promise<void> {
    // Later letters go in the next call.
    this.#batch = undefined;
    const path = this.#path();
    let stored: number;
    try {
      stored = await stubOf(this.#namespace, this.#name).add(this.backendName, path, letters);
    } catch (error) {
      this.#logger.error(
        `DeadLetterObjectSink "${this.backendName}": ${letters.length} dead letter(s) were not stored in the dead-letter object (${
          describe(error)
        }); they are in the log above`,
        error,
      );
      return;
    }
    if (stored < letters.length) {
      const ids = letters.slice(stored).map((line) => (JSON.parse(line) as { id?: unknown }).id);
      this.#logger.error(
        `DeadLetterObjectSink "${this.backendName}": the dead-letter object refused ${
          letters.length - stored
        } dead letter(s), as it holds ${MAX_DEAD_LETTERS_PER_BRANCH} of this branch already (replay them to make room); they are in the log above: ${
          ids.join(", ")
        }`,
      );
    }
  }
}

function checkCount(value: unknown, name: string, min: number, max: number): number {
  if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) {
    throw new RangeError(`'${name}' must be an integer from ${min} to ${max}: current value is ${value}`);
  }
  return value as number;
}

function checkBackendName(backendName: unknown, method: string): string {
  if (typeof backendName !== "string" || backendName === "") {
    throw new TypeError(`Cannot ${method}: 'backendName' must be a non-empty string`);
  }
  return backendName;
}

/**
 * The Durable Object that keeps the dead letters of a Worker's
 * `async_routing` branches (export it from the Worker and bind it as
 * `DEAD_LETTERS`; see worker/wrangler.toml), in its SQLite storage: one row
 * per letter (an autoincrement key, the branch's `backendName`, the letter's
 * JSON), indexed by branch and key, and one row per branch (its path and how
 * many letters it has). Its methods are called over RPC:
 *
 * - `add(backendName, path, letters)` stores the letters (JSON text) of a
 *   branch, at most {@linkcode MAX_DEAD_LETTERS_PER_BRANCH} per branch, and
 *   returns how many it stored (the first ones; the rest are refused);
 * - `list(newest)`: each branch with letters, with its count and newest
 *   `newest` letters, newest first;
 * - `take(backendName, max, after?)`: the oldest `max` letters of a branch
 *   (with keys above `after`), and their keys; it removes nothing, so that
 *   the caller removes them with `remove(keys)` only once they are queued
 *   again: a replay that fails midway loses nothing.
 *
 * Each call runs in one transaction.
 *
 * @example Keep, list, take and remove (SQLite of node:sqlite standing in for the object's storage)
 * ```ts
 * import { DeadLetterObject } from "@edx/event-tracking/cloudflare";
 * import { DatabaseSync } from "node:sqlite";
 * import assert from "node:assert/strict";
 *
 * const db = new DatabaseSync(":memory:");
 * const sql = {
 *   exec(query: string, ...bindings: never[]) {
 *     const rows = db.prepare(query).all(...bindings);
 *     return { toArray: () => rows };
 *   },
 * };
 * const object = new DeadLetterObject({ storage: { sql } }, {});
 * const letter = (id: string) =>
 *   JSON.stringify({ id, name: "edx.ui.click", timestamp: "", context: {}, data: {}, deadLetter: { error: "down", attempts: 1, backend: "mongo", at: "" } });
 * assert.equal(await object.add("logs", "root/logs", [letter("a"), letter("b")]), 2);
 * const [branch] = await object.list(1);
 * assert.deepEqual([branch.backendName, branch.count, branch.newest[0].id], ["logs", 2, "b"]);
 * const { keys, letters } = await object.take("logs", 10);
 * assert.deepEqual(letters.map((line) => JSON.parse(line).id), ["a", "b"]);
 * assert.equal(await object.remove(keys), 2);
 * assert.deepEqual(await object.list(1), []);
 * ```
 */
export class DeadLetterObject extends DurableObjectBase {
  readonly #state: DeadLetterObjectStateLike;

  /** Called by the runtime with the object's state; creates the tables if they are missing. */
  constructor(state: DeadLetterObjectStateLike, env: unknown) {
    super(state as unknown as DurableObjectStateLike, env);
    this.#state = state;
    const { sql } = state.storage;
    sql.exec(
      "CREATE TABLE IF NOT EXISTS dead_letter_branches (backend_name TEXT PRIMARY KEY, path TEXT NOT NULL, count INTEGER NOT NULL)",
    );
    sql.exec(
      "CREATE TABLE IF NOT EXISTS dead_letters (key INTEGER PRIMARY KEY AUTOINCREMENT, backend_name TEXT NOT NULL, letter TEXT NOT NULL)",
    );
    sql.exec("CREATE INDEX IF NOT EXISTS dead_letters_by_branch ON dead_letters (backend_name, key)");
  }

  /**
   * Stores dead letters of the branch `backendName` (at `path`), in order,
   * as long as the branch has fewer than {@linkcode MAX_DEAD_LETTERS_PER_BRANCH}.
   *
   * @returns How many were stored: all, or the first ones when the branch is full.
   * @throws {TypeError} If `backendName` or `path` is not a non-empty string, or `letters` not an array of strings.
   */
  // deno-lint-ignore require-await
  async add(backendName: string, path: string, letters: readonly string[]): Promise<number> {
    checkBackendName(backendName, "add dead letters");
    if (typeof path !== "string" || path === "") {
      throw new TypeError("Cannot add dead letters: 'path' must be a non-empty string");
    }
    if (!Array.isArray(letters) || !letters.every((letter) => typeof letter === "string")) {
      throw new TypeError("Cannot add dead letters: 'letters' must be an array of JSON texts");
    }
    return this.#transaction((sql) => {
      const [branch] = sql.exec("SELECT count FROM dead_letter_branches WHERE backend_name = ?", backendName)
        .toArray();
      const room = Math.max(0, MAX_DEAD_LETTERS_PER_BRANCH - Number(branch?.count ?? 0));
      const kept = letters.slice(0, room);
      for (const letter of kept) {
        sql.exec("INSERT INTO dead_letters (backend_name, letter) VALUES (?, ?)", backendName, letter);
      }
      sql.exec(
        "INSERT INTO dead_letter_branches (backend_name, path, count) VALUES (?, ?, ?) " +
          "ON CONFLICT (backend_name) DO UPDATE SET path = excluded.path, count = count + excluded.count",
        backendName,
        path,
        kept.length,
      );
      return kept.length;
    });
  }

  /**
   * Every branch that has dead letters, by `backendName`: its path, count,
   * and newest `newest` letters, newest first.
   *
   * @throws {RangeError} If `newest` is not an integer from 0 to 1,000.
   */
  // deno-lint-ignore require-await
  async list(newest: number): Promise<DeadLetterBranch[]> {
    checkCount(newest, "newest", 0, MAX_DEAD_LETTERS_PER_CALL);
    return this.#transaction((sql) =>
      sql.exec("SELECT backend_name, path, count FROM dead_letter_branches WHERE count > 0 ORDER BY backend_name")
        .toArray().map((row) => ({
          backendName: String(row.backend_name),
          path: String(row.path),
          count: Number(row.count),
          newest: newest === 0 ? [] : sql.exec(
            "SELECT letter FROM dead_letters WHERE backend_name = ? ORDER BY key DESC LIMIT ?",
            row.backend_name,
            newest,
          ).toArray().map((letter) => deadLetterEntry(String(letter.letter))),
        }))
    );
  }

  /**
   * The oldest `max` dead letters of the branch whose keys are above `after`,
   * with their keys; they stay stored until {@linkcode DeadLetterObject.remove}.
   *
   * @throws {TypeError} If `backendName` is not a non-empty string.
   * @throws {RangeError} If `max` is not an integer from 1 to 1,000, or `after` not a non-negative integer.
   */
  // deno-lint-ignore require-await
  async take(backendName: string, max: number, after = 0): Promise<DeadLetterBatch> {
    checkBackendName(backendName, "take dead letters");
    checkCount(max, "max", 1, MAX_DEAD_LETTERS_PER_CALL);
    checkCount(after, "after", 0, Number.MAX_SAFE_INTEGER);
    const rows = this.#state.storage.sql.exec(
      "SELECT key, letter FROM dead_letters WHERE backend_name = ? AND key > ? ORDER BY key LIMIT ?",
      backendName,
      after,
      max,
    ).toArray();
    return { keys: rows.map((row) => Number(row.key)), letters: rows.map((row) => String(row.letter)) };
  }

  /**
   * Removes the letters of those keys (keys no longer stored are skipped).
   *
   * @returns How many were removed.
   * @throws {TypeError} If `keys` is not an array of integers.
   */
  // deno-lint-ignore require-await
  async remove(keys: readonly number[]): Promise<number> {
    if (!Array.isArray(keys) || !keys.every((key) => Number.isInteger(key))) {
      throw new TypeError("Cannot remove dead letters: 'keys' must be an array of integer keys");
    }
    if (keys.length === 0) return 0;
    return this.#transaction((sql) => {
      const removed = sql.exec(
        "DELETE FROM dead_letters WHERE key IN (SELECT value FROM json_each(?)) RETURNING backend_name",
        JSON.stringify(keys),
      ).toArray();
      const perBranch = new Map<string, number>();
      for (const row of removed) {
        const name = String(row.backend_name);
        perBranch.set(name, (perBranch.get(name) ?? 0) + 1);
      }
      for (const [name, count] of perBranch) {
        sql.exec("UPDATE dead_letter_branches SET count = count - ? WHERE backend_name = ?", count, name);
      }
      sql.exec("DELETE FROM dead_letter_branches WHERE count <= 0");
      return removed.length;
    });
  }

  #transaction<T>(fn: (sql: SqlStorageLike) => T): T {
    const { storage } = this.#state;
    return storage.transactionSync === undefined ? fn(storage.sql) : storage.transactionSync(() => fn(storage.sql));
  }
}

/** Options of {@linkcode durableObjectDeadLetterStore}. */
export interface DurableObjectDeadLetterStoreOptions {
  /** The object's name. @default "dead-letters" */
  name?: string;
  /** How many letters a replay takes, queues again and removes at a time. @default 100 */
  replayChunk?: number;
  /** The most letters one replay handles; the rest stay for the next one. @default 5000 */
  maxPerReplay?: number;
}

/** The async branches of the tree, in its order (the first of each `backendName`). */
function asyncBranches(tracker: Tracker): { backendName: string; path: string; backend: AsyncRoutingBackend }[] {
  const branches: { backendName: string; path: string; backend: AsyncRoutingBackend }[] = [];
  for (const { path, backend } of walkTree(tracker.backends)) {
    if (backend instanceof AsyncRoutingBackend && !branches.some((b) => b.backendName === backend.backendName)) {
      branches.push({ backendName: backend.backendName, path, backend });
    }
  }
  return branches;
}

/**
 * The collector's dead letters in a Worker (the `deadLetters` option of
 * `createCollectorApp`), kept by {@linkcode DeadLetterObject}:
 *
 * - `list(newest)`: every async branch of the tracker's tree, in its order,
 *   with its count and newest letters (count 0 when it has none), then any
 *   branch the object has letters of that the tree no longer has;
 * - `replay(backendName)`: takes the branch's letters from the object
 *   {@linkcode REPLAY_CHUNK} at a time, feeds each chunk back through the
 *   branch ({@linkcode AsyncRoutingBackend.replayDeadLetters}), which sends
 *   it to the branch's Cloudflare Queue, and removes the chunk from the
 *   object once the Queue has stored it. Delivery happens later, in the
 *   queue consumer: the report counts every replayed letter as `pending`.
 *   Letters that fail again come back to the object as new letters. If the
 *   Queue refuses a chunk, the chunk stays in the object and the replay
 *   answers 503 (what was replayed before stays replayed). One replay
 *   handles at most {@linkcode MAX_REPLAY_PER_REQUEST} letters (a Worker
 *   invocation's subrequests are limited), and letters added while it runs
 *   wait for the next one: `list` shows what is left. Two replays of one
 *   branch at once may queue a letter twice (at-least-once).
 *
 * An unknown `backendName` is a 404 (`unknown_branch`).
 *
 * @example
 * ```ts
 * import { durableObjectDeadLetterStore } from "@edx/event-tracking/cloudflare";
 * import { AsyncRoutingBackend, InMemoryBackend, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const namespace = {
 *   idFromName: (name: string) => name,
 *   get: () => ({
 *     add: () => Promise.resolve(0),
 *     list: () => Promise.resolve([]),
 *     take: () => Promise.resolve({ keys: [], letters: [] }),
 *     remove: () => Promise.resolve(0),
 *   }),
 * };
 * const logs = new AsyncRoutingBackend({ backendName: "logs", backends: { sink: new InMemoryBackend() }, deadLetter: new InMemoryBackend() });
 * const tracker = new Tracker({ backends: { logs } });
 * const store = durableObjectDeadLetterStore(namespace, tracker);
 * assert.deepEqual(await store.list(5), [{ backendName: "logs", path: "root/logs", count: 0, newest: [] }]);
 * assert.deepEqual(await store.replay("logs"), { backendName: "logs", replayed: 0, delivered: 0, deadLettered: 0, failed: 0, pending: 0 });
 * await assert.rejects(store.replay("nope"), /No async branch/);
 * await tracker.close();
 * ```
 *
 * @throws {TypeError} If `namespace` is not a Durable Object namespace binding.
 * @throws {RangeError} If `replayChunk` is not an integer from 1 to 1,000, or `maxPerReplay` not a positive integer.
 */
export function durableObjectDeadLetterStore(
  namespace: DeadLetterNamespaceLike,
  tracker: Tracker,
  options: DurableObjectDeadLetterStoreOptions = {},
): DeadLetterStore {
  checkNamespace(namespace, "the dead-letter store");
  const name = options.name ?? DEAD_LETTER_OBJECT_NAME;
  const chunk = checkCount(options.replayChunk ?? REPLAY_CHUNK, "replayChunk", 1, MAX_DEAD_LETTERS_PER_CALL);
  const most = checkCount(options.maxPerReplay ?? MAX_REPLAY_PER_REQUEST, "maxPerReplay", 1, Number.MAX_SAFE_INTEGER);
  const stub = () => stubOf(namespace, name);
  return {
    async list(newest) {
      const stored = await stub().list(newest);
      const branches: DeadLetterBranch[] = asyncBranches(tracker).map(({ backendName, path }) => {
        const found = stored.find((branch) => branch.backendName === backendName);
        return { backendName, path, count: found?.count ?? 0, newest: found?.newest ?? [] };
      });
      // Letters of a branch the configuration no longer has: shown, so that they are not forgotten.
      for (const branch of stored) {
        if (!branches.some((b) => b.backendName === branch.backendName)) branches.push(branch);
      }
      return branches;
    },

    async replay(backendName): Promise<DeadLetterReplay> {
      const branches = asyncBranches(tracker);
      const branch = branches.find((b) => b.backendName === backendName)?.backend;
      if (branch === undefined) {
        throw httpError(
          404,
          "unknown_branch",
          `No async branch is named "${backendName}" (branches: ${
            branches.map((b) => `"${b.backendName}"`).join(", ") || "none"
          })`,
        );
      }
      let replayed = 0;
      let pending = 0;
      let deadLettered = 0;
      let taken = 0;
      let after = 0;
      while (taken < most) {
        const { keys, letters } = await stub().take(backendName, Math.min(chunk, most - taken), after);
        if (keys.length === 0) break;
        after = keys[keys.length - 1];
        taken += keys.length;
        const report = await branch.replayDeadLetters(letters.map((letter) => JSON.parse(letter)));
        if (report.failed > 0) {
          throw httpError(
            503,
            "unavailable",
            `Replayed ${replayed} dead letter(s) of "${backendName}", then the Queue refused the next ones; they are kept: retry later`,
            { retryAfter: 1 },
          );
        }
        // Stored by the Queue, dead-lettered again (a new letter), or unreadable (logged whole): done with them.
        await stub().remove(keys);
        replayed += report.replayed;
        pending += report.delivered; // "delivered" to the Queue: the consumer delivers them later
        deadLettered += report.deadLettered;
      }
      return { backendName, replayed, delivered: 0, deadLettered, failed: 0, pending };
    },
  };
}
