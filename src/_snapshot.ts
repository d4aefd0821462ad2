/**
 * Turns caller-owned data into a deeply frozen JSON-compatible copy, naming
 * the path of the first value that JSON cannot represent.
 *
 * With the one `JSON.stringify` of the event, this is most of the cost of
 * `emit`, so it is written for V8. Figures below: Deno 2.9 / V8 15, 2 shared
 * cores, the 1.2 KB event of bench/emit_bench.ts (7 objects, 1 array).
 *
 * One pass validates while it copies; it allocates the copies and each
 * object's list of keys, nothing else (its stacks are reused from call to
 * call). Objects are copied by their shape (that list of keys), not spread:
 * - a spread costs ≈12 ns a key once its call site has seen more than four
 *   hidden classes (any real mix of events), ≈125 ns a key for an object in
 *   dictionary mode — which is what V8 makes of an object given 20 keys or
 *   more one by one (`o[k] = v` in a loop) — and it copies symbol keys;
 * - a shape copied COMPILE_AFTER times gets a copier compiled for it: named
 *   loads, inline checks and an object literal, ≈35 ns for 20 keys whether
 *   the source is in dictionary mode or not. The event's data copies in
 *   ≈0.6 µs this way, ≈1.3 µs spread (narrow objects) and templated (wide);
 * - before that, and where code cannot be generated (Cloudflare Workers, a
 *   page's CSP), a narrow object is copied key by key into `{}`, which V8
 *   keeps fast below 20 keys, and a wide one into a clone of a template of
 *   its shape: fast properties, which keep the stringify ≈3× cheaper.
 * Compiling costs 0.1–1 ms, once per shape, in the emit that reaches the
 * threshold; the compiled shapes are bounded (MAX_COMPILED).
 *
 * @module
 */

const MAX_DEPTH = 64;
const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** From this many keys, a copy before compiling goes through a template (see above). */
export const WIDE = 20;
/** Copies of a shape before its copier is compiled. */
export const COMPILE_AFTER = 1000;
/** Shapes remembered; beyond, all but the compiled ones are forgotten. */
export const MAX_SHAPES = 512;
const MAX_COMPILED = 128;
const MAX_COMPILED_KEYS = 64;
// JSON.parse itself makes dictionary objects beyond ≈1,000 keys.
const MAX_TEMPLATE_KEYS = 1000;

/** A frozen copy of some data and, when asked for, its JSON text. */
export interface Snapshot {
  readonly value: unknown;
  readonly json: string | undefined;
}

/** A copier compiled for one shape (see compile). */
type Copier = (walker: Walker, source: object, depth: number) => object;

interface Shape {
  readonly keys: readonly string[];
  /**
   * Hints: the last two shapes seen under each key (at 2i and 2i + 1; two,
   * as one shape can sit in two places). A hint that holds saves a lookup.
   */
  readonly children: (Shape | undefined)[];
  uses: number;
  template: Record<string, unknown> | undefined;
  copy: Copier | undefined;
}

// Shapes by their first key. A lookup compares key lists, which is mostly
// pointer comparisons (property names are internalized strings): ≈15 ns for
// 20 keys, where joining them into one string to hash costs ≈150 ns.
let shapes = new Map<string, Shape[]>();
let shapeCount = 0;
let compiledCount = 0;
let canCompile: boolean | undefined;

/** For tests: how many shapes have a compiled copier. */
export function compiledShapes(): number {
  return compiledCount;
}

