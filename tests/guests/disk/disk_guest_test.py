#!/usr/bin/env python3
"""The raw-disk guest end to end (see CMakeLists.txt in this folder).

1. `ttvm record --disk MASTER --disk SLAVE` (the first disk boots): exit
   status 99 (isa-debug-exit 0x31) and the expected serial output;
2. the images keep their bytes and mtime (the guest wrote a sector), and a
   second recording has the same events and end;
3. the trace holds each sector the guest read from the images once
   (DiskSector events) and no access to the IDE ports (the replay runs the
   controller); with the images moved away, `ttvm verify` and `ttvm replay`
   pass, and only the boot sector is in the trace as an image;
4. QEMU, if installed, boots the same images (copy-on-write: snapshot=on) and
   prints the same serial output with the same exit status (an outside
   oracle for the guest, hence for the controller it drives).
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys

EXPECTED = (
    "boot: loading the kernel from the primary master\r\n"
    "boot: kernel loaded\r\n"
    "kernel: running from 0x8000\r\n"
    "kernel: slave disk: TTFS, 64 sectors (IDENTIFY agrees)\r\n"
    "kernel: directory read on IRQ 14\r\n"
    "kernel: file hello.txt: 41 bytes, hash ok\r\n"
    "Hello from a file on the primary slave.\r\n"
    "kernel: file data.bin: 5000 bytes, hash ok\r\n"
    "kernel: file empty: 0 bytes, hash ok\r\n"
    "kernel: all files ok\r\n"
    "kernel: scratch sector written and read back\r\n"
    "kernel: done\r\n"
)


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def stamp(path):
    st = os.stat(path)
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest(), st.st_size, st.st_mtime_ns


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=240,
                          **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttvm", required=True)
    ap.add_argument("--master", required=True)
    ap.add_argument("--slave", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    master = os.path.join(a.workdir, "master.img")
    slave = os.path.join(a.workdir, "slave.img")
    shutil.copy(a.master, master)
    shutil.copy(a.slave, slave)
    before = {p: stamp(p) for p in (master, slave)}
    trace = os.path.join(a.workdir, "disk.ttvm")

    r = run([a.ttvm, "record", "-o", trace, "--start-clock", "1700000000", "--disk", master,
             "--drive", "file=" + slave + ",format=raw,if=ide,index=1"], stdin=subprocess.DEVNULL)
    out = r.stdout.decode(errors="replace")
    if r.returncode != 99 or out != EXPECTED:
        fail("ttvm record: status %d (want 99)\nstdout:\n%s\nstderr:\n%s" %
             (r.returncode, out, r.stderr.decode(errors="replace")))
    for p, s in before.items():
        if stamp(p) != s:
            fail("%s changed: %r -> %r" % (p, s, stamp(p)))

    # Deterministic: a second recording has the same events and end.
    again = os.path.join(a.workdir, "again.ttvm")
    r2 = run([a.ttvm, "record", "-o", again, "--start-clock", "1700000000", "--disk", master,
              "--disk", slave], stdin=subprocess.DEVNULL)
    if r2.returncode != 99:
        fail("second recording: status %d" % r2.returncode)

    def summary(path):
        lines = run([a.ttvm, "info", path]).stdout.decode().splitlines()
        return [l for l in lines
                if l.startswith(("events", "  Port", "  Interrupt", "  DiskSector", "end "))]
    if summary(trace) != summary(again) or not summary(trace):
        fail("two recordings differ:\n%s\n%s" % (summary(trace), summary(again)))

    info = run([a.ttvm, "info", trace]).stdout.decode()
    if "disk@ide0.0:sectors=17" not in info or "disk@ide0.1:sectors=64" not in info:
        fail("ttvm info does not list the disks:\n" + info)
    if "boot-sector load 0x7c00 entry 0x7c00, 512 bytes" not in info:
        fail("the trace's image is not just the boot sector:\n" + info)
    counts = {}
    for line in info.splitlines():
        f = line.split()
        if line.startswith("  ") and len(f) == 2 and f[1].isdigit():
            counts[f[0]] = int(f[1])
    if "replayed   the whole machine: clock, " not in info:
        fail("the header does not name the whole machine as replayed:\n" + info)
    js = json.loads(run([a.ttvm, "info", "--json", trace]).stdout.decode())
    replayed = js["machine"]["replayedDevices"]
    if replayed[0] != "clock" or "ide0" not in replayed or "ide1" not in replayed:
        fail("ttvm info --json: replayedDevices %r" % replayed)
    # The kernel (16 sectors) and the slave's directory and files: each
    # sector read from an image once. The scratch sector the guest writes and
    # reads back comes from the write overlay, not the image: not logged.
    sectors = counts.get("DiskSector", 0)
    if not 20 <= sectors <= 40:
        fail("expected each sector read once as a DiskSector event, got %d:\n%s" % (sectors, info))
    # No device access is logged: the replay runs the whole machine.
    if counts.get("PortIn", 0) or counts.get("PortOut", 0):
        fail("port accesses in a whole-machine trace:\n" + info)
    print("trace %d bytes, %d events: %d DiskSector (%d bytes of sectors), %d PortIn, %d PortOut"
          % (os.path.getsize(trace), sum(counts.values()), sectors, 512 * sectors,
             counts.get("PortIn", 0), counts.get("PortOut", 0)))

    moved = os.path.join(a.workdir, "moved")
    os.makedirs(moved)
    for p in (master, slave):
        os.rename(p, os.path.join(moved, os.path.basename(p)))
    for sub in ("verify", "replay"):
        v = run([a.ttvm, sub, trace])
        if v.returncode != 0:
            fail("ttvm %s without the images: status %d\n%s%s" %
                 (sub, v.returncode, v.stdout.decode(), v.stderr.decode()))

    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        print("ok (QEMU comparison skipped: qemu-system-x86_64 not installed)")
        return
    m, s = (os.path.join(moved, os.path.basename(p)) for p in (master, slave))
    q = run([qemu, "-accel", "tcg", "-display", "none", "-monitor", "none", "-serial", "stdio",
             "-no-reboot", "-drive", "file=%s,format=raw,if=ide,index=0,snapshot=on" % m,
             "-drive", "file=%s,format=raw,if=ide,index=1,snapshot=on" % s,
             "-device", "isa-debug-exit,iobase=0xf4,iosize=4"], stdin=subprocess.DEVNULL)
    qout = q.stdout.decode(errors="replace")
    if q.returncode != 99 or qout != EXPECTED:
        fail("QEMU disagrees: status %d\n%s" % (q.returncode, qout))
    print("ok (QEMU prints the same)")


if __name__ == "__main__":
    main()
