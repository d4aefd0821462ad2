/**
 * The Deno collector's intake: accepted events go into the write-ahead log
 * before the 202, then into the tree; each record is released once its
 * event's fate is final. What the log held from before is replayed first.
 *
 * @module
 */

import type { DiagnosticLogger } from "../diagnostics.ts";
import type { TrackingEvent } from "../event.ts";
import type { Tracker } from "../tracker.ts";
import { type FsyncPolicy, type WalRecord, WriteAheadLog } from "./write_ahead_log.ts";
import { within } from "../_pending.ts";

/** How many events of the log are replayed at a time, at start. */
const REPLAY_CHUNK = 1_000;

/** The write-ahead log between the collector app and its tracker. */
export interface WriteAheadIntake {
  /** The app's `intake`: resolves once the events are in the log (synced, under `always`). */
  intake(events: readonly TrackingEvent[]): Promise<void>;
  /** Lets the replay of the log's old records go on until the deadline; what is left stays in the log. */
  finishReplay(deadline: number): Promise<void>;
  /** Closes the log; records not yet released stay in it for the next start. */
  close(): Promise<void>;
}

/** Opens the log in `dir` and starts replaying its records into `tracker`. */
export async function openWriteAheadIntake(
  tracker: Tracker,
  options: { dir: string; fsync?: FsyncPolicy; fsyncIntervalMs?: number; logger: DiagnosticLogger },
): Promise<WriteAheadIntake> {
  const { log, recovered } = await WriteAheadLog.open(options);
  // A record is released once its event's fate is final on every branch: delivered, dead-lettered or failed.
  const deliver = (record: WalRecord): Promise<void> | undefined => {
    const settled = tracker.send(record.event);
    if (settled === undefined) {
      record.release();
      return undefined;
    }
    return settled.then(() => record.release(), () => record.release());
  };
  let replaying: Promise<void> | undefined;
  if (recovered.length > 0) {
    options.logger.warn(`Collector: replaying ${recovered.length} event(s) the write-ahead log holds from before`);
    // In chunks, each settled before the next: a backlog larger than the queues must not overflow them.
    replaying = (async () => {
      for (let i = 0; i < recovered.length && !tracker.closed; i += REPLAY_CHUNK) {
        await Promise.all(recovered.slice(i, i + REPLAY_CHUNK).map(deliver));
      }
    })().catch((error) => {
      // Closed meanwhile: what was not replayed stays in the log for the next start.
      if (!tracker.closed) options.logger.error("Collector: replaying the write-ahead log failed", error);
    });
  }
  return {
    async intake(events) {
      for (const record of await log.append(events)) deliver(record);
    },
    async finishReplay(deadline) {
      if (replaying !== undefined) await within(replaying, deadline - Date.now());
    },
    close: () => log.close(),
  };
}
