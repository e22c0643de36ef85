#!/usr/bin/env python3
"""Runs the demo guest under QEMU or `ttvm record` and checks that it crashes
the way guests/demo/README.md says: progress lines with timer ticks, then a
page fault in table_find() on the pointer 0x000070756b6f6f6c ("lookup"), then
a pvpanic report.

The fault's RIP is checked against table_find's address range, read from the
x86-64 ELF (demo.elf.elf) with nm, so the check does not depend on the build.
"""
import argparse
import re
import subprocess
import sys

WILD_POINTER = 0x000070756B6F6F6C


def symbol_ranges(elf):
    out = subprocess.run(["nm", "-n", elf], capture_output=True, text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tT":
            syms.append((int(parts[0], 16), parts[2]))
    ranges = {}
    for i, (addr, name) in enumerate(syms):
        end = syms[i + 1][0] if i + 1 < len(syms) else addr + 0x1000
        ranges[name] = (addr, end)
    return ranges


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runner", choices=["qemu", "ttvm"], required=True)
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--ttvm")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("guest", help="demo.elf (demo.elf.elf must sit next to it)")
    args = ap.parse_args()

    if args.runner == "qemu":
        cmd = [args.qemu, "-accel", "tcg", "-kernel", args.guest,
               "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-device", "pvpanic",
               "-action", "panic=exit-failure", "-serial", "stdio", "-display", "none",
               "-no-reboot", "-m", "256", "-monitor", "none", "-nodefaults"]
    else:
        if not args.ttvm:
            sys.exit("check_demo: --runner ttvm needs --ttvm PATH")
        cmd = [args.ttvm, "record", "--no-trace", args.guest]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=args.timeout)
        status, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        status, out, err = None, e.stdout or b"", e.stderr or b""
    except OSError as e:
        print(f"check_demo: cannot run {cmd[0]}: {e.strerror}")
        return 1
    serial = out.decode(errors="replace").replace("\r", "")
    stderr = err.decode(errors="replace")

    problems = []
    if status is None:
        problems.append(f"timed out after {args.timeout:g} s")
    progress = re.findall(r"alias round (\d+): .* ticks=(\d+)", serial)
    if len(progress) < 8:
        problems.append(f"{len(progress)} 'alias round' progress lines, expected 8")
    elif int(progress[-1][1]) == 0:
        problems.append("no timer ticks counted by the last progress line")
    m = re.search(r"\*\*\* page fault \(vector 14\) at rip=0x([0-9a-f]+), error code=(\w+)", serial)
    c = re.search(r"faulting address cr2=0x([0-9a-f]+)", serial)
    if not m or not c:
        problems.append("no page-fault report on the serial line")
    else:
        rip, cr2 = int(m.group(1), 16), int(c.group(1), 16)
        if cr2 != WILD_POINTER:
            problems.append(f"CR2 {cr2:#x}, expected {WILD_POINTER:#x}")
        if m.group(2) != "0":
            problems.append(f"error code {m.group(2)}, expected 0 (read, not present)")
        lo, hi = symbol_ranges(args.guest + ".elf").get("table_find", (0, 0))
        if not lo <= rip < hi:
            problems.append(f"fault RIP {rip:#x} outside table_find [{lo:#x}, {hi:#x})")
    if "PANIC: unhandled page fault in kernel mode" not in serial:
        problems.append("no PANIC line")
    if args.runner == "qemu" and status is not None and status != 1:
        problems.append(f"QEMU exit status {status}, expected 1 (pvpanic, panic=exit-failure)")
    if args.runner == "ttvm" and not re.search(r"panic", stderr, re.I):
        problems.append("ttvm's summary on stderr does not name the guest panic")

    if problems:
        print(f"check_demo: {args.runner}: FAILED")
        for p in problems:
            print(f"  - {p}")
        print("command: " + " ".join(cmd))
        print("---- serial ----\n" + serial)
        if stderr.strip():
            print("---- stderr ----\n" + stderr[-4000:])
        return 1
    print(f"check_demo: {args.runner}: ok (page fault in table_find on {WILD_POINTER:#x})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
