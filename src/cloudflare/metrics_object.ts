/**
 * Global counters on Cloudflare Workers. A Worker runs in many isolates, each
 * with its own trackers and counters: served as they are, successive polls
 * of `GET /v1/metrics` would jump between isolates' numbers, and Prometheus
 * counters would go backwards. So each isolate reports what its counters
 * grew by to one Durable Object, {@linkcode MetricsObject}, which keeps the
 * totals in its SQLite storage and answers them:
 *
 * - {@linkcode MetricsReporter}: one per isolate (and bindings object); it
 *   keeps the last counters it reported and sends the difference since then
 *   (`stub.add(isolate, deltas, gauges)`), at most once a second when asked
 *   by {@linkcode MetricsReporter.schedule}, or at once
 *   ({@linkcode MetricsReporter.report}: at the end of a queue batch, before
 *   answering the metrics). A call that fails keeps its deltas for the next
 *   one: nothing is lost, and the failure is logged once per failure streak.
 * - {@linkcode MetricsObject}: the object: `add` adds the deltas to the
 *   totals of each backend path and records the isolate's latest gauges
 *   (`queueDepth`); `totals` answers a `MetricsSnapshot` of the totals, whose
 *   `queueDepth` is the sum of the gauges of the isolates that reported
 *   within the last {@linkcode METRICS_GAUGE_TTL_MS} ms.
 *
 * Like {@linkcode DeadLetterObject}, the object extends the runtime's
 * `DurableObject` in workerd only ({@linkcode DurableObjectBase}); only
 * structural types of the Workers runtime are used, so this module loads (and
 * is tested) anywhere.
 *
 * @module
 */

import { consoleLogger, type DiagnosticLogger, typeName } from "../diagnostics.ts";
import { type BackendMetrics, emptyMetrics, type MetricsSnapshot } from "../metrics.ts";
import type { DeadLetterObjectStateLike, SqlStorageLike } from "./dead_letter_object.ts";
import { DurableObjectBase, type DurableObjectStateLike } from "./event_bus_object.ts";

/**
 * The name of the one object all isolates report to.
 *
 * @example
 * ```ts
 * import { METRICS_OBJECT_NAME } from "@edx/event-tracking/cloudflare";
 * import assert from "node:assert/strict";
 *
 * assert.equal(METRICS_OBJECT_NAME, "metrics");
 * ```
 */
export const METRICS_OBJECT_NAME = "metrics";

/**
 * The most backend paths one `add` call may carry, in its deltas and in its
 * gauges alike (a tree has a few dozen).
 *
 * @example
 * ```ts
 * import { MAX_METRICS_PATHS } from "@edx/event-tracking/cloudflare";
 * import assert from "node:assert/strict";
 *
 * assert.equal(MAX_METRICS_PATHS, 1_000);
 * ```
 */
export const MAX_METRICS_PATHS = 1_000;

/**
 * The most backend paths {@linkcode MetricsObject} keeps totals of: the
 * paths of every configuration the Worker has had (a path the configuration
 * no longer has keeps its totals). An `add` that would store more is refused.
 *
 * @example
 * ```ts
 * import { MAX_METRICS_PATHS, MAX_STORED_METRICS_PATHS } from "@edx/event-tracking/cloudflare";
 * import assert from "node:assert/strict";
 *
 * assert.ok(MAX_STORED_METRICS_PATHS >= MAX_METRICS_PATHS);
 * ```
 */
export const MAX_STORED_METRICS_PATHS = 10_000;

/** The longest backend path, in characters. */
const MAX_PATH_LENGTH = 1_024;
/** The longest isolate id, in characters. */
const MAX_ISOLATE_LENGTH = 256;

