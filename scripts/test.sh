#!/usr/bin/env bash
# Every test, from nothing: install, build the release and the sanitizer
# builds, and run all tests in both; then a bounded fuzzing run of the trace reader.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/check_format.sh

bash scripts/build.sh release
ctest --preset release -j2

bash scripts/build.sh sanitize
ctest --preset sanitize -j2

# --- formats (issue 2): a bounded libFuzzer run of the trace reader over its
# committed corpus; new inputs go to a temporary directory, not the corpus.
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target trace_reader_fuzz
fuzz_new="$(mktemp -d)"
./build/fuzz/tests/fuzz/trace_reader_fuzz -max_total_time=60 -rss_limit_mb=2048 \
  "$fuzz_new" tests/fuzz/corpus/trace_reader
rm -rf "$fuzz_new"
# --- end formats fuzzing
