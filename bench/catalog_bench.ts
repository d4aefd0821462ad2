/**
 * The cost of an event catalog per event, in one run beside the plain emit:
 * the same tracker tree (a LoggerBackend to a no-op writer) and payload,
 * without a catalog (the baseline), with a catalog documenting the event
 * (validation, and the version added to the context), with a catalog that
 * does not document it (schema inference), and with a `SchemaProcessor`
 * (`on_invalid: drop`) on the branch.
 *
 * Run: `deno task bench bench/catalog_bench.ts`
 *
 * @module
 */

import { EventCatalog, LoggerBackend, RoutingBackend, SchemaProcessor, Tracker } from "../mod.ts";

const NAME = "edx.course.enrollment.activated";
const data = {
  user_id: 10938,
  course_id: "course-v1:edX+DemoX+Demo_Course",
  mode: "verified",
  org: "edX",
  enrollment_id: 837261,
  is_active: true,
  created: "2026-11-27T18:08:15.123Z",
  attempts: 2,
  grade: 0.75,
  state: { seed: 1, done: true },
  tags: ["enrollment", "verified", "demo"],
};

const schema = {
  type: "object",
  properties: {
    user_id: { type: "integer" },
    course_id: { type: "string", pattern: "^course-v1:" },
    mode: { enum: ["audit", "verified", "honor"] },
    org: { type: "string" },
    enrollment_id: { type: "integer" },
    is_active: { type: "boolean" },
    created: { type: "string" },
    attempts: { type: "integer", minimum: 0 },
    grade: { type: "number" },
    state: { type: "object", properties: { seed: { type: "integer" }, done: { type: "boolean" } } },
    tags: { type: "array", items: { type: "string" } },
  },
  required: ["user_id", "course_id", "mode"],
};

const noop = () => {};
const logger = () => new LoggerBackend({ write: noop, maxEventSize: 50_000 });
const documented = () => new EventCatalog().define(NAME, { description: "Enrollment activated.", version: 1, schema });

const plain = new Tracker({ backends: { logger: logger() } });
const validating = new Tracker({ catalog: documented(), backends: { logger: logger() } });
const inferring = new Tracker({ catalog: new EventCatalog(), backends: { logger: logger() } });
const branch = new Tracker({
  backends: {
    logs: new RoutingBackend({
      backends: { logger: logger() },
      processors: [new SchemaProcessor({ catalog: documented(), onInvalid: "drop" })],
    }),
  },
});

const RUN = { n: 200_000, warmup: 20_000, group: "catalog" };

Deno.bench("Tracker.emit() without a catalog (plain emit)", { ...RUN, baseline: true }, () => {
  plain.emit(NAME, data);
});
Deno.bench("Tracker.emit() with a catalog documenting the event (validated, versioned)", RUN, () => {
  validating.emit(NAME, data);
});
Deno.bench("Tracker.emit() with a catalog not documenting it (schema inferred)", RUN, () => {
  inferring.emit(NAME, data);
});
Deno.bench("Tracker.emit() through a branch with a SchemaProcessor (no tracker catalog)", RUN, () => {
  branch.emit(NAME, data);
});
