/**
 * Group commit, the one buffer behind every file the library appends to (the
 * JSON-lines sinks and the write-ahead log): items added in the same tick, or
 * while a write is in progress, are written together in one batch, one batch
 * at a time.
 *
 * @module
 */

function ignore(): void {}

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
