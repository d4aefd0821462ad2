/**
 * The Open edX tracking-log line of one event (`LoggerBackend` with
 * `format: "openedx"`): the shimmed record, written as Python's `json.dumps`
 * text and encoded as the file sink encodes it (UTF-8, into a reused buffer:
 * a string built piece by piece is flattened there, so that cost counts).
 * The baseline is the floor of any JSON line of that record: one
 * `JSON.stringify` of it, encoded the same way. The event is a typical server event of the LMS,
 * emitted in a request scope and shimmed as the default tree's tracking-log
 * branch shims it.
 *
 * Run: `deno task bench bench/tracking_log_bench.ts`
 *
 * @module
 */

import { legacyFields, Tracker, trackingLogRecord } from "../mod.ts";
import { pythonJsonDumps } from "../src/_python_json.ts";

const tracker = new Tracker();
const event = tracker.withContext("edx.request", {
  user_id: 42,
  username: "ada",
  session: "1c6f2a9e83e84ab7a3c2a6b1de0f7c55",
  ip: "203.0.113.7",
  agent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
  host: "courses.example.org",
  referer: "https://courses.example.org/courses/course-v1:edX+DemoX+Demo_Course/courseware/",
  accept_language: "en-US,en;q=0.9",
  course_id: "course-v1:edX+DemoX+Demo_Course",
  org_id: "edX",
  path: "/event",
}).createEvent("problem_check", {
  problem_id: "block-v1:edX+DemoX+Demo_Course+type@problem+block@d1b2c3",
  attempts: 2,
  grade: 0.5,
  max_grade: 1,
  success: "incorrect",
  answers: { "d1b2c3_2_1": ["choice_1", "choice_3"] },
  state: { seed: 1, done: true, student_answers: {} },
});
const shimmed = legacyFields(event);
const record = trackingLogRecord(shimmed);
const encoder = new TextEncoder();
const buffer = new Uint8Array(1 << 16);
let sink = 0;

Deno.bench(
  "JSON.stringify of the record, encoded (the floor of a JSON line)",
  { group: "line", baseline: true },
  () => {
    sink += encoder.encodeInto(JSON.stringify(record) + "\n", buffer).written;
  },
);

Deno.bench("the tracking-log line: Python json.dumps text of the record, encoded", { group: "line" }, () => {
  sink += encoder.encodeInto(pythonJsonDumps(record) + "\n", buffer).written;
});

Deno.bench("the tracking-log line from the event: record, json.dumps text, encoded", { group: "line" }, () => {
  sink += encoder.encodeInto(pythonJsonDumps(trackingLogRecord(shimmed)) + "\n", buffer).written;
});

Deno.bench("the shim: LegacyFieldMappingProcessor's event", { group: "shim", baseline: true }, () => {
  sink += legacyFields(event).name.length;
});

globalThis.addEventListener("unload", () => {
  if (sink < 0) console.log(sink);
});
