/**
 * Translates Python regular expressions (as CPython 3.11's `re.match` reads
 * them) into anchor-free, flag-free patterns for the WebAssembly DFA, or
 * explains why a pattern cannot be translated exactly. Private module.
 *
 * The DFA sees each name as its UTF-8 bytes (WTF-8 for lone surrogates)
 * followed by a `0xFF` sentinel that marks the end of the text, and answers
 * whether some prefix of that input matches. So `re.match`'s prefix semantics
 * come for free, end anchors become the sentinel, and every character class
 * is spelled out as explicit code point ranges computed with Python's own
 * definitions (no Unicode tables or case folding of the Rust crate is used).
 *
 * @module
 */

import {
  ALL,
  classSet,
  complement,
  type CpSet,
  EMPTY,
  intersect,
  isEmpty,
  literalSet,
  MAX_CP,
  subtract,
  union,
  UnsupportedRegex,
  wordSet,
} from "./_python_charset.ts";
import {
  FLAG_DOTALL,
  FLAG_MULTILINE,
  MAXREPEAT,
  NAMED_ESCAPE,
  type Node,
  parsePython,
  PythonRegexError,
} from "./_python_regex_parser.ts";

/** How one pattern translated: the Rust pattern, or why it cannot be used. */
export type Translation =
  | { readonly ok: true; readonly rust: string; readonly cost: number }
  | { readonly ok: false; readonly invalid: boolean; readonly reason: string };

/** The byte the caller appends to every name: never part of UTF-8. */
export const SENTINEL_BYTE = 0xff;
const SENTINEL = "(?-u:\\xFF)";
/** Matches nothing: 0xFE never occurs in the input. */
const NEVER = "(?-u:\\xFE)";
/** Rough NFA size a single pattern may expand to (counted repetitions multiply it). */
export const MAX_PATTERN_COST = 200_000;
// A literal: bundlers keep a top-level \`|\` of other bindings (it might call valueOf), which would put this
// module into every bundle of the core.
const TYPE_FLAGS = 292; // FLAG_ASCII | FLAG_LOCALE | FLAG_UNICODE

type AtKind =
  | "begin"
  | "begin_line"
  | "end"
  | "end_string"
  | "end_line"
  | "boundary"
  | "non_boundary";

interface Info {
  min: number;
  max: number;
  first: CpSet;
  last: CpSet;
  hasAt: boolean;
  cost: number;
}

type IR =
  & Info
  & (
    | { k: "set"; set: CpSet }
    | { k: "seq"; items: IR[] }
    | { k: "alt"; alts: IR[] }
    | { k: "rep"; lo: number; hi: number; body: IR }
    | { k: "at"; at: AtKind; word: CpSet }
  );

interface Prev {
  /** Characters that can be the last one consumed before this point. */
  last: CpSet;
  /** Whether nothing may have been consumed (the position may be 0). */
  start: boolean;
}

interface Follow {
  /** Characters that can be the first consumed after this point. */
  first: CpSet;
  /** Whether the rest of the pattern may consume nothing. */
  nullable: boolean;
  /** Whether the rest of the pattern consumes nothing and asserts nothing. */
  empty: boolean;
}

// Set while translating a pattern with `^`, `\A`, `\b` or `\B`: only then
// are the first/last character sets worth computing.
let track = false;

function setIR(set: CpSet): IR {
  return {
    k: "set",
    set,
    min: 1,
    max: 1,
    first: track ? set : EMPTY,
    last: track ? set : EMPTY,
    hasAt: false,
    cost: 1 + set.length / 2,
  };
}

function seqIR(items: IR[]): IR {
  let min = 0;
  let max = 0;
  let cost = 0;
  let hasAt = false;
  let first: CpSet = EMPTY;
  let last: CpSet = EMPTY;
  if (track) {
    for (const item of items) {
      first = union(first, item.first);
      if (item.min > 0) break;
    }
    for (let i = items.length - 1; i >= 0; i--) {
      last = union(last, items[i]!.last);
      if (items[i]!.min > 0) break;
    }
  }
  for (const item of items) {
    min += item.min;
    max += item.max;
    cost += item.cost;
    hasAt ||= item.hasAt;
  }
  return { k: "seq", items, min, max, first, last, hasAt, cost };
}

