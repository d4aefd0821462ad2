/**
 * Loads the RegexFilter WebAssembly core (wasm/regex_filter.wasm, built from
 * wasm/src/lib.rs) and compiles patterns with it into transition tables.
 * Private module; `_regex_engine.ts` runs the tables.
 *
 * The package holds the `.wasm` file once; nothing embeds its bytes, and
 * nothing here runs at import, so bundles that never build a RegexFilter
 * leave all of this out. A filter is built synchronously from a compiled
 * module, which comes from, in this order:
 *
 * 1. {@linkcode useRegexWasmModule} (Cloudflare Workers, which cannot compile
 *    WebAssembly from bytes at run time, import the `.wasm` file as a module)
 *    or a completed {@linkcode loadRegexWasm} (browsers, bundles, Deno from
 *    JSR: it fetches or reads the file, or takes its bytes);
 * 2. otherwise, when this module is a local file (Deno on a checkout or a
 *    vendored copy, Node.js running the sources), a synchronous read of
 *    `../../wasm/regex_filter.wasm` beside it.
 *
 * @module
 */

import { findNodeBuiltin } from "../_node_builtin.ts";

/** Where the package keeps the core, relative to this module. */
const WASM_PATH = "../../wasm/regex_filter.wasm";

let compiled: WebAssembly.Module | undefined;
let loading: Promise<WebAssembly.Module> | undefined;

/** What {@linkcode loadRegexWasm} accepts: where the `.wasm` file is, its bytes, or the module compiled. */
export type RegexWasmSource =
  | URL
  | string
  | Response
  | PromiseLike<Response>
  | ArrayBuffer
  | ArrayBufferView
  | WebAssembly.Module;

/** The package's own copy of the core: a `file:` URL locally, `https:` from JSR, the bundle's URL in a bundle. */
function defaultUrl(): URL {
  return new URL(WASM_PATH, import.meta.url);
}

/**
 * Makes every {@linkcode RegexFilter} built afterwards use this compiled
 * module.
 *
 * Cloudflare Workers must call it before building a RegexFilter: they refuse
 * to compile WebAssembly from bytes at run time, and instead import a `.wasm`
 * file as a `WebAssembly.Module` (`import regexWasm from "./regex_filter.wasm"`,
 * the package's `wasm/regex_filter.wasm`; wrangler's default `CompiledWasm`
 * rule). Elsewhere {@linkcode loadRegexWasm} does the same from a URL or bytes.
 *
 * @param module `wasm/regex_filter.wasm`, compiled.
 * @throws {TypeError} If `module` is not a `WebAssembly.Module`.
 *
 * @example Inject a precompiled module
 * ```ts
 * import { RegexFilter, useRegexWasmModule } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * // In a Worker: `import regexWasm from "./regex_filter.wasm";` gives the module.
 * const response = await fetch(new URL("../../wasm/regex_filter.wasm", import.meta.url));
 * useRegexWasmModule(await WebAssembly.compileStreaming(response));
 * assert.equal(new RegexFilter({ regularExpressions: ["edx\\."] }).matches("edx.ui"), true);
 * ```
 */
export function useRegexWasmModule(module: WebAssembly.Module): void {
  if (!(module instanceof WebAssembly.Module)) {
    throw new TypeError(
      "Cannot use the RegexFilter WebAssembly module: expected a WebAssembly.Module",
    );
  }
  compiled = module;
}

/**
 * Loads RegexFilter's WebAssembly core, so that {@linkcode RegexFilter}s (and
 * `createTracker` configurations with a `regex_filter`) can then be built
 * synchronously. Call it once, before the first filter, wherever the package
 * is not a local file: in browsers, in bundles, in Deno from JSR.
 *
 * Without an argument it loads the package's own `wasm/regex_filter.wasm`,
 * found relative to this module (`import.meta.url`): fetched over `https:`
 * (Deno from JSR: allow the host with `--allow-net`; browsers serving the
 * package's files as they are), read from disk for a `file:` URL (Deno needs
 * `--allow-read`). A bundler that moves this module elsewhere needs the file
 * passed explicitly: its URL, a `Response`, its bytes (e.g. esbuild's
 * `loader: { ".wasm": "binary" }`) or the module compiled. Loading again
 * replaces the module used by filters built afterwards.
 *
 * @param source Where `wasm/regex_filter.wasm` is (a URL: a string is absolute or relative to the page; or a
 * `Response` or a promise of one), its bytes, or the module compiled. By default the package's own copy.
 * @returns The compiled module, once every filter built from now on can use it.
 * @throws {TypeError} If `source` is a string that is not a URL.
 * @throws {Error} If the file cannot be fetched or read, or is not WebAssembly; filters keep the module they had.
 *
 * @example Load the core, then build filters synchronously
 * ```ts
 * import { loadRegexWasm, RegexFilter } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * await loadRegexWasm();
 * const filter = new RegexFilter({ regularExpressions: ["edx\\.course\\."] });
 * assert.equal(filter.matches("edx.course.enrollment.activated"), true);
 * ```
 */
