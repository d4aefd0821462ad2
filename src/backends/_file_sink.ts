/**
 * Appends lines to a file without blocking the caller: lines written in the
 * same tick are joined and appended with one write, one write at a time.
 *
 * @module
 */

/** Called with the number of lines a failed write lost, and the error. */
export type WriteFailure = (lines: number, error: unknown) => void;

/** A buffered appender for one JSON-lines file. */
export class FileSink {
  readonly #path: string;
  readonly #onFailure: WriteFailure;
  #buffer: string[] = [];
  #draining: Promise<void> | undefined;
  #handle: import("node:fs/promises").FileHandle | undefined;

  constructor(path: string, onFailure: WriteFailure) {
    this.#path = path;
    this.#onFailure = onFailure;
  }

  /** Queues one line (without its newline). */
  write(line: string): void {
    this.#buffer.push(line);
    this.#draining ??= this.#drain();
  }

  /** Lines queued but not yet written. */
  get pending(): number {
    return this.#buffer.length;
  }

  /** Resolves when every queued line has been written (or reported lost). */
  async flush(): Promise<void> {
    while (this.#draining !== undefined) await this.#draining;
  }

  /** Flushes, then closes the file. */
  async close(): Promise<void> {
    await this.flush();
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close();
  }

  async #drain(): Promise<void> {
    // Let the current tick's emits join this write.
    await Promise.resolve();
    while (this.#buffer.length > 0) {
      const lines = this.#buffer;
      this.#buffer = [];
      try {
        this.#handle ??= await this.#open();
        await this.#handle.write(lines.join("\n") + "\n");
      } catch (error) {
        this.#onFailure(lines.length, error);
      }
    }
    this.#draining = undefined;
  }

  async #open(): Promise<import("node:fs/promises").FileHandle> {
    const fs = await import("node:fs/promises");
    const path = await import("node:path");
    await fs.mkdir(path.dirname(this.#path), { recursive: true });
    return await fs.open(this.#path, "a");
  }
}
