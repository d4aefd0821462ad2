/**
 * emit() through the reference tree — root, and three child routers:
 * `tracking_logs` (LoggerBackend to a no-op writer), `segment` (an allowlist
 * that drops the event) and `xapi` (a RegexFilter that passes it to a no-op
 * backend) — with a ≈1.2 KB event and three nested context scopes.
 *
 * The baseline of each group is the floor of an emit that writes one JSON
 * line: one `JSON.stringify` of the same final event `{id, name, timestamp,
 * context, data}`, as plain objects (parsed from an emitted event's line, so
 * nothing is frozen and every object has fast properties). The same payload
 * is emitted twice: built as an object literal, and built key by key
 * (`o[k] = v` in a loop, as code that assembles its payload does; V8 keeps
 * such objects of 20 keys or more in dictionary mode). pino, writing the same
 * object to a no-op destination, is an extra comparison.
 *
 * Run: `deno task bench bench/emit_bench.ts`
 *
 * @module
 */

import assert from "node:assert/strict";
import pino from "pino";
import { LoggerBackend, NameAllowlistProcessor, RegexFilter, RoutingBackend, serializeEvent, Tracker } from "../mod.ts";

const NAME = "edx.course.enrollment.activated";

/** A ≈1 KB Open edX-like payload (20 data keys), built as a literal. */
export const data = {
  user_id: 10938,
  course_id: "course-v1:edX+DemoX+Demo_Course",
  mode: "verified",
  org: "edX",
  enrollment_id: 837261,
  is_active: true,
  created: "2026-11-27T18:08:15.123Z",
  source: "lms",
  referrer: "https://courses.edx.org/dashboard",
  module_id: "block-v1:edX+DemoX+Demo_Course+type@problem+block@d1b84dcd39b0423d9e288f27f0f7f242",
  attempts: 2,
  grade: 0.75,
  max_grade: 1,
  success: "incorrect",
  answers: { "d1b84dcd39b0423d9e288f27f0f7f242_2_1": "choice_3" },
  state: { seed: 1, done: true, correct_map: { "d1b84dcd39b0423d9e288f27f0f7f242_2_1": { correctness: "incorrect" } } },
  submission: { "d1b84dcd39b0423d9e288f27f0f7f242_2_1": { question: "What is 2 + 2?", answer: "5", variant: "" } },
  tags: ["enrollment", "verified", "demo"],
  event_source: "server",
  page: "https://courses.edx.org/courses/course-v1:edX+DemoX+Demo_Course/courseware/",
};

/** Rebuilds a value key by key (`o[k] = v`) and element by element, as a loop that assembles a payload does. */
export function keyByKey(value: unknown): unknown {
  if (Array.isArray(value)) {
    const array: unknown[] = [];
    for (let i = 0; i < value.length; i++) array[i] = keyByKey(value[i]);
    return array;
  }
  if (typeof value !== "object" || value === null) return value;
  const object: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) object[key] = keyByKey(item);
  return object;
}

/** The same content as {@linkcode data}, built key by key. */
export const keyedData = keyByKey(data) as typeof data;

const contexts: [string, Record<string, unknown>][] = [
  ["edx.request", {
    user_id: 10938,
    username: "learner",
    session: "2987lkjdyoioey",
    ip: "203.0.113.7",
    host: "courses.edx.org",
    agent: "Mozilla/5.0",
    path: "/event",
  }],
  ["edx.course", { course_id: "course-v1:edX+DemoX+Demo_Course", org_id: "edX" }],
  ["edx.module", { module_id: "block-v1:edX+DemoX+Demo_Course+type@problem+block@d1b8" }],
];

const noop = () => {};

/** The reference tree, with the three scopes entered. */
function referenceTree(): Tracker {
  const tracker = new Tracker({
    backends: {
      tracking_logs: new RoutingBackend({
        backends: { logger: new LoggerBackend({ write: noop, maxEventSize: 50_000 }) },
      }),
      segment: new RoutingBackend({
        processors: [new NameAllowlistProcessor({ allowlist: ["edx.bi.user.account.registered"] })],
        backends: { segment: { send: noop } },
      }),
      xapi: new RoutingBackend({
        processors: [
          new RegexFilter({ regularExpressions: [String.raw`edx\.course\.enrollment\.`, String.raw`edx\.video\.`] }),
        ],
        backends: { xapi: { send: noop } },
      }),
    },
  });
  for (const [name, context] of contexts) tracker.enterContext(name, context);
  return tracker;
}

const tracker = referenceTree();

// The final event, captured from the tree, as plain objects: the floor's input.
const line = serializeEvent(tracker.createEvent(NAME, data));
const finalEvent = JSON.parse(line);
// Both payloads make the same event, and the xapi branch passes it.
const keyedLine = serializeEvent(tracker.createEvent(NAME, keyedData));
assert.equal(keyedLine.slice(keyedLine.indexOf(',"context"')), line.slice(line.indexOf(',"context"')));
tracker.emit(NAME, data);
assert.equal(tracker.metrics()["root/xapi"].passed, 1);
assert.equal(tracker.metrics()["root/segment"].dropped, 1);
// A long-running tracker's steady state: emit compiles a copier for a shape
// of data once it has copied that shape 1,000 times (src/_snapshot.ts).
for (let i = 0; i < 2_000; i++) tracker.emit(NAME, i % 2 === 0 ? data : keyedData);
console.log(`event JSON size: ${line.length} characters`);

// pino gets the same merged context as bindings and the same data per call.
const logger = pino({ base: undefined }, { write: noop }).child(Object.assign({}, ...contexts.map(([, c]) => c)));

// Long runs: these machines are shared, and a ratio of two short runs moves ±30 %.
const RUN = { n: 200_000, warmup: 20_000 };

Deno.bench("JSON.stringify() of the final event (floor)", { ...RUN, group: "literal", baseline: true }, () => {
  JSON.stringify(finalEvent);
});

Deno.bench("Tracker.emit(), literal payload, root + 3 branches", { ...RUN, group: "literal" }, () => {
  tracker.emit(NAME, data);
});

Deno.bench("pino.info() of the same literal payload to a no-op destination", { ...RUN, group: "literal" }, () => {
  logger.info({ name: NAME, data });
});

Deno.bench("JSON.stringify() of the final event (floor, key-by-key group)", {
  ...RUN,
  group: "key by key",
  baseline: true,
}, () => {
  JSON.stringify(finalEvent);
});

Deno.bench("Tracker.emit(), key-by-key payload, root + 3 branches", { ...RUN, group: "key by key" }, () => {
  tracker.emit(NAME, keyedData);
});

Deno.bench("pino.info() of the same key-by-key payload to a no-op destination", { ...RUN, group: "key by key" }, () => {
  logger.info({ name: NAME, data: keyedData });
});

const loggerOnly = new Tracker({ backends: { logger: new LoggerBackend({ write: noop, maxEventSize: 50_000 }) } });
for (const [name, context] of contexts) loggerOnly.enterContext(name, context);

Deno.bench("JSON.stringify() of the final event (floor, logger group)", {
  ...RUN,
  group: "logger only",
  baseline: true,
}, () => {
  JSON.stringify(finalEvent);
});

Deno.bench("Tracker.emit(), literal payload, to a LoggerBackend only", { ...RUN, group: "logger only" }, () => {
  loggerOnly.emit(NAME, data);
});

Deno.bench("pino.info() of the same literal payload (logger only)", { ...RUN, group: "logger only" }, () => {
  logger.info({ name: NAME, data });
});
