/**
 * The reference's `RegexFilter`: an allowlist or blocklist of Python regular
 * expressions matched against event names, decided by a linear-time DFA in
 * WebAssembly (built from Rust's regex crates; see wasm/README.md).
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
import { type Expect, must, options, parseOptions, type SameType, strings } from "../_schema.ts";
import type { TrackingEvent } from "../event.ts";
import { DROP, type ProcessorObject } from "../processor.ts";
import { translatePython } from "./_python_regex.ts";
import {
  type Automaton,
  compileAutomaton,
  loadRegexWasm,
  RegexCoreError,
  type RegexWasmSource,
  useRegexWasmModule,
} from "./_regex_wasm.ts";
import { type Placed, placeTable, type Walk } from "./_regex_engine.ts";

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
}

/** `#table` of a filter whose answer does not depend on the name (tables are at positive addresses). */
const ALWAYS = -1;
const NEVER = 0;

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
  }))();
type _SameOptions = Expect<SameType<v.InferInput<typeof regexFilterOptions>, RegexFilterOptions>>;

/**
 * Passes or drops events by matching their name against Python regular
 * expressions, like the reference's `eventtracking.processors.regex_filter.RegexFilter`
 * (config ENGINE `regex_filter`).
 *
 * A pattern matches when it matches at the start of the name (Python's
 * `re.match`). All patterns are compiled into one minimised DFA, walked in
 * WebAssembly, so a decision costs about the same for 10 or 1,000 patterns
 * (≈50–60 ns for a 32-character name in Deno) and no pattern can make matching
 * slow. There is no decision cache: looking a fresh string up would cost about
 * as much as deciding it.
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
  /**
   * The address of the filter's table in its engine's store, or, when the
   * answer does not depend on the name (no patterns, a pattern that matches
   * every name, or none that can match), `ALWAYS` or `NEVER`.
   */
  readonly #table: number;
  /** The engine's walk (`_regex_engine.ts`): the same function for every filter. */
  readonly #walk: Walk | undefined;
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
    this.filterType = o.filterType;
    this.regularExpressions = Object.freeze(patterns);
    this.#allow = o.filterType === "allowlist";
    const automaton = rust.length === 0 ? { constant: false } : compileAll(patterns, rust);
    if (automaton.constant !== undefined) {
      this.#table = automaton.constant ? ALWAYS : NEVER;
    } else {
      let placed: Placed;
      try {
        placed = placeTable(automaton.table, this);
      } catch (err) {
        if (!(err instanceof RegexCoreError)) throw err;
        throw new ImproperlyConfigured(`Cannot compile 'regular_expressions': ${err.message}`, "", { cause: err });
      }
      this.#table = placed.table;
      this.#walk = placed.walk;
    }
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
    if (typeof name !== "string") return false;
    const table = this.#table;
    return table > 0 ? this.#walk!(name, table) === 1 : table === ALWAYS;
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

/** Compiles the union of the translated patterns (`rust`) into one automaton. */
function compileAll(patterns: readonly string[], rust: readonly string[]): Automaton {
  const union = rust.length === 1 ? rust[0]! : rust.map((r) => `(?:${r})`).join("|");
  try {
    return compileAutomaton(union);
  } catch (err) {
    if (!(err instanceof RegexCoreError)) throw err;
    // Name the culprit when one pattern alone fails; otherwise blame the set.
    if (rust.length > 1) {
      for (let i = 0; i < rust.length; i++) {
        try {
          compileAutomaton(rust[i]!);
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
