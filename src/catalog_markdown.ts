/**
 * Markdown documentation of an {@linkcode EventCatalog}: what
 * `deno task docs:events` writes.
 *
 * @module
 */

import type { EventCatalog, JsonSchema } from "./catalog.ts";

type SchemaObject = { readonly [keyword: string]: unknown };

function asObject(schema: unknown): SchemaObject {
  return typeof schema === "object" && schema !== null && !Array.isArray(schema) ? schema as SchemaObject : {};
}

function typeText(schema: SchemaObject): string {
  if (Array.isArray(schema.enum)) return schema.enum.map((item) => JSON.stringify(item)).join(" \\| ");
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  const type = Array.isArray(schema.type)
    ? schema.type.join(" \\| ")
    : typeof schema.type === "string"
    ? schema.type
    : "any";
  if (type === "array" && schema.items !== undefined && !Array.isArray(schema.items)) {
    return `array of ${typeText(asObject(schema.items))}`;
  }
  return schema.format === undefined ? type : `${type} (${schema.format})`;
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\r?\n/g, " ");
}

function fieldRows(schema: SchemaObject, prefix: string, rows: string[], depth: number): void {
  const properties = asObject(schema.properties);
  const required = Array.isArray(schema.required) ? schema.required : [];
  for (const [key, value] of Object.entries(properties)) {
    const field = asObject(value);
    const path = prefix === "" ? key : `${prefix}.${key}`;
    const description = typeof field.description === "string" ? field.description : "";
    rows.push(
      `| \`${cell(path)}\` | ${typeText(field)} | ${required.includes(key) ? "yes" : "no"} | ${cell(description)} |`,
    );
    if (depth < 8) {
      fieldRows(field, path, rows, depth + 1);
      if (field.type === "array" && field.items !== undefined) {
        fieldRows(asObject(field.items), `${path}[]`, rows, depth + 1);
      }
    }
  }
}

/** A value that matches the schema, for the example: its `examples`, `default`, `const` or `enum` first. */
function example(schema: JsonSchema | unknown, depth = 0): unknown {
  const s = asObject(schema);
  if (Array.isArray(s.examples) && s.examples.length > 0) return s.examples[0];
  if (s.default !== undefined) return s.default;
  if (s.const !== undefined) return s.const;
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[0];
  const type = Array.isArray(s.type) ? s.type.find((t) => t !== "null") ?? s.type[0] : s.type;
  if (depth > 8) return null;
  switch (type) {
    case "string":
      return s.format === "date-time"
        ? "2026-01-01T00:00:00.000Z"
        : s.format === "uri"
        ? "https://example.com"
        : "string";
    case "integer":
      return typeof s.minimum === "number" ? Math.ceil(s.minimum) : 1;
    case "number":
      return typeof s.minimum === "number" ? s.minimum : 1.5;
    case "boolean":
      return true;
    case "null":
      return null;
    case "array":
      return s.items === undefined || Array.isArray(s.items) ? [] : [example(s.items, depth + 1)];
    default: {
      if (type !== "object" && s.properties === undefined) return type === undefined ? {} : null;
      const out: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(asObject(s.properties))) out[key] = example(value, depth + 1);
      return out;
    }
  }
}

/**
 * The catalog as Markdown: one section per documented event (description,
 * version, owner, fields table, an example of its data), then the observed
 * names nobody documented, with their inferred schemas.
 *
 * @example
 * ```ts
 * import { catalogMarkdown, EventCatalog } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const catalog = new EventCatalog().define("edx.video.played", {
 *   description: "A learner started a video.",
 *   version: 2,
 *   schema: { type: "object", properties: { code: { type: "string", description: "The video." } }, required: ["code"] },
 * });
 * const markdown = catalogMarkdown(catalog);
 * assert.match(markdown, /## `edx.video.played`/);
 * assert.match(markdown, /\| `code` \| string \| yes \| The video. \|/);
 * ```
 */
export function catalogMarkdown(catalog: EventCatalog, title = "Event types"): string {
  const lines = [`# ${title}`, ""];
  const types = catalog.eventTypes();
  const documented = types.filter((type) => type.documented);
  const observed = types.filter((type) => !type.documented);
  if (documented.length > 0) {
    lines.push("| Event | Version | Description |", "| --- | --- | --- |");
    for (const type of documented) {
      lines.push(
        `| [\`${type.name}\`](#${anchor(type.name)}) | ${type.version} | ${cell(firstLine(type.description!))} |`,
      );
    }
    lines.push("");
  }
  for (const type of documented) {
    lines.push(`## \`${type.name}\``, "", type.description!, "");
    lines.push(`- Version: \`${type.version}\` (events carry it as \`context.event_type_version\`)`);
    if (type.owner !== undefined) lines.push(`- Owner: ${type.owner}`);
    if (type.since !== undefined) lines.push(`- Since: ${type.since}`);
    lines.push("");
    const rows: string[] = [];
    fieldRows(asObject(type.schema), "", rows, 0);
    if (rows.length > 0) {
      lines.push("| Field | Type | Required | Description |", "| --- | --- | --- | --- |", ...rows, "");
    }
    lines.push("Example `data`:", "", "```json", JSON.stringify(example(type.schema), null, 2), "```", "");
  }
  if (observed.length > 0) {
    lines.push("## Observed, not documented", "");
    for (const type of observed) {
      lines.push(`### \`${type.name}\``, "", `Seen ${type.seen} time(s); inferred schema of its data:`, "");
      lines.push("```json", JSON.stringify(type.inferred ?? {}, null, 2), "```", "");
    }
  }
  return lines.join("\n");
}

function firstLine(text: string): string {
  return text.split(/\r?\n/)[0];
}

function anchor(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9 _-]/g, "").replace(/ /g, "-");
}