export async function loadRegexWasm(source?: RegexWasmSource): Promise<WebAssembly.Module> {
  if (source === undefined && compiled !== undefined) return compiled;
  if (source === undefined && loading !== undefined) return await loading;
  const load = compileFrom(source ?? defaultUrl());
  if (source === undefined) loading = load;
  try {
    compiled = await load;
    return compiled;
  } finally {
    if (loading === load) loading = undefined;
  }
}

async function compileFrom(source: RegexWasmSource): Promise<WebAssembly.Module> {
  if (source instanceof WebAssembly.Module) return source;
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
    return await compileOrExplain(source as BufferSource, "the bytes given");
  }
  if (typeof source !== "string" && !(source instanceof URL)) {
    const response = await readOrExplain(() => source, "the response");
    return await compileResponse(response, response.url || "the response");
  }
  let url: URL;
  try {
    // A string is an absolute URL, or relative to the page (browsers).
    url = new URL(source, (globalThis as { location?: { href?: string } }).location?.href);
  } catch (error) {
    const text = JSON.stringify(String(source));
    throw new TypeError(`Cannot load RegexFilter's WebAssembly core: ${text} is not a URL`, { cause: error });
  }
  if (url.protocol === "file:") {
    // Node.js's fetch cannot read file: URLs (Deno's can, and Deno has node:fs too).
    const fs = findNodeBuiltin<{ readFile(path: URL): Promise<Uint8Array<ArrayBuffer>> }>("node:fs/promises");
    if (fs !== undefined) {
      return await compileOrExplain(await readOrExplain(() => fs.readFile(url), url.href), url.href);
    }
  }
  return await compileResponse(await readOrExplain(() => fetch(url), url.href), url.href);
}

async function readOrExplain<T>(read: () => PromiseLike<T> | T, where: string): Promise<T> {
  try {
    return await read();
  } catch (error) {
    throw new Error(`Cannot load RegexFilter's WebAssembly core: cannot read ${where}: ${describe(error)}`, {
      cause: error,
    });
  }
}

async function compileOrExplain(bytes: BufferSource, where: string): Promise<WebAssembly.Module> {
  try {
    return await WebAssembly.compile(bytes);
  } catch (error) {
    throw new Error(`Cannot load RegexFilter's WebAssembly core from ${where}: ${describe(error)}`, { cause: error });
  }
}

async function compileResponse(response: Response, where: string): Promise<WebAssembly.Module> {
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`Cannot load RegexFilter's WebAssembly core: ${where} answered ${response.status}`);
  }
  // Not compileStreaming: it insists on the application/wasm content type, which servers often omit.
  return await compileOrExplain(await readOrExplain(() => response.arrayBuffer(), where), where);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The compiled core for a filter being built now: the loaded or injected
 * module, else the package's own file read synchronously when this module is
 * a local file.
 *
 * @throws {Error} If there is none, saying which call to make.
 */
