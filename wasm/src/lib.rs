//! Automaton builder and table store of `@edx/event-tracking`'s `RegexFilter`.
//!
//! `compile` builds an anchored dense DFA (regex-automata 0.1.8) from the
//! union of a filter's patterns, already translated from Python syntax by the
//! TypeScript side (`src/processors/_python_regex.ts`): the translated pattern
//! has no anchors, no Unicode tables and no flags; the end of the text is a
//! `0xFF` sentinel byte a walker feeds after every name. It then makes the DFA
//! as small as the question "does some prefix of the input match?" allows,
//! and writes it as a flat, position-independent transition table, the
//! *blob* below.
//!
//! Shrinking, in order:
//! 1. match states become one absorbing state: a decision ends at the first
//!    match, so what follows a match never matters;
//! 2. states unreachable from the start, or from which no match is reachable
//!    (they behave as the dead state), are dropped;
//! 3. Hopcroft minimisation (Valmari's O(m log n) partition refinement),
//!    skipped past `MINIMIZE_MAX_TRANSITIONS` live transitions, a cap on its
//!    time and memory: the table is then the unminimised one, as correct;
//! 4. byte classes that every state treats alike are merged.
//!
//! Each row also holds, when the table stays small, one entry per *pair
//! class* of two ASCII units: two bytes in one step halves the chain of
//! dependent loads a decision waits on.
//!
//! One instance per process is the *store*: it keeps the blobs of all
//! filters (`table_alloc`/`table_free`) and walks them over UTF-16 units
//! JavaScript copied in (`walk`), where the runtime has no JS String
//! Builtins. Elsewhere the walker emitted by `tools/emit_walker.ts` imports
//! the store's memory and reads the JavaScript string itself. Compiling
//! happens in a short-lived instance, so that the memory the construction
//! needed is released with it.
//!
//! The blob (little-endian u32 words; offsets relative to its first byte):
//!
//! | word                  | contents                                                          |
//! | --------------------- | ----------------------------------------------------------------- |
//! | 0                     | offset of the start row                                           |
//! | 1                     | offset of the match row: rows at or below it end a walk (dead, match) |
//! | 2                     | 0x80 when rows have pair entries, else 0: pairs of units below it  |
//! | 3                     | length of the blob in bytes                                       |
//! | 4 ..= 259             | byte `b`'s class, as its offset in a row (`class * 4`)            |
//! | 260 ..= 387           | ASCII unit `c`'s first-of-pair index, times `4 * kA` (`PAIR_A_AT`) |
//! | 388 ..= 515           | ASCII unit `d`'s second-of-pair index, times 4 (`PAIR_B_AT`)      |
//! | 516 .. 516 + kA²      | pair map: the offset in a row of the pair's entry (`PAIR_MAP_AT`) |
//! | then                  | rows: `k` single-byte entries, then `P` pair entries              |
//!
//! where `kA` is the number of classes of ASCII bytes and `P` the number of
//! pair classes (0 without pairs). An entry is the offset of the next row.
//! A step is `state = load(base + state + class[b])`, a pair step
//! `state = load(base + state + pair_map[a[c] + b[d]])`: the class offset
//! does not depend on the state, so one step waits on one add and one load.
//!
//! The ABI is plain `extern "C"` functions:
//!
//! - `input_reserve(n) -> ptr`: make the pattern buffer hold `n` bytes.
//! - `compile(len) -> i32`: build the blob from the pattern in the buffer:
//!   0 = built (read it with `table_ptr`/`table_len`), 1 = error (read it
//!   with `message_ptr`/`message_len`), 2 = every name matches, 3 = none does.
//! - `info(i) -> u32`: statistics of the last `compile` (see `INFO_*`).
//! - `set_limits(transitions, bytes, work)`: the caps of minimisation and pair entries.
//! - `table_alloc(bytes) -> ptr`, `table_free(ptr)`: room for a blob in the
//!   store (null when its memory is full).
//! - `units_reserve(n) -> ptr`: room for `n` UTF-16 units of a name.
//! - `walk(table, len, state, last) -> usize`: walks `len` units of a name (in
//!   pieces, from the state the previous piece returned): 1 if a prefix
//!   matches, 0 if none can, else the state to go on from.
//!
//! Panics abort (a WebAssembly trap that JS turns into an error); the panic
//! hook leaves the panic message readable through `message_ptr`/`message_len`.

