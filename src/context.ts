/**
 * Named context scopes: an ordered set of name → context that is merged into
 * every event, isolated per async task with `AsyncLocalStorage` where the
 * runtime has it, and scoped to the synchronous extent of a call elsewhere.
 *
 * `AsyncLocalStorage` is looked up at run time with
 * `process.getBuiltinModule("node:async_hooks")` (Node.js ≥ 20.16, Deno 2,
 * Cloudflare Workers with `nodejs_compat`), never imported, so that the core
 * bundles for browsers without a `node:` import to resolve. In a browser (or
 * any runtime without it), `context(name, ctx, fn)` scopes what `fn` runs
 * synchronously: code after an `await` inside `fn`, and callbacks it
 * schedules, see the scopes of whoever runs at that time (the process-wide
 * ones, usually). `withContext` views carry their scopes explicitly and work
 * the same everywhere.
 *
 * @module
 */

import { findNodeBuiltin } from "./_node_builtin.ts";
import { snapshot } from "./_snapshot.ts";

/** A frozen, merged context as events carry it. */
export type ResolvedContext = Readonly<Record<string, unknown>>;

const EMPTY_CONTEXT: ResolvedContext = Object.freeze({});

/**
 * An immutable ordered list of scopes. The merged context is computed once per
 * list and shared by every event emitted under it.
 */
export class ScopeStack {
  static readonly EMPTY: ScopeStack = new ScopeStack([], []);

  readonly names: readonly string[];
  readonly contexts: readonly ResolvedContext[];
  #merged: ResolvedContext | undefined;
  #json: string | undefined;

  constructor(names: readonly string[], contexts: readonly ResolvedContext[]) {
    this.names = names;
    this.contexts = contexts;
  }

  /** True if a scope of this name is in the list. */
  has(name: string): boolean {
    return this.names.includes(name);
  }

  /**
   * A list with `name` set to `context`. Re-entering a name replaces its value
   * but keeps its original position (the reference's OrderedDict semantics).
   */
  with(name: string, context: ResolvedContext): ScopeStack {
    const index = this.names.indexOf(name);
    if (index === -1) {
      return new ScopeStack([...this.names, name], [...this.contexts, context]);
    }
    const contexts = this.contexts.slice();
    contexts[index] = context;
    return new ScopeStack(this.names, contexts);
  }

  /** A list without `name`; the same list if it has no such scope. */
  without(name: string): ScopeStack {
    const index = this.names.indexOf(name);
    if (index === -1) return this;
    if (this.names.length === 1) return ScopeStack.EMPTY;
    return new ScopeStack(
      this.names.filter((_, i) => i !== index),
      this.contexts.filter((_, i) => i !== index),
    );
  }

  /** All scopes of `other` applied after this list's, as if entered later. */
  concat(other: ScopeStack): ScopeStack {
    return other.names.reduce<ScopeStack>(
      (stack, name, i) => stack.without(name).with(name, other.contexts[i]),
      this,
    );
  }

  /** The JSON text of {@linkcode ScopeStack.merged}, made once per list. */
  get json(): string {
    return this.#json ??= JSON.stringify(this.merged);
  }

  /** The shallow merge of every scope in order: later scopes win on a shared key. */
  get merged(): ResolvedContext {
    return this.#merged ??= this.contexts.length === 0
      ? EMPTY_CONTEXT
      : Object.freeze(Object.assign({}, ...this.contexts));
  }
}

/** The mutable slot holding one async task's current scopes. */
interface ScopeCell {
  stack: ScopeStack;
}

/**
 * Validates and freezes a context object for a scope.
 *
 * @throws {TypeError} If `context` is not a plain object or holds values JSON cannot represent.
 */
export function freezeContext(name: string, context: unknown): ResolvedContext {
  if (typeof name !== "string") {
    throw new TypeError(`Cannot enter context: the scope name must be a string, got ${typeof name}`);
  }
  if (typeof context !== "object" || context === null || Array.isArray(context)) {
    throw new TypeError(
      `Cannot enter context "${name}": the context must be a plain object, got ${
        context === null ? "null" : Array.isArray(context) ? "an array" : typeof context
      }`,
    );
  }
  return snapshot(context, `context[${JSON.stringify(name)}]`, false, "enter context").value as ResolvedContext;
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === "function";
}

