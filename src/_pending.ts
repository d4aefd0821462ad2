/**
 * The promises a component has started and not yet seen settle: the one
 * "wait until everything in flight is done" used by every router, sink and
 * transport.
 *
 * @module
 */

function ignore(): void {}

/** A set of in-flight promises that removes each one when it settles. */
export class PendingSet {
  readonly #set = new Set<Promise<unknown>>();

  /** How many are still in flight. */
  get size(): number {
    return this.#set.size;
  }

  /**
   * Tracks `promise` until it settles. Its rejection is the caller's to
   * handle: the set only waits for it, and never leaves it unhandled.
   */
  add(promise: Promise<unknown>): void {
    const tracked: Promise<unknown> = promise.then(ignore, ignore).finally(() => this.#set.delete(tracked));
    this.#set.add(tracked);
  }

  /** Resolves once every promise tracked, including those added while waiting, has settled. */
  async settled(): Promise<void> {
    while (this.#set.size > 0) await Promise.all(this.#set);
  }
}

/** Resolves `true` when `work` settles within `ms`, `false` otherwise (leaving it running). */
export function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), Math.max(0, ms)));
  return Promise.race([work.then(() => true, () => true), expired]).finally(() => clearTimeout(timer));
}
