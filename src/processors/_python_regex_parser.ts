/**
 * A port of CPython 3.11's `re._parser` (sre_parse): parses a Python regular
 * expression into the same tree and raises the same errors, so RegexFilter
 * accepts and rejects exactly the patterns Python does. Private module.
 *
 * Differences: `\N{...}` is parsed but later rejected (no Unicode name
 * database in JavaScript); group names are checked with JavaScript's
 * `ID_Start`/`ID_Continue` instead of Python's `str.isidentifier()`.
 *
 * @module
 */

/** Python's `re.error`: the message and the position in code points. */
export class PythonRegexError extends Error {
  /** Position of the error in the pattern, in code points. */
  readonly pos: number;
  constructor(message: string, pos = -1) {
    super(pos < 0 ? message : `${message} at position ${pos}`);
    this.name = "PythonRegexError";
    this.pos = pos;
  }
}

// Flag values of CPython's re._constants.
export const FLAG_TEMPLATE = 1;
export const FLAG_IGNORECASE = 2;
export const FLAG_LOCALE = 4;
export const FLAG_MULTILINE = 8;
export const FLAG_DOTALL = 16;
export const FLAG_UNICODE = 32;
export const FLAG_VERBOSE = 64;
export const FLAG_DEBUG = 128;
export const FLAG_ASCII = 256;
// A literal: bundlers keep a top-level \`|\` of other bindings (it might call valueOf), which would put this
// module into every bundle of the core.
const TYPE_FLAGS = 292; // FLAG_ASCII | FLAG_LOCALE | FLAG_UNICODE
const GLOBAL_FLAGS = 129; // FLAG_DEBUG | FLAG_TEMPLATE
const FLAGS: Record<string, number> = {
  i: FLAG_IGNORECASE,
  L: FLAG_LOCALE,
  m: FLAG_MULTILINE,
  s: FLAG_DOTALL,
  x: FLAG_VERBOSE,
  a: FLAG_ASCII,
  t: FLAG_TEMPLATE,
  u: FLAG_UNICODE,
};
/** `_sre.MAXREPEAT`: an unbounded repeat has this maximum. */
export const MAXREPEAT = 4294967295;
const MAXGROUPS = 2147483647;
/** Deeper nesting is refused (CPython would hit its recursion limit). */
const MAX_NESTING = 200;

export type Category =
  | "digit"
  | "not_digit"
  | "space"
  | "not_space"
  | "word"
  | "not_word";

/** One member of a character set: `(LITERAL, c)`, `(RANGE, (lo, hi))` or `(CATEGORY, c)`. */
export type SetItem =
  | { readonly op: "lit"; readonly cp: number }
  | { readonly op: "range"; readonly lo: number; readonly hi: number }
  | { readonly op: "cat"; readonly cat: Category };

export type AtCode =
  | "beginning"
  | "beginning_string"
  | "end"
  | "end_string"
  | "boundary"
  | "non_boundary";

/** A node of the parsed tree, named after sre's opcodes. */
export type Node =
  | { readonly op: "lit"; readonly cp: number }
  | { readonly op: "not_lit"; readonly cp: number }
  | { readonly op: "any" }
  | { readonly op: "in"; readonly negate: boolean; readonly items: readonly SetItem[] }
  | { readonly op: "branch"; readonly alts: readonly Node[][] }
  | {
    readonly op: "subpattern";
    readonly group: number | null;
    readonly add: number;
    readonly del: number;
    readonly body: Node[];
  }
  | {
    readonly op: "repeat";
    readonly kind: "max" | "min" | "possessive";
    readonly min: number;
    readonly max: number;
    readonly body: Node[];
  }
  | { readonly op: "atomic"; readonly body: Node[] }
  | { readonly op: "at"; readonly at: AtCode }
  | { readonly op: "groupref"; readonly group: number }
  | {
    readonly op: "groupref_exists";
    readonly group: number;
    readonly yes: Node[];
    readonly no: Node[] | null;
  }
  | {
    readonly op: "assert";
    readonly negative: boolean;
    readonly behind: boolean;
    readonly body: Node[];
  };