function altIR(alts: IR[]): IR {
  return {
    k: "alt",
    alts,
    min: Math.min(...alts.map((a) => a.min)),
    max: Math.max(...alts.map((a) => a.max)),
    first: track ? union(...alts.map((a) => a.first)) : EMPTY,
    last: track ? union(...alts.map((a) => a.last)) : EMPTY,
    hasAt: alts.some((a) => a.hasAt),
    cost: alts.reduce((sum, a) => sum + a.cost, 1),
  };
}

function repIR(lo: number, hi: number, body: IR): IR {
  const unbounded = hi === MAXREPEAT;
  const none = hi === 0 || body.max === 0 && !body.hasAt;
  return {
    k: "rep",
    lo,
    hi,
    body,
    min: body.min * lo,
    max: hi === 0 || body.max === 0 ? 0 : unbounded ? Infinity : body.max * hi,
    first: none ? EMPTY : body.first,
    last: none ? EMPTY : body.last,
    hasAt: hi > 0 && body.hasAt,
    cost: Math.min(body.cost * (unbounded ? lo + 1 : hi), 1e12),
  };
}

function atIR(at: AtKind, flags: number): IR {
  return {
    k: "at",
    at,
    word: at === "boundary" || at === "non_boundary" ? wordSet(flags) : EMPTY,
    min: 0,
    max: 0,
    first: EMPTY,
    last: EMPTY,
    hasAt: true,
    cost: 1,
  };
}

function combineFlags(flags: number, add: number, del: number): number {
  if (add & TYPE_FLAGS) flags &= ~TYPE_FLAGS;
  return (flags | add) & ~del;
}

function build(nodes: readonly Node[], flags: number): IR {
  return seqIR(nodes.map((node) => buildNode(node, flags)));
}

function buildNode(node: Node, flags: number): IR {
  switch (node.op) {
    case "lit":
      if (node.cp === NAMED_ESCAPE) {
        throw new UnsupportedRegex(
          "named character escapes \\N{...} are not supported: write the character or \\uXXXX",
        );
      }
      return setIR(literalSet(node.cp, flags));
    case "not_lit":
      return setIR(complement(literalSet(node.cp, flags)));
    case "any":
      return setIR(flags & FLAG_DOTALL ? ALL : complement([10, 10]));
    case "in":
      return setIR(classSet(node.items, node.negate, flags));
    case "branch":
      return altIR(node.alts.map((alt) => build(alt, flags)));
    case "subpattern":
      return build(node.body, combineFlags(flags, node.add, node.del));
    case "repeat":
      if (node.kind === "possessive") {
        throw new UnsupportedRegex(
          "it uses a possessive quantifier (*+, ++, ?+ or {m,n}+), which needs backtracking",
        );
      }
      return repIR(node.min, node.max, build(node.body, flags));
    case "atomic":
      throw new UnsupportedRegex("it uses an atomic group (?>...), which needs backtracking");
    case "groupref":
      throw new UnsupportedRegex("it uses a backreference, which needs backtracking");
    case "groupref_exists":
      throw new UnsupportedRegex(
        "it uses a conditional group (?(group)yes|no), which needs backtracking",
      );
    case "assert":
      throw new UnsupportedRegex(
        `it uses a ${node.negative ? "negative " : ""}look${
          node.behind ? "behind" : "ahead"
        } assertion, which needs backtracking`,
      );
    case "at":
      switch (node.at) {
        case "beginning":
          return atIR(flags & FLAG_MULTILINE ? "begin_line" : "begin", flags);
        case "beginning_string":
          return atIR("begin", flags);
        case "end":
          return atIR(flags & FLAG_MULTILINE ? "end_line" : "end", flags);
        case "end_string":
          return atIR("end_string", flags);
        case "boundary":
        case "non_boundary":
          return atIR(node.at, flags);
      }
  }
}

function hex(cp: number): string {
  return cp.toString(16).toUpperCase();
}

