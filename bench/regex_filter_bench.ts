/**
 * RegexFilter against V8's RegExp, each group with V8's single anchored
 * alternation (`^(?:p1|p2|…)`) as its baseline. Run:
 * `deno bench --config dev/deno.json -A bench/regex_filter_bench.ts`.
 *
 * - cold: names never seen before (65,536 distinct names, ≈32 characters,
 *   half of them matching), at 10, 100 and 1,000 Open edX-like patterns, with
 *   the walker Deno uses (JS String Builtins) and the copy-in walker of
 *   runtimes without them (Node.js 20, Cloudflare Workers);
 * - less regular sets of 100 patterns: Unicode classes, case-insensitive,
 *   alternations with long common prefixes, `.*` inside;
 * - warm: 4,096 names, repeated;
 * - compile: `new RegexFilter()` (target: ≤ 100 ms for 100 patterns);
 * - process: the whole processor;
 * - redos: catastrophic-backtracking patterns.
 *
 * Before the tables, it prints each set's automaton (states before and after
 * minimisation, byte and pair classes) and the names' mean length.
 *
 * @module
 */

import type { TrackingEvent } from "../src/event.ts";
import { DROP } from "../src/processor.ts";
import { EventEmissionExit } from "../src/errors.ts";
import { RegexFilter } from "../src/processors/regex_filter.ts";
import { translatePython } from "../src/processors/_python_regex.ts";
import { compileAutomaton } from "../src/processors/_regex_wasm.ts";
import { currentEngine, preferWalker } from "../src/processors/_regex_engine.ts";

/** Deterministic PRNG (mulberry32), so every run measures the same names. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Maker = (r: () => number, id: string) => string;

/** A pattern set: Python patterns, V8's equivalent alternation, and makers of matching and near-miss names. */
interface PatternSet {
  readonly label: string;
  readonly patterns: string[];
  readonly v8: RegExp;
  readonly hits: Maker[];
  readonly misses: Maker[];
}

const AREAS = ["course", "video", "forum", "grades", "problem", "team", "bi", "ui_lms", "cert"];
const WORDS = ["created", "updated", "viewed", "graded", "submitted", "loaded"];
const pick = <T>(r: () => number, items: readonly T[]): T => items[Math.floor(r() * items.length)]!;
/** A serial made unique by `id` plus random letters, `size` characters long. */
const tail = (r: () => number, id: string, size: number) => {
  let s = id;
  while (s.length < size) s += String.fromCharCode(97 + Math.floor(r() * 26));
  return s;
};
const digits = (id: string) => String(parseInt(id, 36) + 1_000_000);

/** `count` Open edX-like patterns: event names, versioned events, free-text suffixes, URL-like names. */
function regularSet(count: number): PatternSet {
  const patterns: string[] = [];
  const hits: Maker[] = [];
  const misses: Maker[] = [];
  for (let i = 0; i < count; i++) {
    const key = `${AREAS[i % AREAS.length]}${i}`;
    const other = `${AREAS[i % AREAS.length]}${i + count}`;
    switch (i % 4) {
      case 0:
        patterns.push(`edx\\.${key}\\.(created|updated|deleted)(\\.\\d+)?$`);
        hits.push((r, id) => `edx.${key}.${pick(r, ["created", "updated", "deleted"])}.${digits(id)}`);
        misses.push((_, id) => `edx.${key}.archived.${digits(id)}`);
        break;
      case 1:
        patterns.push(`org\\.openedx\\.${key}\\..*\\.v1$`);
        hits.push((r, id) => `org.openedx.${key}.${tail(r, id, 8)}.v1`);
        misses.push((r, id) => `org.openedx.${key}.${tail(r, id, 8)}.v2`);
        break;
      case 2:
        patterns.push(`edx\\.${key}\\.[a-z_]+`);
        hits.push((r, id) => `edx.${key}.${pick(r, WORDS)}_${tail(r, id, 8)}`);
        misses.push((r, id) => `edx.${key}.Archived_${tail(r, id, 8)}`);
        break;
      default:
        patterns.push(`/courses/course-v1:[^/]+/${key}/`);
        hits.push((r, id) => `/courses/course-v1:edX+${tail(r, id, 8)}/${key}/`);
        misses.push((r, id) => `/courses/course-v1:edX+${tail(r, id, 8)}/${other}/`);
    }
  }
  return { label: `${count} patterns`, patterns, v8: new RegExp(`^(?:${patterns.join("|")})`), hits, misses };
}

