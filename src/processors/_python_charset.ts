/**
 * Code point sets with CPython 3.11 `re` semantics: `\w`, `\d`, `\s`,
 * IGNORECASE literals and classes (`_sre.unicode_tolower`, `iscased` and
 * `re._casefix._EXTRA_CASES`), computed exactly from tables that CPython's own
 * `re` generated. Private module.
 *
 * A set is a sorted array of disjoint inclusive ranges `[lo0, hi0, lo1, hi1, …]`.
 *
 * @module
 */

import { CASED, DIGIT, EXTRA_CASES, LOWER, SPACE, WORD } from "./_python_unicode.ts";
import { type Category, FLAG_IGNORECASE, FLAG_UNICODE, type SetItem } from "./_python_regex_parser.ts";

/** A set of code points as inclusive ranges. */
export type CpSet = readonly number[];

export const MAX_CP = 0x10ffff;
export const EMPTY: CpSet = [];
export const ALL: CpSet = [0, MAX_CP];

/** Thrown for a construct that has no exact linear-time translation. */
export class UnsupportedRegex extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsupportedRegex";
  }
}

/** Sorts and merges arbitrary ranges. */
export function normalize(ranges: readonly number[]): CpSet {
  const pairs: [number, number][] = [];
  for (let i = 0; i < ranges.length; i += 2) pairs.push([ranges[i]!, ranges[i + 1]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [lo, hi] of pairs) {
    const n = out.length;
    if (n && lo <= out[n - 1]! + 1) out[n - 1] = Math.max(out[n - 1]!, hi);
    else out.push(lo, hi);
  }
  return out;
}

export function union(...sets: CpSet[]): CpSet {
  return normalize(sets.flat());
}

export function complement(set: CpSet): CpSet {
  const out: number[] = [];
  let next = 0;
  for (let i = 0; i < set.length; i += 2) {
    if (set[i]! > next) out.push(next, set[i]! - 1);
    next = set[i + 1]! + 1;
  }
  if (next <= MAX_CP) out.push(next, MAX_CP);
  return out;
}

export function intersect(a: CpSet, b: CpSet): CpSet {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const lo = Math.max(a[i]!, b[j]!);
    const hi = Math.min(a[i + 1]!, b[j + 1]!);
    if (lo <= hi) out.push(lo, hi);
    if (a[i + 1]! < b[j + 1]!) i += 2;
    else j += 2;
  }
  return out;
}

export function subtract(a: CpSet, b: CpSet): CpSet {
  return intersect(a, complement(b));
}

export function isEmpty(set: CpSet): boolean {
  return set.length === 0;
}

export function has(set: CpSet, cp: number): boolean {
  let lo = 0;
  let hi = set.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cp < set[2 * mid]!) hi = mid - 1;
    else if (cp > set[2 * mid + 1]!) lo = mid + 1;
    else return true;
  }
  return false;
}

const ASCII_WORD: CpSet = [48, 57, 65, 90, 95, 95, 97, 122];
const ASCII_DIGIT: CpSet = [48, 57];
const ASCII_SPACE: CpSet = [9, 13, 32, 32];

/** The set `\w` matches (Python's own definition) under `flags`. */
export function wordSet(flags: number): CpSet {
  return flags & FLAG_UNICODE ? WORD : ASCII_WORD;
}

/** The set of a category (`\d`, `\W`, …) under `flags`. */
export function categorySet(cat: Category, flags: number): CpSet {
  const unicode = (flags & FLAG_UNICODE) !== 0;
  switch (cat) {
    case "digit":
      return unicode ? DIGIT : ASCII_DIGIT;
    case "not_digit":
      return complement(unicode ? DIGIT : ASCII_DIGIT);
    case "space":
      return unicode ? SPACE : ASCII_SPACE;
    case "not_space":
      return complement(unicode ? SPACE : ASCII_SPACE);
    case "word":
      return wordSet(flags);
    case "not_word":
      return complement(wordSet(flags));
  }
}

// Case tables, built on first use of IGNORECASE.
let lowerOf: Map<number, number> | undefined;
let lowerDomain: CpSet = EMPTY;
let extraCases: Map<number, number[]> | undefined;

