/**
 * The reference's `RegexFilter`: an allowlist or blocklist of Python regular
 * expressions matched against event names, decided by a linear-time DFA in
 * WebAssembly (built from Rust's regex crates; see wasm/).
 *
 * Nothing here runs at import: a bundle that never builds a RegexFilter
 * leaves this module, its Python regex translator and the WebAssembly out.
 * The core (`wasm/regex_filter.wasm`) is read synchronously beside the
 * package when it is a local file; elsewhere (browsers, bundles, Deno from
 * JSR, Cloudflare Workers) call {@linkcode loadRegexWasm} or
 * {@linkcode useRegexWasmModule} before building the first filter.
 *
 * @module
 */

import { ImproperlyConfigured } from "../errors.ts";
import * as v from "valibot";
import { type Expect, must, nonNegativeInteger, options, parseOptions, type SameType, strings } from "../_schema.ts";
import type { TrackingEvent } from "../event.ts";
import { DROP, type ProcessorObject } from "../processor.ts";
import { SENTINEL_BYTE, translatePython } from "./_python_regex.ts";
import {
  loadRegexWasm,
  RegexCore,
  RegexCoreError,
  type RegexWasmSource,
  useRegexWasmModule,
  writeName,
} from "./_regex_wasm.ts";

export { loadRegexWasm, type RegexWasmSource, useRegexWasmModule };

/** Whether a {@linkcode RegexFilter} passes (`allowlist`) or drops (`blocklist`) matching names. */
export type FilterType = "allowlist" | "blocklist";

/**
 * Options of {@linkcode RegexFilter}. A configuration given to `createTracker`
 * may spell them as the reference does (`filter_type`, `regular_expressions`).
 */
export interface RegexFilterOptions {
  /**
   * `allowlist` passes only events whose name matches a pattern; `blocklist` drops them.
   *
   * @default {"allowlist"}
   */
  filterType?: FilterType;
  /**
   * Python regular expressions, each matched at the start of the event name
   * (`re.match`). An array or a Set; duplicates are irrelevant.
   *
   * @default {[]}
   */
  regularExpressions?: Iterable<string>;
  /**
   * How many names (up to 256 characters each) the decision cache remembers
   * before it starts again empty; 0 disables it. Its memory stays bounded
   * under a stream of unique names.
   *
   * @default {4096}
   */
  cacheSize?: number;
}

const DEFAULT_CACHE_SIZE = 4096;
const MAX_CACHED_LENGTH = 256;
const CALIBRATION_PERIOD = 32_768; // 2 ** 15
// Marked pure so that bundles without a RegexFilter leave them out.
const encoder = /* @__PURE__ */ new TextEncoder();
const isWellFormed: (s: string) => boolean =
  /* @__PURE__ */ (() =>
    typeof String.prototype.isWellFormed === "function"
      ? (s: string) => s.isWellFormed()
      : (s: string) => !/[\uD800-\uDFFF]/.test(s.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, "")))();
const CALIBRATION_CALLS = 512;
function quote(pattern: string): string {
  return JSON.stringify(pattern);
}

/** Why each pattern cannot be used; empty when all can. */
function patternProblems(patterns: readonly string[]): string[] {
  const problems: string[] = [];
  for (const pattern of new Set(patterns)) {
    const t = translatePython(pattern);
    if (t.ok) continue;
    problems.push(
      t.invalid
        ? `${quote(pattern)} is not a valid Python regular expression: ${t.reason}`
        : `${quote(pattern)} is not supported: ${t.reason}`,
    );
  }
  return problems;
}

/**
 * The schema of {@linkcode RegexFilterOptions}: what the constructor and the
 * `regex_filter` ENGINE check. As in the reference, the patterns are checked
 * before the filter type.
 */
export const regexFilterOptions = /* @__PURE__ */ (() =>
  options({
    regularExpressions: v.optional(
      v.pipe(
        strings("an array of strings"),
        v.check(
          (patterns) => patternProblems(patterns).length === 0,
          (issue) => patternProblems(issue.input as readonly string[]).join("; "),
        ),
      ),
      [],
    ),
    filterType: v.optional(v.picklist(["allowlist", "blocklist"], must('"allowlist" or "blocklist"')), "allowlist"),
    cacheSize: v.optional(nonNegativeInteger(), DEFAULT_CACHE_SIZE),
  }))();
type _SameOptions = Expect<SameType<v.InferInput<typeof regexFilterOptions>, RegexFilterOptions>>;