use regex_automata::dense;
use std::collections::BTreeMap;

static mut INPUT: Vec<u8> = Vec::new();
static mut MESSAGE: Vec<u8> = Vec::new();
static mut TABLE: Vec<u32> = Vec::new();
static mut UNITS: Vec<u16> = Vec::new();
static mut INFO: [u32; 8] = [0; 8];

/// `info(INFO_DFA_STATES)`: states of the determinised DFA.
pub const INFO_DFA_STATES: usize = 0;
/// `info(INFO_ROWS)`: rows of the blob (with the dead and match rows).
pub const INFO_ROWS: usize = 1;
/// `info(INFO_DFA_CLASSES)`: byte classes of the determinised DFA.
pub const INFO_DFA_CLASSES: usize = 2;
/// `info(INFO_CLASSES)`: byte classes of the blob.
pub const INFO_CLASSES: usize = 3;
/// `info(INFO_MINIMIZED)`: 1 when minimised, 0 when over the cap.
pub const INFO_MINIMIZED: usize = 4;
/// `info(INFO_TRANSITIONS)`: live transitions (to neither the dead state nor out of a match).
pub const INFO_TRANSITIONS: usize = 5;
/// `info(INFO_PAIR_CLASSES)`: pair classes of the blob (0: no pair entries).
pub const INFO_PAIR_CLASSES: usize = 6;

/// Where the class map starts (words).
const CLASS_AT: usize = 4;
/// Where the first-of-pair map starts (words).
const PAIR_A_AT: usize = CLASS_AT + 256;
/// Where the second-of-pair map starts (words).
const PAIR_B_AT: usize = PAIR_A_AT + 128;
/// Where the pair map starts (words).
const PAIR_MAP_AT: usize = PAIR_B_AT + 128;
/// Minimisation needs ≈44 bytes per live transition and time O(m log n)
/// (≈0.1 s per million, a fraction of what determinising them took): beyond
/// this many (≈90 MiB, well inside the 256 MiB the core may use) the DFA
/// stays unminimised.
const MINIMIZE_MAX_TRANSITIONS: usize = 2_000_000;
/// Pair entries are left out when they would make the rows larger than this…
const PAIR_MAX_BYTES: usize = 4 << 20;
/// …or cost more than this many row lookups to compute.
const PAIR_MAX_WORK: usize = 16_000_000;
/// The three caps above, changeable with `set_limits` (tests exercise each fallback).
static mut LIMITS: [usize; 3] = [MINIMIZE_MAX_TRANSITIONS, PAIR_MAX_BYTES, PAIR_MAX_WORK];
/// Compile outcomes.
const BUILT: i32 = 0;
const ERROR: i32 = 1;
const ALWAYS: i32 = 2;
const NEVER: i32 = 3;
const NONE: u32 = u32::MAX;

fn set_message(text: &str) {
    // SAFETY: WebAssembly instances are single-threaded and no reference to
    // MESSAGE outlives a call.
    unsafe {
        MESSAGE.clear();
        MESSAGE.extend_from_slice(text.as_bytes());
    }
}

/// Makes the pattern buffer hold at least `len` bytes and returns its address.
#[no_mangle]
pub extern "C" fn input_reserve(len: usize) -> *mut u8 {
    // SAFETY: single-threaded; see set_message.
    unsafe {
        if INPUT.len() < len {
            INPUT.resize(len, 0);
        }
        INPUT.as_mut_ptr()
    }
}

