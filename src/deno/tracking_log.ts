/**
 * The collector's Open edX tracking log: the branch that writes
 * `<dataDir>/tracking.log` as the LMS does, and what a process does on SIGHUP.
 *
 * @module
 */

import type { EngineSpec } from "../config.ts";
import { LoggerBackend, type LogPrefix, OPENEDX_MAX_EVENT_SIZE } from "../backends/logger.ts";
import type { Tracker } from "../tracker.ts";
import { walkTree } from "../tree.ts";

/** Options of {@linkcode trackingLogBranch}. */
export interface TrackingLogBranchOptions {
  /** Tutor's logging prefix before each line (what Aspects' Vector reads); none by default. */
  prefix?: LogPrefix;
  /** The file. @default `<dataDir>/tracking.log` */
  path?: string;
}

/**
 * The configuration of edx-platform's `tracking_logs` branch for the
 * collector: an async branch (retries, dead letters under
 * `<dataDir>/dead-letters/`) running the shim processors
 * (`track.shim.LegacyFieldMappingProcessor`, `track.shim.PrefixedEventProcessor`)
 * and a `LoggerBackend` writing the LMS's line (`format: "openedx"`, 50,000
 * characters at most; longer events are dead-lettered) to
 * `<dataDir>/tracking.log`.
 *
 * @example
 * ```ts
 * import { createTracker } from "@edx/event-tracking";
 * import { trackingLogBranch } from "@edx/event-tracking/deno";
 * import assert from "node:assert/strict";
 *
 * const dataDir = await Deno.makeTempDir();
 * const tracker = createTracker({ backends: { tracking_log: trackingLogBranch(dataDir, { prefix: "tutor" }) } }, { dataDir });
 * tracker.emit("edx.ui.click", { x: 1 });
 * await tracker.close();
 * assert.match(await Deno.readTextFile(`${dataDir}/tracking.log`), / \[tracking\] \[user None\] .* - \{"name": "edx\.ui\.click"/);
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 */
export function trackingLogBranch(dataDir: string, options: TrackingLogBranchOptions = {}): EngineSpec {
  const logger: Record<string, unknown> = {
    name: "tracking",
    path: options.path ?? `${dataDir}/tracking.log`,
    format: "openedx",
    max_event_size: OPENEDX_MAX_EVENT_SIZE,
  };
  if (options.prefix !== undefined) logger.prefix = options.prefix;
  return {
    ENGINE: "async_routing",
    OPTIONS: {
      processors: [
        { ENGINE: "track.shim.LegacyFieldMappingProcessor" },
        { ENGINE: "track.shim.PrefixedEventProcessor" },
      ],
      backends: { file: { ENGINE: "logger", OPTIONS: logger } },
    },
  };
}

/**
 * Reads `EVENT_TRACKING_LOG_PREFIX`: `tutor` selects Tutor's prefix; unset,
 * empty or `none` means bare lines.
 *
 * @example
 * ```ts
 * import { trackingLogPrefix } from "@edx/event-tracking/deno";
 * import assert from "node:assert/strict";
 *
 * assert.equal(trackingLogPrefix("tutor"), "tutor");
 * assert.equal(trackingLogPrefix(undefined), undefined);
 * assert.throws(() => trackingLogPrefix("docker"), RangeError);
 * ```
 *
 * @throws {RangeError} For any other value.
 */
export function trackingLogPrefix(value: string | undefined): LogPrefix | undefined {
  if (value === undefined || value === "" || value === "none") return undefined;
  if (value === "tutor") return "tutor";
  throw new RangeError(
    `Cannot start the collector as 'EVENT_TRACKING_LOG_PREFIX' must be "tutor" or "none": current value is ${value}`,
  );
}

/**
 * Reopens every file a `LoggerBackend` of the tree writes (see
 * {@linkcode LoggerBackend.reopen}): call it on SIGHUP, once logrotate has
 * moved the files away, so that the next lines go to new files by the same
 * paths. Returns the paths reopened.
 *
 * @example
 * ```ts
 * import { createTracker } from "@edx/event-tracking";
 * import { reopenLogFiles, trackingLogBranch } from "@edx/event-tracking/deno";
 * import assert from "node:assert/strict";
 *
 * const dataDir = await Deno.makeTempDir();
 * const tracker = createTracker({ backends: { tracking_log: trackingLogBranch(dataDir) } }, { dataDir });
 * tracker.emit("a");
 * await tracker.flush();
 * await Deno.rename(`${dataDir}/tracking.log`, `${dataDir}/tracking.log.1`);
 * assert.deepEqual(await reopenLogFiles(tracker), [`${dataDir}/tracking.log`]);
 * tracker.emit("b");
 * await tracker.close();
 * assert.match(await Deno.readTextFile(`${dataDir}/tracking.log`), /"name": "b"/);
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 *
 * @throws {AggregateError} If a file could not be synced or closed (the others are still reopened).
 */
export async function reopenLogFiles(tracker: Tracker): Promise<string[]> {
  const loggers = [...walkTree(tracker.backends)]
    .map((node) => node.backend)
    .filter((backend): backend is LoggerBackend => backend instanceof LoggerBackend && backend.path !== undefined);
  const results = await Promise.allSettled(loggers.map((logger) => logger.reopen()));
  const errors = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => r.reason);
  if (errors.length > 0) throw new AggregateError(errors, `Cannot reopen ${errors.length} log file(s)`);
  return loggers.map((logger) => logger.path!);
}
