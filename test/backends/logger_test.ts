import assert from "node:assert/strict";
import {
  ImproperlyConfigured,
  InMemoryBackend,
  LoggerBackend,
  type LoggerBackendOptions,
  Tracker,
  type TrackingEvent,
} from "../../mod.ts";
import { RecordingLogger } from "../_helpers.ts";

function event(data: unknown, name = "e"): TrackingEvent {
  return { id: "0", name, timestamp: "2026-01-01T00:00:00.000Z", context: {}, data };
}

function capture(options: ConstructorParameters<typeof LoggerBackend>[0] = {}) {
  const lines: string[] = [];
  const logger = new RecordingLogger();
  const backend = new LoggerBackend({ logger, ...options, write: (line) => lines.push(line) });
  return { lines, logger, backend };
}

// spec §10.8 test_logs_to_correct_named_logger / test_multiple_events
Deno.test("LoggerBackend.send() writes one JSON line per event", () => {
  const { lines, backend } = capture({ name: "tracking" });
  backend.send(event({ a: "a" }));
  backend.send(event({ b: "b" }));
  assert.deepEqual(lines.map((l) => JSON.parse(l).data), [{ a: "a" }, { b: "b" }]);
  assert.equal(lines[0], JSON.stringify(event({ a: "a" })));
  assert.equal(backend.name, "tracking");
});

// spec §10.8 test_big_event, §5 boundary; never silent
Deno.test("LoggerBackend does not write an event longer than maxEventSize, and counts and reports it", async () => {
  const exact = JSON.stringify(event({ v: "x" })).length;
  const { lines, logger, backend } = capture({ maxEventSize: exact });
  backend.send(event({ v: "x" }));
  backend.send(event({ v: "xx" }));
  backend.send(event({ v: "xxx" }));
  assert.equal(lines.length, 1, "a line exactly at the limit is written");
  assert.equal(logger.warnings.length, 1, "reported once per interval");
  assert.match(logger.warnings[0], /did not write 1 event\(s\) longer than maxEventSize/);
  await backend.flush();
  assert.equal(logger.warnings.length, 2, "the rest is reported at flush");
  assert.match(logger.warnings[1], /did not write 1 event\(s\)/);
  const metrics: Record<string, { dropped: number; delivered: number; received: number }> = {};
  backend.collectMetrics("log", metrics as never);
  assert.deepEqual([metrics.log.received, metrics.log.delivered, metrics.log.dropped], [3, 1, 2]);
});

Deno.test("LoggerBackend: maxEventSize 0 writes nothing; the default is 1024", () => {
  const { lines, backend } = capture({ maxEventSize: 0 });
  backend.send(event({}));
  assert.equal(lines.length, 0);
  assert.equal(new LoggerBackend({ write() {} }).maxEventSize, 1024);
});

// spec §10.8 test_unlimited_event_size
Deno.test("LoggerBackend with maxEventSize null writes events of any size", () => {
  const { lines, backend } = capture({ maxEventSize: null });
  backend.send(event({ v: "x".repeat(1025) }));
  assert.equal(JSON.parse(lines[0]).data.v.length, 1025);
});