/// Builds the blob from the UTF-8 pattern in the first `len` input bytes.
#[no_mangle]
pub extern "C" fn compile(len: usize) -> i32 {
    std::panic::set_hook(Box::new(|info| set_message(&info.to_string())));
    // SAFETY: single-threaded; INPUT is taken out so that it is freed before
    // the DFA is built.
    let bytes = unsafe { std::mem::take(&mut INPUT) };
    let pattern = match std::str::from_utf8(&bytes[..len]) {
        Ok(pattern) => pattern.to_owned(),
        Err(_) => {
            set_message("pattern is not UTF-8");
            return ERROR;
        }
    };
    drop(bytes);
    // SAFETY: single-threaded.
    unsafe { TABLE = Vec::new() };
    let dfa = match Dfa::determinize(&pattern) {
        Ok(dfa) => dfa,
        Err(message) => {
            set_message(&message);
            return ERROR;
        }
    };
    set_message("");
    build_table(&dfa)
}

/// Sets the caps of the next compiles: live transitions to minimise, bytes and
/// work of pair entries (`MINIMIZE_MAX_TRANSITIONS`, `PAIR_MAX_BYTES`, `PAIR_MAX_WORK`).
#[no_mangle]
pub extern "C" fn set_limits(minimize_max_transitions: usize, pair_max_bytes: usize, pair_max_work: usize) {
    // SAFETY: single-threaded.
    unsafe { LIMITS = [minimize_max_transitions, pair_max_bytes, pair_max_work] };
}

/// Statistics of the last `compile` (`INFO_*`).
#[no_mangle]
pub extern "C" fn info(i: usize) -> u32 {
    // SAFETY: single-threaded.
    unsafe { INFO.get(i).copied().unwrap_or(0) }
}

/// Address of the blob `compile` built.
#[no_mangle]
pub extern "C" fn table_ptr() -> *const u32 {
    // SAFETY: single-threaded.
    unsafe { TABLE.as_ptr() }
}

/// Length of the blob `compile` built, in bytes.
#[no_mangle]
pub extern "C" fn table_len() -> usize {
    // SAFETY: single-threaded.
    unsafe { TABLE.len() * 4 }
}

/// Allocates room for a blob of `bytes` bytes (a multiple of 4) in the store;
/// null when the store's memory is full (JavaScript then starts another store).
#[no_mangle]
pub extern "C" fn table_alloc(bytes: usize) -> *mut u32 {
    let words = bytes / 4;
    let mut table: Vec<u32> = Vec::new();
    if table.try_reserve_exact(words).is_err() {
        return std::ptr::null_mut();
    }
    table.resize(words, 0);
    let ptr = table.as_mut_ptr();
    std::mem::forget(table);
    ptr
}

/// Frees a blob `table_alloc` allocated (its length is its word 3).
///
/// # Safety
///
/// `table` must come from `table_alloc` and hold a blob; it is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn table_free(table: *mut u32) {
    let words = *table.add(3) as usize / 4;
    drop(Vec::from_raw_parts(table, words, words));
}

/// Makes room for `len` UTF-16 units of a name and returns their address.
#[no_mangle]
pub extern "C" fn units_reserve(len: usize) -> *mut u16 {
    // SAFETY: single-threaded.
    unsafe {
        if UNITS.len() < len {
            UNITS.resize(len, 0);
        }
        UNITS.as_mut_ptr()
    }
}