/**
 * How long an isolate's gauges count in the totals after its last report,
 * in milliseconds: an isolate that has not reported for that long is taken
 * to be gone (its queues with it).
 *
 * @example
 * ```ts
 * import { METRICS_GAUGE_TTL_MS } from "@edx/event-tracking/cloudflare";
 * import assert from "node:assert/strict";
 *
 * assert.equal(METRICS_GAUGE_TTL_MS, 30_000);
 * ```
 */
export const METRICS_GAUGE_TTL_MS = 30_000;

/**
 * The shortest time between two reports {@linkcode MetricsReporter.schedule}
 * makes, in milliseconds.
 *
 * @example
 * ```ts
 * import { METRICS_REPORT_INTERVAL_MS } from "@edx/event-tracking/cloudflare";
 * import assert from "node:assert/strict";
 *
 * assert.equal(METRICS_REPORT_INTERVAL_MS, 1_000);
 * ```
 */
export const METRICS_REPORT_INTERVAL_MS = 1_000;

/** A reporter whose counters have not changed still reports this often (ms), so that its gauges do not expire. */
const GAUGE_REFRESH_MS = METRICS_GAUGE_TTL_MS / 3;
/** A scheduled report that has not run this long after it was due was lost (its invocation ended): another may be scheduled. */
const LOST_REPORT_MS = 5_000;

/** The monotonic counters of {@linkcode BackendMetrics}: every one but the `queueDepth` gauge. */
type Counter = Exclude<keyof BackendMetrics, "queueDepth">;
const COUNTERS = Object.keys(emptyMetrics()).filter((key) => key !== "queueDepth") as Counter[];
const FIELDS: readonly string[] = Object.keys(emptyMetrics());

/**
 * The state (`ctx`) of {@linkcode MetricsObject}: a SQLite-backed Durable
 * Object's, as {@linkcode DeadLetterObject} uses it.
 *
 * @example SQLite of node:sqlite standing in for the object's storage
 * ```ts
 * import type { MetricsObjectStateLike } from "@edx/event-tracking/cloudflare";
 * import { DatabaseSync } from "node:sqlite";
 *
 * const db = new DatabaseSync(":memory:");
 * const state: MetricsObjectStateLike = {
 *   storage: {
 *     sql: {
 *       exec(query: string, ...bindings: never[]) {
 *         const rows = db.prepare(query).all(...bindings);
 *         return { toArray: () => rows };
 *       },
 *     },
 *   },
 * };
 * ```
 */
export type MetricsObjectStateLike = DeadLetterObjectStateLike;

/** Options of {@linkcode MetricsObject} beyond what the runtime passes: for tests. */
export interface MetricsObjectOptions {
  /** The clock, in milliseconds since the epoch. @default Date.now */
  now?: () => number;
}

/**
 * A stub of {@linkcode MetricsObject} (`namespace.get(id)`): in workerd
 * every public method of the object is callable on its stub over RPC.
 *
 * @example A stand-in that keeps what it is sent
 * ```ts
 * import { emptyMetrics, type MetricsSnapshot } from "@edx/event-tracking";
 * import type { MetricsObjectStub } from "@edx/event-tracking/cloudflare";
 * import assert from "node:assert/strict";
 *
 * const adds: MetricsSnapshot[] = [];
 * const stub: MetricsObjectStub = {
 *   add: async (_isolate, deltas) => void adds.push(deltas),
 *   totals: () => Promise.resolve({ root: emptyMetrics() }),
 * };
 * await stub.add("isolate-1", { root: { ...emptyMetrics(), received: 1 } }, {});
 * assert.equal(adds[0].root.received, 1);
 * ```
 */
export interface MetricsObjectStub {
  /** Calls {@linkcode MetricsObject.add}. */
  add(isolate: string, deltas: MetricsSnapshot, gauges: Record<string, number>): Promise<void>;
  /** Calls {@linkcode MetricsObject.totals}. */
  totals(): Promise<MetricsSnapshot>;
}