/** The result of {@linkcode parsePython}: the tree and the global flags. */
export interface ParsedPattern {
  readonly nodes: Node[];
  /** Global flags after `fix_flags` (UNICODE is set unless ASCII is). */
  readonly flags: number;
}

const DIGITS = "0123456789";
const OCTDIGITS = "01234567";
const HEXDIGITS = "0123456789abcdefABCDEF";
const WHITESPACE = " \t\n\r\v\f";
const SPECIAL_CHARS = ".\\[{()*+?^$|";
const REPEAT_CHARS = "*+?{";
const ASCIILETTERS = /^[a-zA-Z]$/;
const IDENTIFIER = /^[\p{ID_Start}_][\p{ID_Continue}]*$/u;

const ESCAPES: Record<string, number> = {
  "\\a": 7,
  "\\b": 8,
  "\\f": 12,
  "\\n": 10,
  "\\r": 13,
  "\\t": 9,
  "\\v": 11,
  "\\\\": 92,
};
type Code = { op: "at"; at: AtCode } | { op: "in"; cat: Category };
const CATEGORIES: Record<string, Code> = {
  "\\A": { op: "at", at: "beginning_string" },
  "\\b": { op: "at", at: "boundary" },
  "\\B": { op: "at", at: "non_boundary" },
  "\\d": { op: "in", cat: "digit" },
  "\\D": { op: "in", cat: "not_digit" },
  "\\s": { op: "in", cat: "space" },
  "\\S": { op: "in", cat: "not_space" },
  "\\w": { op: "in", cat: "word" },
  "\\W": { op: "in", cat: "not_word" },
  "\\Z": { op: "at", at: "end_string" },
};

/** Marks `\N{...}` literals, which the translator rejects. */
export const NAMED_ESCAPE = -2;

class Source {
  readonly #chars: string[];
  #index = 0;
  next: string | null = null;
  #nextLen = 0;

  constructor(pattern: string) {
    this.#chars = Array.from(pattern);
    this.#advance();
  }

  #advance(): void {
    let index = this.#index;
    const chars = this.#chars;
    if (index >= chars.length) {
      this.next = null;
      this.#nextLen = 0;
      return;
    }
    let char = chars[index]!;
    let n = 1;
    if (char === "\\") {
      index++;
      if (index >= chars.length) {
        throw new PythonRegexError("bad escape (end of pattern)", chars.length - 1);
      }
      char += chars[index];
      n = 2;
    }
    this.#index = index + 1;
    this.next = char;
    this.#nextLen = n;
  }

  match(char: string): boolean {
    if (char === this.next) {
      this.#advance();
      return true;
    }
    return false;
  }

  get(): string | null {
    const value = this.next;
    this.#advance();
    return value;
  }

  getwhile(n: number, charset: string): string {
    let result = "";
    for (let i = 0; i < n; i++) {
      const c = this.next;
      if (c === null || c.length !== 1 || !charset.includes(c)) break;
      result += c;
      this.#advance();
    }
    return result;
  }

  getuntil(terminator: string, name: string): string {
    let result = "";
    let count = 0;
    while (true) {
      const c = this.next;
      this.#advance();
      if (c === null) {
        if (!result) throw this.error("missing " + name);
        throw this.error(`missing ${terminator}, unterminated name`, count);
      }
      if (c === terminator) {
        if (!result) throw this.error("missing " + name, 1);
        break;
      }
      result += c;
      count += Array.from(c).length;
    }
    return result;
  }

  tell(): number {
    return this.#index - this.#nextLen;
  }

  seek(index: number): void {
    this.#index = index;
    this.#advance();
  }

  error(message: string, offset = 0): PythonRegexError {
    return new PythonRegexError(message, this.tell() - offset);
  }

  checkgroupname(name: string, offset: number): void {
    if (!IDENTIFIER.test(name)) {
      throw this.error(`bad character in group name ${pyRepr(name)}`, cpLen(name) + offset);
    }
  }
}

type Width = [number, number];

