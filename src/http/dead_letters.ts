/**
 * What the collector's dead-letter routes need from a runtime: the dead
 * letters of each async branch, and a way to feed them back. The Deno server
 * reads the branches' dead-letter files; the Worker keeps them in a Durable
 * Object.
 *
 * @module
 */

/** One dead letter as the console lists it: which event, and why it was dead-lettered. */
export interface DeadLetterEntry {
  /** The event's id. */
  readonly id: string;
  /** The event's name. */
  readonly name: string;
  /** The event's timestamp, ISO-8601. */
  readonly timestamp: string;
  /** The last error's message. */
  readonly error: string;
  /** Delivery attempts made (0 when the queue was full). */
  readonly attempts: number;
  /** The nested backend that failed, or the branch's name when its queue refused the event. */
  readonly backend: string;
  /** When it was dead-lettered, ISO-8601 UTC. */
  readonly at: string;
}

/** The dead letters of one async branch, named by its `backendName`. */
export interface DeadLetterBranch {
  /** The branch's `backendName`: what `POST /v1/dead-letters/<backendName>/replay` names. */
  readonly backendName: string;
  /** The branch's path in the tree, as metrics name it (`root/tracking_logs`). */
  readonly path: string;
  /** Dead letters waiting to be replayed. */
  readonly count: number;
  /** The newest few, newest first. */
  readonly newest: readonly DeadLetterEntry[];
}

/** What replaying one branch's dead letters did. */
export interface DeadLetterReplay {
  /** The branch replayed. */
  readonly backendName: string;
  /** Dead letters fed back into the branch. */
  readonly replayed: number;
  /** Of those, events delivered again. */
  readonly delivered: number;
  /** Of those, events that failed again and are dead letters once more. */
  readonly deadLettered: number;
  /** Of those, events that could be neither delivered nor dead-lettered again: they are kept for the next replay. */
  readonly failed: number;
  /** Of those, events handed to a queue whose outcome is not known yet (the Worker's Cloudflare Queue). */
  readonly pending: number;
}

/**
 * The dead letters of a collector's async branches, as `GET /v1/dead-letters`
 * and `POST /v1/dead-letters/<backendName>/replay` serve them.
 *
 * @example A store over one in-memory branch
 * ```ts
 * import type { DeadLetterStore } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const store: DeadLetterStore = {
 *   list: () => Promise.resolve([{ backendName: "caliper", path: "root/caliper", count: 0, newest: [] }]),
 *   replay: (backendName) => Promise.resolve({ backendName, replayed: 0, delivered: 0, deadLettered: 0, failed: 0, pending: 0 }),
 * };
 * assert.equal((await store.list(5))[0].count, 0);
 * ```
 */
export interface DeadLetterStore {
  /** Every async branch, in the order of the tree, with its count and newest `newest` dead letters. */
  list(newest: number): Promise<readonly DeadLetterBranch[]>;
  /**
   * Feeds the dead letters of the branch named `backendName` back into it,
   * and resolves once each is delivered or dead-lettered again (or queued,
   * where delivery happens elsewhere). Throws an `HTTPException` (404) when
   * no branch has that name.
   */
  replay(backendName: string): Promise<DeadLetterReplay>;
}

/**
 * What one dead letter (a line of JSON, as the dead-letter sinks write it)
 * shows in a listing. A line that is not JSON is listed with an `error` that
 * says so and quotes its start, so that it is not hidden.
 *
 * @example
 * ```ts
 * import { deadLetterEntry } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const line = JSON.stringify({
 *   id: "1", name: "edx.ui.click", timestamp: "2026-11-30T00:00:00.000Z", context: {}, data: {},
 *   deadLetter: { error: "Error: down", attempts: 5, backend: "mongo", at: "2026-11-30T00:00:09.000Z" },
 * });
 * assert.equal(deadLetterEntry(line).backend, "mongo");
 * assert.match(deadLetterEntry("{torn").error, /^unreadable dead letter/);
 * ```
 */
export function deadLetterEntry(line: string): DeadLetterEntry {
  let letter: Record<string, unknown> | null;
  try {
    letter = JSON.parse(line);
  } catch (error) {
    return {
      id: "",
      name: "",
      timestamp: "",
      error: `unreadable dead letter (${(error as Error).message}): ${line.slice(0, 200)}`,
      attempts: 0,
      backend: "",
      at: "",
    };
  }
  const info = (letter?.deadLetter ?? {}) as Record<string, unknown>;
  return {
    id: String(letter?.id ?? ""),
    name: String(letter?.name ?? ""),
    timestamp: String(letter?.timestamp ?? ""),
    error: String(info.error ?? ""),
    attempts: Number(info.attempts ?? 0),
    backend: String(info.backend ?? ""),
    at: String(info.at ?? ""),
  };
}
