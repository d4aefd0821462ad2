import assert from "node:assert/strict";
import * as v from "valibot";
import {
  AsyncRoutingBackend,
  type Backend,
  createTracker,
  type CreateTrackerOptions,
  defineEngine,
  type Engine,
  EventBusBackend,
  ImproperlyConfigured,
  InMemoryBackend,
  InProcessBus,
  InProcessQueue,
  LoggerBackend,
  NameAllowlistProcessor,
  RegexFilter,
  RoutingBackend,
  type TrackerConfig,
} from "../mod.ts";
import { RecordingLogger } from "./_helpers.ts";

class FakeBackendWithOptions implements Backend {
  constructor(readonly options: Record<string, unknown>) {}
  send() {}
}
const nop = () => undefined;
// Engines of the tests: passed to each call, never registered globally.
const engines: Record<string, Engine> = {
  "test.FakeBackendWithOptions": (options) => new FakeBackendWithOptions(options),
  "test.NopProcessor": () => nop,
  "test.NotABackend": () => ({ hello: "world" }) as never,
  "test.Throws": () => {
    throw new RangeError("constructor refused");
  },
};

function build(config: TrackerConfig, options: CreateTrackerOptions = {}) {
  return createTracker(config, { engines, ...options });
}

function configError(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ImproperlyConfigured, `expected ImproperlyConfigured, got ${error}`);
    if (typeof message === "string") assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  });
}

// spec §10.16 test_configure, test_configure_engine_with_options / missing options
Deno.test("createTracker() builds backends from ENGINE and OPTIONS", () => {
  const tracker = build({
    backends: {
      fake: { ENGINE: "test.FakeBackendWithOptions", OPTIONS: { option: "X" } },
      bare: { ENGINE: "test.FakeBackendWithOptions" },
    },
  });
  assert.ok(tracker.getBackend("fake") instanceof FakeBackendWithOptions);
  assert.deepEqual((tracker.getBackend("fake") as FakeBackendWithOptions).options, { option: "X" });
  assert.deepEqual((tracker.getBackend("bare") as FakeBackendWithOptions).options, {});
});

// spec §10.16 tests 2–6
Deno.test("createTracker() refuses a missing, empty or unknown ENGINE, naming the path", () => {
  configError(
    () => build({ backends: { no_engine: { OPTIONS: {} } as never } }),
    /^backends\.no_engine: must be an engine spec with an ENGINE/,
  );
  configError(
    () => build({ backends: { empty: { ENGINE: "" } } }),
    'backends.empty: ENGINE must be a non-empty string, got ""',
  );
  configError(
    () => build({ backends: { x: { ENGINE: "foo.BarBackend" } } }),
    /^backends\.x: unknown ENGINE "foo\.BarBackend" \(known: .*routing.*\)/,
  );
  configError(
    () => build({ backends: { x: { ENGINE: "BarBackend" } } }),
    /^backends\.x: unknown ENGINE "BarBackend"/,
  );
  configError(
    () => build({ backends: { x: { ENGINE: 5 as never } } }),
    /^backends\.x: ENGINE must be a non-empty string, got 5/,
  );
});

Deno.test("createTracker() names the path of an error deep in the tree", () => {
  configError(
    () =>
      build({
        backends: {
          xapi: {
            ENGINE: "routing",
            OPTIONS: { processors: [{ ENGINE: "foo.Bar" }] },
          },
        },
      }),
    /^backends\.xapi\.OPTIONS\.processors\[0\]: unknown ENGINE "foo\.Bar"/,
  );
  configError(
    () => build({ backends: { a: { ENGINE: "routing", OPTIONS: { backends: { b: { OPTIONS: {} } } } } } }),
    /^backends\.a\.OPTIONS\.backends\.b: must be an engine spec with an ENGINE/,
  );
});

// spec §10.16 test_configure_class_not_a_backend, test_missing_processor_engine
Deno.test("createTracker() refuses an ENGINE that builds no backend, or a processor spec without ENGINE", () => {
  configError(
    () => build({ backends: { x: { ENGINE: "test.NotABackend" } } }),
    "backends.x: is not a backend: its ENGINE built a Object",
  );
  configError(
    () => build({ processors: [{} as never] }),
    "processors[0]: must be an engine spec with an ENGINE, got {}",
  );
  configError(
    () => build({ processors: ["name_allowlist" as never] }),
    /^processors\[0\]: must be an engine spec/,
  );
  configError(
    () => build({ backends: { x: { ENGINE: "name_allowlist", OPTIONS: { allowlist: [] } } } }),
    /^backends\.x: is not a backend/,
  );
});