class State {
  flags = 0;
  readonly groupdict = new Map<string, number>();
  readonly groupwidths: (Width | null)[] = [null];
  lookbehindgroups: number | null = null;
  readonly grouprefpos = new Map<number, number>();
  get groups(): number {
    return this.groupwidths.length;
  }
  opengroup(name: string | null): number {
    const gid = this.groups;
    this.groupwidths.push(null);
    if (this.groups > MAXGROUPS) throw new Error("too many groups");
    if (name !== null) {
      const ogid = this.groupdict.get(name);
      if (ogid !== undefined) {
        throw new Error(
          `redefinition of group name ${pyRepr(name)} as group ${gid}; was group ${ogid}`,
        );
      }
      this.groupdict.set(name, gid);
    }
    return gid;
  }
  closegroup(gid: number, p: Node[]): void {
    this.groupwidths[gid] = getwidth(p, this);
  }
  checkgroup(gid: number): boolean {
    return gid < this.groups && this.groupwidths[gid] !== null;
  }
  checklookbehindgroup(gid: number, source: Source): void {
    if (this.lookbehindgroups !== null) {
      if (!this.checkgroup(gid)) throw source.error("cannot refer to an open group");
      if (gid >= this.lookbehindgroups) {
        throw source.error("cannot refer to group defined in the same lookbehind subpattern");
      }
    }
  }
}

function cpLen(s: string): number {
  return Array.from(s).length;
}

/** A rough `repr()` of a str, for error messages. */
export function pyRepr(s: string): string {
  return s.includes("'") && !s.includes('"') ? `"${s}"` : `'${s.replaceAll("'", "\\'")}'`;
}

/** `SubPattern.getwidth()`: minimum and maximum width in code points. */
export function getwidth(nodes: readonly Node[], state?: State): Width {
  let lo = 0;
  let hi = 0;
  for (const node of nodes) {
    let w: Width;
    switch (node.op) {
      case "branch": {
        let i = MAXREPEAT - 1;
        let j = 0;
        for (const alt of node.alts) {
          const [l, h] = getwidth(alt, state);
          i = Math.min(i, l);
          j = Math.max(j, h);
        }
        w = [i, j];
        break;
      }
      case "atomic":
      case "subpattern":
        w = getwidth(node.body, state);
        break;
      case "repeat": {
        const [i, j] = getwidth(node.body, state);
        w = [i * node.min, j * node.max];
        break;
      }
      case "lit":
      case "not_lit":
      case "any":
      case "in":
        w = [1, 1];
        break;
      case "groupref":
        w = state?.groupwidths[node.group] ?? [0, MAXREPEAT];
        break;
      case "groupref_exists": {
        let [i, j] = getwidth(node.yes, state);
        if (node.no !== null) {
          const [l, h] = getwidth(node.no, state);
          i = Math.min(i, l);
          j = Math.max(j, h);
        } else {
          i = 0;
        }
        w = [i, j];
        break;
      }
      default:
        w = [0, 0];
    }
    lo += w[0];
    hi += w[1];
  }
  return [Math.min(lo, MAXREPEAT - 1), Math.min(hi, MAXREPEAT)];
}

function isOct(c: string | null): boolean {
  return c !== null && c.length === 1 && OCTDIGITS.includes(c);
}
function isDigit(c: string | null): boolean {
  return c !== null && c.length === 1 && DIGITS.includes(c);
}

function hexEscape(source: Source, escape: string, c: string): number | undefined {
  const widths: Record<string, number> = { x: 2, u: 4, U: 8 };
  const n = widths[c];
  if (n === undefined) return undefined;
  escape += source.getwhile(n, HEXDIGITS);
  if (escape.length !== n + 2) {
    throw source.error(`incomplete escape ${escape}`, escape.length);
  }
  const value = parseInt(escape.slice(2), 16);
  if (value > 0x10ffff) throw source.error(`bad escape ${escape}`, escape.length);
  return value;
}

function namedEscape(source: Source): number {
  if (!source.match("{")) throw source.error("missing {");
  source.getuntil("}", "character name");
  return NAMED_ESCAPE;
}