/**
 * Passes or drops events by matching their name against Python regular
 * expressions, like the reference's `eventtracking.processors.regex_filter.RegexFilter`
 * (config ENGINE `regex_filter`).
 *
 * A pattern matches when it matches at the start of the name (Python's
 * `re.match`). All patterns are compiled into one DFA, so a decision costs the
 * same for 10 or 1,000 patterns and no pattern can make matching slow.
 * Constructs that need backtracking (lookaround, backreferences, atomic groups,
 * possessive quantifiers, conditionals) are refused when the filter is built.
 * An event without a string `name` is dropped (filters fail closed) and counted
 * in {@linkcode RegexFilter.invalidNames}.
 *
 * Its WebAssembly core must be loaded first where the package is not a local
 * file: `await` {@linkcode loadRegexWasm} once (browsers, bundles, Deno from
 * JSR), or call {@linkcode useRegexWasmModule} (Cloudflare Workers).
 *
 * @example Keep only enrollment events
 * ```ts
 * import { InMemoryBackend, loadRegexWasm, RegexFilter, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * await loadRegexWasm(); // once, before the first filter
 * const sink = new InMemoryBackend();
 * const tracker = new Tracker({
 *   backends: { sink },
 *   processors: [
 *     new RegexFilter({
 *       filterType: "allowlist",
 *       regularExpressions: [String.raw`edx\.course\.enrollment\.`],
 *     }),
 *   ],
 * });
 * tracker.emit("edx.course.enrollment.activated");
 * tracker.emit("edx.ui.lms.outline.selected");
 * assert.deepEqual(sink.events.map((e) => e.name), ["edx.course.enrollment.activated"]);
 * ```
 *
 * @example Bad patterns are configuration errors
 * ```ts
 * import { ImproperlyConfigured, RegexFilter } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => new RegexFilter({ regularExpressions: ["***"] }), ImproperlyConfigured);
 * assert.throws(() => new RegexFilter({ regularExpressions: ["(?<=e)dx"] }), /backtracking/);
 * ```
 */
export class RegexFilter implements ProcessorObject {
  /** `allowlist` or `blocklist`. */
  readonly filterType: FilterType;
  /** The patterns, without duplicates. */
  readonly regularExpressions: readonly string[];
  readonly #allow: boolean;
  /** Set when the answer does not depend on the name (no patterns, or one that matches everything). */
  readonly #constant: boolean | undefined;
  readonly #core: RegexCore | undefined;
  // Decision caches, see #viaMap and #viaContent.
  readonly #limit: number;
  readonly #map = new Map<string, boolean>();
  readonly #keys: (string | undefined)[];
  readonly #vals: Uint8Array;
  readonly #hashes: Int32Array;
  readonly #mask: number;
  readonly #door: Int32Array;
  #count = 0;
  #misses = 0;
  #wide = false;
  #byIdentity = false;
  #countdown = 1;
  #sampled = 0;
  readonly #samples = new Float64Array(CALIBRATION_CALLS);
  #invalidNames = 0;

