/**
 * Writes each event as one JSON line: to standard output, a file, or a function.
 *
 * @module
 */

import type { Backend } from "../backend.ts";
import { consoleLogger, type DiagnosticLogger } from "../diagnostics.ts";
import { serializeEvent, type TrackingEvent } from "../event.ts";
import { type BackendMetrics, emptyMetrics, type MetricsSnapshot } from "../metrics.ts";
import { FileSink } from "./_file_sink.ts";

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

/** Options of {@linkcode LoggerBackend}. */
export interface LoggerBackendOptions {
  /** A label for this log, used in diagnostics (the reference's logger name). @default "event-tracking" */
  name?: string;
  /** The console method used when writing to the console. @default "info" */
  level?: LogLevel;
  /**
   * The longest line written, in characters (the limit is inclusive); longer
   * events are not written but counted and reported. `null` means unlimited.
   * @default 1024
   */
  maxEventSize?: number | null;
  /** Append to this JSON-lines file instead of writing to the console. */
  path?: string;
  /** Call this with each line instead of writing to the console or a file. */
  write?: (line: string) => void;
  /** How often, at most, oversized events are reported, in milliseconds. @default 60000 */
  reportIntervalMs?: number;
  /** Where oversized events and write failures are reported. @default consoleLogger */
  logger?: DiagnosticLogger;
}

/**
 * Writes one JSON line per event. Events longer than `maxEventSize` are not
 * written: they are counted (`dropped` in the metrics) and reported at most
 * once per `reportIntervalMs`, and at flush — never dropped silently.
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
 */
export class LoggerBackend implements Backend {
  /** The label of this log. */
  readonly name: string;
  /** The longest line written, or `null` for unlimited. */
  readonly maxEventSize: number | null;
  readonly #write: (line: string) => void;
  readonly #file: FileSink | undefined;
  readonly #logger: DiagnosticLogger;
  readonly #reportIntervalMs: number;
  readonly #counters: BackendMetrics = emptyMetrics();
  #unreported = 0;
  #largest = 0;
  #lastReport = -Infinity;

  /**
   * Creates the backend.
   *
   * @throws {TypeError} If `level` is unknown, `write` is not a function or `path` not a string.
   * @throws {RangeError} If `maxEventSize` is not `null` or a non-negative integer.
   */
  constructor(options: LoggerBackendOptions = {}) {
    const level = (options.level ?? "info").toLowerCase() as LogLevel;
    if (!Object.hasOwn(CONSOLE_METHOD, level)) {
      throw new TypeError(
        `Cannot create LoggerBackend: unknown level "${options.level}" (expected one of ${
          Object.keys(CONSOLE_METHOD).join(", ")
        })`,
      );
    }
    const max = options.maxEventSize === undefined ? MAX_EVENT_SIZE : options.maxEventSize;
    if (max !== null && !(Number.isInteger(max) && max >= 0)) {
      throw new RangeError(
        `Cannot create LoggerBackend as 'maxEventSize' must be null or a non-negative integer: current value is ${max}`,
      );
    }
    this.name = options.name ?? "event-tracking";
    this.maxEventSize = max;
    this.#logger = options.logger ?? consoleLogger;
    this.#reportIntervalMs = options.reportIntervalMs ?? 60_000;
    if (options.write !== undefined) {
      if (typeof options.write !== "function") {
        throw new TypeError("Cannot create LoggerBackend: 'write' must be a function");
      }
      this.#write = options.write;
    } else if (options.path !== undefined) {
      if (typeof options.path !== "string" || options.path === "") {
        throw new TypeError("Cannot create LoggerBackend: 'path' must be a non-empty string");
      }
      const file = new FileSink(options.path, (lines, error) => {
        this.#counters.failed += lines;
        this.#counters.delivered -= lines;
        this.#logger.error(`LoggerBackend "${this.name}" lost ${lines} event(s) writing ${options.path}`, error);
      });
      this.#file = file;
      this.#write = (line) => file.write(line);
    } else {
      const method = CONSOLE_METHOD[level];
      this.#write = (line) => console[method](line);
    }
  }

  /** Writes the event as one JSON line, unless it is longer than `maxEventSize`. */
  send(event: TrackingEvent): void {
    this.#counters.received++;
    const line = serializeEvent(event);
    if (this.maxEventSize !== null && line.length > this.maxEventSize) {
      this.#oversized(line.length);
      return;
    }
    this.#write(line);
    this.#counters.delivered++;
  }

  /** Reports oversized events not yet reported, and waits for file writes. */
  async flush(): Promise<void> {
    if (this.#unreported > 0) this.#report();
    await this.#file?.flush();
  }

  /** Flushes, then closes the file, if any. */
  async close(): Promise<void> {
    await this.flush();
    await this.#file?.close();
  }

  /** Adds this backend's counters under `path`; `dropped` counts oversized events. */
  collectMetrics(path: string, into: MetricsSnapshot): void {
    into[path] = { ...this.#counters, queueDepth: this.#file?.pending ?? 0 };
  }

  #oversized(size: number): void {
    this.#counters.dropped++;
    this.#unreported++;
    if (size > this.#largest) this.#largest = size;
    if (Date.now() - this.#lastReport >= this.#reportIntervalMs) this.#report();
  }

  #report(): void {
    this.#lastReport = Date.now();
    this.#logger.warn(
      `LoggerBackend "${this.name}" did not write ${this.#unreported} event(s) longer than maxEventSize ${this.maxEventSize} (largest: ${this.#largest} characters)`,
    );
    this.#unreported = 0;
    this.#largest = 0;
  }
}
