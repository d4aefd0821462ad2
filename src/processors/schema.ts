/**
 * Validates events against an {@linkcode EventCatalog} on one branch.
 *
 * @module
 */

import * as v from "valibot";
import { EVENT_TYPE_ERRORS, EVENT_TYPE_VERSION, EventCatalog, type Observation } from "../catalog.ts";
import { EventRejected } from "../errors.ts";
import type { TrackingEvent } from "../event.ts";
import { DROP, type ProcessorObject } from "../processor.ts";
import { type Expect, must, options, parseOptions, type SameType } from "../_schema.ts";

/** What a {@linkcode SchemaProcessor} does with an event whose data does not match its definition. */
export type OnInvalid = "drop" | "dead_letter" | "tag";

/** Options of {@linkcode SchemaProcessor}. */
export interface SchemaProcessorOptions {
  /**
   * The catalog to validate against: an {@linkcode EventCatalog}, or its JSON
   * form. @default the catalog of the tracker whose tree holds the processor
   */
  catalog?: EventCatalog | Record<string, unknown>;
  /**
   * An invalid event is dropped (counted as dropped), sent to the branch's
   * dead letters (`dead_letter`: on an `async_routing` branch, with the
   * failing fields in `deadLetter.error`; dropped on other branches), or
   * passed on with `context.event_type_errors` (`tag`). @default "tag"
   */
  onInvalid?: OnInvalid;
  /** Names the catalog does not document: passed on (`allow`) or dropped. @default "allow" */
  unknown?: "allow" | "drop";
}

/** The schema of {@linkcode SchemaProcessorOptions}: what the constructor and the `schema` ENGINE check. */
export const schemaProcessorOptions = /* @__PURE__ */ (() =>
  options({
    catalog: v.optional(
      v.custom<EventCatalog | Record<string, unknown>>(
        (value) => value instanceof EventCatalog || (typeof value === "object" && value !== null),
        must("an EventCatalog or its JSON form"),
      ),
    ),
    onInvalid: v.optional(
      v.picklist(["drop", "dead_letter", "tag"], must('"drop", "dead_letter" or "tag"')),
      "tag",
    ),
    unknown: v.optional(v.picklist(["allow", "drop"], must('"allow" or "drop"')), "allow"),
  }))();
type _SameOptions = Expect<SameType<v.InferInput<typeof schemaProcessorOptions>, SchemaProcessorOptions>>;

/**
 * Validates each event reaching its branch against its definition in the
 * catalog, and drops, dead-letters or tags the invalid ones; other branches
 * are not affected. An event the tracker already observed is not observed
 * again (it is counted once); without a tracker-level catalog the processor
 * observes what reaches it.
 *
 * @example Drop invalid events on one branch only
 * ```ts
 * import { EventCatalog, InMemoryBackend, RoutingBackend, SchemaProcessor, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const catalog = new EventCatalog().define("edx.video.played", {
 *   description: "A learner started a video.",
 *   version: 1,
 *   schema: { type: "object", properties: { code: { type: "string" } }, required: ["code"] },
 * });
 * const strict = new InMemoryBackend();
 * const all = new InMemoryBackend();
 * const tracker = new Tracker({
 *   catalog,
 *   backends: {
 *     strict: new RoutingBackend({ backends: { strict }, processors: [new SchemaProcessor({ onInvalid: "drop" })] }),
 *     all,
 *   },
 * });
 * tracker.emit("edx.video.played", { code: "abc" });
 * tracker.emit("edx.video.played", { code: 1 });
 * assert.equal(strict.events.length, 1);
 * assert.equal(all.events.length, 2);
 * assert.equal(all.events[0].context.event_type_version, 1);
 * assert.equal(catalog.stats("edx.video.played").invalid, 1);
 * ```
 */
export class SchemaProcessor implements ProcessorObject {
  /** What is done with invalid events. */
  readonly onInvalid: OnInvalid;
  /** What is done with undocumented names. */
  readonly unknown: "allow" | "drop";
  readonly #own: EventCatalog | undefined;
  #bound: EventCatalog | undefined;

  /**
   * Creates the processor.
   *
   * @throws {ImproperlyConfigured} If an option is unknown or invalid, or the catalog's JSON form is bad.
   */
  constructor(options: SchemaProcessorOptions = {}) {
    const o = parseOptions(schemaProcessorOptions, options, "SchemaProcessor");
    this.onInvalid = o.onInvalid;
    this.unknown = o.unknown;
    this.#own = o.catalog === undefined || o.catalog instanceof EventCatalog
      ? o.catalog
      : EventCatalog.fromJSON(o.catalog, "SchemaProcessor.catalog");
  }

  /** The catalog it validates against: its own, or its tracker's. */
  get catalog(): EventCatalog | undefined {
    return this.#own ?? this.#bound;
  }

  /**
   * Gives it the tracker's catalog, used when it has none of its own; a
   * {@linkcode Tracker} with a catalog calls it on the processors of its tree.
   */
  bindCatalog(catalog: EventCatalog): void {
    this.#bound = catalog;
  }

  /**
   * Returns `undefined` for a valid event, {@linkcode DROP} or a tagged copy
   * for an invalid or unknown one, as the options say.
   *
   * @throws {EventRejected} For an invalid event with `onInvalid: "dead_letter"`, naming the failing fields.
   * @throws {Error} If it has no catalog (not in a tracker with one, and none given): the branch logs it and passes the event on.
   */
  process(event: TrackingEvent): TrackingEvent | undefined | typeof DROP {
    const catalog = this.#own ?? this.#bound;
    if (catalog === undefined) {
      throw new Error("SchemaProcessor has no catalog: give it one, or put it in a tracker that has one");
    }
    const observation: Observation = catalog.observe(event);
    if (!observation.documented) return this.unknown === "drop" ? DROP : undefined;
    if (observation.valid) return undefined;
    switch (this.onInvalid) {
      case "drop":
        return DROP;
      case "dead_letter":
        throw new EventRejected(
          `event "${event.name}" does not match its definition (version ${observation.version}): ${
            observation.errors.map((issue) => `${issue.field}: ${issue.message}`).join("; ")
          }`,
          observation.errors.map((issue) => issue.field),
        );
      default:
        return {
          id: event.id,
          name: event.name,
          timestamp: event.timestamp,
          context: Object.freeze({
            ...event.context,
            [EVENT_TYPE_VERSION]: observation.version,
            [EVENT_TYPE_ERRORS]: observation.errors,
          }),
          data: event.data,
        };
    }
  }
}
