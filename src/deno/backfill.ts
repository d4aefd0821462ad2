/**
 * Backfill: reads Open edX tracking-log files and sends their events through
 * a tracker's tree, as event-routing-backends' `transform_tracking_logs`
 * reads them. `deno task backfill FILE...` runs it on the collector's tree
 * (`EVENT_TRACKING_CONFIG`, else the embedded defaults).
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";
import { LoggerBackend } from "../backends/logger.ts";
import { restoreEvent, type TrackingEvent } from "../event.ts";
import { eventTimestamp, LEGACY_CONTEXT_FIELDS, pythonIsoformat } from "../processors/shim.ts";
import type { Tracker } from "../tracker.ts";
import { walkTree } from "../tree.ts";

/** A line that could not be read as an event. */
export interface BadLine {
  /** The file, as given. */
  file: string;
  /** Its line number, from 1. */
  line: number;
  /** Why it was not an event. */
  reason: string;
}

/** How far a backfill has gone, as `onProgress` is told. */
export interface BackfillProgress {
  /** The file being read. */
  file: string;
  /** Lines read from it so far. */
  lines: number;
  /** The totals so far, over every file. */
  totals: BackfillSummary;
}

/** What a backfill did. */
export interface BackfillSummary {
  /** Files read. */
  files: number;
  /** Lines read (blank lines not counted). */
  read: number;
  /** Events sent whose delivery settled without error. */
  emitted: number;
  /** Lines that were not events: reported, counted, skipped. */
  bad: number;
  /** Events whose delivery through the tree failed. */
  failed: number;
}

