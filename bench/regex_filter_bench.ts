/**
 * RegexFilter against V8's RegExp: decisions on names never seen before
 * (cold), on repeated names (warm), compile time, the whole processor, and
 * catastrophic-backtracking patterns. Run: `deno bench bench/regex_filter_bench.ts`.
 *
 * Names are ≈30 bytes, half of them matching. "Cold" cycles through 65,536
 * distinct names, so each recurs only after the 4,096-name decision cache has
 * forgotten it; "warm" cycles through 4,096 names that all stay cached.
 *
 * @module
 */

import type { TrackingEvent } from "../src/event.ts";
import { DROP } from "../src/processor.ts";
import { EventEmissionExit } from "../src/errors.ts";
import { RegexFilter } from "../src/processors/regex_filter.ts";

/** Deterministic PRNG (mulberry32), so every run measures the same names. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const AREAS = ["course", "video", "forum", "grades", "problem", "team", "bi", "ui.lms", "cert"];
const VERBS = ["created", "updated", "deleted", "viewed", "graded"];

/** `count` Open edX-like patterns and, for each, a maker of matching names. */
function makePatterns(count: number) {
  const patterns: string[] = [];
  const makers: ((r: () => number, id: string) => string)[] = [];
  for (let i = 0; i < count; i++) {
    const area = AREAS[i % AREAS.length]!;
    const key = `${area.replace(".", "_")}${i}`;
    switch (i % 4) {
      case 0:
        patterns.push(`edx\\.${key}\\.(created|updated|deleted)$`);
        makers.push((r, id) => id ? `edx.${key}_${id}` : `edx.${key}.${VERBS[Math.floor(r() * 3)]}`);
        break;
      case 1:
        patterns.push(`org\\.openedx\\.${key}\\..*\\.v1$`);
        makers.push((r, id) => `org.openedx.${key}.${id || VERBS[Math.floor(r() * 5)]}.v1`);
        break;
      case 2:
        patterns.push(`edx\\.${key}\\.[a-z_]+`);
        makers.push((r, id) => `edx.${key}.${VERBS[Math.floor(r() * 5)]}_${id}`);
        break;
      default:
        patterns.push(`${key}_(check|graded)(_fail)?$`);
        makers.push((r, id) => id ? `${key}_check${id}` : `${key}_${r() < 0.5 ? "check" : "graded_fail"}`);
    }
  }
  return { patterns, makers };
}

/**
 * `size` names, half matching. With `unique`, every name is distinct (a
 * base-36 serial is woven in where it keeps the answer), otherwise names
 * repeat as real event names do.
 */
function makeNames(count: number, size: number, seed: number, unique: boolean): string[] {
  const { makers } = makePatterns(count);
  const r = rng(seed);
  const names: string[] = [];
  for (let i = 0; i < size; i++) {
    const id = unique ? i.toString(36) : "";
    if (i % 2 === 0) {
      // Serials only fit the patterns with free text (kinds 1 and 2).
      let m = Math.floor(r() * makers.length);
      if (unique && m % 4 !== 1 && m % 4 !== 2) m = (m & ~3) + 1 + (i & 2 ? 1 : 0);
      names.push(makers[Math.min(m, makers.length - 1)]!(r, id));
    } else {
      // Near misses: known prefixes, unknown keys or verbs.
      const k = Math.floor(r() * count * 2);
      const area = AREAS[k % AREAS.length]!.replace(".", "_");
      const pick = Math.floor(r() * 3);
      names.push(
        pick === 0
          ? `edx.${area}${k + count}.created${id}`
          : pick === 1
          ? `org.openedx.${area}${k}.x.v2${id}`
          : `edx.${area}${k}.Archived${id}`,
      );
    }
  }
  // Each name its own flat string, as in an event parsed from JSON.
  return names.map((n) => JSON.parse(JSON.stringify(n)) as string);
}

function v8Alternation(patterns: readonly string[]): RegExp {
  return new RegExp(`^(?:${patterns.join("|")})`);
}

const event = (name: string) => ({ id: "", name, timestamp: "", context: {}, data: {} }) as TrackingEvent;

for (const count of [10, 100, 1000]) {
  const { patterns } = makePatterns(count);
  const filter = new RegexFilter({ regularExpressions: patterns });
  const alternation = v8Alternation(patterns);
  const separate = patterns.map((p) => new RegExp(`^(?:${p})`));
  const coldNames = makeNames(count, 65536, 1, true);
  const warmNames = makeNames(count, 4096, 2, false);
  if (new Set(coldNames).size !== coldNames.length) throw new Error("cold names repeat");
  // Sanity: the WebAssembly core and V8 agree, and about half the names match.
  let agree = 0;
  let hits = 0;
  for (const names of [warmNames, coldNames.slice(0, 4096)]) {
    for (const n of names) {
      if (filter.matches(n) === alternation.test(n)) agree++;
      if (alternation.test(n)) hits++;
    }
  }
  if (agree !== 8192) throw new Error(`RegexFilter and V8 disagree (${count} patterns)`);
  if (hits < 3500 || hits > 4700) throw new Error(`unbalanced names: ${hits} of 8192 match`);

  let i = 0;
  let sink = 0;
  Deno.bench({
    name: `V8 alternation re.test (${count} patterns)`,
    group: `cold ${count}`,
    baseline: true,
    fn() {
      if (alternation.test(coldNames[i++ & 65535]!)) sink++;
    },
  });
  Deno.bench({
    name: `RegexFilter.matches() cold (${count} patterns)`,
    group: `cold ${count}`,
    fn() {
      if (filter.matches(coldNames[i++ & 65535]!)) sink++;
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
      if (alternation.test(warmNames[i++ & 4095]!)) sink++;
    },
  });
  Deno.bench({
    name: `RegexFilter.matches() warm (${count} patterns)`,
    group: `warm ${count}`,
    fn() {
      if (filter.matches(warmNames[i++ & 4095]!)) sink++;
    },
  });

  Deno.bench({
    name: `V8 new RegExp(alternation) + first test (${count} patterns)`,
    group: `compile ${count}`,
    baseline: true,
    fn() {
      v8Alternation(patterns).test("edx.course.enrollment.activated");
    },
  });
  Deno.bench({
    name: `new RegexFilter() (${count} patterns)`,
    group: `compile ${count}`,
    n: count >= 1000 ? 10 : 50,
    fn() {
      new RegexFilter({ regularExpressions: patterns });
    },
  });

  const coldEvents = coldNames.map(event);
  const v8Processor = (e: TrackingEvent) => {
    if (!alternation.test(e.name)) throw new EventEmissionExit();
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
  addEventListener("unload", () => {
    if (sink < 0) console.log(sink);
  });
}

// Catastrophic backtracking: V8 is exponential (or polynomial) on these
// inputs; the DFA reads each byte once. Input sizes keep V8 under a second.
const redos: [string, string][] = [
  ["(a+)+$", "a".repeat(22) + "!"],
  ["(a|aa)+$", "a".repeat(32) + "!"],
  // Not catastrophic for V8 under prefix matching: each `.*` only revisits
  // the four a's, so V8 stays linear-ish here.
  ["(.*a){5}", "a".repeat(4) + "b".repeat(60)],
  ["(.*a){5}", "a".repeat(4) + "b".repeat(4996)],
];
for (const [pattern, name] of redos) {
  const filter = new RegexFilter({ regularExpressions: [pattern], cacheSize: 0 });
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
