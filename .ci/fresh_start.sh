#!/usr/bin/env bash
# The first `deno task start` of a new user: a copy of this checkout (a git clone of HEAD plus any
# uncommitted changes), an EMPTY Deno cache, the collector started until GET /v1/health answers 200.
# Prints the seconds that took and the MB installed (node_modules + the Deno npm cache). Fails when
# more than FRESH_START_MAX_MB (60) were installed; the time is printed, not asserted (target 15 s).
#
#   DENO="npx --yes deno@2.9.6" .ci/fresh_start.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
DENO=${DENO:-deno}
max_mb=${FRESH_START_MAX_MB:-60}
target_s=15
ready_timeout_s=${FRESH_START_TIMEOUT_S:-300}

tmp=$(mktemp -d)
pgid=""
cleanup() {
  if [ -n "$pgid" ] && kill -0 -- "-$pgid" 2>/dev/null; then kill -KILL -- "-$pgid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# The copy: what a fresh clone of this tree holds (ignored files such as node_modules/ stay behind).
git clone -q --no-hardlinks "$repo" "$tmp/repo"
(
  cd "$repo"
  git ls-files -z --modified --others --exclude-standard | while IFS= read -r -d '' f; do
    if [ -f "$f" ]; then cp --parents -- "$f" "$tmp/repo/"; fi
  done
  git ls-files -z --deleted | (cd "$tmp/repo" && xargs -0 -r rm -f --)
)

export DENO_DIR="$tmp/deno_dir" NO_COLOR=1 DENO_NO_UPDATE_CHECK=1
mkdir "$DENO_DIR"
# A loopback port that is free now (node comes with npx; the collector's own PORT=0 would print it instead).
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')

# True while the process runs (a zombie, exited but not yet reaped, does not count).
running() { [ -r "/proc/$1/stat" ] && [ "$(cut -d ' ' -f 3 "/proc/$1/stat")" != Z ]; }

health() {
  # Plain bash: no curl needed. Prints the status line of GET /v1/health.
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf 'GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 && head -n 1 <&3" 2>/dev/null
}

cd "$tmp/repo"
start_ns=$(date +%s%N)
# Its own process group, so that stopping it stops `deno task` and the server it runs.
PORT=$port setsid $DENO task start >"$tmp/start.log" 2>&1 </dev/null &
pgid=$!
status=""
while :; do
  status=$(health || true)
  if [[ $status == *" 200"* ]]; then break; fi
  if ! running "$pgid"; then
    echo "fresh start: 'deno task start' exited before /v1/health answered 200:" >&2
    cat "$tmp/start.log" >&2
    exit 1
  fi
  if (($(date +%s%N) - start_ns > ready_timeout_s * 1000000000)); then
    echo "fresh start: /v1/health did not answer 200 within ${ready_timeout_s} s (last: ${status:-no answer}):" >&2
    cat "$tmp/start.log" >&2
    exit 1
  fi
  sleep 0.1
done
ready_ns=$(date +%s%N)

# Stop it as Ctrl-C would (the whole group: `deno task` and the server), within its shutdown deadline.
kill -INT -- "-$pgid" 2>/dev/null || true
(sleep 30 && echo "fresh start: the collector did not exit within 30 s of SIGINT; killing it" >&2 &&
  kill -KILL -- "-$pgid" 2>/dev/null) &
watchdog=$!
wait "$pgid" 2>/dev/null || true
kill "$watchdog" 2>/dev/null || true
wait "$watchdog" 2>/dev/null || true
if kill -0 -- "-$pgid" 2>/dev/null; then kill -KILL -- "-$pgid" 2>/dev/null || true; fi
pgid=""

ms=$(((ready_ns - start_ns) / 1000000))
seconds=$(printf '%d.%01d' $((ms / 1000)) $((ms % 1000 / 100)))
dirs=()
for d in node_modules "$DENO_DIR/npm"; do
  if [ -e "$d" ]; then dirs+=("$d"); fi
done
# One du call: files hard-linked from the npm cache into node_modules count once.
mb=0
if ((${#dirs[@]})); then mb=$(du -scm "${dirs[@]}" | tail -n 1 | cut -f 1); fi
cache_mb=$(du -sm "$DENO_DIR" | cut -f 1)
packages=$(find node_modules/.deno -mindepth 1 -maxdepth 1 -name '*@*' 2>/dev/null | wc -l)

echo "fresh start: /v1/health answered 200 after ${seconds} s (target ${target_s} s)"
echo "fresh start: ${mb} MB installed (node_modules + DENO_DIR/npm; ${packages} npm packages; whole DENO_DIR ${cache_mb} MB); limit ${max_mb} MB"
if ((ms > target_s * 1000)); then
  echo "fresh start: NOTE slower than the ${target_s} s target (not a failure)"
fi
if ((mb > max_mb)); then
  echo "fresh start: FAIL: more than ${max_mb} MB installed. Top-level npm packages:" >&2
  ls node_modules >&2 || true
  echo "Test and build tools belong in dev/deno.json (and dev/deno.lock), not in deno.json, deno.lock or a package.json at the root." >&2
  exit 1
fi
