#!/usr/bin/env python3
"""ttvm's emulator against QEMU's TCG on a CPU-bound integer guest (issue 14).

Runs bench/int_workload (built as build/<dir>/bench/int_workload.elf: CRC,
a byte-code interpreter, a hash table and a sort, code and data on separate
pages) under `ttvm record` and under `qemu-system-x86_64 -accel tcg -kernel`,
alternating runs in one sitting. Each run is timed twice: with
rounds=ROUNDS and with rounds=0 (boot, start-up and shutdown only: QEMU's
includes its SeaBIOS boot, ttvm's its machine set-up), so that the
compared time is the workload's own. Both must print the same checksum.

Reported: the median and range of each side's wall time, the workload's
time (wall minus the median of rounds=0), ttvm's steps from its own report
(which equal the guest's instructions: the workload has no REP strings),
and the ratio QEMU time / ttvm time (the speed of ttvm as a fraction of
QEMU's: 1.0 = as fast) as a median with its range over runs, on wall time
and on CPU time (user + system of each process; on a shared machine the
steadier of the two, though QEMU's CPU time includes its I/O thread).

usage: bench/qemu_ratio_bench.py [--ttvm build/release/cli/ttvm]
                                 [--guest build/release/bench/int_workload.elf]
                                 [--runs N] [--rounds R] [--traced]
                                 [--ttvm-arg ARG]... [--peer-ttvm-arg ARG]...

--ttvm-arg passes an option to `ttvm record` (e.g. --ttvm-arg=--engine=fast);
--peer-ttvm-arg adds a third contestant: the same ttvm with these options
instead, in the same alternation (e.g. the reference engine against the
fast one).
"""
import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKSUM = re.compile(rb"int_workload: rounds (\d+) checksum ([0-9a-f]+)")
STEPS = re.compile(rb"steps\s+(\d+) in")
ENGINE = re.compile(rb"engine\s+(.*)")


def run(cmd, timeout=600):
    """Wall time and CPU time (user + system of the child) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, timeout=timeout)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    m = CHECKSUM.search(p.stdout)
    if m is None:
        sys.exit(f"qemu_ratio_bench: no checksum from {' '.join(cmd)}:\n"
                 + p.stdout.decode(errors="replace"))
    steps = STEPS.search(p.stdout)
    engine = ENGINE.search(p.stdout)
    return (wall, cpu, m.group(2).decode(), int(steps.group(1)) if steps else None,
            engine.group(1).decode().strip() if engine else None)


def ttvm_cmd(args, extra, rounds):
    cmd = [args.ttvm, "record", "--backend", "emu"]
    if not args.traced:
        cmd.append("--no-trace")
    else:
        cmd += ["-o", os.path.join(tempfile.gettempdir(), f"qemu_ratio_bench.{os.getpid()}.ttvm")]
    return cmd + extra + ["--append", f"rounds={rounds}", args.guest]


def qemu_cmd(args, rounds):
    return [args.qemu, "-accel", "tcg", "-kernel", args.guest, "-append", f"rounds={rounds}",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-serial", "stdio",
            "-display", "none", "-no-reboot", "-m", "256", "-monitor", "none", "-nodefaults"]


def summary(xs):
    return f"median {statistics.median(xs):.3f} s (range {min(xs):.3f}-{max(xs):.3f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ttvm", default=os.path.join(HERE, "..", "build", "release", "cli", "ttvm"))
    ap.add_argument("--guest",
                    default=os.path.join(HERE, "..", "build", "release", "bench", "int_workload.elf"))
    ap.add_argument("--qemu", default=shutil.which("qemu-system-x86_64"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--traced", action="store_true", help="write a trace (default --no-trace)")
    ap.add_argument("--ttvm-arg", action="append", default=[])
    ap.add_argument("--peer-ttvm-arg", action="append", default=None)
    args = ap.parse_args()
    if not args.qemu:
        sys.exit("qemu_ratio_bench: qemu-system-x86_64 not found")
    for path in (args.ttvm, args.guest):
        if not os.path.exists(path):
            sys.exit(f"qemu_ratio_bench: {path} does not exist (build ttvm and bench_int_workload)")

    contestants = [("ttvm", lambda r: ttvm_cmd(args, args.ttvm_arg, r))]
    if args.peer_ttvm_arg is not None:
        contestants.append(("ttvm peer", lambda r: ttvm_cmd(args, args.peer_ttvm_arg, r)))
    contestants.append(("qemu", lambda r: qemu_cmd(args, r)))

    full = {name: [] for name, _ in contestants}
    empty = {name: [] for name, _ in contestants}
    full_cpu = {name: [] for name, _ in contestants}
    empty_cpu = {name: [] for name, _ in contestants}
    checksums, steps, engines = set(), {}, {}
    for k in range(args.runs):
        for name, cmd in contestants:
            wall, cpu, check, n, engine = run(cmd(args.rounds))
            full[name].append(wall)
            full_cpu[name].append(cpu)
            checksums.add(check)
            if n is not None:
                steps[name] = n
            if engine is not None:
                engines[name] = engine
            wall0, cpu0, _, _, _ = run(cmd(0))
            empty[name].append(wall0)
            empty_cpu[name].append(cpu0)
        print(f"run {k + 1}: " + ", ".join(f"{name} {full[name][-1]:.3f} s" for name, _ in contestants),
              flush=True)
    if len(checksums) != 1:
        sys.exit(f"qemu_ratio_bench: the guests disagree: checksums {sorted(checksums)}")

    print(f"\nint_workload rounds={args.rounds}, {args.runs} alternating runs, "
          f"ttvm {'traced' if args.traced else '--no-trace'} {' '.join(args.ttvm_arg)}")
    work, work_cpu = {}, {}
    for name, _ in contestants:
        base = statistics.median(empty[name])
        work[name] = [max(w - base, 1e-6) for w in full[name]]
        base_cpu = statistics.median(empty_cpu[name])
        work_cpu[name] = [max(c - base_cpu, 1e-6) for c in full_cpu[name]]
        line = f"  {name:10s} whole run {summary(full[name])}; rounds=0 {summary(empty[name])}"
        print(line)
        extra = f"; {steps[name] / statistics.median(work[name]) / 1e6:.1f} M steps/s" \
            if name in steps else ""
        print(f"  {'':10s} workload  {summary(work[name])}{extra}")
        print(f"  {'':10s} workload CPU time {summary(work_cpu[name])}")
        if name in engines:
            print(f"  {'':10s} engine    {engines[name]}")
    if steps:
        n = next(iter(steps.values()))
        print(f"  qemu       {n / statistics.median(work['qemu']) / 1e6:.1f} M instructions/s "
              f"(ttvm's step count)")
    for name, _ in contestants:
        if name == "qemu":
            continue
        ratios = [q / t for q, t in zip(work["qemu"], work[name])]
        whole = [q / t for q, t in zip(full["qemu"], full[name])]
        print(f"ratio qemu/{name} (speed of {name} as a fraction of QEMU's): workload median "
              f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f}); "
              f"whole run median {statistics.median(whole):.3f} "
              f"(range {min(whole):.3f}-{max(whole):.3f})")
        cpu_ratios = [q / t for q, t in zip(work_cpu["qemu"], work_cpu[name])]
        print(f"ratio qemu/{name} on CPU time (user + system; steadier on a loaded machine): "
              f"median {statistics.median(cpu_ratios):.3f} "
              f"(range {min(cpu_ratios):.3f}-{max(cpu_ratios):.3f})")
    print(f"checksum {checksums.pop()}")


if __name__ == "__main__":
    main()