export function regexWasmModule(): WebAssembly.Module {
  if (compiled !== undefined) return compiled;
  let url: URL | undefined;
  let reason = "no WebAssembly module was given";
  try {
    url = defaultUrl();
  } catch {
    // No import.meta.url (e.g. a script bundle): nothing to read.
  }
  if (url?.protocol === "file:") {
    const fs = findNodeBuiltin<{ readFileSync(path: URL): Uint8Array<ArrayBuffer> }>("node:fs");
    if (fs === undefined) reason = `this runtime cannot read ${url.href} synchronously`;
    else {
      try {
        compiled = new WebAssembly.Module(fs.readFileSync(url));
        return compiled;
      } catch (error) {
        reason = `cannot read ${url.href}: ${describe(error)}`;
      }
    }
  } else if (url !== undefined) {
    reason = `${url.href} is not a local file`;
  }
  throw new Error(
    `Cannot build a RegexFilter: its WebAssembly core is not loaded (${reason}). ` +
      "Call `await loadRegexWasm()` first (with the URL or bytes of wasm/regex_filter.wasm in a bundle), " +
      "or `useRegexWasmModule(module)` on Cloudflare Workers.",
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

/** The core's exports (see wasm/src/lib.rs). */
export interface CoreExports {
  readonly memory: WebAssembly.Memory;
  input_reserve(len: number): number;
  compile(len: number): number;
  info(i: number): number;
  set_limits(minimizeMaxTransitions: number, pairMaxBytes: number, pairMaxWork: number): void;
  table_ptr(): number;
  table_len(): number;
  table_alloc(bytes: number): number;
  table_free(table: number): void;
  units_reserve(len: number): number;
  walk(table: number, len: number, state: number, last: number): number;
  message_ptr(): number;
  message_len(): number;
}

/** What the core built from a pattern. */
export type Automaton =
  /** A name matches whatever it is (e.g. the pattern ""), or never does. */
  | { readonly constant: boolean }
  /** A transition table to walk, and how it was built. */
  | { readonly constant?: undefined; readonly table: Uint8Array; readonly info: AutomatonInfo };

/** Statistics of a compiled table (wasm/src/lib.rs's `INFO_*`). */
export interface AutomatonInfo {
  /** States of the DFA regex-automata determinised. */
  readonly dfaStates: number;
  /** Rows of the table: states after minimisation, with the dead and match rows. */
  readonly rows: number;
  /** Byte classes of the DFA, then of the table. */
  readonly dfaClasses: number;
  readonly classes: number;
  /** Whether the DFA was minimised (false past the cap on its live transitions). */
  readonly minimized: boolean;
  /** Live transitions of the DFA (what minimisation works on). */
  readonly transitions: number;
  /** Pair classes of two ASCII units (0 when the rows have no pair entries). */
  readonly pairClasses: number;
}

const STATUS_BUILT = 0;
const STATUS_ALWAYS = 2;
const STATUS_NEVER = 3;

/** Caps of the core (wasm/src/lib.rs's defaults); tests lower them to exercise each fallback. */
export interface CoreLimits {
  /** Live transitions past which the DFA is not minimised. */
  readonly minimizeMaxTransitions: number;
  /** Bytes of rows past which they get no pair entries… */
  readonly pairMaxBytes: number;
  /** …and row lookups past which pair classes are not computed. */
  readonly pairMaxWork: number;
}

/**
 * Compiles an already translated pattern (`_python_regex.ts`) into a table,
 * in a WebAssembly instance of its own: the memory the construction needed
 * goes with it.
 *
 * @throws {RegexCoreError} If the pattern does not compile or the automaton is too large.
 */
export function compileAutomaton(pattern: string, limits?: CoreLimits): Automaton {
  const core = new WebAssembly.Instance(regexWasmModule(), {}).exports as unknown as CoreExports;
  if (typeof core.table_alloc !== "function") {
    throw new Error(
      "Cannot build a RegexFilter: the WebAssembly core given is not this version's wasm/regex_filter.wasm " +
        "(it lacks table_alloc): load the file of the same release",
    );
  }
  if (limits) core.set_limits(limits.minimizeMaxTransitions, limits.pairMaxBytes, limits.pairMaxWork);
  const ptr = core.input_reserve(pattern.length);
  const view = new Uint8Array(core.memory.buffer);
  // The translated pattern is ASCII.
  for (let i = 0; i < pattern.length; i++) view[ptr + i] = pattern.charCodeAt(i);
  let status: number;
  try {
    status = core.compile(pattern.length);
  } catch (err) {
    const detail = message(core);
    throw new RegexCoreError(
      detail
        ? `the regex core panicked: ${detail}`
        : `building the automaton needs more than ${CORE_MEMORY_LIMIT} of memory (${(err as Error).message})`,
    );
  }
  if (status === STATUS_ALWAYS || status === STATUS_NEVER) return { constant: status === STATUS_ALWAYS };
  if (status !== STATUS_BUILT) throw new RegexCoreError(message(core));
  const info: AutomatonInfo = {
    dfaStates: core.info(0),
    rows: core.info(1),
    dfaClasses: core.info(2),
    classes: core.info(3),
    minimized: core.info(4) === 1,
    transitions: core.info(5),
    pairClasses: core.info(6),
  };
  return { table: new Uint8Array(core.memory.buffer, core.table_ptr(), core.table_len()).slice(), info };
}

function message(core: CoreExports): string {
  try {
    return new TextDecoder().decode(new Uint8Array(core.memory.buffer, core.message_ptr(), core.message_len()));
  } catch {
    return "";
  }
}
