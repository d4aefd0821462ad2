/**
 * Builds a tracker from the reference's `EVENT_TRACKING_BACKENDS` /
 * `EVENT_TRACKING_PROCESSORS` settings, given as JSON.
 *
 * Nothing happens at import: the built-in engines are a fixed table that
 * {@linkcode createTracker} reads when a configuration names them, and other
 * engines (such as `mongo`, from `@edx/event-tracking/mongo`) are passed to
 * the call that uses them, never registered globally.
 *
 * @module
 */

import * as v from "valibot";
import type { Backend } from "./backend.ts";
import { asyncRoutingOptions } from "./backends/async_routing.ts";
import { AsyncRoutingBackend } from "./backends/async_routing.ts";
import { EventBusBackend, eventBusOptions } from "./backends/event_bus.ts";
import { LoggerBackend, loggerOptions } from "./backends/logger.ts";
import { InMemoryBackend } from "./backends/memory.ts";
import { consoleLogger, type DiagnosticLogger, typeName } from "./diagnostics.ts";
import { ImproperlyConfigured } from "./errors.ts";
import type { Processor } from "./processor.ts";
import { nameAllowlistOptions, NameAllowlistProcessor } from "./processors/name_allowlist.ts";
import { redactOptions, RedactProcessor } from "./processors/redact.ts";
import { RegexFilter, regexFilterOptions } from "./processors/regex_filter.ts";
import { LegacyFieldMappingProcessor, PrefixedEventProcessor, shimOptions } from "./processors/shim.ts";
import { RoutingBackend, routingOptions } from "./routing.ts";
import { EventCatalog, type EventCatalogJSON } from "./catalog.ts";
import { SchemaProcessor, schemaProcessorOptions } from "./processors/schema.ts";
import { Tracker } from "./tracker.ts";
import type { BusTransport, QueueTransport } from "./transports/transport.ts";
import {
  BACKEND_SLOT,
  isPlainObject,
  type Issue,
  issuePath,
  options as optionsOf,
  PROCESSOR_SLOT,
  show,
  without,
} from "./_schema.ts";

/** One object to build: the reference's `{ ENGINE, OPTIONS }` dict. */
export interface EngineSpec {
  /** A short engine name (`routing`, `logger`, …) or the reference's dotted Python path. */
  ENGINE: string;
  /** Constructor options; snake_case keys are accepted. Nested specs are built first. */
  OPTIONS?: Record<string, unknown>;
}

/** A whole tracker: the reference's two settings side by side. */
export interface TrackerConfig {
  /** `EVENT_TRACKING_BACKENDS`: the root backends by name. */
  backends?: Record<string, EngineSpec>;
  /** `EVENT_TRACKING_PROCESSORS`: the root processors, in order. */
  processors?: EngineSpec[];
  /**
   * The tracker's event catalog, in its JSON form (`{ "events": { name: definition } }`)
   * or as an {@linkcode EventCatalog}: see `TrackerOptions.catalog`. @default none
   */
  catalog?: EventCatalogJSON | EventCatalog;
}

/** A branch that needs a transport or a dead-letter sink: where it is, and its name. */
export interface BranchInfo {
  /** Its place in the configuration, e.g. `backends.caliper`: stable across processes and isolates. */
  path: string;
  /** Its `backendName` (by default the last segment of its path). */
  backendName: string;
}

/**
 * How a runtime provides the delivery parts of a tree built from JSON, so the
 * same configuration runs in-process (the defaults) or on Cloudflare Queues
 * and a Durable Object.
 */
export interface DeliveryHooks {
  /** Makes the queue of each `async_routing` branch. @default an in-process queue of `queue_size` */
  queueTransport?: (branch: BranchInfo & { queueSize?: number }) => QueueTransport;
  /**
   * Makes the bus of each `event_bus` branch. Branches on a provided bus only
   * publish unless their `consume` option says otherwise. @default an in-process bus
   */
  busTransport?: (branch: BranchInfo) => BusTransport;
  /** Makes the default dead-letter sink of each `async_routing` branch. @default a JSONL file under `<dataDir>/dead-letters` */
  deadLetterSink?: (branch: BranchInfo) => Backend;
}

