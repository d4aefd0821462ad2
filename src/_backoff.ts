/**
 * The one backoff policy: every place that waits before trying again (the
 * async router's retries, a sink's optional retries, Cloudflare Queue sends)
 * asks it how long.
 *
 * @module
 */

/** How long to wait between attempts: exponential from `initialMs`, capped at `maxMs`, with jitter. */
export interface BackoffOptions {
  /** The nominal delay before the second attempt, in milliseconds; `0` retries at once (tests). @default 100 */
  initialMs?: number;
  /** The longest nominal delay, in milliseconds. @default 30000 */
  maxMs?: number;
}

function nonNegative(owner: string, name: string, value: unknown): number {
  if (typeof value !== "number" || !(value >= 0) || !Number.isFinite(value)) {
    throw new RangeError(
      `Cannot create ${owner} as '${name}' must be a non-negative number: current value is ${String(value)}`,
    );
  }
  return value;
}

/** Exponential backoff with jitter: each delay is 50–100 % of the nominal one. */
export class Backoff {
  /** The nominal delay before the second attempt. */
  readonly initialMs: number;
  /** The longest nominal delay. */
  readonly maxMs: number;
  readonly #random: () => number;

  /**
   * @throws {RangeError} If a delay is negative or not a finite number.
   */
  constructor(owner: string, options: BackoffOptions = {}, random: () => number = Math.random) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError(`Cannot create ${owner} as 'backoff' must be an object with initialMs and maxMs`);
    }
    this.initialMs = nonNegative(owner, "backoff.initialMs", options.initialMs ?? 100);
    this.maxMs = nonNegative(owner, "backoff.maxMs", options.maxMs ?? 30_000);
    this.#random = random;
  }

  /** The delay after attempt number `attempt` (1 for the first), before the next one. */
  delay(attempt: number): number {
    const nominal = Math.min(this.maxMs, this.initialMs * 2 ** Math.max(0, attempt - 1));
    return nominal / 2 + this.#random() * (nominal / 2);
  }

  /** Waits {@linkcode Backoff.delay} milliseconds (no timer at all when it is 0). */
  wait(attempt: number): Promise<void> {
    const ms = this.delay(attempt);
    return ms <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms));
  }
}
