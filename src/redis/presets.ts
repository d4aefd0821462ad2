/**
 * Allowlist presets for the Open edX consumers of the event bus, the checks
 * a tree publishing to a shared stream needs, and the configuration
 * transforms the collector applies. Nothing here loads the Redis client.
 *
 * @module
 */

import { AsyncRoutingBackend } from "../backends/async_routing.ts";
import { EventBusBackend } from "../backends/event_bus.ts";
import type { Backend } from "../backend.ts";
import type { EngineSpec, TrackerConfig } from "../config.ts";
import type { DiagnosticLogger } from "../diagnostics.ts";
import { ImproperlyConfigured } from "../errors.ts";
import { walkTree } from "../tree.ts";

// event-routing-backends 10.0.0, settings/common.py: the events its xAPI transformers handle.
const XAPI_EVENTS = [
  "edx.course.enrollment.activated",
  "edx.course.enrollment.deactivated",
  "edx.course.enrollment.mode_changed",
  "edx.grades.subsection.grade_calculated",
  "edx.grades.course.grade_calculated",
  "edx.special_exam.timed.attempt.created",
  "edx.special_exam.timed.attempt.submitted",
  "edx.special_exam.practice.attempt.created",
  "edx.special_exam.practice.attempt.submitted",
  "edx.special_exam.proctored.attempt.created",
  "edx.special_exam.proctored.attempt.submitted",
  "edx.completion.block_completion.changed",
  "edx.forum.thread.created",
  "edx.forum.thread.deleted",
  "edx.forum.thread.edited",
  "edx.forum.thread.viewed",
  "edx.forum.thread.reported",
  "edx.forum.thread.unreported",
  "edx.forum.thread.voted",
  "edx.forum.response.created",
  "edx.forum.response.deleted",
  "edx.forum.response.edited",
  "edx.forum.response.reported",
  "edx.forum.response.unreported",
  "edx.forum.response.voted",
  "edx.forum.comment.created",
  "edx.forum.comment.deleted",
  "edx.forum.comment.edited",
  "edx.forum.comment.reported",
  "edx.forum.comment.unreported",
  "edx.ui.lms.link_clicked",
  "edx.ui.lms.sequence.outline.selected",
  "edx.ui.lms.outline.selected",
  "edx.ui.lms.sequence.next_selected",
  "edx.ui.lms.sequence.previous_selected",
  "edx.ui.lms.sequence.tab_selected",
  "showanswer",
  "edx.problem.hint.demandhint_displayed",
  "problem_check",
  "load_video",
  "edx.video.loaded",
  "play_video",
  "edx.video.played",
  "complete_video",
  "edx.video.completed",
  "stop_video",
  "edx.video.stopped",
  "pause_video",
  "edx.video.paused",
  "seek_video",
  "edx.video.position.changed",
  "hide_transcript",
  "edx.video.transcript.hidden",
  "show_transcript",
  "edx.video.transcript.shown",
  "speed_change_video",
  "video_hide_cc_menu",
  "edx.video.closed_captions.shown",
  "edx.video.closed_captions.hidden",
  "edx.video.language_menu.hidden",
  "video_show_cc_menu",
  "edx.video.language_menu.shown",
  "edx.course.grade.passed.first_time",
  "edx.course.grade.now_passed",
  "edx.course.grade.now_failed",
];

// The same settings: the events its Caliper transformers handle (a subset of the xAPI ones).
const CALIPER_EVENTS = [
  "edx.course.enrollment.activated",
  "edx.course.enrollment.deactivated",
  "edx.ui.lms.link_clicked",
  "edx.ui.lms.sequence.outline.selected",
  "edx.ui.lms.outline.selected",
  "edx.ui.lms.sequence.next_selected",
  "edx.ui.lms.sequence.previous_selected",
  "edx.ui.lms.sequence.tab_selected",
  "showanswer",
  "edx.problem.hint.demandhint_displayed",
  "problem_check",
  "load_video",
  "edx.video.loaded",
  "play_video",
  "edx.video.played",
  "complete_video",
  "edx.video.completed",
  "stop_video",
  "edx.video.stopped",
  "pause_video",
  "edx.video.paused",
  "seek_video",
  "edx.video.position.changed",
  "edx.course.grade.passed.first_time",
  "edx.course.grade.now_passed",
  "edx.course.grade.now_failed",
];