/** What an engine receives besides its options. */
export interface EngineContext extends DeliveryHooks {
  /** Where the spec is in the configuration, e.g. `backends.queue`: stable across processes. */
  path: string;
  /** The tracker's diagnostics logger. */
  logger: DiagnosticLogger;
  /** Where engines keep files by default (dead letters go under `<dataDir>/dead-letters`). */
  dataDir: string;
}

/**
 * An engine as a plain function: it receives the spec's OPTIONS with their
 * top-level keys camelCased and nested specs already built, unchecked.
 * Prefer an {@linkcode EngineDefinition}, whose schema checks them.
 */
export type EngineFactory = (options: Record<string, unknown>, context: EngineContext) => Backend | Processor;

/**
 * A synchronous [valibot](https://valibot.dev) schema whose output is
 * `TOutput`: any `v.GenericSchema`, such as `v.strictObject({ … })`. Only
 * what {@linkcode defineEngine} needs to infer `TOutput` is spelt here.
 */
export interface OptionsSchema<TOutput = unknown> {
  /** valibot's mark of a schema. */
  readonly kind: "schema";
  /** `false`: OPTIONS are checked synchronously. */
  readonly async: false;
  /** The types valibot infers; absent at run time. */
  readonly "~types"?: { readonly output: TOutput } | undefined;
}

/**
 * An engine with a valibot schema of its OPTIONS. `createTracker` renames
 * snake_case keys to the schema's camelCase ones (at every level the schema
 * describes as an object), builds nested specs, checks the result against
 * the schema, and reports a problem at its path in the configuration, as
 * written (`backends.x.OPTIONS.max_size: unknown option (expected: …)`).
 * `create` receives the schema's output: checked, with its defaults.
 */
export interface EngineDefinition<TOptions = unknown> {
  /** The schema of the OPTIONS, with camelCase keys; a `v.strictObject` reports unknown keys. */
  readonly schema: OptionsSchema<TOptions>;
  /** Builds the backend or processor from the schema's output. */
  create(options: TOptions, context: EngineContext): Backend | Processor;
}

/** An engine: a plain function, or a schema and a `create` method. */
export type Engine = EngineFactory | EngineDefinition;

/** Options of {@linkcode createTracker}. */
export interface CreateTrackerOptions extends DeliveryHooks {
  /** Passed to the tracker and to every engine. @default consoleLogger */
  logger?: DiagnosticLogger;
  /** Where engines keep files by default. @default "data" */
  dataDir?: string;
  /**
   * Engines besides the built-in ones, by the ENGINE names that select them
   * (short names or dotted paths); for this call only. A name that is also
   * built in selects the engine given here. @default {}
   */
  engines?: Readonly<Record<string, Engine>>;
}

/** The ENGINE names of `MongoBackend`, whose engines `mongoEngines()` of `@edx/event-tracking/mongo` gives. */
export const MONGO_ENGINE_NAMES: readonly string[] = ["mongo", "eventtracking.backends.mongodb.MongoBackend"];
/** The ENGINE names of `SegmentBackend`, whose engines `segmentEngines()` of `@edx/event-tracking/segment` gives. */
export const SEGMENT_ENGINE_NAMES: readonly string[] = ["segment", "eventtracking.backends.segment.SegmentBackend"];

// Engines that live in an entry of their own, to keep a third-party client out of the core: named in
// a configuration without being passed, they get an error that says where they are.
const ELSEWHERE = [
  { names: MONGO_ENGINE_NAMES, what: "MongoDB backend", client: "driver", entry: "mongo", engines: "mongoEngines()" },
  {
    names: SEGMENT_ENGINE_NAMES,
    what: "Segment backend",
    client: "client",
    entry: "segment",
    engines: "segmentEngines(writeKey)",
  },
];

