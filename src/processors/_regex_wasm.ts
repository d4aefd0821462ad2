/**
 * Loads the RegexFilter WebAssembly core (wasm/regex_filter.wasm, built from
 * wasm/src/lib.rs) and wraps one instance per filter. Private module.
 *
 * The bytes come from a generated module holding them in base64, so loading
 * is synchronous and works the same in Deno (local or from JSR), Node and
 * bundlers. Cloudflare Workers cannot compile WebAssembly from bytes at run
 * time: a Worker imports the `.wasm` file (wrangler gives a
 * `WebAssembly.Module`) and passes it to {@linkcode useRegexWasmModule} first.
 *
 * @module
 */

import { REGEX_WASM_BASE64 } from "./_regex_wasm_bytes.ts";

interface CoreExports {
  readonly memory: WebAssembly.Memory;
  input_reserve(len: number): number;
  compile(len: number): number;
  is_match(len: number): number;
  memory_usage(): number;
  message_ptr(): number;
  message_len(): number;
}

// A bundler can define this as `false` (wrangler.toml's [define] does) to drop
// the embedded bytes from bundles that always inject the module.
declare const EDX_EVENT_TRACKING_EMBEDDED_WASM: boolean | undefined;

let injected: WebAssembly.Module | undefined;
let decoded: WebAssembly.Module | undefined;

/**
 * Makes every {@linkcode RegexFilter} built afterwards use this compiled
 * module instead of compiling the bytes embedded in the package.
 *
 * Cloudflare Workers must call it before building a RegexFilter: they refuse
 * to compile WebAssembly from bytes at run time, and instead import a `.wasm`
 * file as a `WebAssembly.Module` (`import regexWasm from "./regex_filter.wasm"`,
 * a copy of the package's `wasm/regex_filter.wasm`). Other runtimes need not call it.
 *
 * @param module `wasm/regex_filter.wasm`, compiled.
 * @throws {TypeError} If `module` is not a `WebAssembly.Module`.
 *
 * @example Inject a precompiled module
 * ```ts
 * import { RegexFilter, useRegexWasmModule } from "@edx/event-tracking";
 * import { readFileSync } from "node:fs";
 * import assert from "node:assert/strict";
 *
 * // In a Worker: `import regexWasm from "./regex_filter.wasm";` gives the module.
 * const bytes = readFileSync(new URL("../../wasm/regex_filter.wasm", import.meta.url));
 * useRegexWasmModule(new WebAssembly.Module(bytes));
 * assert.equal(new RegexFilter({ regularExpressions: ["edx\\."] }).matches("edx.ui"), true);
 * ```
 */
export function useRegexWasmModule(module: WebAssembly.Module): void {
  if (!(module instanceof WebAssembly.Module)) {
    throw new TypeError(
      "Cannot use the RegexFilter WebAssembly module: expected a WebAssembly.Module",
    );
  }
  injected = module;
}

function regexWasmModule(): WebAssembly.Module {
  if (injected !== undefined) return injected;
  if (typeof EDX_EVENT_TRACKING_EMBEDDED_WASM === "undefined" || EDX_EVENT_TRACKING_EMBEDDED_WASM) {
    if (decoded === undefined) {
      const text = atob(REGEX_WASM_BASE64);
      const bytes = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
      decoded = new WebAssembly.Module(bytes);
    }
    return decoded;
  }
  throw new Error(
    "Cannot build a RegexFilter: this bundle has no embedded WebAssembly; call useRegexWasmModule() first",
  );
}

/** Thrown when the core cannot build an automaton; `message` says why. */
export class RegexCoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RegexCoreError";
  }
}

/** Memory the core may use (the module's maximum, set at link time). */
export const CORE_MEMORY_LIMIT = "256 MiB";

/**
 * One WebAssembly instance holding one DFA. `view`/`ptr` give the input
 * buffer: write a name's bytes and the sentinel at `ptr`, then call `isMatch`.
 */
export class RegexCore {
  readonly #exports: CoreExports;
  /** Byte view of the instance memory; replaced when the memory grows. */
  view: Uint8Array;
  /** Address of the input buffer in `view`. */
  ptr: number;
  /** Bytes the input buffer holds. */
  capacity: number;
  /** `is_match(len)`: 1 when a prefix of the first `len` input bytes matches. */
  readonly isMatch: (len: number) => number;

  /**
   * Builds the DFA for an already translated pattern.
   *
   * @throws {RegexCoreError} If the pattern does not compile or the automaton is too large.
   */
  constructor(pattern: string) {
    const instance = new WebAssembly.Instance(regexWasmModule(), {});
    this.#exports = instance.exports as unknown as CoreExports;
    this.isMatch = this.#exports.is_match;
    this.capacity = Math.max(256, pattern.length);
    this.ptr = this.#exports.input_reserve(this.capacity);
    this.view = new Uint8Array(this.#exports.memory.buffer);
    // The translated pattern is ASCII.
    for (let i = 0; i < pattern.length; i++) this.view[this.ptr + i] = pattern.charCodeAt(i);
    let status: number;
    try {
      status = this.#exports.compile(pattern.length);
    } catch (err) {
      const detail = this.#message();
      throw new RegexCoreError(
        detail
          ? `the regex core panicked: ${detail}`
          : `building the automaton needs more than ${CORE_MEMORY_LIMIT} of memory (${(err as Error).message})`,
      );
    }
    if (status !== 0) throw new RegexCoreError(this.#message());
    this.view = new Uint8Array(this.#exports.memory.buffer);
  }

  /** Makes the input buffer hold at least `len` bytes. */
  reserve(len: number): void {
    if (len <= this.capacity) return;
    this.capacity = Math.max(len, this.capacity * 2);
    this.ptr = this.#exports.input_reserve(this.capacity);
    this.view = new Uint8Array(this.#exports.memory.buffer);
  }

  /** Heap bytes the DFA uses. */
  memoryUsage(): number {
    return this.#exports.memory_usage();
  }

  #message(): string {
    try {
      const ptr = this.#exports.message_ptr();
      const len = this.#exports.message_len();
      return new TextDecoder().decode(new Uint8Array(this.#exports.memory.buffer, ptr, len));
    } catch {
      return "";
    }
  }
}

/**
 * Writes `name` as UTF-8 (WTF-8 for lone surrogates, as Python sees them)
 * at `core.ptr`, followed by `sentinel`; returns the byte length written.
 */
export function writeName(core: RegexCore, name: string, sentinel: number): number {
  core.reserve(name.length * 3 + 1);
  const view = core.view;
  let at = core.ptr;
  for (let i = 0; i < name.length; i++) {
    let c = name.charCodeAt(i);
    if (c < 0x80) {
      view[at++] = c;
    } else if (c < 0x800) {
      view[at++] = 0xc0 | (c >> 6);
      view[at++] = 0x80 | (c & 63);
    } else {
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < name.length) {
        const d = name.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
          view[at++] = 0xf0 | (c >> 18);
          view[at++] = 0x80 | ((c >> 12) & 63);
          view[at++] = 0x80 | ((c >> 6) & 63);
          view[at++] = 0x80 | (c & 63);
          continue;
        }
      }
      view[at++] = 0xe0 | (c >> 12);
      view[at++] = 0x80 | ((c >> 6) & 63);
      view[at++] = 0x80 | (c & 63);
    }
  }
  view[at++] = sentinel;
  return at - core.ptr;
}
