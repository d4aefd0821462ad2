/**
 * Builds a tracker from the reference's `EVENT_TRACKING_BACKENDS` /
 * `EVENT_TRACKING_PROCESSORS` settings, given as JSON.
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import { AsyncRoutingBackend } from "./backends/async_routing.ts";
import { EventBusBackend } from "./backends/event_bus.ts";
import { LoggerBackend } from "./backends/logger.ts";
import { InMemoryBackend } from "./backends/memory.ts";
import { consoleLogger, type DiagnosticLogger, typeName } from "./diagnostics.ts";
import { ImproperlyConfigured } from "./errors.ts";
import type { Processor } from "./processor.ts";
import type { BusTransport, QueueTransport } from "./transports/transport.ts";
import { NameAllowlistProcessor } from "./processors/name_allowlist.ts";
import { RegexFilter } from "./processors/regex_filter.ts";
import { RoutingBackend } from "./routing.ts";
import { Tracker } from "./tracker.ts";

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

/** What an engine factory receives besides its options. */
export interface EngineContext extends DeliveryHooks {
  /** Where the spec is in the configuration, e.g. `backends.queue`: stable across processes. */
  path: string;
  /** The tracker's diagnostics logger. */
  logger: DiagnosticLogger;
  /** Where engines keep files by default (dead letters go under `<dataDir>/dead-letters`). */
  dataDir: string;
}

/** Builds a backend or processor from its (camelCased, already built) options. */
export type EngineFactory = (options: Record<string, unknown>, context: EngineContext) => Backend | Processor;

/** Options of {@linkcode createTracker}. */
export interface CreateTrackerOptions extends DeliveryHooks {
  /** Passed to the tracker and to every engine. @default consoleLogger */
  logger?: DiagnosticLogger;
  /** Where engines keep files by default. @default "data" */
  dataDir?: string;
}

const engines = new Map<string, EngineFactory>();
type Env = Omit<EngineContext, "path">;
// What engines built, so a non-backend they return is told apart from a spec without ENGINE.
const built = new WeakSet<object>();

/**
 * Makes an engine available to {@linkcode createTracker} under a name (short,
 * or a dotted path such as the reference's). Registering a name again
 * replaces its factory.
 *
 * @example A custom backend engine
 * ```ts
 * import { createTracker, InMemoryBackend, registerEngine } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const sinks: InMemoryBackend[] = [];
 * registerEngine("myapp.backends.Capture", () => {
 *   const sink = new InMemoryBackend();
 *   sinks.push(sink);
 *   return sink;
 * });
 * const tracker = createTracker({ backends: { capture: { ENGINE: "myapp.backends.Capture" } } });
 * tracker.emit("a");
 * assert.equal(sinks[0].events.length, 1);
 * ```
 *
 * @throws {TypeError} If `name` is empty or `factory` is not a function.
 */
