import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Buffer } from "node:buffer";
import { ImproperlyConfigured } from "../../src/errors.ts";
import type { TrackingEvent } from "../../src/event.ts";
import { DROP } from "../../src/processor.ts";
import { loadRegexWasm, RegexFilter, useRegexWasmModule } from "../../src/processors/regex_filter.ts";
import { currentEngine, placeTable, preferWalker, type WalkerKind } from "../../src/processors/_regex_engine.ts";
import { compileAutomaton, type CoreLimits } from "../../src/processors/_regex_wasm.ts";
import { translatePython } from "../../src/processors/_python_regex.ts";
import { WALKER_HEX } from "../../src/processors/_regex_walker_wasm.ts";
import { emitWalker } from "../../wasm/tools/emit_walker.ts";

interface Corpus {
  match: { pattern: string; name: string; match: boolean }[];
  filter: {
    filter_type: "allowlist" | "blocklist";
    regular_expressions: string[];
    name: string;
    passes: boolean;
  }[];
  invalid: { pattern: string; python: "invalid" }[];
}

const corpus: Corpus = JSON.parse(
  readFileSync(new URL("../fixtures/regex-filter.json", import.meta.url), "utf8"),
);

/** Patterns of the corpus that Python accepts but that need backtracking. */
const NEEDS_BACKTRACKING: Record<string, RegExp> = {
  "(?<=e)dx": /lookbehind/,
  "edx\\.(?!video)": /negative lookahead/,
  "(?>edx)\\.course": /atomic group/,
  "edx++": /possessive quantifier/,
};
/** The same, among the patterns that only the filter decisions use. */
const FILTER_NEEDS_BACKTRACKING = ["(edx)\\.\\1", ...Object.keys(NEEDS_BACKTRACKING)];

function event(name: unknown): TrackingEvent {
  return { id: "1", name, timestamp: "", context: {}, data: {} } as TrackingEvent;
}

function passes(filter: RegexFilter, name: string): boolean {
  return filter.process(event(name)) === undefined;
}

/**
 * Both walkers: the one that reads the string through JS String Builtins
 * (Deno has them), and the copy-in walker of runtimes without them (Node.js 20,
 * Cloudflare Workers), forced here. Filters built inside `fn` use `kind`.
 */
const WALKERS: WalkerKind[] = ["js-string", "copy-in"];
function withWalker<T>(kind: WalkerKind, fn: () => T): T {
  preferWalker(kind);
  try {
    assert.equal(currentEngine().kind, kind);
    return fn();
  } finally {
    preferWalker("js-string");
  }
}

for (const kind of WALKERS) {
  Deno.test(`RegexFilter.matches() agrees with CPython on the whole conformance corpus (${kind} walker)`, () => {
    const byPattern = new Map<string, Corpus["match"]>();
    for (const c of corpus.match) {
      byPattern.set(c.pattern, [...(byPattern.get(c.pattern) ?? []), c]);
    }
    const rejected: string[] = [];
    let checked = 0;
    withWalker(kind, () => {
      for (const [pattern, cases] of byPattern) {
        const reason = NEEDS_BACKTRACKING[pattern];
        if (reason) {
          assert.throws(
            () => new RegexFilter({ regularExpressions: [pattern] }),
            (err: Error) =>
              err instanceof ImproperlyConfigured && err.message.includes(JSON.stringify(pattern)) &&
              /backtracking/.test(err.message) && reason.test(err.message),
          );
          rejected.push(pattern);
          continue;
        }
        const filter = new RegexFilter({ regularExpressions: [pattern] });
        for (const c of cases) {
          assert.equal(filter.matches(c.name), c.match, `${pattern} on ${JSON.stringify(c.name)}`);
          checked++;
        }
      }
    });
    assert.deepEqual(rejected.sort(), Object.keys(NEEDS_BACKTRACKING).sort());
    assert.ok(checked > 4500);
  });
}

for (const kind of WALKERS) {
  Deno.test(`RegexFilter.process() reproduces every filter decision of the corpus (${kind} walker)`, () => {
    const filters = new Map<string, RegexFilter | null>();
    let checked = 0;
    withWalker(kind, () => {
      for (const c of corpus.filter) {
        const key = JSON.stringify([c.filter_type, c.regular_expressions]);
        let filter = filters.get(key);
        if (filter === undefined) {
          const options = { filterType: c.filter_type, regularExpressions: c.regular_expressions };
          if (c.regular_expressions.some((p) => FILTER_NEEDS_BACKTRACKING.includes(p))) {
            assert.throws(() => new RegexFilter(options), /needs backtracking/);
            filter = null;
          } else {
            filter = new RegexFilter(options);
          }
          filters.set(key, filter);
        }
        if (filter === null) continue;
        assert.equal(passes(filter, c.name), c.passes, `${key} on ${JSON.stringify(c.name)}`);
        checked++;
      }
    });
    assert.ok(checked > 5000);
  });
}

