import assert from "node:assert/strict";
import {
  AsyncRoutingBackend,
  createTracker,
  EventBusBackend,
  ImproperlyConfigured,
  type InMemoryBackend,
  InProcessBus,
  RegexFilter,
  Tracker,
} from "@edx/event-tracking";
import {
  asyncBusBranches,
  checkEventBusTree,
  presets,
  readRedisBusSettings,
  RedisStreamsBus,
  resolvePresets,
} from "@edx/event-tracking/redis";
import { defaultCollectorConfig } from "@edx/event-tracking/deno";
import { RecordingLogger } from "../_helpers.ts";

Deno.test("presets: event-routing-backends' xAPI (65) and Caliper (26, a subset) names; Aspects' are the xAPI ones", () => {
  assert.equal(presets.erb.xapi.names.length, 65);
  assert.equal(presets.erb.caliper.names.length, 26);
  assert.ok(presets.erb.caliper.names.every((name) => presets.erb.xapi.has(name)));
  assert.deepEqual(presets.erb.names, presets.erb.xapi.names);
  assert.deepEqual(presets.aspects.names, presets.erb.xapi.names);
  assert.ok(Object.isFrozen(presets.erb.names));
  for (const name of ["edx.course.enrollment.activated", "problem_check", "edx.video.language_menu.shown"]) {
    assert.ok(presets.aspects.has(name), name);
  }
  assert.ok(!presets.erb.caliper.has("edx.forum.thread.created"));
});

Deno.test("presets work as a bus allowlist and a name_allowlist", async () => {
  const tracker = createTracker({
    backends: {
      caliper: {
        ENGINE: "routing",
        OPTIONS: { processors: [presets.erb.caliper.allowlist()], backends: { sink: { ENGINE: "memory" } } },
      },
      xapi: presets.erb.xapi.eventBus({ backends: { sink: { ENGINE: "memory" } } }),
    },
  });
  tracker.emit("problem_check");
  tracker.emit("edx.forum.thread.created");
  tracker.emit("edx.ui.click");
  await tracker.flush();
  const names = (path: string) =>
    ((tracker.getBackend(path) as unknown as { backends: ReadonlyMap<string, InMemoryBackend> }).backends.get("sink")!)
      .events
      .map((e) => e.name);
  assert.deepEqual(names("caliper"), ["problem_check"]);
  assert.deepEqual(names("xapi"), ["problem_check", "edx.forum.thread.created"]);
  await tracker.close();
});

Deno.test("presets give RegexFilter patterns that match exactly their names", () => {
  const filter = new RegexFilter({
    filterType: "allowlist",
    regularExpressions: presets.erb.caliper.regularExpressions,
  });
  assert.ok(filter.matches("problem_check"));
  assert.ok(!filter.matches("problem_checkX"));
  assert.ok(!filter.matches("problemXcheck"));
});

Deno.test("resolvePresets expands preset: names in allowlists and patterns, and names an unknown one by path", async () => {
  const config = resolvePresets({
    backends: {
      bus: { ENGINE: "event_bus", OPTIONS: { EVENT_BUS_TRACKING_LOGS: ["preset:erb", "my.event"] } },
      branch: {
        ENGINE: "routing",
        OPTIONS: {
          processors: [
            {
              ENGINE: "regex_filter",
              OPTIONS: { filter_type: "allowlist", regular_expressions: ["preset:erb.caliper"] },
            },
            { ENGINE: "name_allowlist", OPTIONS: { whitelist: ["preset:aspects"] } },
          ],
          backends: { m: { ENGINE: "memory" } },
        },
      },
    },
  });
  const bus = config.backends!.bus.OPTIONS!.EVENT_BUS_TRACKING_LOGS as string[];
  assert.equal(bus.length, 66);
  assert.equal(bus.at(-1), "my.event");
  const processors = config.backends!.branch.OPTIONS!.processors as { OPTIONS: Record<string, string[]> }[];
  assert.equal(processors[0].OPTIONS.regular_expressions.length, 26);
  assert.equal(processors[0].OPTIONS.regular_expressions[0], "edx\\.course\\.enrollment\\.activated$");
  assert.equal(processors[1].OPTIONS.whitelist.length, 65);
  const { branch: _, ...withoutRegex } = config.backends!;
  const tracker = createTracker({ backends: withoutRegex });
  await tracker.close();
  assert.throws(
    () =>
      resolvePresets({
        backends: { bus: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["preset:xapi"] } } },
      }),
    (error: ImproperlyConfigured) =>
      error instanceof ImproperlyConfigured && error.path === "backends.bus.OPTIONS.event_bus_tracking_logs[0]" &&
      /unknown preset "preset:xapi" \(presets: preset:erb, preset:erb\.xapi, preset:erb\.caliper, preset:aspects\)/
        .test(
          error.message,
        ),
  );
});