Deno.test("LoggerBackend refuses a bad level or maxEventSize at construction, naming the option and the value", () => {
  const refused = (options: unknown, message: string) =>
    assert.throws(() => new LoggerBackend(options as LoggerBackendOptions), (error: unknown) => {
      assert.ok(error instanceof ImproperlyConfigured, String(error));
      assert.equal(error.message, message);
      return true;
    });
  refused(
    { level: "loud" },
    'LoggerBackend.level: must be one of "debug", "info", "warning", "warn", "error", "critical" (in any case), got "loud"',
  );
  refused({ maxEventSize: -1 }, "LoggerBackend.maxEventSize: must be null or a non-negative integer, got -1");
  refused({ maxEventSize: "10" }, 'LoggerBackend.maxEventSize: must be null or a non-negative integer, got "10"');
  refused({ write: 5 }, "LoggerBackend.write: must be a function, got 5");
  refused({ path: "" }, 'LoggerBackend.path: must be a non-empty string, got ""');
  refused({ maxPendingLines: 0 }, "LoggerBackend.maxPendingLines: must be a positive integer, got 0");
  refused(
    { max_event_size: 5 },
    "LoggerBackend.max_event_size: unknown option (expected: name, level, maxEventSize, format, prefix, path, maxPendingLines, write, reportIntervalMs, logger)",
  );
  // Still a TypeError, for callers that caught those.
  assert.throws(() => new LoggerBackend({ write: 5 as never }), TypeError);
  // The level is case-insensitive, as the reference's logging level names are.
  assert.doesNotThrow(() => new LoggerBackend({ level: "WARNING" as never, write: () => {} }));
});

// spec §10.8 test_dynamic_level
Deno.test("LoggerBackend writes to the console method of its level", () => {
  const original = console.warn;
  const warned: unknown[] = [];
  console.warn = (line: unknown) => void warned.push(line);
  try {
    new LoggerBackend({ level: "warning" }).send(event({}));
  } finally {
    console.warn = original;
  }
  assert.equal(warned.length, 1);
  assert.equal(JSON.parse(warned[0] as string).name, "e");
});

// spec §10.9 test_sequential_events, through a real file
Deno.test("LoggerBackend with a path appends JSON lines that equal the emitted events", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/nested/events.jsonl`;
  const memory = new InMemoryBackend();
  const tracker = new Tracker({ backends: { logger: new LoggerBackend({ path }), mem: memory } });
  for (let i = 0; i < 10; i++) {
    tracker.emit("org.test.logger.integration", { email: "t@example.com", sequence: i, current_time: new Date() });
  }
  await tracker.flush();
  tracker.emit("after.flush");
  await tracker.close();
  const lines = (await Deno.readTextFile(path)).trimEnd().split("\n");
  assert.equal(lines.length, 11);
  assert.deepEqual(lines.map((l) => JSON.parse(l)), JSON.parse(JSON.stringify(memory.events)));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("LoggerBackend rejects, and counts failed, the lines it could not write to its file", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/file`, "");
  const path = `${dir}/file/cannot-be-a-directory.jsonl`;
  const logger = new RecordingLogger();
  const backend = new LoggerBackend({ path, logger });
  const sent = [backend.send(event({})), backend.send(event({}))];
  for (const promise of sent) {
    await assert.rejects(promise as Promise<void>, (error: Error) => error.message.includes(path));
  }
  await backend.close();
  const metrics: Record<string, { failed: number; delivered: number }> = {};
  backend.collectMetrics("log", metrics as never);
  assert.deepEqual([metrics.log.failed, metrics.log.delivered], [2, 0]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("LoggerBackend.send() throws what its write function throws, and counts it failed", () => {
  const backend = new LoggerBackend({
    write() {
      throw new Error("disk full");
    },
  });
  assert.throws(() => backend.send(event({})), /disk full/);
  const metrics: Record<string, { failed: number; delivered: number; received: number }> = {};
  backend.collectMetrics("log", metrics as never);
  assert.deepEqual([metrics.log.received, metrics.log.delivered, metrics.log.failed], [1, 0, 1]);
});

// spec §10.8 test_unserializable_event, test_event_with_datetime_fields
Deno.test("LoggerBackend.send() of an event JSON cannot represent throws TypeError and writes nothing; a Date is written as ISO", () => {
  const { lines, backend } = capture();
  assert.throws(() => backend.send(event({ foo: 10n })), TypeError);
  assert.equal(lines.length, 0);
  backend.send(event({ test: true, time: new Date(Date.UTC(2012, 4, 1, 7, 27, 1, 200)) }));
  assert.deepEqual(JSON.parse(lines[0]).data, { test: true, time: "2012-05-01T07:27:01.200Z" });
});