function classEscape(source: Source, escape: string): SetItem {
  const lit = ESCAPES[escape];
  if (lit !== undefined) return { op: "lit", cp: lit };
  const code = CATEGORIES[escape];
  if (code?.op === "in") return { op: "cat", cat: code.cat };
  const c = escape.slice(1);
  const hex = hexEscape(source, escape, c);
  if (hex !== undefined) return { op: "lit", cp: hex };
  if (c === "N") return { op: "lit", cp: namedEscape(source) };
  if (isOct(c)) {
    escape += source.getwhile(2, OCTDIGITS);
    const value = parseInt(escape.slice(1), 8);
    if (value > 0o377) {
      throw source.error(
        `octal escape value ${escape} outside of range 0-0o377`,
        escape.length,
      );
    }
    return { op: "lit", cp: value };
  }
  if (!isDigit(c) && cpLen(escape) === 2) {
    if (ASCIILETTERS.test(c)) throw source.error(`bad escape ${escape}`, escape.length);
    return { op: "lit", cp: c.codePointAt(0)! };
  }
  throw source.error(`bad escape ${escape}`, cpLen(escape));
}

function escapeOutside(source: Source, escape: string, state: State): Node {
  const code = CATEGORIES[escape];
  if (code?.op === "at") return { op: "at", at: code.at };
  if (code?.op === "in") return { op: "in", negate: false, items: [{ op: "cat", cat: code.cat }] };
  const lit = ESCAPES[escape];
  if (lit !== undefined) return { op: "lit", cp: lit };
  const c = escape.slice(1);
  const hex = hexEscape(source, escape, c);
  if (hex !== undefined) return { op: "lit", cp: hex };
  if (c === "N") return { op: "lit", cp: namedEscape(source) };
  if (c === "0") {
    escape += source.getwhile(2, OCTDIGITS);
    return { op: "lit", cp: parseInt(escape.slice(1), 8) };
  }
  if (isDigit(c)) {
    if (isDigit(source.next)) {
      escape += source.get();
      if (isOct(escape[1]!) && isOct(escape[2]!) && isOct(source.next)) {
        escape += source.get();
        const value = parseInt(escape.slice(1), 8);
        if (value > 0o377) {
          throw source.error(
            `octal escape value ${escape} outside of range 0-0o377`,
            escape.length,
          );
        }
        return { op: "lit", cp: value };
      }
    }
    const group = parseInt(escape.slice(1), 10);
    if (group < state.groups) {
      if (!state.checkgroup(group)) {
        throw source.error("cannot refer to an open group", escape.length);
      }
      state.checklookbehindgroup(group, source);
      return { op: "groupref", group };
    }
    throw source.error(`invalid group reference ${group}`, escape.length - 1);
  }
  if (cpLen(escape) === 2) {
    if (ASCIILETTERS.test(c)) throw source.error(`bad escape ${escape}`, escape.length);
    return { op: "lit", cp: c.codePointAt(0)! };
  }
  throw source.error(`bad escape ${escape}`, cpLen(escape));
}

function parseSub(source: Source, state: State, verbose: boolean, nested: number): Node[] {
  if (nested > MAX_NESTING) throw source.error("too many nested groups");
  const items: Node[][] = [];
  while (true) {
    items.push(parseSeq(source, state, verbose, nested + 1, !nested && items.length === 0));
    if (!source.match("|")) break;
    if (!nested) verbose = (state.flags & FLAG_VERBOSE) !== 0;
  }
  if (items.length === 1) return items[0]!;
  return [{ op: "branch", alts: items }];
}