function char(cp: number): string {
  return (cp >= 48 && cp <= 57) || (cp >= 65 && cp <= 90) || (cp >= 97 && cp <= 122)
    ? String.fromCharCode(cp)
    : `\\x{${hex(cp)}}`;
}

function byte(b: number): string {
  return `\\x${hex(b).padStart(2, "0")}`;
}

/** The ranges of `set` that overlap `[lo, hi]`, clipped to it (binary search). */
function slice(set: CpSet, lo: number, hi: number): number[] {
  let a = 0;
  let b = set.length / 2;
  while (a < b) {
    const mid = (a + b) >> 1;
    if (set[2 * mid + 1]! < lo) a = mid + 1;
    else b = mid;
  }
  const out: number[] = [];
  for (let i = 2 * a; i < set.length && set[i]! <= hi; i += 2) {
    out.push(Math.max(set[i]!, lo), Math.min(set[i + 1]!, hi));
  }
  return out;
}

/** A byte class for the values `base + v` (v < 64 or 128) present in `set`. */
function byteClass(set: readonly number[], offset: number, prefix: number): string {
  if (set.length === 2 && set[0] === set[1]) return byte(prefix | (set[0]! - offset));
  let cls = "[";
  for (let i = 0; i < set.length; i += 2) {
    const lo = prefix | (set[i]! - offset);
    const hi = prefix | (set[i + 1]! - offset);
    cls += lo === hi ? byte(lo) : `${byte(lo)}-${byte(hi)}`;
  }
  return cls + "]";
}

/**
 * Groups alternatives `[lead byte, rest]` with the same rest into one byte
 * class each, so the NFA is a trie (regex-automata 0.1 compiles a Unicode
 * class into one flat alternation of UTF-8 sequences, which made patterns
 * using Python's `\w` take ≈300 ms to determinize; the trie takes a few ms).
 */
function groupByRest(alts: [number, string][]): string[] {
  const byRest = new Map<string, number[]>();
  for (const [lead, rest] of alts) {
    const leads = byRest.get(rest);
    if (leads) leads.push(lead);
    else byRest.set(rest, [lead]);
  }
  const out: string[] = [];
  for (const [rest, leads] of byRest) {
    const ranges: number[] = [];
    for (const b of leads) {
      const n = ranges.length;
      if (n && ranges[n - 1] === b - 1) ranges[n - 1] = b;
      else ranges.push(b, b);
    }
    out.push(byteClass(ranges, 0, 0) + rest);
  }
  return out;
}

/** Continuation bytes for the code points of `set` within `[base, base + 64^k)`. */
function continuation(set: readonly number[], base: number, k: number): string {
  const size = 64 ** k;
  if (set.length === 2 && set[0] === base && set[1] === base + size - 1) {
    return k === 1 ? "[\\x80-\\xBF]" : `[\\x80-\\xBF]{${k}}`;
  }
  if (k === 1) return byteClass(set, base, 0x80);
  const step = size / 64;
  const alts: [number, string][] = [];
  for (let v = 0; v < 64; v++) {
    const lo = base + v * step;
    const sub = slice(set, lo, lo + step - 1);
    if (sub.length) alts.push([0x80 | v, continuation(sub, lo, k - 1)]);
  }
  const parts = groupByRest(alts);
  return parts.length === 1 ? parts[0]! : `(?:${parts.join("|")})`;
}

/** The UTF-8 (WTF-8 for lone surrogates) byte sequences of a set, as a trie. */
function utf8Trie(set: CpSet): string {
  const alts: string[] = [];
  const ascii = slice(set, 0, 0x7f);
  if (ascii.length) alts.push(byteClass(ascii, 0, 0));
  const leads: [number, string][] = [];
  const lengths: [number, number, number, number][] = [
    // lead byte range, bits after the lead, continuation bytes
    [0xc2, 0xdf, 6, 1],
    [0xe0, 0xef, 12, 2],
    [0xf0, 0xf4, 18, 3],
  ];
  const minCp = [0, 0x80, 0x800, 0x10000];
  for (const [first, last, bits, k] of lengths) {
    for (let b = first; b <= last; b++) {
      const base = (b & (0xff >> (k + 2))) << bits;
      const lo = Math.max(base, minCp[k]!);
      const hi = Math.min(base + 2 ** bits - 1, MAX_CP);
      const sub = slice(set, lo, hi);
      if (!sub.length) continue;
      // The continuation levels are relative to the unclipped block.
      leads.push([b, continuation(sub, base, k)]);
    }
  }
  alts.push(...groupByRest(leads));
  return `(?-u:${alts.length === 1 ? alts[0] : `(?:${alts.join("|")})`})`;
}

