#!/usr/bin/env bash
# Fails when a tracked C++ file is not formatted as .clang-format says (or
# when clang-format cannot read the style).
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.cc' '*.h' | grep -v '^tests/data/' || true)
[ -z "$files" ] && exit 0
out=$(echo "$files" | xargs clang-format --style=file --dry-run 2>&1 || true)
if echo "$out" | grep -q 'error:'; then
  echo "$out" | grep 'error:' | head -5 >&2
  echo "check_format: clang-format failed (is .clang-format valid?)" >&2
  exit 1
fi
bad=$(echo "$out" | grep -c 'warning:' || true)
if [ "$bad" != "0" ]; then
  echo "$out" | grep 'warning:' | cut -d: -f1 | sort -u >&2
  echo "check_format: $bad formatting differences; run: git ls-files '*.cc' '*.h' | xargs clang-format -i" >&2
  exit 1
fi
echo "check_format: ok ($(echo "$files" | wc -l) files)"