  /**
   * Compiles the patterns.
   *
   * @param options The filter type and the patterns.
   * @throws {ImproperlyConfigured} If a pattern is not valid Python syntax, needs backtracking,
   * is too large, if `regularExpressions` is not a list of strings, `filterType` is unknown, or an option is unknown.
   */
  constructor(options: RegexFilterOptions = {}) {
    const o = parseOptions(regexFilterOptions, options, "RegexFilter");
    const patterns = [...new Set(o.regularExpressions)];
    const rust = patterns.map((pattern) => (translatePython(pattern) as { rust: string }).rust);
    const filterType = o.filterType;
    const cacheSize = o.cacheSize;
    this.filterType = filterType;
    this.regularExpressions = Object.freeze(patterns);
    this.#allow = filterType === "allowlist";

    if (rust.length === 0) {
      this.#constant = false;
    } else {
      const core = compileCore(patterns, rust);
      // An empty input that matches means every name matches (e.g. the pattern "").
      this.#constant = core.isMatch(0) === 1 ? true : undefined;
      if (this.#constant === undefined) this.#core = core;
    }
    // At least twice as many slots as names: probes stay short.
    const slots = cacheSize === 0 ? 1 : 2 ** Math.ceil(Math.log2(cacheSize * 2));
    this.#keys = new Array(slots).fill(undefined);
    this.#vals = new Uint8Array(slots);
    this.#hashes = new Int32Array(slots);
    this.#door = new Int32Array(slots);
    this.#mask = slots - 1;
    this.#limit = cacheSize;
  }

  /** How many events this filter dropped because their `name` was not a string. */
  get invalidNames(): number {
    return this.#invalidNames;
  }

  /**
   * Whether any pattern matches at the start of `name` (`re.match`), whatever
   * the filter type. Never throws: a non-string gives `false`.
   *
   * @param name An event name.
   * @returns Whether a pattern matches a prefix of `name`.
   *
   * @example Prefix matching, as Python's `re.match`
   * ```ts
   * import { RegexFilter } from "@edx/event-tracking";
   * import assert from "node:assert/strict";
   *
   * const filter = new RegexFilter({ regularExpressions: ["edx.course"] });
   * assert.equal(filter.matches("edx.course.enrollment.activated"), true);
   * assert.equal(filter.matches("edxXcourse"), true); // "." is a wildcard
   * assert.equal(filter.matches("org.edx.course"), false); // prefix match only
   * ```
   */
  matches(name: string): boolean {
    if (this.#constant !== undefined) return this.#constant;
    if (typeof name !== "string") return false;
    if (name.length > MAX_CACHED_LENGTH) return this.#long(name);
    if (--this.#countdown <= 0) return this.#calibrate(name);
    return this.#byIdentity ? this.#viaMap(name) : this.#viaContent(name);
  }

  // Two bounded caches, chosen by measurement (see #calibrate):
  // - a Map: one Map.get (≈10–40 ns) when V8 has already hashed the string
  //   (literals, reused strings), but ≈400–600 ns for a freshly built one
  //   (names parsed from JSON, template strings), measured on Deno 2.9;
  // - a content-hashed table: the hash is computed while copying the name
  //   into WebAssembly memory (≈2–4 ns per character), so a hit costs the
  //   same whatever the string's history and a miss costs nothing extra.

  #viaMap(name: string): boolean {
    const cached = this.#map.get(name);
    if (cached !== undefined) return cached;
    const h = this.#copy(name);
    const matched = this.#finish(name);
    if (this.#admit(h, name)) {
      if (this.#map.size >= this.#limit) this.#map.clear();
      this.#map.set(name, matched);
    }
    return matched;
  }

  #viaContent(name: string): boolean {
    const h = this.#copy(name);
    const keys = this.#keys;
    const mask = this.#mask;
    const hashes = this.#hashes;
    let slot = (h ^ (h >>> 16)) & mask;
    let key = keys[slot];
    while (key !== undefined) {
      // Comparing the stored hash first avoids string comparisons on misses.
      if (hashes[slot] === h && key === name) return this.#vals[slot] === 1;
      slot = (slot + 1) & mask;
      key = keys[slot];
    }
    const matched = this.#finish(name);
    // Inserting costs two stores here, so every miss is cached (no door).
    if (this.#limit > 0 && name.length <= MAX_CACHED_LENGTH) {
      if (++this.#count > this.#limit) {
        keys.fill(undefined);
        this.#count = 1;
        slot = (h ^ (h >>> 16)) & mask;
      }
      keys[slot] = name;
      hashes[slot] = h;
      this.#vals[slot] = matched ? 1 : 0;
    }
    return matched;
  }

  /**
   * Copies an ASCII name into WebAssembly memory and returns its FNV-1a hash
   * (over UTF-16 units); `#wide` records whether a non-ASCII unit was seen.
   */
  #copy(name: string): number {
    const core = this.#core!;
    const n = name.length;
    if (n >= core.capacity) core.reserve(n * 3 + 1);
    const view = core.view;
    const ptr = core.ptr;
    // Two interleaved FNV-1a lanes: half the multiply latency chain of one.
    let h0 = 0x811c9dc5 ^ n;
    let h1 = 0x01000193;
    let wide = 0;
    let i = 0;
    for (; i + 1 < n; i += 2) {
      const c0 = name.charCodeAt(i);
      const c1 = name.charCodeAt(i + 1);
      wide |= c0 | c1;
      view[ptr + i] = c0;
      view[ptr + i + 1] = c1;
      h0 = Math.imul(h0 ^ c0, 0x01000193);
      h1 = Math.imul(h1 ^ c1, 0x01000193);
    }
    if (i < n) {
      const c = name.charCodeAt(i);
      wide |= c;
      view[ptr + i] = c;
      h0 = Math.imul(h0 ^ c, 0x01000193);
    }
    this.#wide = wide >= 0x80;
    return Math.imul(h0 ^ (h1 >>> 13), 0x85ebca6b) ^ h1;
  }

  /** Runs the DFA on the name `#copy` wrote (re-encoding it if it is not ASCII). */
  #finish(name: string): boolean {
    const core = this.#core!;
    let len = name.length + 1;
    if (this.#wide) len = writeName(core, name, SENTINEL_BYTE);
    else core.view[core.ptr + name.length] = SENTINEL_BYTE;
    return core.isMatch(len) === 1;
  }

  /**
   * A long name is never cached; TextEncoder copies it faster than a
   * charCodeAt loop (≈1 µs instead of ≈15 µs for 5,000 characters), but it
   * would replace lone surrogates, which Python sees as characters.
   */
  #long(name: string): boolean {
    const core = this.#core!;
    const n = name.length;
    let len: number;
    if (isWellFormed(name)) {
      core.reserve(n * 3 + 1);
      const written = encoder.encodeInto(name, core.view.subarray(core.ptr, core.ptr + core.capacity)).written;
      core.view[core.ptr + written] = SENTINEL_BYTE;
      len = written + 1;
    } else {
      len = writeName(core, name, SENTINEL_BYTE);
    }
    return core.isMatch(len) === 1;
  }

