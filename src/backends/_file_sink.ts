/**
 * Appends lines to a file without blocking the caller: lines written in the
 * same tick are joined into one batch and appended with one write, one write
 * at a time. Each batch settles once: its promise resolves when its write has
 * completed and rejects when it failed.
 *
 * @module
 */

import { GroupWriter, LineBuffer } from "../_group_writer.ts";
import { nodeBuiltin } from "../_node_builtin.ts";

type FileHandle = import("node:fs/promises").FileHandle;

/** Called once per batch when its write has settled: how many lines it held, and the error if it failed. */
export type BatchSettled = (lines: number, error: Error | undefined) => void;

/** Options of {@linkcode FileSink}. */
export interface FileSinkOptions {
  /** Who writes, for error messages, e.g. `LoggerBackend "tracking"`. */
  label: string;
  /** Called when a batch has settled, before its promise does. */
  onSettled: BatchSettled;
  /** Called when a torn last line was removed from the file. */
  onRepair: (bytes: number) => void;
}

const NEWLINE = 0x0a;
/** How much of the file's end is read at a time when looking for its last newline. */
const TAIL_CHUNK = 64 * 1024;

function ignore(): void {}

/** The offset just after the last newline of the file's first `size` bytes, or 0 if there is none. */
async function lastLineEnd(handle: FileHandle, size: number): Promise<number> {
  const chunk = new Uint8Array(Math.min(TAIL_CHUNK, size));
  for (let end = size; end > 0;) {
    const length = Math.min(chunk.length, end);
    const start = end - length;
    const { bytesRead } = await handle.read(chunk, 0, length, start);
    if (bytesRead !== length) throw new Error(`read ${bytesRead} of ${length} bytes at offset ${start}`);
    const i = chunk.lastIndexOf(NEWLINE, length - 1);
    if (i >= 0) return start + i + 1;
    end = start;
  }
  return 0;
}

/**
 * A buffered appender for one JSON-lines file. On opening a file whose last
 * byte is not a newline (a write interrupted by a crash), it first truncates
 * the torn last line, so that every line of the file is whole.
 */
export class FileSink {
  readonly path: string;
  readonly #options: FileSinkOptions;
  readonly #writer = new GroupWriter<string>((lines) => this.#writeBatch(lines));
  // One batch is written at a time, so one buffer serves every write.
  readonly #bytes = new LineBuffer();
  #handle: FileHandle | undefined;

  constructor(path: string, options: FileSinkOptions) {
    this.path = path;
    this.#options = options;
  }

  /**
   * Queues one line (without its newline).
   *
   * @returns The promise of the line's batch: it resolves once the batch is
   * in the file and rejects if its write failed. It never goes unhandled.
   */
  write(line: string): Promise<void> {
    return this.#writer.add(line);
  }

  /** Lines queued or being written. */
  get pending(): number {
    return this.#writer.pending;
  }

  /** Resolves when every line queued so far has been written or has failed; failed lines are not retried. */
  flush(): Promise<void> {
    return this.#writer.drained();
  }

  /**
   * Flushes, then makes the file's data durable (`datasync`) and closes it. A
   * later write opens it again.
   *
   * @throws {Error} If the file could not be synced or closed; the message names the path.
   */
  async close(): Promise<void> {
    // Checked and taken in one synchronous step: no write can start on the handle in between.
    await this.#writer.drained();
    const handle = this.#handle;
    this.#handle = undefined;
    if (handle === undefined) return;
    try {
      await handle.datasync();
    } catch (error) {
      await handle.close().catch(ignore);
      throw this.#error("sync", error);
    }
    try {
      await handle.close();
    } catch (error) {
      throw this.#error("close", error);
    }
  }

  async #writeBatch(lines: string[]): Promise<void> {
    let failure: Error | undefined;
    try {
      await this.#append(this.#bytes.encode([lines]));
    } catch (error) {
      failure = this.#error("write to", error);
    }
    try {
      this.#options.onSettled(lines.length, failure);
    } catch {
      // Counting must not stop the writes.
    }
    if (failure !== undefined) throw failure;
  }

  async #append(bytes: Uint8Array): Promise<void> {
    const handle = this.#handle ??= await this.#open();
    try {
      for (let offset = 0; offset < bytes.length;) {
        const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
        if (bytesWritten <= 0) throw new Error(`wrote 0 of ${bytes.length - offset} remaining bytes`);
        offset += bytesWritten;
      }
    } catch (error) {
      // A partial write may have left a torn line: remove it now, and drop the
      // handle so that the next batch opens (and checks) the file again.
      this.#handle = undefined;
      await this.#repair(handle).catch(ignore);
      await handle.close().catch(ignore);
      throw error;
    }
  }

  async #open(): Promise<FileHandle> {
    const fs = nodeBuiltin<typeof import("node:fs/promises")>("node:fs/promises", this.#options.label);
    const { dirname } = nodeBuiltin<typeof import("node:path")>("node:path", this.#options.label);
    await fs.mkdir(dirname(this.path), { recursive: true });
    // Read and append: the end of the file is read to find a torn last line.
    const handle = await fs.open(this.path, "a+");
    try {
      await this.#repair(handle);
    } catch (error) {
      await handle.close().catch(ignore);
      throw error;
    }
    return handle;
  }

  /** Truncates the file after its last newline (or to 0) if its last byte is not one. */
  async #repair(handle: FileHandle): Promise<void> {
    const { size } = await handle.stat();
    const end = await lastLineEnd(handle, size);
    if (end === size) return;
    await handle.truncate(end);
    this.#options.onRepair(size - end);
  }

  #error(action: string, cause: unknown): Error {
    const detail = cause instanceof Error ? cause.message : String(cause);
    const error = new Error(`${this.#options.label} could not ${action} ${this.path}: ${detail}`, { cause });
    const code = (cause as { code?: unknown } | null)?.code;
    if (typeof code === "string") Object.assign(error, { code });
    return error;
  }
}