Deno.test("RegexFilter rejects the patterns CPython rejects, naming each one", () => {
  const patterns = corpus.invalid.map((c) => c.pattern);
  assert.throws(
    () => new RegexFilter({ regularExpressions: ["edx\\.", ...patterns] }),
    (err: Error) => {
      assert.ok(err instanceof ImproperlyConfigured);
      for (const p of patterns) {
        assert.ok(
          err.message.includes(`${JSON.stringify(p)} is not a valid Python regular expression`),
          err.message,
        );
      }
      assert.ok(!err.message.includes('"edx\\\\."'));
      return true;
    },
  );
});

// §10.14 test_with_invalid_configurations
Deno.test("RegexFilter rejects an unknown filter type and an invalid pattern", () => {
  assert.throws(
    () => new RegexFilter({ filterType: "INVALID_TYPE" as "allowlist", regularExpressions: [] }),
    ImproperlyConfigured,
  );
  assert.throws(
    () => new RegexFilter({ filterType: "allowlist", regularExpressions: ["***"] }),
    ImproperlyConfigured,
  );
  // As in the reference, a bad pattern is reported before a bad filter type.
  assert.throws(
    () => new RegexFilter({ filterType: "ALLOWLIST" as "allowlist", regularExpressions: ["("] }),
    /^ImproperlyConfigured: RegexFilter\.regularExpressions: "\(" is not a valid Python regular expression/,
  );
  assert.throws(
    () => new RegexFilter({ filterType: "ALLOWLIST" as "allowlist" }),
    {
      name: "ImproperlyConfigured",
      message: 'RegexFilter.filterType: must be "allowlist" or "blocklist", got "ALLOWLIST"',
    },
  );
});

// §10.14 test_with_multiple_regex, sample event name 'sentinel.name'
Deno.test("RegexFilter.process() passes or drops 'sentinel.name' as the reference does", () => {
  const cases: ["allowlist" | "blocklist", string[], boolean][] = [
    ["allowlist", ["sentinel.name", "any"], true],
    ["allowlist", ["not_matching", "NOT_MATCHING"], false],
    ["allowlist", [""], true],
    ["allowlist", [], false],
    ["blocklist", ["sentinel.name", "any"], false],
    ["blocklist", ["not_matching", "NOT_MATCHING"], true],
    ["blocklist", [""], false],
    ["blocklist", [], true],
  ];
  for (const [filterType, regularExpressions, pass] of cases) {
    const filter = new RegexFilter({ filterType, regularExpressions });
    const result = filter.process(event("sentinel.name"));
    assert.equal(result, pass ? undefined : DROP, `${filterType} ${JSON.stringify(regularExpressions)}`);
  }
});

Deno.test("RegexFilter.matches() matches at the start of the name only (re.match)", () => {
  const filter = new RegexFilter({ regularExpressions: ["edx.course"] });
  assert.equal(filter.matches("edx.course.enrollment.activated"), true);
  assert.equal(filter.matches("edxXcourse"), true);
  assert.equal(filter.matches("org.edx.course"), false);
  assert.equal(filter.matches("EDX.course"), false);
  assert.equal(new RegexFilter({ regularExpressions: ["course"] }).matches("edx.course"), false);
  const exact = new RegexFilter({ regularExpressions: ["edx.course$"] });
  assert.equal(exact.matches("edx.course"), true);
  assert.equal(exact.matches("edx.course.x"), false);
});