/** Escapes a name for a Python regular expression that matches it exactly (`re.escape(name) + "$"`). */
function exactPattern(name: string): string {
  return `${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`;
}

/**
 * A named list of exact event names: the allowlist of an event-bus backend
 * (`eventBusTrackingLogs`) or of a branch (a `name_allowlist` processor, or
 * a `regex_filter` of exact patterns). In JSON configuration, the string
 * `"preset:<name>"` inside such a list stands for the names (see
 * {@linkcode resolvePresets}).
 *
 * @example An event bus for event-routing-backends, in code and as configuration
 * ```ts
 * import { createTracker, EventBusBackend } from "@edx/event-tracking";
 * import { presets } from "@edx/event-tracking/redis";
 * import assert from "node:assert/strict";
 *
 * assert.equal(presets.erb.xapi.names.length, 65);
 * const bus = new EventBusBackend({ eventBusTrackingLogs: presets.erb.names, consume: false });
 * assert.ok(bus.eventBusTrackingLogs.has("problem_check"));
 *
 * const tracker = createTracker({ backends: { analytics: presets.aspects.eventBus() } });
 * assert.ok((tracker.getBackend("analytics") as EventBusBackend).eventBusTrackingLogs.has("edx.video.played"));
 * await tracker.close();
 * ```
 */
export class EventNamePreset {
  /** What `"preset:<name>"` says in configuration: `erb`, `erb.xapi`, `erb.caliper`, `aspects`. */
  readonly name: string;
  /** A one-line description. */
  readonly description: string;
  /** The exact event names, in their source's order. */
  readonly names: readonly string[];
  readonly #set: ReadonlySet<string>;

  /** Creates a preset of these names. */
  constructor(name: string, description: string, names: Iterable<string>) {
    this.name = name;
    this.description = description;
    this.names = Object.freeze([...new Set(names)]);
    this.#set = new Set(this.names);
  }

  /** Whether the name is in the list. */
  has(name: string): boolean {
    return this.#set.has(name);
  }

  /** Python regular expressions that match exactly these names, for a `RegexFilter` allowlist. */
  get regularExpressions(): readonly string[] {
    return this.names.map(exactPattern);
  }

  /** An `event_bus` spec publishing these names, with other OPTIONS of your own. */
  eventBus(options: Record<string, unknown> = {}): EngineSpec {
    return { ENGINE: "event_bus", OPTIONS: { ...options, event_bus_tracking_logs: [...this.names] } };
  }

  /** A `name_allowlist` processor spec passing these names. */
  allowlist(): EngineSpec {
    return { ENGINE: "name_allowlist", OPTIONS: { allowlist: [...this.names] } };
  }
}

/** The presets of {@linkcode presets}: event-routing-backends' lists, and Aspects'. */
export interface Presets {
  /**
   * What event-routing-backends (10.0.0) transforms — its `EVENT_BUS_TRACKING_LOGS`:
   * the xAPI names, of which the Caliper ones are a subset (65 names); `xapi` and `caliper` are each list.
   */
  readonly erb: EventNamePreset & { readonly xapi: EventNamePreset; readonly caliper: EventNamePreset };
  /** What Aspects needs on the bus: the events event-routing-backends transforms to xAPI (65 names). */
  readonly aspects: EventNamePreset;
}

