/**
 * Turns caller-owned data into a deeply frozen JSON-compatible copy, naming
 * the path of the first value that JSON cannot represent.
 *
 * @module
 */

const MAX_DEPTH = 64;
const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** A frozen copy of some data and, when asked for, its JSON text. */
export interface Snapshot {
  readonly value: unknown;
  readonly json: string | undefined;
}

class Walk {
  // Keys from the root to the current value; turned into a path only on error.
  readonly keys: (string | number)[] = [];
  readonly ancestors: object[] = [];
  readonly arrays: unknown[][] = [];
  constructor(readonly root: string, readonly deferArrays: boolean, readonly action: string) {}

  path(): string {
    let path = this.root;
    for (const key of this.keys) {
      path += typeof key === "number" ? `[${key}]` : IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
    }
    return path;
  }

  reject(what: string): never {
    throw new TypeError(`Cannot ${this.action}: ${this.path()} is ${what}, which JSON cannot represent`);
  }

  /** Checks a value that is not an object; returns what the copy holds in its place. */
  leaf(value: unknown, key?: string | number): unknown {
    switch (typeof value) {
      case "string":
      case "boolean":
        return value;
      case "number":
        if (Number.isFinite(value)) return value;
        return this.rejectAt(key, `the number ${value}`);
      case "undefined":
        return undefined;
      case "object":
        if (value === null) return null;
        return this.rejectAt(key, "an object");
      case "bigint":
        return this.rejectAt(key, "a BigInt");
      case "function":
        return this.rejectAt(key, "a function");
      default:
        return this.rejectAt(key, `a ${typeof value}`);
    }
  }

  rejectAt(key: string | number | undefined, what: string): never {
    if (key !== undefined) this.keys.push(key);
    return this.reject(what);
  }

  // Copies are made with slice() and object spread, then patched: both keep
  // V8's fast object shapes, and JSON.stringify of the copy stays on its fast
  // path (a copy built key by key stringifies about 3x slower).
  object(value: object): unknown {
    const { ancestors, keys } = this;
    if (ancestors.includes(value)) this.reject("a reference to one of its own ancestors (a cycle)");
    if (ancestors.length >= MAX_DEPTH) this.reject(`nested deeper than ${MAX_DEPTH} levels`);
    if (Array.isArray(value)) {
      ancestors.push(value);
      const copy = value.slice();
      for (let i = 0; i < copy.length; i++) {
        const item = copy[i];
        if (typeof item === "object" && item !== null) {
          keys.push(i);
          copy[i] = this.object(item);
          keys.pop();
        } else if (this.leaf(item, i) === undefined) {
          copy[i] = null;
        }
      }
      ancestors.pop();
      // A frozen array takes V8 off its fast JSON path (about 3x slower), so
      // when JSON is wanted, arrays are frozen only after it is made.
      if (this.deferArrays) this.arrays.push(copy);
      else Object.freeze(copy);
      return copy;
    }
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      if (value instanceof Date) {
        if (Number.isNaN(value.getTime())) this.reject("an invalid Date");
        return value.toISOString();
      }
      this.reject(`an instance of ${proto.constructor?.name || "an unnamed class"}`);
    }
    ancestors.push(value);
    const copy: Record<string, unknown> = { ...value };
    const names = Object.keys(copy);
    for (let i = 0; i < names.length; i++) {
      const key = names[i];
      const item = copy[key];
      if (typeof item === "object" && item !== null) {
        keys.push(key);
        copy[key] = this.object(item);
        keys.pop();
      } else {
        this.leaf(item, key);
      }
    }
    ancestors.pop();
    return Object.freeze(copy);
  }
}

/**
 * Copies `value` (JSON types, plus `Date`, which becomes its ISO string),
 * freezing every object and array of the copy. With `withJson`, also returns
 * the copy's JSON text, made before the arrays are frozen.
 *
 * @throws {TypeError} If the value holds a BigInt, function, symbol, cycle,
 * non-finite number, invalid Date, class instance, or nests deeper than 64;
 * the message names the path, e.g. `data.user.id`.
 */
export function snapshot(value: unknown, root: string, withJson = false, action = "emit event"): Snapshot {
  const walk = new Walk(root, withJson, action);
  const copy = typeof value === "object" && value !== null ? walk.object(value) : walk.leaf(value);
  if (!withJson) return { value: copy, json: undefined };
  const json = JSON.stringify(copy) ?? "null";
  for (const array of walk.arrays) Object.freeze(array);
  return { value: copy, json };
}
