/**
 * Entry of the Node.js bundle of test/runtime/node_test.ts: the core is read
 * from `regex_filter.wasm` beside the bundle (a `file:` URL, which Node.js's
 * fetch cannot read), or, with the argument `none`, not loaded at all.
 *
 * @module
 */

import process from "node:process";
import { run } from "./_node_app.ts";

await run(process.argv[2] === "none" ? undefined : new URL("./regex_filter.wasm", import.meta.url));