const xapi = new EventNamePreset("erb.xapi", "event-routing-backends' xAPI events", XAPI_EVENTS);
const caliper = new EventNamePreset("erb.caliper", "event-routing-backends' Caliper events", CALIPER_EVENTS);

/**
 * The allowlists of Open edX's consumers of tracking events on the bus.
 *
 * @example
 * ```ts
 * import { presets } from "@edx/event-tracking/redis";
 * import assert from "node:assert/strict";
 *
 * assert.equal(presets.erb.names.length, 65);
 * assert.equal(presets.erb.caliper.names.length, 26);
 * assert.ok(presets.aspects.has("edx.course.enrollment.activated"));
 * assert.equal(presets.erb.regularExpressions[0], "edx\\.course\\.enrollment\\.activated$");
 * ```
 */
export const presets: Presets = Object.freeze({
  erb: Object.freeze(
    Object.assign(
      new EventNamePreset("erb", "event-routing-backends' EVENT_BUS_TRACKING_LOGS", [
        ...XAPI_EVENTS,
        ...CALIPER_EVENTS,
      ]),
      { xapi, caliper },
    ),
  ) as Presets["erb"],
  aspects: new EventNamePreset("aspects", "Aspects (event-routing-backends' xAPI events)", XAPI_EVENTS),
});

const PRESET_PREFIX = "preset:";
const BY_NAME: ReadonlyMap<string, EventNamePreset> = new Map(
  [presets.erb, presets.erb.xapi, presets.erb.caliper, presets.aspects].map((preset) => [preset.name, preset]),
);
const NAME_LISTS = new Set([
  "event_bus_tracking_logs",
  "EVENT_BUS_TRACKING_LOGS",
  "eventBusTrackingLogs",
  "allowlist",
  "whitelist",
]);
const PATTERN_LISTS = new Set(["regular_expressions", "regularExpressions"]);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function expand(list: unknown[], path: string, patterns: boolean): unknown[] {
  const out: unknown[] = [];
  list.forEach((item, i) => {
    if (typeof item !== "string" || !item.startsWith(PRESET_PREFIX)) return void out.push(item);
    const preset = BY_NAME.get(item.slice(PRESET_PREFIX.length));
    if (preset === undefined) {
      throw new ImproperlyConfigured(
        `unknown preset ${JSON.stringify(item)} (presets: ${
          [...BY_NAME.keys()].map((n) => PRESET_PREFIX + n).join(", ")
        })`,
        `${path}[${i}]`,
      );
    }
    out.push(...(patterns ? preset.regularExpressions : preset.names));
  });
  return out;
}

function resolveIn(value: unknown, path: string): unknown {
  if (Array.isArray(value)) return value.map((item, i) => resolveIn(item, `${path}[${i}]`));
  if (!isObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    const where = path === "" ? key : `${path}.${key}`;
    if (Array.isArray(item) && NAME_LISTS.has(key)) out[key] = expand(item, where, false);
    else if (Array.isArray(item) && PATTERN_LISTS.has(key)) out[key] = expand(item, where, true);
    else out[key] = resolveIn(item, where);
  }
  return out;
}

/**
 * Expands presets in a configuration: inside an allowlist
 * (`event_bus_tracking_logs`, `EVENT_BUS_TRACKING_LOGS`, a `name_allowlist`'s
 * `allowlist`/`whitelist`), the string `"preset:<name>"` becomes the preset's
 * names; inside a `regex_filter`'s `regular_expressions`, patterns matching
 * exactly those names. Presets: `preset:erb`, `preset:erb.xapi`,
 * `preset:erb.caliper`, `preset:aspects`. Returns a copy; the input is not
 * changed.
 *
 * @example
 * ```ts
 * import { createTracker, type EventBusBackend } from "@edx/event-tracking";
 * import { resolvePresets } from "@edx/event-tracking/redis";
 * import assert from "node:assert/strict";
 *
 * const config = resolvePresets({
 *   backends: {
 *     analytics: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["preset:aspects", "my.own.event"] } },
 *   },
 * });
 * const tracker = createTracker(config);
 * assert.equal((tracker.getBackend("analytics") as EventBusBackend).eventBusTrackingLogs.size, 66);
 * await tracker.close();
 * ```
 *
 * @throws {ImproperlyConfigured} For an unknown `"preset:…"` name, at its path.
 */