function parseSeq(
  source: Source,
  state: State,
  verbose: boolean,
  nested: number,
  first = false,
): Node[] {
  const sub: Node[] = [];
  while (true) {
    const current = source.next;
    if (current === null) break;
    if (current === "|" || current === ")") break;
    source.get();
    if (verbose) {
      if (WHITESPACE.includes(current)) continue;
      if (current === "#") {
        while (true) {
          const c = source.get();
          if (c === null || c === "\n") break;
        }
        continue;
      }
    }
    if (current[0] === "\\") {
      sub.push(escapeOutside(source, current, state));
    } else if (!SPECIAL_CHARS.includes(current)) {
      sub.push({ op: "lit", cp: current.codePointAt(0)! });
    } else if (current === "[") {
      sub.push(parseClass(source));
    } else if (REPEAT_CHARS.includes(current)) {
      const here = source.tell();
      let min = 0;
      let max = MAXREPEAT;
      if (current === "?") {
        max = 1;
      } else if (current === "+") {
        min = 1;
      } else if (current === "{") {
        if (source.next === "}") {
          sub.push({ op: "lit", cp: 123 });
          continue;
        }
        let lo = "";
        let hi = "";
        while (isDigit(source.next)) lo += source.get();
        if (source.match(",")) {
          while (isDigit(source.next)) hi += source.get();
        } else {
          hi = lo;
        }
        if (!source.match("}")) {
          sub.push({ op: "lit", cp: 123 });
          source.seek(here);
          continue;
        }
        if (lo) {
          min = Number(lo);
          if (min >= MAXREPEAT) throw source.error("the repetition number is too large");
        }
        if (hi) {
          max = Number(hi);
          if (max >= MAXREPEAT) throw source.error("the repetition number is too large");
          if (max < min) {
            throw source.error("min repeat greater than max repeat", source.tell() - here);
          }
        }
      }
      const last = sub[sub.length - 1];
      if (last === undefined || last.op === "at") {
        throw source.error("nothing to repeat", source.tell() - here + current.length);
      }
      if (last.op === "repeat") {
        throw source.error("multiple repeat", source.tell() - here + current.length);
      }
      let body: Node[] = [last];
      if (last.op === "subpattern" && last.group === null && !last.add && !last.del) {
        body = last.body;
      }
      const kind = source.match("?") ? "min" : source.match("+") ? "possessive" : "max";
      sub[sub.length - 1] = { op: "repeat", kind, min, max, body };
    } else if (current === ".") {
      sub.push({ op: "any" });
    } else if (current === "(") {
      const node = parseGroup(source, state, verbose, nested, first && sub.length === 0);
      if (node === "flags") verbose = (state.flags & FLAG_VERBOSE) !== 0;
      else if (node !== null) sub.push(node);
    } else if (current === "^") {
      sub.push({ op: "at", at: "beginning" });
    } else if (current === "$") {
      sub.push({ op: "at", at: "end" });
    }
  }
  return sub;
}

function parseClass(source: Source): Node {
  const here = source.tell() - 1;
  const set: SetItem[] = [];
  const negate = source.match("^");
  while (true) {
    const current = source.get();
    if (current === null) {
      throw source.error("unterminated character set", source.tell() - here);
    }
    if (current === "]" && set.length) break;
    const code1 = current[0] === "\\"
      ? classEscape(source, current)
      : { op: "lit" as const, cp: current.codePointAt(0)! };
    if (source.match("-")) {
      const that = source.get();
      if (that === null) {
        throw source.error("unterminated character set", source.tell() - here);
      }
      if (that === "]") {
        set.push(code1, { op: "lit", cp: 45 });
        break;
      }
      const code2 = that[0] === "\\" ? classEscape(source, that) : { op: "lit" as const, cp: that.codePointAt(0)! };
      if (code1.op !== "lit" || code2.op !== "lit" || code2.cp < code1.cp) {
        throw source.error(
          `bad character range ${current}-${that}`,
          cpLen(current) + 1 + cpLen(that),
        );
      }
      set.push({ op: "range", lo: code1.cp, hi: code2.cp });
    } else {
      set.push(code1);
    }
  }
  if (set.length === 1 && set[0]!.op === "lit") {
    return negate ? { op: "not_lit", cp: set[0]!.cp } : { op: "lit", cp: set[0]!.cp };
  }
  return { op: "in", negate, items: set };
}

