#!/usr/bin/env python3
"""Linux boot: `ttvm record` against `qemu-system-x86_64 -accel tcg -kernel`,
measured in the same run, and the trace size per 1000 steps.

Both boot the same stock Debian 12 kernel (fetched by
tests/linux/fetch_debian_kernel.sh into the cache) with the same initramfs
and command line, and each is timed from its start until the serial line
"ttvm-init: ready" appears on its console (then stopped): the kernel's boot
and /init's first line, nothing else. Best of --runs alternating runs
(--runs 0 skips this part).

Then two full recordings (the ctest boot commands, poweroff), timed: the
default trace (format 1.3: the replay computes every device answer, the
trace keeps serial input, disk sectors, idle skips and digests) and one with
--log-device-reads (every port/MMIO/TSC/interrupt answer logged, the density
of the traces before 1.3), each verified with `ttvm verify`. For each: steps,
events, compressed event bytes and whole-file bytes per 1000 steps (from
`ttvm info --json`), record wall time, and the ratios between the two.

usage: bench/linux_boot_bench.py [--ttvm build/release/cli/ttvm]
                                 [--flavour cloud|generic] [--runs N]
                                 [--no-verify] [--no-size]
                                 [--peer-ttvm OTHER/ttvm]

--peer-ttvm times another ttvm build (an older commit's) to the same line
in the same alternation, e.g. to compare recording before and after a
change on a loaded machine.
"""
import argparse
import json
import os
import re
import shutil
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
    ap.add_argument("--no-verify", dest="verify", action="store_false")
    ap.add_argument("--peer-ttvm")
    ap.add_argument("--no-size", dest="size", action="store_false",
                    help="skip the two full recordings")
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
    racers = [("ttvm", ttvm), ("qemu", qemu)]
    if a.peer_ttvm:
        racers.append(("peer", [a.peer_ttvm] + ttvm[1:]))
    best = {name: None for name, _ in racers}
    for _ in range(a.runs):
        for name, cmd in racers:
            t = time_to_line(cmd, 900)
            best[name] = t if best[name] is None else min(best[name], t)
    if a.runs > 0:
        print(f"Linux {env['RELEASE']} boot to {LINE.decode()!r}, best of {a.runs}:")
        print(f"  ttvm record (traced)              {best['ttvm']:8.2f} s")
        print(f"  qemu-system-x86_64 -accel tcg     {best['qemu']:8.2f} s")
        print(f"  ratio ttvm / qemu                 {best['ttvm'] / best['qemu']:8.2f}")
        if a.peer_ttvm:
            print(f"  peer {a.peer_ttvm} record      {best['peer']:8.2f} s")
            print(f"  ratio ttvm / peer                 {best['ttvm'] / best['peer']:8.2f}")

    if not a.size:
        shutil.rmtree(work)
        return 0
    # Trace size: the ctest's commands, to the end of the run (poweroff),
    # recorded by default and with every device answer logged.
    cmds = os.path.join(work, "cmds")
    with open(cmds, "w") as f:
        f.write("uname -r\ncat /proc/cpuinfo\npoweroff -f\n")
    full = [c if c != empty else cmds for c in ttvm]
    rows = {}
    for name, extra in (("default", []), ("--log-device-reads", ["--log-device-reads"])):
        start = time.monotonic()
        r = subprocess.run(full + extra, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
        wall = time.monotonic() - start
        steps = int(re.search(r"steps\s+(\d+)", r.stderr).group(1))
        info = json.loads(subprocess.run([a.ttvm, "info", "--json", trace], capture_output=True,
                                         text=True, check=True).stdout)
        verified = "not verified"
        if a.verify:
            v = subprocess.run([a.ttvm, "verify", trace], capture_output=True, text=True)
            verified = "verify ok" if v.returncode == 0 else f"verify FAILED ({v.returncode})"
            if v.returncode != 0:
                print(v.stdout + v.stderr, file=sys.stderr)
        rows[name] = dict(steps=steps, wall=wall, events=info["events"]["total"],
                          eventBytes=info["size"]["compressedEventBytes"],
                          fileBytes=info["size"]["fileBytes"], verified=verified)
        os.remove(trace)
    print("full boot + poweroff, recorded both ways in this run:")
    for name, x in rows.items():
        print(f"  {name:20s} {x['steps']} steps in {x['wall']:7.2f} s wall; {x['events']} events, "
              f"{x['eventBytes']} event bytes ({x['eventBytes'] * 1000 / x['steps']:.3f} per 1000 "
              f"steps), file {x['fileBytes']} bytes ({x['fileBytes'] * 1000 / x['steps']:.2f} per "
              f"1000 steps); {x['verified']}")
    d, l = rows["default"], rows["--log-device-reads"]
    print(f"  ratio --log-device-reads / default: events {l['events'] / d['events']:.0f}x, "
          f"event bytes {l['eventBytes'] / d['eventBytes']:.1f}x, file "
          f"{l['fileBytes'] / d['fileBytes']:.2f}x, record wall time {l['wall'] / d['wall']:.2f}x")
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