export function resolvePresets(config: TrackerConfig): TrackerConfig {
  return resolveIn(config, "") as TrackerConfig;
}

const EVENT_BUS_ENGINES = new Set([
  "event_bus",
  "eventtracking.backends.event_bus.EventBusRoutingBackend",
  "eventtracking.backends.event_bus.EventBusBackend",
]);
const ROUTING_ENGINES = new Set(["routing", "eventtracking.backends.routing.RoutingBackend"]);

function wrapBackends(backends: Record<string, EngineSpec>): Record<string, EngineSpec> {
  const out: Record<string, EngineSpec> = {};
  for (const [name, spec] of Object.entries(backends)) {
    if (!isObject(spec)) out[name] = spec;
    else if (EVENT_BUS_ENGINES.has(spec.ENGINE)) {
      out[name] = { ENGINE: "async_routing", OPTIONS: { backends: { [name]: spec } } };
    } else if (ROUTING_ENGINES.has(spec.ENGINE) && isObject(spec.OPTIONS?.backends)) {
      out[name] = {
        ...spec,
        OPTIONS: { ...spec.OPTIONS, backends: wrapBackends(spec.OPTIONS.backends as Record<string, EngineSpec>) },
      };
    } else out[name] = spec;
  }
  return out;
}

/**
 * Moves every `event_bus` branch that is not already under an async router
 * (at the root, or under plain `routing` branches) into an `async_routing`
 * branch of the same name, so that a publish that fails is retried with
 * backoff and then dead-lettered (`<dataDir>/dead-letters/<name>.jsonl`,
 * replayed by `deno task replay`) rather than only counted. The event-bus
 * backend keeps its name, so its topic is unchanged. Returns a copy.
 *
 * @example The collector's default tree, for a Redis bus
 * ```ts
 * import { asyncBusBranches } from "@edx/event-tracking/redis";
 * import assert from "node:assert/strict";
 *
 * const config = asyncBusBranches({
 *   backends: { bus: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["*"] } } },
 * });
 * assert.deepEqual(config.backends!.bus, {
 *   ENGINE: "async_routing",
 *   OPTIONS: { backends: { bus: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["*"] } } } },
 * });
 * ```
 */
export function asyncBusBranches(config: TrackerConfig): TrackerConfig {
  return config.backends === undefined ? { ...config } : { ...config, backends: wrapBackends(config.backends) };
}

/** A bus transport that names where a topic's events go, so that two publishers to one stream are recognised. */
export interface BusDestination {
  /** The destination of a bus topic: equal strings mean the same stream. */
  destination(busTopic: string): string;
}

function hasDestination(transport: unknown): transport is BusDestination {
  return typeof (transport as BusDestination | null)?.destination === "function";
}

/** Options of {@linkcode checkEventBusTree}. */
export interface CheckEventBusTreeOptions {
  /** Where warnings go (an event bus on a shared stream outside an async branch). Without it, nothing is warned. */
  logger?: DiagnosticLogger;
}

interface Publisher {
  readonly path: string;
  readonly backend: EventBusBackend;
  readonly protectedByAsync: boolean;
}

function* publishers(backends: ReadonlyMap<string, Backend>): Generator<Publisher> {
  const asyncPaths: string[] = [];
  for (const { path, backend } of walkTree(backends)) {
    if (backend instanceof AsyncRoutingBackend) asyncPaths.push(path);
    if (!(backend instanceof EventBusBackend)) continue;
    yield { path, backend, protectedByAsync: asyncPaths.some((p) => path.startsWith(`${p}/`)) };
  }
}

