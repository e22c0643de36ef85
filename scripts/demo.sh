#!/usr/bin/env bash
# The main job, from nothing: install what ttvm needs, build it, record the
# demo guest (guests/demo: a small kernel with a use-after-free, see its
# README.md) until it crashes, and show where it crashed. Once `ttvm replay`
# exists, also the step that wrote the corrupting pointer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh release >/dev/null

ttvm=./build/release/cli/ttvm
guest=./build/release/guests/demo/demo.elf
trace=./build/release/demo.ttvm
serial=./build/release/demo.serial.txt

echo "== ttvm record -o $trace $guest"
set +e
"$ttvm" record -o "$trace" "$guest" | tee "$serial"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 6 ]; then
  echo "demo: expected the guest to end in a panic (exit status 6), got $status" >&2
  exit 1
fi

echo
echo "== where it crashed"
rip=$(sed -n 's/.*page fault (vector 14) at rip=\(0x[0-9a-f]*\).*/\1/p' "$serial")
cr2=$(sed -n 's/.*faulting address cr2=\(0x[0-9a-f]*\).*/\1/p' "$serial")
# demo.elf.elf is the x86-64 ELF with DWARF next to the multiboot container.
where=$(addr2line -f -e "$guest.elf" "$rip" | paste -sd' ')
echo "page fault at $rip in $where, reading $cr2"
"$ttvm" info "$trace" | sed -n '/^end/,/^size/p'

end_step=$("$ttvm" info --json "$trace" | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["steps"])' 2>/dev/null || true)
if [ -n "$end_step" ]; then
  echo
  echo "== stepping back from the end: the last 6 steps (ttvm replay --trace-steps)"
  "$ttvm" replay "$trace" --trace-steps "$((end_step - 6))..$end_step"
fi

if "$ttvm" replay --help >/dev/null 2>&1; then
  # The stale entry whose `next` field was overwritten is chunk 381 of the
  # allocator's arena (allocation order is deterministic): arena + 0x2FA0,
  # `next` at +8. See guests/demo/README.md.
  arena=$(nm "$guest.elf" | awk '$3 == "arena" { print $1 }')
  next_field=$(printf '0x%x' $((0x$arena + 0x2FA8)))
  echo
  echo "== ttvm replay $trace --last-write $next_field:8"
  "$ttvm" replay "$trace" --last-write "$next_field:8" | tee "$serial.lastwrite"
  step=$(sed -n 's/.*before step [0-9]*: step \([0-9]*\).*/\1/p' "$serial.lastwrite")
  if [ -n "$step" ]; then
    echo
    echo "== ttvm replay $trace --to $step --backtrace"
    "$ttvm" replay "$trace" --to "$step" --backtrace
  fi
fi
