import assert from "node:assert/strict";
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { restoreEvent, type TrackingEvent } from "../../mod.ts";
import { type WalRecord, WriteAheadLog } from "../../src/deno/write_ahead_log.ts";
import { RecordingLogger } from "../_helpers.ts";

function event(id: string | number, data: unknown = {}): TrackingEvent {
  return restoreEvent({ id: String(id), name: "e", timestamp: "2026-01-01T00:00:00.000Z", context: {}, data });
}

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "wal_test_" });
}

async function files(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).sort();
}

function ids(records: readonly WalRecord[]): string[] {
  return records.map((record) => record.event.id);
}

Deno.test("WriteAheadLog: append, close, open recovers the events in order; releasing all deletes the old segment", async () => {
  const dir = await tempDir();
  try {
    const first = await WriteAheadLog.open({ dir });
    assert.equal(first.recovered.length, 0);
    await first.log.append([event(1, { x: [1, 2] }), event(2)]);
    await first.log.append([event(3)]);
    assert.equal(first.log.pendingRecords, 3);
    await first.log.close();
    assert.deepEqual(await files(dir), ["0000000000000001.wal"]);

    const { log, recovered } = await WriteAheadLog.open({ dir });
    assert.deepEqual(ids(recovered), ["1", "2", "3"]);
    assert.deepEqual(recovered[0].event, event(1, { x: [1, 2] }));
    assert.equal(log.pendingRecords, 3);
    assert.equal(log.segments, 1);
    for (const record of recovered) record.release();
    recovered[0].release(); // idempotent
    assert.equal(log.pendingRecords, 0);
    assert.equal(log.segments, 0);
    await log.close();
    assert.deepEqual(await files(dir), []);
  } finally {
    await fs.rm(dir, { recursive: true });
  }
});

Deno.test("WriteAheadLog: new appends after a recovery go to a new segment, never to a recovered one", async () => {
  const dir = await tempDir();
  try {
    const first = await WriteAheadLog.open({ dir });
    await first.log.append([event(1)]);
    await first.log.close();
    const { log, recovered } = await WriteAheadLog.open({ dir });
    const [added] = await log.append([event(2)]);
    assert.deepEqual(await files(dir), ["0000000000000001.wal", "0000000000000002.wal"]);
    recovered[0].release();
    added.release();
    await log.close();
    assert.deepEqual(await files(dir), [], "a fully released current segment is deleted at close");
  } finally {
    await fs.rm(dir, { recursive: true });
  }
});

Deno.test("WriteAheadLog: records released in a segment that still holds unreleased ones are recovered again", async () => {
  const dir = await tempDir();
  try {
    const first = await WriteAheadLog.open({ dir });
    const records = await first.log.append([event(1), event(2), event(3)]);
    records[0].release();
    records[2].release();
    assert.equal(first.log.pendingRecords, 1);
    await first.log.close();
    // The segment is deleted only once ALL its records are released; until then a
    // restart replays released ones too. That is the at-least-once contract:
    // duplicates after a crash, never a loss.
    const { log, recovered } = await WriteAheadLog.open({ dir });
    assert.deepEqual(ids(recovered), ["1", "2", "3"]);
    for (const record of recovered) record.release();
    await log.close();
    assert.deepEqual(await files(dir), []);
  } finally {
    await fs.rm(dir, { recursive: true });
  }
});

Deno.test("WriteAheadLog rotates segments past segmentBytes and deletes an old one once released", async () => {
  const dir = await tempDir();
  try {
    const { log } = await WriteAheadLog.open({ dir, segmentBytes: 200 });
    const records: WalRecord[] = [];
    // Each event is ~80 bytes: three per segment.
    for (let i = 0; i < 9; i++) records.push(...await log.append([event(i)]));
    assert.equal(log.segments, 3);
    assert.deepEqual(await files(dir), ["0000000000000001.wal", "0000000000000002.wal", "0000000000000003.wal"]);
    const firstSegment = records.slice(0, 3);
    firstSegment[0].release();
    firstSegment[1].release();
    assert.equal(log.segments, 3, "a segment with an unreleased record stays");
    firstSegment[2].release();
    assert.equal(log.segments, 2);
    for (const record of records.slice(6)) record.release();
    assert.equal(log.segments, 2, "the current segment is kept even when released");
    await log.close();
    assert.deepEqual(await files(dir), ["0000000000000002.wal"], "the current one was deleted at close");
    const reopened = await WriteAheadLog.open({ dir });
    assert.deepEqual(ids(reopened.recovered), ["3", "4", "5"]);
    await reopened.log.close();
  } finally {
    await fs.rm(dir, { recursive: true });
  }
});