// Answers generated with CPython 3.11's re.match for syntax the corpus does not cover.
const PYTHON_ANSWERS: [pattern: string, name: string, match: boolean][] = [
  ["edx.course$", "edx.course", true],
  ["edx.course$", "edx.course\n", true],
  ["edx.course$", "edx.course\n\n", false],
  ["edx.course$", "edx.course.x", false],
  ["edx\\Z", "edx", true],
  ["edx\\Z", "edx\n", false],
  ["(?m)edx$", "edx\nmore", true],
  ["(?m)edx$", "edx", true],
  ["(?m)edx$", "edxy", false],
  ["a{,2}b", "b", true],
  ["a{,2}b", "aab", true],
  ["a{,2}b", "aaab", false],
  ["a{,}b", "aaaab", true],
  ["a{,}b", "b", true],
  ["x{}", "x{}", true],
  ["x{}", "x", false],
  ["x{a}", "x{a}", true],
  ["x{a}", "x", false],
  ["a{2,3}$", "aa", true],
  ["a{2,3}$", "aaaa", false],
  ["\\u00e9dx", "\u00e9dx", true],
  ["\\u00e9dx", "edx", false],
  ["\\U0001F600", "\ud83d\ude00x", true],
  ["\\U0001F600", "x", false],
  ["\\x41\\101\\0", "AA\u0000", true],
  ["\\x41\\101\\0", "AA", false],
  ["[[]x", "[x", true],
  ["[[]x", "x", false],
  ["[[:alpha:]]", "a]", true],
  ["[[:alpha:]]", ":]", true],
  ["[[:alpha:]]", "a", false],
  ["[[:alpha:]]", "b]", false],
  ["(?P<name>a)b", "ab", true],
  ["(?P<name>a)b", "b", false],
  ["(?#comment)x", "x", true],
  ["(?#comment)x", "(?#comment)x", false],
  ["(?x) a b # c", "ab", true],
  ["(?x) a b # c", "a b", false],
  ["(?x)a[ ]b", "a b", true],
  ["(?x)a[ ]b", "ab", false],
  ["(?i)i", "I", true],
  ["(?i)i", "\u0131", true],
  ["(?i)i", "\u0130", true],
  ["(?i)i", "j", false],
  ["(?i)k", "K", true],
  ["(?i)k", "\u212a", true],
  ["(?i)k", "k", true],
  ["(?i)s", "S", true],
  ["(?i)s", "\u017f", true],
  ["(?i)s", "\u00df", false],
  ["(?i)[a-z]+$", "ABC", true],
  ["(?i)[a-z]+$", "\u212a", true],
  ["(?i)[a-z]+$", "\u017f", true],
  ["(?i)[a-z]+$", "\u0130", true],
  ["(?i)[a-z]+$", "\u00e9", false],
  ["(?i)[^k]", "K", false],
  ["(?i)[^k]", "\u212a", false],
  ["(?i)[^k]", "x", true],
  ["(?i)[\\w]", "\u212a", true],
  ["(?i)[\\w]", "a", true],
  ["(?i:a)B", "AB", true],
  ["(?i:a)B", "Ab", false],
  ["(?i:a)B", "aB", true],
  ["(?a)\\w", "a", true],
  ["(?a)\\w", "\u00e9", false],
  ["(?a)\\w", "_", true],
  ["(?a:\\w)\\w", "a\u00e9", true],
  ["(?a:\\w)\\w", "\u00e9a", false],
  ["(?ai)k", "\u212a", false],
  ["(?ai)k", "K", true],
  ["\\w", "\u00aa", true],
  ["\\w", "\u00b2", true],
  ["\\w", "\u0663", true],
  ["\\w", "_", true],
  ["\\w", "-", false],
  ["\\w", "\u0345", false],
  ["\\w", "\u2160", true],
  ["\\w", "\u00b7", false],
  ["\\d", "\u0663", true],
  ["\\d", "\u00b2", false],
  ["\\d", "7", true],
  ["\\d", "a", false],
  ["\\s", "\u001c", true],
  ["\\s", "\u0085", true],
  ["\\s", "\u00a0", true],
  ["\\s", "\u200b", false],
  ["\\s", " ", true],
  ["(?s).x", "\nx", true],
  ["(?s).x", "ax", true],
  [".x", "\nx", false],
  [".x", "ax", true],
  [".x", "\ud800x", true],
  ["[^a]", "\udc00", true],
  ["[^a]", "a", false],
  ["[^a]", "\ud83d\ude00", true],
  ["edx\\b", "edx", true],
  ["edx\\b", "edx.", true],
  ["edx\\b", "edxa", false],
  ["edx\\b", "edx \u00e9", true],
  ["edx\\B", "edx", false],
  ["edx\\B", "edxa", true],
  ["edx\\B", "edx.", false],
  ["\\bedx", "edx", true],
  ["\\bedx", " edx", false],
  ["\\B", "", false],
  ["\\B", "a", false],
  ["\\B", ".", true],
  ["\\b", "", false],
  ["\\b", "a", true],
  ["\\b", ".", false],
  ["a\\b\\.", "a.", true],
  ["a\\b\\.", "ab", false],
  ["edx\\.\\W", "edx.!", true],
  ["edx\\.\\W", "edx.a", false],
  ["^$", "", true],
  ["^$", "\n", true],
  ["^$", "a", false],
  ["$", "", true],
  ["$", "x", false],
  ["(?:a|)$", "", true],
  ["(?:a|)$", "a", true],
  ["(?:a|)$", "a\n", true],
  ["(?:a|)$", "b", false],
  ["a|b$", "a", true],
  ["a|b$", "b", true],
  ["a|b$", "bb", false],
  ["\\Aedx", "edx", true],
  ["\\Aedx", "xedx", false],
  ["x^", "x", false],
  ["(?m)^x", "x", true],
  ["(?m)^x", "\nx", false],
  ["(?m)a\\n^b", "a\nb", true],
  ["(?m)a\\n^b", "a\nc", false],
  ["[]]", "]", true],
  ["[^]]", "]", false],
  ["[^]]", "a", true],
  ["[a-]", "-", true],
  ["[a-]", "a", true],
  ["(a)(?:b)(c)?", "ab", true],
  ["(a)(?:b)(c)?", "abc", true],
  ["\u4e8b\u4ef6\\..*", "\u4e8b\u4ef6.\u540d\u79f0", true],
  ["\u4e8b\u4ef6\\..*", "\u4e8b\u4ef6", false],
  ["(?u)\u00e9", "\u00e9", true],
  ["(?i)\u01c5", "\u01c4", true],
  ["(?i)\u01c5", "\u01c6", true],
  ["(?i)\u01c5", "\u01c5", true],
  ["(?i)\u00b5", "\u03bc", true],
  ["(?i)\u00b5", "\u039c", true],
  ["(?i)\u00b5", "\u00b5", true],
  ["(?t)a", "a", true],
];
const PYTHON_INVALID: string[] = [
  "[\\d-z]",
  "(a)\\2",
  "(?L)a",
  "(?au)a",
  "a**",
  "\\q",
  "(?<=a+)b",
  "(?P<1>a)",
  "[z-a]",
  "a)",
  "(?i",
  "\\",
  "\\U00110000",
  "\\400",
  "a(?i)b",
  "(?t)a*",
];

