#!/usr/bin/env bash
# Every test, from nothing: install, check formatting, build the release
# preset and run every test in it; then the code that parses untrusted input
# (trace reader, devices, loaders) again under ASan+UBSan; the trace writer's
# background thread under ThreadSanitizer; then a bounded fuzzing run of the
# trace reader.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/check_format.sh

bash scripts/build.sh release
ctest --preset release -j2 -LE exhaustive
# The exhaustive FPU comparisons against the host (label "exhaustive": the
# x87 and SSE/MMX host comparisons with 40-100x the cases; 106 s on two idle
# cores, longer than the 2-minute limit for one test when the machine is
# busy), separately after the rest.
ctest --preset release -j2 -L exhaustive

# The sanitizer preset builds only the test binaries of the input-parsing
# components and of the emulator (a full ASan build of everything would double
# CI time on two cores).
cmake --preset sanitize >/dev/null
cmake --build --preset sanitize --target ttvm_base_tests ttvm_formats_tests ttvm_machine_tests \
  ttvm_emulator_tests
ctest --preset sanitize -j2 -L 'base|formats|machine'
# The emulator's tests under ASan+UBSan: all but the 'exhaustive' label, with
# the differential tests at 2,000 random sequences each instead of 100,000
# (about 2 minutes of CPU in all; at full size they would take half an hour).
TTVM_DIFF_SEQUENCES=2000 ctest --preset sanitize -j2 -L emulator -LE exhaustive

# The trace writer encodes and writes on its own thread: its tests (every
# hand-over mode, write errors on the thread) again under ThreadSanitizer.
cmake --preset tsan >/dev/null
cmake --build --preset tsan --target ttvm_formats_tests
TSAN_OPTIONS=halt_on_error=1 ctest --preset tsan -j2 -L formats

# --- formats (issue 2): a bounded libFuzzer run of the trace reader over its
# committed corpus; new inputs go to a temporary directory, not the corpus.
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target trace_reader_fuzz
fuzz_new="$(mktemp -d)"
./build/fuzz/tests/fuzz/trace_reader_fuzz -max_total_time=60 -rss_limit_mb=2048 \
  "$fuzz_new" tests/fuzz/corpus/trace_reader
rm -rf "$fuzz_new"
# --- end formats fuzzing