Deno.test("createTracker() wraps an engine's own error with the path", () => {
  configError(
    () => build({ backends: { x: { ENGINE: "test.Throws" } } }),
    'backends.x: cannot create ENGINE "test.Throws": constructor refused',
  );
  configError(
    () => build({ processors: [{ ENGINE: "name_allowlist", OPTIONS: { whitelist: "foobar" } }] }),
    'processors[0].OPTIONS.whitelist: must be an array, Set or object of event names, got "foobar"',
  );
  // A constructor's own check the schema could not make, under the spec's path.
  configError(
    () =>
      build({ backends: { x: { ENGINE: "x.Logger" } } }, {
        engines: { "x.Logger": () => new LoggerBackend({ maxPendingLines: 0 }) },
      }),
    "backends.x: LoggerBackend.maxPendingLines: must be a positive integer, got 0",
  );
});

Deno.test("createTracker() refuses unknown options, keys and shapes", () => {
  configError(
    () => build({ backends: { log: { ENGINE: "logger", OPTIONS: { max_size: 5 } } } }),
    "backends.log.OPTIONS.max_size: unknown option (expected: name, level, maxEventSize, format, prefix, path, maxPendingLines, reportIntervalMs)",
  );
  // What only code can give (a function, a logger) is not an option of a configuration.
  configError(
    () => build({ backends: { log: { ENGINE: "logger", OPTIONS: { write: "x" } } } }),
    /^backends\.log\.OPTIONS\.write: unknown option/,
  );
  configError(
    () => build({ backends: { log: { ENGINE: "logger", EXTRA: 1 } as never } }),
    /^backends\.log: unknown key "EXTRA"/,
  );
  configError(
    () => build({ backends: { log: { ENGINE: "logger", OPTIONS: [] as never } } }),
    "backends.log: OPTIONS must be an object, got Array",
  );
  configError(() => build({ backends: [] as never }), /^backends: must be an object/);
  configError(() => build({ processors: {} as never }), /^processors: must be an array/);
  configError(() => build({ backend: {} } as never), /^backend: unknown key "backend"/);
  configError(
    () => build({ backends: { log: { ENGINE: "logger", OPTIONS: { max_event_size: 1, maxEventSize: 2 } } } }),
    'backends.log.OPTIONS.maxEventSize: the same option as "max_event_size": give one',
  );
  configError(
    () => build({ backends: { x: { ENGINE: "test.FakeBackendWithOptions", OPTIONS: { a_b: 1, aB: 2 } } } }),
    'backends.x.OPTIONS.aB: the same option as another spelling of "aB": give one',
  );
});