/**
 * Pairs a schema with the function that builds the engine, so that `create`
 * is typed by the schema's output.
 *
 * @example An engine of your own, with its options checked
 * ```ts
 * import { createTracker, defineEngine, ImproperlyConfigured, InMemoryBackend } from "@edx/event-tracking";
 * import * as v from "valibot";
 * import assert from "node:assert/strict";
 *
 * class Capture extends InMemoryBackend {
 *   constructor(readonly label: string) {
 *     super();
 *   }
 * }
 * const capture = defineEngine(
 *   v.strictObject({ label: v.optional(v.string(), "capture") }),
 *   (options) => new Capture(options.label),
 * );
 * const tracker = createTracker(
 *   { backends: { sink: { ENGINE: "myapp.Capture", OPTIONS: { label: "audit" } } } },
 *   { engines: { "myapp.Capture": capture } },
 * );
 * assert.equal((tracker.getBackend("sink") as Capture).label, "audit");
 * assert.throws(
 *   () =>
 *     createTracker(
 *       { backends: { sink: { ENGINE: "myapp.Capture", OPTIONS: { lable: "x" } } } },
 *       { engines: { "myapp.Capture": capture } },
 *     ),
 *   ImproperlyConfigured,
 * );
 * ```
 */
/* @__NO_SIDE_EFFECTS__ */
export function defineEngine<TOptions>(
  schema: OptionsSchema<TOptions>,
  create: (options: TOptions, context: EngineContext) => Backend | Processor,
): EngineDefinition<TOptions> {
  return { schema, create };
}

function lastSegment(path: string): string {
  return path.slice(path.lastIndexOf(".") + 1).replace(/\[\d+\]$/, "");
}

// The built-in engines, each made when a configuration first names it in a call.

function routingEngine() {
  return defineEngine(
    optionsOf(without(routingOptions.entries, "logger")),
    (options, { logger }) => new RoutingBackend({ ...options, logger }),
  );
}

function loggerEngine() {
  return defineEngine(
    optionsOf(without(loggerOptions.entries, "write", "logger")),
    (options, { logger }) => new LoggerBackend({ ...options, logger }),
  );
}

function asyncRoutingEngine() {
  return defineEngine(
    optionsOf(without(asyncRoutingOptions.entries, "transport", "deadLetterDir", "logger", "random")),
    (options, context) => {
      const { path, logger, dataDir } = context;
      const branch = { path, backendName: options.backendName || lastSegment(path) };
      const transport = context.queueTransport?.({ ...branch, queueSize: options.queueSize });
      return new AsyncRoutingBackend({
        ...options,
        backendName: branch.backendName,
        deadLetter: options.deadLetter ?? context.deadLetterSink?.(branch),
        deadLetterDir: `${dataDir}/dead-letters`,
        transport,
        queueSize: transport === undefined ? options.queueSize : undefined,
        logger,
      });
    },
  );
}

const SAME_OPTION = "are the same option: give one";

function eventBusEngine() {
  const { enabled, eventBusTrackingLogs } = eventBusOptions.entries;
  return defineEngine(
    v.pipe(
      optionsOf({
        ...without(eventBusOptions.entries, "transport", "logger"),
        // The reference's setting names.
        SEND_TRACKING_EVENT_EMITTED_SIGNAL: enabled,
        EVENT_BUS_TRACKING_LOGS: eventBusTrackingLogs,
      }),
      v.check(
        (o) => o.SEND_TRACKING_EVENT_EMITTED_SIGNAL === undefined || o.enabled === undefined,
        `"SEND_TRACKING_EVENT_EMITTED_SIGNAL" and "enabled" ${SAME_OPTION}`,
      ),
      v.check(
        (o) => o.EVENT_BUS_TRACKING_LOGS === undefined || o.eventBusTrackingLogs === undefined,
        `"EVENT_BUS_TRACKING_LOGS" and "eventBusTrackingLogs" ${SAME_OPTION}`,
      ),
    ),
    (options, context) => {
      const { path, logger } = context;
      const { SEND_TRACKING_EVENT_EMITTED_SIGNAL, EVENT_BUS_TRACKING_LOGS, ...rest } = options;
      const backendName = rest.backendName || lastSegment(path);
      const transport = context.busTransport?.({ path, backendName });
      const consume = rest.consume ?? transport === undefined;
      if (!consume && (rest.backends !== undefined || rest.processors !== undefined)) {
        logger.warn(
          `${path}: this event bus is consumed elsewhere (consume: false); its backends and processors run only where it is consumed`,
        );
      }
      return new EventBusBackend({
        ...rest,
        enabled: SEND_TRACKING_EVENT_EMITTED_SIGNAL ?? rest.enabled,
        eventBusTrackingLogs: EVENT_BUS_TRACKING_LOGS ?? rest.eventBusTrackingLogs,
        backendName,
        transport,
        consume,
        logger,
      });
    },
  );
}

