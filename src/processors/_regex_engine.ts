/**
 * Runs RegexFilter's transition tables (built by `_regex_wasm.ts`). Private
 * module.
 *
 * One *engine* per core module holds every filter's table in the memory of
 * one instance of the core, the *store*, and decides with one of two
 * walkers, chosen once by feature detection:
 *
 * - `js-string`: the walker emitted by wasm/tools/emit_walker.ts (its bytes
 *   are in `_regex_walker_wasm.ts`), compiled with WebAssembly JS String
 *   Builtins. It reads the JavaScript string itself (`charCodeAt`) and
 *   imports the store's memory: a decision copies nothing. Deno, Chromium,
 *   Firefox, Node.js ≥ 24.
 * - `copy-in`: where those builtins are missing (Node.js 20, Cloudflare
 *   Workers, whose precompiled modules get none and which cannot compile
 *   bytes at run time), a tight JavaScript loop copies the name's UTF-16
 *   units into the store's memory and the store's own `walk` (Rust) runs the
 *   same table.
 *
 * Every filter calls the same function (`walk(name, table)`), so the call
 * stays monomorphic and V8 inlines its JavaScript-to-WebAssembly transition.
 * A table is freed when its filter is garbage-collected.
 *
 * @module
 */

import { CORE_MEMORY_LIMIT, type CoreExports, RegexCoreError, regexWasmModule } from "./_regex_wasm.ts";
import { WALKER_HEX } from "./_regex_walker_wasm.ts";

/** How an engine reads names: see the module documentation. */
export type WalkerKind = "js-string" | "copy-in";

/** Decides a name against the table at `table`: 1 when a prefix matches, else 0. */
export type Walk = (name: string, table: number) => number;

/** The walker's exports (wasm/tools/emit_walker.ts). */
interface WalkerExports {
  walk: Walk;
}

/** Units the copy-in walker copies at a time: longer names are walked piece by piece. */
const PIECE = 4096;

/** One store and its walker. */
export class Engine {
  readonly kind: WalkerKind;
  readonly walk: Walk;
  readonly #store: CoreExports;
  /** The copy-in walker's view of the store's units buffer, renewed when the memory grows. */
  #units: Uint16Array = new Uint16Array(0);
  #unitsAt = 0;
  readonly #freed: FinalizationRegistry<number> | undefined;

  constructor(core: WebAssembly.Module, kind: WalkerKind) {
    const store = this.#store = new WebAssembly.Instance(core, {}).exports as unknown as CoreExports;
    this.#freed = typeof FinalizationRegistry === "function"
      ? new FinalizationRegistry((table) => store.table_free(table))
      : undefined;
    const module = kind === "js-string" ? builtinWalker() : undefined;
    if (module !== undefined) {
      const walker = new WebAssembly.Instance(module, { env: { memory: store.memory } });
      this.walk = (walker.exports as unknown as WalkerExports).walk;
      this.kind = "js-string";
    } else {
      // Units are 2-byte aligned (a Vec<u16>).
      this.#unitsAt = store.units_reserve(PIECE) >> 1;
      this.#units = new Uint16Array(store.memory.buffer);
      this.walk = (name, table) => {
        const n = name.length;
        if (n > PIECE) return this.#walkPieces(name, table);
        const units = this.#units;
        const at = this.#unitsAt;
        for (let i = 0; i < n; i++) units[at + i] = name.charCodeAt(i);
        return store.walk(table, n, 0, 1);
      };
      this.kind = "copy-in";
    }
  }

