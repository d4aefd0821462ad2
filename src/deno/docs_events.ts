/**
 * `deno task docs:events [catalog] [out]`: writes the Markdown documentation
 * of an event catalog. `catalog` is a JSON file path or inline JSON
 * (default: `EVENT_TRACKING_CATALOG`); `out` is the Markdown file to write
 * (default: `docs/events.md`; `-` writes to standard output).
 *
 * @module
 */

import { catalogMarkdown } from "../catalog_markdown.ts";
import { loadCatalog } from "./serve.ts";

/**
 * Writes the Markdown documentation of a catalog to a file, or returns it when `out` is `-`.
 *
 * @example
 * ```ts
 * import { writeEventDocs } from "./docs_events.ts";
 * import assert from "node:assert/strict";
 *
 * const markdown = await writeEventDocs('{"events":{"a":{"description":"A.","version":1,"schema":{}}}}', "-");
 * assert.match(markdown, /## `a`/);
 * ```
 */
export async function writeEventDocs(catalog: string, out = "docs/events.md"): Promise<string> {
  const markdown = catalogMarkdown(await loadCatalog(catalog));
  if (out !== "-") {
    const dir = out.includes("/") ? out.slice(0, out.lastIndexOf("/")) : "";
    if (dir !== "") await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(out, markdown);
  }
  return markdown;
}

if (import.meta.main) {
  const [catalog = Deno.env.get("EVENT_TRACKING_CATALOG"), out = "docs/events.md"] = Deno.args;
  if (!catalog) {
    console.error(
      "Usage: deno task docs:events <catalog.json | inline JSON> [out.md | -]  (or set EVENT_TRACKING_CATALOG)",
    );
    Deno.exit(2);
  }
  const markdown = await writeEventDocs(catalog, out);
  if (out === "-") console.log(markdown);
  else console.error(`Wrote ${out}`);
}
