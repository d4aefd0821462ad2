/**
 * Emits RegexFilter's string walker: a small WebAssembly module that runs a
 * blob built by the Rust core (layout: `wasm/src/lib.rs`) over a JavaScript
 * string it reads itself through WebAssembly JS String Builtins
 * (`wasm:js-string`), so that a decision copies nothing.
 *
 * Rust 1.63 cannot express `externref` or typed references, and Debian's
 * binaryen and wabt cannot assemble them in the standard encoding, so the
 * module is written here, byte by byte: the output depends on nothing but
 * this file.
 *
 *   deno run --allow-write wasm/tools/emit_walker.ts             write wasm/regex_walker.wasm and
 *                                                                src/processors/_regex_walker_wasm.ts
 *   deno run --allow-write wasm/tools/emit_walker.ts --out DIR   write both files into DIR instead
 *
 * The module, in the text format:
 *
 * ```wat
 * (import "wasm:js-string" "length" (func $length (param externref) (result i32)))
 * (import "wasm:js-string" "charCodeAt" (func $charCodeAt (param externref i32) (result i32)))
 * (import "env" "memory" (memory 0))        ;; the store's memory: every filter's blob
 * (func (export "walk") (param $name externref) (param $table i32) (result i32) …)
 * ```
 *
 * `walk(name, table)` runs the blob at `table` over `name`: a pair of ASCII
 * units is one step when the blob has pair entries, a single ASCII unit one
 * byte, other units are encoded as UTF-8 on the fly (a surrogate pair as four
 * bytes, a lone surrogate as three, as Python sees it), then the `0xFF`
 * sentinel. It returns 1 as soon as the match row is reached, 0 at the dead
 * row or when the sentinel does not lead to a match. `wasm/src/lib.rs`'s
 * `walk` is the same walk over units copied into memory.
 *
 * Two choices come from measurements on V8 (Deno 2.9.6), not from the
 * semantics:
 *
 * - the first unit is read before the loop (the loop is rotated), and the
 *   function starts with `ref.as_non_null` on the name: V8 runs its load
 *   elimination on functions that use typed references or GC instructions
 *   only, and it is what hoists the string's representation checks of
 *   `charCodeAt` out of the loop (a decision over ≈25 characters: 60 → 41 ns);
 * - every offset added to a state is computed first, so that a step waits on
 *   one add and one load (the state's dependency chain is the whole cost).
 *
 * @module
 */

/** Unsigned LEB128. */
function u32(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 (i32). */
function s32(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function name(text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)];
  return [...u32(bytes.length), ...bytes];
}

function vec(items: number[][]): number[] {
  return [...u32(items.length), ...items.flat()];
}

function section(id: number, contents: number[]): number[] {
  return [id, ...u32(contents.length), ...contents];
}

const I32 = 0x7f;
const EXTERNREF = 0x6f;

// Types: (externref) -> i32 for length; (externref, i32) -> i32 for charCodeAt and walk.
const T_LENGTH = 0;
const T_CHAR_CODE_AT = 1;

// Functions: the imports first.
const F_LENGTH = 0;
const F_CHAR_CODE_AT = 1;
const F_WALK = 2;

// walk's parameters and locals.
const NAME = 0;
const TABLE = 1;
const LEN = 2;
const I = 3;
const STATE = 4;
const LIMIT = 5;
const PAIRS = 6;
const C = 7;
const D = 8;
const LOCALS = 7; // LEN … D

// The blob's layout (byte offsets; see wasm/src/lib.rs).
const START_AT = 0;
const LIMIT_AT = 4;
const PAIRS_AT = 8;
const CLASS_AT = 4 * 4;
const PAIR_A_AT = 4 * (4 + 256);
const PAIR_B_AT = 4 * (4 + 256 + 128);
const PAIR_MAP_AT = 4 * (4 + 256 + 128 + 128);

const op = {
  block: (body: number[]) => [0x02, 0x40, ...body, 0x0b],
  loop: (body: number[]) => [0x03, 0x40, ...body, 0x0b],
  if: (then: number[], otherwise: number[]) => [0x04, 0x40, ...then, 0x05, ...otherwise, 0x0b],
  br: (depth: number) => [0x0c, ...u32(depth)],
  brIf: (depth: number) => [0x0d, ...u32(depth)],
  call: (f: number) => [0x10, ...u32(f)],
  drop: [0x1a],
  get: (l: number) => [0x20, ...u32(l)],
  set: (l: number) => [0x21, ...u32(l)],
  tee: (l: number) => [0x22, ...u32(l)],
  /** i32.load with its natural alignment. */
  load: (offset: number) => [0x28, 2, ...u32(offset)],
  const: (n: number) => [0x41, ...s32(n)],
  eqz: [0x45],
  eq: [0x46],
  ne: [0x47],
  ltU: [0x49],
  leU: [0x4d],
  geU: [0x4f],
  add: [0x6a],
  sub: [0x6b],
  and: [0x71],
  or: [0x72],
  shl: [0x74],
  shrU: [0x76],
  refAsNonNull: [0xd4],
  end: [0x0b],
};