  /**
   * Copies a table into the store; it is freed once `owner` is garbage-collected.
   *
   * @returns The table's address, for {@linkcode Engine.walk}, or 0 when the store is full.
   */
  place(table: Uint8Array, owner: object): number {
    const at = this.#store.table_alloc(table.length);
    if (at === 0) return 0;
    new Uint8Array(this.#store.memory.buffer).set(table, at);
    // The memory grew: the copy-in walker's view was detached.
    if (this.kind === "copy-in" && this.#units.buffer !== this.#store.memory.buffer) {
      this.#units = new Uint16Array(this.#store.memory.buffer);
    }
    this.#freed?.register(owner, at);
    return at;
  }

  /** The copy-in walk of a long name: piece by piece, stopping as soon as the answer is known. */
  #walkPieces(name: string, table: number): number {
    const units = this.#units;
    const at = this.#unitsAt;
    let state = 0;
    for (let start = 0; start < name.length;) {
      let end = Math.min(start + PIECE, name.length);
      const last = end === name.length;
      // A surrogate pair stays in one piece.
      if (!last && (name.charCodeAt(end - 1) & 0xfc00) === 0xd800) end--;
      for (let i = start; i < end; i++) units[at + i - start] = name.charCodeAt(i);
      state = this.#store.walk(table, end - start, state, last ? 1 : 0);
      if (state <= 1) return state;
      start = end;
    }
    return 0;
  }
}

let walkerModule: WebAssembly.Module | null | undefined;

/** The walker compiled with JS String Builtins, or undefined where the runtime lacks them (or compiling). */
function builtinWalker(): WebAssembly.Module | undefined {
  if (walkerModule === undefined) {
    walkerModule = null;
    try {
      const bytes = new Uint8Array(WALKER_HEX.length / 2);
      for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(WALKER_HEX.slice(2 * i, 2 * i + 2), 16);
      const compile = WebAssembly.Module as unknown as new (
        bytes: Uint8Array,
        options: { builtins: string[] },
      ) => WebAssembly.Module;
      const module = new compile(bytes, { builtins: ["js-string"] });
      // A runtime that ignores the option leaves the string functions as imports: not worth JavaScript calls.
      if (!WebAssembly.Module.imports(module).some((i) => i.module === "wasm:js-string")) walkerModule = module;
    } catch {
      // No typed references or builtins (Node.js 20), or no compiling at run time (Cloudflare Workers).
    }
  }
  return walkerModule ?? undefined;
}

let preferred: WalkerKind = "js-string";
/** The engine new filters go to, per walker kind and core module. */
const engines = new Map<WalkerKind, WeakMap<WebAssembly.Module, Engine>>();

/** The engine for filters built now: the current core module's, with the preferred walker. */
export function currentEngine(): Engine {
  const core = regexWasmModule();
  let byModule = engines.get(preferred);
  if (byModule === undefined) engines.set(preferred, byModule = new WeakMap());
  let engine = byModule.get(core);
  if (engine === undefined) byModule.set(core, engine = new Engine(core, preferred));
  return engine;
}

/** Where a table was placed: its address, and the walk that reads it. */
export interface Placed {
  readonly table: number;
  readonly walk: Walk;
}

/**
 * Places a filter's table in the current engine's store. Tables are freed
 * only once their filters are garbage-collected, so a store may fill up
 * (256 MiB) while filters are built in a loop: new filters then go to a new
 * store, and the full one goes once its filters have.
 *
 * @throws {RegexCoreError} If the table does not fit even in an empty store.
 */
export function placeTable(table: Uint8Array, owner: object): Placed {
  let engine = currentEngine();
  let at = engine.place(table, owner);
  if (at === 0) {
    const core = regexWasmModule();
    engine = new Engine(core, preferred);
    engines.get(preferred)!.set(core, engine);
    at = engine.place(table, owner);
    if (at === 0) {
      throw new RegexCoreError(`its table (${table.length} bytes) does not fit in ${CORE_MEMORY_LIMIT} of memory`);
    }
  }
  return { table: at, walk: engine.walk };
}

/**
 * Makes filters built from now on use the copy-in walker even where JS String
 * Builtins exist (`"copy-in"`), or the best available (`"js-string"`, the
 * default). For tests and benchmarks.
 */
export function preferWalker(kind: WalkerKind): void {
  preferred = kind;
}
