#!/usr/bin/env python3
"""Runs the commands of guests/demo/README.md's walkthrough and compares
their output with what the README shows (issue 15.5).

Every fenced block of the README whose first line is `$ ttvm ...` is a
command and its expected output: the command runs (with this build's ttvm,
in a work directory holding demo.ttvm, recorded first as the README's
`ttvm record` line says) and its output must equal the block's other
lines, but for the source directory, which the README writes relative
(`guests/demo/workload.c`), and trailing blanks. The README's `ttvm record`
line must end with the exit status the README gives (6, the panic).
"""
import argparse
import os
import re
import shlex
import subprocess
import sys


def blocks(text):
    """The fenced blocks of `text`, each a list of lines."""
    out, cur = [], None
    for line in text.splitlines():
        if line.startswith("```"):
            if cur is None:
                cur = []
            else:
                out.append(cur)
                cur = None
        elif cur is not None:
            cur.append(line)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttvm", required=True)
    ap.add_argument("--readme", required=True)
    ap.add_argument("--guest", required=True, help="demo.elf of this build")
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    args.ttvm, args.guest = os.path.abspath(args.ttvm), os.path.abspath(args.guest)
    os.makedirs(args.workdir, exist_ok=True)
    text = open(args.readme, encoding="utf-8").read()

    # The recording, as the README says to make it.
    m = re.search(r"^ttvm record -o demo\.ttvm (\S+)$", text, re.M)
    if not m:
        print("README: no 'ttvm record -o demo.ttvm ...' line")
        return 1
    status = re.search(r"ends with exit status (\d+)", text)
    rec = subprocess.run([args.ttvm, "record", "-o", "demo.ttvm", args.guest], cwd=args.workdir,
                         capture_output=True, text=True, timeout=300)
    if status is None or rec.returncode != int(status.group(1)):
        print(f"ttvm record: exit status {rec.returncode}, the README says "
              f"{status.group(1) if status else '(nothing)'}\n{rec.stderr[-2000:]}")
        return 1

    failures, ran = 0, 0
    src = args.source_dir.rstrip("/") + "/"
    for block in blocks(text):
        if not block or not block[0].startswith("$ ttvm "):
            continue
        argv = shlex.split(block[0][2:])
        argv[0] = args.ttvm
        got = subprocess.run(argv, cwd=args.workdir, capture_output=True, text=True, timeout=300)
        ran += 1
        actual = [l.replace(src, "").rstrip() for l in got.stdout.splitlines()]
        expected = [l.rstrip() for l in block[1:]]
        if actual != expected:
            failures += 1
            print(f"FAIL: {block[0]}\n--- README\n" + "\n".join(expected) +
                  "\n--- ttvm\n" + "\n".join(actual) + f"\n(exit status {got.returncode})")
        else:
            print(f"ok: {block[0]}")
    if ran < 2:
        print(f"README: only {ran} '$ ttvm' blocks found; the walkthrough has two")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