/** Options of {@linkcode backfillTrackingLogs}. */
export interface BackfillOptions {
  /** How many events are in flight at once; each chunk is awaited before the next is sent. @default 500 */
  chunkSize?: number;
  /** Told of each bad line. @default writes `file:line: reason` to standard error */
  onBadLine?: (bad: BadLine) => void;
  /** Told of the progress at most every `progressIntervalMs`, and at the end of each file. @default nothing */
  onProgress?: (progress: BackfillProgress) => void;
  /** The least time between two `onProgress` calls within a file, in milliseconds. @default 5000 */
  progressIntervalMs?: number;
  /** Told of each event whose delivery failed. @default writes it to standard error */
  onFailure?: (event: TrackingEvent, error: unknown) => void;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
const MAX_MS = 2 ** 48 - 1;

// What event-routing-backends' `^.*?(\{.*\})\s*$` sees as whitespace (Python's `\s`).
function isSpace(code: number): boolean {
  return code === 0x20 || (code >= 0x09 && code <= 0x0d) || (code >= 0x1c && code <= 0x1f) || code === 0x85 ||
    code === 0xa0 || code === 0x1680 || (code >= 0x2000 && code <= 0x200a) || code === 0x2028 ||
    code === 0x2029 || code === 0x202f || code === 0x205f || code === 0x3000;
}

/**
 * The JSON part of a tracking-log line, as event-routing-backends' parser
 * `^.*?(\{.*\})\s*$` matches it: from the first `{` to the last `}`, which
 * only whitespace may follow. Works for bare lines and for any logging
 * prefix without a brace (Tutor's, older ones). `undefined` if no match.
 *
 * @example
 * ```ts
 * import { trackingLogJson } from "@edx/event-tracking/deno";
 * import assert from "node:assert/strict";
 *
 * const line = '2023-05-23 13:53:13,461 INFO 20 [tracking] [user None] [ip None] logger.py:41 - {"name": "a"}  ';
 * assert.equal(trackingLogJson(line), '{"name": "a"}');
 * assert.equal(trackingLogJson("no json here"), undefined);
 * ```
 */
export function trackingLogJson(line: string): string | undefined {
  // Linear, where the regular expression backtracks: same match (no newline in a line).
  let end = line.length;
  while (end > 0 && isSpace(line.charCodeAt(end - 1))) end--;
  if (end === 0 || line[end - 1] !== "}" || line.includes("\n")) return undefined;
  const start = line.indexOf("{");
  return start >= 0 && start < end - 1 ? line.slice(start, end) : undefined;
}

/**
 * A deterministic event id for a line: UUIDv7-shaped, its 48-bit time the
 * event's time (milliseconds since the epoch) and its 74 other bits from the
 * SHA-256 of the line's JSON, so the same line always gets the same id
 * (MongoDB's `_id` then makes a second backfill a no-op) and ids sort by time.
 *
 * @example
 * ```ts
 * import { trackingLogEventId } from "@edx/event-tracking/deno";
 * import assert from "node:assert/strict";
 *
 * const id = trackingLogEventId('{"name": "a"}', Date.parse("2024-05-01T12:00:00Z"));
 * assert.equal(id, trackingLogEventId('{"name": "a"}', Date.parse("2024-05-01T12:00:00Z")));
 * assert.match(id, /^018f3406-9e00-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
 * ```
 */
export function trackingLogEventId(json: string, ms: number): string {
  const time = Math.min(MAX_MS, Math.max(0, Math.floor(ms))).toString(16).padStart(12, "0");
  const h = bytesToHex(sha256(utf8ToBytes(json)));
  const variant = (8 | (parseInt(h[3], 16) & 3)).toString(16);
  return `${time.slice(0, 8)}-${time.slice(8)}-7${h.slice(0, 3)}-${variant}${h.slice(4, 7)}-${h.slice(7, 19)}`;
}

function isDict(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// The shim's top-level fields and the defaults it gives them when the context has none.
const TOP_LEVEL_DEFAULTS: readonly [string, (record: Record<string, unknown>) => unknown][] = [
  ...LEGACY_CONTEXT_FIELDS.map((field): [string, () => unknown] => [field, () => ""]),
  ["event_type", (record) => record.name],
  ["event_source", () => "server"],
  ["page", () => null],
];

/**
 * Reads one tracking-log line as an event, with event-routing-backends'
 * semantics: the JSON part (see {@linkcode trackingLogJson}); `event` becomes
 * `data` (parsed when it is JSON text); `time` (else `timestamp`) the
 * event's `timestamp`, kept exactly as `context.timestamp` when it is finer
 * than milliseconds; the shim's top-level fields (`username`, `session`,
 * `ip`, `agent`, `host`, `referer`, `accept_language`, `event_type`,
 * `event_source`, `page`) go back into `context` unless they hold the shim's
 * default. The name is `name`, else `event_type`. The id is
 * `context.event_id` (what the collector writes) or the line's `id` when it
 * is a UUID, else {@linkcode trackingLogEventId}: the same line always
 * makes the same event.
 *
 * @example
 * ```ts
 * import { parseTrackingLogLine } from "@edx/event-tracking/deno";
 * import assert from "node:assert/strict";
 *
 * const event = parseTrackingLogLine(
 *   '{"name": "edx.ui.click", "context": {"user_id": 7}, "username": "ada", "session": "", "ip": "", ' +
 *     '"agent": "", "host": "", "referer": "", "accept_language": "", "event": "{\\"x\\": 1}", ' +
 *     '"time": "2024-05-01T12:00:00.123000+00:00", "event_type": "edx.ui.click", "event_source": "browser", "page": null}',
 * );
 * assert.deepEqual(event.data, { x: 1 });
 * assert.equal(event.timestamp, "2024-05-01T12:00:00.123Z");
 * assert.deepEqual(event.context, { user_id: 7, username: "ada", event_source: "browser" });
 * ```
 *
 * @throws {SyntaxError} If the line has no JSON object, or its JSON is not valid.
 * @throws {TypeError} If it has no name, no valid time, or a context that is not an object.
 */
export function parseTrackingLogLine(line: string): TrackingEvent {
  const json = trackingLogJson(line);
  if (json === undefined) throw new SyntaxError("no JSON object in the line");
  let record: unknown;
  try {
    record = JSON.parse(json);
  } catch (error) {
    throw new SyntaxError(`not JSON: ${(error as Error).message}`);
  }
  if (!isDict(record)) throw new SyntaxError("not a JSON object");
  const name = typeof record.name === "string" && record.name !== ""
    ? record.name
    : typeof record.event_type === "string" && record.event_type !== ""
    ? record.event_type
    : undefined;
  if (name === undefined) throw new TypeError('no "name" or "event_type"');
  const time = record.time ?? record.timestamp;
  const timestamp = typeof time === "string" ? eventTimestamp(time) : undefined;
  if (timestamp === undefined) throw new TypeError(`"time" must be an ISO-8601 time, got ${JSON.stringify(time)}`);
  const given = record.context ?? {};
  if (!isDict(given)) throw new TypeError('"context" must be an object');
  const context: Record<string, unknown> = { ...given };
  for (const [field, fallback] of TOP_LEVEL_DEFAULTS) {
    if (Object.hasOwn(record, field) && record[field] !== fallback({ ...record, name })) context[field] = record[field];
  }
  if (pythonIsoformat(timestamp) !== time && !Object.hasOwn(context, "timestamp")) context.timestamp = time;
  let data: unknown = {};
  if (Object.hasOwn(record, "event")) {
    data = record.event;
    if (typeof data === "string") {
      try {
        data = JSON.parse(data);
      } catch {
        // Not JSON text: kept as the string it is.
      }
    }
  } else if (Object.hasOwn(record, "data")) {
    data = record.data;
  }
  let id: string;
  if (typeof context.event_id === "string" && UUID.test(context.event_id)) {
    id = context.event_id.toLowerCase();
    delete context.event_id;
  } else if (typeof record.id === "string" && UUID.test(record.id)) {
    id = record.id.toLowerCase();
  } else {
    id = trackingLogEventId(json, Date.parse(timestamp));
  }
  return restoreEvent({ id, name, timestamp, context, data: data ?? {} });
}

/** Lines of a file, gzip or not (by its magic bytes), without their line ends. */
async function* linesOf(path: string): AsyncGenerator<string> {
  const file = await Deno.open(path, { read: true });
  let stream: ReadableStream<Uint8Array>;
  try {
    const magic = new Uint8Array(2);
    let got = 0;
    while (got < 2) {
      const n = await file.read(magic.subarray(got));
      if (n === null) break;
      got += n;
    }
    await file.seek(0, Deno.SeekMode.Start);
    stream = file.readable;
    if (got === 2 && magic[0] === 0x1f && magic[1] === 0x8b) {
      stream = stream.pipeThrough(
        new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
      );
    }
  } catch (error) {
    file.close();
    throw error;
  }
  let rest = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + text).split("\n");
    rest = parts.pop()!;
    for (const part of parts) yield part.endsWith("\r") ? part.slice(0, -1) : part;
  }
  if (rest !== "") yield rest.endsWith("\r") ? rest.slice(0, -1) : rest;
}