const UNICODE_AREAS = ["cours", "vidéo", "forum", "notes", "problème", "équipe", "课程", "视频", "Übung"];
const UNICODE_WORDS = ["données", "élève", "课程表", "Ωmega", "straße", "ünïcödé"];

/** Python's `\w` and `\d` (Unicode), spelled for V8. */
const unicodeForV8 = (p: string) => p.replaceAll("\\w", "[\\p{L}\\p{N}_]").replaceAll("\\d", "\\p{Nd}");

function unicodeSet(): PatternSet {
  const patterns: string[] = [];
  const hits: Maker[] = [];
  const misses: Maker[] = [];
  for (let i = 0; i < 100; i++) {
    const key = `${UNICODE_AREAS[i % UNICODE_AREAS.length]}${i}`;
    switch (i % 3) {
      case 0:
        patterns.push(`${key}\\.\\w+\\.\\d+$`);
        hits.push((r, id) => `${key}.${pick(r, UNICODE_WORDS)}${id}.${digits(id)}`);
        misses.push((r, id) => `${key}.${pick(r, UNICODE_WORDS)}${id}.${digits(id)}x`);
        break;
      case 1:
        patterns.push(`${key}\\.\\w+\\.(créé|supprimé)$`);
        hits.push((r, id) => `${key}.${pick(r, UNICODE_WORDS)}_${id}.${pick(r, ["créé", "supprimé"])}`);
        misses.push((r, id) => `${key}.${pick(r, UNICODE_WORDS)}_${id}.cree`);
        break;
      default:
        patterns.push(`${key}/\\w+/\\d+/`);
        hits.push((r, id) => `${key}/${pick(r, UNICODE_WORDS)}${id}/${digits(id)}/`);
        misses.push((r, id) => `${key}/${pick(r, UNICODE_WORDS)}-${id}/${digits(id)}/`);
    }
  }
  const v8 = new RegExp(`^(?:${patterns.map(unicodeForV8).join("|")})`, "u");
  return { label: "Unicode classes", patterns, v8, hits, misses };
}

const randomCase = (r: () => number, s: string) =>
  [...s].map((c) => (r() < 0.5 ? c.toUpperCase() : c.toLowerCase())).join("");

function caseInsensitiveSet(): PatternSet {
  const patterns: string[] = [];
  const hits: Maker[] = [];
  const misses: Maker[] = [];
  for (let i = 0; i < 100; i++) {
    const key = `${AREAS[i % AREAS.length]}${i}`;
    if (i % 2 === 0) {
      patterns.push(`(?i)edx\\.${key}\\.(created|updated|deleted)(\\.\\d+)?$`);
      hits.push((r, id) =>
        randomCase(r, `edx.${key}.${pick(r, ["created", "updated", "deleted"])}`) + `.${digits(id)}`
      );
      misses.push((r, id) => randomCase(r, `edx.${key}.archived`) + `.${digits(id)}`);
    } else {
      patterns.push(`(?i)org\\.openedx\\.${key}\\.[a-z0-9_]+\\.v1$`);
      hits.push((r, id) => randomCase(r, `org.openedx.${key}.${pick(r, WORDS)}_${tail(r, id, 6)}.v1`));
      misses.push((r, id) => randomCase(r, `org.openedx.${key}.${pick(r, WORDS)}-${tail(r, id, 6)}.v1`));
    }
  }
  const v8 = new RegExp(`^(?:${patterns.map((p) => p.slice(4)).join("|")})`, "i");
  return { label: "case-insensitive", patterns, v8, hits, misses };
}

