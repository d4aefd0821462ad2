import assert from "node:assert/strict";
import {
  type Backend,
  createTracker,
  LegacyFieldMappingProcessor,
  LoggerBackend,
  PrefixedEventProcessor,
  Tracker,
  type TrackingEvent,
} from "../../mod.ts";
import { backfillTrackingLogs, type BadLine, parseTrackingLogLine, trackingLogBranch } from "../../src/deno/mod.ts";

/** An idempotent sink, as MongoDB's `_id` makes one: one copy per id, every delivery counted. */
class IdempotentSink implements Backend {
  readonly stored = new Map<string, TrackingEvent>();
  deliveries = 0;
  send(event: TrackingEvent): Promise<void> {
    this.deliveries++;
    this.stored.set(event.id, event);
    return Promise.resolve();
  }
}

async function gzip(text: string): Promise<Uint8Array> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// A line as the LMS itself writes it (Python: microseconds, no event_id).
const PYTHON_LINE = '{"name": "problem_check", "context": {"course_id": "course-v1:edX+DemoX+Demo", "user_id": 5, ' +
  '"path": "/courses/x/xblock/y/handler/xmodule_handler/problem_check", "org_id": "edX"}, "username": "bob", ' +
  '"session": "abc", "ip": "10.0.0.1", "agent": "Mozilla", "host": "lms.test", "referer": "", "accept_language": "en", ' +
  '"event": {"answers": {"q1": "\\u00e9"}, "success": "correct"}, "time": "2023-05-23T13:53:13.461234+00:00", ' +
  '"event_type": "problem_check", "event_source": "server", "page": null}';