Deno.test("asyncBusBranches puts root and routing-level buses under async routers, keeping their topics", async () => {
  const config = asyncBusBranches({
    backends: {
      ...defaultCollectorConfig("data").backends,
      nested: {
        ENGINE: "routing",
        OPTIONS: { backends: { xapi: { ENGINE: "eventtracking.backends.event_bus.EventBusRoutingBackend" } } },
      },
      queued: { ENGINE: "async_routing", OPTIONS: { backends: { b: { ENGINE: "event_bus" } } } },
    },
  });
  assert.equal(config.backends!.bus.ENGINE, "async_routing");
  assert.equal(config.backends!.tracking_logs.ENGINE, "async_routing");
  const nested = config.backends!.nested.OPTIONS!.backends as Record<string, { ENGINE: string }>;
  assert.equal(nested.xapi.ENGINE, "async_routing");
  const queued = config.backends!.queued.OPTIONS!.backends as Record<string, { ENGINE: string }>;
  assert.equal(queued.b.ENGINE, "event_bus");
  const dataDir = await Deno.makeTempDir();
  const tracker = createTracker(config, { dataDir, logger: new RecordingLogger() });
  const bus = tracker.getBackend("bus") as AsyncRoutingBackend;
  assert.ok(bus instanceof AsyncRoutingBackend);
  assert.equal((bus.backends.get("bus") as EventBusBackend).backendName, "bus");
  await tracker.close();
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("checkEventBusTree refuses two event-bus backends publishing one name to one stream", async () => {
  const logger = new RecordingLogger();
  const bus = new RedisStreamsBus({ url: "redis://127.0.0.1:1/0" });
  const build = (backends: Record<string, unknown>, transport = () => bus) =>
    createTracker({ backends: backends as never }, { busTransport: transport, logger });

  // event-routing-backends issue 410: the xAPI and Caliper branches on one stream.
  const twice = build({ xapi: presets.erb.xapi.eventBus(), caliper: presets.erb.caliper.eventBus() });
  assert.throws(() => checkEventBusTree(twice), (error: Error) => {
    assert.ok(error instanceof ImproperlyConfigured);
    assert.match(
      error.message,
      /^root\/xapi: publishes to redis:\/\/127\.0\.0\.1:1\/0 analytics as root\/caliper does, so every consumer would receive 26 event name\(s\): edx\.course\.enrollment\.activated, .*, … twice/,
    );
    return true;
  });
  await twice.close();

  // "*" overlaps everything; a disabled backend publishes nothing.
  const star = build({
    all: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["*"] } },
    xapi: presets.erb.xapi.eventBus(),
  });
  assert.throws(() => checkEventBusTree(star), /65 event name/);
  await star.close();
  const disabled = build({
    all: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["*"], enabled: false } },
    xapi: presets.erb.xapi.eventBus(),
  });
  checkEventBusTree(disabled);
  await disabled.close();

  // Disjoint names on one stream, or the same names on distinct streams, are fine.
  const disjoint = build({
    a: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["a"] } },
    b: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["b"] } },
  });
  checkEventBusTree(disjoint);
  await disjoint.close();
  const perTopic = new RedisStreamsBus({ url: "redis://127.0.0.1:1/0", topic: (busTopic) => busTopic });
  const split = build({ xapi: presets.erb.xapi.eventBus(), caliper: presets.erb.caliper.eventBus() }, () => perTopic);
  checkEventBusTree(split);
  await split.close();
  // Another database of the same server is another stream.
  const otherDb = new RedisStreamsBus({ url: "redis://127.0.0.1:1/1" });
  let n = 0;
  const twoDbs = build(
    { xapi: presets.erb.xapi.eventBus(), caliper: presets.erb.caliper.eventBus() },
    () => n++ === 0 ? bus : otherDb,
  );
  checkEventBusTree(twoDbs);
  await twoDbs.close();

  // The same check holds for one in-process bus shared by two backends of the same topic.
  const shared = new InProcessBus();
  const tracker = new Tracker({
    backends: {
      one: new EventBusBackend({ backendName: "t", eventBusTrackingLogs: ["x"], transport: shared, consume: false }),
      two: new EventBusBackend({
        backendName: "t",
        eventBusTrackingLogs: ["x", "y"],
        transport: shared,
        consume: false,
      }),
    },
  });
  assert.throws(
    () => checkEventBusTree(tracker),
    /root\/two: publishes to topic "t" of the same bus as root\/one does/,
  );
  await tracker.close();
  await Promise.all([bus.close(), perTopic.close(), otherDb.close()]);
});