Deno.test("WriteAheadLog skips a torn last record and unparsable lines, and warns once per file", async () => {
  const dir = await tempDir();
  try {
    const lines = [1, 2].map((id) => JSON.stringify(event(id)) + "\n").join("");
    const torn = JSON.stringify(event(3)).slice(0, 30);
    await fs.writeFile(join(dir, "0000000000000007.wal"), lines + torn);
    await fs.writeFile(join(dir, "0000000000000008.wal"), JSON.stringify(event(4)) + "\n\0\0\0\0\n");
    await fs.writeFile(join(dir, "0000000000000009.wal"), "\0".repeat(64));
    await fs.writeFile(join(dir, "notes.txt"), "not a segment");
    const logger = new RecordingLogger();
    const { log, recovered } = await WriteAheadLog.open({ dir, logger });
    assert.deepEqual(ids(recovered), ["1", "2", "4"]);
    assert.equal(logger.warnings.length, 3);
    assert.match(logger.warnings[0], /torn last record \(30 bytes.*0000000000000007\.wal/);
    assert.match(logger.warnings[1], /1 line\(s\) \(5 bytes\) that did not parse.*0000000000000008\.wal/);
    assert.match(logger.warnings[2], /torn last record \(64 bytes.*0000000000000009\.wal/);
    assert.equal(log.segments, 2, "a segment with nothing recovered is deleted at once");
    assert.deepEqual(await files(dir), ["0000000000000007.wal", "0000000000000008.wal", "notes.txt"]);
    await log.append([event(5)]);
    assert.ok((await files(dir)).includes("0000000000000010.wal"), "numbering continues after the last segment");
    await log.close();
  } finally {
    await fs.rm(dir, { recursive: true });
  }
});

Deno.test("WriteAheadLog joins appends made in one tick into one write and one sync (group commit)", async () => {
  const dir = await tempDir();
  try {
    const { log } = await WriteAheadLog.open({ dir, fsync: "always" });
    const appends = Array.from({ length: 100 }, (_, i) => log.append([event(i)]));
    const records = (await Promise.all(appends)).flat();
    assert.deepEqual(ids(records), Array.from({ length: 100 }, (_, i) => String(i)));
    assert.ok(log.writes < 100, `${log.writes} writes for 100 appends`);
    assert.ok(log.syncs <= log.writes, "one sync per group write under 'always'");
    assert.ok(log.syncs >= 1);
    await log.close();
    const reopened = await WriteAheadLog.open({ dir });
    assert.deepEqual(ids(reopened.recovered), ids(records));
    await reopened.log.close();
  } finally {
    await fs.rm(dir, { recursive: true });
  }
});

Deno.test("WriteAheadLog with fsync 'interval' syncs written data within a few intervals", async () => {
  const dir = await tempDir();
  try {
    const { log } = await WriteAheadLog.open({ dir, fsync: "interval", fsyncIntervalMs: 10 });
    await log.append([event(1)]);
    assert.equal(log.syncs, 0, "the append resolved without waiting for a sync");
    const deadline = Date.now() + 2000;
    while (log.syncs === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.ok(log.syncs >= 1, "a sync followed the write");
    const synced = log.syncs;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(log.syncs, synced, "nothing written since: no more syncs");
    await log.close();
  } finally {
    await fs.rm(dir, { recursive: true });
  }
});

Deno.test("WriteAheadLog with fsync 'off' syncs only at close; a closed log refuses appends", async () => {
  const dir = await tempDir();
  try {
    const { log } = await WriteAheadLog.open({ dir, fsync: "off", fsyncIntervalMs: 1 });
    await log.append([event(1)]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(log.syncs, 0);
    await log.close();
    assert.equal(log.syncs, 1);
    await assert.rejects(log.append([event(2)]), /closed/);
    await log.close(); // idempotent
  } finally {
    await fs.rm(dir, { recursive: true });
  }
});

Deno.test("WriteAheadLog rejects an append it cannot write; the next append goes to a new segment", async () => {
  const dir = await tempDir();
  try {
    const { log } = await WriteAheadLog.open({ dir, segmentBytes: 1 });
    const [first] = await log.append([event(1)]);
    // The next segment's name is taken by a folder, so creating it fails.
    await fs.mkdir(join(dir, "0000000000000002.wal"));
    await assert.rejects(log.append([event(2)]), /EEXIST|exists/i);
    assert.equal(log.pendingRecords, 1, "a rejected append leaves no record");
    const [third] = await log.append([event(3)]);
    assert.deepEqual(await files(dir), ["0000000000000001.wal", "0000000000000002.wal", "0000000000000003.wal"]);
    await fs.rmdir(join(dir, "0000000000000002.wal"));
    first.release();
    third.release();
    await log.close();
    assert.deepEqual(await files(dir), []);
  } finally {
    await fs.rm(dir, { recursive: true });
  }
});

Deno.test("WriteAheadLog refuses bad options", async () => {
  await assert.rejects(WriteAheadLog.open({ dir: "" }), TypeError);
  await assert.rejects(WriteAheadLog.open({ dir: "x", fsync: "sometimes" as never }), /unknown fsync policy/);
  await assert.rejects(WriteAheadLog.open({ dir: "x", segmentBytes: 0 }), RangeError);
  await assert.rejects(WriteAheadLog.open({ dir: "x", fsyncIntervalMs: NaN }), RangeError);
});

const CHILD = (moduleUrl: string, dir: string) => `
import { WriteAheadLog } from ${JSON.stringify(moduleUrl)};
const { log } = await WriteAheadLog.open({ dir: ${JSON.stringify(dir)} });
const stopAt = Date.now() + 5000; // stops by itself if never killed
let next = 0;
async function worker() {
  while (Date.now() < stopAt) {
    const id = String(next++);
    const event = { id, name: "crash.test", timestamp: new Date().toISOString(), context: {}, data: { pad: "x".repeat(next % 200) } };
    await log.append([event]);
    console.log(id); // acknowledged: the append resolved
  }
}
await Promise.all(Array.from({ length: 8 }, worker));
await log.close();
`;

Deno.test("WriteAheadLog: a process killed with SIGKILL loses no acknowledged record", async () => {
  const dir = await tempDir();
  try {
    const walDir = join(dir, "wal");
    const script = join(dir, "child.ts");
    await fs.writeFile(script, CHILD(new URL("../../src/deno/write_ahead_log.ts", import.meta.url).href, walDir));
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--no-config", script],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let output = "";
    const { promise: acknowledged, resolve: firstAck } = Promise.withResolvers<void>();
    const reading = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stdout) {
        output += decoder.decode(chunk, { stream: true });
        if (output.includes("\n")) firstAck();
      }
    })();
    const stderr = new Response(child.stderr).text();
    const timeout = setTimeout(() => firstAck(), 20_000);
    await acknowledged;
    clearTimeout(timeout);
    await new Promise((resolve) => setTimeout(resolve, 300));
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited (it stops by itself after a few seconds).
    }
    const status = await child.status;
    await reading;
    const errors = await stderr;
    const acked = output.split("\n").slice(0, -1); // a last line without "\n" was not fully printed
    assert.ok(acked.length > 0, `the child acknowledged nothing; stderr: ${errors}`);
    assert.equal(status.signal, "SIGKILL", `the child was still running when killed; stderr: ${errors}`);

    const logger = new RecordingLogger();
    const { log, recovered } = await WriteAheadLog.open({ dir: walDir, logger });
    const recoveredIds = new Set(ids(recovered));
    const lost = acked.filter((id) => !recoveredIds.has(id));
    assert.deepEqual(lost, [], `${lost.length} of ${acked.length} acknowledged records lost`);
    await log.close();
  } finally {
    await fs.rm(dir, { recursive: true });
  }
});
