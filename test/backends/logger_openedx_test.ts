import assert from "node:assert/strict";
import {
  AsyncRoutingBackend,
  createTracker,
  type DeadLetter,
  ImproperlyConfigured,
  InMemoryBackend,
  LegacyFieldMappingProcessor,
  LoggerBackend,
  PrefixedEventProcessor,
  restoreEvent,
  Tracker,
  type TrackingEvent,
  trackingLogRecord,
} from "../../mod.ts";
import { pythonJsonDumps } from "../../src/_python_json.ts";
import { RecordingLogger } from "../_helpers.ts";

const PYTHON = "/usr/bin/python3";

/** Runs a Python program with `input` on stdin; returns its stdout lines. */
async function python(program: string, input: string): Promise<string[]> {
  const child = new Deno.Command(PYTHON, { args: ["-c", program], stdin: "piped", stdout: "piped", stderr: "piped" })
    .spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(input));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  return new TextDecoder().decode(stdout).split("\n").slice(0, -1);
}

/** Python's json.dumps of each value, read from the JSON JavaScript writes (one per line). */
function pythonDumps(values: unknown[]): Promise<string[]> {
  return python(
    "import json,sys\nfor line in sys.stdin.read().split('\\n')[:-1]: print(json.dumps(json.loads(line)))",
    values.map((v) => JSON.stringify(v) + "\n").join(""),
  );
}

// Aspects' Vector and event-routing-backends' parsers (../shared/notes/openedx-interop.md).
const VECTOR = String.raw`^.* \[tracking\] [^{}]* (?P<tracking_message>\{.*\})$`;
const ERB = String.raw`^.*?(\{.*\})\s*$`;

/** For each line: [Vector's tracking_message or null, ERB's group or null], by Python's `re`. */
function pythonMatches(lines: string[]): Promise<string[]> {
  return python(
    "import json,re,sys\n" +
      `V=re.compile(${JSON.stringify(VECTOR)})\nE=re.compile(${JSON.stringify(ERB)})\n` +
      "for line in sys.stdin.read().split('\\n')[:-1]:\n" +
      "  v=V.match(line); e=E.match(line)\n" +
      "  print(json.dumps([v and v.group('tracking_message'), e and e.group(1)]))",
    lines.map((l) => l + "\n").join(""),
  );
}

const TRICKY = {
  ascii: "plain",
  quote: 'a "quoted" \\ back/slash',
  controls: "\n\r\t\b\f\u0001\u001f\u007f",
  latin: "café ü",
  cjk: "学习",
  astral: "😀 𝄞",
  separators: "\u2028\u2029",
  numbers: [0, -1, 3, 2.5, -0.1, 1e-7, 0.0001, 1e-5, 123456789012, 2 ** 53, 1e16, 1e21, 1.5e300, 5e-324],
  nested: { empty: {}, list: [], nulls: [null, true, false] },
};

Deno.test("pythonJsonDumps writes exactly what Python's json.dumps writes", async () => {
  const values = [
    TRICKY,
    ...Object.values(TRICKY),
    ...TRICKY.numbers,
    "",
    [],
    {},
    { "key é": 1, "": "" },
    Array.from({ length: 200 }, (_, i) => String.fromCharCode(i * 331 % 0xd7ff)).join(""),
  ];
  const expected = await pythonDumps(values);
  assert.deepEqual(values.map(pythonJsonDumps), expected);
});

function tracked(context: Record<string, unknown>, data: unknown, name = "edx.ui.click"): TrackingEvent {
  return restoreEvent({
    id: "018f3406-9e00-7123-8456-789abcdef012",
    name,
    timestamp: "2024-05-01T12:00:00.123Z",
    context,
    data,
  });
}