/** For tests: forbid compiling (as where code generation is disallowed), or allow it again. */
export function allowCompiling(allowed: boolean): void {
  canCompile = allowed ? undefined : false;
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function shapeOf(keys: readonly string[]): Shape {
  let list = shapes.get(keys[0]);
  if (list !== undefined) {
    for (let i = 0; i < list.length; i++) if (sameKeys(list[i].keys, keys)) return list[i];
  }
  if (shapeCount >= MAX_SHAPES) {
    // Start again, keeping the compiled shapes: a stream of one-off shapes
    // (keys that are ids) cannot evict the hot ones.
    const kept = new Map<string, Shape[]>();
    shapeCount = 0;
    for (const [first, entries] of shapes) {
      const compiled = entries.filter((shape) => shape.copy !== undefined);
      if (compiled.length !== 0) kept.set(first, compiled);
      shapeCount += compiled.length;
    }
    shapes = kept;
    list = kept.get(keys[0]);
  }
  const shape: Shape = {
    keys: keys.slice(),
    children: new Array(keys.length * 2).fill(undefined),
    uses: 0,
    template: undefined,
    copy: undefined,
  };
  if (list === undefined) shapes.set(keys[0], list = []);
  list.push(shape);
  shapeCount++;
  return shape;
}

/** A fast-properties object with exactly `keys`, in that order; undefined if too wide. */
function makeTemplate(keys: readonly string[]): Record<string, unknown> | undefined {
  if (keys.length > MAX_TEMPLATE_KEYS) return undefined;
  // JSON.parse makes fast-properties objects where assigning 20 keys would
  // not, and makes "__proto__" an own property, as the copies need it.
  let text = "{";
  for (let i = 0; i < keys.length; i++) text += (i === 0 ? "" : ",") + JSON.stringify(keys[i]) + ":null";
  const template = JSON.parse(text + "}") as Record<string, unknown>;
  // Storing a number, a string and an object once settles each field's
  // representation now, instead of deprecating the template's hidden class
  // (and migrating its copies) the first times a copy stores another kind.
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    template[key] = 0;
    template[key] = 0.5;
    template[key] = "";
    template[key] = template;
    template[key] = null;
  }
  return template;
}

/**
 * Compiles a copier for one shape: it reads each key once with a named load
 * (its own inline cache: a dictionary-mode source costs little more than a
 * fast one), validates inline, and returns an object literal, whose hidden
 * class V8 makes once. The keys are embedded as JSON string literals, which
 * are valid JavaScript; "__proto__" in a literal would set the prototype, so
 * such shapes keep their template.
 */
function compile(shape: Shape): Copier | undefined {
  const keys = shape.keys;
  if (keys.length > MAX_COMPILED_KEYS || keys.includes("__proto__")) {
    shape.uses = -Infinity; // never again
    return undefined;
  }
  let body = "";
  let literal = "";
  for (let i = 0; i < keys.length; i++) {
    const v = `v${i}`;
    body += `let ${v} = s[${JSON.stringify(keys[i])}];\n` +
      `if (typeof ${v} === "object") { if (${v} !== null) { w.keys[d] = K[${i}]; ${v} = w.value(${v}, d + 1, C, ${i}); } }\n` +
      `else if (typeof ${v} === "number") { if (${v} - ${v} !== 0) w.badLeaf(${v}, d, K[${i}]); }\n` +
      `else if (typeof ${v} !== "string" && typeof ${v} !== "boolean") { if (${v} === undefined) u = true; else w.badLeaf(${v}, d, K[${i}]); }\n`;
    literal += `${i === 0 ? "" : ", "}${JSON.stringify(keys[i])}: ${v}`;
  }
  try {
    const factory = new Function(
      "K",
      "C",
      "freeze",
      `"use strict";\nreturn function copy(w, s, d) {\nlet u = false;\n${body}const c = { ${literal} };\n` +
        "return u ? w.withoutUndefined(c) : freeze(c);\n};",
    );
    canCompile = true;
    return factory(keys, shape.children, Object.freeze) as Copier;
  } catch {
    canCompile = false; // EvalError: code generation from strings is disallowed here
    return undefined;
  }
}

function define(object: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") {
    Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    object[key] = value;
  }
}

/**
 * One walk's state, reused from call to call (stacks indexed by depth). A
 * getter that emits while it is being copied gets a walker of its own.
 */
class Walker {
  /** The objects and arrays from the root down to the one being copied. */
  readonly ancestors: object[] = [];
  /** `keys[d]`: where the value at depth d + 1 sits in the one at depth d. */
  readonly keys: (string | number)[] = [];
  /**
   * Arrays copied, to freeze once the JSON is made: V8's fast JSON path
   * refuses frozen arrays (stringifying this project's bench event with its
   * one array frozen costs ≈4× as much).
   */
  readonly arrays: unknown[][] = [];
  arrayCount = 0;
  deepest = 0;
  root = "";
  action = "";
  deferArrays = false;

