#!/usr/bin/env python3
"""ctest -L linux: kernel symbols on the Debian 12 crash recording.

linux.cloud_crash records `echo c > /proc/sysrq-trigger` ending on the panic
(OUTDIR/cloud-crash.ttvm, its console in cloud-crash.serial.txt). This test:

1. fetches the kernel's -dbg package into the cache (apt-get download, only
   ./usr/lib/debug/boot/ unpacked by dpkg-deb): the real System.map (the one
   in linux-image-* is a one-line placeholder) and vmlinux with DWARF;
2. `ttvm replay --to end --backtrace --symbols System.map` must name
   sysrq_handle_crash, and every frame of the kernel's own call trace (its
   ORC unwinder's, printed on the console by the panic) from
   sysrq_handle_crash on must appear in ttvm's backtrace, in order, with the
   same offset;
3. stock gdb, with vmlinux loaded (`file`), connected to `ttvm gdbserver`,
   goes to the end and reverse-continues to a breakpoint on
   sysrq_handle_crash, and stops there;
4. `ttvm replay --backtrace --symbols vmlinux` gives the callers gdb names
   there (the same return addresses) the file:line gdb gives them.

The kernel runs with nokaslr (linux_test.sh): the symbol files give link-time
addresses. Exits 77 (skip) when the package archive cannot be reached.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


def fetch_dbg(release, cache):
    """System.map and vmlinux of `release` from linux-image-RELEASE-dbg."""
    dest = os.path.join(cache, release, "dbg")
    smap, vmlinux = os.path.join(dest, "System.map"), os.path.join(dest, "vmlinux")
    if os.path.exists(smap) and os.path.exists(vmlinux):
        return smap, vmlinux
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        skip("apt-get and dpkg-deb are needed to fetch the kernel's -dbg package")
    os.makedirs(cache, exist_ok=True)
    work = tempfile.mkdtemp(dir=cache, prefix=".fetch-dbg.")
    try:
        pkg = f"linux-image-{release}-dbg"
        r = subprocess.run(["apt-get", "download", "-q", pkg], cwd=work, capture_output=True,
                           text=True)
        if r.returncode != 0:
            skip(f"apt-get download {pkg} failed: {r.stderr.strip().splitlines()[-1:]}")
        deb = [f for f in os.listdir(work) if f.endswith(".deb")][0]
        x = os.path.join(work, "x")
        os.makedirs(x)
        # Only the boot directory: the package also holds every module's
        # debug file (1.7 GB unpacked).
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", os.path.join(work, deb)],
                               stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", x, "./usr/lib/debug/boot/"], stdin=tar.stdout,
                       check=True)
        tar.wait()
        boot = os.path.join(x, "usr/lib/debug/boot")
        tmp = dest + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        shutil.move(os.path.join(boot, f"System.map-{release}"), os.path.join(tmp, "System.map"))
        shutil.move(os.path.join(boot, f"vmlinux-{release}"), os.path.join(tmp, "vmlinux"))
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(tmp, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return smap, vmlinux


def kernel_call_trace(serial):
    """The frames of the panic's "Call Trace:" block: ['panic+0x118', ...].

    The kernel's scan lists every kernel-text address it finds on the stack. An
    unreliable ("? ") entry whose offset equals its function's size is printed
    by %pB, which names address-1: the value is the first byte of the next
    function, a function pointer left on the stack (seen: "? n_tty_flush_buffer
    +0xc0/0xc0", which is n_tty_write), never a return address. ttvm's scan
    lists return addresses only, so such entries are left out here."""
    frames, inside = [], False
    for line in serial.splitlines():
        if "Call Trace:" in line:
            inside, frames = True, []
            continue
        if not inside:
            continue
        m = re.search(r"\]\s+(\? )?([\w.]+\+(0x[0-9a-f]+))/(0x[0-9a-f]+)", line)
        if m:
            if not (m.group(1) and m.group(3) == m.group(4)):
                frames.append(m.group(2))
        elif "</TASK>" in line or "RIP:" in line:
            inside = False
    return frames


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("ttvm")
    ap.add_argument("outdir", help="linux.cloud_crash's OUTDIR (cloud-crash.ttvm)")
    args = ap.parse_args()
    trace = os.path.join(args.outdir, "cloud-crash.ttvm")
    serial_path = os.path.join(args.outdir, "cloud-crash.serial.txt")
    if not os.path.exists(trace) or not os.path.exists(serial_path):
        print(f"FAIL: {trace} or {serial_path} missing: run linux.cloud_crash first")
        return 1
    serial = open(serial_path, errors="replace").read()
    m = re.search(r"Linux version (\S+) ", serial)
    if not m:
        print("FAIL: no 'Linux version' line in the crash console")
        return 1
    release = m.group(1)
    cache = os.path.join(os.environ.get("TTVM_CACHE", os.path.expanduser("~/.cache/ttvm")),
                         "linux")
    t0 = time.time()
    smap, vmlinux = fetch_dbg(release, cache)
    print(f"== symbols: {smap}, {vmlinux} ({time.time() - t0:.1f} s)")
    failures = []

    def check(ok, what, detail=""):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)
            if detail:
                print(detail)

    # 2. ttvm's backtrace with the System.map.
    t0 = time.time()
    r = subprocess.run([args.ttvm, "replay", trace, "--to", "end", "--backtrace", "--symbols",
                        smap], capture_output=True, text=True)
    print(f"== ttvm replay --to end --backtrace --symbols System.map: {time.time() - t0:.1f} s")
    print(r.stdout + r.stderr)
    check(r.returncode == 0, "ttvm replay exits 0")
    check("<sysrq_handle_crash+" in r.stdout, "the backtrace names sysrq_handle_crash")
    ours = re.findall(r"^#\d+\s+(?:\? )?0x[0-9a-f]+ <([\w.]+\+0x[0-9a-f]+)>", r.stdout, re.M)
    theirs = kernel_call_trace(serial)
    check(any(f.startswith("sysrq_handle_crash+") for f in theirs),
          "the kernel's own call trace names sysrq_handle_crash", "\n".join(theirs))
    if theirs:
        start = next((i for i, f in enumerate(theirs) if f.startswith("sysrq_handle_crash+")), 0)
        want = theirs[start:]
        it = iter(ours)
        missing = [f for f in want if not any(f == o for o in it)]
        check(not missing,
              f"the kernel's {len(want)} frames from sysrq_handle_crash on are in ttvm's "
              "backtrace, in order, same offsets",
              f"kernel: {want}\nttvm:   {ours}\nmissing or out of order: {missing}")

    # 3. Stock gdb with vmlinux: reverse-continue from the panic.
    server = subprocess.Popen([args.ttvm, "gdbserver", trace, "--port", "0", "--symbols", smap],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not m:
            print(f"FAIL: gdbserver did not say where it listens: {line!r}")
            return 1
        cmds = ["set pagination off", "set confirm off", "set width 0",
                "set remotetimeout 900", f"file {vmlinux}",
                f"target remote 127.0.0.1:{m.group(1)}", "monitor seek end",
                "maintenance flush register-cache", "echo @@@end\\n", "info symbol $pc",
                "monitor backtrace", "break sysrq_handle_crash", "echo @@@reverse\\n",
                "reverse-continue", "info symbol $pc", "monitor when", "bt 3", "detach"]
        t0 = time.time()
        # One stream: monitor output goes to stderr, the markers to stdout.
        g = subprocess.run(["gdb", "-nx", "-batch"] + [a for c in cmds for a in ("-ex", c)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=1500)
        print(f"== gdb (vmlinux, seek end, reverse-continue): {time.time() - t0:.1f} s")
        out = g.stdout
        print(out)
        after = out.split("@@@reverse", 1)[-1]
        check(re.search(r"Breakpoint 1, (0x[0-9a-f]+ in )?sysrq_handle_crash", after) is not None,
              "gdb reverse-continues from the panic to the breakpoint on sysrq_handle_crash")
        check(re.search(r"^sysrq_handle_crash in section \.text", after, re.M) is not None,
              "gdb's pc is sysrq_handle_crash's first instruction")
        check("<sysrq_handle_crash+" in out.split("@@@end", 1)[-1].split("@@@reverse")[0],
              "monitor backtrace (gdbserver --symbols System.map) names sysrq_handle_crash")
    finally:
        server.terminate()
        server.wait(timeout=30)

    # 4. --symbols vmlinux: file:line from its DWARF, as gdb reads them
    # (gdb's `bt 3` at sysrq_handle_crash names its callers' lines).
    gdb_lines = re.findall(r"^#[12]\s+(0x[0-9a-f]+) in \S+ \(.*\) at (\S+:\d+)$", out, re.M)
    check(len(gdb_lines) == 2, "gdb's bt gives two callers with file:line", out)
    t0 = time.time()
    r = subprocess.run([args.ttvm, "replay", trace, "--to", "end", "--backtrace", "--symbols",
                        vmlinux], capture_output=True, text=True)
    print(f"== ttvm replay --to end --backtrace --symbols vmlinux: {time.time() - t0:.1f} s")
    print(r.stdout + r.stderr)
    check(r.returncode == 0, "ttvm replay --symbols vmlinux exits 0")
    for addr, where in gdb_lines:
        check(re.search(rf"^#\d+\s+(\? )?{addr} <[^>]+> at {re.escape(where)}\b", r.stdout,
                        re.M) is not None, f"ttvm gives {addr} the line gdb gives: {where}")
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