const DOMAINS = ["course", "xblock", "certificate", "cohort", "enrollment", "forum", "content_authoring", "learning"];
const OBJECTS = [
  "enrollment",
  "certificate",
  "discussion",
  "course_run",
  "library_block",
  "xblock",
  "persistent_grade",
  "access_role",
  "cohort_membership",
  "course_passing_status",
  "ccx_course",
  "catalog_info",
  "user",
];

/** Open edX event bus names: a long common prefix, alternatives deep inside. */
function commonPrefixSet(): PatternSet {
  const patterns: string[] = [];
  const hits: Maker[] = [];
  const misses: Maker[] = [];
  for (const domain of DOMAINS) {
    for (const object of OBJECTS) {
      if (patterns.length === 100) break;
      const stem = `org.openedx.learning.${domain}.${object}`;
      patterns.push(`${stem.replaceAll(".", "\\.")}\\.(created|changed|deleted)\\.v\\d+$`);
      hits.push((r, id) => `${stem}.${pick(r, ["created", "changed", "deleted"])}.v${digits(id)}`);
      misses.push((r, id) => `${stem}.${pick(r, ["created", "changed", "deleted"])}.V${digits(id)}`);
    }
  }
  return { label: "common prefixes", patterns, v8: new RegExp(`^(?:${patterns.join("|")})`), hits, misses };
}

function dotStarSet(): PatternSet {
  const patterns: string[] = [];
  const hits: Maker[] = [];
  const misses: Maker[] = [];
  for (let i = 0; i < 100; i++) {
    const key = `${AREAS[i % AREAS.length]}${i}`;
    switch (i % 3) {
      case 0:
        patterns.push(`edx\\.${key}\\..*\\.(play|pause|seek)_video$`);
        hits.push((r, id) => `edx.${key}.${tail(r, id, 8)}.${pick(r, ["play", "pause", "seek"])}_video`);
        misses.push((r, id) => `edx.${key}.${tail(r, id, 8)}.stop_video`);
        break;
      case 1:
        patterns.push(`${key}\\..*/courseware/`);
        hits.push((r, id) => `${key}.${tail(r, id, 8)}/courseware/`);
        misses.push((r, id) => `${key}.${tail(r, id, 8)}/courseware`);
        break;
      default:
        patterns.push(`/courses/${key}/.*\\.json$`);
        hits.push((r, id) => `/courses/${key}/${tail(r, id, 8)}/data.json`);
        misses.push((r, id) => `/courses/${key}/${tail(r, id, 8)}/data.json5`);
    }
  }
  return { label: ".* inside", patterns, v8: new RegExp(`^(?:${patterns.join("|")})`), hits, misses };
}

/**
 * `size` names, half matching (alternately), each pattern's makers picked at
 * random. With `unique`, every name carries a distinct serial; without, the
 * serials repeat within 16 values (the same names recur, as real event names do).
 */
function makeNames(set: PatternSet, size: number, seed: number, unique: boolean): string[] {
  const r = rng(seed);
  const names: string[] = [];
  for (let i = 0; i < size; i++) {
    const id = (unique ? i : i & 15).toString(36);
    const makers = i % 2 === 0 ? set.hits : set.misses;
    names.push(pick(r, makers)(r, id));
  }
  // Each name its own flat string, as in an event parsed from JSON.
  return names.map((n) => JSON.parse(JSON.stringify(n)) as string);
}

