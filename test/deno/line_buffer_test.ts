import assert from "node:assert/strict";
import { LineBuffer } from "../../src/_group_writer.ts";
import { LoggerBackend, restoreEvent } from "../../mod.ts";
import { WriteAheadLog } from "../../src/deno/write_ahead_log.ts";
import { readJsonLines } from "./_collector_process.ts";

// The one encoder of the files the collector writes (its write-ahead log and events.jsonl).
const expected = (groups: string[][]) => new TextEncoder().encode(groups.flat().map((line) => line + "\n").join(""));

Deno.test("LineBuffer encodes each line as UTF-8 followed by a newline, group after group", () => {
  const buffer = new LineBuffer();
  const groups = [["a", "é", ""], [], ["🎉 surrogate pairs", "\u0000\u007f\u0080\u07ff\u0800\uffff"]];
  assert.deepEqual(buffer.encode(groups), expected(groups));
  assert.deepEqual(buffer.encode([]), new Uint8Array(0));
});

Deno.test("LineBuffer encodes batches larger than a call's share, and reuses its buffer only between calls", () => {
  const buffer = new LineBuffer();
  const many = [Array.from({ length: 1_000 }, (_, i) => `{"i":${i},"s":"ünïcødé ${"x".repeat(i % 50)}"}`)];
  const first = buffer.encode(many);
  assert.deepEqual(first, expected(many));
  const copy = first.slice();
  const small = [["b"]];
  assert.deepEqual(buffer.encode(small), expected(small));
  assert.deepEqual(copy, expected(many), "what the first call returned was written before the next call");
  // Over the buffer it keeps: encoded in a buffer of its own.
  const huge = [Array.from({ length: 3 }, () => "é".repeat(400_000))];
  assert.deepEqual(buffer.encode(huge), expected(huge));
  assert.deepEqual(buffer.encode(small), expected(small));
});

Deno.test("WriteAheadLog and LoggerBackend write non-ASCII events and large batches line for line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const events = Array.from({ length: 150 }, (_, i) =>
      restoreEvent({
        id: String(i),
        name: i % 2 ? "edx.ui.clic" : "édition 🎉",
        timestamp: "2026-01-01T00:00:00.000Z",
        context: { user: "ünïcødé" },
        data: { i, text: "\u2028 «guillemets» " + "x".repeat(i) },
      }));
    const { log } = await WriteAheadLog.open({ dir: `${dir}/wal` });
    await Promise.all([log.append(events.slice(0, 70)), log.append(events.slice(70))]);
    await log.close();
    const { log: reopened, recovered } = await WriteAheadLog.open({ dir: `${dir}/wal` });
    assert.deepEqual(recovered.map((record) => record.event), events);
    await reopened.close();

    const logger = new LoggerBackend({ path: `${dir}/events.jsonl`, maxEventSize: null });
    await Promise.all(events.map((event) => logger.send(event)));
    await logger.close();
    assert.deepEqual(await readJsonLines(`${dir}/events.jsonl`), JSON.parse(JSON.stringify(events)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
