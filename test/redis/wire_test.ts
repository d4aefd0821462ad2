import assert from "node:assert/strict";
import {
  decodeEntry,
  decodeTrackingLog,
  encodeEntry,
  encodeTrackingLog,
  eventTimestamp,
  pythonIsoformat,
  pythonJsonDumps,
  streamName,
  TRACKING_EVENT_TYPE,
  UnusableEntryError,
} from "@edx/event-tracking/redis";
import { PYTHON, python, PYTHON_SCHEMA } from "./_redis.ts";

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const ascii = (text: string) => hex(new TextEncoder().encode(text));

const EVENT = {
  id: "0190a0c0-7b1e-7c3a-9f00-123456789abc",
  name: "problem_check",
  timestamp: "2024-05-01T12:00:00.123Z",
  context: { user_id: 7, course_id: "course-v1:edX+DemoX+Demo_Course", org_id: "edX" },
  data: { problem_id: "block-v1:edX+DemoX+type@problem+block@p1", answers: { "1_2_1": "choice_0" }, grade: 1 },
};

Deno.test("the golden bytes of openedx-events: problem_check, {} and {} are 53 bytes of bare Avro", () => {
  const bytes = encodeTrackingLog({
    name: "problem_check",
    timestamp: "2024-05-01T12:00:00.123456+00:00",
    data: "{}",
    context: "{}",
  });
  // zigzag lengths: 13 → 0x1a, 32 → 0x40, 2 → 0x04
  const expected = "1a" + ascii("problem_check") + "40" + ascii("2024-05-01T12:00:00.123456+00:00") + "04" +
    ascii("{}") + "04" + ascii("{}");
  assert.equal(bytes.length, 53);
  assert.equal(hex(bytes), expected);
  assert.deepEqual(decodeTrackingLog(bytes), {
    name: "problem_check",
    timestamp: "2024-05-01T12:00:00.123456+00:00",
    data: "{}",
    context: "{}",
  });
});

Deno.test("decodeTrackingLog refuses truncated bytes and bytes left over", () => {
  const bytes = encodeTrackingLog({ name: "a", timestamp: "t", data: "{}", context: "{}" });
  assert.throws(() => decodeTrackingLog(bytes.subarray(0, bytes.length - 1)));
  assert.throws(() => decodeTrackingLog(new Uint8Array([...bytes, 0])));
});

Deno.test("stream names: <prefix>-<topic>, bare without a prefix", () => {
  assert.equal(streamName("analytics", "dev"), "dev-analytics");
  assert.equal(streamName("analytics"), "analytics");
  assert.equal(streamName("analytics", ""), "analytics");
});

Deno.test("pythonIsoformat: UTC, +00:00, six fraction digits, none when zero; eventTimestamp goes back", () => {
  assert.equal(pythonIsoformat("2024-05-01T12:00:00.123Z"), "2024-05-01T12:00:00.123000+00:00");
  assert.equal(pythonIsoformat("2024-05-01T12:00:00.000Z"), "2024-05-01T12:00:00+00:00");
  assert.equal(pythonIsoformat("2024-05-01T12:00:00.000001Z"), "2024-05-01T12:00:00.000001+00:00");
  assert.equal(pythonIsoformat("2024-05-01T12:00:00.1234567+00:00"), "2024-05-01T12:00:00.123456+00:00");
  assert.equal(pythonIsoformat("2024-05-01T01:00:00.5+02:00"), "2024-04-30T23:00:00.500000+00:00");
  assert.equal(pythonIsoformat(Date.UTC(2024, 0, 1, 0, 0, 0, 7)), "2024-01-01T00:00:00.007000+00:00");
  assert.throws(() => pythonIsoformat("yesterday"), RangeError);
  assert.throws(() => pythonIsoformat("2024-02-30T00:00:00Z"), RangeError);
  assert.equal(eventTimestamp("2024-05-01T12:00:00.123456+00:00"), "2024-05-01T12:00:00.123Z");
  assert.equal(eventTimestamp("2024-05-01T12:00:00+00:00"), "2024-05-01T12:00:00.000Z");
  assert.equal(eventTimestamp("2024-05-01T14:00:00.5+02:00"), "2024-05-01T12:00:00.500Z");
});