async function realPath(path: string): Promise<string | undefined> {
  try {
    return await Deno.realPath(path);
  } catch {
    return undefined;
  }
}

/**
 * Reads tracking-log files — bare JSON lines, Tutor-prefixed lines, older
 * prefixes, gzip files (by their content, not their name) — and sends each
 * event through the tracker's tree (`tracker.send`, so its processors run),
 * awaiting each chunk of `chunkSize` events before the next. Lines are read
 * with {@linkcode parseTrackingLogLine}: ids come from the line's content, so
 * a second run makes the same events (an idempotent sink, MongoDB, keeps one
 * copy). A bad line is reported with its file and line number, counted and
 * skipped; it never stops the run. Resolves with the totals; the tracker is
 * left open (close it to finish the deliveries of async branches).
 *
 * @example
 * ```ts
 * import { InMemoryBackend, Tracker } from "@edx/event-tracking";
 * import { backfillTrackingLogs } from "@edx/event-tracking/deno";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(
 *   `${dir}/tracking.log`,
 *   '{"name": "problem_check", "context": {}, "event": {"answer": 42}, "time": "2024-05-01T12:00:00+00:00"}\n' +
 *     "not an event\n",
 * );
 * const sink = new InMemoryBackend();
 * const tracker = new Tracker({ backends: { sink } });
 * const bad: number[] = [];
 * const summary = await backfillTrackingLogs(tracker, [`${dir}/tracking.log`], { onBadLine: (b) => bad.push(b.line) });
 * assert.deepEqual(summary, { files: 1, read: 2, emitted: 1, bad: 1, failed: 0 });
 * assert.deepEqual(bad, [2]);
 * assert.deepEqual(sink.events[0].data, { answer: 42 });
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @throws {Error} Before reading anything, if a `LoggerBackend` of the tree writes one of the files
 * (backfilling a file into itself would append to it forever).
 * @throws {Deno.errors.NotFound} If a file does not exist (the files before it are done).
 */