function parseGroup(
  source: Source,
  state: State,
  verbose: boolean,
  nested: number,
  first: boolean,
): Node | null | "flags" {
  const start = source.tell() - 1;
  let capture = true;
  let atomic = false;
  let name: string | null = null;
  let add = 0;
  let del = 0;
  const unterminated = () => source.error("missing ), unterminated subpattern", source.tell() - start);
  if (source.match("?")) {
    const char = source.get();
    if (char === null) throw source.error("unexpected end of pattern");
    if (char === "P") {
      if (source.match("<")) {
        name = source.getuntil(">", "group name");
        source.checkgroupname(name, 1);
      } else if (source.match("=")) {
        const ref = source.getuntil(")", "group name");
        source.checkgroupname(ref, 1);
        const gid = state.groupdict.get(ref);
        if (gid === undefined) {
          throw source.error(`unknown group name ${pyRepr(ref)}`, cpLen(ref) + 1);
        }
        if (!state.checkgroup(gid)) {
          throw source.error("cannot refer to an open group", cpLen(ref) + 1);
        }
        state.checklookbehindgroup(gid, source);
        return { op: "groupref", group: gid };
      } else {
        const c = source.get();
        if (c === null) throw source.error("unexpected end of pattern");
        throw source.error("unknown extension ?P" + c, c.length + 2);
      }
    } else if (char === ":") {
      capture = false;
    } else if (char === "#") {
      while (true) {
        if (source.next === null) {
          throw source.error("missing ), unterminated comment", source.tell() - start);
        }
        if (source.get() === ")") break;
      }
      return null;
    } else if (char === "=" || char === "!" || char === "<") {
      let kind = char;
      let behind = false;
      let saved: number | null = null;
      if (char === "<") {
        const c = source.get();
        if (c === null) throw source.error("unexpected end of pattern");
        if (c !== "=" && c !== "!") throw source.error("unknown extension ?<" + c, c.length + 2);
        kind = c;
        behind = true;
        saved = state.lookbehindgroups;
        if (saved === null) state.lookbehindgroups = state.groups;
      }
      const body = parseSub(source, state, verbose, nested + 1);
      if (behind && saved === null) state.lookbehindgroups = null;
      if (!source.match(")")) throw unterminated();
      if (behind) {
        const [lo, hi] = getwidth(body, state);
        if (lo !== hi) throw new PythonRegexError("look-behind requires fixed-width pattern");
      }
      return { op: "assert", negative: kind === "!", behind, body };
    } else if (char === "(") {
      const condname = source.getuntil(")", "group name");
      let group: number;
      if (IDENTIFIER.test(condname)) {
        const gid = state.groupdict.get(condname);
        if (gid === undefined) {
          throw source.error(`unknown group name ${pyRepr(condname)}`, cpLen(condname) + 1);
        }
        group = gid;
      } else {
        if (!/^[0-9]+$/.test(condname)) {
          throw source.error(
            `bad character in group name ${pyRepr(condname)}`,
            cpLen(condname) + 1,
          );
        }
        group = Number(condname);
        if (!group) throw source.error("bad group number", cpLen(condname) + 1);
        if (group >= MAXGROUPS) {
          throw source.error(`invalid group reference ${group}`, cpLen(condname) + 1);
        }
        if (!state.grouprefpos.has(group)) {
          state.grouprefpos.set(group, source.tell() - cpLen(condname) - 1);
        }
      }
      state.checklookbehindgroup(group, source);
      const yes = parseSeq(source, state, verbose, nested + 1);
      let no: Node[] | null = null;
      if (source.match("|")) {
        no = parseSeq(source, state, verbose, nested + 1);
        if (source.next === "|") {
          throw source.error("conditional backref with more than two branches");
        }
      }
      if (!source.match(")")) throw unterminated();
      return { op: "groupref_exists", group, yes, no };
    } else if (char === ">") {
      capture = false;
      atomic = true;
    } else if (char in FLAGS || char === "-") {
      const flags = parseFlags(source, state, char);
      if (flags === null) {
        if (!first) {
          throw source.error(
            "global flags not at the start of the expression",
            source.tell() - start,
          );
        }
        return "flags";
      }
      [add, del] = flags;
      capture = false;
    } else {
      throw source.error("unknown extension ?" + char, char.length + 1);
    }
  }
  let group: number | null = null;
  if (capture) {
    try {
      group = state.opengroup(name);
    } catch (err) {
      throw source.error((err as Error).message, cpLen(name ?? "") + 1);
    }
  }
  const subVerbose = (verbose || (add & FLAG_VERBOSE) !== 0) && !(del & FLAG_VERBOSE);
  const body = parseSub(source, state, subVerbose, nested + 1);
  if (!source.match(")")) throw unterminated();
  if (group !== null) state.closegroup(group, body);
  if (atomic) return { op: "atomic", body };
  return { op: "subpattern", group, add, del, body };
}