Deno.test("checkEventBusTree warns about a shared stream outside an async branch", async () => {
  const logger = new RecordingLogger();
  const bus = new RedisStreamsBus({ url: "redis://127.0.0.1:1" });
  const config = { backends: { bus: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["*"] } } } };
  const bare = createTracker(config, { busTransport: () => bus, logger });
  checkEventBusTree(bare, { logger });
  assert.match(
    logger.warnings.at(-1)!,
    /^root\/bus: publishes to redis:\/\/127\.0\.0\.1:1 analytics outside an async branch/,
  );
  await bare.close();
  const dataDir = await Deno.makeTempDir();
  const warned = logger.warnings.length;
  const wrapped = createTracker(asyncBusBranches(config), { busTransport: () => bus, logger, dataDir });
  checkEventBusTree(wrapped, { logger });
  assert.equal(logger.warnings.length, warned);
  await wrapped.close();
  await bus.close();
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("readRedisBusSettings reads Open edX's setting names and checks them", () => {
  assert.equal(readRedisBusSettings({ EVENT_BUS_REDIS_CONNECTION_URL: "" }), undefined);
  assert.deepEqual(
    readRedisBusSettings({
      EVENT_BUS_REDIS_CONNECTION_URL: "rediss://u:p@redis.example:6380/2",
      EVENT_BUS_TOPIC_PREFIX: "prod",
      EVENT_BUS_REDIS_STREAM_MAX_LEN: "50000",
      EVENTS_SERVICE_NAME: "collector",
    }),
    { url: "rediss://u:p@redis.example:6380/2", topicPrefix: "prod", maxLen: 50000, serviceName: "collector" },
  );
  assert.throws(
    () => readRedisBusSettings({ EVENT_BUS_REDIS_CONNECTION_URL: "redis://r", EVENT_BUS_REDIS_STREAM_MAX_LEN: "-1" }),
    /'EVENT_BUS_REDIS_STREAM_MAX_LEN' must be a non-negative integer: current value is -1/,
  );
  assert.throws(
    () => readRedisBusSettings({ EVENT_BUS_REDIS_CONNECTION_URL: "http://u:secret@r" }),
    (error: Error) => error instanceof RangeError && !error.message.includes("secret"),
  );
});
