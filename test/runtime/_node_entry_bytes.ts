/**
 * Entry of the single-file Node.js bundle of test/runtime/node_test.ts: the
 * core's bytes are inlined by esbuild's `loader: { ".wasm": "binary" }`.
 *
 * @module
 */

// @ts-expect-error: Deno types a .wasm import as its instance's exports; esbuild's binary loader makes it the file's bytes.
import bytes from "../../wasm/regex_filter.wasm";
import { run } from "./_node_app.ts";

await run(bytes as Uint8Array);
