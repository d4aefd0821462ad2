/**
 * The event catalog: documented event types (a description, a version and a
 * JSON Schema of the event's `data` per name), what was seen of every name,
 * and the schemas inferred for the names nobody documented.
 *
 * Validation uses `@cfworker/json-schema`, which interprets schemas without
 * generating code, so it runs where `new Function` is forbidden (Workers).
 *
 * @module
 */

import { Validator } from "@cfworker/json-schema";
import { ImproperlyConfigured } from "./errors.ts";
import { isPlainObject, show } from "./_schema.ts";
import { failingFields, type JsonSchema, schemaDraft, schemaProblem, type ValidationIssue } from "./_json_schema.ts";
import { type InferenceLimits, Shape } from "./_infer.ts";

export type { JsonSchema, ValidationIssue };

export { EVENT_TYPE_ERRORS, EVENT_TYPE_VERSION } from "./_catalog_keys.ts";

/** The documentation of one event type. */
export interface EventDefinition {
  /** What the event means and when it is emitted. */
  description: string;
  /** The version of this definition, carried by every event of this name as `context.event_type_version`. */
  version: string | number;
  /** A JSON Schema (2020-12, or draft 7 when its `$schema` says so) of the event's `data`. */
  schema: JsonSchema;
  /** Who answers for it: a team or a repository. */
  owner?: string;
  /** Since when it is emitted: a release or a date. */
  since?: string;
}

/** What was seen of one name. */
export interface EventStats {
  /** Events of this name observed. */
  seen: number;
  /** Of them, the ones whose data did not match the definition. */
  invalid: number;
  /** When the last one was observed: its timestamp, ISO-8601. */
  lastSeen: string | undefined;
}

/** The result of checking one event against the catalog. */
export interface Observation {
  /** Whether the name has a definition. */
  readonly documented: boolean;
  /** The definition's version, when documented. */
  readonly version: string | number | undefined;
  /** `false` only for a documented event whose data does not match. */
  readonly valid: boolean;
  /** The failing fields, when not valid. */
  readonly errors: readonly ValidationIssue[];
}

/** One entry of {@linkcode EventCatalog.eventTypes}: what `GET /v1/event-types` answers per name. */
export interface EventTypeInfo extends EventStats {
  /** The event name. */
  name: string;
  /** Whether it has a definition. */
  documented: boolean;
  /** The definition's fields, when documented. */
  description?: string;
  /** See {@linkcode EventDefinition.version}. */
  version?: string | number;
  /** See {@linkcode EventDefinition.schema}. */
  schema?: JsonSchema;
  /** See {@linkcode EventDefinition.owner}. */
  owner?: string;
  /** See {@linkcode EventDefinition.since}. */
  since?: string;
  /** For an undocumented name, the schema inferred from what was seen. */
  inferred?: JsonSchema;
}

/** The JSON form of a catalog: its definitions by name. */
export interface EventCatalogJSON {
  /** The definitions, by event name. */
  events: Record<string, EventDefinition>;
}

/** Options of {@linkcode EventCatalog}. */
export interface EventCatalogOptions {
  /** Names whose stats and inferred schema are kept besides the documented ones; others are counted in {@linkcode EventCatalog.untracked}. @default 1000 */
  maxNames?: number;
  /** Fields kept per object of an inferred schema. @default 100 */
  maxFields?: number;
  /** Levels of nesting of an inferred schema. @default 8 */
  maxDepth?: number;
}

interface Entry {
  definition: Readonly<EventDefinition> | undefined;
  validator: Validator | undefined;
  stats: EventStats;
  shape: Shape | undefined;
}

const VALID_UNDOCUMENTED: Observation = Object.freeze({
  documented: false,
  version: undefined,
  valid: true,
  errors: Object.freeze([]),
});

