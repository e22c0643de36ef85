#!/usr/bin/env python3
"""`ttvm slice` time and size (issue 16), and trace density against QEMU's
record/replay.

1. Records bench/replay_workload/long_run.asm (about 1e9 steps), then slices
   its last 1e6, 1e7 and 1e8 steps with `ttvm slice --last N` (which replays
   the source to the cut, records the pages accessed over the range, writes
   the slice and replays it to check it): wall time and file size of each,
   against the source's size.
2. Trace bytes per 1e6 steps of the demo guest (guests/demo) recorded by
   `ttvm record`, against `qemu-system-x86_64 -icount shift=auto,rr=record`
   running the same multiboot kernel to the same panic (QEMU's pvpanic
   device ends it): QEMU's record file per 1e6 of its instructions, as
   QEMU's own `info`-less count is not printed, taken as ttvm's step count of
   the same guest (same code path; QEMU adds its firmware's boot).

usage: bench/slice_bench.py [--build build/release] [--skip-long] [--skip-qemu]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time


def run(cmd, **kw):
    t = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return p, time.monotonic() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--skip-long", action="store_true")
    ap.add_argument("--skip-qemu", action="store_true")
    a = ap.parse_args()
    ttvm = os.path.join(a.build, "cli", "ttvm")
    tmp = tempfile.mkdtemp(prefix="ttvm-slice-bench-")
    try:
        if not a.skip_long:
            guest = os.path.join(a.build, "bench", "replay_long_run.elf")
            src = os.path.join(tmp, "long.ttvm")
            p, secs = run([ttvm, "record", "-o", src, guest])
            if not os.path.exists(src):
                sys.exit("record failed: " + p.stderr)
            print(f"long_run: recorded in {secs:.1f} s, {os.path.getsize(src)} bytes")
            for n in (10**6, 10**7, 10**8):
                out = os.path.join(tmp, f"last{n}.ttvm")
                p, secs = run([ttvm, "slice", src, "-o", out, "--last", str(n)])
                if p.returncode != 0:
                    sys.exit(f"slice --last {n} failed: {p.stderr}")
                print(f"  slice --last {n:>11,}: {secs:6.2f} s, {os.path.getsize(out):>9,} bytes"
                      f"  ({p.stdout.strip()})")
        if not a.skip_qemu:
            demo = os.path.join(a.build, "guests", "demo", "demo.elf")
            tr = os.path.join(tmp, "demo.ttvm")
            p, _ = run([ttvm, "record", "-o", tr, demo])
            steps = None
            for line in p.stderr.splitlines():
                if line.strip().startswith("steps"):
                    steps = int(line.split()[1])
            size = os.path.getsize(tr)
            print(f"demo: ttvm {size} bytes over {steps} steps: "
                  f"{size / steps * 1e6:,.0f} bytes per 1e6 steps")
            rr = os.path.join(tmp, "demo.rr")
            qemu = ["qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-nographic",
                    "-no-reboot", "-kernel", demo, "-device", "pvpanic",
                    "-action", "panic=exit-failure",
                    "-icount", f"shift=auto,rr=record,rrfile={rr}"]
            p, secs = run(["timeout", "120"] + qemu)
            if not os.path.exists(rr):
                print("qemu: no record file (" + p.stderr.strip()[-300:] + ")")
            else:
                q = os.path.getsize(rr)
                print(f"demo: qemu rr {q} bytes in {secs:.1f} s (status {p.returncode}): "
                      f"{q / steps * 1e6:,.0f} bytes per 1e6 steps; qemu/ttvm {q / size:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
