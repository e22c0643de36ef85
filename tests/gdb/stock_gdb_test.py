#!/usr/bin/env python3
"""Stock gdb against `ttvm gdbserver` on a recording of the demo guest.

Records guests/demo with `ttvm record`, serves the trace with
`ttvm gdbserver --port 0`, runs `gdb -batch -nx` with a command file and
checks what gdb printed, section by section: breakpoints, stepi and
reverse-stepi, reverse-continue to a breakpoint, a watchpoint with
reverse-continue to the last write (the corrupting store in key_dup),
info registers (with cr3), x/8i $pc, the ends of history, monitor commands
and refused writes. gdbserver replays on its default engine (the fast one);
--engine reference|fast names one.
Exit status 0 = every check passed.
"""
import argparse
import os
import re
import subprocess
import sys
import time

from rsp_client import packet, recv_until

failures = []


def check(cond, what, context=""):
    if cond:
        print(f"ok: {what}")
    else:
        failures.append(what)
        print(f"FAIL: {what}")
        if context:
            print("  --- context ---\n  " + context.replace("\n", "\n  "))


def symbol_table(elf):
    out = subprocess.run(["nm", elf], check=True, capture_output=True, text=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            syms[parts[2]] = int(parts[0], 16)
    return syms

def record_step_limit(args, trace, steps, timeout, extra=()):
    """Records args.guest up to `steps` steps; False (and says why) unless
    ttvm exits with 10, the step-limit status."""
    rec = subprocess.run([args.ttvm, "record", "-o", trace, "--max-steps", str(steps), *extra,
                          args.guest], capture_output=True, text=True, timeout=timeout)
    if rec.returncode != 10:
        print(f"ttvm record: expected exit status 10 (step limit), got {rec.returncode}\n"
              f"{rec.stdout[-2000:]}\n{rec.stderr[-2000:]}")
        return False
    return True


def start_server(args, trace, extra=()):
    server = subprocess.Popen([args.ttvm, "gdbserver", trace, "--port", "0", *extra],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not m:
        server.kill()
        raise RuntimeError(f"gdbserver did not say where it listens: {line!r}")
    return server, int(m.group(1))


def run_clients(args):
    """Two clients at once. Without --multi, stock gdb connecting while a raw
    client holds the server is refused at once and prints why; the first
    client is still served. With --multi, gdb waits and is served as soon as
    the first client disconnects."""
    import socket
    import threading
    trace = os.path.join(args.workdir, "clients.ttvm")
    if not record_step_limit(args, trace, 100000, 120):
        return 1

    def recv_exact(sock, n):
        data = b""
        sock.settimeout(10)
        while len(data) < n:
            more = sock.recv(n - len(data))
            if not more:
                break
            data += more
        return data

    for multi in (False, True):
        what = "--multi" if multi else "default"
        server, port = start_server(args, trace, ["--multi"] if multi else [])
        try:
            hold = socket.create_connection(("127.0.0.1", port))
            hold.sendall(b"+$qC#b4")
            check(recv_exact(hold, 8) == b"+$QC1#c5", f"{what}: the first client is served")
            release = None
            if multi:
                # The first client moves the replay; the next one must
                # start at the end of the recording anyway.
                hold.sendall(b"+" + packet("qRcmd," + "seek 100".encode().hex()))
                seek_reply = recv_until(hold, b"$OK#9a")
                check(b"$OK#9a" in seek_reply, "--multi: the first client seeks to step 100",
                      repr(seek_reply[-300:]))

                def let_go():
                    hold.sendall(b"+$D#44")
                    recv_exact(hold, 7)
                    hold.close()
                release = threading.Timer(2.0, let_go)
                release.start()
            t0 = time.time()
            g = subprocess.run([args.gdb, "-batch", "-nx", "-ex", "set remotetimeout 30",
                                "-ex", f"target remote 127.0.0.1:{port}",
                                "-ex", "monitor when", "-ex", "detach"],
                               capture_output=True, text=True, timeout=120)
            elapsed = time.time() - t0
            out = g.stdout + g.stderr
            if not multi:
                check("another gdb is connected" in out and "--multi" in out,
                      "default: a second gdb is told why it is refused", out[-2000:])
                check(elapsed < 10, f"default: the refusal comes at once ({elapsed:.1f} s)")
                hold.sendall(b"+$qC#b4")
                check(recv_exact(hold, 8) == b"+$QC1#c5",
                      "default: the first client is still served after the refusal")
                hold.sendall(b"+$D#44")
                recv_exact(hold, 7)
                hold.close()
            else:
                release.join()
                check(re.search(r"step \d+", out) is not None and
                      "another gdb is connected" not in out,
                      "--multi: the second gdb is served once the first disconnects", out[-2000:])
                check(elapsed >= 1.5, f"--multi: it waited for its turn ({elapsed:.1f} s)")
                steps = re.findall(r"^step (\d+) \(history 0\.\.(\d+)\)", out, re.M)
                check(len(steps) == 1 and steps[0][0] == steps[0][1] and int(steps[0][0]) > 100,
                      "--multi: the second gdb starts at the end of the recording, not where "
                      "the first left off", out[-2000:])
                server.terminate()
                server.wait(timeout=20)
                log = server.stdout.read()  # not communicate(): readline() buffered some
                starts = re.findall(r"gdb connected; it starts at step (\d+) \(the end of the "
                                    r"recording\), rip 0x[0-9a-f]+", log)
                check(len(starts) == 2 and starts[0] == starts[1] == steps[0][1] if steps else False,
                      "--multi: the log says where each connection starts", log[-2000:])
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


def split_sections(stdout):
    """gdb's stdout cut at the '@@@NAME' lines echoed between sections."""
    out, current = {}, "preamble"
    for line in stdout.splitlines():
        m = re.match(r"@@@(\S+)$", line)
        if m:
            current = m.group(1)
            continue
        out.setdefault(current, []).append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def run_gdb_sections(args, port, sections, extra=(), name="session"):
    """Runs stock gdb on the demo ELF against 127.0.0.1:PORT, each command
    through Python (output captured as a string, errors as 'ERROR: ...'),
    and returns {section: output}."""
    cmds = ["set pagination off", "set confirm off", "set width 0", *extra,
            f"file {args.guest}.elf", f"target remote 127.0.0.1:{port}",
            "python", "def ttvm_try(cmd):", "    try:",
            "        print(gdb.execute(cmd, to_string=True), end='')",
            "    except gdb.error as e:", "        print('ERROR: %s' % e)", "end"]
    for section_name, commands in sections:
        cmds.append(f"echo @@@{section_name}\\n")
        cmds.extend(f"python ttvm_try({c!r})" for c in commands)
    cmds += ["echo @@@end\\n", "detach"]
    cmdfile = os.path.join(args.workdir, f"{name}.gdb")
    with open(cmdfile, "w") as f:
        f.write("\n".join(cmds) + "\n")
    g = subprocess.run([args.gdb, "-batch", "-nx", "-x", cmdfile], capture_output=True,
                       text=True, timeout=300)
    with open(os.path.join(args.workdir, f"{name}.log"), "w") as f:
        f.write(g.stdout + "\n---- stderr ----\n" + g.stderr)
    check(g.returncode == 0, f"{name}: gdb exit status 0 (got {g.returncode})", g.stderr[-2000:])
    return split_sections(g.stdout)


def run_helper(args):
    """scripts/ttvm-gdb.py in stock gdb (-x): `ttvm` commands that move and
    flush gdb's caches themselves, a plain `monitor seek` flushed by its
    hook, and `info registers system` from the description's groups. The
    oracle for "flushed": a second gdb, without the helper, connected to a
    server that starts at the same step, sees the same registers, stack
    memory and backtrace."""
    trace = os.path.join(args.workdir, "demo.ttvm")
    rec = subprocess.run([args.ttvm, "record", "-o", trace, args.guest],
                         capture_output=True, text=True, timeout=300)
    if rec.returncode != 6:
        print(f"ttvm record: expected exit status 6 (panic), got {rec.returncode}")
        return 1
    helper = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                          "ttvm-gdb.py")
    state = ["info registers rip rsp rbp", "x/4gx $rsp", "bt"]
    server, port = start_server(args, trace)
    try:
        s = run_gdb_sections(args, port, [
            ("when", ["ttvm when"]),
            ("system", ["info registers system"]),
            ("plain", ["info registers rip", "info registers"]),
            ("last-write", ["ttvm last-write *(long *)((char *)&arena + 0x2fa8)",
                            "info symbol $pc"]),
            ("seek", ["x/4gx $rsp", "ttvm seek 3000000"]),
            ("state", state),
            ("monitor", ["monitor seek 1000", "info registers rip"]),
            ("errors", ["ttvm last-write nosuch", "ttvm seek 99999999999", "ttvm when"]),
            # docs/gdb.md's walkthrough from the end, and why watch and
            # last-write name different steps.
            ("watch", ["ttvm seek end", "watch -l *(long *)0x111208", "reverse-continue",
                       "ttvm when", "delete"]),
            ("store", ["ttvm seek end", "ttvm last-write 0x111208:8", "x/8xb 0x111208",
                       "stepi", "x/8xb 0x111208"]),
        ], extra=[f"source {helper}"], name="helper")
    finally:
        server.terminate()
        server.wait(timeout=20)
    server, port = start_server(args, trace, ["--start", "3000000"])
    try:
        fresh = run_gdb_sections(args, port, [("state", state)], name="fresh")
    finally:
        server.terminate()
        server.wait(timeout=20)
    get = lambda k: s.get(k, "")
    m = re.search(r"^step (\d+) \(history 0\.\.(\d+)\)", get("when"), re.M)
    check(m and m.group(1) == m.group(2), "ttvm when: at the end of the recording", get("when"))
    check(m and f"ttvm: this connection starts at step {m.group(1)} (history 0..{m.group(1)})"
          in get("preamble"), "the helper says where the connection starts", get("preamble"))
    sysregs = get("system")
    for reg in ("cr0", "cr2", "cr3", "cr4", "cr8", "efer", "fs_base", "gs_base", "cs_base",
                "ss_base", "ds_base", "es_base"):
        check(re.search(rf"^{reg}\s+0x[0-9a-f]+", sysregs, re.M),
              f"info registers system: {reg}", sysregs)
    check(not re.search(r"^(rax|rip|xmm0)\s", sysregs, re.M),
          "info registers system: only the system group", sysregs)
    m = re.search(r"^cr2\s+0x([0-9a-f]+)", sysregs, re.M)
    check(m and int(m.group(1), 16) == 0x70756B6F6F6C,
          "info registers system: cr2 is the faulting address (\"lookup\")", sysregs)
    plain = get("plain")
    check(re.search(r"^rip\s+0x1007d2\s", plain, re.M) and re.search(r"^rax\s", plain, re.M)
          and re.search(r"^eflags\s", plain, re.M),
          "info registers with and without arguments still gdb's", plain)
    lw = get("last-write")
    check("last write to [0x111208, 0x111210) before step" in lw and
          re.search(r"#0 .* in key_dup \(", lw) and re.search(r"^key_dup \+ 84 in section", lw, re.M),
          "ttvm last-write EXPR: moved to the store in key_dup, gdb's pc follows", lw)
    check(re.search(r"^now at step 3000000, rip 0x100dad <table_find\+0x7d>", get("seek"), re.M)
          and re.search(r"^#0  str_eq \(.*workload\.c:53$", get("seek"), re.M),
          "ttvm seek: moves and shows the new frame", get("seek"))
    check(get("state") == fresh.get("state") and "table_find" in get("state"),
          "after ttvm seek: registers, stack memory and bt as a fresh gdb sees them there",
          "helper:\n" + get("state") + "\nfresh:\n" + fresh.get("state", ""))
    check(re.search(r"^rip\s+0x100023\s+0x100023 <_start\+23>", get("monitor"), re.M),
          "a plain monitor seek is flushed by the hook", get("monitor"))
    e = get("errors")
    check(re.search(r"ERROR: ttvm last-write: No symbol \"nosuch\"", e) and
          re.search(r"ERROR: ttvm seek failed", e) and re.search(r"^step 1000 \(history", e, re.M),
          "ttvm errors are gdb errors, and a failed seek does not move", e)
    w, st = get("watch"), get("store")
    wstep = re.findall(r"^step (\d+) \(history", w, re.M)
    lstep = re.search(r"before step \d+: step (\d+), rip 0x100f04 <key_dup\+0x54>", st)
    check(re.search(r"Old value = \d+\nNew value = \d+", w) and
          re.search(r" in key_dup \(.*workload\.c:64", w) and wstep and lstep and
          int(wstep[0]) < int(lstep.group(1)),
          "walkthrough: watch -l + reverse-continue from the end stops in key_dup, before the "
          "last store that last-write names", w + "\n" + st)
    rows = re.findall(r"^0x111208 <arena\+12200>:((?:\s+0x[0-9a-f]{2}){8})$", st, re.M)
    check(len(rows) == 2 and rows[0] == rows[1],
          "the last store to the field left its value as it was (why watch skips it)", st)
    if failures:
        print(f"\n{len(failures)} check(s) failed; logs in {args.workdir}")
        return 1
    print("\nall checks passed")
    return 0


def run_i386(args):
    """A 32-bit protected-mode guest: gdb picks i386 from the description."""
    trace = os.path.join(args.workdir, "loop.ttvm")
    # Long enough that a Ctrl-C 0.3 s into continue / reverse-continue always
    # lands while the stub is running: 2e9 steps, ~1.6 s to run through on
    # the fast engine (gdbserver's default), which compiles this loop (1.1e9
    # steps/s at load ~9); recorded on the fast engine too (1.8 s; 15-20 s
    # on the reference).
    limit = 2000000000
    if not record_step_limit(args, trace, limit, 300, ["--engine", "fast"]):
        return 1
    server, port = start_server(args, trace, ["--start", "begin"])
    cmds = ["set pagination off", "set confirm off", f"target remote 127.0.0.1:{port}",
            f"file {args.guest}", "show architecture", "info registers eip cr0 fs_base",
            "break _start.spin", "continue", "stepi", "stepi", "info registers ecx",
            "reverse-stepi", "info registers ecx", "x/2i $pc", "delete", "continue",
            "info registers ecx", "reverse-continue", "info registers eip",
            # Ctrl-C (gdb sends 0x03) during `c` and during `bc`.
            "python", "import os, signal, threading, time", "def ttvm_interrupt(cmd):",
            "    t = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))",
            "    start = time.time()", "    t.start()", "    try:", "        gdb.execute(cmd)",
            "    except gdb.error as e:", "        print('ERROR: %s' % e)",
            "    print('ELAPSED %.3f' % (time.time() - start))", "    t.join()",
            "def ttvm_when():", "    print(gdb.execute('monitor when', to_string=True), end='')",
            "end", "break *0x1", "python ttvm_interrupt('continue')", "python ttvm_when()",
            "python gdb.execute('monitor seek end', to_string=True)",
            "maintenance flush register-cache", "python ttvm_interrupt('reverse-continue')",
            "python ttvm_when()", "delete", "detach"]
    cmdfile = os.path.join(args.workdir, "commands_i386.gdb")
    with open(cmdfile, "w") as f:
        f.write("\n".join(cmds) + "\n")
    g = subprocess.run([args.gdb, "-batch", "-nx", "-x", cmdfile], capture_output=True,
                       text=True, timeout=300)
    out = g.stdout
    with open(os.path.join(args.workdir, "gdb_i386.log"), "w") as f:
        f.write(out + g.stderr)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        failures.append("gdbserver did not exit after detach")
    check('currently "i386"' in out, "i386: gdb chose i386 from the target description", out)
    check(re.search(r"^eip\s+0x10002e\s+0x10002e <_start>", out, re.M), "i386: eip at _start",
          out)
    check(re.search(r"^cr0\s+0x11\b", out, re.M), "i386: cr0 = PE|ET", out)
    check(re.search(r"^fs_base\s+0x0", out, re.M), "i386: fs_base", out)
    check(out.count("Breakpoint 1, 0x00100030 in _start.spin ()") == 2,
          "i386: breakpoint hit on continue and again after two stepi", out)
    ecx = re.findall(r"^ecx\s+0x([0-9a-f]+)", out, re.M)
    check(len(ecx) == 3 and ecx[0] == "1" and ecx[1] == "1" and int(ecx[2], 16) > 0x100,
          "i386: ecx after stepi, reverse-stepi and at the end", out)
    check(re.search(r"=> 0x100031 <_start\.spin\+1>:\s+jmp\s+0x100030 <_start\.spin>", out),
          "i386: x/2i decodes 32-bit code at the reverse-stepped pc", out)
    check(out.count("No more reverse-execution history.") == 2, "i386: both ends of history",
          out)
    check(re.search(r"^eip\s+0x10002e", out.split("No more reverse-execution history.")[-1],
                    re.M), "i386: reverse-continue back to the first instruction", out)
    it = out.split("No more reverse-execution history.")[-1]
    elapsed = [float(x) for x in re.findall(r"ELAPSED (\d+\.\d+)", it)]
    check(it.count("Program received signal SIGINT") == 2 and len(elapsed) == 2 and
          max(elapsed) < 1.5, "i386: Ctrl-C interrupts continue and reverse-continue", it)
    steps = [int(x) for x in re.findall(r"^step (\d+) \(history", it, re.M)]
    check(len(steps) == 2 and 0 < steps[0] < limit and 0 < steps[1] <= limit,
          "i386: interrupted motions stop at valid positions inside history", it)
    check(g.returncode == 0 and server.returncode == 0, "i386: gdb and gdbserver exit 0",
          g.stderr[-2000:])
    if failures:
        print(f"\n{len(failures)} check(s) failed\n---- gdb ----\n{out}\n{g.stderr[-3000:]}")
        return 1
    print("\nall checks passed")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttvm", required=True)
    ap.add_argument("--gdb", required=True)
    ap.add_argument("--guest", required=True,
                    help="demo.elf (demo.elf.elf next to it), or rec_loop.elf for --scenario i386")
    ap.add_argument("--scenario", choices=("demo", "i386", "clients", "helper"), default="demo")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--engine", choices=("reference", "fast"), default=None,
                    help="the engine gdbserver replays on (demo scenario; default: its own)")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    if args.scenario == "i386":
        return run_i386(args)
    if args.scenario == "clients":
        return run_clients(args)
    if args.scenario == "helper":
        return run_helper(args)
    trace = os.path.join(args.workdir, "demo.ttvm")
    symbols_elf = args.guest + ".elf"
    if not os.path.exists(symbols_elf):
        symbols_elf = args.guest

    rec = subprocess.run([args.ttvm, "record", "-o", trace, args.guest],
                         capture_output=True, text=True, timeout=300)
    if rec.returncode != 6:
        print(f"ttvm record: expected exit status 6 (panic), got {rec.returncode}\n"
              f"{rec.stdout[-2000:]}\n{rec.stderr[-2000:]}")
        return 1

    syms = symbol_table(symbols_elf)
    for s in ("arena", "key_dup", "table_find", "table_insert"):
        if s not in syms:
            print(f"symbol {s} missing from {symbols_elf}")
            return 1
    field = syms["arena"] + 0x2FA8  # Y->next, see guests/demo/README.md

    engine = ["--engine", args.engine] if args.engine else []
    server = subprocess.Popen([args.ttvm, "gdbserver", trace, "--port", "0", "--start", "begin"]
                              + engine,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not m:
            print(f"gdbserver did not say where it listens: {line!r} {server.stderr.read()}")
            return 1
        port = int(m.group(1))
        mark = iter(range(1000))
        sections = []

        def section(name, *commands):
            sections.append((name, commands))

        section("connect", "monitor when", "info registers rip")
        section("break", "break table_find", "continue", "monitor when")
        section("stepi", "stepi", "monitor when", "x/i $pc")
        section("reverse-stepi", "reverse-stepi", "monitor when", "info symbol $pc")
        section("continue2", "continue", "monitor when")
        section("reverse-continue-bp", "reverse-continue", "monitor when")
        section("to-end", "delete", "continue", "monitor when")
        section("crash-bt", "bt")
        section("watch", f"watch *(long*){field:#x}", "reverse-continue", "monitor when",
                "info symbol $pc", "bt")
        section("info-registers", "info registers", "info registers cr3 cr0 efer fs_base")
        section("x8i", "x/8i $pc")
        section("refused", f"set var *(char*){field:#x} = 1", "set var $rax = 1",
                "info registers rax")
        section("last-write", "delete", "monitor seek end", "monitor last-write arena+0x2fa8:8",
                "maintenance flush register-cache", "info symbol $pc")
        section("exception", "monitor seek end", "monitor prev-event exception",
                "maintenance flush register-cache", "info symbol $pc")
        section("history-begin", "reverse-continue", "monitor when", "reverse-stepi")
        section("detach", "detach")

        cmds = ["set pagination off", "set confirm off", "set width 0", "set remotetimeout 120",
                "set architecture i386:x86-64", f"target remote 127.0.0.1:{port}",
                f"file {symbols_elf}"]
        # An error ends a gdb command file: run each command through Python so
        # that one failed check does not hide the rest.
        # Monitor output (O packets) goes to gdb's stderr; capture it as a
        # string so it lands in the section's stdout.
        # "@interrupt CMD": a SIGINT to gdb 0.1 s into CMD (gdb sends 0x03).
        cmds += ["python", "import os, signal, threading, time", "def ttvm_try(cmd):", "    try:",
                 "        if cmd.startswith('@interrupt '):",
                 "            t = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT))",
                 "            start = time.time()",
                 "            t.start()",
                 "            gdb.execute(cmd[11:])",
                 "            print('ELAPSED %.3f' % (time.time() - start))",
                 "            t.join()",
                 "        elif cmd.startswith('monitor'):",
                 "            print(gdb.execute(cmd, to_string=True), end='')",
                 "        else:",
                 "            gdb.execute(cmd)",
                 "    except gdb.error as e:", "        print('ERROR: %s' % e)", "end"]
        for name, commands in sections:
            cmds.append(f"echo @@@{name}\\n")
            cmds.extend(f"python ttvm_try({c!r})" for c in commands)
        cmdfile = os.path.join(args.workdir, "commands.gdb")
        with open(cmdfile, "w") as f:
            f.write("\n".join(cmds) + "\n")
        t0 = time.time()
        g = subprocess.run([args.gdb, "-batch", "-nx", "-x", cmdfile], capture_output=True,
                           text=True, timeout=500)
        print(f"gdb ran {time.time() - t0:.1f} s, exit status {g.returncode}")
        output = g.stdout + g.stderr
        with open(os.path.join(args.workdir, "gdb.log"), "w") as f:
            f.write(output)
    finally:
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            failures.append("gdbserver did not exit after detach")
    # gdb writes errors to stderr; keep its stdout order for sections.
    s = split_sections(g.stdout)
    err = g.stderr
    get = lambda k: s.get(k, "")
    when = lambda text: [int(x) for x in re.findall(r"^step (\d+) \(history", text, re.M)]

    check(when(get("connect")) == [0], "connect: at step 0", get("connect"))
    check(re.search(r"^rip\s+0x[0-9a-f]+", get("connect"), re.M), "connect: rip readable",
          get("connect"))

    b = get("break")
    check(re.search(r"Breakpoint 1 at 0x[0-9a-f]+: file .*workload\.c", b),
          "break table_find: gdb resolved the symbol", b)
    check(re.search(r"Breakpoint 1, (0x[0-9a-f]+ in )?table_find \(", b),
          "continue: stopped at table_find", b)
    a = when(b)
    check(len(a) == 1 and a[0] > 0, "continue: monitor when after the breakpoint", b)
    a = a[0] if a else -1

    st = get("stepi")
    check(when(st) == [a + 1], "stepi: one step forward", st)
    check(re.search(r"=> 0x[0-9a-f]+ <table_find\+\d+>", st), "stepi: still in table_find", st)

    rs = get("reverse-stepi")
    check(when(rs) == [a], "reverse-stepi: back one step", rs)
    check(re.search(r"table_find in section", rs), "reverse-stepi: pc at table_find", rs)

    c2 = get("continue2")
    bpos = when(c2)
    check(re.search(r"Breakpoint 1, (0x[0-9a-f]+ in )?table_find \(", c2) and bpos and
          bpos[0] > a, "continue: the second table_find hit is later", c2)

    rc = get("reverse-continue-bp")
    check(re.search(r"Breakpoint 1, (0x[0-9a-f]+ in )?table_find \(", rc) and when(rc) == [a],
          "reverse-continue: back at the first hit", rc)

    te = get("to-end")
    check("No more reverse-execution history." in te, "continue to the end of history", te)
    end = when(te)
    check(len(end) == 1 and end[0] > 6_000_000, "at the end of the recording", te)

    def frames(text):
        return [l for l in text.splitlines() if re.match(r"^#\d+ ", l)]

    def ends_cleanly(text):
        f = frames(text)
        return f and "in long_mode_entry ()" in f[-1] and not any("?? ()" in l for l in f)

    # The demo's unwind table (guests/demo/boot.asm) takes gdb through the
    # #PF's interrupt frame to the faulting instruction, and ends the
    # stack at long_mode_entry.
    cb = frames(get("crash-bt"))
    names = [re.sub(r"^#\d+\s+(0x[0-9a-f]+ in )?", "", l).split(" (")[0] for l in cb]
    check(names[:1] == ["outb"] and "panic" in names and "interrupt_dispatch" in names and
          names[names.index("interrupt_dispatch") + 1:] ==
          ["<signal handler called>", "table_find", "verify_keys", "workload_run", "kmain",
           "long_mode_entry"] if "interrupt_dispatch" in names else False,
          "bt at the crash: through the exception to table_find, ending at long_mode_entry",
          get("crash-bt"))
    check(ends_cleanly(get("crash-bt")), "bt at the crash: no junk frames", get("crash-bt"))
    w = get("watch")
    check(ends_cleanly(w), "bt at the corrupting store ends at long_mode_entry", w)
    check(re.search(r"Hardware watchpoint 2: \*\(long\s*\*\)", w), "watch: hardware watchpoint",
          w)
    check(re.search(r"Old value = ", w) and re.search(r"New value = ", w),
          "reverse-continue: watchpoint reported a value change", w)
    check(re.search(r"key_dup \+ \d+ in section", w), "reverse-continue: stopped in key_dup", w)
    check(re.search(r"#1 .*table_insert", w), "backtrace: key_dup called by table_insert", w)
    wstep = when(w)
    check(len(wstep) == 1 and 0 < wstep[0] < end[0] if end else False,
          "watch: stopped before the end", w)

    ir = get("info-registers")
    for reg in ("rax", "rbx", "rsp", "rip", "eflags", "cs", "fs_base", "gs_base"):
        check(re.search(rf"^{reg}\s+0x[0-9a-f]+", ir, re.M), f"info registers: {reg}", ir)
    check(re.search(r"^rip\s+0x[0-9a-f]+\s+0x[0-9a-f]+ <key_dup\+\d+>", ir, re.M),
          "info registers: rip in key_dup", ir)
    m = re.search(r"^cr3\s+0x([0-9a-f]+)", ir, re.M)
    check(m and int(m.group(1), 16) != 0, "info registers cr3: paging root", ir)
    m = re.search(r"^cr0\s+0x([0-9a-f]+)", ir, re.M)
    check(m and int(m.group(1), 16) & 0x80000001 == 0x80000001, "cr0: PE and PG set", ir)
    m = re.search(r"^efer\s+0x([0-9a-f]+)", ir, re.M)
    check(m and int(m.group(1), 16) & 0x500 == 0x500, "efer: LME and LMA set", ir)

    x = get("x8i")
    lines = [l for l in x.splitlines() if re.match(r"^(=>)?\s+0x[0-9a-f]+ <", l)]
    check(len(lines) == 8, "x/8i $pc: eight instructions", x)
    check(lines and re.match(r"^=> 0x[0-9a-f]+ <key_dup\+\d+>:\s+mov\s+%dl,\(%r\w+,%r\w+(,1)?\)",
                             lines[0]), "x/8i: the byte store of key_dup at $pc", x)

    rf = get("refused")
    check(re.search(r"ERROR: Cannot access memory at address", rf), "memory writes refused", rf)
    # gdb 13 prints the E. text of a refused P; for M/X it drops it (above).
    check(re.search(r"ERROR: Could not write register \"rax\"; remote failure reply "
                    r"'E\.ttvm: the recorded history is read-only; a replay cannot write registers",
                    rf), "register writes refused: gdb says the history is read-only", rf)
    check(re.search(r"^rax\s+0x[0-9a-f]+", rf, re.M), "registers still readable", rf)

    lw = get("last-write")
    m = re.search(rf"last write to \[{field:#x}, {field + 8:#x}\) before step (\d+): step (\d+), "
                  r"rip 0x[0-9a-f]+ <key_dup\+0x[0-9a-f]+>", lw)
    check(m is not None, "monitor last-write arena+0x2fa8:8: the store in key_dup", lw)
    check(re.search(r"key_dup \+ \d+ in section", lw), "monitor last-write: moved there", lw)

    ex = get("exception")
    check(re.search(r"rip 0x[0-9a-f]+ <table_find\+0x59>", ex) and
          re.search(r"table_find \+ 89 in section", ex),
          "monitor prev-event exception: the #PF in table_find", ex)

    hb = get("history-begin")
    check(hb.count("No more reverse-execution history.") == 2 and when(hb) == [0],
          "reverse-continue and reverse-stepi at the start of history", hb)

    check(g.returncode == 0, f"gdb exit status 0 (got {g.returncode})", err[-3000:])
    check(server.returncode == 0, f"gdbserver exit status 0 (got {server.returncode})")

    if failures:
        print(f"\n{len(failures)} check(s) failed; gdb output in {args.workdir}/gdb.log")
        print("---- gdb stdout ----\n" + g.stdout[-6000:])
        print("---- gdb stderr ----\n" + err[-3000:])
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