/** What {@linkcode ContextStore} needs of `AsyncLocalStorage` (no `enterWith`: workerd lacks it). */
export interface CellStorage<T> {
  getStore(): T | undefined;
  run<R>(store: T, fn: () => R): R;
}

/** A class of {@linkcode CellStorage}: `AsyncLocalStorage`, or {@linkcode SyncCellStorage}. */
export type CellStorageClass = new <T>() => CellStorage<T>;

/**
 * Explicit scopes, for runtimes without `AsyncLocalStorage`: `run` sets the
 * store for the synchronous extent of `fn` only, and restores the previous one
 * when `fn` returns or throws.
 */
export class SyncCellStorage<T> implements CellStorage<T> {
  #store: T | undefined;

  getStore(): T | undefined {
    return this.#store;
  }

  run<R>(store: T, fn: () => R): R {
    const previous = this.#store;
    this.#store = store;
    try {
      return fn();
    } finally {
      this.#store = previous;
    }
  }
}

let asyncLocalStorageClass: CellStorageClass | null | undefined;

/**
 * The runtime's `AsyncLocalStorage`, or `null` where there is none. Found
 * without an import: `process.getBuiltinModule` is synchronous and invisible
 * to bundlers, and absent from browsers.
 */
export function findAsyncLocalStorage(): CellStorageClass | null {
  if (asyncLocalStorageClass === undefined) {
    const found = findNodeBuiltin<{ AsyncLocalStorage?: CellStorageClass }>("node:async_hooks")?.AsyncLocalStorage;
    asyncLocalStorageClass = typeof found === "function" ? found : null;
  }
  return asyncLocalStorageClass;
}

/**
 * One tracker's scopes. Outside any `run`, scopes live in one process-wide
 * cell (the reference's `DefaultContextLocator`); each `run` gives its callback
 * and everything it awaits a cell of its own, so concurrent requests never see
 * each other's scopes. It never uses `enterWith`, which workerd lacks.
 *
 * Without `AsyncLocalStorage` (browsers), a `run` cell lasts for the
 * synchronous part of the callback only; see the module documentation.
 */
export class ContextStore {
  readonly #storage: CellStorage<ScopeCell>;
  readonly #root: ScopeCell = { stack: ScopeStack.EMPTY };
  /** True when scopes entered by `run` follow the callback across `await` (`AsyncLocalStorage`). */
  readonly async: boolean;

  /** @param Storage The cell storage: by default `AsyncLocalStorage` where the runtime has it, else {@linkcode SyncCellStorage}. */
  constructor(Storage: CellStorageClass = findAsyncLocalStorage() ?? SyncCellStorage) {
    this.#storage = new Storage<ScopeCell>();
    this.async = Storage !== SyncCellStorage;
  }

  #cell(): ScopeCell {
    return this.#storage.getStore() ?? this.#root;
  }

  /** The scopes active in the current async task. */
  get stack(): ScopeStack {
    return this.#cell().stack;
  }

  /** Enters (or replaces) a scope in the current async task. */
  enter(name: string, context: unknown): void {
    const frozen = freezeContext(name, context);
    const cell = this.#cell();
    cell.stack = cell.stack.with(name, frozen);
  }

  /**
   * Leaves a scope in the current async task.
   *
   * @throws {Error} If no scope of that name is active.
   */
  exit(name: string): void {
    const cell = this.#cell();
    if (!cell.stack.has(name)) {
      throw new Error(
        `Cannot exit context "${name}": it is not active (active: ${
          cell.stack.names.map((n) => `"${n}"`).join(", ") || "none"
        })`,
      );
    }
    cell.stack = cell.stack.without(name);
  }

  /**
   * Runs `fn` with the scope entered, in a cell of its own; afterwards (after
   * its promise settles, when it returns one) the scope is gone from the
   * caller's cell as well, as in the reference.
   */
  run<T>(name: string, context: unknown, fn: () => T): T {
    const frozen = freezeContext(name, context);
    const parent = this.#cell();
    const cell: ScopeCell = { stack: parent.stack.with(name, frozen) };
    const leave = () => {
      parent.stack = parent.stack.without(name);
    };
    let result: T;
    try {
      result = this.#storage.run(cell, fn);
    } catch (error) {
      leave();
      throw error;
    }
    if (!isPromiseLike(result)) {
      leave();
      return result;
    }
    return result.then(
      (value) => {
        leave();
        return value;
      },
      (error) => {
        leave();
        throw error;
      },
    ) as T;
  }
}