Deno.test("pythonJsonDumps: Python's separators, ASCII escapes and float forms", () => {
  assert.equal(pythonJsonDumps({}), "{}");
  assert.equal(pythonJsonDumps(undefined), "null");
  assert.equal(pythonJsonDumps({ a: 1, b: [true, null, "x"] }), '{"a": 1, "b": [true, null, "x"]}');
  assert.equal(pythonJsonDumps("é😀\u2028\x7f"), '"\\u00e9\\ud83d\\ude00\\u2028\\u007f"');
  assert.equal(pythonJsonDumps({ "a, b": "c: d" }), '{"a, b": "c: d"}');
  assert.equal(
    pythonJsonDumps([1e-7, 1.5e-5, 0.0001, 1e21, -0.00001, 10.00005]),
    "[1e-07, 1.5e-05, 0.0001, 1e+21, -1e-05, 10.00005]",
  );
});

Deno.test("encodeEntry writes the header fields in edx-event-bus-redis's order, then event_data", () => {
  const fields = encodeEntry(EVENT, {
    source: "openedx/lms/web",
    sourcehost: "web-1",
    time: Date.UTC(2024, 4, 1, 12, 0, 0, 250),
  });
  assert.deepEqual(fields.slice(0, 14), [
    "type",
    TRACKING_EVENT_TYPE,
    "id",
    EVENT.id,
    "source",
    "openedx/lms/web",
    "time",
    "2024-05-01T12:00:00.250000+00:00",
    "minorversion",
    "0",
    "sourcehost",
    "web-1",
    "sourcelib",
    "11.2.0",
  ]);
  assert.equal(fields[14], "event_data");
  const log = decodeTrackingLog(fields[15] as Uint8Array);
  assert.equal(log.timestamp, "2024-05-01T12:00:00.123000+00:00");
  assert.equal(log.data, pythonJsonDumps(EVENT.data));
  assert.equal(log.context, '{"user_id": 7, "course_id": "course-v1:edX+DemoX+Demo_Course", "org_id": "edX"}');
  const decoded = decodeEntry(fields);
  assert.deepEqual({ ...decoded.event }, EVENT);
  assert.ok(Object.isFrozen(decoded.event.data));
});

Deno.test("encodeEntry refuses an id Open edX consumers cannot parse as a UUID, and a timestamp that is not ISO 8601", () => {
  assert.throws(
    () => encodeEntry({ ...EVENT, id: "42" }, { source: "s", sourcehost: "h" }),
    /Cannot publish event "problem_check": its id "42" is not a UUID/,
  );
  assert.throws(() => encodeEntry({ ...EVENT, timestamp: "now" }, { source: "s", sourcehost: "h" }), RangeError);
  encodeEntry({ ...EVENT, id: EVENT.id.toUpperCase() }, { source: "s", sourcehost: "h" });
});

Deno.test("decodeEntry says why an entry is not a tracking event", () => {
  const good = encodeEntry(EVENT, { source: "s", sourcehost: "h" });
  const without = (name: string) => good.filter((_, i) => good[i - (i % 2)] !== name);
  const reason = (fields: (string | Uint8Array)[]) => {
    try {
      decodeEntry(fields);
      return "decoded";
    } catch (error) {
      assert.ok(error instanceof UnusableEntryError);
      return (error as Error).message;
    }
  };
  assert.equal(reason(without("event_data")), "no event_data field");
  assert.equal(reason(without("id")), "no id field");
  assert.match(reason(without("type")), /event type null is not org\.openedx/);
  assert.match(
    reason(good.map((v, i) => i === 1 ? "org.openedx.learning.course.enrollment.changed.v1" : v)),
    /event type/,
  );
  assert.match(reason(good.map((v, i) => i === 15 ? new Uint8Array([0xff, 0x01]) : v)), /^event_data is not an Avro/);
  const badJson = encodeTrackingLog({ name: "a", timestamp: "2024-05-01T12:00:00+00:00", data: "{", context: "{}" });
  assert.match(reason(good.map((v, i) => i === 15 ? badJson : v)), /^data is not JSON/);
  const badTime = encodeTrackingLog({ name: "a", timestamp: "soon", data: "{}", context: "{}" });
  assert.match(reason(good.map((v, i) => i === 15 ? badTime : v)), /^timestamp: /);
  const listContext = encodeTrackingLog({
    name: "a",
    timestamp: "2024-05-01T12:00:00+00:00",
    data: "{}",
    context: "[]",
  });
  assert.match(reason(good.map((v, i) => i === 15 ? listContext : v)), /context/);
  const nullData = encodeTrackingLog({
    name: "a",
    timestamp: "2024-05-01T12:00:00+00:00",
    data: "null",
    context: "null",
  });
  assert.equal(reason(good.map((v, i) => i === 15 ? nullData : v)), "decoded");
});

