/**
 * The one backoff policy: every place that waits before trying again (the
 * async router's retries, a sink's optional retries, Cloudflare Queue sends)
 * asks it how long.
 *
 * @module
 */

import * as v from "valibot";
import { type Expect, nonNegativeNumber, options, parseOptions, type SameType } from "./_schema.ts";

/** How long to wait between attempts: exponential from `initialMs`, capped at `maxMs`, with jitter. */
export interface BackoffOptions {
  /** The nominal delay before the second attempt, in milliseconds; `0` retries at once (tests). @default 100 */
  initialMs?: number;
  /** The longest nominal delay, in milliseconds. @default 30000 */
  maxMs?: number;
}

/** The schema of {@linkcode BackoffOptions}, nested in the options of what retries. */
export const backoffOptions = /* @__PURE__ */ (() =>
  options({
    initialMs: v.optional(nonNegativeNumber(), 100),
    maxMs: v.optional(nonNegativeNumber(), 30_000),
  }))();
type _SameOptions = Expect<SameType<v.InferInput<typeof backoffOptions>, BackoffOptions>>;

/** Exponential backoff with jitter: each delay is 50–100 % of the nominal one. */
export class Backoff {
  /** The nominal delay before the second attempt. */
  readonly initialMs: number;
  /** The longest nominal delay. */
  readonly maxMs: number;
  readonly #random: () => number;

  /**
   * @param where The backoff option's place in errors, e.g. `AsyncRoutingBackend.backoff`.
   * @throws {ImproperlyConfigured} If a delay is negative or not a finite number, or an option is unknown.
   */
  constructor(where: string, options: BackoffOptions = {}, random: () => number = Math.random) {
    const checked = parseOptions(backoffOptions, options, where);
    this.initialMs = checked.initialMs;
    this.maxMs = checked.maxMs;
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
