/**
 * The core plus RegexFilter, for a browser: test/runtime/browser_test.ts
 * bundles this file and loads it in headless Chromium, where the page fetches
 * the WebAssembly core with `loadRegexWasm(url)` before building filters.
 *
 * @module
 */

export { InMemoryBackend, loadRegexWasm, RegexFilter, Tracker } from "../../mod.ts";