Deno.test("createTracker() and the constructors check options with the same schema and the same words", () => {
  const cases: [string, Record<string, unknown>, () => unknown, string][] = [
    ["logger", { level: "loud" }, () => new LoggerBackend({ level: "loud" as never }), "LoggerBackend.level"],
    ["logger", { max_event_size: -1 }, () => new LoggerBackend({ maxEventSize: -1 }), "LoggerBackend.maxEventSize"],
    [
      "async_routing",
      { backoff: { max_ms: "1" } },
      () => new AsyncRoutingBackend({ backoff: { maxMs: "1" as never } }),
      "AsyncRoutingBackend.backoff.maxMs",
    ],
    ["async_routing", { overflow: "block" }, () => new AsyncRoutingBackend({ overflow: "block" as never }), ""],
    ["async_routing", { max_attempts: 0 }, () => new AsyncRoutingBackend({ maxAttempts: 0 }), ""],
    ["event_bus", { enabled: "yes" }, () => new EventBusBackend({ enabled: "yes" as never }), ""],
    ["regex_filter", { filter_type: "x" }, () => new RegexFilter({ filterType: "x" as never }), ""],
    ["regex_filter", { regular_expressions: ["("] }, () => new RegexFilter({ regularExpressions: ["("] }), ""],
    ["name_allowlist", {}, () => new NameAllowlistProcessor({}), ""],
    ["routing", { backends: [] }, () => new RoutingBackend({ backends: [] as never }), ""],
  ];
  for (const [engine, options, construct, constructorPath] of cases) {
    let fromConstructor: ImproperlyConfigured | undefined;
    try {
      construct();
    } catch (error) {
      fromConstructor = error as ImproperlyConfigured;
    }
    assert.ok(fromConstructor instanceof ImproperlyConfigured, `${engine} ${JSON.stringify(options)}`);
    if (constructorPath) assert.equal(fromConstructor.path, constructorPath);
    const processor = engine === "regex_filter" || engine === "name_allowlist";
    const spec = { ENGINE: engine, OPTIONS: options };
    const config: TrackerConfig = processor ? { processors: [spec] } : { backends: { b: spec } };
    assert.throws(() => createTracker(config), (error: unknown) => {
      assert.ok(error instanceof ImproperlyConfigured);
      const where = (processor ? "processors[0]" : "backends.b") + ".OPTIONS";
      assert.ok(error.path.startsWith(where), `${error.path} should start with ${where}`);
      // The same words after the path.
      assert.equal(
        error.message.slice(error.path.length),
        fromConstructor.message.slice(fromConstructor.path.length),
        `${engine} ${JSON.stringify(options)}`,
      );
      return true;
    });
  }
  // The paths name the options as the configuration spells them.
  configError(
    () => createTracker({ backends: { log: { ENGINE: "logger", OPTIONS: { max_event_size: -1 } } } }),
    "backends.log.OPTIONS.max_event_size: must be null or a non-negative integer, got -1",
  );
});

// spec §10.16 test_configure_nested_backends
Deno.test("createTracker() builds nested routers with their own processors", () => {
  const tracker = build({
    backends: {
      outer: {
        ENGINE: "eventtracking.backends.routing.RoutingBackend",
        OPTIONS: {
          backends: {
            inner_backend: { ENGINE: "test.FakeBackendWithOptions", OPTIONS: { option: "X" } },
            nested_backend: {
              ENGINE: "routing",
              OPTIONS: { backends: { trivial: { ENGINE: "memory" } }, processors: [{ ENGINE: "test.NopProcessor" }] },
            },
          },
          processors: [{ ENGINE: "test.NopProcessor" }, { ENGINE: "test.NopProcessor" }],
        },
      },
    },
  });
  const outer = tracker.getBackend("outer") as RoutingBackend;
  assert.ok(outer instanceof RoutingBackend);
  assert.deepEqual([...outer.backends.keys()], ["inner_backend", "nested_backend"]);
  assert.deepEqual(outer.processors, [nop, nop]);
  assert.deepEqual((outer.backends.get("inner_backend") as FakeBackendWithOptions).options, { option: "X" });
  const nested = outer.backends.get("nested_backend") as RoutingBackend;
  assert.deepEqual([...nested.backends.keys()], ["trivial"]);
  assert.deepEqual(nested.processors, [nop]);
});

// spec §10.16 tests 14–17
Deno.test("createTracker() builds root processors in order, with options", () => {
  const tracker = build({
    processors: [
      { ENGINE: "test.NopProcessor" },
      { ENGINE: "eventtracking.processors.whitelist.NameWhitelistProcessor", OPTIONS: { whitelist: ["a"] } },
    ],
  });
  assert.equal(tracker.processors.length, 2);
  assert.equal(tracker.processors[0], nop);
  assert.ok(tracker.processors[1] instanceof NameAllowlistProcessor);
  assert.deepEqual([...(tracker.processors[1] as NameAllowlistProcessor).allowlist], ["a"]);
});