Deno.test("RegexFilter translates Python-only syntax so that answers agree with CPython", () => {
  for (const [pattern, name, match] of PYTHON_ANSWERS) {
    const filter = new RegexFilter({ regularExpressions: [pattern] });
    assert.equal(filter.matches(name), match, `${pattern} on ${JSON.stringify(name)}`);
  }
});

Deno.test("RegexFilter rejects every pattern CPython rejects", () => {
  for (const pattern of PYTHON_INVALID) {
    assert.throws(
      () => new RegexFilter({ regularExpressions: [pattern] }),
      (err: Error) =>
        err instanceof ImproperlyConfigured &&
        err.message.includes(`${JSON.stringify(pattern)} is not a valid Python regular expression`),
      pattern,
    );
  }
});

Deno.test("RegexFilter refuses constructs that need backtracking and says why", () => {
  const cases: [string, RegExp][] = [
    ["edx(?=\\.)", /lookahead assertion, which needs backtracking/],
    ["(?<!x)edx", /negative lookbehind assertion/],
    ["(a)\\1", /backreference/],
    ["(?P<n>a)(?P=n)", /backreference/],
    ["(?>a+)b", /atomic group/],
    ["a*+b", /possessive quantifier/],
    ["a{1,3}+b", /possessive quantifier/],
    ["(a)?(?(1)b|c)", /conditional group/],
  ];
  for (const [pattern, reason] of cases) {
    assert.throws(
      () => new RegexFilter({ regularExpressions: [pattern] }),
      (err: Error) =>
        err instanceof ImproperlyConfigured && reason.test(err.message) &&
        err.message.includes(`${JSON.stringify(pattern)} is not supported`),
      pattern,
    );
  }
});

Deno.test("RegexFilter refuses constructs it cannot translate exactly and says why", () => {
  const cases: [string, RegExp][] = [
    ["\\N{DIGIT ONE}", /named character escapes/],
    ["a$b", /end anchor .* followed by more pattern/],
    ["a$\\n", /followed by more pattern/],
    ["(a$)+", /followed by more pattern/],
    ["a?^b", /may or may not be at the start/],
    ["(?m)a?^b", /may or may not follow a newline/],
    ["a*\\bb", /does not decide whether the neighbouring characters are word characters/],
    ["(?i)[\\U00010400x]", /outside the Basic Multilingual Plane under IGNORECASE/],
    [".{100000}", /automaton states/],
  ];
  for (const [pattern, reason] of cases) {
    assert.throws(
      () => new RegexFilter({ regularExpressions: [pattern] }),
      (err: Error) => err instanceof ImproperlyConfigured && reason.test(err.message),
      pattern,
    );
  }
});

Deno.test("RegexFilter turns an automaton that outgrows its memory into ImproperlyConfigured", () => {
  // 2^21 DFA states: determinization hits the 256 MiB cap of the core.
  assert.throws(
    () => new RegexFilter({ regularExpressions: ["(a|b)*a(a|b){20}"] }),
    (err: Error) => err instanceof ImproperlyConfigured && /256 MiB/.test(err.message),
  );
  // Other filters are not affected.
  assert.equal(new RegexFilter({ regularExpressions: ["a"] }).matches("a"), true);
});