/// Walks the first `len` units of the buffer, a piece of a name, over the blob
/// at `table`, from `state` (0: the start of the name). Returns 1 when a prefix
/// of the name matches, 0 when none can, or, when the answer is not known yet
/// and `last` is 0 (more of the name follows), the state to go on from (> 1).
///
/// The name is read as Python sees it: UTF-16 units are turned into UTF-8
/// (a lone surrogate into its own three bytes), then, after the last piece,
/// the sentinel follows. A piece that is not the last must not end with a
/// high surrogate. The same walk as the emitted walker's (wasm/tools/emit_walker.ts).
///
/// # Safety
///
/// `table` must hold a blob `compile` built (every offset in it is a row of
/// it), and `state` be 0 or a state this function returned for it.
#[no_mangle]
pub unsafe extern "C" fn walk(table: *const u32, len: usize, state: usize, last: i32) -> usize {
    let units = &UNITS[..len];
    let base = table as usize;
    let word = |i: usize| *table.add(i) as usize;
    let (limit, pairs) = (word(1), word(2));
    let mut state = if state == 0 { word(0) } else { state };
    let step = |state: usize, byte: usize| *((base + word(CLASS_AT + byte) + state) as *const u32) as usize;
    let mut i = 0;
    while i < len {
        let c = *units.get_unchecked(i) as usize;
        i += 1;
        if i < len && (c | *units.get_unchecked(i) as usize) < pairs {
            let d = *units.get_unchecked(i) as usize;
            i += 1;
            let entry = *((base + 4 * PAIR_MAP_AT + word(PAIR_A_AT + c) + word(PAIR_B_AT + d)) as *const u32);
            state = *((base + entry as usize + state) as *const u32) as usize;
        } else if c < 0x80 {
            state = step(state, c);
        } else if c < 0x800 {
            state = step(state, 0xC0 | (c >> 6));
            state = step(state, 0x80 | (c & 63));
        } else if c & 0xFC00 == 0xD800 && i < len && *units.get_unchecked(i) as usize & 0xFC00 == 0xDC00 {
            let d = *units.get_unchecked(i) as usize;
            i += 1;
            let cp = 0x10000 + ((c - 0xD800) << 10) + (d - 0xDC00);
            state = step(state, 0xF0 | (cp >> 18));
            state = step(state, 0x80 | ((cp >> 12) & 63));
            state = step(state, 0x80 | ((cp >> 6) & 63));
            state = step(state, 0x80 | (cp & 63));
        } else {
            state = step(state, 0xE0 | (c >> 12));
            state = step(state, 0x80 | ((c >> 6) & 63));
            state = step(state, 0x80 | (c & 63));
        }
        // The dead and match rows absorb: one check per unit (or pair) is enough.
        if state <= limit {
            return (state == limit) as usize;
        }
    }
    if last == 0 {
        return state;
    }
    (step(state, 0xFF) == limit) as usize
}

/// Address of the last error or panic message (UTF-8).
#[no_mangle]
pub extern "C" fn message_ptr() -> *const u8 {
    // SAFETY: single-threaded.
    unsafe { MESSAGE.as_ptr() }
}

/// Length in bytes of the last error or panic message.
#[no_mangle]
pub extern "C" fn message_len() -> usize {
    // SAFETY: single-threaded.
    unsafe { MESSAGE.len() }
}

/// A determinised DFA as regex-automata serialises it (`to_bytes_little_endian`):
/// state 0 is dead, states `1..=max_match` match, transitions by byte class.
struct Dfa {
    bytes: Vec<u8>,
    states: usize,
    classes: usize,
    start: usize,
    max_match: usize,
}

/// Where the serialised transition table starts (regex-automata 0.1's format).
const TRANS_AT: usize = 312;

impl Dfa {
    fn determinize(pattern: &str) -> Result<Dfa, String> {
        let bytes = dense::Builder::new()
            .anchored(true)
            .unicode(true)
            .allow_invalid_utf8(true)
            .byte_classes(true)
            .premultiply(false)
            .minimize(false)
            .build_with_size::<u32>(pattern)
            .and_then(|dfa| dfa.to_bytes_little_endian())
            .map_err(|err| err.to_string())?;
        let word = |at: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b) as usize
        };
        let (start, states, max_match) = (word(32), word(40), word(48));
        let classes = bytes[56 + 255] as usize + 1;
        assert_eq!(bytes.len(), TRANS_AT + states * classes * 4, "unexpected DFA serialisation");
        Ok(Dfa { start, states, classes, max_match, bytes })
    }

    fn class_of(&self, byte: usize) -> usize {
        self.bytes[56 + byte] as usize
    }

    fn next(&self, state: usize, class: usize) -> usize {
        let at = TRANS_AT + (state * self.classes + class) * 4;
        let b = &self.bytes[at..at + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
    }

    fn is_match(&self, state: usize) -> bool {
        state != 0 && state <= self.max_match
    }
}

