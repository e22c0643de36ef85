#!/usr/bin/env python3
"""`ttvm record` with a terminal as the serial console, driven through a pty.

The guest (rec_console.elf) prints "ready>" and then every byte it receives
as "[hh]". Checks: raw mode while recording (no echo, no canonical mode, no
signal keys) and the terminal restored afterwards; output that arrives
without a newline is seen at once; Ctrl-C reaches the guest; Ctrl-A Ctrl-A
sends one Ctrl-A; Ctrl-A x ends the recording as "interrupted" with a trace
that `ttvm verify` replays; SIGTERM, SIGSEGV, SIGQUIT and SIGTSTP/SIGCONT put the
terminal back too; in the background of its terminal ttvm leaves it alone.
"""
import argparse
import os
import pty
import select
import signal
import sys
import termios
import time


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


class Session:
    def __init__(self, ttvm, guest, trace):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(ttvm, [ttvm, "record", "-o", trace, "--start-clock", "1700000000", guest])
        self.out = b""

    def read_until(self, what, timeout=20.0):
        end = time.time() + timeout
        while what not in self.out:
            left = end - time.time()
            if left <= 0:
                fail("waited for %r; the terminal shows %r" % (what, self.out))
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    fail("terminal closed while waiting for %r; it showed %r" % (what, self.out))
                self.out += chunk

    def lflag(self):
        return termios.tcgetattr(self.fd)[3]

    def expect_raw(self, raw):
        lf = self.lflag()
        for flag, name in ((termios.ECHO, "ECHO"), (termios.ICANON, "ICANON"), (termios.ISIG, "ISIG")):
            if bool(lf & flag) == raw:
                fail("%s is %s where the terminal should be %s" %
                     (name, "on" if lf & flag else "off", "raw" if raw else "restored"))

    def wait(self, timeout=30.0):
        # Drain the terminal so that the child never blocks on output.
        end = time.time() + timeout
        while True:
            if time.time() > end:
                os.kill(self.pid, signal.SIGKILL)
                fail("ttvm did not end within %g s; the terminal shows %r" % (timeout, self.out))
            try:
                r, _, _ = select.select([self.fd], [], [], 0.2)
                if r:
                    chunk = os.read(self.fd, 4096)
                    if not chunk:
                        break
                    self.out += chunk
            except OSError:
                break
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.status = status
                return status
        _, self.status = os.waitpid(self.pid, 0)
        return self.status


def run(cmd):
    import subprocess
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttvm", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    trace = os.path.join(a.workdir, "console.ttvm")

    # Keys, Ctrl-C, Ctrl-A Ctrl-A and Ctrl-A x.
    s = Session(a.ttvm, a.guest, trace)
    s.read_until(b"ready>")
    s.expect_raw(True)
    os.write(s.fd, b"ab")
    # No newline typed and none printed: the guest got the bytes at once
    # (no line buffering) and its output was flushed at once (not per line).
    s.read_until(b"[61][62]")
    os.write(s.fd, b"\r\x03")
    s.read_until(b"[0d][03]")
    os.write(s.fd, b"\x01\x01")
    s.read_until(b"[01]")
    # Ctrl-A h lists the keys; another key after Ctrl-A is dropped.
    os.write(s.fd, b"\x01h")
    s.read_until(b"Ctrl-A Ctrl-A   send Ctrl-A to the guest")
    os.write(s.fd, b"\x01qz")
    s.read_until(b"[7a]")
    if b"[71]" in s.out:
        fail("the key after Ctrl-A reached the guest: %r" % s.out)
    shown = s.out.split(b"ready>", 1)[1]
    if b"ab" in shown:
        fail("typed keys were echoed locally: %r" % shown)
    os.write(s.fd, b"\x01x")
    st = s.wait()
    if not os.WIFEXITED(st) or os.WEXITSTATUS(st) != 130:
        fail("Ctrl-A x: exit status %r, want 130; terminal: %r" % (st, s.out))
    if b"ended from the serial console (Ctrl-A x)" not in s.out:
        fail("Ctrl-A x: no end message; terminal: %r" % s.out)
    s.expect_raw(False)
    info = run([a.ttvm, "info", trace])
    if info.returncode != 0 or "interrupted" not in info.stdout:
        fail("ttvm info after Ctrl-A x: %s" % info.stdout)
    v = run([a.ttvm, "verify", trace])
    if v.returncode != 0:
        fail("ttvm verify after Ctrl-A x: %s" % v.stdout)

    # Signals put the terminal back: SIGTERM (a clean end), SIGTSTP/SIGCONT
    # (restored while stopped, raw again after), SIGSEGV (the crash handler).
    s = Session(a.ttvm, a.guest, trace)
    s.read_until(b"ready>")
    s.expect_raw(True)
    os.kill(s.pid, signal.SIGTSTP)
    deadline = time.time() + 10
    while True:
        pid, st = os.waitpid(s.pid, os.WUNTRACED | os.WNOHANG)
        if pid == s.pid and os.WIFSTOPPED(st):
            break
        if time.time() > deadline:
            fail("SIGTSTP did not stop ttvm")
        time.sleep(0.05)
    s.expect_raw(False)
    os.kill(s.pid, signal.SIGCONT)
    deadline = time.time() + 10
    while s.lflag() & termios.ECHO:
        if time.time() > deadline:
            fail("SIGCONT did not put the terminal back into raw mode")
        time.sleep(0.05)
    os.write(s.fd, b"z")
    s.read_until(b"[7a]")
    os.kill(s.pid, signal.SIGTERM)
    st = s.wait()
    if not os.WIFEXITED(st) or os.WEXITSTATUS(st) != 130:
        fail("SIGTERM: exit status %r, want 130" % st)
    s.expect_raw(False)

    # A crash (SIGSEGV: the crash handler) and a signal ttvm does not handle
    # otherwise (SIGQUIT: its default action, after the terminal is back).
    for sig in (signal.SIGSEGV, signal.SIGQUIT):
        s = Session(a.ttvm, a.guest, trace)
        s.read_until(b"ready>")
        s.expect_raw(True)
        os.kill(s.pid, sig)
        st = s.wait()
        if not os.WIFSIGNALED(st):
            fail("signal %d: status %r, want death by a signal" % (sig, st))
        s.expect_raw(False)
    # In the background of its terminal ttvm leaves the terminal alone
    # (changing it would stop ttvm with SIGTTOU): it runs to its step limit.
    pid, fd = pty.fork()
    if pid == 0:
        child = os.fork()
        if child == 0:
            os.setpgid(0, 0)
            os.execv(a.ttvm, [a.ttvm, "record", "--no-trace", "--max-steps", "200000", a.guest])
        _, st = os.waitpid(child, 0)
        os._exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 125)
    s = Session.__new__(Session)
    s.pid, s.fd, s.out = pid, fd, b""
    st = s.wait()
    if not os.WIFEXITED(st) or os.WEXITSTATUS(st) != 10:
        fail("in the background: status %r, want 10 (step limit); terminal: %r" % (st, s.out))
    if b"ready>" not in s.out or b"serial console is on this terminal" in s.out:
        fail("in the background: terminal shows %r" % s.out)
    print("ok")


if __name__ == "__main__":
    main()
