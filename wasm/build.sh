#!/bin/sh
# Rebuilds RegexFilter's WebAssembly, reproducibly and offline: the core
# (wasm/regex_filter.wasm) from Debian's Rust toolchain and Debian-packaged
# crates, and the string walker (wasm/regex_walker.wasm and its copy in
# src/processors/_regex_walker_wasm.ts) from wasm/tools/emit_walker.ts with
# Deno. Installs nothing.
#
#   wasm/build.sh           rebuild the three files
#   wasm/build.sh --check   rebuild into a temporary directory and fail (exit 1)
#                           unless each equals the committed file byte for byte
set -eu

here=$(cd "$(dirname "$0")" && pwd)
mode=${1:-build}

missing=""
for pkg in rustc cargo libstd-rust-dev-wasm32 librust-regex-automata-dev librust-regex-automata+std-dev lld-14 binaryen patch; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $pkg"
  fi
done
if [ -n "$missing" ]; then
  echo "wasm/build.sh: missing Debian packages:$missing" >&2
  echo "install them with: sudo apt-get install -y$missing" >&2
  exit 2
fi
# `deno task` runs this script with a PATH where `deno` may be missing: take
# the one that runs the task when it says where it is.
deno=${DENO_BIN:-$(command -v deno || true)}
if [ -z "$deno" ]; then
  echo "wasm/build.sh: deno is not on PATH (set DENO_BIN to its path)" >&2
  exit 2
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Deterministic flags: no absolute paths in the output (panic locations are
# remapped), one codegen unit, no debug info; the linker caps the memory the
# DFA construction may take at 256 MiB (a trap turned into a JS error beyond
# that) and keeps the shadow stack at 256 KiB so each filter's instance is small.
RUSTFLAGS="--remap-path-prefix=$here=/regex_filter --remap-path-prefix=/usr/share/cargo/registry=/registry"
RUSTFLAGS="$RUSTFLAGS -C link-arg=--max-memory=268435456 -C link-arg=-zstack-size=262144"
export RUSTFLAGS
export RUSTC=/usr/bin/rustc
export CARGO_TARGET_DIR="$here/target"
export SOURCE_DATE_EPOCH=0
unset CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS RUSTC_WRAPPER 2>/dev/null || true

# regex-automata 0.1.8 as Debian ships it, plus one fix: its determinizer can
# insert an NFA state twice into a fixed-size set and panic (e.g. on `a*a?`).
# Cargo.toml's [patch.crates-io] points here. Dev-dependencies and tests are
# dropped from its manifest: they are not packaged and not needed.
patched="$CARGO_TARGET_DIR/patched/regex-automata-0.1.8"
rm -rf "$patched"
mkdir -p "$(dirname "$patched")"
cp -r /usr/share/cargo/registry/regex-automata-0.1.8 "$patched"
chmod -R u+w "$patched"
rm -f "$patched/.cargo-checksum.json"
awk '/^\[/ { skip = ($0 ~ /^\[dev-dependencies/ || $0 ~ /^\[\[test\]\]/) } !skip' \
  /usr/share/cargo/registry/regex-automata-0.1.8/Cargo.toml >"$patched/Cargo.toml"
patch -s -p1 -d "$patched" <"$here/patches/regex-automata-0.1.8-epsilon-closure.patch"

(cd "$here" && /usr/bin/cargo build --release --locked --target wasm32-unknown-unknown)
wasm-opt -O3 --strip-debug --strip-producers \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/regex_filter.wasm" \
  -o "$out/regex_filter.wasm"

# The walker: emitted by a TypeScript program that depends on nothing but itself.
"$deno" run --no-lock --no-config --allow-write="$out" "$here/tools/emit_walker.ts" --out "$out" >/dev/null

if [ "$mode" = "--check" ]; then
  status=0
  for pair in "regex_filter.wasm:$here/regex_filter.wasm" "regex_walker.wasm:$here/regex_walker.wasm" \
    "_regex_walker_wasm.ts:$here/../src/processors/_regex_walker_wasm.ts"; do
    if ! cmp "$out/${pair%%:*}" "${pair#*:}"; then
      echo "wasm/build.sh --check: the rebuilt ${pair%%:*} differs from the committed ${pair#*:}" >&2
      status=1
    fi
  done
  [ "$status" -eq 0 ] || exit 1
  echo "wasm/build.sh --check: rebuilt artifacts are identical" \
    "(regex_filter.wasm $(wc -c <"$out/regex_filter.wasm") bytes, regex_walker.wasm $(wc -c <"$out/regex_walker.wasm") bytes)"
else
  cp "$out/regex_filter.wasm" "$here/regex_filter.wasm"
  cp "$out/regex_walker.wasm" "$here/regex_walker.wasm"
  cp "$out/_regex_walker_wasm.ts" "$here/../src/processors/_regex_walker_wasm.ts"
  echo "wrote wasm/regex_filter.wasm ($(wc -c <"$here/regex_filter.wasm") bytes), wasm/regex_walker.wasm" \
    "($(wc -c <"$here/regex_walker.wasm") bytes) and src/processors/_regex_walker_wasm.ts"
fi
