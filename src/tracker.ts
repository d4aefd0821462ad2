/**
 * The tracker: builds events from a name, data and the active context scopes,
 * and sends them through its routing tree.
 *
 * @module
 */

import type { Backend, CloseOptions } from "./backend.ts";
import type { EventCatalog } from "./catalog.ts";
import { EVENT_TYPE_VERSION } from "./_catalog_keys.ts";
import { type Stamp, stamp } from "./_clock.ts";
import { type Snapshot, snapshot } from "./_snapshot.ts";
import { ContextStore, freezeContext, type ResolvedContext, ScopeStack } from "./context.ts";
import type { DiagnosticLogger } from "./diagnostics.ts";
import { EmittedEvent, type TrackingEvent } from "./event.ts";
import type { MetricsSnapshot } from "./metrics.ts";
import type { Processor } from "./processor.ts";
import { RoutingBackend } from "./routing.ts";
import { walkTree } from "./tree.ts";

/** The name given to events emitted without one. */
export const UNKNOWN_EVENT_TYPE = "unknown";

const EMPTY_DATA: Snapshot = Object.freeze({ value: Object.freeze({}), json: "{}" });

/** Options of {@linkcode Tracker}. */
export interface TrackerOptions {
  /** The root router's backends by name. @default {} */
  backends?: Readonly<Record<string, Backend>> | ReadonlyMap<string, Backend>;
  /** The root router's processors, run in order on every event. @default [] */
  processors?: readonly Processor[];
  /** Where failing backends and processors are reported. @default consoleLogger */
  logger?: DiagnosticLogger;
  /**
   * Observes every event this tracker builds, once: counts it, validates it
   * when its name is documented (its context then carries
   * `event_type_version`), and infers a schema for undocumented names.
   * `SchemaProcessor`s of the tree without a catalog of their own use it.
   * @default none: events are not observed, at no cost
   */
  catalog?: EventCatalog;
}

/** What both a {@linkcode Tracker} and its {@linkcode ScopedTracker} views offer for emitting. */
export interface EventEmitter {
  /** Emits an event and returns its id. See {@linkcode Tracker.emit}. */
  emit(name?: string, data?: unknown): string;
  /** Builds the event `emit` would send, without sending it. See {@linkcode Tracker.createEvent}. */
  createEvent(name?: string, data?: unknown): TrackingEvent;
  /** A view that adds one more scope. See {@linkcode Tracker.withContext}. */
  withContext(name: string, context: Record<string, unknown>): ScopedTracker;
  /** The merged context an event emitted now would carry. */
  resolveContext(): ResolvedContext;
}

let createWith: (
  tracker: Tracker,
  scoped: ScopedTracker | undefined,
  name?: string,
  data?: unknown,
) => TrackingEvent;
let stackOf: (tracker: Tracker) => ScopeStack;
let contextOf: (scoped: ScopedTracker, stack: ScopeStack) => ScopeStack;

/**
 * Tracks context-aware, semi-structured events.
 *
 * `emit` is synchronous and never waits on I/O: it snapshots the data,
 * stamps the event and hands it to the root router; backends that do I/O
 * queue it.
 *
 * @example The Python README's example
 * ```ts
 * import { InMemoryBackend, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * const tracker = new Tracker({ backends: { sink } });
 * tracker.enterContext("outer", { user_id: 10938 });
 * tracker.emit("navigation.request", { url: "http://www.edx.org/some/path/1" });
 * tracker.context("request", { user_id: 11111, session_id: "2987lkjdyoioey" }, () => {
 *   tracker.emit("navigation.request", { url: "http://www.edx.org/some/path/2" });
 * });
 * assert.deepEqual(sink.events.map((e) => e.context), [
 *   { user_id: 10938 },
 *   { user_id: 11111, session_id: "2987lkjdyoioey" },
 * ]);
 * ```
 */
export class Tracker implements EventEmitter {
  readonly #router: RoutingBackend;
  readonly #scopes = new ContextStore();
  readonly #stamp: Stamp = { id: "", timestamp: "" };
  readonly #catalog: EventCatalog | undefined;
  #closed = false;

  static {
    createWith = (tracker, scoped, name, data) => tracker.#create(scoped, name, data);
    stackOf = (tracker) => tracker.#scopes.stack;
  }