/// Builds TABLE from the DFA; returns the compile outcome.
fn build_table(dfa: &Dfa) -> i32 {
    let (n, k) = (dfa.states, dfa.classes);
    // SAFETY: single-threaded.
    unsafe {
        INFO = [n as u32, 0, k as u32, 0, 0, 0, 0, 0];
    }
    if dfa.is_match(dfa.start) {
        return ALWAYS;
    }
    if dfa.start == 0 {
        return NEVER;
    }
    // 1–2. Live states: reachable from the start without passing a match, and
    // with a match reachable. `id[s]` numbers them 0.. in breadth-first order.
    let mut order: Vec<u32> = vec![dfa.start as u32];
    let mut seen = vec![false; n];
    seen[dfa.start] = true;
    let mut reaches_match = vec![false; n];
    let mut live_edges = 0usize;
    let mut i = 0;
    while i < order.len() {
        let s = order[i] as usize;
        i += 1;
        for c in 0..k {
            let h = dfa.next(s, c);
            if dfa.is_match(h) {
                reaches_match[s] = true;
            } else if h != 0 {
                live_edges += 1;
                if !seen[h] {
                    seen[h] = true;
                    order.push(h as u32);
                }
            }
        }
    }
    drop(seen);
    // Reverse edges (compressed rows), then a backward search from the states
    // that step into a match.
    let mut into = vec![0u32; n + 1];
    for &s in &order {
        for c in 0..k {
            let h = dfa.next(s as usize, c);
            if h != 0 && !dfa.is_match(h) {
                into[h + 1] += 1;
            }
        }
    }
    for q in 0..n {
        into[q + 1] += into[q];
    }
    let mut from = vec![0u32; live_edges];
    {
        let mut fill = into.clone();
        for &s in &order {
            for c in 0..k {
                let h = dfa.next(s as usize, c);
                if h != 0 && !dfa.is_match(h) {
                    from[fill[h] as usize] = s;
                    fill[h] += 1;
                }
            }
        }
    }
    let mut stack: Vec<u32> = order.iter().copied().filter(|&s| reaches_match[s as usize]).collect();
    while let Some(q) = stack.pop() {
        for j in into[q as usize]..into[q as usize + 1] {
            let p = from[j as usize] as usize;
            if !reaches_match[p] {
                reaches_match[p] = true;
                stack.push(p as u32);
            }
        }
    }
    drop(from);
    drop(into);
    if !reaches_match[dfa.start] {
        return NEVER;
    }
    let mut id = vec![NONE; n];
    let mut live = 0usize;
    for &s in &order {
        if reaches_match[s as usize] {
            id[s as usize] = live as u32;
            live += 1;
        }
    }
    drop(reaches_match);
    drop(order);
    // The transitions between live states; the match state is `live`.
    let matched = live as u32;
    let (mut tail, mut label, mut head) = (Vec::new(), Vec::new(), Vec::new());
    let mut representative = vec![0u32; live];
    for s in 0..n {
        let p = id[s];
        if p == NONE {
            continue;
        }
        representative[p as usize] = s as u32;
        for c in 0..k {
            let h = dfa.next(s, c);
            let q = if dfa.is_match(h) { matched } else { id[h] };
            if q != NONE {
                tail.push(p);
                label.push(c as u32);
                head.push(q);
            }
        }
    }
    let edges = tail.len();
    // 3. Blocks of equivalent states.
    // SAFETY: single-threaded.
    let [minimize_max, pair_max_bytes, pair_max_work] = unsafe { LIMITS };
    let minimize = edges <= minimize_max;
    let block = if minimize {
        let block = minimize_blocks(live + 1, k, &tail, &label, &head, matched);
        drop((tail, label, head));
        block
    } else {
        drop((tail, label, head));
        (0..=live as u32).collect()
    };
    // Rows: 0 dead, 1 match, then blocks in breadth-first order from the start's.
    let blocks = block.iter().copied().max().unwrap_or(0) as usize + 1;
    let mut row_of_block = vec![NONE; blocks];
    row_of_block[block[matched as usize] as usize] = 1;
    let mut row_states: Vec<u32> = vec![NONE, NONE]; // a live state of each row
    let start_block = block[id[dfa.start] as usize] as usize;
    row_of_block[start_block] = 2;
    row_states.push(id[dfa.start]);
    let mut rows: Vec<u32> = vec![0; 2 * k];
    for c in 0..k {
        rows[k + c] = 1;
    }
    let mut r = 2;
    while r < row_states.len() {
        let s = representative[row_states[r] as usize] as usize;
        for c in 0..k {
            let h = dfa.next(s, c);
            let q = if dfa.is_match(h) { matched } else { id[h] };
            let target = if q == NONE {
                0
            } else {
                let b = block[q as usize] as usize;
                if row_of_block[b] == NONE {
                    row_of_block[b] = row_states.len() as u32;
                    row_states.push(q);
                }
                row_of_block[b]
            };
            rows.push(target);
        }
        r += 1;
    }
    let row_count = row_states.len();
    // 4. Byte classes that every row treats alike are one class.
    let (class_of_byte, next) = merge_classes(dfa, &rows, row_count, k);
    let k = next.len() / row_count;
    // 5. Pair classes: pairs of ASCII classes that every row treats alike.
    let pairs = pair_classes(&class_of_byte, &next, row_count, k, pair_max_bytes, pair_max_work);
    let pair_count = pairs.as_ref().map_or(0, |p| p.classes.len());
    let ascii_classes = pairs.as_ref().map_or(0, |p| p.ascii_classes);
    let stride = k + pair_count;
    let rows_at = PAIR_MAP_AT + if pair_count > 0 { ascii_classes * ascii_classes } else { 0 };
    let offset = |row: u32| ((rows_at + row as usize * stride) * 4) as u32;
    let words = rows_at + row_count * stride;
    let mut table = vec![0u32; words];
    table[0] = offset(2);
    table[1] = offset(1);
    table[2] = if pair_count > 0 { 0x80 } else { 0 };
    table[3] = (words * 4) as u32;
    for b in 0..256 {
        table[CLASS_AT + b] = class_of_byte[b] * 4;
    }
    if let Some(p) = &pairs {
        for c in 0..128 {
            let a = p.ascii_index[class_of_byte[c] as usize] as usize;
            table[PAIR_A_AT + c] = (a * ascii_classes * 4) as u32;
            table[PAIR_B_AT + c] = (a * 4) as u32;
        }
        for (i, &pc) in p.map.iter().enumerate() {
            table[PAIR_MAP_AT + i] = ((k + pc as usize) * 4) as u32;
        }
    }
    for r in 0..row_count {
        let at = rows_at + r * stride;
        for c in 0..k {
            table[at + c] = offset(next[r * k + c]);
        }
        if let Some(p) = &pairs {
            for (j, &(a, b)) in p.classes.iter().enumerate() {
                let middle = next[r * k + a as usize] as usize;
                table[at + k + j] = offset(next[middle * k + b as usize]);
            }
        }
    }
    // SAFETY: single-threaded.
    unsafe {
        INFO = [
            n as u32,
            row_count as u32,
            dfa.classes as u32,
            k as u32,
            minimize as u32,
            edges as u32,
            pair_count as u32,
            0,
        ];
        TABLE = table;
    }
    BUILT
}