function overlap(a: EventBusBackend, b: EventBusBackend): string[] | "every name" {
  const allA = a.eventBusTrackingLogs.has("*");
  const allB = b.eventBusTrackingLogs.has("*");
  if (allA && allB) return "every name";
  if (allA) return [...b.eventBusTrackingLogs];
  if (allB) return [...a.eventBusTrackingLogs];
  return [...a.eventBusTrackingLogs].filter((name) => b.eventBusTrackingLogs.has(name));
}

/**
 * Refuses a tree in which two event-bus backends would publish the same
 * event name to the same stream — every consumer would receive those events
 * twice (event-routing-backends issue 410). Two backends share a stream when
 * their transport's `destination` of their topics is equal (a
 * {@linkcode RedisStreamsBus}: the same server and stream), or when they are
 * on the same transport object with the same topic. The names compared are
 * each backend's `eventBusTrackingLogs` (`"*"` meaning every name), not what
 * the processors above it may filter out. Disabled backends publish nothing.
 *
 * With a `logger`, it also warns about each event-bus backend on a shared
 * stream that is not under an async router: a failed publish there is only
 * counted, never retried or dead-lettered (see {@linkcode asyncBusBranches}).
 *
 * @example Two branches for event-routing-backends on one stream
 * ```ts
 * import { createTracker, ImproperlyConfigured } from "@edx/event-tracking";
 * import { checkEventBusTree, presets, RedisStreamsBus } from "@edx/event-tracking/redis";
 * import assert from "node:assert/strict";
 *
 * const bus = new RedisStreamsBus({ url: "redis://127.0.0.1:6379" }); // every topic to the "analytics" stream
 * const tracker = createTracker(
 *   { backends: { xapi: presets.erb.xapi.eventBus(), caliper: presets.erb.caliper.eventBus() } },
 *   { busTransport: () => bus },
 * );
 * assert.throws(() => checkEventBusTree(tracker), ImproperlyConfigured);
 * await tracker.close();
 * await bus.close();
 * ```
 *
 * @throws {ImproperlyConfigured} Naming both backends, the stream and the names (the first ten) they share.
 */
export function checkEventBusTree(
  tree: { readonly backends: ReadonlyMap<string, Backend> },
  options: CheckEventBusTreeOptions = {},
): void {
  const byDestination = new Map<unknown, Map<string, Publisher[]>>();
  for (const publisher of publishers(tree.backends)) {
    const { backend } = publisher;
    const transport = backend.transport;
    const shared = hasDestination(transport);
    if (shared && !publisher.protectedByAsync) {
      options.logger?.warn(
        `${publisher.path}: publishes to ${
          transport.destination(backend.backendName)
        } outside an async branch: a failed publish is counted and logged, never retried or dead-lettered`,
      );
    }
    if (!backend.enabled || backend.eventBusTrackingLogs.size === 0) continue;
    const scope = shared ? "shared" : transport;
    const key = shared ? transport.destination(backend.backendName) : backend.backendName;
    let destinations = byDestination.get(scope);
    if (destinations === undefined) byDestination.set(scope, destinations = new Map());
    const list = destinations.get(key) ?? [];
    for (const other of list) {
      const names = overlap(other.backend, backend);
      if (names !== "every name" && names.length === 0) continue;
      const shown = names === "every name"
        ? "every event name"
        : `${names.length} event name(s): ${names.slice(0, 10).join(", ")}${names.length > 10 ? ", …" : ""}`;
      throw new ImproperlyConfigured(
        `publishes to ${shared ? key : `topic "${key}" of the same bus`} as ${other.path} does, ` +
          `so every consumer would receive ${shown} twice: ` +
          "give them distinct streams (or topics), or merge them into one event-bus backend",
        publisher.path,
      );
    }
    list.push(publisher);
    destinations.set(key, list);
  }
}