Deno.test("RegexFilter.matches() decides catastrophic-backtracking patterns in linear time", () => {
  const nested = new RegexFilter({ regularExpressions: ["(a+)+$"] });
  const alternation = new RegexFilter({ regularExpressions: ["(a|aa)+$"] });
  const repeated = new RegexFilter({ regularExpressions: ["(.*a){5}"] });
  for (const n of [30, 100, 1000, 5000]) {
    // Each of these would take V8 or CPython longer than the age of the universe at n ≥ 100.
    assert.equal(nested.matches("a".repeat(n) + "!"), false);
    assert.equal(nested.matches("a".repeat(n)), true);
    assert.equal(nested.matches("a".repeat(n) + "\n"), true);
    assert.equal(alternation.matches("a".repeat(n) + "!"), false);
    assert.equal(alternation.matches("a".repeat(n)), true);
    assert.equal(repeated.matches("aaaa" + "b".repeat(n)), false);
    assert.equal(repeated.matches("b".repeat(n) + "aaaaa"), true);
  }
});

Deno.test("RegexFilter.process() drops events without a string name and counts them", () => {
  for (const filterType of ["allowlist", "blocklist"] as const) {
    const filter = new RegexFilter({ filterType, regularExpressions: ["nothing_matches"] });
    for (const name of [undefined, null, 42, {}, ["edx"]]) {
      assert.equal(filter.process(event(name)), DROP);
    }
    assert.equal(filter.process(null as unknown as TrackingEvent), DROP);
    assert.equal(filter.invalidNames, 6);
    assert.equal(filter.matches(42 as unknown as string), false);
  }
  // Even a filter that matches everything.
  assert.equal(new RegexFilter({ regularExpressions: [""] }).process(event(undefined)), DROP);
});

Deno.test("RegexFilter refuses a plain string instead of a list of patterns, and other bad options, by path", () => {
  assert.throws(
    () => new RegexFilter({ regularExpressions: "edx" as unknown as string[] }),
    (err: Error) =>
      err instanceof ImproperlyConfigured &&
      err.message === 'RegexFilter.regularExpressions: must be an array of strings, got "edx"',
  );
  assert.throws(
    () => new RegexFilter({ regularExpressions: ["a", 1] as unknown as string[] }),
    { name: "ImproperlyConfigured", message: "RegexFilter.regularExpressions[1]: must be a string, got 1" },
  );
  assert.throws(
    () => new RegexFilter({ regexes: [] } as never),
    { message: "RegexFilter.regexes: unknown option (expected: regularExpressions, filterType)" },
  );
  // The reference's spellings belong to configurations (createTracker), not to the constructor.
  assert.throws(
    () => new RegexFilter({ filter_type: "allowlist" } as never),
    /^ImproperlyConfigured: RegexFilter\.filter_type: unknown option/,
  );
  // There is no decision cache (a decision costs about what a cache lookup would): no cacheSize option either.
  assert.throws(
    () => new RegexFilter({ cacheSize: 4096 } as never),
    /^ImproperlyConfigured: RegexFilter\.cacheSize: unknown option/,
  );
  assert.throws(
    () => new RegexFilter(null as never),
    /^ImproperlyConfigured: RegexFilter: must be an object of options, got null$/,
  );
});

Deno.test("RegexFilter accepts an array or a Set, and duplicates", () => {
  const blocklist = new RegexFilter({ filterType: "blocklist", regularExpressions: ["a", "a", "b"] });
  assert.equal(blocklist.filterType, "blocklist");
  assert.deepEqual(blocklist.regularExpressions, ["a", "b"]);
  assert.equal(passes(blocklist, "abc"), false);
  assert.equal(passes(blocklist, "cab"), true);
  const camel = new RegexFilter({ filterType: "allowlist", regularExpressions: new Set(["c"]) });
  assert.equal(passes(camel, "cab"), true);
  const defaults = new RegexFilter();
  assert.equal(defaults.filterType, "allowlist");
  assert.equal(passes(defaults, "anything"), false);
});

