/**
 * Writes each event as one JSON line: to standard output, a file, or a
 * function; as the collector's JSON or as Open edX's tracking-log line.
 *
 * @module
 */

import type { Backend } from "../backend.ts";
import { consoleLogger, type DiagnosticLogger } from "../diagnostics.ts";
import { serializeEvent, type TrackingEvent } from "../event.ts";
import { type BackendMetrics, emptyMetrics, type MetricsSnapshot } from "../metrics.ts";
import { FileSink } from "./_file_sink.ts";
import { trackingLogRecord } from "../processors/shim.ts";
import { pythonJsonDumps } from "../_python_json.ts";
import * as v from "valibot";
import { ImproperlyConfigured } from "../errors.ts";
import {
  type Expect,
  func,
  integer,
  logger,
  must,
  nonEmptyString,
  nonNegativeNumber,
  options,
  parseOptions,
  positiveInteger,
  type SameType,
  string,
} from "../_schema.ts";

/** Log levels the reference accepts, lower-case. */
export type LogLevel = "debug" | "info" | "warning" | "warn" | "error" | "critical";

const CONSOLE_METHOD: Record<LogLevel, "debug" | "info" | "warn" | "error"> = {
  debug: "debug",
  info: "info",
  warning: "warn",
  warn: "warn",
  error: "error",
  critical: "error",
};

/** The reference's default limit on an event's JSON size, in characters. */
export const MAX_EVENT_SIZE = 1024;

/** The LMS's limit on a tracking-log line (`format: "openedx"`), in characters. */
export const OPENEDX_MAX_EVENT_SIZE = 50_000;

/**
 * How lines are written: `"json"`, the event's own JSON; `"openedx"`, the
 * LMS's tracking-log line (the shimmed record, as Python's `json.dumps` writes it).
 */
export type LogFormat = "json" | "openedx";

/** A logging prefix before each tracking-log line: `"tutor"`, the one Tutor's LMS writes (and Aspects' Vector needs). */
export type LogPrefix = "tutor";

const PYTHON_LEVEL: Record<LogLevel, string> = {
  debug: "DEBUG",
  info: "INFO",
  warning: "WARNING",
  warn: "WARNING",
  error: "ERROR",
  critical: "CRITICAL",
};

/** The default bound of a file-writing {@linkcode LoggerBackend}'s buffer, in lines queued or being written. */
export const MAX_PENDING_LINES = 100_000;

/** Options of {@linkcode LoggerBackend}. */
export interface LoggerBackendOptions {
  /**
   * A label for this log, used in diagnostics (the reference's logger name),
   * and the `[name]` of the `tutor` prefix.
   * @default "tracking" with format "openedx", else "event-tracking"
   */
  name?: string;
  /** The console method used when writing to the console. @default "info" */
  level?: LogLevel;
  /**
   * The longest line written, in characters (the limit is inclusive), the
   * prefix not counted. With format `"json"` longer events are not written
   * but counted (`dropped`) and reported; with `"openedx"` `send` throws a
   * `RangeError` for them, counted `failed` and reported, so that an
   * `AsyncRoutingBackend` above dead-letters them. `null` means unlimited.
   * @default 50000 with format "openedx", else 1024
   */
  maxEventSize?: number | null;
  /**
   * `"json"`: one JSON line per event, `{id, name, timestamp, context, data}`.
   * `"openedx"`: the LMS's tracking-log line, the text Python's `json.dumps`
   * writes of the shimmed record (`name`, `context` with the event's id as
   * `event_id`, `username`, …, `page`; events not yet shimmed are shimmed as
   * `LegacyFieldMappingProcessor` does).
   * @default "json"
   */
  format?: LogFormat;
  /**
   * With format `"openedx"`: `"tutor"` writes Tutor's logging prefix before
   * each line, `2024-05-01 12:00:00,123 INFO 7 [tracking] [user 42] [ip 203.0.113.7] logger.py:41 - {…}`
   * (the emit time in UTC), the form Aspects' Vector reads.
   */
  prefix?: LogPrefix;
  /**
   * Append to this JSON-lines file instead of writing to the console. Its
   * parent directories are created; a torn last line left by an interrupted
   * write is removed when the file is opened.
   */
  path?: string;
  /**
   * With `path`: the most lines queued or being written at once. Beyond it
   * `send` rejects with a `RangeError` (counted `failed`), so that the caller
   * retries or dead-letters the event; `saturation()` is the buffer's fill.
   * @default 100000
   */
  maxPendingLines?: number;
  /** Call this with each line instead of writing to the console or a file. */
  write?: (line: string) => void;
  /** How often, at most, oversized events are reported, in milliseconds. @default 60000 */
  reportIntervalMs?: number;
  /**
   * Where oversized events and torn lines removed from the file are reported
   * (write failures reject `send`: its caller counts and reports them).
   * @default consoleLogger
   */
  logger?: DiagnosticLogger;
}

