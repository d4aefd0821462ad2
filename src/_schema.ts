/**
 * The building blocks of the option schemas that constructors and
 * `createTracker` share (valibot), and the one place where a failed check
 * becomes an {@linkcode ImproperlyConfigured}: `<where>: <what is wrong>, got <value>`.
 *
 * Nothing here has side effects. A module builds its schema in an arrow
 * function called at once and marked `@__PURE__`, so that a bundle which
 * does not use the module drops the schema, and with it the module (esbuild
 * keeps a bare top-level `v.strictObject({ … })` call).
 *
 * @module
 */

import * as v from "valibot";
import type { Backend } from "./backend.ts";
import { type DiagnosticLogger, typeName } from "./diagnostics.ts";
import { ImproperlyConfigured } from "./errors.ts";
import type { Processor } from "./processor.ts";

/** A failed check, as valibot reports it. */
export type Issue = v.BaseIssue<unknown>;

/** `true` when `A` and `B` are the same type: the proof that a schema and the interface documenting it agree. */
export type SameType<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;

/** Compiles only when `T` is `true`; use as `type _ = Expect<SameType<v.InferInput<typeof schema>, Options>>`. */
export type Expect<T extends true> = T;

/** What `expected` says in the issue of an engine slot, so that `createTracker` can speak of engine specs. */
export const BACKEND_SLOT = "Backend";
/** See {@linkcode BACKEND_SLOT}. */
export const PROCESSOR_SLOT = "Processor";

const BACKEND_WHAT = "a backend (an object with a send method)";
const PROCESSOR_WHAT = "a processor (a function, or an object with a process method)";

/**
 * Whether the value is a plain object: `{}`, `Object.create(null)`, or parsed JSON.
 *
 * @example
 * ```ts
 * import { isPlainObject } from "./_schema.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isPlainObject(JSON.parse("{}")), true);
 * assert.equal(isPlainObject(new Map()), false);
 * ```
 */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Describes a value in a message: strings quoted, small arrays and plain objects as JSON, others by type.
 *
 * @example
 * ```ts
 * import { show } from "./_schema.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(show("loud"), '"loud"');
 * assert.equal(show([1, 2]), "[1,2]");
 * assert.equal(show(new Map()), "Map");
 * ```
 */
export function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (typeof value === "bigint") return `${value}n`;
  if (Array.isArray(value) || isPlainObject(value)) {
    try {
      const json = JSON.stringify(value);
      if (json !== undefined && json.length <= 80) return json;
    } catch {
      // A cycle or a BigInt inside: its type says enough.
    }
  }
  return typeName(value);
}

/**
 * The message of a failed check: `must be <what>, got <value>`.
 *
 * @example
 * ```ts
 * import { must } from "./_schema.ts";
 * import * as v from "valibot";
 * import assert from "node:assert/strict";
 *
 * const result = v.safeParse(v.number(must("a number")), "1");
 * assert.equal(result.issues?.[0].message, 'must be a number, got "1"');
 * ```
 */
/* @__NO_SIDE_EFFECTS__ */
export function must(what: string): (issue: Issue) => string {
  return (issue) => `must be ${what}, got ${show(issue.input)}`;
}

/**
 * A strict object of options: an unknown key is an issue at its own path,
 * `unknown option (expected: …)`.
 *
 * @example
 * ```ts
 * import { options, parseOptions } from "./_schema.ts";
 * import * as v from "valibot";
 * import assert from "node:assert/strict";
 *
 * assert.throws(
 *   () => parseOptions(options({ size: v.optional(v.number()) }), { sise: 1 }, "Box"),
 *   { message: "Box.sise: unknown option (expected: size)" },
 * );
 * const size = v.number("must be a number of centimetres");
 * assert.throws(() => parseOptions(options({ size }), {}, "Box"), { message: "Box.size: must be a number of centimetres" });
 * ```
 */