/** Prints the automaton of a set and checks that RegexFilter and V8 agree on `names`, half of them matching. */
function describe(set: PatternSet, filter: RegexFilter, names: readonly string[], compileMs: number): void {
  const union = set.patterns.map((p) => `(?:${(translatePython(p) as { rust: string }).rust})`).join("|");
  const automaton = compileAutomaton(union);
  const info = automaton.constant === undefined ? automaton.info : undefined;
  let hits = 0;
  for (const name of names) {
    const expected = set.v8.test(name);
    if (filter.matches(name) !== expected) throw new Error(`RegexFilter and V8 disagree on ${JSON.stringify(name)}`);
    if (expected) hits++;
  }
  if (hits !== names.length / 2) throw new Error(`${set.label}: ${hits} of ${names.length} names match, not half`);
  const mean = names.reduce((n, name) => n + name.length, 0) / names.length;
  console.log(
    `${set.label.padEnd(16)} built in ${compileMs.toFixed(0).padStart(5)} ms: ${info?.dfaStates} DFA states → ` +
      `${info?.rows} rows (${info?.minimized ? "minimised" : "NOT minimised"}), ${info?.classes} byte classes, ` +
      `${info?.pairClasses} pair classes, table ${
        ((automaton as { table?: Uint8Array }).table?.length ?? 0) >> 10
      } KiB; ` +
      `names: ${mean.toFixed(1)} characters on average`,
  );
}

const event = (name: string) => ({ id: "", name, timestamp: "", context: {}, data: {} }) as TrackingEvent;
let i = 0;
let sink = 0;
addEventListener("unload", () => {
  if (sink < 0) console.log(sink);
});

function build(set: PatternSet): [RegexFilter, number] {
  const start = performance.now();
  const filter = new RegexFilter({ regularExpressions: set.patterns });
  return [filter, performance.now() - start];
}

console.log(`RegexFilter walker: ${currentEngine().kind}`);
/**
 * The compile groups, registered after the decision groups: the garbage of
 * hundreds of short-lived WebAssembly instances would otherwise be collected
 * while a decision group runs (a 50 ms pause in one of them was seen).
 */
const compiles: (() => void)[] = [];

for (const count of [10, 100, 1000]) {
  const set = regularSet(count);
  const [filter, compileMs] = build(set);
  preferWalker("copy-in");
  const copyIn = new RegexFilter({ regularExpressions: set.patterns });
  preferWalker("js-string");
  const coldNames = makeNames(set, 65536, 1, true);
  const warmNames = makeNames(set, 4096, 2, false);
  if (new Set(coldNames).size !== coldNames.length) throw new Error("cold names repeat");
  describe(set, filter, coldNames, compileMs);
  for (const name of coldNames.slice(0, 4096)) {
    if (copyIn.matches(name) !== filter.matches(name)) throw new Error(`the walkers disagree on ${name}`);
  }
  const separate = set.patterns.map((p) => new RegExp(`^(?:${p})`));

  Deno.bench({
    name: `V8 alternation re.test (${count} patterns)`,
    group: `cold ${count}`,
    baseline: true,
    fn() {
      if (set.v8.test(coldNames[i++ & 65535]!)) sink++;
    },
  });
  Deno.bench({
    name: `RegexFilter.matches() cold (${count} patterns)`,
    group: `cold ${count}`,
    fn() {
      if (filter.matches(coldNames[i++ & 65535]!)) sink++;
    },
  });
  Deno.bench({
    name: `RegexFilter.matches() cold, copy-in walker (${count} patterns)`,
    group: `cold ${count}`,
    fn() {
      if (copyIn.matches(coldNames[i++ & 65535]!)) sink++;
    },
  });
  if (count <= 100) {
    Deno.bench({
      name: `reference approach: loop of ${count} RegExps`,
      group: `cold ${count}`,
      fn() {
        const n = coldNames[i++ & 65535]!;
        for (const re of separate) {
          if (re.test(n)) {
            sink++;
            break;
          }
        }
      },
    });
  }

  Deno.bench({
    name: `V8 alternation re.test, repeated names (${count} patterns)`,
    group: `warm ${count}`,
    baseline: true,
    fn() {
      if (set.v8.test(warmNames[i++ & 4095]!)) sink++;
    },
  });
  Deno.bench({
    name: `RegexFilter.matches() warm (${count} patterns)`,
    group: `warm ${count}`,
    fn() {
      if (filter.matches(warmNames[i++ & 4095]!)) sink++;
    },
  });

  compiles.push(() => {
    Deno.bench({
      name: `V8 new RegExp(alternation) + first test (${count} patterns)`,
      group: `compile ${count}`,
      baseline: true,
      fn() {
        new RegExp(`^(?:${set.patterns.join("|")})`).test("edx.course.enrollment.activated");
      },
    });
    Deno.bench({
      name: `new RegexFilter() (${count} patterns)`,
      group: `compile ${count}`,
      n: count >= 1000 ? 10 : 50,
      fn() {
        new RegexFilter({ regularExpressions: set.patterns });
      },
    });
  });

  const coldEvents = coldNames.map(event);
  const v8Processor = (e: TrackingEvent) => {
    if (!set.v8.test(e.name)) throw new EventEmissionExit();
  };
  Deno.bench({
    name: `V8 processor throwing EventEmissionExit (${count} patterns)`,
    group: `process ${count}`,
    baseline: true,
    fn() {
      try {
        v8Processor(coldEvents[i++ & 65535]!);
        sink++;
      } catch (err) {
        if (!(err instanceof EventEmissionExit)) throw err;
      }
    },
  });
  Deno.bench({
    name: `RegexFilter.process() (${count} patterns)`,
    group: `process ${count}`,
    fn() {
      if (filter.process(coldEvents[i++ & 65535]!) !== DROP) sink++;
    },
  });
}