function memoryEngine() {
  return defineEngine(optionsOf({}), () => new InMemoryBackend());
}

function nameAllowlistEngine() {
  return defineEngine(nameAllowlistOptions, (options) => new NameAllowlistProcessor(options));
}

function regexFilterEngine() {
  return defineEngine(regexFilterOptions, (options) => new RegexFilter(options));
}

function redactEngine() {
  return defineEngine(redactOptions, (options) => new RedactProcessor(options));
}

function schemaEngine() {
  return defineEngine(schemaProcessorOptions, (options) => new SchemaProcessor(options));
}

function legacyFieldMappingEngine() {
  return defineEngine(shimOptions, (options) => new LegacyFieldMappingProcessor(options));
}

function prefixedEventEngine() {
  return defineEngine(shimOptions, (options) => new PrefixedEventProcessor(options));
}

/**
 * The built-in engines by ENGINE name (short, then the reference's dotted
 * paths): fixed, and made only when a configuration names them.
 */
const BUILT_IN: Readonly<Record<string, () => EngineDefinition>> = {
  routing: routingEngine,
  logger: loggerEngine,
  async_routing: asyncRoutingEngine,
  event_bus: eventBusEngine,
  memory: memoryEngine,
  name_allowlist: nameAllowlistEngine,
  regex_filter: regexFilterEngine,
  redact: redactEngine,
  schema: schemaEngine,
  legacy_field_mapping: legacyFieldMappingEngine,
  prefixed_event: prefixedEventEngine,
  "eventtracking.backends.routing.RoutingBackend": routingEngine,
  "eventtracking.backends.logger.LoggerBackend": loggerEngine,
  "eventtracking.backends.async_routing.AsyncRoutingBackend": asyncRoutingEngine,
  "eventtracking.backends.event_bus.EventBusRoutingBackend": eventBusEngine,
  "eventtracking.backends.event_bus.EventBusBackend": eventBusEngine,
  "eventtracking.backends.tests.InMemoryBackend": memoryEngine,
  "eventtracking.processors.whitelist.NameWhitelistProcessor": nameAllowlistEngine,
  "eventtracking.processors.regex_filter.RegexFilter": regexFilterEngine,
  "track.shim.LegacyFieldMappingProcessor": legacyFieldMappingEngine,
  "track.shim.PrefixedEventProcessor": prefixedEventEngine,
};

/** The state of one `createTracker` call. */
interface Build {
  readonly engines: Readonly<Record<string, Engine>>;
  readonly resolved: Map<string, Engine>;
  readonly context: Omit<EngineContext, "path">;
  /** What engines built, so that a non-backend they return is told apart from a spec without ENGINE. */
  readonly built: WeakSet<object>;
  /** The keys renamed to camelCase, by the object holding them: camelCase → as written. */
  readonly renames: WeakMap<object, Map<string, string>>;
}

