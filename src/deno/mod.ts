/**
 * The collector on one machine, for Deno: {@linkcode startCollector} serves
 * the collector app (`@edx/event-tracking/http`) with `Deno.serve`, behind a
 * write-ahead log, with an in-process queue and bus and JSON-lines files;
 * {@linkcode replayDeadLetters} feeds a tree's dead letters back. The same
 * module is what `deno task start` and `deno task replay` run.
 *
 * This entry uses Deno's APIs (`Deno.serve`, `Deno.upgradeWebSocket`); the
 * app itself, for Node.js, Bun or Workers, is `@edx/event-tracking/http`.
 *
 * @example Start on a free port, post an event, stop
 * ```ts
 * import { startCollector } from "@edx/event-tracking/deno";
 * import assert from "node:assert/strict";
 *
 * const dataDir = await Deno.makeTempDir();
 * const collector = await startCollector({ port: 0, hostname: "127.0.0.1", token: "t", dataDir });
 * const response = await fetch(`${collector.url}/v1/events`, {
 *   method: "POST",
 *   headers: { authorization: "Bearer t" },
 *   body: JSON.stringify({ name: "edx.ui.click" }),
 * });
 * assert.equal(response.status, 202);
 * await response.body?.cancel();
 * await collector.shutdown(); // every accepted event is in <dataDir>/events.jsonl now
 * assert.match(await Deno.readTextFile(`${dataDir}/events.jsonl`), /"edx.ui.click"/);
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 *
 * @module
 */

export {
  type CollectorServerOptions,
  defaultCollectorConfig,
  loadCatalog,
  type RunningCollector,
  startCollector,
} from "./serve.ts";
export { fileDeadLetterStore, replayDeadLetters } from "./dead_letters.ts";
export {
  type BackfillOptions,
  type BackfillProgress,
  type BackfillSummary,
  backfillTrackingLogs,
  type BadLine,
  parseTrackingLogLine,
  trackingLogEventId,
  trackingLogJson,
} from "./backfill.ts";
export { reopenLogFiles, trackingLogBranch, type TrackingLogBranchOptions, trackingLogPrefix } from "./tracking_log.ts";
export { type FsyncPolicy, type WalRecord, WriteAheadLog, type WriteAheadLogOptions } from "./write_ahead_log.ts";
