/**
 * Per-branch control of personal data: a processor that removes fields and
 * replaces others by stable pseudonyms (HMAC-SHA256), so that one branch
 * (the raw tracking log) keeps them while another (analytics) never sees them.
 *
 * Pure JavaScript (`@noble/hashes`), synchronous like every processor: it
 * runs the same in Deno, Node.js, Workers and browsers.
 *
 * @module
 */

import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";
import * as v from "valibot";
import { restoreEvent, type TrackingEvent } from "../event.ts";
import { DROP, type ProcessorObject } from "../processor.ts";
import { type Expect, isPlainObject, must, options, parseOptions, type SameType, strings } from "../_schema.ts";

/** Options of {@linkcode RedactProcessor}. */
export interface RedactOptions {
  /**
   * Fields to delete, as dotted paths that start at `context.` or `data.`
   * (`context.ip`, `data.user.email`); each segment is an object key. @default []
   */
  remove?: Iterable<string>;
  /**
   * Fields to replace by `HMAC-SHA256(key, value)` in lowercase hex, as dotted
   * paths like those of `remove`. Strings are hashed as their UTF-8 bytes;
   * numbers and booleans as their text (`42` as `"42"`, so a numeric
   * `user_id` gets the same pseudonym as its string); `null` stays `null`;
   * in an object or array every such value is replaced, keys and shape kept.
   * @default []
   */
  pseudonymize?: Iterable<string>;
  /**
   * The secret HMAC key, used as its UTF-8 bytes (32 random bytes or more,
   * e.g. 64 hex characters, recommended); required when `pseudonymize` is
   * given. It is never shown in error messages.
   */
  key?: string;
}

const PATH_RULE = 'a dotted path that starts at "context." or "data." (e.g. "context.ip")';
const PATH = /^(?:context|data)(?:\.[^.]+)+$/;
const KEY_RULE = 'the secret key of "pseudonymize" (a non-empty string)';

/** A value described without showing it: the key is a secret. */
function secretShape(value: unknown): string {
  if (value === undefined || value === null) return String(value);
  if (value === "") return '""';
  return typeof value === "string" ? "a string" : `a ${typeof value}`;
}

function arrayItem(list: readonly unknown[], index: number): [v.IssuePathItem] {
  return [{ type: "array", origin: "value", input: list, key: index, value: list[index] } as v.IssuePathItem];
}

/* @__NO_SIDE_EFFECTS__ */
function paths() {
  return v.pipe(
    strings("an array of dotted paths"),
    v.rawCheck(({ dataset, addIssue, config }) => {
      if (!dataset.typed) return;
      const list = dataset.value;
      for (let i = 0; i < list.length; i++) {
        if (PATH.test(list[i])) continue;
        addIssue({ input: list[i], message: must(PATH_RULE), path: arrayItem(list, i) });
        if (config.abortEarly) return;
      }
    }),
  );
}

/** The schema of {@linkcode RedactOptions}: what the constructor and the `redact` ENGINE check. */
export const redactOptions = /* @__PURE__ */ (() =>
  v.pipe(
    options({
      remove: v.optional(paths(), []),
      pseudonymize: v.optional(paths(), []),
      key: v.optional(
        v.custom<string>(
          (value) => typeof value === "string" && value !== "",
          (issue) => `must be ${KEY_RULE}, got ${secretShape(issue.input)}`,
        ),
      ),
    }),
    v.rawCheck(({ dataset, addIssue }) => {
      if (!dataset.typed) return;
      const o = dataset.value;
      if (o.pseudonymize.length > 0 && o.key === undefined) {
        addIssue({
          input: undefined,
          message: `must be ${KEY_RULE} when "pseudonymize" is given, got undefined`,
          path: [{ type: "object", origin: "value", input: o, key: "key", value: undefined }],
        });
        return;
      }
      const removed = new Set(o.remove);
      const both = o.pseudonymize.findIndex((path) => removed.has(path));
      if (both >= 0) {
        addIssue({
          input: o.pseudonymize[both],
          message: `${JSON.stringify(o.pseudonymize[both])} is also in "remove": give it once`,
          path: [
            { type: "object", origin: "value", input: o, key: "pseudonymize", value: o.pseudonymize },
            ...arrayItem(o.pseudonymize, both),
          ],
        });
      }
    }),
  ))();
type _SameOptions = Expect<SameType<v.InferInput<typeof redactOptions>, RedactOptions>>;

/** One segment of the rules: what to do with the value here, and the rules below it. */
interface Rule {
  action?: "remove" | "pseudonymize";
  children?: Map<string, Rule>;
}

function addRule(root: Rule, path: string, action: "remove" | "pseudonymize"): void {
  let rule = root;
  for (const segment of path.split(".")) {
    rule.children ??= new Map();
    let child = rule.children.get(segment);
    if (child === undefined) rule.children.set(segment, child = {});
    rule = child;
  }
  // A path given twice in one list is one rule; one in both lists is refused by the schema.
  rule.action = action;
}

/** Sets an own property, even one named `__proto__`. */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

/** What a rule returns for a value it deletes. */
const REMOVED: unique symbol = Symbol("removed");