/// Merges the byte classes whose columns are equal in every row. Returns the
/// class of each byte and the rows (`row_count` × new classes) of row numbers.
fn merge_classes(dfa: &Dfa, rows: &[u32], row_count: usize, k: usize) -> (Vec<u32>, Vec<u32>) {
    let column_hash = |c: usize| {
        let mut h: u64 = 0xcbf29ce484222325;
        for r in 0..row_count {
            h = (h ^ rows[r * k + c] as u64).wrapping_mul(0x100000001b3);
        }
        h
    };
    let hashes: Vec<u64> = (0..k).map(column_hash).collect();
    let mut merged = vec![NONE; k];
    let mut kept: Vec<usize> = Vec::new();
    for c in 0..k {
        let same = kept
            .iter()
            .position(|&d| hashes[d] == hashes[c] && (0..row_count).all(|r| rows[r * k + d] == rows[r * k + c]));
        merged[c] = match same {
            Some(j) => j as u32,
            None => {
                kept.push(c);
                (kept.len() - 1) as u32
            }
        };
    }
    let class_of_byte = (0..256).map(|b| merged[dfa.class_of(b)]).collect();
    let mut next = Vec::with_capacity(row_count * kept.len());
    for r in 0..row_count {
        for &c in &kept {
            next.push(rows[r * k + c]);
        }
    }
    (class_of_byte, next)
}