function camelCase(key: string): string {
  return key.replace(/_+([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function isEngine(value: unknown): value is Engine {
  if (typeof value === "function") return true;
  const definition = value as { create?: unknown; schema?: { "~run"?: unknown } } | null;
  return typeof definition?.create === "function" && typeof definition.schema?.["~run"] === "function";
}

function knownEngines(build: Build): string {
  const names = [...Object.keys(BUILT_IN), ...Object.keys(build.engines)].filter((name) => !name.includes("."));
  return [...new Set(names)].join(", ");
}

function resolve(name: string, path: string, build: Build): Engine {
  let engine = build.resolved.get(name);
  if (engine !== undefined) return engine;
  if (Object.hasOwn(build.engines, name)) {
    engine = build.engines[name];
    if (!isEngine(engine)) {
      throw new ImproperlyConfigured(
        `the engine given for ENGINE "${name}" must be a function or an object with a schema and a create method, got ${
          show(engine)
        }`,
        path,
      );
    }
  } else if (Object.hasOwn(BUILT_IN, name)) {
    engine = BUILT_IN[name]();
  } else {
    const elsewhere = ELSEWHERE.find((entry) => entry.names.includes(name));
    if (elsewhere !== undefined) {
      throw new ImproperlyConfigured(
        `the ${elsewhere.what} lives in "@edx/event-tracking/${elsewhere.entry}" (it keeps the ${elsewhere.client} ` +
          `out of the core): pass its engines, createTracker(config, { engines: ${elsewhere.engines} })`,
        path,
      );
    }
    throw new ImproperlyConfigured(
      `unknown ENGINE "${name}" (known: ${
        knownEngines(build)
      }, or their reference dotted paths; pass others in createTracker's "engines" option)`,
      path,
    );
  }
  build.resolved.set(name, engine);
  return engine;
}

/** The object entries a schema describes, through `optional`, `nullable` and the like. */
function entriesOf(schema: unknown): Record<string, unknown> | undefined {
  let current = schema as { wrapped?: unknown; entries?: Record<string, unknown> } | undefined;
  while (current?.wrapped !== undefined) current = current.wrapped as typeof current;
  return typeof current?.entries === "object" ? current.entries : undefined;
}

/**
 * Prepares a value of OPTIONS: builds nested specs (`{ ENGINE, … }`), and
 * renames snake_case keys to the camelCase ones of the schema, where it
 * describes an object. Paths use the keys as written.
 */
function prepare(schema: unknown, value: unknown, path: string, build: Build): unknown {
  if (Array.isArray(value)) return value.map((item, i) => prepare(undefined, item, `${path}[${i}]`, build));
  if (!isPlainObject(value)) return value;
  if ("ENGINE" in value) return instantiate(value, path, build);
  const entries = entriesOf(schema);
  const out: Record<string, unknown> = {};
  const renamed = new Map<string, string>();
  for (const [key, item] of Object.entries(value)) {
    let name = key;
    if (entries !== undefined && !Object.hasOwn(entries, key) && Object.hasOwn(entries, camelCase(key))) {
      name = camelCase(key);
    }
    if (Object.hasOwn(out, name)) {
      throw new ImproperlyConfigured(
        `the same option as "${renamed.get(name) ?? name}": give one`,
        `${path}.${key}`,
      );
    }
    out[name] = prepare(entries?.[name], item, `${path}.${key}`, build);
    if (name !== key) renamed.set(name, key);
  }
  if (renamed.size > 0) build.renames.set(out, renamed);
  return out;
}

/** The OPTIONS of a plain-function engine: top-level keys camelCased, nested specs built. */
function prepareLoose(raw: Record<string, unknown>, path: string, build: Build): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(raw)) {
    const name = camelCase(key);
    if (Object.hasOwn(out, name)) {
      throw new ImproperlyConfigured(`the same option as another spelling of "${name}": give one`, `${path}.${key}`);
    }
    out[name] = prepare(undefined, item, `${path}.${key}`, build);
  }
  return out;
}

/** An issue of a schema, as a configuration error at its path, with keys as written. */
function configError(issue: Issue, root: string, build: Build): ImproperlyConfigured {
  const path = issuePath(issue, root, (key, input) => {
    const renames = typeof input === "object" && input !== null ? build.renames.get(input) : undefined;
    return renames?.get(key) ?? key;
  });
  const slot = issue.expected === BACKEND_SLOT ? "a backend" : issue.expected === PROCESSOR_SLOT ? "a processor" : "";
  if (slot !== "") return engineSlotError(issue.input, slot, path, build);
  return new ImproperlyConfigured(issue.message, path);
}

function engineSlotError(value: unknown, kind: string, path: string, build: Build): ImproperlyConfigured {
  return typeof value === "object" && value !== null && build.built.has(value) ||
      typeof value === "function" && build.built.has(value)
    ? new ImproperlyConfigured(`is not ${kind}: its ENGINE built a ${typeName(value)}`, path)
    : new ImproperlyConfigured(`must be an engine spec with an ENGINE, got ${show(value)}`, path);
}

function within(error: ImproperlyConfigured, path: string): boolean {
  return error.path === path || error.path.startsWith(`${path}.`) || error.path.startsWith(`${path}[`);
}

function instantiate(spec: Record<string, unknown>, path: string, build: Build): Backend | Processor {
  for (const key of Object.keys(spec)) {
    if (key !== "ENGINE" && key !== "OPTIONS") {
      throw new ImproperlyConfigured(`unknown key "${key}" (an engine spec has only ENGINE and OPTIONS)`, path);
    }
  }
  const name = spec.ENGINE;
  if (typeof name !== "string" || name === "") {
    throw new ImproperlyConfigured(`ENGINE must be a non-empty string, got ${show(name)}`, path);
  }
  const engine = resolve(name, path, build);
  const raw = spec.OPTIONS ?? {};
  if (!isPlainObject(raw)) throw new ImproperlyConfigured(`OPTIONS must be an object, got ${typeName(raw)}`, path);
  const context: EngineContext = { ...build.context, path };
  let result: Backend | Processor;
  try {
    if (typeof engine === "function") {
      result = engine(prepareLoose(raw, `${path}.OPTIONS`, build), context);
    } else {
      const prepared = prepare(engine.schema, raw, `${path}.OPTIONS`, build);
      const checked = v.safeParse(engine.schema as v.GenericSchema, prepared, { abortEarly: true });
      if (!checked.success) throw configError(checked.issues[0], `${path}.OPTIONS`, build);
      result = engine.create(checked.output, context);
    }
  } catch (error) {
    if (error instanceof ImproperlyConfigured) {
      if (within(error, path)) throw error;
      // A constructor's own check (`LoggerBackend.path: …`), or an engine's error without a path.
      throw new ImproperlyConfigured(error.message, path, { cause: error });
    }
    throw new ImproperlyConfigured(
      `cannot create ENGINE "${name}": ${error instanceof Error ? error.message : String(error)}`,
      path,
      { cause: error },
    );
  }
  if ((typeof result === "object" && result !== null) || typeof result === "function") build.built.add(result);
  return result;
}

function rootBackends(value: unknown, build: Build): Record<string, Backend> {
  if (value === undefined) return {};
  if (!isPlainObject(value)) {
    throw new ImproperlyConfigured(`must be an object of name to engine spec, got ${typeName(value)}`, "backends");
  }
  const backends: Record<string, Backend> = {};
  for (const [name, spec] of Object.entries(value)) {
    const path = `backends.${name}`;
    const built = isPlainObject(spec) && "ENGINE" in spec ? instantiate(spec, path, build) : spec;
    if (typeof (built as Backend | null)?.send !== "function") throw engineSlotError(built, "a backend", path, build);
    backends[name] = built as Backend;
  }
  return backends;
}

function rootProcessors(value: unknown, build: Build): Processor[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    throw new ImproperlyConfigured(`must be an array of engine specs, got ${typeName(value)}`, "processors");
  }
  return value.map((spec, i) => {
    const path = `processors[${i}]`;
    const built = isPlainObject(spec) && "ENGINE" in spec ? instantiate(spec, path, build) : spec;
    if (typeof built !== "function" && typeof (built as { process?: unknown } | null)?.process !== "function") {
      throw engineSlotError(built, "a processor", path, build);
    }
    return built as Processor;
  });
}

/**
 * Builds a tracker from configuration in the reference's format, walking
 * nested `backends` and `processors` inside OPTIONS. Existing Open edX
 * settings load as JSON: ENGINE accepts the reference's dotted paths, and
 * OPTIONS its snake_case keys and setting names (`EVENT_BUS_TRACKING_LOGS`,
 * `SEND_TRACKING_EVENT_EMITTED_SIGNAL`, `whitelist`). Each engine's OPTIONS
 * are checked by the same schema as its constructor's options. Engines
 * besides the built-in ones are passed in `options.engines`.
 *
 * @example Port an Open edX setting
 * ```ts
 * import { createTracker, InMemoryBackend } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const tracker = createTracker({
 *   backends: {
 *     tracking_logs: {
 *       ENGINE: "eventtracking.backends.routing.RoutingBackend",
 *       OPTIONS: {
 *         backends: { memory: { ENGINE: "memory" } },
 *         processors: [{
 *           ENGINE: "eventtracking.processors.whitelist.NameWhitelistProcessor",
 *           OPTIONS: { whitelist: ["edx.course.enrollment.activated"] },
 *         }],
 *       },
 *     },
 *   },
 * });
 * tracker.emit("edx.course.enrollment.activated");
 * tracker.emit("edx.ui.click");
 * const logs = tracker.getBackend("tracking_logs") as import("@edx/event-tracking").RoutingBackend;
 * const memory = logs.backends.get("memory") as InMemoryBackend;
 * assert.equal(memory.events.length, 1);
 * ```
 *
 * @example Errors say where, what and the value
 * ```ts
 * import { createTracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * assert.throws(
 *   () =>
 *     createTracker({
 *       backends: { tracking_logs: { ENGINE: "async_routing", OPTIONS: { backoff: { initial_ms: -1 } } } },
 *     }),
 *   { message: "backends.tracking_logs.OPTIONS.backoff.initial_ms: must be a non-negative number, got -1" },
 * );
 * ```
 *
 * @example Engines of your own, for this call only
 * ```ts
 * import { createTracker, InMemoryBackend } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const sinks: InMemoryBackend[] = [];
 * const tracker = createTracker(
 *   { backends: { capture: { ENGINE: "myapp.backends.Capture" } } },
 *   { engines: { "myapp.backends.Capture": () => (sinks.push(new InMemoryBackend()), sinks.at(-1)!) } },
 * );
 * tracker.emit("a");
 * assert.equal(sinks[0].events.length, 1);
 * ```
 *
 * @throws {ImproperlyConfigured} If anything is wrong; the message starts with its path, e.g. `backends.xapi.OPTIONS.processors[0]: unknown ENGINE "foo.Bar"`.
 */
export function createTracker(config: TrackerConfig, options: CreateTrackerOptions = {}): Tracker {
  if (!isPlainObject(config)) {
    throw new ImproperlyConfigured(
      `the configuration must be an object with "backends" and "processors", got ${typeName(config)}`,
    );
  }
  for (const key of Object.keys(config)) {
    if (key !== "backends" && key !== "processors" && key !== "catalog") {
      throw new ImproperlyConfigured(`unknown key "${key}" (expected "backends", "processors" and "catalog")`, key);
    }
  }
  const engines = options.engines ?? {};
  if (typeof engines !== "object" || engines === null || Array.isArray(engines)) {
    throw new ImproperlyConfigured(
      `createTracker's "engines" option must be an object of ENGINE name to engine, got ${typeName(engines)}`,
    );
  }
  const build: Build = {
    engines,
    resolved: new Map(),
    context: {
      logger: options.logger ?? consoleLogger,
      dataDir: options.dataDir ?? "data",
      queueTransport: options.queueTransport,
      busTransport: options.busTransport,
      deadLetterSink: options.deadLetterSink,
    },
    built: new WeakSet(),
    renames: new WeakMap(),
  };
  const catalog = config.catalog === undefined || config.catalog instanceof EventCatalog
    ? config.catalog
    : EventCatalog.fromJSON(config.catalog, "catalog");
  return new Tracker({
    backends: rootBackends(config.backends, build),
    processors: rootProcessors(config.processors, build),
    logger: build.context.logger,
    catalog,
  });
}
