import assert from "node:assert/strict";
import {
  type AsyncRoutingBackend,
  type Backend,
  createTracker,
  type EventBusBackend,
  ImproperlyConfigured,
  InMemoryBackend,
  InProcessBus,
  InProcessQueue,
  LoggerBackend,
  NameAllowlistProcessor,
  registerEngine,
  RoutingBackend,
} from "../mod.ts";
import { RecordingLogger } from "./_helpers.ts";

class FakeBackendWithOptions implements Backend {
  constructor(readonly options: Record<string, unknown>) {}
  send() {}
}
const nop = () => undefined;
registerEngine("test.FakeBackendWithOptions", (options) => new FakeBackendWithOptions(options));
registerEngine("test.NopProcessor", () => nop);
registerEngine("test.NotABackend", () => ({ hello: "world" }) as never);
registerEngine("test.Throws", () => {
  throw new RangeError("constructor refused");
});

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
  const tracker = createTracker({
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
    () => createTracker({ backends: { no_engine: { OPTIONS: {} } as never } }),
    /^backends\.no_engine: must be an engine spec with an ENGINE/,
  );
  configError(
    () => createTracker({ backends: { empty: { ENGINE: "" } } }),
    'backends.empty: ENGINE must be a non-empty string, got ""',
  );
  configError(
    () => createTracker({ backends: { x: { ENGINE: "foo.BarBackend" } } }),
    /^backends\.x: unknown ENGINE "foo\.BarBackend" \(known: .*routing.*\)/,
  );
  configError(
    () => createTracker({ backends: { x: { ENGINE: "BarBackend" } } }),
    /^backends\.x: unknown ENGINE "BarBackend"/,
  );
  configError(
    () => createTracker({ backends: { x: { ENGINE: 5 as never } } }),
    /^backends\.x: ENGINE must be a non-empty string, got 5/,
  );
});