/**
 * A Durable Object namespace binding of {@linkcode MetricsObject}
 * (`env.METRICS`): the part this module uses.
 *
 * @example
 * ```ts
 * import { emptyMetrics } from "@edx/event-tracking";
 * import type { MetricsNamespaceLike } from "@edx/event-tracking/cloudflare";
 * import assert from "node:assert/strict";
 *
 * const namespace: MetricsNamespaceLike = {
 *   idFromName: (name) => name,
 *   get: () => ({ add: () => Promise.resolve(), totals: () => Promise.resolve({ root: emptyMetrics() }) }),
 * };
 * const stub = namespace.get(namespace.idFromName("metrics") as never);
 * assert.deepEqual(Object.keys(await stub.totals()), ["root"]);
 * ```
 */
export interface MetricsNamespaceLike {
  /** The id of the object of that name. */
  idFromName(name: string): unknown;
  /** The stub of the object of that id. */
  get(id: never): MetricsObjectStub;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function checkIsolate(isolate: unknown): string {
  if (typeof isolate !== "string" || isolate === "" || isolate.length > MAX_ISOLATE_LENGTH) {
    throw new TypeError(
      `Cannot add metrics: 'isolate' must be a non-empty string of at most ${MAX_ISOLATE_LENGTH} characters, got ${
        typeof isolate === "string" ? `${isolate.length} characters` : typeName(isolate)
      }`,
    );
  }
  return isolate;
}

/** The entries of a record of backend path to something, checked: an object, with at most MAX_METRICS_PATHS paths. */
function pathEntries(value: unknown, name: string, what: string): [string, unknown][] {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(
      `Cannot add metrics: '${name}' must be an object of backend path to ${what}, got ${typeName(value)}`,
    );
  }
  const entries = Object.entries(value);
  if (entries.length > MAX_METRICS_PATHS) {
    throw new RangeError(
      `Cannot add metrics: '${name}' has ${entries.length} backend paths, more than ${MAX_METRICS_PATHS}`,
    );
  }
  for (const [path] of entries) {
    if (path === "" || path.length > MAX_PATH_LENGTH) {
      throw new RangeError(
        `Cannot add metrics: '${name}' has a backend path of ${path.length} characters (1 to ${MAX_PATH_LENGTH})`,
      );
    }
  }
  return entries;
}

function checkNumber(value: unknown, what: string): number {
  if (typeof value !== "number") {
    throw new TypeError(`Cannot add metrics: ${what} must be a number, got ${typeName(value)}`);
  }
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`Cannot add metrics: ${what} must be a finite non-negative number: current value is ${value}`);
  }
  return value;
}

/** A path's counter deltas, checked: known fields only, each a finite non-negative number (missing ones are 0). */
function checkDeltas(path: string, value: unknown): Record<Counter, number> {
  const where = `deltas[${JSON.stringify(path)}]`;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`Cannot add metrics: ${where} must be an object of counter to number, got ${typeName(value)}`);
  }
  const deltas = emptyMetrics();
  for (const [key, number] of Object.entries(value)) {
    if (!FIELDS.includes(key)) {
      throw new TypeError(`Cannot add metrics: ${where} has "${key}", which is not a counter (${FIELDS.join(", ")})`);
    }
    // queueDepth is a gauge: checked, and not added (gauges are the third argument).
    deltas[key as keyof BackendMetrics] = checkNumber(number, `${where}.${key}`);
  }
  return deltas;
}

/** Orders backend paths as a tree lists them: depth first, siblings by name. */
function treeOrder(a: string, b: string): number {
  const x = a.split("/");
  const y = b.split("/");
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return x.length - y.length;
}

