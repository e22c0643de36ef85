#!/usr/bin/env bash
# The main job, from nothing: install what ttvm needs, build it, and run it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh release >/dev/null
./build/release/cli/ttvm --help
