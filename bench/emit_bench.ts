/**
 * emit() through the reference tree — root, and three child routers:
 * `tracking_logs` (LoggerBackend to a no-op writer), `segment` (an allowlist
 * that drops the event) and `xapi` (an allowlist that passes it to a no-op
 * backend) — with a ≈1 KB event and three nested context scopes; beside it,
 * pino writing the same object to a no-op destination.
 *
 * Run: `deno task bench bench/emit_bench.ts`
 *
 * @module
 */

import pino from "pino";
import { LoggerBackend, NameAllowlistProcessor, RoutingBackend, Tracker } from "../mod.ts";

const NAME = "edx.course.enrollment.activated";

/** A ≈1 KB Open edX-like payload (20 data keys). */
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
      processors: [new NameAllowlistProcessor({ allowlist: [NAME] })],
      backends: { xapi: { send: noop } },
    }),
  },
});
for (const [name, context] of contexts) tracker.enterContext(name, context);

// pino gets the same merged context as bindings and the same data per call.
const logger = pino({ base: undefined }, { write: noop }).child(Object.assign({}, ...contexts.map(([, c]) => c)));

const line = JSON.stringify({ id: "", name: NAME, timestamp: "", context: tracker.resolveContext(), data });
console.log(`event JSON size: ${line.length} characters`);

Deno.bench("pino.info() of the same object to a no-op destination", { group: "emit", baseline: true }, () => {
  logger.info({ name: NAME, data });
});

Deno.bench("Tracker.emit() through root + 3 branches (logger, dropped, passed)", { group: "emit" }, () => {
  tracker.emit(NAME, data);
});

const loggerOnly = new Tracker({ backends: { logger: new LoggerBackend({ write: noop, maxEventSize: 50_000 }) } });
for (const [name, context] of contexts) loggerOnly.enterContext(name, context);

Deno.bench("Tracker.emit() to a LoggerBackend only", { group: "logger" }, () => {
  loggerOnly.emit(NAME, data);
});

Deno.bench("pino.info() of the same object (logger baseline)", { group: "logger", baseline: true }, () => {
  logger.info({ name: NAME, data });
});