  /**
   * Creates a tracker with its own root router and its own context scopes.
   *
   * @throws {TypeError} If a backend has no callable `send` or a processor is not callable.
   */
  constructor(options: TrackerOptions = {}) {
    const { catalog, ...rest } = options;
    this.#router = new RoutingBackend(rest);
    this.#catalog = catalog;
    if (catalog !== undefined) bindCatalog(this.#router, catalog);
  }

  /** The catalog that observes this tracker's events, if one was given. */
  get catalog(): EventCatalog | undefined {
    return this.#catalog;
  }

  /** The root router's backends, in the order they are called. */
  get backends(): ReadonlyMap<string, Backend> {
    return this.#router.backends;
  }

  /** The root router's processors, in order. */
  get processors(): readonly Processor[] {
    return this.#router.processors;
  }

  /** True once {@linkcode Tracker.close} has been called: emits throw from then on. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The root of the routing tree. */
  get router(): RoutingBackend {
    return this.#router;
  }

  /**
   * Returns the root backend of that name.
   *
   * @throws {Error} If there is none.
   */
  getBackend(name: string): Backend {
    const backend = this.#router.backends.get(name);
    if (backend === undefined) {
      throw new Error(
        `Cannot get backend "${name}": no such backend (configured: ${
          [...this.#router.backends.keys()].map((n) => `"${n}"`).join(", ") || "none"
        })`,
      );
    }
    return backend;
  }

  /**
   * Emits an event through the routing tree and returns its id.
   *
   * A falsy `name` becomes `"unknown"`; falsy `data` becomes `{}`. The data is
   * copied and frozen, so changing it afterwards never changes the event.
   *
   * @example Emit an event
   * ```ts
   * import { InMemoryBackend, Tracker } from "@edx/event-tracking";
   * import assert from "node:assert/strict";
   *
   * const sink = new InMemoryBackend();
   * const tracker = new Tracker({ backends: { sink } });
   * const id = tracker.emit("edx.video.played", { code: "abc" });
   * assert.equal(sink.events[0].id, id);
   * assert.deepEqual(sink.events[0].data, { code: "abc" });
   * ```
   *
   * @param name The event name.
   * @param data The payload: JSON types, plus `Date` (stored as its ISO string).
   * @returns The event's id (a UUIDv7).
   * @throws {TypeError} If `data` holds a value JSON cannot represent (the message names its path, e.g. `data.user.id`), or `name` is not a string.
   * @throws {Error} If the tracker is closed.
   */
  emit(name?: string, data?: unknown): string {
    const event = this.#create(undefined, name, data);
    this.#router.send(event);
    return event.id;
  }

  /**
   * Builds the event {@linkcode Tracker.emit} would send — the same id,
   * timestamp, context and frozen data — without sending it, so that it can
   * be stored first (a write-ahead log) and sent with {@linkcode Tracker.send}.
   *
   * @example Store, then send
   * ```ts
   * import { InMemoryBackend, Tracker } from "@edx/event-tracking";
   * import assert from "node:assert/strict";
   *
   * const sink = new InMemoryBackend();
   * const tracker = new Tracker({ backends: { sink } });
   * const event = tracker.createEvent("edx.ui.click", { x: 1 });
   * assert.equal(sink.events.length, 0);
   * await tracker.send(event);
   * assert.equal(sink.events[0].id, event.id);
   * ```
   *
   * @throws {TypeError} As {@linkcode Tracker.emit} does.
   * @throws {Error} If the tracker is closed.
   */
  createEvent(name?: string, data?: unknown): TrackingEvent {
    return this.#create(undefined, name, data);
  }

  /**
   * Sends an event that is already built (by {@linkcode Tracker.createEvent},
   * or restored from a log) through the routing tree.
   *
   * @returns `undefined` when every backend took it synchronously; otherwise a
   *   promise that settles once every branch has settled it (delivered, or
   *   dead-lettered on async branches), and rejects if a branch failed it.
   * @throws {Error} If the tracker is closed.
   */
  send(event: TrackingEvent): Promise<void> | undefined {
    if (this.#closed) throw new Error(`Cannot send event "${event?.name}": the tracker is closed`);
    return this.#router.send(event);
  }

  #create(scoped: ScopedTracker | undefined, name?: string, data?: unknown): TrackingEvent {
    if (this.#closed) throw new Error(`Cannot emit event "${name}": the tracker is closed`);
    if (!name) name = UNKNOWN_EVENT_TYPE;
    else if (typeof name !== "string") {
      throw new TypeError(`Cannot emit event: the name must be a string, got ${typeof name}`);
    }
    const payload = data ? snapshot(data, "data", true) : EMPTY_DATA;
    const scopes = scoped === undefined ? this.#scopes.stack : contextOf(scoped, this.#scopes.stack);
    const { id, timestamp } = stamp(this.#stamp);
    if (this.#catalog !== undefined) return observed(this.#catalog, id, name, timestamp, scopes, payload);
    return new EmittedEvent(id, name, timestamp, scopes.merged, payload.value, scopes.json, payload.json as string);
  }

  /**
   * Enters a named context scope in the current async task (or process-wide
   * outside any {@linkcode Tracker.context} call). Its keys are merged into
   * every event; re-entering a name replaces its value in place.
   *
   * @throws {TypeError} If `context` is not a plain object of JSON-compatible values.
   */
  enterContext(name: string, context: Record<string, unknown>): void {
    this.#scopes.enter(name, context);
  }

  /**
   * Leaves a named context scope.
   *
   * @throws {Error} If no scope of that name is active.
   */
  exitContext(name: string): void {
    this.#scopes.exit(name);
  }

  /**
   * Runs `fn` inside a named context scope and always leaves it afterwards;
   * when `fn` returns a promise the scope lasts until it settles. Scopes
   * entered this way are isolated between concurrent async tasks, through
   * `AsyncLocalStorage` (Deno, Node.js ≥ 20.16, Workers with `nodejs_compat`).
   * Where there is none (browsers), the scope covers what `fn` runs
   * synchronously only: events emitted after an `await` in `fn` do not carry
   * it; use {@linkcode Tracker.withContext} views there.
   *
   * @example One scope per request
   * ```ts
   * import { InMemoryBackend, Tracker } from "@edx/event-tracking";
   * import assert from "node:assert/strict";
   *
   * const sink = new InMemoryBackend();
   * const tracker = new Tracker({ backends: { sink } });
   * await Promise.all([1, 2].map((user_id) =>
   *   tracker.context("edx.request", { user_id }, async () => {
   *     await new Promise((resolve) => setTimeout(resolve, 3 - user_id));
   *     tracker.emit("page.view");
   *   })
   * ));
   * assert.deepEqual(sink.events.map((e) => e.context.user_id).sort(), [1, 2]);
   * ```
   *
   * @returns What `fn` returned.
   * @throws {TypeError} If `context` is not a plain object of JSON-compatible values.
   */
  context<T>(name: string, context: Record<string, unknown>, fn: () => T): T {
    return this.#scopes.run(name, context, fn);
  }

  /** The merged context an event emitted now would carry. */
  resolveContext(): ResolvedContext {
    return this.#scopes.stack.merged;
  }

  /**
   * Returns a view whose events carry this tracker's scopes plus one more,
   * without changing the tracker: explicit, immutable scopes that need no
   * async context propagation.
   *
   * @example A request-scoped view
   * ```ts
   * import { InMemoryBackend, Tracker } from "@edx/event-tracking";
   * import assert from "node:assert/strict";
   *
   * const sink = new InMemoryBackend();
   * const tracker = new Tracker({ backends: { sink } });
   * const request = tracker.withContext("edx.request", { user_id: 7 });
   * request.emit("a");
   * tracker.emit("b");
   * assert.deepEqual(sink.events.map((e) => e.context), [{ user_id: 7 }, {}]);
   * ```
   */
  withContext(name: string, context: Record<string, unknown>): ScopedTracker {
    return new ScopedTracker(this, name, context);
  }

  /**
   * How full the fullest queue of the tree is, from 0 to 1. A collector uses
   * it to answer "retry later" before queues overflow.
   */
  saturation(): number {
    return this.#router.saturation();
  }

  /** Counters of every node of the routing tree, keyed by path (`root`, `root/<name>`, …). */
  metrics(): MetricsSnapshot {
    const snapshot: MetricsSnapshot = {};
    this.#router.collectMetrics("root", snapshot);
    return snapshot;
  }

  /**
   * Resolves when every backend has delivered what it accepted.
   *
   * @throws {AggregateError} If a backend failed to flush.
   */
  flush(): Promise<void> {
    return this.#router.flush();
  }

  /**
   * Flushes, then releases every backend's resources. Later emits throw.
   * With `deadlineMs`, it resolves within that time: whatever is still queued
   * or waiting for a retry then is written to its branch's dead letters.
   *
   * @throws {AggregateError} If a backend failed to flush or close.
   */
  async close(options: CloseOptions = {}): Promise<void> {
    this.#closed = true;
    await this.#router.close(options);
  }
}

/** Builds an event observed by the catalog; a documented one carries its definition's version in its context. */
function observed(
  catalog: EventCatalog,
  id: string,
  name: string,
  timestamp: string,
  scopes: ScopeStack,
  payload: Snapshot,
): TrackingEvent {
  const observation = catalog.recordBuilt(name, payload.value, timestamp);
  let context = scopes.merged;
  let contextJson = scopes.json;
  if (observation.version !== undefined) {
    const version = JSON.stringify(observation.version);
    if (Object.hasOwn(context, EVENT_TYPE_VERSION)) {
      context = Object.freeze({ ...context, [EVENT_TYPE_VERSION]: observation.version });
      contextJson = JSON.stringify(context);
    } else {
      context = Object.freeze({ ...context, [EVENT_TYPE_VERSION]: observation.version });
      contextJson = contextJson === "{}"
        ? `{"${EVENT_TYPE_VERSION}":${version}}`
        : `${contextJson.slice(0, -1)},"${EVENT_TYPE_VERSION}":${version}}`;
    }
  }
  const event = new EmittedEvent(id, name, timestamp, context, payload.value, contextJson, payload.json as string);
  catalog.rememberBuilt(event, observation);
  return event;
}

/** Gives the tracker's catalog to the schema processors of the tree that have none. */
function bindCatalog(router: RoutingBackend, catalog: EventCatalog): void {
  const bind = (processors: unknown) => {
    if (!Array.isArray(processors)) return;
    for (const processor of processors) {
      const bindable = processor as { bindCatalog?: unknown } | null;
      if (typeof bindable?.bindCatalog === "function") bindable.bindCatalog(catalog);
    }
  };
  bind(router.processors);
  for (const node of walkTree(router.backends)) bind((node.backend as { processors?: unknown }).processors);
}

/**
 * A view of a {@linkcode Tracker} with extra scopes, made by
 * {@linkcode Tracker.withContext}. It shares the tracker's backends and
 * current scopes and never changes them.
 *
 * @example Scopes carried by a view, not by the async task
 * ```ts
 * import { InMemoryBackend, ScopedTracker, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * const tracker = new Tracker({ backends: { sink } });
 * const course = new ScopedTracker(tracker, "course", { course_id: "course-v1:edX+DemoX+Demo" });
 * const user = course.withContext("user", { user_id: 7 });
 * user.emit("edx.video.played");
 * assert.deepEqual(sink.events[0].context, { course_id: "course-v1:edX+DemoX+Demo", user_id: 7 });
 * ```
 */
export class ScopedTracker implements EventEmitter {
  /** The tracker this view emits through. */
  readonly tracker: Tracker;
  #extra: ScopeStack;
  #base: ScopeStack | undefined;
  #combined: ScopeStack = ScopeStack.EMPTY;

  static {
    contextOf = (scoped, stack) => scoped.#contextOver(stack);
  }

  /**
   * Creates a view of `tracker` with one extra scope; the same as
   * `tracker.withContext(name, context)`.
   *
   * @throws {TypeError} If `context` is not a plain object of JSON-compatible values.
   */
  constructor(tracker: Tracker, name: string, context: Record<string, unknown>) {
    this.tracker = tracker;
    this.#extra = ScopeStack.EMPTY.with(name, freezeContext(name, context));
  }

  /** Emits through the tracker with this view's scopes added. See {@linkcode Tracker.emit}. */
  emit(name?: string, data?: unknown): string {
    const event = createWith(this.tracker, this, name, data);
    this.tracker.send(event);
    return event.id;
  }

  /** Builds the event {@linkcode ScopedTracker.emit} would send, without sending it. See {@linkcode Tracker.createEvent}. */
  createEvent(name?: string, data?: unknown): TrackingEvent {
    return createWith(this.tracker, this, name, data);
  }

  /** A view with one more scope, entered after this view's. */
  withContext(name: string, context: Record<string, unknown>): ScopedTracker {
    const view = new ScopedTracker(this.tracker, name, context);
    view.#extra = this.#extra.concat(view.#extra);
    return view;
  }

  /** The merged context an event emitted through this view now would carry. */
  resolveContext(): ResolvedContext {
    return this.#contextOver(stackOf(this.tracker)).merged;
  }

  // The last result is kept: consecutive emits under the same scopes reuse it.
  #contextOver(stack: ScopeStack): ScopeStack {
    if (stack !== this.#base) {
      this.#base = stack;
      this.#combined = stack.concat(this.#extra);
    }
    return this.#combined;
  }
}
