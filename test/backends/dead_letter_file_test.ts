import assert from "node:assert/strict";
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { rejectsPath, replayDeadLetterFile } from "../../src/backends/_dead_letter_file.ts";
import { RecordingLogger } from "../_helpers.ts";

function letter(id: string): string {
  return JSON.stringify({
    id,
    name: "e",
    timestamp: "2026-01-01T00:00:00.000Z",
    context: {},
    data: {},
    deadLetter: { error: "Error: down", attempts: 5, backend: "sink", at: "2026-01-01T00:00:01.000Z" },
  });
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dead_letter_test_" });
  try {
    await fn(dir);
  } finally {
    await fs.rm(dir, { recursive: true });
  }
}

async function files(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).sort();
}

/** A requeue whose promises settle only when the test says so. */
function deferredRequeue() {
  const seen: { letter: unknown; where: string }[] = [];
  const settlers: (() => void)[] = [];
  const failers: ((error: unknown) => void)[] = [];
  const requeue = (letter: unknown, where: string) => {
    seen.push({ letter, where });
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    settlers.push(resolve);
    failers.push(reject);
    return promise;
  };
  return { seen, requeue, settle: () => settlers.forEach((resolve) => resolve()), failers };
}

Deno.test("replayDeadLetterFile deletes the claimed file only after every requeued event settled", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "caliper.jsonl");
    await fs.writeFile(path, `${letter("1")}\n${letter("2")}\n\n`);
    const logger = new RecordingLogger();
    const { seen, requeue, settle } = deferredRequeue();
    const replay = replayDeadLetterFile(path, requeue, { logger, owner: "test" });
    while (seen.length < 2) await new Promise((resolve) => setTimeout(resolve, 1));
    assert.deepEqual(seen.map((s) => (s.letter as { id: string }).id), ["1", "2"]);
    assert.match(seen[1].where, /^line 2 of .*caliper\.jsonl\.replaying-\d+-\w+$/);
    const claimed = await files(dir);
    assert.equal(claimed.length, 1);
    assert.match(claimed[0], /^caliper\.jsonl\.replaying-\d+-\w+$/, "claimed: renamed, still there");
    settle();
    assert.equal(await replay, 2);
    assert.deepEqual(await files(dir), []);
    assert.deepEqual(logger.warnings, []);
  });
});

Deno.test("replayDeadLetterFile keeps the claimed file while requeued events are pending", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "caliper.jsonl");
    await fs.writeFile(path, `${letter("1")}\n`);
    const { seen, requeue, settle } = deferredRequeue();
    let done = false;
    const replay = replayDeadLetterFile(path, requeue, { logger: new RecordingLogger(), owner: "test" })
      .finally(() => done = true);
    while (seen.length < 1) await new Promise((resolve) => setTimeout(resolve, 1));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(done, false);
    assert.equal((await files(dir)).length, 1, "nothing deleted while the requeued event is pending");
    settle();
    await replay;
    assert.deepEqual(await files(dir), []);
  });
});

Deno.test("replayDeadLetterFile keeps the claimed file when a requeued event could not be dead-lettered again", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "caliper.jsonl");
    await fs.writeFile(path, `${letter("1")}\n`);
    const logger = new RecordingLogger();
    const { seen, requeue, failers } = deferredRequeue();
    const replay = replayDeadLetterFile(path, requeue, { logger, owner: "test" });
    while (seen.length < 1) await new Promise((resolve) => setTimeout(resolve, 1));
    failers[0](new Error("dead-letter sink down"));
    assert.equal(await replay, 1);
    assert.equal((await files(dir)).length, 1);
    assert.match(logger.warnings[0], /1 event\(s\) of .* were neither delivered nor dead-lettered again; .* is kept/);
  });
});