export function registerEngine(name: string, factory: EngineFactory): void {
  if (typeof name !== "string" || name === "") {
    throw new TypeError(`Cannot register engine: its name must be a non-empty string, got ${typeName(name)}`);
  }
  if (typeof factory !== "function") {
    throw new TypeError(`Cannot register engine "${name}": the factory must be a function, got ${typeName(factory)}`);
  }
  engines.set(name, factory);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function camelCase(key: string): string {
  return key.replace(/_+([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Checks that `options` has only the `allowed` keys (camelCase) and returns it.
 * Engines call this so a misspelt option is an error, not silently ignored.
 *
 * @example
 * ```ts
 * import { checkOptions, ImproperlyConfigured } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * assert.throws(
 *   () => checkOptions({ colour: 1 }, ["color"], { path: "backends.x", engine: "x" }),
 *   ImproperlyConfigured,
 * );
 * ```
 *
 * @throws {ImproperlyConfigured} If an option is not in `allowed`.
 */
export function checkOptions<T extends Record<string, unknown>>(
  options: T,
  allowed: readonly string[],
  where: { path: string; engine: string },
): T {
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new ImproperlyConfigured(
        `unknown option "${key}" for ENGINE "${where.engine}" (expected: ${allowed.join(", ") || "none"})`,
        `${where.path}.OPTIONS`,
      );
    }
  }
  return options;
}

function build(value: unknown, path: string, env: Env): unknown {
  if (Array.isArray(value)) return value.map((item, i) => build(item, `${path}[${i}]`, env));
  if (!isPlainObject(value)) return value;
  if (!("ENGINE" in value)) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = build(item, `${path}.${key}`, env);
    return out;
  }
  return instantiate(value, path, env);
}

function instantiate(spec: Record<string, unknown>, path: string, env: Env): Backend | Processor {
  for (const key of Object.keys(spec)) {
    if (key !== "ENGINE" && key !== "OPTIONS") {
      throw new ImproperlyConfigured(`unknown key "${key}" (an engine spec has only ENGINE and OPTIONS)`, path);
    }
  }
  const engine = spec.ENGINE;
  if (typeof engine !== "string" || engine === "") {
    throw new ImproperlyConfigured(
      `ENGINE must be a non-empty string, got ${JSON.stringify(engine) ?? typeName(engine)}`,
      path,
    );
  }
  const factory = engines.get(engine);
  if (factory === undefined) {
    throw new ImproperlyConfigured(
      `unknown ENGINE "${engine}" (known: ${
        [...engines.keys()].filter((n) => !n.includes(".")).join(", ")
      }, or their reference dotted paths; add others with registerEngine())`,
      path,
    );
  }
  const raw = spec.OPTIONS ?? {};
  if (!isPlainObject(raw)) {
    throw new ImproperlyConfigured(`OPTIONS must be an object, got ${typeName(raw)}`, path);
  }
  const options: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(raw)) {
    const name = camelCase(key);
    if (Object.hasOwn(options, name)) {
      throw new ImproperlyConfigured(
        `option "${name}" is given twice (as "${key}" and in another spelling)`,
        `${path}.OPTIONS`,
      );
    }
    options[name] = build(item, `${path}.OPTIONS.${key}`, env);
  }
  let result: Backend | Processor;
  try {
    result = factory(options, { path, ...env });
  } catch (error) {
    if (error instanceof ImproperlyConfigured) {
      if (error.path !== "") throw error;
      throw new ImproperlyConfigured(error.message, path, { cause: error });
    }
    throw new ImproperlyConfigured(
      `cannot create ENGINE "${engine}": ${error instanceof Error ? error.message : String(error)}`,
      path,
      { cause: error },
    );
  }
  if ((typeof result === "object" && result !== null) || typeof result === "function") built.add(result);
  return result;
}

/**
 * Builds a tracker from configuration in the reference's format, walking
 * nested `backends` and `processors` inside OPTIONS. Existing Open edX
 * settings load as JSON: ENGINE accepts the reference's dotted paths and
 * OPTIONS its snake_case keys.
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
 * @throws {ImproperlyConfigured} If anything is wrong; the message starts with its path, e.g. `backends.xapi.OPTIONS.processors[0]: unknown ENGINE "foo.Bar"`.
 */
export function createTracker(config: TrackerConfig, options: CreateTrackerOptions = {}): Tracker {
  if (!isPlainObject(config)) {
    throw new ImproperlyConfigured(
      `the configuration must be an object with "backends" and "processors", got ${typeName(config)}`,
    );
  }
  for (const key of Object.keys(config)) {
    if (key !== "backends" && key !== "processors") {
      throw new ImproperlyConfigured(`unknown key "${key}" (expected "backends" and "processors")`, key);
    }
  }
  const env: Env = {
    logger: options.logger ?? consoleLogger,
    dataDir: options.dataDir ?? "data",
    queueTransport: options.queueTransport,
    busTransport: options.busTransport,
    deadLetterSink: options.deadLetterSink,
  };
  return new Tracker({
    backends: backendsOption(build(config.backends, "backends", env), "backends"),
    processors: processorsOption(build(config.processors, "processors", env), "processors"),
    logger: env.logger,
  });
}

function notBuilt(value: unknown, kind: string, path: string): ImproperlyConfigured {
  return !built.has(value as object)
    ? new ImproperlyConfigured(
      `must be an engine spec with an ENGINE, got ${JSON.stringify(value) ?? typeName(value)}`,
      path,
    )
    : new ImproperlyConfigured(`is not ${kind}: its ENGINE built a ${typeName(value)}`, path);
}

function alias(names: string[], factory: EngineFactory): void {
  for (const name of names) registerEngine(name, factory);
}

alias(["routing", "eventtracking.backends.routing.RoutingBackend"], (options, { path, logger }) => {
  checkOptions(options, ["backends", "processors"], { path, engine: "routing" });
  return new RoutingBackend({
    backends: backendsOption(options.backends, `${path}.OPTIONS.backends`),
    processors: processorsOption(options.processors, `${path}.OPTIONS.processors`),
    logger,
  });
});

alias(["logger", "eventtracking.backends.logger.LoggerBackend"], (options, { path, logger }) => {
  checkOptions(options, ["name", "level", "maxEventSize", "path", "maxPendingLines", "reportIntervalMs"], {
    path,
    engine: "logger",
  });
  return new LoggerBackend({ ...options, logger });
});

function lastSegment(path: string): string {
  return path.slice(path.lastIndexOf(".") + 1).replace(/\[\d+\]$/, "");
}

alias(["async_routing", "eventtracking.backends.async_routing.AsyncRoutingBackend"], (options, context) => {
  const { path, logger, dataDir } = context;
  const engine = "async_routing";
  const { queueSize, backoff, deadLetter, backendName, ...rest } = checkOptions(options, [
    "backends",
    "processors",
    "backendName",
    "maxAttempts",
    "backoff",
    "deadLetter",
    "queueSize",
    "overflow",
    "reportIntervalMs",
  ], { path, engine });
  let backoffOptions = backoff as Record<string, unknown> | undefined;
  if (backoffOptions !== undefined) {
    if (!isPlainObject(backoffOptions)) {
      throw new ImproperlyConfigured(
        `must be an object with initialMs and maxMs, got ${typeName(backoffOptions)}`,
        `${path}.OPTIONS.backoff`,
      );
    }
    backoffOptions = Object.fromEntries(Object.entries(backoffOptions).map(([key, value]) => [camelCase(key), value]));
    checkOptions(backoffOptions, ["initialMs", "maxMs"], { path: `${path}.OPTIONS.backoff`, engine });
  }
  const branch = { path, backendName: (backendName as string | undefined) || lastSegment(path) };
  const transport = context.queueTransport?.({ ...branch, queueSize: queueSize as number | undefined });
  return new AsyncRoutingBackend({
    ...rest,
    backendName: branch.backendName,
    backends: backendsOption(rest.backends, `${path}.OPTIONS.backends`),
    processors: processorsOption(rest.processors, `${path}.OPTIONS.processors`),
    backoff: backoffOptions,
    deadLetter: deadLetter !== undefined
      ? backendsOption({ deadLetter }, `${path}.OPTIONS`).deadLetter
      : context.deadLetterSink?.(branch),
    deadLetterDir: `${dataDir}/dead-letters`,
    transport,
    queueSize: transport === undefined ? queueSize as number | undefined : undefined,
    logger,
  });
});

alias([
  "event_bus",
  "eventtracking.backends.event_bus.EventBusRoutingBackend",
  "eventtracking.backends.event_bus.EventBusBackend",
], (options, context) => {
  const { path, logger } = context;
  const { SEND_TRACKING_EVENT_EMITTED_SIGNAL, EVENT_BUS_TRACKING_LOGS, ...rest } = options;
  checkOptions(rest, ["backends", "processors", "backendName", "enabled", "eventBusTrackingLogs", "consume"], {
    path,
    engine: "event_bus",
  });
  for (
    const [reference, ours] of [
      ["SEND_TRACKING_EVENT_EMITTED_SIGNAL", "enabled"],
      ["EVENT_BUS_TRACKING_LOGS", "eventBusTrackingLogs"],
    ]
  ) {
    if (options[reference] !== undefined && rest[ours] !== undefined) {
      throw new ImproperlyConfigured(`"${reference}" and "${ours}" are the same option: give one`, `${path}.OPTIONS`);
    }
  }
  const backendName = (rest.backendName as string | undefined) || lastSegment(path);
  const transport = context.busTransport?.({ path, backendName });
  const consume = (rest.consume as boolean | undefined) ?? transport === undefined;
  if (!consume && (rest.backends !== undefined || rest.processors !== undefined)) {
    logger.warn(
      `${path}: this event bus is consumed elsewhere (consume: false); its backends and processors run only where it is consumed`,
    );
  }
  return new EventBusBackend({
    ...rest,
    enabled: (SEND_TRACKING_EVENT_EMITTED_SIGNAL ?? rest.enabled) as boolean | undefined,
    eventBusTrackingLogs: (EVENT_BUS_TRACKING_LOGS ?? rest.eventBusTrackingLogs) as string[] | undefined,
    backendName,
    backends: backendsOption(rest.backends, `${path}.OPTIONS.backends`),
    processors: processorsOption(rest.processors, `${path}.OPTIONS.processors`),
    transport,
    consume,
    logger,
  });
});

/** The ENGINE names of MongoBackend, registered by `@edx/event-tracking/mongo` when it is imported. */
export const MONGO_ENGINE_NAMES: readonly string[] = ["mongo", "eventtracking.backends.mongodb.MongoBackend"];

// Until then, these names explain where the engine is, instead of "unknown ENGINE".
alias([...MONGO_ENGINE_NAMES], () => {
  throw new ImproperlyConfigured(
    'the MongoDB backend lives in "@edx/event-tracking/mongo" (it keeps the driver out of the core): ' +
      "import that module before createTracker() to register this ENGINE",
  );
});

alias(["memory", "eventtracking.backends.tests.InMemoryBackend"], (options, { path }) => {
  checkOptions(options, [], { path, engine: "memory" });
  return new InMemoryBackend();
});

alias(["name_allowlist", "eventtracking.processors.whitelist.NameWhitelistProcessor"], (options, { path }) => {
  checkOptions(options, ["whitelist", "allowlist"], { path, engine: "name_allowlist" });
  return new NameAllowlistProcessor(options);
});

/**
 * Checks a built `backends` option (name → backend) of a router-like engine;
 * a spec that was not instantiated (no ENGINE) is reported at its path.
 *
 * @throws {ImproperlyConfigured} If it is not an object of backends.
 */
export function backendsOption(value: unknown, path: string): Record<string, Backend> {
  if (value === undefined) return {};
  if (!isPlainObject(value)) {
    throw new ImproperlyConfigured(`must be an object of name to engine spec, got ${typeName(value)}`, path);
  }
  for (const [name, backend] of Object.entries(value)) {
    if (typeof (backend as Backend | null)?.send !== "function") {
      throw notBuilt(backend, "a backend", `${path}.${name}`);
    }
  }
  return value as Record<string, Backend>;
}

/**
 * Checks a built `processors` option (a list of processors) of a router-like
 * engine; a spec that was not instantiated (no ENGINE) is reported at its path.
 *
 * @throws {ImproperlyConfigured} If it is not an array of processors.
 */
export function processorsOption(value: unknown, path: string): Processor[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    throw new ImproperlyConfigured(`must be an array of engine specs, got ${typeName(value)}`, path);
  }
  value.forEach((processor, i) => {
    if (typeof processor !== "function" && typeof (processor as { process?: unknown } | null)?.process !== "function") {
      throw notBuilt(processor, "a processor", `${path}[${i}]`);
    }
  });
  return value as Processor[];
}

alias(["regex_filter", "eventtracking.processors.regex_filter.RegexFilter"], (options, { path }) => {
  checkOptions(options, ["filterType", "regularExpressions", "cacheSize"], { path, engine: "regex_filter" });
  return new RegexFilter(options);
});
