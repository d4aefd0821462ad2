import assert from "node:assert/strict";
import {
  AsyncRoutingBackend,
  type DeadLetter,
  ImproperlyConfigured,
  InMemoryBackend,
  LoggerBackend,
  Tracker,
  type TrackingEvent,
} from "../../mod.ts";
import type { BackendMetrics } from "../../src/metrics.ts";
import { RecordingLogger } from "../_helpers.ts";

function event(i: number, name = "e"): TrackingEvent {
  return { id: String(i), name, timestamp: "2026-01-01T00:00:00.000Z", context: {}, data: { i } };
}

function metricsOf(backend: LoggerBackend): BackendMetrics {
  const into: Record<string, BackendMetrics> = {};
  backend.collectMetrics("log", into);
  return into.log;
}

/** Runs `body` with a fresh temporary directory, removed afterwards. */
async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "file_sink_test_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A path that cannot be written, even as root: its parent is a regular file. */
async function unwritablePath(dir: string): Promise<string> {
  await Deno.writeTextFile(`${dir}/file`, "");
  return `${dir}/file/cannot-be-a-directory.jsonl`;
}

Deno.test("LoggerBackend with a path: send resolves once the line is in the file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/nested/events.jsonl`;
    const backend = new LoggerBackend({ path, logger: new RecordingLogger() });
    const first = backend.send(event(1));
    const second = backend.send(event(2));
    assert.ok(first instanceof Promise);
    assert.equal(first, second, "the lines of one tick share their batch's promise");
    assert.deepEqual([metricsOf(backend).delivered, metricsOf(backend).queueDepth], [0, 2], "not counted before");
    assert.equal(await first, undefined);
    const lines = (await Deno.readTextFile(path)).split("\n");
    assert.deepEqual(lines.slice(0, -1).map((l) => JSON.parse(l)), [event(1), event(2)]);
    assert.equal(lines.at(-1), "", "the file ends with a newline");
    const metrics = metricsOf(backend);
    assert.deepEqual([metrics.received, metrics.delivered, metrics.failed, metrics.queueDepth], [2, 2, 0, 0]);

    // A later tick is a new batch, appended after the first.
    const third = backend.send(event(3));
    assert.notEqual(third, first);
    await third;
    assert.equal((await Deno.readTextFile(path)).trimEnd().split("\n").length, 3);
    await backend.close();
  });
});

Deno.test("LoggerBackend with a path whose parent is a file: send rejects naming the path and counts it failed", async () => {
  await withTempDir(async (dir) => {
    const path = await unwritablePath(dir);
    const logger = new RecordingLogger();
    const backend = new LoggerBackend({ name: "tracking", path, logger });
    const first = backend.send(event(1));
    const second = backend.send(event(2));
    await assert.rejects(first as Promise<void>, (error: Error) => {
      assert.ok(error.message.includes(path), error.message);
      assert.match(error.message, /^LoggerBackend "tracking" could not write to /);
      assert.match((error as Error & { code?: string }).code ?? "", /^E[A-Z]+$/, "the cause's code is kept");
      assert.ok(error.cause instanceof Error, "the open error is the cause");
      return true;
    });
    await assert.rejects(second as Promise<void>, /cannot-be-a-directory\.jsonl/);
    const metrics = metricsOf(backend);
    assert.deepEqual([metrics.received, metrics.delivered, metrics.failed, metrics.queueDepth], [2, 0, 2, 0]);

    // An unawaited failure is not an unhandled rejection (the test would fail), and close succeeds.
    backend.send(event(3));
    await backend.flush();
    assert.equal(metricsOf(backend).failed, 3);
    await backend.close();
    assert.equal(logger.errors.length, 0, "the rejection is the report: the caller logs it");
  });
});