function parseFlags(source: Source, state: State, char: string | null): [number, number] | null {
  let add = 0;
  let del = 0;
  if (char !== "-") {
    while (true) {
      const flag = FLAGS[char!]!;
      if (char === "L") {
        throw source.error("bad inline flags: cannot use 'L' flag with a str pattern");
      }
      add |= flag;
      if (flag & TYPE_FLAGS && (add & TYPE_FLAGS) !== flag) {
        throw source.error("bad inline flags: flags 'a', 'u' and 'L' are incompatible");
      }
      char = source.get();
      if (char === null) throw source.error("missing -, : or )");
      if (")-:".includes(char)) break;
      if (!(char in FLAGS)) {
        throw source.error(
          /^\p{L}$/u.test(char) ? "unknown flag" : "missing -, : or )",
          char.length,
        );
      }
    }
  }
  if (char === ")") {
    state.flags |= add;
    return null;
  }
  if (add & GLOBAL_FLAGS) throw source.error("bad inline flags: cannot turn on global flag", 1);
  if (char === "-") {
    char = source.get();
    if (char === null) throw source.error("missing flag");
    if (!(char in FLAGS)) {
      throw source.error(/^\p{L}$/u.test(char) ? "unknown flag" : "missing flag", char.length);
    }
    while (true) {
      const flag = FLAGS[char!]!;
      if (flag & TYPE_FLAGS) {
        throw source.error("bad inline flags: cannot turn off flags 'a', 'u' and 'L'");
      }
      del |= flag;
      char = source.get();
      if (char === null) throw source.error("missing :");
      if (char === ":") break;
      if (!(char in FLAGS)) {
        throw source.error(/^\p{L}$/u.test(char) ? "unknown flag" : "missing :", char.length);
      }
    }
  }
  if (del & GLOBAL_FLAGS) throw source.error("bad inline flags: cannot turn off global flag", 1);
  if (add & del) throw source.error("bad inline flags: flag turned on and off", 1);
  return [add, del];
}

/**
 * Parses a pattern as CPython 3.11's `re.compile(pattern)` does.
 *
 * @throws {PythonRegexError} If Python would raise `re.error`.
 */
export function parsePython(pattern: string): ParsedPattern {
  const source = new Source(pattern);
  const state = new State();
  const nodes = parseSub(source, state, false, 0);
  let flags = state.flags;
  if (!(flags & FLAG_ASCII)) flags |= FLAG_UNICODE;
  if (source.next !== null) throw source.error("unbalanced parenthesis");
  for (const [group, pos] of state.grouprefpos) {
    if (group >= state.groups) {
      throw new PythonRegexError(`invalid group reference ${group}`, pos);
    }
  }
  if (flags & FLAG_TEMPLATE && hasRepeat(nodes)) {
    throw new PythonRegexError("internal: unsupported template operator");
  }
  return { nodes, flags };
}

function hasRepeat(nodes: readonly Node[]): boolean {
  return nodes.some((n) => {
    switch (n.op) {
      case "repeat":
        return true;
      case "branch":
        return n.alts.some(hasRepeat);
      case "subpattern":
      case "atomic":
      case "assert":
        return hasRepeat(n.body);
      case "groupref_exists":
        return hasRepeat(n.yes) || (n.no !== null && hasRepeat(n.no));
      default:
        return false;
    }
  });
}