function emitSet(set: CpSet): string {
  if (isEmpty(set)) return NEVER;
  if (set.length === 2 && set[0] === set[1]) {
    if (set[0]! < 0xd800 || set[0]! > 0xdfff) return char(set[0]!);
  }
  if (set[set.length - 1]! < 0x80) {
    let cls = "[";
    for (let i = 0; i < set.length; i += 2) {
      cls += set[i] === set[i + 1] ? char(set[i]!) : `${char(set[i]!)}-${char(set[i + 1]!)}`;
    }
    return cls + "]";
  }
  return utf8Trie(set);
}

function emit(ir: IR, prev: Prev, follow: Follow): string {
  switch (ir.k) {
    case "set":
      return emitSet(ir.set);
    case "alt":
      return `(?:${ir.alts.map((alt) => emit(alt, prev, follow)).join("|")})`;
    case "seq": {
      const n = ir.items.length;
      const follows: Follow[] = new Array(n);
      let f = follow;
      for (let i = n - 1; i >= 0; i--) {
        follows[i] = f;
        const it = ir.items[i]!;
        f = {
          first: !track ? EMPTY : it.min > 0 ? it.first : union(it.first, f.first),
          nullable: it.min === 0 && f.nullable,
          empty: f.empty && it.max === 0 && !it.hasAt,
        };
      }
      let out = "";
      let p = prev;
      for (let i = 0; i < n; i++) {
        const it = ir.items[i]!;
        out += emit(it, p, follows[i]!);
        if (it.max > 0) {
          p = {
            last: !track ? EMPTY : it.min > 0 ? it.last : union(p.last, it.last),
            start: p.start && it.min === 0,
          };
        }
      }
      return out;
    }
    case "rep": {
      if (ir.hi === 0) return "";
      const again = ir.hi > 1;
      const body = emit(
        ir.body,
        again ? { last: track ? union(prev.last, ir.body.last) : EMPTY, start: prev.start } : prev,
        again
          ? {
            first: track ? union(ir.body.first, follow.first) : EMPTY,
            nullable: follow.nullable,
            empty: follow.empty && ir.body.max === 0 && !ir.body.hasAt,
          }
          : follow,
      );
      if (ir.lo === 1 && ir.hi === 1) return body;
      const count = ir.hi === MAXREPEAT
        ? ir.lo === 0 ? "*" : ir.lo === 1 ? "+" : `{${ir.lo},}`
        : ir.lo === 0 && ir.hi === 1
        ? "?"
        : ir.lo === ir.hi
        ? `{${ir.lo}}`
        : `{${ir.lo},${ir.hi}}`;
      return `(?:${body})${count}`;
    }
    case "at":
      return emitAt(ir.at, ir.word, prev, follow);
  }
}

function emitAt(at: AtKind, word: CpSet, prev: Prev, follow: Follow): string {
  switch (at) {
    case "begin":
      if (!prev.start) return NEVER;
      if (isEmpty(prev.last)) return "";
      throw new UnsupportedRegex(
        "'^' or '\\A' appears where it may or may not be at the start of the name",
      );
    case "begin_line": {
      if (prev.start && isEmpty(prev.last)) return "";
      const afterNewline = intersect(prev.last, [10, 10]);
      if (!prev.start && isEmpty(afterNewline)) return NEVER;
      if (!prev.start && isEmpty(subtract(prev.last, [10, 10]))) return "";
      throw new UnsupportedRegex(
        "'^' under MULTILINE appears where it may or may not follow a newline",
      );
    }
    case "end":
    case "end_string":
    case "end_line":
      if (!follow.empty) {
        throw new UnsupportedRegex(
          "an end anchor ('$', '\\Z') is followed by more pattern; only a trailing end anchor is supported",
        );
      }
      return at === "end" ? `(?:\\x{A}?${SENTINEL})` : at === "end_string" ? SENTINEL : `(?:\\x{A}|${SENTINEL})`;
    case "boundary":
    case "non_boundary":
      return emitBoundary(at === "boundary", word, prev, follow);
  }
}