Deno.test({
  name: "oracle: Python's avro decodes our bytes, and encodes the golden record to the same bytes",
  ignore: PYTHON === undefined,
  async fn() {
    const logs = [
      { name: "problem_check", timestamp: "2024-05-01T12:00:00.123456+00:00", data: "{}", context: "{}" },
      {
        name: "edx.video.played",
        timestamp: "2024-05-01T12:00:00+00:00",
        data: pythonJsonDumps({ é: "😀" }),
        context: "{}",
      },
      { name: "x".repeat(300), timestamp: "t", data: "[" + "1, ".repeat(2000) + "1]", context: '{"a": "\\u00e9"}' },
    ];
    const ours = logs.map((log) => hex(encodeTrackingLog(log)));
    const result = await python<{ decoded: unknown[]; encoded: string[] }>(
      `
import io, json, sys
import avro.io, avro.schema
schema = avro.schema.parse(${JSON.stringify(PYTHON_SCHEMA)})
given = json.load(sys.stdin)
decoded = []
for h in given["ours"]:
    decoder = avro.io.BinaryDecoder(io.BytesIO(bytes.fromhex(h)))
    decoded.append(avro.io.DatumReader(schema).read(decoder)["tracking_log"])
encoded = []
for log in given["logs"]:
    out = io.BytesIO()
    avro.io.DatumWriter(schema).write({"tracking_log": log}, avro.io.BinaryEncoder(out))
    encoded.append(out.getvalue().hex())
print(json.dumps({"decoded": decoded, "encoded": encoded}))
`,
      { ours, logs },
    );
    assert.deepEqual(result.decoded, logs);
    assert.deepEqual(result.encoded, ours);
  },
});

Deno.test({
  name: "oracle: json.dumps and datetime.isoformat give the same text as pythonJsonDumps and pythonIsoformat",
  ignore: PYTHON === undefined,
  async fn() {
    const values: unknown[] = [
      {},
      [],
      null,
      { user_id: 10938, session: "2987lkjdyoioey", nested: { a: [1, 2, { b: "c" }], empty: {} } },
      'é à ü ß 中文 😀 \u2028 \u0000 \u001f \x7f \t\n\r\b\f " \\ /',
      [0.1, 1.5, -2.25, 123456.789, 1e-4, 1.5e-5, 1e-5, 2e-7, 1.234e-10, 1e21, 1.5e300, 5e-324, 9007199254740991],
      { 'key with "quotes"': true, "ключ": false, "": "" },
      [[[[["deep"]]]]],
    ];
    const times = [
      "2024-05-01T12:00:00.123Z",
      "2024-05-01T12:00:00.000Z",
      "1999-12-31T23:59:59.999Z",
      "2024-05-01T12:00:00.123456+00:00",
      "2024-05-01T14:30:00.5+02:30",
    ];
    const result = await python<{ dumps: string[]; iso: string[] }>(
      `
import json, sys
from datetime import datetime, timezone
given = json.load(sys.stdin)
dumps = [json.dumps(json.loads(text)) for text in given["values"]]
iso = [datetime.fromisoformat(t.replace("Z", "+00:00")).astimezone(timezone.utc).isoformat() for t in given["times"]]
print(json.dumps({"dumps": dumps, "iso": iso}))
`,
      { values: values.map((value) => JSON.stringify(value)), times },
    );
    assert.deepEqual(values.map(pythonJsonDumps), result.dumps);
    assert.deepEqual(times.map(pythonIsoformat), result.iso);
  },
});
