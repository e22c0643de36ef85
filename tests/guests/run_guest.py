#!/usr/bin/env python3
"""Runs one self-checking test guest under QEMU or ttvm and judges the result.

A guest reports on COM1 (see lib/guest.h): "FAIL: <case>: ..." per failed
check, "PASS: <guest>" as its last line when every check held, then exits
through isa-debug-exit (port 0xF4): writing v gives process status (v<<1)|1,
so 1 = pass, 3 = fail (QEMU and `ttvm record` both). A guest that ends by
design in a triple fault prints "TRIPLE-FAULT-NEXT" first; under QEMU
(-no-reboot) the run then ends with status 0 and, with -d cpu_reset, "Triple
fault" in QEMU's log; `ttvm record` exits with status 4.

--known-fail CASE (repeatable) marks a case that the runner is known to get
wrong (QEMU TCG bugs): the run must then fail in exactly those cases; a known
failure that passes is reported so that the list is kept honest.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

PASS_STATUS = 1  # isa-debug-exit: (0 << 1) | 1
FAIL_STATUS = 3  # (1 << 1) | 1


def build_command(args, log_path):
    if args.runner == "qemu":
        cmd = [args.qemu, "-accel", "tcg", "-kernel", args.guest,
               "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
               "-serial", "stdio", "-display", "none", "-no-reboot",
               "-m", "256", "-monitor", "none", "-nodefaults"]
        if args.expect == "triple-fault":
            cmd += ["-d", "cpu_reset", "-D", log_path]
        if args.expect == "panic":
            # pvpanic ends QEMU with status 1 instead of the default shutdown.
            cmd += ["-device", "pvpanic", "-action", "panic=exit-failure"]
        return cmd + args.qemu_arg
    if not args.ttvm:
        sys.exit("run_guest: --runner ttvm needs --ttvm PATH")
    return [args.ttvm, "record", "--no-trace"] + args.ttvm_arg + [args.guest]


def run_with_terminal_input(cmd, args):
    """Runs cmd with a pseudo-terminal as stdin (ttvm reads terminal input only
    from a TTY, so recordings are not fed by accident) and types args.stdin
    once the guest has printed a line containing args.stdin_prompt (input
    sent before the guest's driver is ready may be lost, as on hardware)."""
    import pty
    import threading
    import time
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(slave)
    chunks = {"out": [], "err": []}

    def pump(stream, key):
        for block in iter(lambda: stream.read1(4096), b""):
            chunks[key].append(block)

    threads = [threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + args.timeout
    sent = False
    while proc.poll() is None and time.monotonic() < deadline:
        if not sent and (not args.stdin_prompt or
                         args.stdin_prompt.encode() in b"".join(chunks["out"])):
            os.write(master, args.stdin.encode())
            sent = True
        time.sleep(0.01)
    timed_out = proc.poll() is None
    if timed_out:
        proc.kill()
    proc.wait()
    for t in threads:
        t.join(timeout=5)
    os.close(master)
    status = None if timed_out else proc.returncode
    return status, timed_out, b"".join(chunks["out"]), b"".join(chunks["err"])


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runner", choices=["qemu", "ttvm"], required=True)
    ap.add_argument("--ttvm", help="path of the ttvm executable")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--expect", choices=["pass", "triple-fault", "panic", "reset"], default="pass",
                    help="how the run must end: PASS line + exit 0; a triple fault after "
                         "TRIPLE-FAULT-NEXT; a pvpanic report after PANIC-NEXT; a machine "
                         "reset (keyboard controller, 0xCF9) after RESET-NEXT")
    ap.add_argument("--stdin", metavar="TEXT",
                    help="bytes typed on the guest's serial input through a pseudo-terminal "
                         "(the runner's stdin); backslash escapes such as \\n are decoded")
    ap.add_argument("--stdin-prompt", metavar="TEXT", default="",
                    help="with --stdin: type the input once the serial output contains TEXT")
    ap.add_argument("--ttvm-arg", action="append", default=[], metavar="ARG",
                    help="extra `ttvm record` argument (repeatable), e.g. --ttvm-arg=--mode "
                         "--ttvm-arg=real for a flat binary")
    ap.add_argument("--qemu-arg", action="append", default=[], metavar="ARG",
                    help="extra QEMU argument (repeatable), e.g. devices a guest needs: "
                         "--qemu-arg=-device --qemu-arg=pc-testdev")
    ap.add_argument("--expect-status", type=int,
                    help="process exit status expected (default: 1 for a passing guest, "
                         "0 for a QEMU triple fault)")
    ap.add_argument("--known-fail", action="append", default=[], metavar="CASE")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("guest")
    args = ap.parse_args()

    if args.stdin is not None:
        args.stdin = args.stdin.encode().decode("unicode_escape")
    if not os.path.isfile(args.guest):
        sys.exit(f"run_guest: guest file not found: {args.guest}")

    with tempfile.TemporaryDirectory(prefix="ttvm-guest-") as tmp:
        log_path = os.path.join(tmp, "qemu.log")
        cmd = build_command(args, log_path)
        if args.stdin is not None:
            status, timed_out, out, err = run_with_terminal_input(cmd, args)
        else:
            try:
                proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                      timeout=args.timeout)
                status, timed_out = proc.returncode, False
                out, err = proc.stdout, proc.stderr
            except subprocess.TimeoutExpired as e:
                status, timed_out = None, True
                out, err = e.stdout or b"", e.stderr or b""
        qemu_log = ""
        if os.path.exists(log_path):
            with open(log_path, errors="replace") as f:
                qemu_log = f.read()

    serial = out.decode("utf-8", errors="replace").replace("\r", "")
    stderr = err.decode("utf-8", errors="replace")
    lines = [l for l in serial.split("\n") if l.strip()]
    problems = []

    if timed_out:
        problems.append(f"timed out after {args.timeout:g} s")

    fail_lines = [l for l in lines if l.startswith("FAIL")]
    last = lines[-1] if lines else ""

    if args.expect == "triple-fault":
        # QEMU -no-reboot exits 0; `ttvm record` exits 4 on a triple fault.
        want = args.expect_status if args.expect_status is not None else (
            0 if args.runner == "qemu" else 4)
        if not timed_out and status != want:
            problems.append(f"exit status {status}, expected {want} (end by triple fault)")
        if last != "TRIPLE-FAULT-NEXT":
            problems.append(f"last serial line is {last!r}, expected 'TRIPLE-FAULT-NEXT'")
        if args.runner == "qemu" and "Triple fault" not in qemu_log:
            problems.append("QEMU's log (-d cpu_reset) does not report 'Triple fault'")
        if fail_lines:
            problems.append(f"{len(fail_lines)} FAIL line(s)")
    elif args.expect in ("panic", "reset"):
        marker = "PANIC-NEXT" if args.expect == "panic" else "RESET-NEXT"
        # QEMU: pvpanic with panic=exit-failure exits 1; a reset with -no-reboot exits 0.
        # ttvm record (see its --help): 6 panic, 2 reset.
        if args.runner == "qemu":
            default = 1 if args.expect == "panic" else 0
        else:
            default = 6 if args.expect == "panic" else 2
        want = args.expect_status if args.expect_status is not None else default
        if not timed_out and want is not None and status != want:
            problems.append(f"exit status {status}, expected {want} (end by {args.expect})")
        if last != marker:
            problems.append(f"last serial line is {last!r}, expected {marker!r}")
        pattern = r"panic" if args.expect == "panic" else r"reset|reboot"
        if args.runner == "ttvm" and not re.search(pattern, stderr, re.I):
            problems.append(f"ttvm did not report a {args.expect} on stderr")
        if fail_lines:
            problems.append(f"{len(fail_lines)} FAIL line(s)")
    elif args.known_fail:
        known = set(args.known_fail)
        failed_cases = set()
        for l in fail_lines:
            m = re.match(r"FAIL: ([^:]+):", l)
            case = m.group(1) if m else None
            if case in known:
                failed_cases.add(case)
            elif not re.match(r"FAIL: [^:]+: \d+ check\(s\) failed$", l):
                problems.append(f"unexpected failure: {l}")
        for case in sorted(known - failed_cases):
            problems.append(f"case {case!r} is listed as a known {args.runner} failure "
                            "but passed (or did not run): update the list")
        want = args.expect_status if args.expect_status is not None else FAIL_STATUS
        if not timed_out and status != want:
            problems.append(f"exit status {status}, expected {want}")
    else:
        want = args.expect_status if args.expect_status is not None else PASS_STATUS
        if not timed_out and status != want:
            problems.append(f"exit status {status}, expected {want}")
        if fail_lines:
            problems.append(f"{len(fail_lines)} FAIL line(s)")
        if not last.startswith("PASS"):
            problems.append(f"last serial line is {last!r}, expected a PASS line")

    name = os.path.basename(args.guest)
    if problems:
        print(f"run_guest: {name} under {args.runner}: FAILED")
        for p in problems:
            print(f"  - {p}")
        print("command: " + " ".join(cmd))
        print("---- serial output ----")
        print(serial, end="" if serial.endswith("\n") else "\n")
        if stderr.strip():
            print("---- stderr ----")
            print(stderr[-4000:])
        if qemu_log and args.expect == "triple-fault":
            print("---- qemu log (tail) ----")
            print(qemu_log[-2000:])
        return 1
    note = f" (known failures: {', '.join(sorted(args.known_fail))})" if args.known_fail else ""
    print(f"run_guest: {name} under {args.runner}: ok{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