/// The pair classes of a table, when worth having.
struct Pairs {
    /// Index among the ASCII classes of each class (NONE for non-ASCII-only classes).
    ascii_index: Vec<u32>,
    ascii_classes: usize,
    /// For each first × second ASCII class index, its pair class.
    map: Vec<u32>,
    /// A representative (first class, second class) of each pair class.
    classes: Vec<(u32, u32)>,
}

/// Groups the pairs of ASCII classes by the row two steps lead to from every
/// row; `None` when the rows would grow past `max_bytes` or the work past
/// `max_work`.
fn pair_classes(
    class_of_byte: &[u32],
    next: &[u32],
    row_count: usize,
    k: usize,
    max_bytes: usize,
    max_work: usize,
) -> Option<Pairs> {
    let mut ascii_index = vec![NONE; k];
    let mut ascii: Vec<u32> = Vec::new();
    for &c in &class_of_byte[..128] {
        if ascii_index[c as usize] == NONE {
            ascii_index[c as usize] = ascii.len() as u32;
            ascii.push(c);
        }
    }
    let ka = ascii.len();
    if ka * ka * row_count > max_work {
        return None;
    }
    let mut map = vec![0u32; ka * ka];
    let mut classes: Vec<(u32, u32)> = Vec::new();
    // Pair classes by the hash of their column (a BTreeMap: deterministic, no random seed).
    let mut by_hash: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    let column = |a: u32, b: u32, r: usize| next[next[r * k + a as usize] as usize * k + b as usize];
    for (ia, &a) in ascii.iter().enumerate() {
        for (ib, &b) in ascii.iter().enumerate() {
            let mut h: u64 = 0xcbf29ce484222325;
            for r in 0..row_count {
                h = (h ^ column(a, b, r) as u64).wrapping_mul(0x100000001b3);
            }
            let candidates = by_hash.entry(h).or_insert_with(Vec::new);
            let same = candidates.iter().copied().find(|&j| {
                let (a2, b2) = classes[j as usize];
                (0..row_count).all(|r| column(a, b, r) == column(a2, b2, r))
            });
            map[ia * ka + ib] = match same {
                Some(j) => j,
                None => {
                    let j = classes.len() as u32;
                    classes.push((a, b));
                    candidates.push(j);
                    j
                }
            };
            if row_count * (k + classes.len()) * 4 > max_bytes {
                return None;
            }
        }
    }
    Some(Pairs { ascii_index, ascii_classes: ka, map, classes })
}

