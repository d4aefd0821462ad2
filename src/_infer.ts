/**
 * Schema inference of the event catalog: a bounded summary of the samples
 * seen under one name (types per field, how often each field was present),
 * turned into a JSON Schema on demand.
 *
 * @module
 */

import type { JsonSchema } from "./_json_schema.ts";

/** The bounds of an inferred schema. */
export interface InferenceLimits {
  /** Fields kept per object; further ones are summed up as `additionalProperties: true`. */
  readonly maxFields: number;
  /** Levels of nesting described; deeper values are described by their type only. */
  readonly maxDepth: number;
}

type TypeName = "array" | "boolean" | "integer" | "null" | "number" | "object" | "string";

/** What was seen at one place in the data. */
export class Shape {
  /** The JSON types seen. */
  readonly types = new Set<TypeName>();
  /** How many samples were objects, that is, the denominator of `required`. */
  objects = 0;
  /** Fields of those objects: how often each was present, and its shape. */
  properties: Map<string, { present: number; shape: Shape }> | undefined;
  /** Objects that had fields beyond `maxFields`. */
  overflow = false;
  /** The shape of array items. */
  items: Shape | undefined;

  /**
   * Adds one sample.
   *
   * @example
   * ```ts
   * import { Shape } from "./_infer.ts";
   * import assert from "node:assert/strict";
   *
   * const shape = new Shape();
   * shape.add({ a: 1 }, { maxFields: 10, maxDepth: 4 });
   * shape.add({ a: 1.5, b: "x" }, { maxFields: 10, maxDepth: 4 });
   * assert.deepEqual(shape.toSchema(), {
   *   type: "object",
   *   properties: { a: { type: "number" }, b: { type: "string" } },
   *   required: ["a"],
   * });
   * ```
   */
  add(value: unknown, limits: InferenceLimits, depth = 0): void {
    const type = typeOf(value);
    this.types.add(type);
    if (depth >= limits.maxDepth) return;
    if (type === "object") {
      this.objects++;
      const properties = this.properties ??= new Map();
      for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
        let entry = properties.get(key);
        if (entry === undefined) {
          if (properties.size >= limits.maxFields) {
            this.overflow = true;
            continue;
          }
          properties.set(key, entry = { present: 0, shape: new Shape() });
        }
        entry.present++;
        entry.shape.add(item, limits, depth + 1);
      }
    } else if (type === "array") {
      const items = this.items ??= new Shape();
      for (const item of value as unknown[]) items.add(item, limits, depth + 1);
    }
  }

  /** The JSON Schema of what was seen: mixed integers and non-integers are `number`; `required` lists the fields present in every object. */
  toSchema(): Exclude<JsonSchema, boolean> {
    const types = [...this.types];
    const merged = this.types.has("number") ? types.filter((type) => type !== "integer") : types;
    merged.sort();
    const schema: Record<string, unknown> = {};
    if (merged.length === 1) schema.type = merged[0];
    else if (merged.length > 1) schema.type = merged;
    if (this.properties !== undefined) {
      const properties: Record<string, unknown> = {};
      const required: string[] = [];
      for (const [key, { present, shape }] of this.properties) {
        properties[key] = shape.toSchema();
        if (present === this.objects) required.push(key);
      }
      schema.properties = properties;
      if (required.length > 0) schema.required = required;
      if (this.overflow) schema.additionalProperties = true;
    }
    if (this.items !== undefined && this.items.types.size > 0) schema.items = this.items.toSchema();
    return schema;
  }
}

function typeOf(value: unknown): TypeName {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  switch (typeof value) {
    case "number":
      return Number.isInteger(value) ? "integer" : "number";
    case "boolean":
      return "boolean";
    case "string":
      return "string";
    default:
      return "object";
  }
}
