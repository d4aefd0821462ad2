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

/** How far back from a file's end the newest dead letters are looked for. */
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

async function countLines(path: string, cache: Map<string, LineCount>): Promise<number> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      cache.delete(path);
      return 0;
    }
    throw error;
  }
  try {
    const { ino, size } = await file.stat();
    let known = cache.get(path);
    // Another file under the name (claimed by a replay, then written anew), or one cut short: count afresh.
    if (known === undefined || known.ino !== ino || size < known.size) known = { ino, size: 0, lines: 0 };
    await file.seek(known.size, Deno.SeekMode.Start);
    const chunk = new Uint8Array(CHUNK_BYTES);
    let offset = known.size;
    while (offset < size) {
      const read = await file.read(chunk.subarray(0, Math.min(CHUNK_BYTES, size - offset)));
      if (read === null) break;
      for (let i = 0; i < read; i++) if (chunk[i] === NEWLINE) known.lines++;
      offset += read;
    }
    cache.set(path, { ino, size: offset, lines: known.lines });
    return known.lines;
  } finally {
    file.close();
  }
}

// The last `count` complete lines of a file, newest first, looking back at most MAX_TAIL_BYTES.
async function lastLines(path: string, count: number): Promise<string[]> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  try {
    const { size } = await file.stat();
    const start = Math.max(0, size - MAX_TAIL_BYTES);
    const bytes = new Uint8Array(size - start);
    await file.seek(start, Deno.SeekMode.Start);
    let filled = 0;
    while (filled < bytes.length) {
      const read = await file.read(bytes.subarray(filled));
      if (read === null) break;
      filled += read;
    }
    const lines = new TextDecoder().decode(bytes.subarray(0, filled)).split("\n");
    lines.pop(); // after the last newline: empty, or a line still being written
    if (start > 0) lines.shift(); // cut by the look-back window
    return lines.slice(-count).reverse();
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
          count += await countLines(file, counts);
          if (lines.length < newest) lines.push(...await lastLines(file, newest - lines.length));
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
