/**
 * A write-ahead log of accepted events: the collector answers only once they
 * are written here, replays what was not delivered at the next start, and
 * deletes what was.
 *
 * Segment files `<dir>/<16-digit sequence>.wal` hold one event per line (its
 * JSON). Appends made while a write is in progress, or in the same tick, are
 * joined into one write (group commit). A record is released once delivered;
 * a segment that is no longer written to is deleted when all its records are.
 * Delivery is at-least-once: records released in a segment that still holds
 * unreleased ones are replayed again after a crash.
 *
 * @module
 */

import { consoleLogger, type DiagnosticLogger } from "../diagnostics.ts";
import { restoreEvent, serializeEvent, type TrackingEvent } from "../event.ts";
import { GroupWriter, LineBuffer } from "../_group_writer.ts";
import { PendingSet } from "../_pending.ts";

type Fs = typeof import("node:fs/promises");
type FileHandle = import("node:fs/promises").FileHandle;

/**
 * When the log forces its writes to the disk (`fdatasync`):
 * - `"always"`: after every group write, before the appends resolve;
 * - `"interval"`: at least every `fsyncIntervalMs` while something is unsynced
 *   (a crash of the process loses nothing, a power loss at most that interval);
 * - `"off"`: only at close.
 */
export type FsyncPolicy = "interval" | "always" | "off";

/** Options of {@linkcode WriteAheadLog.open}. */
export interface WriteAheadLogOptions {
  /** The folder of the segment files, e.g. `${dataDir}/wal`; created if missing. */
  dir: string;
  /** When writes are forced to the disk. @default "interval" */
  fsync?: FsyncPolicy;
  /** With `fsync: "interval"`, the longest time written data stays unsynced, in milliseconds. @default 100 */
  fsyncIntervalMs?: number;
  /** A new segment file starts once the current one holds this many bytes or more. @default 16 MiB */
  segmentBytes?: number;
  /** Where skipped records and failed syncs or deletions are reported. @default consoleLogger */
  logger?: DiagnosticLogger;
}

/** One event in the log, until {@linkcode WalRecord.release} says it was delivered. */
export interface WalRecord {
  /** The logged event. */
  readonly event: TrackingEvent;
  /** Marks the event delivered (idempotent); its segment is deleted once all its records are. */
  release(): void;
}

const SEGMENT_NAME = /^\d{16}\.wal$/;

function segmentName(sequence: number): string {
  return `${String(sequence).padStart(16, "0")}.wal`;
}