export async function backfillTrackingLogs(
  tracker: Tracker,
  files: Iterable<string>,
  options: BackfillOptions = {},
): Promise<BackfillSummary> {
  const paths = [...files];
  const chunkSize = options.chunkSize ?? 500;
  if (!Number.isInteger(chunkSize) || chunkSize < 1) {
    throw new RangeError(`backfillTrackingLogs: chunkSize must be a positive integer, got ${chunkSize}`);
  }
  const onBadLine = options.onBadLine ?? ((bad) => console.error(`${bad.file}:${bad.line}: ${bad.reason}`));
  const onFailure = options.onFailure ??
    ((event, error) => console.error(`event ${event.id} (${event.name}) was not delivered:`, error));
  const interval = options.progressIntervalMs ?? 5000;
  const written = new Map<string, string>();
  for (const { backend } of walkTree(tracker.backends)) {
    if (backend instanceof LoggerBackend && backend.path !== undefined) {
      const real = await realPath(backend.path);
      if (real !== undefined) written.set(real, backend.path);
    }
  }
  for (const path of paths) {
    const real = await realPath(path);
    if (real !== undefined && written.has(real)) {
      throw new Error(`Cannot backfill ${path}: the tree writes to it (LoggerBackend path ${written.get(real)})`);
    }
  }
  const totals: BackfillSummary = { files: 0, read: 0, emitted: 0, bad: 0, failed: 0 };
  let pending: Promise<void>[] = [];
  const settle = async () => {
    await Promise.all(pending);
    pending = [];
  };
  for (const file of paths) {
    let lineNumber = 0;
    let lines = 0;
    let lastProgress = Date.now();
    for await (const line of linesOf(file)) {
      lineNumber++;
      if (line.trim() === "") continue;
      lines++;
      totals.read++;
      let event: TrackingEvent;
      try {
        event = parseTrackingLogLine(line);
      } catch (error) {
        totals.bad++;
        onBadLine({ file, line: lineNumber, reason: error instanceof Error ? error.message : String(error) });
        continue;
      }
      let sent: Promise<void> | undefined;
      try {
        sent = tracker.send(event);
      } catch (error) {
        totals.failed++;
        onFailure(event, error);
        continue;
      }
      if (sent === undefined) {
        totals.emitted++;
      } else {
        pending.push(sent.then(() => void totals.emitted++, (error) => {
          totals.failed++;
          onFailure(event, error);
        }));
        if (pending.length >= chunkSize) await settle();
      }
      if (options.onProgress !== undefined && Date.now() - lastProgress >= interval) {
        lastProgress = Date.now();
        options.onProgress({ file, lines, totals: { ...totals } });
      }
    }
    await settle();
    totals.files++;
    options.onProgress?.({ file, lines, totals: { ...totals } });
  }
  return totals;
}

// ---- `deno task backfill FILE...` ----

async function loadConfig(value: string): Promise<import("../config.ts").TrackerConfig> {
  const text = value.trimStart().startsWith("{") ? value : await Deno.readTextFile(value);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new SyntaxError(`Cannot read EVENT_TRACKING_CONFIG: not JSON (${(error as Error).message})`);
  }
}

async function main(args: string[]): Promise<number> {
  if (args.length === 0 || args.includes("--help") || args.includes("-h")) {
    console.error(
      "Usage: deno task backfill FILE...\n" +
        "Sends the events of Open edX tracking-log files (bare, Tutor-prefixed or gzip) through the collector's tree\n" +
        "(EVENT_TRACKING_CONFIG, else the embedded defaults; EVENT_TRACKING_DATA_DIR, MONGODB_URI).",
    );
    return args.length === 0 ? 2 : 0;
  }
  const { createTracker, MONGO_ENGINE_NAMES } = await import("../config.ts");
  const { defaultCollectorConfig } = await import("./serve.ts");
  const env = Deno.env.toObject();
  const dataDir = env.EVENT_TRACKING_DATA_DIR || "data";
  const mongodbUri = env.MONGODB_URI || undefined;
  const config = env.EVENT_TRACKING_CONFIG ? await loadConfig(env.EVENT_TRACKING_CONFIG) : defaultCollectorConfig(
    dataDir,
    mongodbUri,
    (await import("./tracking_log.ts")).trackingLogPrefix(env.EVENT_TRACKING_LOG_PREFIX),
  );
  const text = JSON.stringify(config);
  const engines = MONGO_ENGINE_NAMES.some((name) => text.includes(`"ENGINE":${JSON.stringify(name)}`))
    ? (await import("../backends/mongo.ts")).mongoEngines(mongodbUri)
    : undefined;
  const tracker = createTracker(config, { dataDir, engines });
  const started = Date.now();
  let summary: BackfillSummary;
  try {
    summary = await backfillTrackingLogs(tracker, args, {
      onProgress: ({ file, lines, totals }) =>
        console.error(
          `${file}: ${lines} line(s) read; in all ${totals.read} read, ${totals.emitted} emitted, ${totals.bad} bad, ${totals.failed} failed`,
        ),
    });
  } finally {
    await tracker.close();
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(
    `backfill: ${summary.files} file(s), ${summary.read} line(s) read, ${summary.emitted} event(s) emitted, ` +
      `${summary.bad} bad line(s), ${summary.failed} failed, in ${seconds} s`,
  );
  return summary.bad + summary.failed > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