/** `load(table + local * 4 + offset)`: a word of one of the blob's maps. */
function mapWord(local: number, offset: number): number[] {
  return [...op.get(TABLE), ...op.get(local), ...op.const(2), ...op.shl, ...op.add, ...op.load(offset)];
}

/** `state = load(state + (table + class[byte]))`, `byte` computed by the given code. */
function step(byte: number[]): number[] {
  return [
    ...op.get(STATE),
    ...op.get(TABLE),
    ...op.get(TABLE),
    ...byte,
    ...op.const(2),
    ...op.shl,
    ...op.add,
    ...op.load(CLASS_AT),
    ...op.add,
    ...op.add,
    ...op.load(0),
    ...op.set(STATE),
  ];
}

/** `state = load(state + (table + pair_map[a[C] + b[D]]))`. */
const pairStep = [
  ...op.get(STATE),
  ...op.get(TABLE),
  ...op.get(TABLE),
  ...mapWord(C, PAIR_A_AT),
  ...op.add,
  ...mapWord(D, PAIR_B_AT),
  ...op.add,
  ...op.load(PAIR_MAP_AT),
  ...op.add,
  ...op.add,
  ...op.load(0),
  ...op.set(STATE),
];

/** `(local >> shift) & 63 | high` (`& 63` left out when `masked` is false). */
function bits(local: number, shift: number, high: number, masked = true): number[] {
  return [
    ...op.get(local),
    ...(shift ? [...op.const(shift), ...op.shrU] : []),
    ...(masked ? [...op.const(63), ...op.and] : []),
    ...op.const(high),
    ...op.or,
  ];
}

/** `charCodeAt(name, index)`, the index computed by the given code. */
function charCodeAt(index: number[]): number[] {
  return [...op.get(NAME), ...index, ...op.call(F_CHAR_CODE_AT)];
}

/** Steps over the unit in C (I is past it): its UTF-8 bytes; with units[I], a surrogate pair's. */
const unit = [
  ...op.get(C),
  ...op.const(0x80),
  ...op.ltU,
  ...op.if(step(op.get(C)), [
    ...op.get(C),
    ...op.const(0x800),
    ...op.ltU,
    ...op.if(
      [...step(bits(C, 6, 0xc0, false)), ...step(bits(C, 0, 0x80))],
      op.block([
        ...op.block([
          // A high surrogate followed by a low one: four bytes.
          ...op.get(C),
          ...op.const(0xfc00),
          ...op.and,
          ...op.const(0xd800),
          ...op.ne,
          ...op.brIf(0),
          ...op.get(I),
          ...op.get(LEN),
          ...op.geU,
          ...op.brIf(0),
          ...charCodeAt(op.get(I)),
          ...op.tee(D),
          ...op.const(0xfc00),
          ...op.and,
          ...op.const(0xdc00),
          ...op.ne,
          ...op.brIf(0),
          ...op.get(I),
          ...op.const(1),
          ...op.add,
          ...op.set(I),
          // C = (C << 10) + D - 0x35FDC00: the code point.
          ...op.get(C),
          ...op.const(10),
          ...op.shl,
          ...op.get(D),
          ...op.add,
          ...op.const((0xd800 << 10) + 0xdc00 - 0x10000),
          ...op.sub,
          ...op.set(C),
          ...step(bits(C, 18, 0xf0, false)),
          ...step(bits(C, 12, 0x80)),
          ...step(bits(C, 6, 0x80)),
          ...step(bits(C, 0, 0x80)),
          ...op.br(1),
        ]),
        // Any other unit, a lone surrogate included: three bytes.
        ...step(bits(C, 12, 0xe0, false)),
        ...step(bits(C, 6, 0x80)),
        ...step(bits(C, 0, 0x80)),
      ]),
    ),
  ]),
];

/** `C = charCodeAt(name, I); I += 1`. */
const next = [...charCodeAt(op.get(I)), ...op.set(C), ...op.get(I), ...op.const(1), ...op.add, ...op.set(I)];