/* @__NO_SIDE_EFFECTS__ */
export function options<const TEntries extends v.ObjectEntries>(
  entries: TEntries,
): v.StrictObjectSchema<TEntries, (issue: Issue) => string> {
  return v.strictObject(
    entries,
    (issue) =>
      issue.expected === "never"
        ? `unknown option (expected: ${Object.keys(entries).join(", ") || "none"})`
        : issue.path !== undefined
        // A required key that is missing: say what its own rule says of undefined.
        ? v.safeParse(entries[issue.path[0].key as string], undefined).issues?.[0].message ?? "is required"
        : `must be an object of options, got ${show(issue.input)}`,
  );
}

/**
 * The entries without some keys: a config schema leaves out what only code can give (a logger, a function).
 *
 * @example
 * ```ts
 * import { string, without } from "./_schema.ts";
 * import * as v from "valibot";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(Object.keys(without({ a: v.string(), b: v.string() }, "b")), ["a"]);
 * ```
 */
/* @__NO_SIDE_EFFECTS__ */
export function without<TEntries extends v.ObjectEntries, TKey extends keyof TEntries>(
  entries: TEntries,
  ...keys: TKey[]
): Omit<TEntries, TKey> {
  const rest: v.ObjectEntries = { ...entries };
  for (const key of keys) delete rest[key as string];
  return rest as Omit<TEntries, TKey>;
}

/**
 * A string, not empty.
 *
 * @example
 * ```ts
 * import { nonEmptyString, parseOptions } from "./_schema.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => parseOptions(nonEmptyString(), "", "Box.name"), { message: 'Box.name: must be a non-empty string, got ""' });
 * ```
 */
/* @__NO_SIDE_EFFECTS__ */
export function nonEmptyString(what = "a non-empty string") {
  const message = must(what);
  return v.pipe(v.string(message), v.minLength(1, message));
}

/**
 * A string.
 *
 * @example
 * ```ts
 * import { parseOptions, string } from "./_schema.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(parseOptions(string(), "a", "Box.name"), "a");
 * ```
 */
/* @__NO_SIDE_EFFECTS__ */
export function string(what = "a string") {
  return v.string(must(what));
}

/**
 * A boolean.
 *
 * @example
 * ```ts
 * import { boolean, parseOptions } from "./_schema.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => parseOptions(boolean(), "yes", "Box.on"), { message: 'Box.on: must be true or false, got "yes"' });
 * ```
 */
/* @__NO_SIDE_EFFECTS__ */
export function boolean(what = "true or false") {
  return v.boolean(must(what));
}

/**
 * An integer from `min` to `max`.
 *
 * @example
 * ```ts
 * import { integer, parseOptions } from "./_schema.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => parseOptions(integer("a port", 1, 65535), 70000, "Box.port"), { message: "Box.port: must be a port, got 70000" });
 * ```
 */
/* @__NO_SIDE_EFFECTS__ */
export function integer(what: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  const message = must(what);
  return v.pipe(v.number(message), v.integer(message), v.minValue(min, message), v.maxValue(max, message));
}

/**
 * An integer ≥ 1.
 *
 * @example
 * ```ts
 * import { parseOptions, positiveInteger } from "./_schema.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => parseOptions(positiveInteger(), 0, "Box.size"), { message: "Box.size: must be a positive integer, got 0" });
 * ```
 */
/* @__NO_SIDE_EFFECTS__ */
export function positiveInteger(what = "a positive integer") {
  return integer(what, 1);
}

/**
 * An integer ≥ 0.
 *
 * @example
 * ```ts
 * import { nonNegativeInteger, parseOptions } from "./_schema.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(parseOptions(nonNegativeInteger(), 0, "Box.size"), 0);
 * ```
 */
/* @__NO_SIDE_EFFECTS__ */
export function nonNegativeInteger(what = "a non-negative integer") {
  return integer(what, 0);
}

/**
 * A finite number ≥ 0 (a duration in milliseconds, say).
 *
 * @example
 * ```ts
 * import { nonNegativeNumber, parseOptions } from "./_schema.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => parseOptions(nonNegativeNumber(), -1, "Box.ms"), { message: "Box.ms: must be a non-negative number, got -1" });
 * ```
 */
/* @__NO_SIDE_EFFECTS__ */
export function nonNegativeNumber(what = "a non-negative number") {
  const message = must(what);
  return v.pipe(v.number(message), v.finite(message), v.minValue(0, message));
}

