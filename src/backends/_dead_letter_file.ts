/**
 * Crash-safe replay of a dead-letter file: the file is claimed by a rename,
 * and the claimed copy is deleted only once every line it held is delivered
 * or dead-lettered again, so a crash mid-replay loses nothing: the next replay
 * resumes the claimed file (at-least-once: some events may be delivered twice).
 *
 * @module
 */

import { nodeBuiltin } from "../_node_builtin.ts";
import type { DiagnosticLogger } from "../diagnostics.ts";

/**
 * Queues one dead letter again. Returns `false` when it cannot be replayed
 * (the caller has said why), otherwise a promise that settles once the event
 * is delivered or dead-lettered again, and rejects if even that failed.
 */
export type Requeue = (letter: unknown, where: string) => Promise<void> | false;

/** Options of {@linkcode replayDeadLetterFile}. */
export interface ReplayDeadLetterFileOptions {
  /** Where rejected lines and failures are reported. */
  readonly logger: DiagnosticLogger;
  /** Who replays, as diagnostics name it, e.g. `AsyncRoutingBackend "caliper"`. */
  readonly owner: string;
}

type Fs = typeof import("node:fs/promises");

const CLAIM = ".replaying-";

// Claimed files this process is replaying: a concurrent replay of the same
// path must not queue their lines a second time.
const replaying = new Set<string>();