function message(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

// Node and Deno 2 timers have unref(); older Deno returns a number.
function unref(timer: ReturnType<typeof setTimeout>): void {
  const object = timer as unknown as { unref?: () => void };
  if (typeof object.unref === "function") object.unref();
  else (globalThis as { Deno?: { unrefTimer(id: number): void } }).Deno?.unrefTimer(timer as unknown as number);
}

/** One segment file; `live` counts its unreleased records. */
class Segment {
  readonly path: string;
  readonly released: (segment: Segment) => void;
  live = 0;
  bytes = 0;
  handle: FileHandle | undefined;

  constructor(path: string, released: (segment: Segment) => void) {
    this.path = path;
    this.released = released;
  }
}

class Record implements WalRecord {
  readonly event: TrackingEvent;
  #segment: Segment | undefined;

  constructor(event: TrackingEvent, segment: Segment) {
    this.event = event;
    this.#segment = segment;
  }

  release(): void {
    const segment = this.#segment;
    if (segment === undefined) return;
    this.#segment = undefined;
    segment.released(segment);
  }
}

/** One append waiting for its group write; the write records the segment it went to. */
interface PendingAppend {
  /** One JSON line per event, without its newline. */
  readonly lines: readonly string[];
  readonly events: readonly TrackingEvent[];
  segment?: Segment;
}

/**
 * The collector's write-ahead log. Open it with {@linkcode WriteAheadLog.open},
 * which also returns what a previous process left undelivered.
 *
 * @example Log, deliver, release
 * ```ts
 * import { restoreEvent } from "@edx/event-tracking";
 * import { WriteAheadLog } from "@edx/event-tracking/deno";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const { log, recovered } = await WriteAheadLog.open({ dir });
 * assert.equal(recovered.length, 0);
 * const event = restoreEvent({ id: "1", name: "a", timestamp: "2026-01-01T00:00:00.000Z" });
 * const [record] = await log.append([event]); // written: a crash cannot lose it
 * record.release(); // delivered
 * await log.close();
 * assert.equal(log.pendingRecords, 0);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class WriteAheadLog {
  readonly #fs: Fs;
  readonly #dir: string;
  readonly #policy: FsyncPolicy;
  readonly #intervalMs: number;
  readonly #segmentBytes: number;
  readonly #logger: DiagnosticLogger;
  readonly #segments = new Set<Segment>();
  readonly #unlinks = new PendingSet();
  readonly #released = (segment: Segment) => this.#release(segment);
  #nextSequence: number;
  #current: Segment | undefined;
  readonly #writer = new GroupWriter<PendingAppend>((batch) => this.#write(batch));
  // One group write at a time, so one buffer serves every write.
  readonly #bytes = new LineBuffer();
  #unsynced = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closing: Promise<void> | undefined;
  // Set once close has closed the files: releases then only count, and the
  // next open replays those segments (at-least-once).
  #stopped = false;
  #pending = 0;
  #writes = 0;
  #syncs = 0;

  private constructor(fs: Fs, options: Required<WriteAheadLogOptions>, nextSequence: number) {
    this.#fs = fs;
    this.#dir = options.dir;
    this.#policy = options.fsync;
    this.#intervalMs = options.fsyncIntervalMs;
    this.#segmentBytes = options.segmentBytes;
    this.#logger = options.logger;
    this.#nextSequence = nextSequence;
  }

  /**
   * Opens the log in `options.dir`, reading every segment left there. Each
   * complete line that parses is returned as a recovered record, in order; a
   * torn last line (a crash mid-write) or a line that does not parse (e.g.
   * zeros after a power loss) is skipped and reported once per file. Recovered
   * segments are never written to again; a segment with nothing to recover is
   * deleted at once.
   *
   * @throws {TypeError} If `dir` is not a non-empty string or `fsync` is unknown.
   * @throws {RangeError} If `fsyncIntervalMs` or `segmentBytes` is not a positive number.
   */
  static async open(options: WriteAheadLogOptions): Promise<{ log: WriteAheadLog; recovered: WalRecord[] }> {
    const resolved = WriteAheadLog.#check(options);
    const fs = await import("node:fs/promises");
    const { join } = await import("node:path");
    await fs.mkdir(resolved.dir, { recursive: true });
    const names = (await fs.readdir(resolved.dir)).filter((name) => SEGMENT_NAME.test(name)).sort();
    const last = names.at(-1);
    const log = new WriteAheadLog(fs, resolved, last === undefined ? 1 : Number(last.slice(0, 16)) + 1);
    const recovered: WalRecord[] = [];
    for (const name of names) {
      const segment = new Segment(join(resolved.dir, name), log.#released);
      const before = recovered.length;
      await log.#recover(segment, recovered);
      if (recovered.length === before) await fs.unlink(segment.path);
      else log.#segments.add(segment);
    }
    log.#pending = recovered.length;
    return { log, recovered };
  }

  static #check(options: WriteAheadLogOptions): Required<WriteAheadLogOptions> {
    if (typeof options?.dir !== "string" || options.dir === "") {
      throw new TypeError("Cannot open WriteAheadLog: 'dir' must be a non-empty string");
    }
    const fsync = options.fsync ?? "interval";
    if (fsync !== "interval" && fsync !== "always" && fsync !== "off") {
      throw new TypeError(
        `Cannot open WriteAheadLog: unknown fsync policy "${fsync}" (expected "interval", "always" or "off")`,
      );
    }
    const fsyncIntervalMs = options.fsyncIntervalMs ?? 100;
    const segmentBytes = options.segmentBytes ?? 16 * 1024 * 1024;
    for (const [name, value] of [["fsyncIntervalMs", fsyncIntervalMs], ["segmentBytes", segmentBytes]] as const) {
      if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) {
        throw new RangeError(
          `Cannot open WriteAheadLog as '${name}' must be a positive number: current value is ${value}`,
        );
      }
    }
    return { dir: options.dir, fsync, fsyncIntervalMs, segmentBytes, logger: options.logger ?? consoleLogger };
  }

  /** Records appended or recovered and not yet released. */
  get pendingRecords(): number {
    return this.#pending;
  }

  /** Segment files on disk (not counting those being deleted). */
  get segments(): number {
    return this.#segments.size;
  }

  /** Diagnostic: group writes made so far (one per group commit, however many appends it joined). */
  get writes(): number {
    return this.#writes;
  }

  /** Diagnostic: `fdatasync` calls made so far. */
  get syncs(): number {
    return this.#syncs;
  }

  /**
   * Writes events to the log, one record each, in order. Resolves once they
   * are written (and synced, under `fsync: "always"`), so a crash of the
   * process can no longer lose them.
   *
   * @throws {TypeError} If an event cannot be serialised.
   * @throws {Error} If the log is closed, or writing (or syncing) failed; nothing was acknowledged then.
   */
  async append(events: readonly TrackingEvent[]): Promise<WalRecord[]> {
    if (this.#closing !== undefined) throw new Error(`Cannot append to WriteAheadLog ${this.#dir}: it is closed`);
    if (events.length === 0) return [];
    const lines: string[] = new Array(events.length);
    for (let i = 0; i < events.length; i++) lines[i] = serializeEvent(events[i]);
    const append: PendingAppend = { lines, events };
    await this.#writer.add(append);
    return events.map((event) => new Record(event, append.segment!));
  }

  /**
   * Waits for appends in progress, syncs and closes the current segment.
   * Segments with unreleased records stay on disk for the next open; the
   * current segment is deleted if all its records were released. Releases
   * after close delete nothing: those records are replayed at the next open.
   *
   * @throws {Error} If the final sync or close failed.
   */
  close(): Promise<void> {
    return this.#closing ??= this.#close();
  }

  async #close(): Promise<void> {
    await this.#writer.drained();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const current = this.#current;
    this.#current = undefined;
    let failure: unknown;
    if (current?.handle !== undefined) {
      const handle = current.handle;
      current.handle = undefined;
      try {
        await handle.datasync();
        this.#syncs++;
      } catch (error) {
        failure = error;
      }
      try {
        await handle.close();
      } catch (error) {
        failure ??= error;
      }
    }
    if (current !== undefined && current.live === 0) this.#delete(current);
    this.#stopped = true;
    await this.#unlinks.settled();
    if (failure !== undefined) throw failure;
  }

  async #recover(segment: Segment, into: WalRecord[]): Promise<void> {
    const bytes = await this.#fs.readFile(segment.path);
    const decoder = new TextDecoder("utf-8", { fatal: true });
    let start = 0;
    let badLines = 0;
    let badBytes = 0;
    for (let end = bytes.indexOf(10, start); end !== -1; end = bytes.indexOf(10, start)) {
      try {
        into.push(new Record(restoreEvent(JSON.parse(decoder.decode(bytes.subarray(start, end)))), segment));
        segment.live++;
      } catch {
        badLines++;
        badBytes += end + 1 - start;
      }
      start = end + 1;
    }
    const torn = bytes.length - start;
    if (badLines > 0 || torn > 0) {
      const parts = [];
      if (badLines > 0) parts.push(`${badLines} line(s) (${badBytes} bytes) that did not parse`);
      if (torn > 0) parts.push(`a torn last record (${torn} bytes, no newline: a write cut short by a crash)`);
      this.#logger.warn(`WriteAheadLog: skipped ${parts.join(" and ")} in ${segment.path}`);
    }
  }

  async #write(batch: PendingAppend[]): Promise<void> {
    let segment: Segment | undefined;
    try {
      segment = await this.#writable();
      const bytes = this.#bytes.encode(batch.map((append) => append.lines));
      // A write may be partial; the rest follows until all is written.
      for (let offset = 0; offset < bytes.length;) {
        offset += (await segment.handle!.write(bytes, offset, bytes.length - offset)).bytesWritten;
      }
      segment.bytes += bytes.length;
      this.#writes++;
      this.#unsynced = true;
      if (this.#policy === "always") {
        this.#unsynced = false;
        await segment.handle!.datasync();
        this.#syncs++;
      } else if (this.#policy === "interval") {
        this.#armTimer();
      }
    } catch (error) {
      // The file may now end in part of a line: later lines must not follow it.
      if (segment !== undefined) await this.#retire(segment);
      throw error;
    }
    // Counted before the next write can retire (and delete) the segment.
    for (const append of batch) {
      append.segment = segment;
      segment.live += append.events.length;
      this.#pending += append.events.length;
    }
  }

  /** The current segment, after starting a new one if there is none or it is full. */
  async #writable(): Promise<Segment> {
    if (this.#current !== undefined && this.#current.bytes >= this.#segmentBytes) await this.#retire(this.#current);
    if (this.#current !== undefined) return this.#current;
    const { join } = await import("node:path");
    const segment = new Segment(join(this.#dir, segmentName(this.#nextSequence++)), this.#released);
    // "x": never append to a file this process did not start.
    segment.handle = await this.#fs.open(segment.path, "ax");
    this.#segments.add(segment);
    this.#current = segment;
    if (this.#policy !== "off") await this.#syncDir();
    return segment;
  }

  /** Makes the new segment's directory entry durable too. */
  async #syncDir(): Promise<void> {
    let handle: FileHandle | undefined;
    try {
      handle = await this.#fs.open(this.#dir, "r");
      await handle.sync();
    } catch {
      // Some platforms (Windows) cannot open or sync a folder; the data itself is still synced.
    } finally {
      await handle?.close().catch(() => {});
    }
  }

  /** Stops writing to `segment` (full, or failed): syncs what it holds, closes it, deletes it if released. */
  async #retire(segment: Segment): Promise<void> {
    if (this.#current === segment) this.#current = undefined;
    const handle = segment.handle;
    segment.handle = undefined;
    if (handle !== undefined) {
      if (this.#unsynced && this.#policy !== "off") {
        this.#unsynced = false;
        try {
          await handle.datasync();
          this.#syncs++;
        } catch (error) {
          this.#logger.error(
            `WriteAheadLog: cannot sync ${segment.path} (${
              message(error)
            }); events written since the last sync may not survive a power loss`,
            error,
          );
        }
      }
      this.#unsynced = false;
      await handle.close().catch((error) =>
        this.#logger.error(`WriteAheadLog: cannot close ${segment.path}: ${message(error)}`, error)
      );
    }
    if (segment.live === 0) this.#delete(segment);
  }

  #armTimer(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#writer.schedule(() => this.#syncCurrent());
    }, this.#intervalMs);
    unref(this.#timer);
  }

  async #syncCurrent(): Promise<void> {
    const segment = this.#current;
    if (!this.#unsynced || segment?.handle === undefined) return;
    try {
      await segment.handle.datasync();
      this.#unsynced = false;
      this.#syncs++;
    } catch (error) {
      this.#logger.error(
        `WriteAheadLog: cannot sync ${segment.path} (${
          message(error)
        }); events written since the last sync may not survive a power loss; starting a new segment`,
        error,
      );
      await this.#retire(segment);
    }
  }

  #release(segment: Segment): void {
    this.#pending--;
    if (--segment.live === 0 && segment !== this.#current) this.#delete(segment);
  }

  #delete(segment: Segment): void {
    if (this.#stopped || !this.#segments.delete(segment)) return;
    this.#unlinks.add(
      this.#fs.unlink(segment.path).catch((error) =>
        this.#logger.error(
          `WriteAheadLog: cannot delete ${segment.path} (${
            message(error)
          }); its events will be replayed at the next open`,
          error,
        )
      ),
    );
  }
}