Deno.test("createTracker() names the path of an error deep in the tree", () => {
  configError(
    () =>
      createTracker({
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
    () => createTracker({ backends: { a: { ENGINE: "routing", OPTIONS: { backends: { b: { OPTIONS: {} } } } } } }),
    /^backends\.a\.OPTIONS\.backends\.b: must be an engine spec with an ENGINE/,
  );
});

// spec §10.16 test_configure_class_not_a_backend, test_missing_processor_engine
Deno.test("createTracker() refuses an ENGINE that builds no backend, or a processor spec without ENGINE", () => {
  configError(
    () => createTracker({ backends: { x: { ENGINE: "test.NotABackend" } } }),
    "backends.x: is not a backend: its ENGINE built a Object",
  );
  configError(
    () => createTracker({ processors: [{} as never] }),
    "processors[0]: must be an engine spec with an ENGINE, got {}",
  );
  configError(
    () => createTracker({ processors: ["name_allowlist" as never] }),
    /^processors\[0\]: must be an engine spec/,
  );
  configError(
    () => createTracker({ backends: { x: { ENGINE: "name_allowlist", OPTIONS: { allowlist: [] } } } }),
    /^backends\.x: is not a backend/,
  );
});

Deno.test("createTracker() wraps an engine's own error with the path", () => {
  configError(
    () => createTracker({ backends: { x: { ENGINE: "test.Throws" } } }),
    'backends.x: cannot create ENGINE "test.Throws": constructor refused',
  );
  configError(
    () => createTracker({ processors: [{ ENGINE: "name_allowlist", OPTIONS: { whitelist: "foobar" } }] }),
    /^processors\[0\]: cannot create ENGINE "name_allowlist": The NameAllowlistProcessor must be passed/,
  );
});

Deno.test("createTracker() refuses unknown options, keys and shapes", () => {
  configError(
    () => createTracker({ backends: { log: { ENGINE: "logger", OPTIONS: { max_size: 5 } } } }),
    /^backends\.log\.OPTIONS: unknown option "maxSize" for ENGINE "logger"/,
  );
  configError(
    () => createTracker({ backends: { log: { ENGINE: "logger", EXTRA: 1 } as never } }),
    /^backends\.log: unknown key "EXTRA"/,
  );
  configError(
    () => createTracker({ backends: { log: { ENGINE: "logger", OPTIONS: [] as never } } }),
    "backends.log: OPTIONS must be an object, got Array",
  );
  configError(() => createTracker({ backends: [] as never }), /^backends: must be an object/);
  configError(() => createTracker({ processors: {} as never }), /^processors: must be an array/);
  configError(() => createTracker({ backend: {} } as never), /^backend: unknown key "backend"/);
  configError(
    () => createTracker({ backends: { log: { ENGINE: "logger", OPTIONS: { max_event_size: 1, maxEventSize: 2 } } } }),
    /option "maxEventSize" is given twice/,
  );
});

// spec §10.16 test_configure_nested_backends
Deno.test("createTracker() builds nested routers with their own processors", () => {
  const tracker = createTracker({
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
  const tracker = createTracker({
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
  const tracker = createTracker({
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

Deno.test("registerEngine() passes the spec's path to the factory and refuses bad arguments", () => {
  const paths: string[] = [];
  registerEngine("test.PathRecorder", (_options, { path }) => {
    paths.push(path);
    return new InMemoryBackend();
  });
  createTracker({
    backends: {
      queue: { ENGINE: "test.PathRecorder" },
      tree: { ENGINE: "routing", OPTIONS: { backends: { leaf: { ENGINE: "test.PathRecorder" } } } },
    },
  });
  assert.deepEqual(paths, ["backends.queue", "backends.tree.OPTIONS.backends.leaf"]);
  assert.throws(() => registerEngine("", () => new InMemoryBackend()), TypeError);
  assert.throws(() => registerEngine("x", 5 as never), TypeError);
});

Deno.test("createTracker() explains where the mongo ENGINE lives when its module is not imported", async () => {
  // A fresh process: in this one another test file may have imported the module already.
  const script = `
    import { createTracker } from "${new URL("../mod.ts", import.meta.url)}";
    try { createTracker({ backends: { m: { ENGINE: "mongo" } } }); } catch (error) { console.log(error.message); }`;
  const output = await new Deno.Command(Deno.execPath(), { args: ["eval", script], stdout: "piped", stderr: "inherit" })
    .output();
  assert.match(
    new TextDecoder().decode(output.stdout),
    /^backends\.m: the MongoDB backend lives in "@edx\/event-tracking\/mongo".*import that module before createTracker\(\)/,
  );
});

Deno.test("createTracker() delivery hooks supply each branch's queue, bus and dead-letter sink", async () => {
  const branches: string[] = [];
  const queue = new InProcessQueue({ capacity: 7 });
  const bus = new InProcessBus();
  const deadLetter = new InMemoryBackend();
  const logger = new RecordingLogger();
  const tracker = createTracker({
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
  registerEngine("test.Capture", () => sink);
  const tracker = createTracker({
    processors: [{
      ENGINE: "eventtracking.processors.regex_filter.RegexFilter",
      OPTIONS: { filter_type: "allowlist", regular_expressions: ["edx\\.course\\.enrollment\\.", "problem_check$"] },
    }],
    backends: { sink: { ENGINE: "test.Capture" } },
  });
  for (const name of ["edx.course.enrollment.activated", "problem_check", "problem_checkX", "edx.ui.click"]) {
    tracker.emit(name);
  }
  await tracker.close();
  assert.deepEqual(sink.events.map((e) => e.name), ["edx.course.enrollment.activated", "problem_check"]);
  configError(
    () => createTracker({ processors: [{ ENGINE: "regex_filter", OPTIONS: { regular_expressions: "edx" } }] }),
    /^processors\[0\]: .*/,
  );
  configError(
    () => createTracker({ processors: [{ ENGINE: "regex_filter", OPTIONS: { regular_expressions: ["("] } }] }),
    /^processors\[0\]: .*"\("/,
  );
});
