/**
 * The dead letters of a Deno collector's async branches, read from their
 * dead-letter files: listed for the console (`GET /v1/dead-letters`) and fed
 * back (`POST /v1/dead-letters/<backendName>/replay`, `deno task replay`).
 *
 * @module
 */

import { AsyncRoutingBackend, type ReplayReport } from "../backends/async_routing.ts";
import { claimedDeadLetterFiles } from "../backends/_dead_letter_file.ts";
import { type DeadLetterBranch, deadLetterEntry, type DeadLetterStore } from "../http/dead_letters.ts";
import { httpError } from "../http/errors.ts";
import type { Tracker } from "../tracker.ts";
import { walkTree } from "../tree.ts";

/** How far back from a file's end the newest dead letters are looked for, at most. */
const MAX_TAIL_BYTES = 1024 * 1024;
const CHUNK_BYTES = 64 * 1024;
const NEWLINE = 0x0a;
const OWNER = "the console's dead letters";

function branchesOf(tracker: Tracker): { path: string; branch: AsyncRoutingBackend & { deadLetterPath: string } }[] {
  const branches = [];
  for (const { path, backend } of walkTree(tracker.backends)) {
    if (backend instanceof AsyncRoutingBackend && backend.deadLetterPath !== undefined) {
      branches.push({ path, branch: backend as AsyncRoutingBackend & { deadLetterPath: string } });
    }
  }
  return branches;
}

/**
 * Replays the default dead-letter file of every `AsyncRoutingBackend` in the
 * tree (at any depth) through its branch, once the fault is fixed, and waits
 * until each replayed event is delivered or dead-lettered again. Returns what
 * each branch did, by its place in the tree.
 *
 * @example
 * ```ts
 * import { createTracker } from "@edx/event-tracking";
 * import { replayDeadLetters } from "@edx/event-tracking/deno";
 * import assert from "node:assert/strict";
 *
 * const dataDir = await Deno.makeTempDir();
 * const tracker = createTracker({ backends: { logs: { ENGINE: "async_routing" } } }, { dataDir });
 * assert.deepEqual(await replayDeadLetters(tracker), { "root/logs": { replayed: 0, delivered: 0, deadLettered: 0, failed: 0 } });
 * await tracker.close();
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 */
export async function replayDeadLetters(tracker: Tracker): Promise<Record<string, ReplayReport>> {
  const replayed: Record<string, ReplayReport> = {};
  for (const { path, branch } of branchesOf(tracker)) replayed[path] = await branch.replayDeadLetters();
  return replayed;
}

// Lines counted so far in a file, so that a poll reads only what was appended since.
interface LineCount {
  ino: number | null;
  size: number;
  lines: number;
}

async function readRange(file: Deno.FsFile, start: number, length: number, into: Uint8Array): Promise<number> {
  await file.seek(start, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < length) {
    const read = await file.read(into.subarray(filled, length));
    if (read === null) break;
    filled += read;
  }
  return filled;
}

/**
 * One dead-letter file, opened once: how many lines it has (counting only
 * what was appended since the last call) and its last `newest` complete
 * lines, newest first, looked for in a window from its end that grows up to
 * MAX_TAIL_BYTES.
 */
async function readDeadLetterFile(
  path: string,
  counts: Map<string, LineCount>,
  newest: number,
): Promise<{ lines: number; newest: string[] }> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      counts.delete(path);
      return { lines: 0, newest: [] };
    }
    throw error;
  }
  try {
    const { ino, size } = await file.stat();
    let known = counts.get(path);
    // Another file under the name (claimed by a replay, then written anew), or one cut short: count afresh.
    if (known === undefined || known.ino !== ino || size < known.size) known = { ino, size: 0, lines: 0 };
    const chunk = new Uint8Array(CHUNK_BYTES);
    let offset = known.size;
    while (offset < size) {
      const read = await readRange(file, offset, Math.min(CHUNK_BYTES, size - offset), chunk);
      if (read === 0) break;
      for (let i = 0; i < read; i++) if (chunk[i] === NEWLINE) known.lines++;
      offset += read;
    }
    counts.set(path, { ino, size: offset, lines: known.lines });
    if (newest === 0) return { lines: known.lines, newest: [] };
    for (let window = Math.min(CHUNK_BYTES, offset);; window = Math.min(window * 4, MAX_TAIL_BYTES, offset)) {
      const start = offset - window;
      const bytes = new Uint8Array(window);
      const filled = await readRange(file, start, window, bytes);
      const lines = new TextDecoder().decode(bytes.subarray(0, filled)).split("\n");
      lines.pop(); // after the last newline: empty, or a line still being written
      if (start > 0) lines.shift(); // cut by the window
      if (lines.length >= newest || start === 0 || window === MAX_TAIL_BYTES) {
        return { lines: known.lines, newest: lines.slice(-newest).reverse() };
      }
    }
  } finally {
    file.close();
  }
}

/**
 * The dead letters of every `AsyncRoutingBackend` of the tree that writes the
 * default dead-letter file, read from the files: per branch, how many wait
 * (the file and any copy a replay claimed and has not finished), and the
 * newest few. Counting reads only what was appended since the last call;
 * the newest are looked for in the last MiB of a file. `replay` feeds a
 * branch's dead letters back and reports how many were delivered again.
 *
 * @example
 * ```ts
 * import { createTracker } from "@edx/event-tracking";
 * import { fileDeadLetterStore } from "@edx/event-tracking/deno";
 * import assert from "node:assert/strict";
 *
 * const dataDir = await Deno.makeTempDir();
 * const tracker = createTracker({ backends: { logs: { ENGINE: "async_routing" } } }, { dataDir });
 * const store = fileDeadLetterStore(tracker);
 * assert.deepEqual(await store.list(5), [{ backendName: "logs", path: "root/logs", count: 0, newest: [] }]);
 * await tracker.close();
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 */
export function fileDeadLetterStore(tracker: Tracker): DeadLetterStore {
  const counts = new Map<string, LineCount>();
  return {
    async list(newest) {
      const listed: DeadLetterBranch[] = [];
      const seen = new Set<string>();
      for (const { path, branch } of branchesOf(tracker)) {
        // Newest first: the file being written, then the claimed copies, most recent claim first.
        const files = [
          branch.deadLetterPath,
          ...(await claimedDeadLetterFiles(branch.deadLetterPath, OWNER)).reverse(),
        ];
        for (const file of files) seen.add(file);
        let count = 0;
        const lines: string[] = [];
        for (const file of files) {
          const read = await readDeadLetterFile(file, counts, newest - lines.length);
          count += read.lines;
          lines.push(...read.newest);
        }
        listed.push({ backendName: branch.backendName, path, count, newest: lines.map(deadLetterEntry) });
      }
      for (const file of counts.keys()) if (!seen.has(file)) counts.delete(file); // claimed copies replayed since
      return listed;
    },
    async replay(backendName) {
      const found = branchesOf(tracker).find(({ branch }) => branch.backendName === backendName);
      if (found === undefined) {
        throw httpError(
          404,
          "unknown_branch",
          `No async branch named "${backendName}" keeps a dead-letter file (branches: ${
            branchesOf(tracker).map(({ branch }) => `"${branch.backendName}"`).join(", ")
          })`,
        );
      }
      return { backendName, ...await found.branch.replayDeadLetters(), pending: 0 };
    },
  };
}