/**
 * The Durable Object that keeps a Worker's counters, summed over its
 * isolates (export it from the Worker and bind it as `METRICS`; see
 * worker/wrangler.toml), in its SQLite storage: one row per backend path and
 * counter with its total, and one row per isolate with its latest gauges and
 * when it reported them. Its methods are called over RPC:
 *
 * - `add(isolate, deltas, gauges)` adds each path's counter deltas (every
 *   counter of `BackendMetrics` but `queueDepth`: they are totals, which only
 *   grow) to the stored totals, and records `gauges` (each path's
 *   `queueDepth`) as the isolate's latest, now;
 * - `totals()` answers the totals as a `MetricsSnapshot` (paths as a tree
 *   lists them: depth first, siblings by name), whose `queueDepth` is the sum
 *   of the gauges of the isolates that reported within the last
 *   {@linkcode METRICS_GAUGE_TTL_MS} ms (older ones are dropped).
 *
 * Each call runs in one transaction, and a call with a bad argument changes
 * nothing. One object answers every isolate: the reporters send at most one
 * call a second each, whatever the traffic.
 *
 * @example Two isolates add; the totals are their sums (SQLite of node:sqlite standing in for the object's storage)
 * ```ts
 * import { emptyMetrics } from "@edx/event-tracking";
 * import { MetricsObject } from "@edx/event-tracking/cloudflare";
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
 * const object = new MetricsObject({ storage: { sql } }, {});
 * await object.add("isolate-a", { "root/logs": { ...emptyMetrics(), received: 3 } }, { "root/logs": 2 });
 * await object.add("isolate-b", { "root/logs": { ...emptyMetrics(), received: 4, delivered: 1 } }, { "root/logs": 1 });
 * const { "root/logs": logs } = await object.totals();
 * assert.deepEqual([logs.received, logs.delivered, logs.queueDepth], [7, 1, 3]);
 * await assert.rejects(object.add("isolate-a", { "root/logs": { ...emptyMetrics(), received: -1 } }, {}), RangeError);
 * ```
 */
export class MetricsObject extends DurableObjectBase {
  readonly #state: MetricsObjectStateLike;
  readonly #now: () => number;

  /**
   * Called by the runtime with the object's state; creates the tables if
   * they are missing. `options` are for tests.
   */
  constructor(state: MetricsObjectStateLike, env: unknown, options: MetricsObjectOptions = {}) {
    super(state as unknown as DurableObjectStateLike, env);
    this.#state = state;
    this.#now = options.now ?? Date.now;
    const { sql } = state.storage;
    sql.exec(
      "CREATE TABLE IF NOT EXISTS metrics_totals (path TEXT NOT NULL, counter TEXT NOT NULL, value INTEGER NOT NULL, " +
        "PRIMARY KEY (path, counter))",
    );
    sql.exec(
      "CREATE TABLE IF NOT EXISTS metrics_isolates (isolate TEXT PRIMARY KEY, gauges TEXT NOT NULL, at INTEGER NOT NULL)",
    );
  }