Deno.test("createTracker() loads a typical Open edX setting: logger with snake_case options and a filtered branch", () => {
  const logger = new RecordingLogger();
  const tracker = build({
    backends: {
      tracking_logs: {
        ENGINE: "eventtracking.backends.routing.RoutingBackend",
        OPTIONS: {
          backends: {
            logger: {
              ENGINE: "eventtracking.backends.logger.LoggerBackend",
              OPTIONS: { name: "tracking", max_event_size: 50000 },
            },
          },
        },
      },
      segmentio: {
        ENGINE: "routing",
        OPTIONS: {
          backends: { memory: { ENGINE: "eventtracking.backends.tests.InMemoryBackend" } },
          processors: [{ ENGINE: "name_allowlist", OPTIONS: { whitelist: ["edx.course.enrollment.activated"] } }],
        },
      },
    },
  }, { logger });
  const logs = (tracker.getBackend("tracking_logs") as RoutingBackend).backends.get("logger") as LoggerBackend;
  assert.ok(logs instanceof LoggerBackend);
  assert.equal(logs.maxEventSize, 50000);
  assert.equal(logs.name, "tracking");
  const memory = (tracker.getBackend("segmentio") as RoutingBackend).backends.get("memory") as InMemoryBackend;
  const original = console.info;
  console.info = () => {};
  try {
    tracker.emit("edx.course.enrollment.activated");
    tracker.emit("edx.ui.click");
  } finally {
    console.info = original;
  }
  assert.deepEqual(memory.events.map((e) => e.name), ["edx.course.enrollment.activated"]);
});

Deno.test("createTracker() passes the spec's path to an engine, and its engines to this call only", () => {
  const paths: string[] = [];
  const recorder: Engine = (_options, { path }) => {
    paths.push(path);
    return new InMemoryBackend();
  };
  const config: TrackerConfig = {
    backends: {
      queue: { ENGINE: "test.PathRecorder" },
      tree: { ENGINE: "routing", OPTIONS: { backends: { leaf: { ENGINE: "test.PathRecorder" } } } },
    },
  };
  createTracker(config, { engines: { "test.PathRecorder": recorder } });
  assert.deepEqual(paths, ["backends.queue", "backends.tree.OPTIONS.backends.leaf"]);
  // Nothing is left behind for the next call.
  configError(() => createTracker(config), /^backends\.queue: unknown ENGINE "test\.PathRecorder"/);
  configError(
    () => createTracker(config, { engines: { "test.PathRecorder": 5 as never } }),
    'backends.queue: the engine given for ENGINE "test.PathRecorder" must be a function or an object with a schema and a create method, got 5',
  );
  configError(
    () => createTracker(config, { engines: [] as never }),
    `createTracker's "engines" option must be an object of ENGINE name to engine, got Array`,
  );
  // An engine given for a built-in name replaces it in this call.
  const tracker = createTracker({ backends: { m: { ENGINE: "memory" } } }, {
    engines: { memory: () => new FakeBackendWithOptions({}) },
  });
  assert.ok(tracker.getBackend("m") instanceof FakeBackendWithOptions);
  assert.ok(createTracker({ backends: { m: { ENGINE: "memory" } } }).getBackend("m") instanceof InMemoryBackend);
});

Deno.test("createTracker() checks the OPTIONS of an engine with a schema, renaming snake_case keys once", () => {
  class Sink extends InMemoryBackend {
    constructor(readonly options: unknown) {
      super();
    }
  }
  const seen: unknown[] = [];
  const sink = defineEngine(
    v.strictObject({
      maxItems: v.optional(v.number(), 10),
      retry: v.optional(v.strictObject({ initialMs: v.number() })),
      extra: v.optional(v.record(v.string(), v.unknown())),
    }),
    (options, { path }) => {
      seen.push(path);
      return new Sink(options);
    },
  );
  const tracker = createTracker({
    backends: {
      s: { ENGINE: "app.Sink", OPTIONS: { max_items: 3, retry: { initial_ms: 1 }, extra: { keep_me: 1 } } },
    },
  }, { engines: { "app.Sink": sink } });
  // Keys the schema describes are renamed at every level; the others (a record's) are kept as written.
  assert.deepEqual((tracker.getBackend("s") as Sink).options, {
    maxItems: 3,
    retry: { initialMs: 1 },
    extra: { keep_me: 1 },
  });
  assert.deepEqual(seen, ["backends.s"]);
  // Problems are reported where they are, with the keys as written.
  configError(
    () =>
      createTracker({ backends: { s: { ENGINE: "app.Sink", OPTIONS: { retry: { initial_ms: "1" } } } } }, {
        engines: { "app.Sink": sink },
      }),
    /^backends\.s\.OPTIONS\.retry\.initial_ms: /,
  );
  configError(
    () =>
      createTracker({ backends: { s: { ENGINE: "app.Sink", OPTIONS: { retry: { initial_ms: 1, jitter: 1 } } } } }, {
        engines: { "app.Sink": sink },
      }),
    /^backends\.s\.OPTIONS\.retry\.jitter: /,
  );
});