function checkDefinition(name: unknown, definition: unknown, where: string): Readonly<EventDefinition> {
  if (typeof name !== "string" || name === "") {
    throw new ImproperlyConfigured(`an event name must be a non-empty string, got ${show(name)}`, where);
  }
  const at = `${where}[${JSON.stringify(name)}]`;
  if (!isPlainObject(definition)) {
    throw new ImproperlyConfigured(
      `the definition of event "${name}" must be an object with description, version and schema, got ${
        show(definition)
      }`,
      at,
    );
  }
  for (const key of Object.keys(definition)) {
    if (!["description", "version", "schema", "owner", "since"].includes(key)) {
      throw new ImproperlyConfigured(
        `event "${name}": unknown key "${key}" (expected: description, version, schema, owner, since)`,
        `${at}.${key}`,
      );
    }
  }
  const { description, version, schema, owner, since } = definition;
  if (typeof description !== "string" || description.trim() === "") {
    throw new ImproperlyConfigured(
      `event "${name}": description must be a non-empty string, got ${show(description)}`,
      `${at}.description`,
    );
  }
  if (!(typeof version === "string" && version !== "") && !(typeof version === "number" && Number.isFinite(version))) {
    throw new ImproperlyConfigured(
      `event "${name}": version must be a non-empty string or a number, got ${show(version)}`,
      `${at}.version`,
    );
  }
  if (schema === undefined) {
    throw new ImproperlyConfigured(`event "${name}": schema is required (a JSON Schema of its data)`, `${at}.schema`);
  }
  const problem = schemaProblem(schema);
  if (problem !== undefined) {
    throw new ImproperlyConfigured(`event "${name}": invalid JSON Schema: ${problem}`, `${at}.schema`);
  }
  for (const [key, value] of [["owner", owner], ["since", since]] as const) {
    if (value !== undefined && typeof value !== "string") {
      throw new ImproperlyConfigured(`event "${name}": ${key} must be a string, got ${show(value)}`, `${at}.${key}`);
    }
  }
  const copy: EventDefinition = structuredClone({ description, version, schema } as EventDefinition);
  if (owner !== undefined) copy.owner = owner as string;
  if (since !== undefined) copy.since = since as string;
  return deepFreeze(copy);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}

function limit(value: number | undefined, fallback: number, where: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0) {
    throw new ImproperlyConfigured(`must be a non-negative integer, got ${show(value)}`, where);
  }
  return value;
}

/**
 * Documented event types, and what was seen of every name.
 *
 * Give it to a {@linkcode Tracker} (`new Tracker({ catalog })`, or `catalog`
 * in `createTracker`'s configuration) to observe every emitted event once,
 * or to a {@linkcode SchemaProcessor} to observe and validate what reaches
 * one branch. Memory is bounded: at most `maxNames` undocumented names are
 * followed, each inferred schema at most `maxFields` fields per object and
 * `maxDepth` levels deep.
 *
 * @example Document an event and validate data
 * ```ts
 * import { EventCatalog } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const catalog = new EventCatalog().define("edx.video.played", {
 *   description: "A learner started a video.",
 *   version: 2,
 *   schema: {
 *     type: "object",
 *     properties: { code: { type: "string" }, duration: { type: "number" } },
 *     required: ["code"],
 *   },
 * });
 * assert.equal(catalog.validate("edx.video.played", { code: "abc" }).valid, true);
 * assert.deepEqual(
 *   catalog.validate("edx.video.played", { duration: "long" }).errors.map((issue) => issue.field),
 *   ["data.code", "data.duration"],
 * );
 * assert.equal(catalog.describe("edx.video.played")?.version, 2);
 * ```
 */
export class EventCatalog {
  readonly #entries = new Map<string, Entry>();
  readonly #observed = new WeakMap<object, Observation>();
  readonly #limits: InferenceLimits;
  readonly #maxNames: number;
  #followed = 0;
  #untracked = 0;

  /**
   * Records an event a tracker is building (the tracker's hook; it keeps the
   * core free of the validator, which only this module loads).
   *
   * @internal
   */
  recordBuilt(name: string, data: unknown, at: string): Observation {
    return this.#record(name, data, at);
  }