  /**
   * Adds the counter deltas of an isolate to the totals, path by path, and
   * records its gauges (each path's `queueDepth`; the `queueDepth` of
   * `deltas` is not added) as its latest.
   *
   * @param isolate The reporting isolate's id (at most 256 characters).
   * @param deltas What each path's counters grew by since the isolate's last report; missing counters are 0.
   * @param gauges Each path's `queueDepth` in the isolate now; missing paths are 0.
   * @throws {TypeError} If `isolate` is not a non-empty string, `deltas` or `gauges` not an object of path to
   *   counters or numbers, or a path's deltas have a field that is not a counter.
   * @throws {RangeError} If a number is negative or not finite, `deltas` or `gauges` has more than
   *   {@linkcode MAX_METRICS_PATHS} paths or an empty path, or the object would keep totals of more than
   *   {@linkcode MAX_STORED_METRICS_PATHS} paths.
   */
  // deno-lint-ignore require-await
  async add(isolate: string, deltas: MetricsSnapshot, gauges: Record<string, number>): Promise<void> {
    const id = checkIsolate(isolate);
    const counters = pathEntries(deltas, "deltas", "counters").map(([path, value]) =>
      [path, checkDeltas(path, value)] as const
    );
    const depths: Record<string, number> = {};
    for (const [path, value] of pathEntries(gauges, "gauges", "queue depth")) {
      const depth = checkNumber(value, `gauges[${JSON.stringify(path)}]`);
      if (depth > 0) depths[path] = depth;
    }
    const now = this.#now();
    this.#transaction((sql) => {
      const known = counters.map(([path]) =>
        sql.exec("SELECT 1 FROM metrics_totals WHERE path = ? LIMIT 1", path).toArray().length > 0
      );
      const added = known.filter((isKnown) => !isKnown).length;
      if (added > 0) {
        const [{ paths }] = sql.exec("SELECT COUNT(DISTINCT path) AS paths FROM metrics_totals").toArray();
        if (Number(paths) + added > MAX_STORED_METRICS_PATHS) {
          throw new RangeError(
            `Cannot add metrics: the object keeps totals of ${paths} backend paths, and ${added} more would be ` +
              `more than ${MAX_STORED_METRICS_PATHS}`,
          );
        }
      }
      counters.forEach(([path, values], i) => {
        for (const counter of COUNTERS) {
          // A known path's counter that did not grow has nothing to write.
          if (known[i] && values[counter] === 0) continue;
          sql.exec(
            "INSERT INTO metrics_totals (path, counter, value) VALUES (?, ?, ?) " +
              "ON CONFLICT (path, counter) DO UPDATE SET value = value + excluded.value",
            path,
            counter,
            values[counter],
          );
        }
      });
      sql.exec("DELETE FROM metrics_isolates WHERE at < ?", now - METRICS_GAUGE_TTL_MS);
      sql.exec(
        "INSERT INTO metrics_isolates (isolate, gauges, at) VALUES (?, ?, ?) " +
          "ON CONFLICT (isolate) DO UPDATE SET gauges = excluded.gauges, at = excluded.at",
        id,
        JSON.stringify(depths),
        now,
      );
    });
  }

  /**
   * The totals of every path reported, as a tree lists them, with
   * `queueDepth` the sum of the gauges of the isolates that reported within
   * the last {@linkcode METRICS_GAUGE_TTL_MS} ms (the others' are dropped).
   */
  // deno-lint-ignore require-await
  async totals(): Promise<MetricsSnapshot> {
    const now = this.#now();
    return this.#transaction((sql) => {
      sql.exec("DELETE FROM metrics_isolates WHERE at < ?", now - METRICS_GAUGE_TTL_MS);
      const totals = new Map<string, BackendMetrics>();
      const of = (path: string) => {
        let counters = totals.get(path);
        if (counters === undefined) totals.set(path, counters = emptyMetrics());
        return counters;
      };
      for (const row of sql.exec("SELECT path, counter, value FROM metrics_totals").toArray()) {
        const counters = of(String(row.path));
        const counter = String(row.counter) as Counter;
        if (COUNTERS.includes(counter)) counters[counter] = Number(row.value);
      }
      for (const row of sql.exec("SELECT gauges FROM metrics_isolates").toArray()) {
        for (const [path, depth] of Object.entries(JSON.parse(String(row.gauges)) as Record<string, number>)) {
          of(path).queueDepth += depth;
        }
      }
      const snapshot: MetricsSnapshot = {};
      for (const path of [...totals.keys()].sort(treeOrder)) snapshot[path] = totals.get(path)!;
      return snapshot;
    });
  }

  #transaction<T>(fn: (sql: SqlStorageLike) => T): T {
    const { storage } = this.#state;
    return storage.transactionSync === undefined ? fn(storage.sql) : storage.transactionSync(() => fn(storage.sql));
  }
}