Deno.test("createTracker() explains where the mongo ENGINE lives when its engines are not given", () => {
  configError(
    () => createTracker({ backends: { m: { ENGINE: "eventtracking.backends.mongodb.MongoBackend" } } }),
    'backends.m: the MongoDB backend lives in "@edx/event-tracking/mongo" (it keeps the driver out of the core): ' +
      "pass its engines, createTracker(config, { engines: mongoEngines() })",
  );
});

Deno.test("createTracker() explains where the segment ENGINE lives when its engines are not given", () => {
  configError(
    () => createTracker({ backends: { s: { ENGINE: "segment", OPTIONS: { write_key: "k" } } } }),
    'backends.s: the Segment backend lives in "@edx/event-tracking/segment" (it keeps the client out of the core): ' +
      "pass its engines, createTracker(config, { engines: segmentEngines(writeKey) })",
  );
});

Deno.test("createTracker() delivery hooks supply each branch's queue, bus and dead-letter sink", async () => {
  const branches: string[] = [];
  const queue = new InProcessQueue({ capacity: 7 });
  const bus = new InProcessBus();
  const deadLetter = new InMemoryBackend();
  const logger = new RecordingLogger();
  const tracker = build({
    backends: {
      caliper: { ENGINE: "async_routing", OPTIONS: { queue_size: 7, backends: { m: { ENGINE: "memory" } } } },
      xapi: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["a"], backends: { m: { ENGINE: "memory" } } } },
    },
  }, {
    logger,
    queueTransport: ({ path, backendName, queueSize }) => (branches.push(`${path} ${backendName} ${queueSize}`), queue),
    busTransport: ({ backendName }) => (branches.push(`bus ${backendName}`), bus),
    deadLetterSink: ({ backendName }) => (branches.push(`dead letters ${backendName}`), deadLetter),
  });
  assert.deepEqual(branches, ["backends.caliper caliper 7", "dead letters caliper", "bus xapi"]);
  const caliper = tracker.getBackend("caliper") as AsyncRoutingBackend;
  assert.equal(caliper.transport, queue);
  assert.equal(caliper.deadLetter, deadLetter);
  const xapi = tracker.getBackend("xapi") as EventBusBackend;
  assert.equal(xapi.transport, bus);
  assert.match(logger.warnings[0], /^backends\.xapi: this event bus is consumed elsewhere \(consume: false\)/);
  await tracker.close();
});

Deno.test("createTracker() builds regex_filter from the reference's ENGINE and snake_case options", async () => {
  const sink = new InMemoryBackend();
  const tracker = createTracker({
    processors: [{
      ENGINE: "eventtracking.processors.regex_filter.RegexFilter",
      OPTIONS: { filter_type: "allowlist", regular_expressions: ["edx\\.course\\.enrollment\\.", "problem_check$"] },
    }],
    backends: { sink: { ENGINE: "test.Capture" } },
  }, { engines: { "test.Capture": () => sink } });
  for (const name of ["edx.course.enrollment.activated", "problem_check", "problem_checkX", "edx.ui.click"]) {
    tracker.emit(name);
  }
  await tracker.close();
  assert.deepEqual(sink.events.map((e) => e.name), ["edx.course.enrollment.activated", "problem_check"]);
  configError(
    () => build({ processors: [{ ENGINE: "regex_filter", OPTIONS: { regular_expressions: "edx" } }] }),
    'processors[0].OPTIONS.regular_expressions: must be an array of strings, got "edx"',
  );
  configError(
    () => build({ processors: [{ ENGINE: "regex_filter", OPTIONS: { regular_expressions: ["("] } }] }),
    /^processors\[0\]\.OPTIONS\.regular_expressions: "\(" is not a valid Python regular expression/,
  );
});