Deno.test("RegexFilter.matches() handles long, non-ASCII and ill-formed names as Python does", () => {
  const filter = new RegexFilter({ regularExpressions: ["[^x]{4999}y$", "édx\\.😀", "\\ud800$"] });
  assert.equal(filter.matches("a".repeat(4999) + "y"), true);
  assert.equal(filter.matches("a".repeat(4999) + "yy"), false);
  assert.equal(filter.matches("é".repeat(4999) + "y\n"), true);
  assert.equal(filter.matches("édx.😀.emoji"), true);
  assert.equal(filter.matches("edx.😀"), false);
  // A lone surrogate is a character of its own in Python (and in JavaScript).
  assert.equal(filter.matches("\ud800"), true);
  assert.equal(filter.matches("\ud800\udc00"), false);
  // Long names take another copy path; a lone surrogate must survive it too.
  const long = new RegexFilter({ regularExpressions: ["\\ud800a{300}$"] });
  assert.equal(long.matches("\ud800" + "a".repeat(300)), true);
  assert.equal(long.matches("\ufffd" + "a".repeat(300)), false);
  const dot = new RegexFilter({ regularExpressions: ["..$"] });
  assert.equal(dot.matches("\udc00\ud800"), true);
  assert.equal(dot.matches("😀"), false);
});

for (const kind of WALKERS) {
  Deno.test(`RegexFilter decides a stream of unique names as V8 does (${kind} walker)`, () => {
    const patterns = ["edx\\.course\\.[a-z]+\\.\\d+$", "/courses/course-v1:[^/]+/courseware"];
    const filter = withWalker(kind, () => new RegexFilter({ regularExpressions: patterns }));
    const reference = patterns.map((p) => new RegExp(`^(?:${p.replace("$", "\\n?$")})`));
    for (let i = 0; i < 50_000; i++) {
      const name = i % 3 === 0
        ? `edx.course.view.${i}`
        : i % 3 === 1
        ? `/courses/course-v1:MITx+${i}/courseware`
        : `edx.course.view.${i}x`;
      const expected = reference.some((re) => re.test(name));
      assert.equal(filter.matches(name), expected, name);
      assert.equal(filter.matches(`edx.course.view.${i % 7}`), true);
    }
  });
}

Deno.test("useRegexWasmModule() makes RegexFilter use a precompiled module (Cloudflare Workers)", () => {
  const bytes = readFileSync(new URL("../../wasm/regex_filter.wasm", import.meta.url));
  useRegexWasmModule(new WebAssembly.Module(bytes));
  const filter = new RegexFilter({ regularExpressions: ["edx\\.video\\."] });
  assert.equal(filter.matches("edx.video.play"), true);
  assert.equal(filter.matches("edx.forum.thread"), false);
  assert.throws(() => useRegexWasmModule(bytes as unknown as WebAssembly.Module), TypeError);
});

const WASM_URL = new URL("../../wasm/regex_filter.wasm", import.meta.url);

Deno.test("loadRegexWasm() loads the core from a URL, a Response, bytes or a module", async () => {
  const bytes = readFileSync(WASM_URL);
  // A server that does not say application/wasm, as many do not.
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) =>
      new URL(request.url).pathname === "/regex_filter.wasm"
        ? new Response(bytes, { headers: { "content-type": "application/octet-stream" } })
        : new Response("missing", { status: 404 }),
  );
  const http = `http://127.0.0.1:${server.addr.port}`;
  const module = new WebAssembly.Module(bytes);
  const sources = {
    "the package's own copy": undefined,
    "a file: URL": WASM_URL,
    "an http: URL": new URL("/regex_filter.wasm", http),
    "a URL string": `${http}/regex_filter.wasm`,
    "a Response": new Response(bytes),
    "a promise of a Response": fetch(`${http}/regex_filter.wasm`),
    "an ArrayBuffer": bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
    "a Uint8Array": bytes,
    "a compiled module": module,
  };
  for (const [what, source] of Object.entries(sources)) {
    const loaded = await loadRegexWasm(source);
    assert.ok(loaded instanceof WebAssembly.Module, what);
    if (source === module) assert.equal(loaded, module);
    const filter = new RegexFilter({ regularExpressions: ["edx\\.video\\."] });
    assert.deepEqual([filter.matches("edx.video.play"), filter.matches("edx.forum")], [true, false], what);
  }
  // Once loaded, loading the package's copy again is free: the module in use is kept.
  assert.equal(await loadRegexWasm(), module);
});

Deno.test("loadRegexWasm() says what it could not load, and filters keep the module they had", async () => {
  const before = await loadRegexWasm();
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("missing", { status: 404 }),
  );
  await assert.rejects(
    loadRegexWasm(new URL(`http://127.0.0.1:${server.addr.port}/regex_filter.wasm`)),
    /Cannot load RegexFilter's WebAssembly core: http:\/\/127\.0\.0\.1:\d+\/regex_filter\.wasm answered 404/,
  );
  await assert.rejects(
    loadRegexWasm(new URL("./no-such.wasm", WASM_URL)),
    /Cannot load RegexFilter's WebAssembly core: cannot read file:\/\/.*\/wasm\/no-such\.wasm/,
  );
  await assert.rejects(
    loadRegexWasm(new TextEncoder().encode("not wasm")),
    /Cannot load RegexFilter's WebAssembly core from the bytes given: /,
  );
  await assert.rejects(loadRegexWasm("regex_filter.wasm"), TypeError);
  assert.equal(await loadRegexWasm(), before);
  assert.equal(new RegexFilter({ regularExpressions: ["a"] }).matches("abc"), true);
});