Deno.test("replayDeadLetterFile resumes claimed files left by a crash, oldest first, then the new one", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "caliper.jsonl");
    // A crash after the claim: the previous code's name and the current one.
    await fs.writeFile(`${path}.replaying-2000-abc`, `${letter("b")}\n`);
    await fs.writeFile(`${path}.replaying-1000`, `${letter("a")}\n`);
    await fs.writeFile(path, `${letter("c")}\n`);
    await fs.writeFile(join(dir, "other.jsonl.replaying-1"), `${letter("x")}\n`);
    const ids: string[] = [];
    const replayed = await replayDeadLetterFile(path, (l) => {
      ids.push((l as { id: string }).id);
      return Promise.resolve();
    }, { logger: new RecordingLogger(), owner: "test" });
    assert.equal(replayed, 3);
    assert.deepEqual(ids, ["a", "b", "c"]);
    assert.deepEqual(await files(dir), ["other.jsonl.replaying-1"], "another file's claims are left alone");
  });
});

Deno.test("replayDeadLetterFile resumes a claimed file even when the dead-letter file is gone", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "caliper.jsonl");
    await fs.writeFile(`${path}.replaying-1000-x`, `${letter("a")}\n`);
    const requeue = () => Promise.resolve();
    assert.equal(await replayDeadLetterFile(path, requeue, { logger: new RecordingLogger(), owner: "t" }), 1);
    assert.deepEqual(await files(dir), []);
  });
});

Deno.test("replayDeadLetterFile writes malformed and refused lines to the rejects file before deleting", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "caliper.jsonl");
    await fs.writeFile(join(dir, "caliper.rejects.jsonl"), "earlier\n");
    const torn = letter("4").slice(0, 25);
    await fs.writeFile(path, `${letter("1")}\nnot json\n${letter("refuse")}\n${torn}`);
    const logger = new RecordingLogger();
    const replayed = await replayDeadLetterFile(
      path,
      (l) => (l as { id: string }).id === "refuse" ? false : Promise.resolve(),
      { logger, owner: 'AsyncRoutingBackend "caliper"' },
    );
    assert.equal(replayed, 1);
    assert.equal(rejectsPath(path), join(dir, "caliper.rejects.jsonl"));
    assert.equal(
      await fs.readFile(rejectsPath(path), "utf8"),
      `earlier\nnot json\n${letter("refuse")}\n${torn}\n`,
      "appended, one line each",
    );
    assert.deepEqual(await files(dir), ["caliper.rejects.jsonl"]);
    assert.equal(logger.warnings.length, 1);
    assert.match(
      logger.warnings[0],
      /^AsyncRoutingBackend "caliper": 3 line\(s\) of .*caliper\.jsonl\.replaying-\S+ could not be replayed.*caliper\.rejects\.jsonl$/,
    );
  });
});

Deno.test("replayDeadLetterFile keeps the claimed file when its rejects cannot be written", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "caliper.jsonl");
    await fs.mkdir(rejectsPath(path)); // a folder in the way: the append fails
    await fs.writeFile(path, "not json\n");
    const logger = new RecordingLogger();
    await assert.rejects(
      replayDeadLetterFile(path, () => Promise.resolve(), { logger, owner: "test" }),
      AggregateError,
    );
    assert.equal(logger.errors.length, 1);
    const left = (await files(dir)).filter((name) => name.startsWith("caliper.jsonl.replaying-"));
    assert.equal(left.length, 1, "kept for the next replay");
  });
});

Deno.test("replayDeadLetterFile: no file and no claimed files is 0; a missing folder too", async () => {
  await withDir(async (dir) => {
    const options = { logger: new RecordingLogger(), owner: "test" };
    const requeue = () => Promise.resolve();
    assert.equal(await replayDeadLetterFile(join(dir, "caliper.jsonl"), requeue, options), 0);
    assert.equal(await replayDeadLetterFile(join(dir, "missing", "caliper.jsonl"), requeue, options), 0);
  });
});

Deno.test("replayDeadLetterFile: concurrent replays of one path do not requeue a claimed file twice", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "caliper.jsonl");
    await fs.writeFile(path, `${letter("1")}\n`);
    const { seen, requeue, settle } = deferredRequeue();
    const options = { logger: new RecordingLogger(), owner: "test" };
    const first = replayDeadLetterFile(path, requeue, options);
    while (seen.length < 1) await new Promise((resolve) => setTimeout(resolve, 1));
    assert.equal(await replayDeadLetterFile(path, requeue, options), 0);
    settle();
    assert.equal(await first, 1);
    assert.equal(seen.length, 1);
  });
});
