/**
 * JSON Schema helpers of the event catalog: a structural check of a schema
 * (the validator itself does not reject a malformed schema), the failing
 * fields of a validation, and the draft a schema declares.
 *
 * @module
 */

import type { OutputUnit } from "@cfworker/json-schema";
import { isPlainObject, show } from "./_schema.ts";

/** A JSON Schema (2020-12 or draft 7): an object, or `true` / `false`. */
export type JsonSchema = boolean | { readonly [keyword: string]: unknown };

/** One failing field of an event's data: `data.user.id`, and what is wrong with it. */
export interface ValidationIssue {
  /** Where, below the event: `data`, `data.user_id`, `data.tags[0]`. */
  readonly field: string;
  /** What the validator says. */
  readonly message: string;
}

const TYPES = new Set(["array", "boolean", "integer", "null", "number", "object", "string"]);
const ONE_SCHEMA = [
  "not",
  "if",
  "then",
  "else",
  "additionalProperties",
  "unevaluatedProperties",
  "propertyNames",
  "contains",
  "additionalItems",
  "unevaluatedItems",
];
const SCHEMA_LISTS = ["allOf", "anyOf", "oneOf", "prefixItems"];
const SCHEMA_MAPS = ["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"];

/**
 * Checks the structure of a schema and returns the first problem, as
 * `<path>: <what>`, or `undefined` when it is well formed.
 *
 * @example
 * ```ts
 * import { schemaProblem } from "./_json_schema.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(schemaProblem({ type: "object", properties: { a: { type: "integer" } } }), undefined);
 * assert.equal(schemaProblem({ properties: { a: { type: "strin" } } }), 'schema.properties.a.type: unknown type "strin"');
 * ```
 */
export function schemaProblem(schema: unknown, path = "schema", depth = 0): string | undefined {
  if (typeof schema === "boolean") return undefined;
  if (!isPlainObject(schema)) return `${path}: must be an object or a boolean, got ${show(schema)}`;
  if (depth > 64) return `${path}: nested too deeply`;
  const type = schema.type;
  if (type !== undefined) {
    const list = Array.isArray(type) ? type : [type];
    if (list.length === 0) return `${path}.type: must not be empty`;
    for (const item of list) if (!TYPES.has(item as string)) return `${path}.type: unknown type ${show(item)}`;
  }
  if (schema.required !== undefined) {
    if (!Array.isArray(schema.required) || schema.required.some((key) => typeof key !== "string")) {
      return `${path}.required: must be an array of strings, got ${show(schema.required)}`;
    }
  }
  if (schema.enum !== undefined && !Array.isArray(schema.enum)) {
    return `${path}.enum: must be an array, got ${show(schema.enum)}`;
  }
  for (const key of ["description", "title", "$schema", "pattern", "format"]) {
    if (schema[key] !== undefined && typeof schema[key] !== "string") {
      return `${path}.${key}: must be a string, got ${show(schema[key])}`;
    }
  }
  if (typeof schema.pattern === "string") {
    try {
      new RegExp(schema.pattern, "u");
    } catch {
      return `${path}.pattern: not a valid regular expression, got ${show(schema.pattern)}`;
    }
  }
  for (const key of ONE_SCHEMA) {
    if (schema[key] !== undefined) {
      const problem = schemaProblem(schema[key], `${path}.${key}`, depth + 1);
      if (problem) return problem;
    }
  }
  for (const key of SCHEMA_LISTS) {
    const list = schema[key];
    if (list === undefined) continue;
    if (!Array.isArray(list)) return `${path}.${key}: must be an array of schemas, got ${show(list)}`;
    for (let i = 0; i < list.length; i++) {
      const problem = schemaProblem(list[i], `${path}.${key}[${i}]`, depth + 1);
      if (problem) return problem;
    }
  }
  for (const key of SCHEMA_MAPS) {
    const map = schema[key];
    if (map === undefined) continue;
    if (!isPlainObject(map)) return `${path}.${key}: must be an object of schemas, got ${show(map)}`;
    for (const [name, item] of Object.entries(map)) {
      const problem = schemaProblem(item, `${path}.${key}.${name}`, depth + 1);
      if (problem) return problem;
    }
  }
  const items = schema.items;
  if (items !== undefined) {
    if (Array.isArray(items)) {
      for (let i = 0; i < items.length; i++) {
        const problem = schemaProblem(items[i], `${path}.items[${i}]`, depth + 1);
        if (problem) return problem;
      }
    } else {
      const problem = schemaProblem(items, `${path}.items`, depth + 1);
      if (problem) return problem;
    }
  }
  return undefined;
}

/** The draft a schema declares in `$schema`: draft 7 (or 4, 2019-09) when it says so, 2020-12 otherwise. */
export function schemaDraft(schema: JsonSchema): "4" | "7" | "2019-09" | "2020-12" {
  const declared = typeof schema === "object" ? schema.$schema : undefined;
  if (typeof declared !== "string") return "2020-12";
  if (declared.includes("draft-07")) return "7";
  if (declared.includes("draft-04")) return "4";
  if (declared.includes("2019-09")) return "2019-09";
  return "2020-12";
}

function decode(segment: string): string {
  let text = segment.replace(/~1/g, "/").replace(/~0/g, "~");
  try {
    text = decodeURIComponent(text);
  } catch {
    // Not percent-encoded: as it is.
  }
  return text;
}

/** `#/user/tags/0` → `data.user.tags[0]`. */
function fieldOf(location: string, root: string): string {
  let field = root;
  for (const segment of location.replace(/^#\/?/, "").split("/")) {
    if (segment === "") continue;
    const key = decode(segment);
    field += /^\d+$/.test(key) ? `[${key}]` : `.${key}`;
  }
  return field;
}

const NAMED_PROPERTY = /(?:required property|Property) "((?:[^"\\]|\\.)*)"/;

/**
 * The failing fields of a validation: one issue per field, the deepest ones
 * only (a field whose own value is wrong, not every object above it).
 *
 * @example
 * ```ts
 * import { Validator } from "@cfworker/json-schema";
 * import { failingFields } from "./_json_schema.ts";
 * import assert from "node:assert/strict";
 *
 * const validator = new Validator({ type: "object", properties: { n: { type: "integer" } }, required: ["id"] }, "2020-12", false);
 * const { errors } = validator.validate({ n: "1" });
 * assert.deepEqual(failingFields(errors).map((issue) => issue.field), ["data.id", "data.n"]);
 * ```
 */
export function failingFields(errors: readonly OutputUnit[], root = "data"): ValidationIssue[] {
  const byField = new Map<string, string>();
  for (const error of errors) {
    let field = fieldOf(error.instanceLocation, root);
    if (error.keyword === "required" || error.keyword === "additionalProperties" || error.keyword === "false") {
      const named = NAMED_PROPERTY.exec(error.error);
      if (named !== null && error.keyword === "required") field += `.${named[1]}`;
      else if (named !== null && error.keyword === "additionalProperties") field += `.${named[1]}`;
    }
    if (!byField.has(field)) byField.set(field, error.error);
  }
  const fields = [...byField.keys()];
  const deepest = fields.filter((field) =>
    !fields.some((other) => other !== field && (other.startsWith(`${field}.`) || other.startsWith(`${field}[`)))
  );
  return deepest.sort().map((field) => ({ field, message: byField.get(field)! }));
}