  /**
   * Links a built event to its observation, so that it is not counted twice.
   *
   * @internal
   */
  rememberBuilt(event: object, observation: Observation): void {
    this.#observed.set(event, observation);
  }

  /**
   * Creates an empty catalog.
   *
   * @throws {ImproperlyConfigured} If a limit is not a non-negative integer.
   */
  constructor(options: EventCatalogOptions = {}) {
    this.#maxNames = limit(options.maxNames, 1000, "EventCatalog.maxNames");
    this.#limits = {
      maxFields: limit(options.maxFields, 100, "EventCatalog.maxFields"),
      maxDepth: limit(options.maxDepth, 8, "EventCatalog.maxDepth"),
    };
  }

  /**
   * Builds a catalog from its JSON form (`{ "events": { name: definition } }`,
   * as an object or as JSON text), such as {@linkcode EventCatalog.toJSON} gives.
   *
   * @example A round trip
   * ```ts
   * import { EventCatalog } from "@edx/event-tracking";
   * import assert from "node:assert/strict";
   *
   * const catalog = EventCatalog.fromJSON({
   *   events: { "edx.ui.click": { description: "A click.", version: "1", schema: { type: "object" } } },
   * });
   * const copy = EventCatalog.fromJSON(JSON.stringify(catalog));
   * assert.deepEqual(copy.toJSON(), catalog.toJSON());
   * ```
   *
   * @param where Where the catalog is, for errors (`catalog` in a `createTracker` configuration).
   * @throws {ImproperlyConfigured} If it is not JSON, not of that form, or a definition is bad; the message names the event.
   */
  static fromJSON(json: unknown, where = "EventCatalog", options?: EventCatalogOptions): EventCatalog {
    let value = json;
    if (typeof value === "string") {
      try {
        value = JSON.parse(value);
      } catch (error) {
        throw new ImproperlyConfigured(`not JSON (${(error as Error).message})`, where);
      }
    }
    if (!isPlainObject(value)) {
      throw new ImproperlyConfigured(`must be an object with "events", got ${show(value)}`, where);
    }
    for (const key of Object.keys(value)) {
      if (key !== "events") {
        throw new ImproperlyConfigured(`unknown key "${key}" (expected: events)`, `${where}.${key}`);
      }
    }
    const events = value.events ?? {};
    if (!isPlainObject(events)) {
      throw new ImproperlyConfigured(
        `must be an object of event name to definition, got ${show(events)}`,
        `${where}.events`,
      );
    }
    const catalog = new EventCatalog(options);
    for (const [name, definition] of Object.entries(events)) catalog.#define(name, definition, `${where}.events`);
    return catalog;
  }

  /**
   * Documents an event type, or replaces its definition; returns the catalog.
   *
   * @example
   * ```ts
   * import { EventCatalog, ImproperlyConfigured } from "@edx/event-tracking";
   * import assert from "node:assert/strict";
   *
   * const catalog = new EventCatalog();
   * assert.throws(
   *   () => catalog.define("edx.bad", { description: "", version: 1, schema: {} }),
   *   ImproperlyConfigured,
   * );
   * ```
   *
   * @throws {ImproperlyConfigured} If the description or version is missing, or the schema is not a JSON Schema; the message names the event.
   */
  define(name: string, definition: EventDefinition): this {
    this.#define(name, definition, "EventCatalog.define");
    return this;
  }

  #define(name: unknown, definition: unknown, where: string): void {
    const checked = checkDefinition(name, definition, where);
    let validator: Validator;
    try {
      validator = new Validator(
        // A copy: the validator annotates the schema it is given.
        structuredClone(checked.schema) as Exclude<JsonSchema, boolean>,
        schemaDraft(checked.schema),
        false,
      );
    } catch (error) {
      throw new ImproperlyConfigured(
        `event "${name}": invalid JSON Schema: ${(error as Error).message}`,
        `${where}[${JSON.stringify(name)}].schema`,
      );
    }
    const entry = this.#entries.get(name as string);
    if (entry === undefined) {
      this.#entries.set(name as string, {
        definition: checked,
        validator,
        stats: { seen: 0, invalid: 0, lastSeen: undefined },
        shape: undefined,
      });
    } else {
      if (entry.definition === undefined) this.#followed--;
      entry.definition = checked;
      entry.validator = validator;
      entry.shape = undefined;
    }
  }

  /**
   * The definition of a name, or `undefined` when it is not documented.
   *
   * @example
   * ```ts
   * import { EventCatalog } from "@edx/event-tracking";
   * import assert from "node:assert/strict";
   *
   * assert.equal(new EventCatalog().describe("edx.ui.click"), undefined);
   * ```
   */
  describe(name: string): Readonly<EventDefinition> | undefined {
    return this.#entries.get(name)?.definition;
  }

  /**
   * What was seen of a name: zeros when nothing was.
   *
   * @example
   * ```ts
   * import { EventCatalog, Tracker } from "@edx/event-tracking";
   * import assert from "node:assert/strict";
   *
   * const catalog = new EventCatalog();
   * const tracker = new Tracker({ catalog });
   * tracker.emit("edx.ui.click", { x: 1 });
   * assert.equal(catalog.stats("edx.ui.click").seen, 1);
   * assert.equal(catalog.stats("edx.other").seen, 0);
   * ```
   */
  stats(name: string): EventStats {
    const stats = this.#entries.get(name)?.stats;
    return stats === undefined ? { seen: 0, invalid: 0, lastSeen: undefined } : { ...stats };
  }

  /**
   * The schema inferred from the data seen under an undocumented name:
   * types per field (integers and other numbers mixed are `number`),
   * `required` the fields present in every sample. `undefined` for a
   * documented name, or one never seen.
   *
   * @example
   * ```ts
   * import { EventCatalog } from "@edx/event-tracking";
   * import assert from "node:assert/strict";
   *
   * const catalog = new EventCatalog();
   * catalog.observe({ name: "edx.ui.click", data: { x: 1, page: "a" } });
   * catalog.observe({ name: "edx.ui.click", data: { x: 2.5 } });
   * assert.deepEqual(catalog.inferred("edx.ui.click"), {
   *   type: "object",
   *   properties: { x: { type: "number" }, page: { type: "string" } },
   *   required: ["x"],
   * });
   * ```
   */
  inferred(name: string): JsonSchema | undefined {
    return this.#entries.get(name)?.shape?.toSchema();
  }

  /**
   * Every documented name and every observed one, sorted.
   *
   * @example
   * ```ts
   * import { EventCatalog } from "@edx/event-tracking";
   * import assert from "node:assert/strict";
   *
   * const catalog = new EventCatalog().define("b", { description: "B.", version: 1, schema: true });
   * catalog.observe({ name: "a", data: {} });
   * assert.deepEqual(catalog.names(), ["a", "b"]);
   * ```
   */
  names(): string[] {
    return [...this.#entries.keys()].sort();
  }

  /** Undocumented names observed beyond `maxNames`: counted here only. */
  get untracked(): number {
    return this.#untracked;
  }

  /**
   * Every documented and observed name with its definition, counts and, when
   * undocumented, its inferred schema: what `GET /v1/event-types` answers.
   *
   * @example
   * ```ts
   * import { EventCatalog } from "@edx/event-tracking";
   * import assert from "node:assert/strict";
   *
   * const catalog = new EventCatalog();
   * catalog.observe({ name: "a", data: { n: 1 } });
   * assert.deepEqual(catalog.eventTypes()[0].inferred, { type: "object", properties: { n: { type: "integer" } }, required: ["n"] });
   * ```
   */
  eventTypes(): EventTypeInfo[] {
    return this.names().map((name) => {
      const entry = this.#entries.get(name)!;
      const info: EventTypeInfo = { name, documented: entry.definition !== undefined, ...entry.stats };
      if (entry.definition !== undefined) Object.assign(info, entry.definition);
      else if (entry.shape !== undefined) info.inferred = entry.shape.toSchema();
      return info;
    });
  }

  /**
   * Checks data against the definition of a name, without counting it.
   * Undocumented names are valid.
   *
   * @example
   * ```ts
   * import { EventCatalog } from "@edx/event-tracking";
   * import assert from "node:assert/strict";
   *
   * const catalog = new EventCatalog().define("e", {
   *   description: "E.",
   *   version: 1,
   *   schema: { type: "object", properties: { user: { type: "object", properties: { id: { type: "integer" } } } } },
   * });
   * assert.deepEqual(catalog.validate("e", { user: { id: "7" } }).errors.map((issue) => issue.field), ["data.user.id"]);
   * ```
   */
  validate(name: string, data: unknown): Observation {
    const entry = this.#entries.get(name);
    if (entry?.validator === undefined) return VALID_UNDOCUMENTED;
    return this.#check(entry, data);
  }

  #check(entry: Entry, data: unknown): Observation {
    const result = entry.validator!.validate(data ?? {});
    return {
      documented: true,
      version: entry.definition!.version,
      valid: result.valid,
      errors: result.valid ? [] : failingFields(result.errors),
    };
  }

  /**
   * Observes one event: counts it, validates it when documented, and adds
   * its data to the inferred schema of its name otherwise. An event object
   * is observed once: observing it again (a tracker, then a
   * {@linkcode SchemaProcessor}) returns the first result.
   *
   * @example
   * ```ts
   * import { EventCatalog } from "@edx/event-tracking";
   * import assert from "node:assert/strict";
   *
   * const catalog = new EventCatalog();
   * const event = { name: "a", data: { n: 1 }, timestamp: "2026-01-01T00:00:00.000Z" };
   * catalog.observe(event);
   * catalog.observe(event);
   * assert.deepEqual(catalog.stats("a"), { seen: 1, invalid: 0, lastSeen: "2026-01-01T00:00:00.000Z" });
   * ```
   */
  observe(event: { readonly name: string; readonly data: unknown; readonly timestamp?: string }): Observation {
    let observation = this.#observed.get(event);
    if (observation === undefined) {
      observation = this.#record(event.name, event.data, event.timestamp ?? new Date().toISOString());
      this.#observed.set(event, observation);
    }
    return observation;
  }

  #record(name: string, data: unknown, at: string): Observation {
    let entry = this.#entries.get(name);
    if (entry === undefined) {
      if (this.#followed >= this.#maxNames) {
        this.#untracked++;
        return VALID_UNDOCUMENTED;
      }
      this.#followed++;
      entry = {
        definition: undefined,
        validator: undefined,
        stats: { seen: 0, invalid: 0, lastSeen: undefined },
        shape: new Shape(),
      };
      this.#entries.set(name, entry);
    }
    entry.stats.seen++;
    entry.stats.lastSeen = at;
    if (entry.validator === undefined) {
      entry.shape!.add(data ?? {}, this.#limits);
      return VALID_UNDOCUMENTED;
    }
    const observation = this.#check(entry, data);
    if (!observation.valid) entry.stats.invalid++;
    return observation;
  }

  /**
   * The JSON form: the definitions by name (what {@linkcode EventCatalog.fromJSON}
   * reads, and `catalog` in a `createTracker` configuration). Counts and
   * inferred schemas are not part of it.
   *
   * @example
   * ```ts
   * import { EventCatalog } from "@edx/event-tracking";
   * import assert from "node:assert/strict";
   *
   * const catalog = new EventCatalog().define("a", { description: "A.", version: 1, schema: { type: "object" } });
   * assert.deepEqual(catalog.toJSON(), { events: { a: { description: "A.", version: 1, schema: { type: "object" } } } });
   * ```
   */
  toJSON(): EventCatalogJSON {
    const events: Record<string, EventDefinition> = {};
    for (const name of this.names()) {
      const definition = this.#entries.get(name)!.definition;
      if (definition !== undefined) events[name] = structuredClone(definition) as EventDefinition;
    }
    return { events };
  }
}