/** The schema of {@linkcode LoggerBackendOptions}: what the constructor and the `logger` ENGINE check. */
export const loggerOptions = /* @__PURE__ */ (() =>
  options({
    name: v.optional(string()),
    level: v.optional(
      v.pipe(
        v.custom<LogLevel>(
          (value) => typeof value === "string" && Object.hasOwn(CONSOLE_METHOD, value.toLowerCase()),
          must('one of "debug", "info", "warning", "warn", "error", "critical" (in any case)'),
        ),
        v.transform((level) => level.toLowerCase() as LogLevel),
      ),
      "info",
    ),
    maxEventSize: v.optional(v.nullable(integer("null or a non-negative integer", 0))),
    format: v.optional(v.picklist(["json", "openedx"], must('"json" or "openedx"')), "json"),
    prefix: v.optional(v.picklist(["tutor"], must('"tutor"'))),
    path: v.optional(nonEmptyString()),
    maxPendingLines: v.optional(positiveInteger(), MAX_PENDING_LINES),
    write: v.optional(func<(line: string) => void>()),
    reportIntervalMs: v.optional(nonNegativeNumber(), 60_000),
    logger: v.optional(logger()),
  }))();
type _SameOptions = Expect<SameType<v.InferInput<typeof loggerOptions>, LoggerBackendOptions>>;

