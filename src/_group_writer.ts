/**
 * Group commit, the one buffer behind every file the library appends to (the
 * JSON-lines sinks and the write-ahead log): items added in the same tick, or
 * while a write is in progress, are written together in one batch, one batch
 * at a time; {@linkcode LineBuffer} turns a batch of lines into the bytes of
 * one write.
 *
 * @module
 */

function ignore(): void {}

const encoder = new TextEncoder();
/** The largest buffer a {@linkcode LineBuffer} keeps between writes; a larger batch gets one of its own. */
const KEPT_BYTES = 1 << 20;
const LINES_PER_CALL = 64;

/**
 * Encodes batches of lines as UTF-8, each line followed by a newline, into
 * one buffer that the next batch reuses: a file written one batch at a time
 * needs no new memory per write (`TextEncoder.encode` of the joined text
 * allocated and copied the batch twice).
 */
export class LineBuffer {
  #buffer = new Uint8Array(0);

  /**
   * The bytes of every line of `groups`, in order, each followed by `\n`.
   * The view is valid until the next call: write it before encoding again.
   */
  encode(groups: readonly (readonly string[])[]): Uint8Array {
    let units = 0;
    for (const lines of groups) for (let i = 0; i < lines.length; i++) units += lines[i].length + 1;
    // At most 3 bytes of UTF-8 per UTF-16 unit (a surrogate pair: 4 bytes for 2 units).
    let buffer = this.#buffer;
    if (buffer.length < 3 * units) {
      buffer = new Uint8Array(Math.max(3 * units, Math.min(2 * buffer.length, KEPT_BYTES), 4096));
      if (buffer.length <= KEPT_BYTES) this.#buffer = buffer;
    }
    let at = 0;
    for (const lines of groups) {
      // A few dozen lines per call: each call costs more than its bytes, and a joined text of a whole large
      // batch would be a large (old-generation) string.
      for (let i = 0; i < lines.length; i += LINES_PER_CALL) {
        const text = (i === 0 && lines.length <= LINES_PER_CALL ? lines : lines.slice(i, i + LINES_PER_CALL))
          .join("\n") + "\n";
        at += encoder.encodeInto(text, buffer.subarray(at)).written;
      }
    }
    return buffer.subarray(0, at);
  }
}

interface Batch<T> {
  readonly items: T[];
  readonly promise: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function newBatch<T>(): Batch<T> {
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  // Nobody has to await a batch: its owner counts and reports its failure too.
  promise.catch(ignore);
  return { items: [], promise, resolve, reject };
}

/** Writes what is added to it in batches, through one writer at a time. */
export class GroupWriter<T> {
  readonly #write: (items: T[]) => Promise<void>;
  #batch: Batch<T> | undefined;
  #chores: (() => Promise<void>)[] = [];
  #pending = 0;
  #draining: Promise<void> | undefined;

  /** `write` writes one batch; it rejects if the batch could not be written. */
  constructor(write: (items: T[]) => Promise<void>) {
    this.#write = write;
  }

  /** Items added and not yet written (or failed). */
  get pending(): number {
    return this.#pending;
  }

  /**
   * Adds an item to the next batch.
   *
   * @returns The batch's promise, shared by its items: it resolves once the
   *   batch is written and rejects with the writer's error. It never goes unhandled.
   */
  add(item: T): Promise<void> {
    const batch = this.#batch ??= newBatch();
    batch.items.push(item);
    this.#pending++;
    this.#draining ??= this.#drain();
    return batch.promise;
  }

  /** Runs `chore` between batches, never during a write (a periodic sync, say); it must not reject. */
  schedule(chore: () => Promise<void>): void {
    this.#chores.push(chore);
    this.#draining ??= this.#drain();
  }

  /** Resolves once everything added or scheduled so far is done. */
  async drained(): Promise<void> {
    while (this.#draining !== undefined) await this.#draining;
  }

  async #drain(): Promise<void> {
    // Let the current tick's items join this batch.
    await Promise.resolve();
    while (this.#batch !== undefined || this.#chores.length > 0) {
      const batch = this.#batch;
      if (batch !== undefined) {
        this.#batch = undefined;
        try {
          await this.#write(batch.items);
          batch.resolve();
        } catch (error) {
          batch.reject(error);
        } finally {
          this.#pending -= batch.items.length;
        }
      }
      const chores = this.#chores;
      this.#chores = [];
      for (const chore of chores) await chore();
    }
    this.#draining = undefined;
  }
}
