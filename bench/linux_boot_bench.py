#!/usr/bin/env python3
"""Linux boot: `ttvm record` against `qemu-system-x86_64 -accel tcg -kernel`,
measured in the same run, and the trace size per 1000 steps.

Both boot the same stock Debian 12 kernel (fetched by
tests/linux/fetch_debian_kernel.sh into the cache) with the same initramfs
and command line, and each is timed from its start until the serial line
"ttvm-init: ready" appears on its console (then stopped): the kernel's boot
and /init's first line, nothing else. Best of --runs alternating runs.
A full recording (the ctest boot commands, poweroff) gives the trace size.

usage: bench/linux_boot_bench.py [--ttvm build/release/cli/ttvm]
                                 [--flavour cloud|generic] [--runs N]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "..", "tests", "linux")
LINE = b"ttvm-init: ready"
APPEND = "console=ttyS0 panic=0"


def time_to_line(cmd, timeout):
    """Seconds from start until LINE is on the process's stdout."""
    start = time.monotonic()
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        try:
            while time.monotonic() - start < timeout:
                time.sleep(0.02)
                out.seek(0)
                if LINE in out.read():
                    return time.monotonic() - start
                if p.poll() is not None:
                    break
            raise RuntimeError(f"{cmd[0]} did not print {LINE!r}")
        finally:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttvm", default="build/release/cli/ttvm")
    ap.add_argument("--flavour", default="cloud")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    fetched = subprocess.run([os.path.join(TESTS, "fetch_debian_kernel.sh"), a.flavour],
                             capture_output=True, text=True)
    if fetched.returncode != 0:
        print(fetched.stderr, file=sys.stderr)
        return fetched.returncode
    env = dict(line.split("=", 1) for line in fetched.stdout.split())
    work = tempfile.mkdtemp(prefix="ttvm-linux-bench-")
    initrd = os.path.join(work, "initrd.gz")
    subprocess.run([os.path.join(TESTS, "make_initramfs.sh"), env["BUSYBOX"],
                    env["MODULES_DIR"], initrd], check=True)
    empty = os.path.join(work, "empty")
    open(empty, "w").close()
    trace = os.path.join(work, "boot.ttvm")
    ttvm = [a.ttvm, "record", "--kernel", env["KERNEL"], "--initrd", initrd, "--append", APPEND,
            "--serial-input", empty, "--start-clock", "1700000000", "-o", trace]
    qemu = ["qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-nographic", "-no-reboot",
            "-kernel", env["KERNEL"], "-initrd", initrd, "-append", APPEND]
    best = {"ttvm": None, "qemu": None}
    for _ in range(a.runs):
        for name, cmd in (("ttvm", ttvm), ("qemu", qemu)):
            t = time_to_line(cmd, 900)
            best[name] = t if best[name] is None else min(best[name], t)
    print(f"Linux {env['RELEASE']} boot to {LINE.decode()!r}, best of {a.runs}:")
    print(f"  ttvm record (traced)              {best['ttvm']:8.2f} s")
    print(f"  qemu-system-x86_64 -accel tcg     {best['qemu']:8.2f} s")
    print(f"  ratio ttvm / qemu                 {best['ttvm'] / best['qemu']:8.2f}")

    # Trace size: the ctest's commands, to the end of the run (poweroff).
    cmds = os.path.join(work, "cmds")
    with open(cmds, "w") as f:
        f.write("uname -r\ncat /proc/cpuinfo\npoweroff -f\n")
    full = [c if c != empty else cmds for c in ttvm]
    r = subprocess.run(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    steps = int(re.search(r"steps\s+(\d+)", r.stderr).group(1))
    size = os.path.getsize(trace)
    print(f"  full boot + poweroff: {steps} steps, trace {size} bytes, "
          f"{size * 1000 / steps:.2f} bytes per 1000 steps")
    print("  " + next(l for l in r.stderr.splitlines() if l.startswith("ttvm record:")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