Deno.test("LoggerBackend: a failed write (ENOSPC on /dev/full) rejects and is not retried by the sink", {
  ignore: (() => {
    try {
      if (Deno.statSync("/dev/full").isCharDevice) return false;
      console.warn("skipped: /dev/full is not a character device here, so no write fails with ENOSPC");
    } catch (error) {
      // No such device, or Deno needs --allow-all to open one.
      console.warn(`skipped: cannot use /dev/full to make a write fail with ENOSPC (${error})`);
    }
    return true;
  })(),
}, async () => {
  const backend = new LoggerBackend({ path: "/dev/full", logger: new RecordingLogger() });
  await assert.rejects(backend.send(event(1)) as Promise<void>, (error: Error) => {
    assert.match(error.message, /could not write to \/dev\/full: .*(ENOSPC|No space)/i);
    return true;
  });
  await backend.flush();
  const metrics = metricsOf(backend);
  assert.deepEqual([metrics.delivered, metrics.failed, metrics.queueDepth], [0, 1, 0]);
  await backend.close();
});

Deno.test("AsyncRoutingBackend over an unwritable LoggerBackend retries, then dead-letters every event", async () => {
  await withTempDir(async (dir) => {
    const path = await unwritablePath(dir);
    const logger = new RecordingLogger();
    const deadLetter = new InMemoryBackend();
    const file = new LoggerBackend({ path, logger });
    const tracker = new Tracker({
      logger,
      backends: {
        branch: new AsyncRoutingBackend({
          backends: { file },
          maxAttempts: 3,
          backoff: { initialMs: 0 },
          deadLetter,
          logger,
        }),
      },
    });
    for (let i = 0; i < 5; i++) tracker.emit("edx.test.file", { i });
    await tracker.flush();

    assert.equal(deadLetter.events.length, 5);
    for (const letter of deadLetter.events as DeadLetter[]) {
      assert.equal(letter.deadLetter.attempts, 3);
      assert.equal(letter.deadLetter.backend, "file");
      assert.ok(letter.deadLetter.error.includes(path), letter.deadLetter.error);
    }
    const { "root/branch": branch, "root/branch/file": node } = tracker.metrics();
    assert.equal(branch.deadLettered, 5);
    assert.equal(branch.retried, 10, "two retries per event");
    assert.equal(branch.failed, 15, "three failed attempts per event");
    assert.equal(node.received, 15, "every attempt reached the file node");
    assert.equal(node.delivered, 0, "nothing delivered at the file node");
    assert.equal(node.failed, 15, "every attempt failed at the file node, counted once");
    assert.equal(node.queueDepth, 0);
    await tracker.close();
  });
});

Deno.test("LoggerBackend maxPendingLines: a full buffer refuses with a RangeError; saturation() is 1, then 0", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/events.jsonl`;
    const backend = new LoggerBackend({ name: "tracking", path, maxPendingLines: 2, logger: new RecordingLogger() });
    assert.equal(backend.saturation(), 0);
    const first = backend.send(event(1)) as Promise<void>;
    assert.equal(backend.saturation(), 0.5);
    const second = backend.send(event(2)) as Promise<void>;
    const third = backend.send(event(3)) as Promise<void>;
    assert.equal(backend.saturation(), 1, "full");
    await assert.rejects(third, (error: Error) => {
      assert.ok(error instanceof RangeError);
      assert.match(error.message, /"tracking"/);
      assert.ok(error.message.includes(path), error.message);
      assert.match(error.message, /capacity 2\b/);
      return true;
    });
    assert.equal(metricsOf(backend).failed, 1, "counted failed at once");
    await Promise.all([first, second]);
    await backend.flush();
    assert.equal(backend.saturation(), 0);
    const metrics = metricsOf(backend);
    assert.deepEqual([metrics.received, metrics.delivered, metrics.failed, metrics.queueDepth], [3, 2, 1, 0]);
    await backend.send(event(4));
    await backend.close();
    const ids = (await Deno.readTextFile(path)).trimEnd().split("\n").map((l) => JSON.parse(l).id);
    assert.deepEqual(ids, ["1", "2", "4"]);
  });
});

Deno.test("LoggerBackend refuses a maxPendingLines that is not a positive integer", () => {
  for (
    const [bad, shown] of [[0, "0"], [-1, "-1"], [1.5, "1.5"], [Number.NaN, "NaN"], [Infinity, "Infinity"], [
      "10",
      '"10"',
    ]] as const
  ) {
    assert.throws(
      () => new LoggerBackend({ path: "unused.jsonl", maxPendingLines: bad as number }),
      (error: Error) => {
        assert.ok(error instanceof ImproperlyConfigured);
        assert.equal(error.message, `LoggerBackend.maxPendingLines: must be a positive integer, got ${shown}`);
        return true;
      },
    );
  }
  assert.equal(new LoggerBackend({ write() {} }).maxPendingLines, 100_000);
  assert.equal(new LoggerBackend({ write() {} }).saturation(), 0, "no file, no buffer");
});

Deno.test("LoggerBackend truncates a torn last line before appending, and warns", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/events.jsonl`;
    await Deno.writeTextFile(path, "a\nb\ntor");
    const logger = new RecordingLogger();
    const backend = new LoggerBackend({ name: "tracking", path, logger });
    await backend.send(event(1));
    await backend.close();
    const text = await Deno.readTextFile(path);
    assert.equal(text, "a\nb\n" + JSON.stringify(event(1)) + "\n");
    for (const line of text.trimEnd().split("\n")) {
      assert.ok(line === "a" || line === "b" || JSON.parse(line).id === "1", line);
    }
    assert.equal(logger.warnings.length, 1);
    assert.match(logger.warnings[0], /^LoggerBackend "tracking" removed 3 byte\(s\) of a torn last line from /);
    assert.ok(logger.warnings[0].includes(path));
  });
});