  path(depth: number, key?: string | number): string {
    let path = this.root;
    for (let i = 0; i <= depth; i++) {
      const k = i < depth ? this.keys[i] : key;
      if (k === undefined) break;
      path += typeof k === "number" ? `[${k}]` : IDENTIFIER.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`;
    }
    return path;
  }

  reject(what: string, depth: number, key?: string | number): never {
    throw new TypeError(`Cannot ${this.action}: ${this.path(depth, key)} is ${what}, which JSON cannot represent`);
  }

  /** Throws for a value that is neither an object nor a JSON primitive. */
  badLeaf(value: unknown, depth: number, key?: string | number): never {
    switch (typeof value) {
      case "number":
        return this.reject(`the number ${value}`, depth, key);
      case "bigint":
        return this.reject("a BigInt", depth, key);
      case "function":
        return this.reject("a function", depth, key);
      default:
        return this.reject(`a ${typeof value}`, depth, key);
    }
  }

  /** The copy of an object or array found at `depth`; a Date becomes its ISO string. */
  value(value: object, depth: number, hints?: (Shape | undefined)[], index = 0): unknown {
    const ancestors = this.ancestors;
    for (let i = 0; i < depth; i++) {
      if (ancestors[i] === value) this.reject("a reference to one of its own ancestors (a cycle)", depth);
    }
    if (depth >= MAX_DEPTH) this.reject(`nested deeper than ${MAX_DEPTH} levels`, depth);
    if (depth > this.deepest) this.deepest = depth;
    ancestors[depth] = value;
    if (Array.isArray(value)) return this.array(value, depth, hints, index);
    // Reading `constructor` is a load (≈2 ns); Object.getPrototypeOf is a
    // builtin call (≈13 ns per object). An object whose constructor is Object
    // is copied as JSON.stringify would write it: its own enumerable keys.
    if ((value as { constructor?: unknown }).constructor === Object) return this.object(value, depth, hints, index);
    const proto = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null) return this.object(value, depth, hints, index);
    if (value instanceof Date) {
      if (Number.isNaN(value.getTime())) this.reject("an invalid Date", depth);
      return value.toISOString();
    }
    return this.reject(`an instance of ${proto.constructor?.name || "an unnamed class"}`, depth);
  }

  /** Copies a plain or prototype-less object by its shape. */
  object(value: object, depth: number, hints: (Shape | undefined)[] | undefined, index: number): object {
    const source = value as Record<string, unknown>;
    const keys = Object.keys(value);
    if (keys.length === 0) return EMPTY;
    let shape: Shape | undefined;
    if (hints === undefined) {
      shape = shapeOf(keys);
    } else {
      shape = hints[2 * index];
      if (shape === undefined || !sameKeys(shape.keys, keys)) {
        const other = hints[2 * index + 1];
        hints[2 * index + 1] = shape;
        shape = other !== undefined && sameKeys(other.keys, keys) ? other : shapeOf(keys);
        hints[2 * index] = shape;
      }
    }
    if (shape.copy !== undefined) return shape.copy(this, value, depth);
    if (++shape.uses >= COMPILE_AFTER && compiledCount < MAX_COMPILED && canCompile !== false) {
      shape.copy = compile(shape);
      if (shape.copy !== undefined) {
        compiledCount++;
        shape.template = undefined;
        return shape.copy(this, value, depth);
      }
    }
    const template = keys.length < WIDE ? undefined : (shape.template ??= makeTemplate(keys));
    const copy: Record<string, unknown> = template === undefined ? {} : { ...template };
    let holes = false;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      let item = source[key];
      if (typeof item === "object") {
        if (item !== null) {
          this.keys[depth] = key;
          item = this.value(item, depth + 1, shape.children, i);
        }
      } else if (typeof item === "number") {
        if (item - item !== 0) this.badLeaf(item, depth, key); // NaN and ±Infinity
      } else if (typeof item !== "string" && typeof item !== "boolean") {
        if (item === undefined) holes = true;
        else this.badLeaf(item, depth, key);
      }
      if (template === undefined) define(copy, key, item);
      else copy[key] = item;
    }
    return holes ? this.withoutUndefined(copy) : Object.freeze(copy);
  }

  /** A frozen copy of `copy` (validated already) without its undefined values, as JSON leaves them out. */
  withoutUndefined(copy: Record<string, unknown>): object {
    const keys = Object.keys(copy).filter((key) => copy[key] !== undefined);
    const template = keys.length >= WIDE ? (shapeOf(keys).template ??= makeTemplate(keys)) : undefined;
    const result: Record<string, unknown> = template === undefined ? {} : { ...template };
    for (const key of keys) {
      if (template === undefined) define(result, key, copy[key]);
      else result[key] = copy[key];
    }
    return Object.freeze(result);
  }

  /** Copies an array; objects in it share the hint of the array's own place. */
  array(value: unknown[], depth: number, hints: (Shape | undefined)[] | undefined, index: number): unknown[] {
    // slice() keeps the elements' kind: a packed array stays packed.
    const copy = value.slice();
    for (let i = 0; i < copy.length; i++) {
      const item = copy[i];
      if (typeof item === "object") {
        if (item !== null) {
          this.keys[depth] = i;
          copy[i] = this.value(item, depth + 1, hints, index);
        }
      } else if (typeof item === "number") {
        if (item - item !== 0) this.badLeaf(item, depth, i);
      } else if (typeof item !== "string" && typeof item !== "boolean") {
        if (item === undefined) copy[i] = null; // undefined and holes, as JSON writes them
        else this.badLeaf(item, depth, i);
      }
    }
    if (this.deferArrays) this.arrays[this.arrayCount++] = copy;
    else Object.freeze(copy);
    return copy;
  }

  /** Freezes the arrays put aside, and lets go of them and of the caller's objects. */
  finish(): void {
    const { ancestors, arrays } = this;
    for (let i = 0; i < this.arrayCount; i++) {
      Object.freeze(arrays[i]);
      arrays[i] = EMPTY_ARRAY;
    }
    for (let i = 0; i <= this.deepest; i++) ancestors[i] = EMPTY;
    this.arrayCount = 0;
    this.deepest = 0;
  }
}

const EMPTY = Object.freeze({});
const EMPTY_ARRAY: unknown[] = Object.freeze([]) as unknown as unknown[];

let spare: Walker | undefined = new Walker();
// Hints for the shape of the root: one pair for snapshots with JSON (data), one for those without (contexts).
const ROOT_HINTS: (Shape | undefined)[] = [undefined, undefined, undefined, undefined];

/**
 * Copies `value` (JSON types, plus `Date`, which becomes its ISO string),
 * freezing every object and array of the copy. An object is copied when its
 * constructor is `Object` or it has no prototype, as a plain object of its
 * own enumerable string keys, each read once; keys whose value is
 * `undefined` are left out, and `undefined` and holes in arrays become
 * `null`, as JSON writes them; symbol keys are ignored. With `withJson`,
 * also returns the copy's JSON text, made before the arrays are frozen.
 *
 * @throws {TypeError} If the value holds a BigInt, function, symbol, cycle,
 * non-finite number, invalid Date, class instance, or nests deeper than 64;
 * the message names the path, e.g. `data.user.id`.
 */
export function snapshot(value: unknown, root: string, withJson = false, action = "emit event"): Snapshot {
  const walker = spare ?? new Walker();
  spare = undefined;
  walker.root = root;
  walker.action = action;
  walker.deferArrays = withJson;
  try {
    let copy = value;
    if (typeof value === "object") {
      if (value !== null) copy = walker.value(value, 0, ROOT_HINTS, withJson ? 0 : 1);
    } else if (typeof value === "number") {
      if (value - value !== 0) walker.badLeaf(value, 0);
    } else if (typeof value !== "string" && typeof value !== "boolean" && value !== undefined) {
      walker.badLeaf(value, 0);
    }
    return { value: copy, json: withJson ? JSON.stringify(copy) ?? "null" : undefined };
  } finally {
    walker.finish(); // once the JSON is made
    spare = walker;
  }
}
