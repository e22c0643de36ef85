#!/usr/bin/env python3
"""dap.client: a scripted Debug Adapter Protocol client (standard library
only) runs the real `ttvm dap` over pipes on a fresh recording of the demo
guest, as an editor would: initialize, launch, configurationDone (stopped at
the end of the recording, in panic), a data breakpoint on the corrupted
field (guests/demo/README.md: arena+0x2fa8, Y's next), reverse continue:
it must stop at the corrupting store in key_dup (workload.c:64) called from
table_insert, with the registers showing the store's operands and the
locals key, i and copy agreeing with them; then step
back, the Debug Console's `when`, and disconnect with exit status 0."""
import argparse
import base64
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dap_client import DapClient  # noqa: E402


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok:", what)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttvm", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    trace = os.path.join(args.workdir, "demo.ttvm")
    subprocess.run([args.ttvm, "record", "-o", trace, args.guest], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    check(os.path.exists(trace), "the demo recorded")

    c = DapClient([args.ttvm, "dap", trace])
    caps = c.request("initialize", {"adapterID": "ttvm", "linesStartAt1": True})["body"]
    check(caps.get("supportsStepBack") and caps.get("supportsDataBreakpoints"),
          "initialize: supportsStepBack, supportsDataBreakpoints")
    check(c.request("launch", {})["success"], "launch with no arguments")
    c.wait_event("initialized")
    check(c.request("configurationDone")["success"], "configurationDone")
    stop = c.wait_event("stopped")["body"]
    check(stop["reason"] == "entry", "stopped (entry) at the end of the recording")
    end = c.request("evaluate", {"expression": "when"})["body"]["result"]
    check(end.startswith("step "), "when: " + end)
    frames = c.request("stackTrace", {"threadId": 1})["body"]["stackFrames"]
    # As gdb's bt: outb inlined into halt_forever inlined into panic.
    names = [f["name"] for f in frames[:3]]
    check(names[:2] == ["outb", "halt_forever"] and names[2].startswith("panic+"),
          "the crash is in panic (outb and halt_forever inlined): " + ", ".join(names))

    info = c.request("dataBreakpointInfo", {"name": "arena+0x2fa8:8"})["body"]
    check(info.get("dataId"), "dataBreakpointInfo: " + str(info.get("description")))
    bps = c.request("setDataBreakpoints",
                    {"breakpoints": [{"dataId": info["dataId"], "accessType": "write"}]})
    check(bps["body"]["breakpoints"][0]["verified"], "the data breakpoint is verified")
    check(c.request("reverseContinue", {"threadId": 1})["success"], "reverseContinue")
    stop = c.wait_event("stopped")["body"]
    check(stop["reason"] == "data breakpoint", "stopped: data breakpoint (%s)" %
          stop.get("description"))
    frames = c.request("stackTrace", {"threadId": 1})["body"]["stackFrames"]
    f0 = frames[0]
    check(f0["name"].startswith("key_dup+"), "frame 0 in key_dup: " + f0["name"])
    check(f0.get("source", {}).get("name") == "workload.c" and f0.get("line") == 64,
          "frame 0 at workload.c:64 (KEY_DUP_STORE)")
    check(frames[1]["name"].startswith("table_insert+"), "frame 1 in table_insert")
    ins = c.request("disassemble", {"memoryReference": f0["instructionPointerReference"],
                                    "instructionCount": 1})["body"]["instructions"][0]
    check(ins["instruction"].startswith("mov") and ins["instruction"].endswith(", dl"),
          "the store: " + ins["instruction"])
    scopes = {s["name"]: s["variablesReference"]
              for s in c.request("scopes", {"frameId": 0})["body"]["scopes"]}
    regs = {v["name"]: v["value"] for v in c.request(
        "variables", {"variablesReference": scopes["Registers"]})["body"]["variables"]}
    check("Locals" in scopes, "a Locals scope in key_dup")
    local = {v["name"]: v["value"] for v in c.request(
        "variables", {"variablesReference": scopes["Locals"]})["body"]["variables"]}
    check(local.get("i") == str(int(regs["rax"].split()[0], 16)), "local i = rax: %s" % local)
    check(local.get("key", "").endswith('"id-0034:lookup"'), "local key: %s" % local.get("key"))
    check(local.get("copy", "").startswith(regs["rcx"].split()[0] + " "),
          "local copy = rcx: %s" % local.get("copy"))
    # mov [rcx+rax*1], dl: rcx+rax is inside the watched field.
    target = int(regs["rcx"].split()[0], 16) + int(regs["rax"].split()[0], 16)
    field = int(info["dataId"].split(":")[0], 16)
    check(field <= target < field + 8, "rcx+rax = %#x is inside the field" % target)
    mem = c.request("readMemory", {"memoryReference": hex(field), "count": 8})["body"]
    data = base64.b64decode(mem["data"])
    check(data[:target - field] == b"lookup"[:target - field],
          "the field holds the bytes written so far: %r" % data)
    here = c.request("evaluate", {"expression": "when"})["body"]["result"]
    c.request("stepBack", {"threadId": 1, "granularity": "instruction"})
    c.wait_event("stopped")
    back = c.request("evaluate", {"expression": "when"})["body"]["result"]
    check(int(back.split()[1]) == int(here.split()[1]) - 1, "stepBack: %s -> %s" % (here, back))
    check(c.request("disconnect")["success"], "disconnect")
    check(c.close() == 0, "ttvm dap exits 0")


if __name__ == "__main__":
    main()
