/**
 * The core as a browser app that tracks events would bundle it: `Tracker` and
 * `InMemoryBackend` from the package's main entry, nothing else.
 * test/runtime/browser_test.ts bundles this file, measures it and loads it
 * in headless Chromium.
 *
 * @module
 */

export { InMemoryBackend, Tracker } from "../../mod.ts";