/**
 * A function (its type is the caller's to state).
 *
 * @example
 * ```ts
 * import { func, parseOptions } from "./_schema.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => parseOptions(func<() => void>(), 5, "Box.write"), { message: "Box.write: must be a function, got 5" });
 * ```
 */
/* @__NO_SIDE_EFFECTS__ */
export function func<T>(what = "a function") {
  return v.custom<T>((value) => typeof value === "function", must(what));
}

/**
 * A {@linkcode DiagnosticLogger}: an object with `warn` and `error` methods.
 *
 * @example
 * ```ts
 * import { logger, parseOptions } from "./_schema.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(parseOptions(logger(), console, "Box.logger"), console);
 * ```
 */
/* @__NO_SIDE_EFFECTS__ */
export function logger() {
  return v.custom<DiagnosticLogger>(
    (value) =>
      typeof (value as DiagnosticLogger | null)?.warn === "function" &&
      typeof (value as DiagnosticLogger).error === "function",
    must("a logger with warn and error methods"),
  );
}

function isIterableObject(value: unknown): value is Iterable<unknown> {
  return typeof value === "object" && value !== null &&
    typeof (value as Partial<Iterable<unknown>>)[Symbol.iterator] === "function";
}

function pathItem(input: unknown, key: unknown, value: unknown): [v.IssuePathItem] {
  const type = input instanceof Map ? "map" : Array.isArray(input) ? "array" : "object";
  return [{ type, origin: "value", input, key, value } as v.IssuePathItem];
}

/**
 * An array (or any iterable but a string) of strings. An iterable that is not
 * an array is copied into one, so that a generator is read only once.
 *
 * @example
 * ```ts
 * import { parseOptions, strings } from "./_schema.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseOptions(strings("names"), new Set(["a"]), "Box.names"), ["a"]);
 * assert.throws(() => parseOptions(strings("names"), ["a", 1], "Box.names"), { message: "Box.names[1]: must be a string, got 1" });
 * ```
 */
/* @__NO_SIDE_EFFECTS__ */
export function strings(what: string) {
  return v.pipe(
    v.custom<Iterable<string>>(isIterableObject, must(what)),
    v.transform((value): readonly string[] => Array.isArray(value) ? value : [...value]),
    v.rawCheck(({ dataset, addIssue, config }) => {
      if (!dataset.typed) return;
      const list = dataset.value;
      for (let i = 0; i < list.length; i++) {
        if (typeof list[i] === "string") continue;
        addIssue({ input: list[i], message: must("a string"), path: pathItem(list, i, list[i]) });
        if (config.abortEarly) return;
      }
    }),
  );
}

/**
 * A backend: an object with a `send` method.
 *
 * @example
 * ```ts
 * import { backend, parseOptions } from "./_schema.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(
 *   () => parseOptions(backend(), {}, "Box.sink"),
 *   { message: "Box.sink: must be a backend (an object with a send method), got {}" },
 * );
 * ```
 */
/* @__NO_SIDE_EFFECTS__ */
export function backend() {
  return v.pipe(
    v.custom<Backend>(() => true),
    v.rawCheck(({ dataset, addIssue }) => {
      const value = dataset.value;
      if (typeof (value as Backend | null)?.send !== "function") {
        addIssue({ input: value, expected: BACKEND_SLOT, message: must(BACKEND_WHAT) });
      }
    }),
  );
}

/**
 * Backends by name: a plain object or a Map.
 *
 * @example
 * ```ts
 * import { backends, parseOptions } from "./_schema.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(
 *   () => parseOptions(backends(), { a: 5 }, "Box.backends"),
 *   { message: "Box.backends.a: must be a backend (an object with a send method), got 5" },
 * );
 * ```
 */