/**
 * Removes fields from events and replaces others by stable pseudonyms, on the
 * branch it is in. Paths are dotted and start at `context.` or `data.`; a
 * path that is absent from an event is skipped. `pseudonymize` replaces a
 * value by `HMAC-SHA256(key, value)` in lowercase hex: the same learner gets
 * the same pseudonym in every event (so analytics can still count and join),
 * and without the key nobody can reverse it or recompute it.
 *
 * It never changes the event it is given (events are frozen and shared by
 * every branch): it returns a new frozen event, and other branches still see
 * the original. An event with nothing to redact is kept as it is. It fails
 * closed: an event it cannot rebuild is dropped on its branch (counted
 * `dropped`), never passed on unredacted.
 *
 * @example Tracking log with PII, analytics branch without
 * ```ts
 * import { InMemoryBackend, RedactProcessor, RoutingBackend, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const log = new InMemoryBackend();
 * const analytics = new InMemoryBackend();
 * const tracker = new Tracker({
 *   backends: {
 *     tracking_logs: log,
 *     analytics: new RoutingBackend({
 *       processors: [
 *         new RedactProcessor({
 *           remove: ["context.ip", "context.username", "data.email"],
 *           pseudonymize: ["context.user_id"],
 *           key: "a-32-byte-or-longer-secret-key-from-a-vault",
 *         }),
 *       ],
 *       backends: { sink: analytics },
 *     }),
 *   },
 * });
 * tracker.context("edx.request", { user_id: 42, username: "ada", ip: "10.0.0.1" }, () => {
 *   tracker.emit("edx.course.enrollment.activated", { course_id: "course-v1:edX+X+1", email: "ada@example.com" });
 * });
 * assert.deepEqual(log.events[0].context, { user_id: 42, username: "ada", ip: "10.0.0.1" });
 * const redacted = analytics.events[0];
 * assert.match(redacted.context.user_id as string, /^[0-9a-f]{64}$/);
 * assert.deepEqual(redacted.data, { course_id: "course-v1:edX+X+1" });
 * assert.ok(Object.isFrozen(redacted.context));
 * ```
 */
export class RedactProcessor implements ProcessorObject {
  /** The paths removed. */
  readonly remove: readonly string[];
  /** The paths pseudonymized. */
  readonly pseudonymize: readonly string[];
  readonly #rules: Rule = {};
  /** The keyed HMAC state, cloned for each value (the key is hashed once). */
  readonly #mac: ReturnType<typeof hmac.create> | undefined;

  /**
   * Creates the processor.
   *
   * @throws {ImproperlyConfigured} If a path does not start at `context.` or `data.` or has an empty segment, a path
   * is in both lists, an option is unknown, or `pseudonymize` is given without a `key`; the message names the option
   * (`RedactProcessor.remove[1]: …`) and never shows the key.
   */
  constructor(options: RedactOptions) {
    const o = parseOptions(redactOptions, options, "RedactProcessor");
    this.remove = Object.freeze([...new Set(o.remove)]);
    this.pseudonymize = Object.freeze([...new Set(o.pseudonymize)]);
    for (const path of this.pseudonymize) addRule(this.#rules, path, "pseudonymize");
    for (const path of this.remove) addRule(this.#rules, path, "remove");
    this.#mac = o.key === undefined ? undefined : hmac.create(sha256, utf8ToBytes(o.key));
  }

  /**
   * Returns the event with the rules applied, as a new frozen event;
   * `undefined` (keep it as it is) when no path is present; {@linkcode DROP}
   * if the new event cannot be built.
   */
  process(event: TrackingEvent): TrackingEvent | undefined | typeof DROP {
    try {
      const contextRule = this.#rules.children?.get("context");
      const dataRule = this.#rules.children?.get("data");
      const context = contextRule === undefined ? event.context : this.#apply(event.context, contextRule);
      const data = dataRule === undefined ? event.data : this.#apply(event.data, dataRule);
      if (context === event.context && data === event.data) return undefined;
      return restoreEvent({
        id: event.id,
        name: event.name,
        timestamp: event.timestamp,
        context: context === REMOVED ? {} : context,
        data: data === REMOVED ? {} : data,
      });
    } catch {
      return DROP;
    }
  }

  /**
   * Applies the rule to a value: the same value when nothing changed, a copy
   * when something did. `covered`: an ancestor pseudonymizes the whole value,
   * so a pseudonymize rule here must not hash it a second time.
   */
  #apply(value: unknown, rule: Rule, covered = false): unknown {
    if (rule.action === "remove") return REMOVED;
    const pseudonymize = rule.action === "pseudonymize";
    let current = value;
    if (rule.children !== undefined && isPlainObject(value)) {
      let copy: Record<string, unknown> | undefined;
      for (const [key, child] of rule.children) {
        if (!Object.hasOwn(value, key)) continue;
        const next = this.#apply(value[key], child, covered || pseudonymize);
        if (next === value[key]) continue;
        copy ??= { ...value };
        if (next === REMOVED) delete copy[key];
        else setOwn(copy, key, next);
      }
      if (copy !== undefined) current = copy;
    }
    return pseudonymize && !covered ? this.#pseudonymize(current) : current;
  }

  /** Every string, number and boolean in the value, replaced by its pseudonym. */
  #pseudonymize(value: unknown): unknown {
    switch (typeof value) {
      case "string":
        return this.#hash(value);
      case "number":
      case "boolean":
        return this.#hash(String(value));
      case "object":
        if (value === null) return null;
        if (Array.isArray(value)) return value.map((item) => this.#pseudonymize(item));
        {
          const out: Record<string, unknown> = {};
          for (const [key, item] of Object.entries(value)) setOwn(out, key, this.#pseudonymize(item));
          return out;
        }
      default:
        return value;
    }
  }

  #hash(text: string): string {
    return bytesToHex(this.#mac!.clone().update(utf8ToBytes(text)).digest());
  }
}