/**
 * Writes one JSON line per event. Events longer than `maxEventSize` are not
 * written: they are counted (`dropped` in the metrics) and reported at most
 * once per `reportIntervalMs`, and at flush — never dropped silently.
 *
 * `send` settles per event. To the console or a `write` function it returns
 * once the line is written (and throws if `write` throws). To a file (`path`)
 * it returns a promise that resolves once the line is in the file and rejects,
 * with an error naming the path, if its write failed; the lines sent in the
 * same tick share one append and one promise. `delivered` and `failed` are
 * counted when that promise settles, and a failed line is not retried here:
 * an `AsyncRoutingBackend` above retries and dead-letters it.
 *
 * The file buffer is bounded: beyond `maxPendingLines` lines queued or being
 * written, `send` rejects at once with a `RangeError`, and `saturation()`
 * reports how full the buffer is. When the file is opened and its last line
 * is torn (a crash or a kill in the middle of a write), that partial line is
 * truncated before anything is appended, and the removal is reported as a
 * warning; a failed append has its torn line removed too, so the file only
 * ever holds whole lines. `close()` flushes, then syncs the file's data to
 * disk (`datasync`) before closing it.
 *
 * @example Write events to a function
 * ```ts
 * import { LoggerBackend, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const tracker = new Tracker({
 *   backends: { log: new LoggerBackend({ write: (line) => lines.push(line) }) },
 * });
 * tracker.emit("edx.ui.click", { x: 1 });
 * assert.deepEqual(JSON.parse(lines[0]).data, { x: 1 });
 * ```
 *
 * With `format: "openedx"` each line is the LMS's tracking-log line (see
 * {@linkcode LoggerBackendOptions.format}), optionally behind Tutor's prefix
 * (`prefix: "tutor"`). `reopen()` closes the file so that the next write
 * opens it again by its path: call it on SIGHUP after logrotate has moved it.
 *
 * @example Write the LMS's tracking-log line, as Tutor does
 * ```ts
 * import { LoggerBackend } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const log = new LoggerBackend({ format: "openedx", prefix: "tutor", write: (line) => lines.push(line) });
 * log.send({
 *   id: "019ac6a1-2b3c-7123-8456-789abcdef012",
 *   name: "edx.ui.click",
 *   timestamp: "2024-05-01T12:00:00.123Z",
 *   context: { user_id: 42, ip: "203.0.113.7" },
 *   data: { label: "café" },
 * });
 * assert.match(lines[0], /^2024-05-01 12:00:00,123 INFO \d+ \[tracking\] \[user 42\] \[ip 203\.0\.113\.7\] logger\.py:41 - \{"name": "edx\.ui\.click", /);
 * assert.match(lines[0], /"event": \{"label": "caf\\u00e9"\}/);
 * ```
 *
 * @example Append to a file, and know when each event is on disk
 * ```ts
 * import { LoggerBackend } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const log = new LoggerBackend({ path: `${dir}/events.jsonl` });
 * const event = { id: "1", name: "edx.ui.click", timestamp: new Date().toISOString(), context: {}, data: {} };
 * await log.send(event); // resolves once the line is written, rejects if it cannot be
 * await log.close(); // flushes, syncs and closes the file
 * assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/events.jsonl`)).id, "1");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class LoggerBackend implements Backend {
  /** The label of this log. */
  readonly name: string;
  /** The longest line written, or `null` for unlimited. */
  readonly maxEventSize: number | null;
  /** How lines are written. */
  readonly format: LogFormat;
  /** The logging prefix of each line, if any. */
  readonly prefix: LogPrefix | undefined;
  /** The file appended to, if any. */
  readonly path: string | undefined;
  /** The most lines queued or being written to the file at once. */
  readonly maxPendingLines: number;
  readonly #write: (line: string) => void = ignore;
  readonly #file: FileSink | undefined;
  readonly #logger: DiagnosticLogger;
  readonly #reportIntervalMs: number;
  readonly #pythonLevel: string;
  readonly #counters: BackendMetrics = emptyMetrics();
  #unreported = 0;
  #largest = 0;
  #lastReport = -Infinity;

  /**
   * Creates the backend. Nothing is opened yet: a file is opened (and its
   * parent directories created) by the first write.
   *
   * @throws {ImproperlyConfigured} If an option is unknown or invalid: `level` not a log level, `write` not a
   * function, `path` not a non-empty string, `maxEventSize` not `null` or a non-negative integer, `maxPendingLines`
   * not a positive integer, `format` not `"json"` or `"openedx"`, `prefix` not `"tutor"` or given without format
   * `"openedx"`.
   */
  constructor(options: LoggerBackendOptions = {}) {
    const o = parseOptions(loggerOptions, options, "LoggerBackend");
    if (o.prefix !== undefined && o.format !== "openedx") {
      throw new ImproperlyConfigured(
        `a prefix is written only with format "openedx", got format "${o.format}"`,
        "LoggerBackend.prefix",
      );
    }
    const openedx = o.format === "openedx";
    this.name = o.name ?? (openedx ? "tracking" : "event-tracking");
    this.maxEventSize = o.maxEventSize === undefined
      ? (openedx ? OPENEDX_MAX_EVENT_SIZE : MAX_EVENT_SIZE)
      : o.maxEventSize;
    this.format = o.format;
    this.prefix = o.prefix;
    this.path = o.write === undefined ? o.path : undefined;
    this.#pythonLevel = PYTHON_LEVEL[o.level];
    this.maxPendingLines = o.maxPendingLines;
    this.#logger = o.logger ?? consoleLogger;
    this.#reportIntervalMs = o.reportIntervalMs;
    if (o.write !== undefined) {
      this.#write = o.write;
    } else if (o.path !== undefined) {
      const path = o.path;
      this.#file = new FileSink(path, {
        label: `LoggerBackend "${this.name}"`,
        onSettled: (lines, error) => {
          if (error === undefined) this.#counters.delivered += lines;
          else this.#counters.failed += lines;
        },
        onRepair: (bytes) =>
          this.#logger.warn(
            `LoggerBackend "${this.name}" removed ${bytes} byte(s) of a torn last line from ${path} (a write was interrupted)`,
          ),
      });
    } else {
      const method = CONSOLE_METHOD[o.level];
      this.#write = (line) => console[method](line);
    }
  }

  /**
   * Writes the event as one JSON line, unless it is longer than `maxEventSize`
   * (then it is counted `dropped`, reported, and nothing is returned).
   *
   * @returns With `path`, a promise that resolves once the line is in the file
   * (shared by the lines sent in the same tick); otherwise nothing, once written.
   * @throws {TypeError} If the event cannot be represented as JSON.
   * @throws If the `write` function throws.
   */
  send(event: TrackingEvent): void | Promise<void> {
    this.#counters.received++;
    let line: string;
    try {
      line = this.format === "openedx" ? pythonJsonDumps(trackingLogRecord(event)) : serializeEvent(event);
    } catch (error) {
      this.#counters.failed++;
      throw error;
    }
    if (this.maxEventSize !== null && line.length > this.maxEventSize) {
      this.#oversized(line.length);
      if (this.format !== "openedx") return;
      this.#counters.failed++;
      throw new RangeError(
        `LoggerBackend "${this.name}": event ${event.id} is ${line.length} characters long, over maxEventSize ${this.maxEventSize}`,
      );
    }
    if (this.prefix === "tutor") line = this.#tutorPrefix(event, line);
    const file = this.#file;
    if (file !== undefined) {
      if (file.pending >= this.maxPendingLines) return this.#refuse(file);
      return file.write(line);
    }
    try {
      this.#write(line);
    } catch (error) {
      this.#counters.failed++;
      throw error;
    }
    this.#counters.delivered++;
  }

  /** Reports oversized events not yet reported, and waits for the file writes in progress (a failed write is not retried). */
  async flush(): Promise<void> {
    if (this.#unreported > 0) this.#report();
    await this.#file?.flush();
  }

  /**
   * Flushes, then syncs the file's data to disk and closes it, if any. A later
   * `send` opens the file again.
   *
   * @throws {Error} If the file could not be synced or closed.
   */
  async close(): Promise<void> {
    await this.flush();
    await this.#file?.close();
  }

  /**
   * Flushes, then syncs and closes the file, so that the next write opens it
   * again by its path: what a process does on SIGHUP once logrotate has
   * moved the file away. Lines sent meanwhile wait for the new file. Nothing
   * to do without a file.
   *
   * @example
   * ```ts
   * import { LoggerBackend } from "@edx/event-tracking";
   * import assert from "node:assert/strict";
   *
   * const dir = await Deno.makeTempDir();
   * const log = new LoggerBackend({ path: `${dir}/tracking.log`, format: "openedx" });
   * const event = { id: "1", name: "a", timestamp: "2024-05-01T12:00:00.000Z", context: {}, data: {} };
   * await log.send(event);
   * await Deno.rename(`${dir}/tracking.log`, `${dir}/tracking.log.1`); // logrotate
   * await log.reopen(); // SIGHUP
   * await log.send({ ...event, id: "2" });
   * await log.close();
   * assert.match(await Deno.readTextFile(`${dir}/tracking.log`), /"event_id": "2"/);
   * await Deno.remove(dir, { recursive: true });
   * ```
   *
   * @throws {Error} If the file could not be synced or closed.
   */
  async reopen(): Promise<void> {
    await this.#file?.close();
  }

  /** How full the file buffer is: lines queued or being written / `maxPendingLines` (0 without a file). */
  saturation(): number {
    return this.#file === undefined ? 0 : Math.min(1, this.#file.pending / this.maxPendingLines);
  }

  /** Adds this backend's counters under `path`; `dropped` counts oversized events, `queueDepth` lines not yet written. */
  collectMetrics(path: string, into: MetricsSnapshot): void {
    into[path] = { ...this.#counters, queueDepth: this.#file?.pending ?? 0 };
  }

  #refuse(file: FileSink): Promise<void> {
    this.#counters.failed++;
    const refused = Promise.reject(
      new RangeError(
        `LoggerBackend "${this.name}": buffer full writing ${file.path} (capacity ${this.maxPendingLines} lines, maxPendingLines)`,
      ),
    );
    // Like a batch's, this rejection is counted here and never goes unhandled.
    refused.catch(ignore);
    return refused;
  }

  #tutorPrefix(event: TrackingEvent, json: string): string {
    const user = word(event.context?.user_id);
    const data = event.data as Record<string, unknown> | null;
    const ip = word(
      typeof data === "object" && data !== null && Object.hasOwn(data, "ip") ? data.ip : event.context?.ip,
    );
    return `${
      asctime(event.timestamp)
    } ${this.#pythonLevel} ${pid()} [${this.name}] [user ${user}] [ip ${ip}] logger.py:41 - ${json}`;
  }

  #oversized(size: number): void {
    if (this.format !== "openedx") this.#counters.dropped++;
    this.#unreported++;
    if (size > this.#largest) this.#largest = size;
    if (Date.now() - this.#lastReport >= this.#reportIntervalMs) this.#report();
  }

  #report(): void {
    this.#lastReport = Date.now();
    this.#logger.warn(
      `LoggerBackend "${this.name}" did not write ${this.#unreported} event(s) longer than maxEventSize ${this.maxEventSize} (largest: ${this.#largest} characters)${
        this.format === "openedx" ? "; send rejected them, so an async router dead-letters them" : ""
      }`,
    );
    this.#unreported = 0;
    this.#largest = 0;
  }
}

function ignore(): void {}

/** Python logging's `asctime` of an ISO-8601 time: `2024-05-01 12:00:00,123` (UTC). */
function asctime(timestamp: string): string {
  const ms = Date.parse(timestamp);
  const iso = Number.isNaN(ms) ? new Date().toISOString() : new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)},${iso.slice(20, 23)}`;
}

/** A value of the prefix as one word without braces (Vector's `[^{}]*`), or Python's `None`. */
function word(value: unknown): string {
  if (value === undefined || value === null || value === "") return "None";
  return String(value).replace(/[{}\s\[\]]+/g, "_");
}

let processId: number | undefined;

function pid(): number {
  const runtime = globalThis as { Deno?: { pid?: number }; process?: { pid?: number } };
  return processId ??= runtime.Deno?.pid ?? runtime.process?.pid ?? 0;
}