function message(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function code(error: unknown): unknown {
  return (error as { code?: unknown } | null)?.code;
}

/** Where lines that cannot be replayed are kept: `<path minus .jsonl>.rejects.jsonl`. */
export function rejectsPath(path: string): string {
  return `${path.endsWith(".jsonl") ? path.slice(0, -".jsonl".length) : path}.rejects.jsonl`;
}

/**
 * The files claimed from the dead-letter file at `path` by replays that are
 * running or never finished (a crash), oldest claim first.
 *
 * @throws {Error} If the directory cannot be listed (a missing one has none).
 */
export async function claimedDeadLetterFiles(path: string, owner: string): Promise<string[]> {
  const fs = nodeBuiltin<Fs>("node:fs/promises", owner);
  const { basename, dirname, join } = nodeBuiltin<typeof import("node:path")>("node:path", owner);
  const dir = dirname(path);
  const prefix = basename(path) + CLAIM;
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (error) {
    if (code(error) !== "ENOENT") throw error;
    names = [];
  }
  // Oldest first: by the claim's timestamp, then by name.
  const claimTime = (name: string) => Number(/^\d+/.exec(name.slice(prefix.length))?.[0] ?? 0);
  return names.filter((name) => name.startsWith(prefix))
    .sort((a, b) => claimTime(a) - claimTime(b) || (a < b ? -1 : a > b ? 1 : 0))
    .map((name) => join(dir, name));
}

/**
 * Replays the dead-letter file at `path`: claims it by renaming it to
 * `<path>.replaying-<timestamp>-<random>`, then, oldest first, replays the
 * files claimed earlier and never finished (a crash) and the one just claimed.
 * Each line is passed to `requeue`; a line that is not JSON, or that
 * `requeue` refuses, is appended to {@linkcode rejectsPath} (and the write
 * awaited) and reported. A claimed file is deleted only once every
 * requeued line's promise has settled and its rejects are written; if a
 * requeued event could be neither delivered nor dead-lettered again, or the
 * file grew after it was read, it is kept for the next replay.
 *
 * @returns How many lines were requeued (0 when there is nothing to replay).
 * @throws {Error} If the file cannot be claimed or listed (nothing was requeued then).
 * @throws {AggregateError} If a claimed file could not be read, its rejects
 *   written or itself deleted; only after every requeued line has settled.
 *   Those files are kept and resumed at the next replay.
 */
export async function replayDeadLetterFile(
  path: string,
  requeue: Requeue,
  options: ReplayDeadLetterFileOptions,
): Promise<number> {
  const fs = nodeBuiltin<Fs>("node:fs/promises", options.owner);
  const { resolve } = nodeBuiltin<typeof import("node:path")>("node:path", options.owner);
  const files = await claimedDeadLetterFiles(path, options.owner);
  const claimed = `${path}${CLAIM}${Date.now()}-${Math.random().toString(36).slice(2, 10)}`;
  try {
    await fs.rename(path, claimed);
    files.push(claimed);
  } catch (error) {
    if (code(error) !== "ENOENT") throw error;
  }

  let replayed = 0;
  const finishing: Promise<void>[] = [];
  const failures: unknown[] = [];
  for (const file of files) {
    const key = resolve(file);
    if (replaying.has(key)) continue;
    replaying.add(key);
    try {
      const replay = await replayFile(fs, file, rejectsPath(path), requeue, options);
      replayed += replay.requeued;
      finishing.push(replay.finished.catch((error) => void failures.push(error)).finally(() => replaying.delete(key)));
    } catch (error) {
      replaying.delete(key);
      failures.push(error);
    }
  }
  await Promise.all(finishing);
  if (failures.length > 0) {
    for (const failure of failures) options.logger.error(`${options.owner}: ${message(failure)}`, failure);
    throw new AggregateError(
      failures,
      `${options.owner} cannot finish replaying ${path}: ${failures.length} failure(s); the claimed files are kept and resumed at the next replay`,
    );
  }
  return replayed;
}

/** Requeues every line of one claimed file; `finished` settles once it is deleted (or kept, and why). */
async function replayFile(
  fs: Fs,
  file: string,
  rejects: string,
  requeue: Requeue,
  { logger, owner }: ReplayDeadLetterFileOptions,
): Promise<{ requeued: number; finished: Promise<void> }> {
  const bytes = await fs.readFile(file);
  const lines = new TextDecoder().decode(bytes).split("\n");
  const refused: string[] = [];
  const pending: Promise<void>[] = [];
  for (const [i, line] of lines.entries()) {
    if (line.trim() === "") continue;
    let letter: unknown;
    try {
      letter = JSON.parse(line);
    } catch {
      refused.push(line);
      continue;
    }
    let result: Promise<void> | false;
    try {
      result = requeue(letter, `line ${i + 1} of ${file}`);
    } catch (error) {
      // A requeue that throws has not settled the line: keep the file for the next replay.
      result = Promise.reject(error);
    }
    if (result === false) refused.push(line);
    else pending.push(result);
  }

  const finished = (async () => {
    const [written, outcomes] = await Promise.allSettled([
      refused.length === 0 ? undefined : appendDurably(fs, rejects, refused),
      Promise.allSettled(pending),
    ]);
    if (written.status === "rejected") {
      throw new Error(`cannot keep ${refused.length} unreplayable line(s) of ${file} in ${rejects}; ${file} is kept`, {
        cause: written.reason,
      });
    }
    if (refused.length > 0) {
      logger.warn(
        `${owner}: ${refused.length} line(s) of ${file} could not be replayed (not JSON, or refused); they are kept in ${rejects}`,
      );
    }
    const unsettled = outcomes.status === "fulfilled"
      ? outcomes.value.filter((outcome) => outcome.status === "rejected").length
      : pending.length;
    if (unsettled > 0) {
      logger.warn(
        `${owner}: ${unsettled} event(s) of ${file} were neither delivered nor dead-lettered again; ${file} is kept and resumed at the next replay`,
      );
      return;
    }
    // Something still writing to the file's old name would lose its lines with it.
    if ((await fs.stat(file)).size !== bytes.length) {
      logger.warn(
        `${owner}: ${file} was written to after it was claimed; it is kept and replayed again at the next replay`,
      );
      return;
    }
    await fs.rm(file);
  })();
  // The caller attaches its handler after this function returns.
  finished.catch(() => {});
  return { requeued: pending.length, finished };
}

async function appendDurably(fs: Fs, path: string, lines: readonly string[]): Promise<void> {
  const handle = await fs.open(path, "a");
  try {
    await handle.appendFile(lines.join("\n") + "\n");
    await handle.datasync();
  } finally {
    await handle.close();
  }
}