function caseTables(): { lower: Map<number, number>; extra: Map<number, number[]> } {
  if (lowerOf === undefined || extraCases === undefined) {
    lowerOf = new Map();
    const domain: number[] = [];
    for (let i = 0; i < LOWER.length; i += 2) {
      lowerOf.set(LOWER[i]!, LOWER[i + 1]!);
      domain.push(LOWER[i]!, LOWER[i]!);
    }
    lowerDomain = normalize(domain);
    extraCases = new Map();
    let key = -1;
    let list: number[] = [];
    for (const v of EXTRA_CASES) {
      if (v === -1) {
        extraCases.set(key, list);
        key = -1;
        list = [];
      } else if (key === -1) key = v;
      else list.push(v);
    }
  }
  return { lower: lowerOf, extra: extraCases };
}

function tolower(cp: number, unicode: boolean): number {
  if (!unicode) return cp >= 65 && cp <= 90 ? cp + 32 : cp;
  return caseTables().lower.get(cp) ?? cp;
}

function iscased(cp: number, unicode: boolean): boolean {
  if (!unicode) return (cp >= 65 && cp <= 90) || (cp >= 97 && cp <= 122);
  return has(CASED, cp);
}

/** `{ch : tolower(ch) ∈ x}`: the characters IGNORECASE matching accepts for `x`. */
function preimage(x: CpSet, unicode: boolean): CpSet {
  if (!unicode) {
    // ascii_tolower maps A-Z to a-z only.
    const upper: number[] = [];
    for (let cp = 97; cp <= 122; cp++) if (has(x, cp)) upper.push(cp - 32, cp - 32);
    return union(subtract(x, [65, 90]), upper);
  }
  const { lower } = caseTables();
  const extra: number[] = [];
  for (const [cp, lo] of lower) if (has(x, lo)) extra.push(cp, cp);
  return union(subtract(x, lowerDomain), extra);
}

/** The set a literal matches (`LITERAL` with the flags in force). */
export function literalSet(cp: number, flags: number): CpSet {
  if (!(flags & FLAG_IGNORECASE) || !iscased(cp, (flags & FLAG_UNICODE) !== 0)) return [cp, cp];
  const unicode = (flags & FLAG_UNICODE) !== 0;
  const lo = tolower(cp, unicode);
  const targets = [lo, lo];
  if (unicode) { for (const k of caseTables().extra.get(lo) ?? []) targets.push(k, k); }
  return preimage(normalize(targets), unicode);
}

/** The set a class matches (`IN`, `_optimize_charset` and `IN_UNI_IGNORE` semantics). */
export function classSet(items: readonly SetItem[], negate: boolean, flags: number): CpSet {
  const unicode = (flags & FLAG_UNICODE) !== 0;
  let result: CpSet;
  if (!(flags & FLAG_IGNORECASE)) {
    const parts: CpSet[] = [];
    for (const item of items) {
      if (item.op === "lit") parts.push([item.cp, item.cp]);
      else if (item.op === "range") parts.push([item.lo, item.hi]);
      else parts.push(categorySet(item.cat, flags));
    }
    result = union(...parts);
  } else {
    const lowered: number[] = [];
    const categories: CpSet[] = [];
    let hascased = false;
    const extra = unicode ? caseTables().extra : new Map<number, number[]>();
    const addLowered = (lo: number) => {
      lowered.push(lo, lo);
      for (const k of extra.get(lo) ?? []) lowered.push(k, k);
    };
    for (const item of items) {
      if (item.op === "cat") {
        categories.push(categorySet(item.cat, flags));
        continue;
      }
      const lo = item.op === "lit" ? item.cp : item.lo;
      const hi = item.op === "lit" ? item.cp : item.hi;
      if (hi > 0xffff) {
        throw new UnsupportedRegex(
          "a character class with characters outside the Basic Multilingual Plane " +
            "under IGNORECASE (CPython matches those with special rules)",
        );
      }
      for (let cp = lo; cp <= hi; cp++) {
        addLowered(tolower(cp, unicode));
        if (!hascased && iscased(cp, unicode)) hascased = true;
      }
    }
    const x = union(normalize(lowered), ...categories);
    result = hascased ? preimage(x, unicode) : x;
  }
  return negate ? complement(result) : result;
}