Deno.test('format "openedx" writes the Python text of the shimmed record, with the event id in its context', async () => {
  const lines: string[] = [];
  const log = new LoggerBackend({ format: "openedx", write: (line) => lines.push(line) });
  const events = [
    tracked({ user_id: 7, username: "ada", ip: "203.0.113.7", event_source: "browser", page: "https://x/é" }, TRICKY),
    tracked({ course_id: "course-v1:a+b+c", client_id: "GA" }, TRICKY, "problem_check"),
  ];
  for (const e of events) log.send(e);
  const expected = await pythonDumps(events.map(trackingLogRecord));
  assert.deepEqual(lines, expected);
  const first = JSON.parse(lines[0]);
  assert.deepEqual(Object.keys(first), [
    "name",
    "context",
    "username",
    "session",
    "ip",
    "agent",
    "host",
    "referer",
    "accept_language",
    "event",
    "time",
    "event_type",
    "event_source",
    "page",
  ]);
  assert.deepEqual(first.context, { user_id: 7, event_id: "018f3406-9e00-7123-8456-789abcdef012" });
  assert.equal(typeof first.event, "string", "a browser event's data is JSON text");
  assert.deepEqual(JSON.parse(first.event), TRICKY);
  assert.equal(first.time, "2024-05-01T12:00:00.123000+00:00");
  assert.ok(lines.every((line) => /^[\x20-\x7e]+$/.test(line)), "only printable ASCII");
  assert.equal(log.name, "tracking");
  assert.equal(log.maxEventSize, 50_000);
});

Deno.test("an event already shimmed by the processors is written as it is (the LMS's branch)", () => {
  const lines: string[] = [];
  const tracker = new Tracker({
    backends: { log: new LoggerBackend({ format: "openedx", write: (line) => lines.push(line) }) },
    processors: [new LegacyFieldMappingProcessor(), new PrefixedEventProcessor()],
  });
  tracker.context("edx.request", { username: "ada", event_source: "mobile" }, () => {
    tracker.emit("edx.video.played", { current_time: 3 });
  });
  const record = JSON.parse(lines[0]);
  assert.equal(record.event_type, "play_video");
  assert.deepEqual(record.event, { currentTime: 3 });
  assert.equal(record.username, "ada");
  assert.equal(record.event_source, "mobile");
  assert.match(record.context.event_id, /^[0-9a-f-]{36}$/);
});

