//! Linear-time prefix matching core of `@edx/event-tracking`'s `RegexFilter`.
//!
//! One instance holds one anchored dense DFA (regex-automata 0.1.8) built
//! from the union of a filter's patterns, already translated from Python
//! syntax by the TypeScript side (`src/processors/_python_regex.ts`): the
//! translated pattern has no anchors, no Unicode tables and no flags; the end
//! of the text is a `0xFF` sentinel byte the caller appends to every name.
//!
//! The ABI is plain `extern "C"` functions over one reusable input buffer:
//!
//! - `input_reserve(n) -> ptr`: make the buffer hold `n` bytes; JS writes there.
//! - `compile(len) -> i32`: build the DFA from the pattern in the buffer;
//!   0 on success, 1 on error (read it with `message_ptr`/`message_len`).
//! - `is_match(len) -> i32`: 1 if some prefix of the buffer's first `len`
//!   bytes matches, else 0. Never allocates, so JS views stay valid.
//!
//! Panics abort (a WebAssembly trap that JS turns into an error); the panic
//! hook leaves the panic message readable through `message_ptr`/`message_len`.

use regex_automata::{dense, DenseDFA, DFA};

static mut INPUT: Vec<u8> = Vec::new();
static mut MESSAGE: Vec<u8> = Vec::new();
static mut MATCHER: Option<DenseDFA<Vec<usize>, usize>> = None;

fn set_message(text: &str) {
    // SAFETY: WebAssembly instances are single-threaded and no reference to
    // MESSAGE outlives a call.
    unsafe {
        MESSAGE.clear();
        MESSAGE.extend_from_slice(text.as_bytes());
    }
}

/// Makes the input buffer hold at least `len` bytes and returns its address.
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

/// Builds the DFA from the UTF-8 pattern in the first `len` input bytes.
#[no_mangle]
pub extern "C" fn compile(len: usize) -> i32 {
    std::panic::set_hook(Box::new(|info| set_message(&info.to_string())));
    // SAFETY: single-threaded; the slice is not used after INPUT changes.
    let bytes = unsafe { &INPUT[..len] };
    let pattern = match std::str::from_utf8(bytes) {
        Ok(pattern) => pattern,
        Err(_) => {
            set_message("pattern is not UTF-8");
            return 1;
        }
    };
    let built = dense::Builder::new()
        .anchored(true)
        .unicode(true)
        .allow_invalid_utf8(true)
        .byte_classes(true)
        .premultiply(true)
        .minimize(false)
        .build(pattern);
    match built {
        Ok(dfa) => {
            // SAFETY: single-threaded.
            unsafe { MATCHER = Some(dfa) };
            set_message("");
            0
        }
        Err(err) => {
            set_message(&err.to_string());
            1
        }
    }
}

/// Returns 1 when a prefix of the first `len` input bytes matches, else 0
/// (-1 when nothing was compiled).
#[no_mangle]
pub extern "C" fn is_match(len: usize) -> i32 {
    // SAFETY: single-threaded; `len` is checked by slicing.
    unsafe {
        match MATCHER {
            Some(ref dfa) => dfa.is_match(&INPUT[..len]) as i32,
            None => -1,
        }
    }
}

/// Heap bytes used by the DFA.
#[no_mangle]
pub extern "C" fn memory_usage() -> usize {
    // SAFETY: single-threaded.
    unsafe { MATCHER.as_ref().map_or(0, |dfa| dfa.memory_usage()) }
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