Deno.test("LoggerBackend torn-line repair: a file without a newline is emptied; a long torn line is found across chunks", async () => {
  await withTempDir(async (dir) => {
    const logger = new RecordingLogger();
    const short = `${dir}/short.jsonl`;
    await Deno.writeTextFile(short, '{"id":"to');
    const long = `${dir}/long.jsonl`;
    const whole = JSON.stringify(event(0)) + "\n";
    const torn = '{"x":"' + "y".repeat(200_000);
    await Deno.writeTextFile(long, whole + torn);
    for (const path of [short, long]) {
      const backend = new LoggerBackend({ path, logger, maxEventSize: null });
      await backend.send(event(1));
      await backend.close();
    }
    assert.equal(await Deno.readTextFile(short), JSON.stringify(event(1)) + "\n");
    assert.equal(await Deno.readTextFile(long), whole + JSON.stringify(event(1)) + "\n");
    assert.match(logger.warnings[0], /removed 9 byte\(s\)/);
    assert.match(logger.warnings[1], new RegExp(`removed ${torn.length} byte\\(s\\)`));
  });
});

Deno.test("LoggerBackend leaves a whole file alone, and appends to it again after close", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/events.jsonl`;
    await Deno.writeTextFile(path, "a\n");
    const logger = new RecordingLogger();
    const backend = new LoggerBackend({ path, logger });
    await backend.send(event(1));
    await backend.close();
    await backend.send(event(2));
    await backend.close();
    await backend.close();
    assert.equal(
      await Deno.readTextFile(path),
      "a\n" + JSON.stringify(event(1)) + "\n" + JSON.stringify(event(2)) + "\n",
    );
    assert.equal(logger.warnings.length, 0);
  });
});

Deno.test("LoggerBackend with a path: 10,000 events sent in one tick are one batch, all written in order", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/events.jsonl`;
    const backend = new LoggerBackend({ path, logger: new RecordingLogger() });
    const promises = new Set<void | Promise<void>>();
    for (let i = 0; i < 10_000; i++) promises.add(backend.send(event(i)));
    assert.equal(promises.size, 1, "one promise per batch");
    assert.equal(metricsOf(backend).queueDepth, 10_000);
    // Lines sent while a batch is being written join the next one.
    await Promise.resolve();
    const next = backend.send(event(10_000));
    assert.ok(!promises.has(next));
    await next;
    await backend.close();
    const ids = (await Deno.readTextFile(path)).trimEnd().split("\n").map((l) => Number(JSON.parse(l).id));
    assert.deepEqual(ids, Array.from({ length: 10_001 }, (_, i) => i));
    assert.equal(metricsOf(backend).delivered, 10_001);
  });
});