  /**
   * Admits a name into the Map only when it recurs: a two-way door table
   * remembers the hashes of recent misses, so a stream of unique names
   * (URL-like names) does not churn the Map (Map.set costs ≈100 ns). Every 16th miss is admitted
   * anyway, so names whose hashes keep evicting each other still get in.
   */
  #admit(h: number, name: string): boolean {
    if (this.#limit === 0 || name.length > MAX_CACHED_LENGTH) return false;
    const door = this.#door;
    const a = (h >>> 7) & this.#mask;
    const b = (h >>> 19 ^ h) & this.#mask;
    if (door[a] === h || door[b] === h) return true;
    if ((++this.#misses & 1) === 0) door[a] = h;
    else door[b] = h;
    return (this.#misses & 15) === 0;
  }

  /**
   * Every CALIBRATION_PERIOD calls, times CALIBRATION_CALLS calls, alternating
   * the two caches, and keeps the faster one for the next period. With a
   * frozen clock (Cloudflare Workers) both measure 0 and the content cache,
   * which has no slow case, stays.
   */
  #calibrate(name: string): boolean {
    const byMap = (this.#sampled & 1) === 1;
    const start = performance.now();
    const matched = byMap ? this.#viaMap(name) : this.#viaContent(name);
    const took = performance.now() - start;
    this.#samples[this.#sampled] = took;
    if (++this.#sampled < CALIBRATION_CALLS) {
      this.#countdown = 1;
    } else {
      // Medians, so that a garbage collection during one call does not decide.
      const content = this.#samples.filter((_, i) => (i & 1) === 0).sort();
      const map = this.#samples.filter((_, i) => (i & 1) === 1).sort();
      const half = CALIBRATION_CALLS >> 2;
      this.#byIdentity = map[half]! < content[half]!;
      this.#sampled = 0;
      this.#countdown = CALIBRATION_PERIOD;
    }
    return matched;
  }

  /**
   * Keeps (`undefined`) or drops ({@linkcode DROP}) one event by its name.
   * An event whose `name` is not a string is dropped and counted.
   *
   * @param event The event.
   * @returns `undefined` to keep the event, {@linkcode DROP} to drop it.
   *
   * @example A blocklist
   * ```ts
   * import { DROP, RegexFilter, type TrackingEvent } from "@edx/event-tracking";
   * import assert from "node:assert/strict";
   *
   * const filter = new RegexFilter({ filterType: "blocklist", regularExpressions: ["edx\\.ui\\."] });
   * const event = (name: string) => ({ id: "", name, timestamp: "", context: {}, data: {} }) as TrackingEvent;
   * assert.equal(filter.process(event("edx.ui.lms.link_clicked")), DROP);
   * assert.equal(filter.process(event("edx.course.enrollment.activated")), undefined);
   * ```
   */
  process(event: TrackingEvent): undefined | typeof DROP {
    const name = (event as { name?: unknown } | null | undefined)?.name;
    if (typeof name !== "string") {
      this.#invalidNames++;
      return DROP;
    }
    return this.matches(name) === this.#allow ? undefined : DROP;
  }
}

function compileCore(patterns: readonly string[], rust: readonly string[]): RegexCore {
  const union = rust.length === 1 ? rust[0]! : rust.map((r) => `(?:${r})`).join("|");
  try {
    return new RegexCore(union);
  } catch (err) {
    if (!(err instanceof RegexCoreError)) throw err;
    // Name the culprit when one pattern alone fails; otherwise blame the set.
    if (rust.length > 1) {
      for (let i = 0; i < rust.length; i++) {
        try {
          new RegexCore(rust[i]!);
        } catch (one) {
          if (one instanceof RegexCoreError) {
            throw new ImproperlyConfigured(
              `Cannot compile 'regular_expressions': ${quote(patterns[i]!)} is not supported: ${one.message}`,
              "",
              { cause: one },
            );
          }
          throw one;
        }
      }
    }
    const which = rust.length === 1
      ? `${quote(patterns[0]!)} is not supported`
      : "the patterns cannot be compiled into one automaton";
    throw new ImproperlyConfigured(
      `Cannot compile 'regular_expressions': ${which}: ${err.message}`,
      "",
      { cause: err },
    );
  }
}