const walkBody = [
  // See the module's notes: it also makes a null name trap.
  ...op.get(NAME),
  ...op.refAsNonNull,
  ...op.drop,
  ...op.get(NAME),
  ...op.call(F_LENGTH),
  ...op.set(LEN),
  ...op.get(TABLE),
  ...op.load(START_AT),
  ...op.set(STATE),
  ...op.get(TABLE),
  ...op.load(LIMIT_AT),
  ...op.set(LIMIT),
  ...op.get(TABLE),
  ...op.load(PAIRS_AT),
  ...op.set(PAIRS),
  ...op.block([
    ...op.block([
      // Depths: 0 the end of the name, 1 a final row.
      ...op.get(LEN),
      ...op.eqz,
      ...op.brIf(0),
      ...charCodeAt(op.const(0)),
      ...op.set(C),
      ...op.const(1),
      ...op.set(I),
      // C holds the unit before I, not stepped over yet.
      ...op.loop([
        ...op.block([
          // Depths: 0 one unit, 1 the loop, 2 the end of the name, 3 a final row.
          ...op.get(I),
          ...op.get(LEN),
          ...op.geU,
          ...op.brIf(0),
          ...charCodeAt(op.get(I)),
          ...op.tee(D),
          ...op.get(C),
          ...op.or,
          ...op.get(PAIRS),
          ...op.geU,
          ...op.brIf(0),
          // Two ASCII units, one step.
          ...pairStep,
          // The dead and match rows absorb: one check per step is enough.
          ...op.get(STATE),
          ...op.get(LIMIT),
          ...op.leU,
          ...op.brIf(3),
          ...op.get(I),
          ...op.const(1),
          ...op.add,
          ...op.tee(I),
          ...op.get(LEN),
          ...op.geU,
          ...op.brIf(2),
          ...next,
          ...op.br(1),
        ]),
        // Depths: 0 the loop, 1 the end of the name, 2 a final row.
        ...unit,
        ...op.get(STATE),
        ...op.get(LIMIT),
        ...op.leU,
        ...op.brIf(2),
        ...op.get(I),
        ...op.get(LEN),
        ...op.geU,
        ...op.brIf(1),
        ...next,
        ...op.br(0),
      ]),
    ]),
    // The end of the name: the sentinel.
    ...step(op.const(0xff)),
  ]),
  ...op.get(STATE),
  ...op.get(LIMIT),
  ...op.eq,
  ...op.end,
];

/** The walker module's bytes. */
export function emitWalker(): Uint8Array<ArrayBuffer> {
  const types = section(
    1,
    vec([
      [0x60, ...vec([[EXTERNREF]]), ...vec([[I32]])],
      [0x60, ...vec([[EXTERNREF], [I32]]), ...vec([[I32]])],
    ]),
  );
  const imports = section(
    2,
    vec([
      [...name("wasm:js-string"), ...name("length"), 0x00, ...u32(T_LENGTH)],
      [...name("wasm:js-string"), ...name("charCodeAt"), 0x00, ...u32(T_CHAR_CODE_AT)],
      [...name("env"), ...name("memory"), 0x02, 0x00, ...u32(0)],
    ]),
  );
  const functions = section(3, vec([u32(T_CHAR_CODE_AT)]));
  const exports = section(7, vec([[...name("walk"), 0x00, ...u32(F_WALK)]]));
  const body = [...vec([[...u32(LOCALS), I32]]), ...walkBody];
  const code = section(10, vec([[...u32(body.length), ...body]]));
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...types,
    ...imports,
    ...functions,
    ...exports,
    ...code,
  ]);
}

/** The TypeScript module that carries the walker's bytes (src/processors/_regex_walker_wasm.ts). */
export function emitWalkerModule(bytes: Uint8Array): string {
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  const lines: string[] = [];
  for (let i = 0; i < hex.length; i += 100) lines.push(`"${hex.slice(i, i + 100)}"`);
  return [
    "// Generated by wasm/tools/emit_walker.ts (`deno task build:wasm`): do not edit.",
    "// The bytes of wasm/regex_walker.wasm; `deno task check:wasm` proves both rebuild byte for byte.",
    "",
    "/** RegexFilter's string walker (see wasm/tools/emit_walker.ts), in hexadecimal. A literal: bundles drop it. */",
    "export const WALKER_HEX =",
    `  ${lines.join(" +\n  ")};`,
    "",
  ].join("\n");
}

if (import.meta.main) {
  const at = Deno.args.indexOf("--out");
  const root = new URL("../../", import.meta.url);
  const wasmPath = at >= 0 ? `${Deno.args[at + 1]}/regex_walker.wasm` : new URL("wasm/regex_walker.wasm", root);
  const tsPath = at >= 0
    ? `${Deno.args[at + 1]}/_regex_walker_wasm.ts`
    : new URL("src/processors/_regex_walker_wasm.ts", root);
  const bytes = emitWalker();
  Deno.writeFileSync(wasmPath, bytes);
  Deno.writeTextFileSync(tsPath, emitWalkerModule(bytes));
  console.log(`wrote regex_walker.wasm (${bytes.length} bytes) and _regex_walker_wasm.ts`);
}
