/**
 * The promises a component has started and not yet seen settle: the one
 * "wait until everything in flight is done" used by every router, sink and
 * transport.
 *
 * @module
 */

/**
 * The in-flight promises of a component, counted: each is watched until it
 * settles, and {@linkcode PendingSet.settled} waits for the count to reach
 * zero. A count rather than a set of the promises: this runs once per event
 * and per branch, and one reaction per promise is all it costs.
 */
export class PendingSet {
  #count = 0;
  #idle: (() => void)[] = [];
  readonly #done = (): void => {
    if (--this.#count > 0) return;
    const idle = this.#idle;
    this.#idle = [];
    for (const resolve of idle) resolve();
  };

  /** How many are still in flight. */
  get size(): number {
    return this.#count;
  }

  /**
   * Tracks `promise` until it settles. Its rejection is the caller's to
   * handle: the set only waits for it, and never leaves it unhandled.
   */
  add(promise: Promise<unknown>): void {
    this.#count++;
    promise.then(this.#done, this.#done);
  }

  /** Resolves once every promise tracked, including those added while waiting, has settled. */
  settled(): Promise<void> {
    if (this.#count === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }
}

/** Resolves `true` when `work` settles within `ms`, `false` otherwise (leaving it running). */
export function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), Math.max(0, ms)));
  return Promise.race([work.then(() => true, () => true), expired]).finally(() => clearTimeout(timer));
}