/// Valmari's partition refinement ("Fast brief practical DFA minimization",
/// 2012) for a partial DFA whose every state reaches the final state `last`:
/// returns the block of each state; equivalent states share a block.
fn minimize_blocks(states: usize, classes: usize, tail: &[u32], label: &[u32], head: &[u32], last: u32) -> Vec<u32> {
    let m = tail.len();
    let mut marks = vec![0u32; states.max(m) + 1];
    let mut touched = vec![0u32; states.max(m) + 1];
    let mut blocks = Partition::new(states);
    // Initial partition: the final state apart.
    let mut w = 0;
    blocks.mark(last as usize, &mut marks, &mut touched, &mut w);
    blocks.split(&mut marks, &mut touched, &mut w);
    // Cords: transitions grouped by label (a counting sort).
    let mut cords = Partition::new(m);
    if m > 0 {
        let mut count = vec![0u32; classes + 1];
        for &a in label {
            count[a as usize + 1] += 1;
        }
        for a in 0..classes {
            count[a + 1] += count[a];
        }
        let mut next = count.clone();
        for t in 0..m {
            let a = label[t] as usize;
            cords.elements[next[a] as usize] = t as u32;
            next[a] += 1;
        }
        cords.sets = 0;
        for a in 0..classes {
            if count[a] == count[a + 1] {
                continue;
            }
            let z = cords.sets;
            cords.first[z] = count[a];
            cords.past[z] = count[a + 1];
            for i in count[a]..count[a + 1] {
                let t = cords.elements[i as usize] as usize;
                cords.set[t] = z as u32;
                cords.location[t] = i;
            }
            cords.sets += 1;
        }
    }
    // Incoming transitions of each state.
    let mut incoming_at = vec![0u32; states + 1];
    for &q in head {
        incoming_at[q as usize + 1] += 1;
    }
    for q in 0..states {
        incoming_at[q + 1] += incoming_at[q];
    }
    let mut incoming = vec![0u32; m];
    {
        let mut fill = incoming_at.clone();
        for t in 0..m {
            let q = head[t] as usize;
            incoming[fill[q] as usize] = t as u32;
            fill[q] += 1;
        }
    }
    let (mut b, mut c) = (1, 0);
    while c < cords.sets {
        for i in cords.first[c]..cords.past[c] {
            let t = cords.elements[i as usize] as usize;
            blocks.mark(tail[t] as usize, &mut marks, &mut touched, &mut w);
        }
        blocks.split(&mut marks, &mut touched, &mut w);
        c += 1;
        while b < blocks.sets {
            for i in blocks.first[b]..blocks.past[b] {
                let q = blocks.elements[i as usize] as usize;
                for j in incoming_at[q]..incoming_at[q + 1] {
                    cords.mark(incoming[j as usize] as usize, &mut marks, &mut touched, &mut w);
                }
            }
            cords.split(&mut marks, &mut touched, &mut w);
            b += 1;
        }
    }
    blocks.set
}

/// A refinable partition of `0..n` (Valmari & Lehtinen).
struct Partition {
    sets: usize,
    /// Elements, grouped by set.
    elements: Vec<u32>,
    /// Where each element is in `elements`.
    location: Vec<u32>,
    /// The set of each element.
    set: Vec<u32>,
    /// First index of each set in `elements`.
    first: Vec<u32>,
    /// One past the last index of each set.
    past: Vec<u32>,
}

impl Partition {
    fn new(n: usize) -> Partition {
        let mut first = vec![0; n.max(1)];
        let mut past = vec![0; n.max(1)];
        first[0] = 0;
        past[0] = n as u32;
        Partition {
            sets: (n > 0) as usize,
            elements: (0..n as u32).collect(),
            location: (0..n as u32).collect(),
            set: vec![0; n],
            first,
            past,
        }
    }

    /// Moves `e` to the marked front of its set.
    fn mark(&mut self, e: usize, marks: &mut [u32], touched: &mut [u32], w: &mut usize) {
        let s = self.set[e] as usize;
        let i = self.location[e] as usize;
        let j = (self.first[s] + marks[s]) as usize;
        self.elements[i] = self.elements[j];
        self.location[self.elements[i] as usize] = i as u32;
        self.elements[j] = e as u32;
        self.location[e] = j as u32;
        if marks[s] == 0 {
            touched[*w] = s as u32;
            *w += 1;
        }
        marks[s] += 1;
    }

    /// Splits every touched set into its marked and unmarked elements.
    fn split(&mut self, marks: &mut [u32], touched: &mut [u32], w: &mut usize) {
        while *w > 0 {
            *w -= 1;
            let s = touched[*w] as usize;
            let j = self.first[s] + marks[s];
            if j == self.past[s] {
                marks[s] = 0;
                continue;
            }
            let z = self.sets;
            if marks[s] <= self.past[s] - j {
                self.first[z] = self.first[s];
                self.past[z] = j;
                self.first[s] = j;
            } else {
                self.past[z] = self.past[s];
                self.first[z] = j;
                self.past[s] = j;
            }
            for i in self.first[z]..self.past[z] {
                self.set[self.elements[i as usize] as usize] = z as u32;
            }
            marks[s] = 0;
            marks[z] = 0;
            self.sets += 1;
        }
    }
}