Deno.test('prefix "tutor": lines Vector and event-routing-backends both match; bare lines only ERB (Python re)', async () => {
  const bare: string[] = [];
  const tutor: string[] = [];
  const logs = [
    new LoggerBackend({ format: "openedx", write: (line) => bare.push(line) }),
    new LoggerBackend({ format: "openedx", prefix: "tutor", write: (line) => tutor.push(line) }),
  ];
  const events = [
    tracked({ user_id: 42, ip: "203.0.113.7" }, { a: "{x}" }),
    tracked({}, {}),
    tracked({ user_id: "{evil} [x]", ip: "1.2.3.4 {" }, { s: "} {" }),
  ];
  for (const e of events) for (const log of logs) log.send(e);
  assert.match(
    tutor[0],
    /^2024-05-01 12:00:00,123 INFO \d+ \[tracking\] \[user 42\] \[ip 203\.0\.113\.7\] logger\.py:41 - \{"name": "edx\.ui\.click"/,
  );
  assert.match(tutor[1], / \[tracking\] \[user None\] \[ip None\] logger\.py:41 - \{/);
  assert.match(tutor[2], / \[user _evil_x_\] \[ip 1\.2\.3\.4_\] /, "the prefix never holds braces");
  const matched = (await pythonMatches([...tutor, ...bare])).map((line) => JSON.parse(line));
  for (let i = 0; i < events.length; i++) {
    assert.deepEqual(matched[i], [bare[i], bare[i]], "Vector and ERB both find the JSON of a Tutor line");
    assert.deepEqual(matched[events.length + i], [null, bare[i]], "Vector needs the prefix; ERB reads a bare line");
    // The same, by JavaScript's engine.
    assert.equal(/^.* \[tracking\] [^{}]* (?<m>\{.*\})$/.exec(tutor[i])?.groups?.m, bare[i]);
    // Vector then parses `time` as %+ (ISO 8601).
    assert.match(JSON.parse(bare[i]).time, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?\+00:00$/);
  }
});

Deno.test("the options share one schema with the logger ENGINE; a prefix needs the openedx format", () => {
  assert.throws(() => new LoggerBackend({ prefix: "tutor" }), {
    name: "ImproperlyConfigured",
    message: 'LoggerBackend.prefix: a prefix is written only with format "openedx", got format "json"',
  });
  assert.throws(
    () => new LoggerBackend({ format: "xml" as "json" }),
    { message: 'LoggerBackend.format: must be "json" or "openedx", got "xml"' },
  );
  assert.throws(
    () => createTracker({ backends: { log: { ENGINE: "logger", OPTIONS: { format: "openedx", prefix: "docker" } } } }),
    (error: unknown) =>
      error instanceof ImproperlyConfigured &&
      error.message === 'backends.log.OPTIONS.prefix: must be "tutor", got "docker"',
  );
  const tracker = createTracker({
    backends: {
      log: {
        ENGINE: "eventtracking.backends.logger.LoggerBackend",
        OPTIONS: { name: "tracking", max_event_size: 100, format: "openedx", prefix: "tutor" },
      },
    },
  });
  const log = tracker.getBackend("log") as LoggerBackend;
  assert.equal(log.maxEventSize, 100);
  assert.equal(log.prefix, "tutor");
  // The json format keeps its defaults.
  assert.equal(new LoggerBackend().maxEventSize, 1024);
  assert.equal(new LoggerBackend().name, "event-tracking");
});

Deno.test("an oversized tracking-log event is rejected and counted, and an async router dead-letters it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const logger = new RecordingLogger();
    const file = new LoggerBackend({ format: "openedx", path: `${dir}/tracking.log`, logger });
    const deadLetter = new InMemoryBackend();
    const branch = new AsyncRoutingBackend({
      backends: { file },
      deadLetter,
      maxAttempts: 2,
      backoff: { initialMs: 1, maxMs: 1 },
      logger,
    });
    const tracker = new Tracker({ backends: { tracking_log: branch }, logger });
    tracker.emit("small", { x: 1 });
    const big = tracker.createEvent("big", { blob: "é".repeat(10_000) }); // 60,000 characters as \u00e9
    await tracker.send(big); // settles once the event's fate is final
    await tracker.close();
    const letters = deadLetter.events as DeadLetter[];
    assert.deepEqual(letters.map((l) => l.id), [big.id]);
    assert.match(letters[0].deadLetter.error, /over maxEventSize 50000/);
    const lines = (await Deno.readTextFile(`${dir}/tracking.log`)).split("\n");
    assert.deepEqual(lines.map((l) => l && JSON.parse(l).name), ["small", ""]);
    const metrics = tracker.metrics();
    assert.equal(metrics["root/tracking_log"].deadLettered, 1);
    assert.equal(metrics["root/tracking_log/file"].failed, 2, "each attempt is counted");
    assert.equal(metrics["root/tracking_log/file"].delivered, 1);
    assert.ok(logger.warnings.some((w) => /longer than maxEventSize 50000.*dead-letters them/.test(w)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reopen(): after logrotate moves the file, the next lines go to a new file by the same path", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const log = new LoggerBackend({ format: "openedx", prefix: "tutor", path: `${dir}/tracking.log` });
    await log.send(tracked({}, { n: 1 }));
    await Deno.rename(`${dir}/tracking.log`, `${dir}/tracking.log.1`);
    const pending = log.send(tracked({}, { n: 2 })); // still to the old file: written before the reopen
    await log.reopen();
    await pending;
    await log.send(tracked({}, { n: 3 }));
    await log.close();
    const old = await Deno.readTextFile(`${dir}/tracking.log.1`);
    const current = await Deno.readTextFile(`${dir}/tracking.log`);
    assert.equal(old.split("\n").length, 3);
    assert.equal(current.split("\n").length, 2);
    assert.match(current, /"event": \{"n": 3\}/);
    assert.equal(log.path, `${dir}/tracking.log`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