for (const set of [unicodeSet(), caseInsensitiveSet(), commonPrefixSet(), dotStarSet()]) {
  const [filter, compileMs] = build(set);
  const names = makeNames(set, 65536, 3, true);
  if (new Set(names).size !== names.length) throw new Error(`${set.label}: names repeat`);
  describe(set, filter, names, compileMs);
  Deno.bench({
    name: `V8 alternation re.test (${set.label})`,
    group: `cold ${set.label}`,
    baseline: true,
    fn() {
      if (set.v8.test(names[i++ & 65535]!)) sink++;
    },
  });
  Deno.bench({
    name: `RegexFilter.matches() cold (${set.label})`,
    group: `cold ${set.label}`,
    fn() {
      if (filter.matches(names[i++ & 65535]!)) sink++;
    },
  });
}

for (const register of compiles) register();

// Catastrophic backtracking: V8 is exponential (or polynomial) on these
// inputs; the DFA reads each character once. Input sizes keep V8 under a second.
const redos: [string, string][] = [
  ["(a+)+$", "a".repeat(22) + "!"],
  ["(a|aa)+$", "a".repeat(32) + "!"],
  // Not catastrophic for V8 under prefix matching: each `.*` only revisits
  // the four a's, so V8 stays linear-ish here.
  ["(.*a){5}", "a".repeat(4) + "b".repeat(60)],
  ["(.*a){5}", "a".repeat(4) + "b".repeat(4996)],
];
for (const [pattern, name] of redos) {
  const filter = new RegexFilter({ regularExpressions: [pattern] });
  const re = new RegExp(`^(?:${pattern})`);
  if (filter.matches(name) !== re.test(name)) throw new Error(`ReDoS answers differ: ${pattern}`);
  Deno.bench({
    name: `V8 ${pattern} on ${name.length} chars`,
    group: `redos ${pattern} ${name.length}`,
    baseline: true,
    n: 3,
    warmup: 1,
    fn() {
      re.test(name);
    },
  });
  Deno.bench({
    name: `RegexFilter ${pattern} on ${name.length} chars`,
    group: `redos ${pattern} ${name.length}`,
    fn() {
      filter.matches(name);
    },
  });
}