/* @__NO_SIDE_EFFECTS__ */
export function backends() {
  return v.pipe(
    v.custom<Readonly<Record<string, Backend>> | ReadonlyMap<string, Backend>>(
      (value) => value instanceof Map || (typeof value === "object" && value !== null && !Array.isArray(value)),
      must("an object or Map of name to backend"),
    ),
    v.rawCheck(({ dataset, addIssue, config }) => {
      if (!dataset.typed) return;
      const value = dataset.value;
      const entries: [unknown, unknown][] = value instanceof Map ? [...value] : Object.entries(value);
      for (const [name, item] of entries) {
        if (typeof name !== "string") {
          addIssue({ input: name, message: must("named by a string"), path: pathItem(value, name, item) });
        } else if (typeof (item as Backend | null)?.send !== "function") {
          addIssue({
            input: item,
            expected: BACKEND_SLOT,
            message: must(BACKEND_WHAT),
            path: pathItem(value, name, item),
          });
        } else continue;
        if (config.abortEarly) return;
      }
    }),
  );
}

/**
 * Processors, in order: an array of functions or objects with a `process` method.
 *
 * @example
 * ```ts
 * import { parseOptions, processors } from "./_schema.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(
 *   () => parseOptions(processors(), [() => undefined, "x"], "Box.processors"),
 *   { message: 'Box.processors[1]: must be a processor (a function, or an object with a process method), got "x"' },
 * );
 * ```
 */
/* @__NO_SIDE_EFFECTS__ */
export function processors() {
  return v.pipe(
    v.custom<readonly Processor[]>(Array.isArray, must("an array of processors")),
    v.rawCheck(({ dataset, addIssue, config }) => {
      if (!dataset.typed) return;
      const list = dataset.value;
      for (let i = 0; i < list.length; i++) {
        const item: unknown = list[i];
        if (typeof item === "function" || typeof (item as { process?: unknown } | null)?.process === "function") {
          continue;
        }
        addIssue({
          input: item,
          expected: PROCESSOR_SLOT,
          message: must(PROCESSOR_WHAT),
          path: pathItem(list, i, item),
        });
        if (config.abortEarly) return;
      }
    }),
  );
}

/**
 * Where an issue is, below `root`: `.key` for an object key or a name,
 * `[i]` for an index. `name` gives the key as the user spelt it.
 *
 * @example
 * ```ts
 * import { issuePath } from "./_schema.ts";
 * import * as v from "valibot";
 * import assert from "node:assert/strict";
 *
 * const result = v.safeParse(v.object({ list: v.array(v.number()) }), { list: [1, "2"] });
 * assert.equal(issuePath(result.issues![0], "Box"), "Box.list[1]");
 * ```
 */
export function issuePath(
  issue: Issue,
  root: string,
  name: (key: string, input: unknown) => string = (key) => key,
): string {
  let path = root;
  for (const item of issue.path ?? []) {
    const key = item.key;
    if (typeof key === "number" && Array.isArray(item.input)) path += `[${key}]`;
    else if (typeof key === "string") path += path === "" ? name(key, item.input) : `.${name(key, item.input)}`;
    else path += `[${show(key)}]`;
  }
  return path;
}

/**
 * Checks `input` against a schema and returns its output (defaults filled
 * in). The first problem found is thrown, with its place below `where`: a
 * constructor passes its class name, so `new LoggerBackend({ level: "loud" })`
 * throws `LoggerBackend.level: must be one of …, got "loud"`.
 *
 * @throws {ImproperlyConfigured} If `input` does not match.
 *
 * @example
 * ```ts
 * import { must, options, parseOptions } from "./_schema.ts";
 * import * as v from "valibot";
 * import assert from "node:assert/strict";
 *
 * const schema = options({ level: v.optional(v.picklist(["info", "error"], must('"info" or "error"')), "info") });
 * assert.deepEqual(parseOptions(schema, {}, "Log"), { level: "info" });
 * assert.throws(() => parseOptions(schema, { level: "loud" }, "Log"), {
 *   name: "ImproperlyConfigured",
 *   message: 'Log.level: must be "info" or "error", got "loud"',
 * });
 * ```
 */
export function parseOptions<const TSchema extends v.GenericSchema>(
  schema: TSchema,
  input: unknown,
  where: string,
): v.InferOutput<TSchema> {
  const result = v.safeParse(schema, input, { abortEarly: true });
  if (result.success) return result.output;
  const issue = result.issues[0];
  return issueError(issue, issuePath(issue, where));
}

function issueError(issue: Issue, path: string): never {
  throw new ImproperlyConfigured(issue.message, path);
}
