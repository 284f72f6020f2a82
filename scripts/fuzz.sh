#!/usr/bin/env bash
# Runs the cargo-fuzz targets (nightly) for RELIABILITY.md's long form of fuzzing: each target
# from a working copy of its committed corpus, until RUNS executions or SECONDS seconds.
#   bash scripts/fuzz.sh [target…]        (default: every target)
# Env: RUNS (default 10000000), SECONDS_PER_TARGET (default 900), JOBS (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
runs=${RUNS:-10000000}
seconds=${SECONDS_PER_TARGET:-900}
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(ls fuzz/libfuzzer/fuzz_targets | sed 's/\.rs$//')
fi
cargo +nightly fuzz build --fuzz-dir fuzz/libfuzzer -O
for t in "${targets[@]}"; do
  work="target/fuzz-corpus/$t"
  mkdir -p "$work"
  cp -n "fuzz/corpus/$t"/* "$work"/ 2>/dev/null || true
  echo "== $t"
  cargo +nightly fuzz run --fuzz-dir fuzz/libfuzzer -O "$t" "$work" -- \
    -runs="$runs" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
    -print_final_stats=1 -close_fd_mask=3 2>&1 | tee "target/fuzz-corpus/$t.log" |
    grep -E "^(stat::|==|SUMMARY|#[0-9]+ *DONE)|panicked|ERROR" || true
done
