/**
 * The text Python's `json.dumps` writes with its defaults, for the Open edX
 * tracking-log line: separators `", "` and `": "`, every character outside
 * printable ASCII escaped as `\uXXXX` (lower-case hex; astral characters as
 * surrogate pairs), keys in insertion order.
 *
 * JavaScript has one number type: an integer-valued number below 1e21 is
 * written as Python writes an `int` (all its digits), any other number as
 * Python writes a `float` (`repr`: `0.5`, `1e-05`, `1e+16`, `1.5e+300`).
 * That is the text Python writes after `json.loads` of `JSON.stringify`'s.
 *
 * @module
 */

const HEX = "0123456789abcdef";

// Escapes of the characters below 0x20 and of `"` and `\`, as Python's ESCAPE_DCT.
const SHORT: Record<string, string> = {
  '"': '\\"',
  "\\": "\\\\",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\b": "\\b",
  "\f": "\\f",
};

// Python escapes everything outside " " to "~" (so DEL, 0x7f, too), and `"` and `\`.
const NEEDS_ESCAPE = /[^ !#-[\]-~]/;

function unicodeEscape(code: number): string {
  return "\\u" + HEX[code >> 12 & 15] + HEX[code >> 8 & 15] + HEX[code >> 4 & 15] + HEX[code & 15];
}

/**
 * A string as Python's `json.dumps` writes it (with `ensure_ascii`).
 *
 * @example
 * ```ts
 * import { pythonJsonString } from "./_python_json.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(pythonJsonString("café 😀"), '"caf\\u00e9 \\ud83d\\ude00"');
 * ```
 */
export function pythonJsonString(value: string): string {
  if (!NEEDS_ESCAPE.test(value)) return `"${value}"`;
  let out = '"';
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code >= 0x20 && code <= 0x7e && code !== 0x22 && code !== 0x5c) continue;
    if (start < i) out += value.slice(start, i);
    const short = SHORT[value[i]];
    // UTF-16 code units are exactly the surrogate pairs Python writes for astral characters.
    out += short ?? unicodeEscape(code);
    start = i + 1;
  }
  return out + value.slice(start) + '"';
}

/**
 * A number as Python writes it after `json.loads` of its JavaScript JSON:
 * an `int` when integer-valued below 1e21, else a `float` by `repr`.
 *
 * @example
 * ```ts
 * import { pythonJsonNumber } from "./_python_json.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(pythonJsonNumber(3), "3");
 * assert.equal(pythonJsonNumber(0.00001), "1e-05");
 * assert.equal(pythonJsonNumber(1e21), "1e+21");
 * ```
 *
 * @throws {TypeError} If the number is not finite (JSON has no such value).
 */
export function pythonJsonNumber(value: number): string {
  if (!Number.isFinite(value)) throw new TypeError(`Cannot write ${value} as JSON`);
  if (Number.isInteger(value) && Math.abs(value) < 1e21) return Object.is(value, -0) ? "0" : String(value);
  // The shortest digits that round-trip, as Python's repr uses.
  const [mantissa, exp] = value.toExponential().split("e");
  const negative = mantissa.startsWith("-");
  const digits = mantissa.replace("-", "").replace(".", "");
  const exponent = Number(exp);
  const point = exponent + 1; // where the decimal point goes, counted in digits
  let text: string;
  if (point > 16 || point < -3) {
    const e = Math.abs(exponent);
    text = (digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits) + "e" +
      (exponent < 0 ? "-" : "+") + (e < 10 ? `0${e}` : String(e));
  } else if (point <= 0) {
    text = `0.${"0".repeat(-point)}${digits}`;
  } else if (point >= digits.length) {
    text = `${digits}${"0".repeat(point - digits.length)}.0`;
  } else {
    text = `${digits.slice(0, point)}.${digits.slice(point)}`;
  }
  return negative ? `-${text}` : text;
}

/**
 * The text of Python's `json.dumps(value)` with its default arguments, for
 * JSON-compatible data (`undefined` object members are left out, as
 * `JSON.stringify` does; `toJSON` is honoured).
 *
 * @example
 * ```ts
 * import { pythonJsonDumps } from "./_python_json.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(pythonJsonDumps({ name: "é", n: [1, 2.5, null, true] }), '{"name": "\\u00e9", "n": [1, 2.5, null, true]}');
 * ```
 *
 * @throws {TypeError} If the value holds something JSON cannot represent (a cycle, a BigInt, a non-finite number).
 */
export function pythonJsonDumps(value: unknown): string {
  const text = write(value, new Set(), 0);
  if (text === undefined) throw new TypeError(`Cannot write ${typeof value} as JSON`);
  return text;
}

function write(value: unknown, seen: Set<object>, depth: number): string | undefined {
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
      return pythonJsonString(value);
    case "number":
      return pythonJsonNumber(value);
    case "boolean":
      return value ? "true" : "false";
    case "undefined":
    case "function":
    case "symbol":
      return undefined;
    case "bigint":
      throw new TypeError("Cannot write a BigInt as JSON");
  }
  const object = value as Record<string, unknown> & { toJSON?: () => unknown };
  if (typeof object.toJSON === "function") return write(object.toJSON(), seen, depth);
  if (depth > 512) throw new TypeError("Cannot write a structure nested this deep as JSON");
  // A cycle nests without end: objects are tracked only below the depth events reach, where it still shows.
  const tracked = depth >= UNTRACKED_DEPTH;
  if (tracked) {
    if (seen.has(object)) throw new TypeError("Cannot write a cyclic structure as JSON");
    seen.add(object);
  }
  let out: string;
  if (Array.isArray(object)) {
    out = "[";
    for (let i = 0; i < object.length; i++) {
      out += (i === 0 ? "" : ", ") + (write(object[i], seen, depth + 1) ?? "null");
    }
    out += "]";
  } else {
    out = "{";
    for (const key of Object.keys(object)) {
      const item = write(object[key], seen, depth + 1);
      if (item !== undefined) out += (out.length === 1 ? "" : ", ") + pythonJsonString(key) + ": " + item;
    }
    out += "}";
  }
  if (tracked) seen.delete(object);
  return out;
}

// Events nest at most 32 levels (the snapshot's limit): below that, no bookkeeping per object.
const UNTRACKED_DEPTH = 32;