Deno.test("RegexFilter without a loaded core says how to load it where the package is not a local file", async () => {
  // A copy of the loader where no wasm/ directory is beside it: as in a bundle, or a JSR module (https:).
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/src/processors`, { recursive: true });
    await Deno.copyFile(new URL("../../src/_node_builtin.ts", import.meta.url), `${dir}/src/_node_builtin.ts`);
    await Deno.copyFile(
      new URL("../../src/processors/_regex_wasm.ts", import.meta.url),
      `${dir}/src/processors/_regex_wasm.ts`,
    );
    const copy: typeof import("../../src/processors/_regex_wasm.ts") = await import(
      `file://${dir}/src/processors/_regex_wasm.ts`
    );
    assert.throws(
      () => copy.compileAutomaton("a"),
      /Cannot build a RegexFilter: its WebAssembly core is not loaded \(cannot read file:\/\/.*\/wasm\/regex_filter\.wasm: .*\)\. Call `await loadRegexWasm\(\)` first/,
    );
    await assert.rejects(copy.loadRegexWasm(), /cannot read file:\/\/.*\/wasm\/regex_filter\.wasm/);
    await copy.loadRegexWasm(WASM_URL);
    const automaton = copy.compileAutomaton("a");
    assert.ok(automaton.constant === undefined && automaton.table.length > 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("RegexFilter compiles patterns that crash unpatched regex-automata 0.1.8 (a*a?)", () => {
  // wasm/patches/regex-automata-0.1.8-epsilon-closure.patch: without it, building the DFA panics.
  const filter = new RegexFilter({ regularExpressions: ["a*a?x", "\\.*\\.?$", "(?a)\\w+?(?i:[a-z]){,2}y"] });
  assert.equal(filter.matches("aax"), true);
  assert.equal(filter.matches("..."), true);
  assert.equal(filter.matches("abcy"), true);
  assert.equal(filter.matches("aab"), false);
});

Deno.test("the committed walker is what wasm/tools/emit_walker.ts emits, in wasm/ and in its TypeScript copy", () => {
  const emitted = emitWalker();
  assert.deepEqual(readFileSync(new URL("../../wasm/regex_walker.wasm", import.meta.url)), Buffer.from(emitted));
  assert.equal(WALKER_HEX, Buffer.from(emitted).toString("hex"));
  // Standard encodings only: it validates (where typed references are missing it fails to, and RegexFilter copies in).
  assert.ok(WebAssembly.validate(emitted));
});

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Random pattern sets whose Python meaning V8 shares under the `u` flag (no
 * `$`, `\\w`, flags…), over units that exercise every path of the walkers:
 * ASCII pairs, two- and three-byte characters, astral ones (surrogate pairs)
 * and lone surrogates.
 */
const UNITS = ["a", "b", ".", "_", "1", "é", "ĳ", "€", "😀", "\ud800", "\udc00"];
const PYTHON_ATOMS = [
  "a",
  "b",
  "\\.",
  "_",
  "1",
  "é",
  "ĳ",
  "€",
  "😀",
  "\\ud800",
  "\\udc00",
  ".",
  "[ab1]",
  "[^a]",
  "[é-€]",
];
function randomPattern(r: () => number): string {
  const atom = () => PYTHON_ATOMS[Math.floor(r() * PYTHON_ATOMS.length)]!;
  const piece = () => {
    const a = r() < 0.15 ? `(?:${atom()}|${atom()}${atom()})` : atom();
    const q = r();
    return q < 0.15 ? `${a}*` : q < 0.25 ? `${a}+` : q < 0.32 ? `${a}?` : q < 0.36 ? `${a}{1,3}` : a;
  };
  let p = "";
  for (let n = 1 + Math.floor(r() * 6); n > 0; n--) p += piece();
  return p;
}
function randomName(r: () => number): string {
  let name = "";
  for (let n = Math.floor(r() * 12); n > 0; n--) name += UNITS[Math.floor(r() * UNITS.length)];
  return name;
}

const CONFIGURATIONS: [string, CoreLimits | undefined][] = [
  ["minimised, pair entries", undefined],
  ["unminimised", { minimizeMaxTransitions: 0, pairMaxBytes: 4 << 20, pairMaxWork: 16_000_000 }],
  ["no pair entries", { minimizeMaxTransitions: 2_000_000, pairMaxBytes: 0, pairMaxWork: 16_000_000 }],
];

for (const kind of WALKERS) {
  for (const [configuration, limits] of CONFIGURATIONS) {
    Deno.test(`random pattern sets: the ${kind} walker over a table ${configuration} decides as V8 does`, () => {
      const r = rng(kind.length * 7 + configuration.length);
      const owner = {};
      withWalker(kind, () => {
        const engine = currentEngine();
        for (let set = 0; set < 150; set++) {
          const patterns = Array.from({ length: 1 + Math.floor(r() * 12) }, () => randomPattern(r));
          const union = patterns.map((p) => `(?:${(translatePython(p) as { rust: string }).rust})`).join("|");
          const automaton = compileAutomaton(union, limits);
          // `\\u{d800}`: V8 reads `\\ud800\\udc00` as one astral character, Python as two.
          const v8 = new RegExp(`^(?:${patterns.join("|").replace(/\\u(d[89a-f]..)/g, "\\u{$1}")})`, "u");
          const decide = automaton.constant !== undefined
            ? () => automaton.constant
            : ((table) => (name: string) => engine.walk(name, table) === 1)(engine.place(automaton.table, owner));
          if (automaton.constant === undefined) {
            if (limits?.minimizeMaxTransitions === 0) assert.ok(!automaton.info.minimized);
            if (limits?.pairMaxBytes === 0) assert.equal(automaton.info.pairClasses, 0);
          }
          for (let n = 0; n < 150; n++) {
            const name = randomName(r);
            assert.equal(decide(name), v8.test(name), `${JSON.stringify(patterns)} on ${JSON.stringify(name)}`);
          }
        }
      });
    });
  }
}

Deno.test("a table too large for pair entries still decides, in both walkers", () => {
  // 4,000 rows × 64² pairs of ASCII classes is past the work the core spends on pair classes.
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
  const literal = Array.from({ length: 4000 }, (_, i) => alphabet[(i * 7) % alphabet.length]).join("");
  const automaton = compileAutomaton((translatePython(literal.replaceAll("-", "\\-")) as { rust: string }).rust);
  assert.ok(automaton.constant === undefined && automaton.info.pairClasses === 0 && automaton.info.rows > 4000);
  for (const kind of WALKERS) {
    const filter = withWalker(kind, () => new RegexFilter({ regularExpressions: [literal.replaceAll("-", "\\-")] }));
    assert.equal(filter.matches(literal), true, kind);
    assert.equal(filter.matches(literal + "é"), true, kind);
    assert.equal(filter.matches(literal.slice(0, -1)), false, kind);
    assert.equal(filter.matches(literal.slice(0, -1) + "é"), false, kind);
  }
});

Deno.test("names longer than the copy-in walker's piece (4,096 units) decide alike, a surrogate pair across pieces included", () => {
  const patterns = [".{4095}😀$", "a{4094}é😀b", "(?:ab){2100}$", "a*\\ud83d$", "b{5000}"];
  const v8 = new RegExp(`^(?:${patterns.join("|").replace("\\ud83d", "\\u{d83d}")})`, "u");
  const names = [
    "a".repeat(4095) + "😀",
    "a".repeat(4094) + "é😀b",
    "a".repeat(4094) + "é😀",
    "a".repeat(4096) + "😀",
    "ab".repeat(2100),
    "ab".repeat(2100) + "\n",
    "ab".repeat(2100) + "a",
    "a".repeat(4095) + "\ud83d",
    "a".repeat(4095) + "\ud83d\ude00",
    "b".repeat(5000),
    "b".repeat(4999) + "c",
    "c" + "a".repeat(9000),
  ];
  for (const kind of WALKERS) {
    const filter = withWalker(kind, () => new RegexFilter({ regularExpressions: patterns }));
    for (const name of names) {
      // Python's `$` also matches before a final newline.
      const expected = v8.test(name) || v8.test(name.replace(/\n$/, ""));
      assert.equal(
        filter.matches(name),
        expected,
        `${kind}: ${name.length} units ending ${JSON.stringify(name.slice(-3))}`,
      );
    }
  }
});

Deno.test("a full store (256 MiB of tables not collected yet) sends new filters to a new one", () => {
  // Tables are freed when their filters are garbage-collected, which a loop building filters never waits for.
  const owners = Array.from({ length: 5 }, () => ({}));
  const placed = owners.map((owner) => placeTable(new Uint8Array(60 << 20), owner));
  assert.ok(new Set(placed.map((p) => p.walk)).size >= 2, "the fifth 60 MiB table went to a second store");
  const filter = new RegexFilter({ regularExpressions: ["edx\\."] });
  assert.deepEqual([filter.matches("edx.ui"), filter.matches("org.edx")], [true, false]);
});