/**
 * `\b` and `\B` have no DFA form in regex-automata 0.1, but where the words
 * on both sides are decided by the pattern itself (or the assertion ends the
 * pattern and only the next input character decides), they translate exactly.
 */
function emitBoundary(boundary: boolean, word: CpSet, prev: Prev, follow: Follow): string {
  const name = boundary ? "\\b" : "\\B";
  const prevWord = !isEmpty(intersect(prev.last, word));
  const prevNonWord = !isEmpty(subtract(prev.last, word));
  const onlyStart = prev.start && isEmpty(prev.last);
  const nonWord = emitSet(complement(word));
  const wordChar = emitSet(word);
  const mixed = () =>
    new UnsupportedRegex(
      `'${name}' appears where the pattern does not decide whether the neighbouring characters are word characters (Python's \\w)`,
    );
  if (follow.empty) {
    // The assertion ends the pattern: test the next input character.
    if (prevWord && !prevNonWord && !prev.start) {
      return boundary ? `(?:${nonWord}|${SENTINEL})` : wordChar;
    }
    if (!prevWord) {
      if (boundary) return wordChar;
      // CPython 3.11: \B never matches in an empty string.
      if (onlyStart) return nonWord;
      if (!prev.start) return `(?:${nonWord}|${SENTINEL})`;
    }
    throw mixed();
  }
  if (follow.nullable) throw mixed();
  const nextWord = !isEmpty(intersect(follow.first, word));
  const nextNonWord = !isEmpty(subtract(follow.first, word));
  const prevIs = prevWord && !prevNonWord && !prev.start ? true : !prevWord ? false : undefined;
  const nextIs = nextWord && !nextNonWord ? true : !nextWord ? false : undefined;
  if (prevIs === undefined || nextIs === undefined) throw mixed();
  return (prevIs !== nextIs) === boundary ? "" : NEVER;
}

/** Whether the pattern has an assertion that looks back (`^`, `\A`, `\b`, `\B`). */
function looksBack(nodes: readonly Node[]): boolean {
  return nodes.some((n) => {
    switch (n.op) {
      case "at":
        return n.at !== "end" && n.at !== "end_string";
      case "branch":
        return n.alts.some(looksBack);
      case "subpattern":
      case "atomic":
      case "assert":
      case "repeat":
        return looksBack(n.body);
      default:
        return false;
    }
  });
}

/** Translates one Python pattern for the DFA, or says why it cannot be used. */
export function translatePython(pattern: string): Translation {
  let parsed;
  try {
    parsed = parsePython(pattern);
  } catch (err) {
    if (err instanceof PythonRegexError) return { ok: false, invalid: true, reason: err.message };
    throw err;
  }
  try {
    track = looksBack(parsed.nodes);
    const ir = build(parsed.nodes, parsed.flags);
    if (ir.cost > MAX_PATTERN_COST) {
      return {
        ok: false,
        invalid: false,
        reason: `it would expand to about ${
          Math.round(ir.cost)
        } automaton states (the limit is ${MAX_PATTERN_COST}); use smaller counted repetitions`,
      };
    }
    const rust = emit(ir, { last: EMPTY, start: true }, {
      first: EMPTY,
      nullable: true,
      empty: true,
    });
    return { ok: true, rust, cost: ir.cost };
  } catch (err) {
    if (err instanceof UnsupportedRegex) return { ok: false, invalid: false, reason: err.message };
    throw err;
  } finally {
    track = false;
  }
}