Deno.test("backfill: a file mixing forms, with bad lines, run twice, makes the same events with the same ids", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Lines the collector writes, bare and Tutor-prefixed.
    const bare: string[] = [];
    const tutor: string[] = [];
    const tracker0 = new Tracker({
      backends: {
        bare: new LoggerBackend({ format: "openedx", write: (l) => bare.push(l) }),
        tutor: new LoggerBackend({ format: "openedx", prefix: "tutor", write: (l) => tutor.push(l) }),
      },
      processors: [new LegacyFieldMappingProcessor(), new PrefixedEventProcessor()],
    });
    tracker0.context("edx.request", { user_id: 1, username: "ada", ip: "203.0.113.7", event_source: "browser" }, () => {
      tracker0.emit("edx.ui.lms.link_clicked", { target_url: "https://x" });
      tracker0.emit("edx.ui.lms.sequence.next_selected", { current_tab: 1, tab_count: 4 });
    });
    tracker0.emit("edx.course.enrollment.activated", { course_id: "c", user_id: 1 });
    const emitted = [...new Set([...bare, ...tutor].map((l) => JSON.parse(l.slice(l.indexOf("{"))).context.event_id))];
    assert.equal(emitted.length, 3);

    const plain = [
      bare[0],
      tutor[1],
      "",
      "garbage without json",
      `2019-10-08 13:24:52,888 INFO 11478 [tracking] logger.py:50 - ${PYTHON_LINE}`,
      '{"name": "truncated", "context": {',
      '{"name": "no_time", "context": {}, "event": {}}',
      '{"name": "bad_context", "context": [], "time": "2024-01-01T00:00:00+00:00"}',
      `${bare[2]}   \r`,
    ].join("\n") + "\n";
    const zipped = `${tutor[0]}\n${PYTHON_LINE}\nnot json {\n`;
    await Deno.writeTextFile(`${dir}/tracking.log`, plain);
    await Deno.writeFile(`${dir}/tracking.log.1.gz`, await gzip(zipped));
    const files = [`${dir}/tracking.log`, `${dir}/tracking.log.1.gz`];

    const runs: { sink: IdempotentSink; bad: BadLine[]; summary: unknown }[] = [];
    const sink = new IdempotentSink();
    for (let run = 0; run < 2; run++) {
      const tracker = new Tracker({ backends: { sink } });
      const bad: BadLine[] = [];
      const progress: number[] = [];
      const summary = await backfillTrackingLogs(tracker, files, {
        onBadLine: (b) => bad.push(b),
        onProgress: (p) => progress.push(p.lines),
        progressIntervalMs: 0,
        chunkSize: 2,
      });
      await tracker.close();
      assert.ok(progress.length >= 2, "progress is reported");
      runs.push({ sink, bad, summary });
    }
    assert.deepEqual(runs[0].summary, { files: 2, read: 11, emitted: 6, bad: 5, failed: 0 });
    assert.deepEqual(runs[1].summary, runs[0].summary);
    assert.deepEqual(
      runs[0].bad.map((b) => `${b.file.slice(dir.length + 1)}:${b.line}`),
      ["tracking.log:4", "tracking.log:6", "tracking.log:7", "tracking.log:8", "tracking.log.1.gz:3"],
    );
    assert.match(runs[0].bad[0].reason, /no JSON object/);
    assert.match(runs[0].bad[2].reason, /"time" must be an ISO-8601 time/);
    assert.equal(sink.deliveries, 12, "every event delivered on each run");
    // Four distinct events: the collector's three (by their event_id) and the LMS's line (twice, one id).
    assert.equal(sink.stored.size, 4);
    for (const id of emitted) assert.ok(sink.stored.has(id), `the collector's id ${id} is kept`);
    const lms = [...sink.stored.values()].find((e) => e.name === "problem_check")!;
    assert.match(
      lms.id,
      /^018848e2-a6f5-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      "time-ordered by the event time",
    );
    assert.equal(lms.timestamp, "2023-05-23T13:53:13.461Z");
    assert.deepEqual(lms.data, { answers: { q1: "é" }, success: "correct" });
    assert.deepEqual(lms.context, {
      course_id: "course-v1:edX+DemoX+Demo",
      user_id: 5,
      path: "/courses/x/xblock/y/handler/xmodule_handler/problem_check",
      org_id: "edX",
      username: "bob",
      session: "abc",
      ip: "10.0.0.1",
      agent: "Mozilla",
      host: "lms.test",
      accept_language: "en",
      timestamp: "2023-05-23T13:53:13.461234+00:00",
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("backfill: a line read back and shimmed again is the same text (collector and LMS lines)", () => {
  const lines: string[] = [];
  const log = new LoggerBackend({ format: "openedx", write: (l) => lines.push(l) });
  const tracker = new Tracker({
    backends: { log },
    processors: [new LegacyFieldMappingProcessor(), new PrefixedEventProcessor()],
  });
  tracker.context("r", { username: "ada", event_source: "browser", page: "https://p", client_id: "GA" }, () => {
    tracker.emit("edx.ui.lms.sequence.tab_selected", { current_tab: 1, target_tab: 3, label: "😀" });
  });
  tracker.emit("edx.course.enrollment.activated", { course_id: "c" });
  const original = [...lines];
  const again: string[] = [];
  const relog = new LoggerBackend({ format: "openedx", write: (l) => again.push(l) });
  for (const line of original) relog.send(parseTrackingLogLine(line));
  assert.deepEqual(again, original);
  // The LMS's own line: the same text, plus the id the backfill gave it.
  relog.send(parseTrackingLogLine(PYTHON_LINE));
  const back = JSON.parse(again[2]);
  const id = back.context.event_id;
  delete back.context.event_id;
  assert.deepEqual(back, JSON.parse(PYTHON_LINE));
  assert.equal(again[2], PYTHON_LINE.replace('"org_id": "edX"}', `"org_id": "edX", "event_id": "${id}"}`));
});

Deno.test("backfill refuses a file the tree itself writes", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    const tracker = createTracker({ backends: { tracking_log: trackingLogBranch(dataDir) } }, { dataDir });
    tracker.emit("a");
    await tracker.flush();
    await assert.rejects(
      () => backfillTrackingLogs(tracker, [`${dataDir}/tracking.log`]),
      /Cannot backfill .*tracking\.log: the tree writes to it/,
    );
    await tracker.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("deno task backfill: the CLI sends a file through EVENT_TRACKING_CONFIG's tree and prints a summary", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/in.log`, `${PYTHON_LINE}\nbad line\n`);
    const config = {
      backends: {
        out: { ENGINE: "logger", OPTIONS: { path: `${dir}/out.jsonl`, max_event_size: null } },
      },
    };
    const run = () =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-all", "--config", "dev/deno.json", "src/deno/backfill.ts", `${dir}/in.log`],
        env: { EVENT_TRACKING_CONFIG: JSON.stringify(config), EVENT_TRACKING_DATA_DIR: dir, NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
    const first = await run();
    const second = await run();
    const stdout = new TextDecoder().decode(first.stdout);
    const stderr = new TextDecoder().decode(first.stderr);
    assert.equal(first.code, 1, "bad lines make the exit status 1");
    assert.match(stdout, /backfill: 1 file\(s\), 2 line\(s\) read, 1 event\(s\) emitted, 1 bad line\(s\), 0 failed/);
    assert.match(stderr, /in\.log:2: no JSON object in the line/);
    assert.match(stderr, /in\.log: 2 line\(s\) read/);
    assert.equal(second.code, 1);
    const ids = (await Deno.readTextFile(`${dir}/out.jsonl`)).trim().split("\n").map((l) => JSON.parse(l).id);
    assert.equal(ids.length, 2);
    assert.equal(ids[0], ids[1], "the same id on both runs");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