/** Options of {@linkcode MetricsReporter}. */
export interface MetricsReporterOptions {
  /** The Durable Object namespace binding of {@linkcode MetricsObject}. */
  namespace: MetricsNamespaceLike;
  /** This isolate's counters now (summed over its trackers): what is reported is how much they grew. */
  snapshot: () => MetricsSnapshot;
  /** The isolate's id, as the object knows it. @default crypto.randomUUID() */
  isolate?: string;
  /** The object's name. @default "metrics" */
  name?: string;
  /** The shortest time between two reports {@linkcode MetricsReporter.schedule} makes, in ms. @default 1000 */
  intervalMs?: number;
  /** Where a failing report is logged (once per failure streak). @default consoleLogger */
  logger?: DiagnosticLogger;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Reports an isolate's counters to {@linkcode MetricsObject}: it keeps what
 * it has reported and sends the difference since then
 * (`stub.add(isolate, deltas, gauges)`): the growth of each path's counters,
 * and each path's `queueDepth` now (the isolate's gauges). Only paths whose
 * counters grew are sent (every path at the first report), and a report with
 * nothing new is not sent, unless the last one is 10 s old (so that the
 * isolate's gauges do not expire).
 *
 * - {@linkcode MetricsReporter.schedule}: a report at most once per
 *   `intervalMs`: now if the last one is that old, else once it is (one
 *   report for every call meanwhile), kept alive with `ctx.waitUntil` so that
 *   the response is not delayed;
 * - {@linkcode MetricsReporter.report}: a report now (the end of a queue
 *   batch);
 * - {@linkcode MetricsReporter.totals}: a report now, then the object's totals.
 *
 * A report never rejects. One that fails keeps its deltas for the next one,
 * so nothing is lost (as long as the isolate lives); the failure is logged
 * once, when reports start failing, and the recovery once too. Reports may
 * overlap: each sends what the ones before it did not, so nothing is counted
 * twice.
 *
 * @example Only what grew since the last report is sent
 * ```ts
 * import { emptyMetrics, type MetricsSnapshot } from "@edx/event-tracking";
 * import { MetricsReporter } from "@edx/event-tracking/cloudflare";
 * import assert from "node:assert/strict";
 *
 * const adds: MetricsSnapshot[] = [];
 * const namespace = {
 *   idFromName: (name: string) => name,
 *   get: () => ({ add: async (_: string, deltas: MetricsSnapshot) => void adds.push(deltas), totals: async () => ({}) }),
 * };
 * let received = 5;
 * const reporter = new MetricsReporter({ namespace, snapshot: () => ({ root: { ...emptyMetrics(), received } }) });
 * await reporter.report();
 * received = 7;
 * await reporter.report();
 * await reporter.report(); // nothing grew: nothing sent
 * assert.deepEqual(adds.map((deltas) => deltas.root.received), [5, 2]);
 * ```
 */
export class MetricsReporter {
  /** This isolate's id, as the object knows it. */
  readonly isolate: string;
  readonly #namespace: MetricsNamespaceLike;
  readonly #name: string;
  readonly #snapshot: () => MetricsSnapshot;
  readonly #interval: number;
  readonly #logger: DiagnosticLogger;
  // What the reports sent so far (in flight or done) covered, per path: the next one sends the growth since.
  #base: MetricsSnapshot = {};
  // The deltas of reports that failed: sent again with the next one.
  #carried = new Map<string, BackendMetrics>();
  // When the last report was sent, and the gauges it sent (unset once a report failed: they are sent again).
  #sentAt = -Infinity;
  #gauges: string | undefined;
  // The report `schedule` has made and not run yet: when it is due.
  #scheduled: { due: number } | undefined;
  #failing = false;

  /**
   * Creates the reporter; it does no I/O.
   *
   * @throws {TypeError} If `namespace` is not a Durable Object namespace binding, or `snapshot` not a function.
   * @throws {RangeError} If `intervalMs` is not a non-negative finite number.
   */
  constructor(options: MetricsReporterOptions) {
    const { namespace, snapshot } = options ?? {};
    if (typeof namespace?.idFromName !== "function" || typeof namespace.get !== "function") {
      throw new TypeError(
        `Cannot create MetricsReporter: 'namespace' must be a Durable Object namespace binding, got ${
          typeName(namespace)
        }`,
      );
    }
    if (typeof snapshot !== "function") {
      throw new TypeError(`Cannot create MetricsReporter: 'snapshot' must be a function, got ${typeName(snapshot)}`);
    }
    const interval = options.intervalMs ?? METRICS_REPORT_INTERVAL_MS;
    if (typeof interval !== "number" || !Number.isFinite(interval) || interval < 0) {
      throw new RangeError(
        `Cannot create MetricsReporter: 'intervalMs' must be a non-negative number: current value is ${interval}`,
      );
    }
    this.#namespace = namespace;
    this.#snapshot = snapshot;
    this.#interval = interval;
    this.#name = options.name ?? METRICS_OBJECT_NAME;
    this.#logger = options.logger ?? consoleLogger;
    // Generated here, not at module load: a Worker may not generate random values in its global scope.
    this.isolate = options.isolate ?? crypto.randomUUID();
  }

  /**
   * Makes a report at most once per `intervalMs`: now if the last one is
   * that old, else once it is; while one is waiting, another call does
   * nothing (that one reports what is new by then). The report is handed to
   * `ctx.waitUntil`, so that the invocation lives until it is made.
   *
   * @example
   * ```ts
   * import { emptyMetrics } from "@edx/event-tracking";
   * import { MetricsReporter } from "@edx/event-tracking/cloudflare";
   * import assert from "node:assert/strict";
   *
   * let adds = 0;
   * const namespace = {
   *   idFromName: (name: string) => name,
   *   get: () => ({ add: async () => void adds++, totals: async () => ({}) }),
   * };
   * let received = 0;
   * const reporter = new MetricsReporter({ namespace, intervalMs: 50, snapshot: () => ({ root: { ...emptyMetrics(), received } }) });
   * const reports: Promise<unknown>[] = [];
   * const ctx = { waitUntil: (promise: Promise<unknown>) => void reports.push(promise) };
   * received = 1;
   * reporter.schedule(ctx); // the first report: made now
   * await Promise.all(reports);
   * received = 2;
   * reporter.schedule(ctx); // within 50 ms of it: made 50 ms after it...
   * received = 3;
   * reporter.schedule(ctx); // ...and that report sends this too
   * await Promise.all(reports);
   * assert.deepEqual([reports.length, adds], [2, 2]);
   * ```
   *
   * @param ctx The Worker invocation's context: its `waitUntil` keeps the invocation alive until the report is made.
   */
  schedule(ctx?: { waitUntil(promise: Promise<unknown>): void }): void {
    const now = Date.now();
    if (this.#scheduled !== undefined && now < this.#scheduled.due + LOST_REPORT_MS) return;
    const wait = Math.max(0, this.#sentAt + this.#interval - now);
    const scheduled = { due: now + wait };
    this.#scheduled = scheduled;
    const report = (wait === 0 ? Promise.resolve() : sleep(wait)).then(() => {
      if (this.#scheduled === scheduled) this.#scheduled = undefined;
      return this.report();
    });
    ctx?.waitUntil(report);
  }

  /**
   * Sends the object what this isolate's counters grew by since the last
   * report (and the deltas of the reports that failed), and its gauges; if
   * there is nothing new (and the last report is less than 10 s old), it
   * sends nothing.
   *
   * @returns A promise that resolves once the call has settled; a failure is logged, not thrown.
   */
  async report(): Promise<void> {
    let deltas: MetricsSnapshot;
    let gauges: Record<string, number>;
    try {
      const prepared = this.#prepare();
      if (prepared === undefined) return;
      ({ deltas, gauges } = prepared);
    } catch (error) {
      this.#failed(error, "its counters could not be read");
      return;
    }
    try {
      await this.#stub().add(this.isolate, deltas, gauges);
    } catch (error) {
      // Kept for the next report: nothing is lost.
      for (const [path, counters] of Object.entries(deltas)) {
        const carried = this.#carried.get(path) ?? emptyMetrics();
        for (const counter of COUNTERS) carried[counter] += counters[counter];
        this.#carried.set(path, carried);
      }
      this.#gauges = undefined;
      this.#failed(error, "the deltas are kept for the next report");
      return;
    }
    if (this.#failing) {
      this.#failing = false;
      this.#logger.warn(`MetricsReporter ${this.isolate}: reports reach the metrics object again`);
    }
  }

  /**
   * Reports now ({@linkcode MetricsReporter.report}), then answers the
   * object's totals: every isolate's counters, summed.
   *
   * @example
   * ```ts
   * import { emptyMetrics } from "@edx/event-tracking";
   * import { MetricsObject, MetricsReporter } from "@edx/event-tracking/cloudflare";
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
   * const object = new MetricsObject({ storage: { sql } }, {});
   * const namespace = { idFromName: (name: string) => name, get: () => object };
   * const one = new MetricsReporter({ namespace, snapshot: () => ({ root: { ...emptyMetrics(), received: 2 } }) });
   * const two = new MetricsReporter({ namespace, snapshot: () => ({ root: { ...emptyMetrics(), received: 3 } }) });
   * await one.report();
   * assert.equal((await two.totals()).root.received, 5);
   * ```
   *
   * @throws {Error} Whatever the object's `totals` call rejected with.
   */
  async totals(): Promise<MetricsSnapshot> {
    await this.report();
    return await this.#stub().totals();
  }

  #stub(): MetricsObjectStub {
    return this.#namespace.get(this.#namespace.idFromName(this.#name) as never);
  }

  /** What the next call sends, or undefined when there is nothing to send; moves the base on. */
  #prepare(): { deltas: MetricsSnapshot; gauges: Record<string, number> } | undefined {
    const current = this.#snapshot();
    const base = this.#base;
    const next: MetricsSnapshot = { ...base };
    const deltas: MetricsSnapshot = {};
    const gauges: Record<string, number> = {};
    for (const path of new Set([...Object.keys(current), ...this.#carried.keys()])) {
      const now = current[path];
      const before = base[path];
      const carried = this.#carried.get(path);
      const delta = emptyMetrics();
      const covered = { ...before ?? emptyMetrics(), queueDepth: 0 };
      for (const counter of COUNTERS) {
        const value = now?.[counter] ?? 0;
        const previous = before?.[counter] ?? 0;
        delta[counter] = Math.max(0, value - previous) + (carried?.[counter] ?? 0);
        covered[counter] = Math.max(value, previous);
      }
      next[path] = covered;
      // Every path at the first report (the object lists it), then those that grew (or were carried).
      if (before === undefined || carried !== undefined || COUNTERS.some((counter) => delta[counter] > 0)) {
        deltas[path] = delta;
      }
      const depth = now?.queueDepth ?? 0;
      if (depth > 0) gauges[path] = depth;
    }
    const gaugesJson = JSON.stringify(gauges);
    const at = Date.now();
    const unchanged = Object.keys(deltas).length === 0 && gaugesJson === this.#gauges;
    if (unchanged && at - this.#sentAt < GAUGE_REFRESH_MS) return undefined;
    this.#base = next;
    this.#carried = new Map();
    this.#sentAt = at;
    this.#gauges = gaugesJson;
    return { deltas, gauges };
  }

  #failed(error: unknown, consequence: string): void {
    if (this.#failing) return;
    this.#failing = true;
    this.#logger.error(
      `MetricsReporter ${this.isolate}: reporting to the metrics object failed (${
        describe(error)
      }); ${consequence} (logged once until a report succeeds)`,
      error,
    );
  }
}
