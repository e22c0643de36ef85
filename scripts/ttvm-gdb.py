"""gdb commands for `ttvm gdbserver` (as rr ships its gdb init).

Load it with `gdb -x scripts/ttvm-gdb.py` (or `source` it from ~/.gdbinit);
then connect with `target remote HOST:PORT`. It adds:

  ttvm when                 the current step and the history's bounds
  ttvm seek STEP|begin|end  move the replay to STEP
  ttvm last-write EXPR      move to the last store to EXPR before now
  ttvm next-write EXPR      ... or the next one after now
  ttvm reg-change REG       the last step before now that changed REG
  ttvm prev-event KIND      the previous / next event: interrupt, exception,
  ttvm next-event KIND      serial, port N
  ttvm backtrace            ttvm's own stack walk of the guest

EXPR is a gdb expression: an lvalue (`Y->next`, `*(long *)($rcx + 8)`,
`arena[0x2fa8]`) names its own bytes; any other value is an address of one
byte; `EXPR:LEN` gives the length. gdb's `watch` and `last-write` can stop
at different steps: gdb reports a write only when the value changed,
`last-write` any store to those bytes (docs/gdb.md).

Why a helper: a `monitor` command moves the replay behind gdb's back (the
remote protocol has no way for a stub to say "the registers changed" in
all-stop mode), so gdb keeps showing the registers, frames and stack memory
it cached. Each `ttvm` command that moves flushes those caches and shows the
new frame, and a `hookpost-monitor` does the flush after a plain
`monitor seek` too.

On connecting it says where the replay is ("ttvm: this connection starts
at step 6276082 (history 0..6276082)"): each connection starts at the
server's --start, the end of the recording by default.

It also makes `info registers system` work: gdb's x86 architectures ignore
the target description's register groups, so the command printed nothing;
here `info registers` is wrapped to list the registers that the description
puts in group "system" (control registers, efer, segment bases) and passes
everything else to gdb's own `info all-registers`, which prints the same as
`info registers` for any argument and `general` for none.
"""

import re
import xml.etree.ElementTree as ET

import gdb


def _flush():
    """Forget what gdb cached about the target's state at the old step."""
    gdb.execute("maintenance flush register-cache", to_string=True)
    gdb.execute("maintenance flush dcache", to_string=True)


def _show_frame():
    try:
        gdb.execute("frame")
    except gdb.error as e:  # no symbols for the new pc, or an unreadable stack
        print(e)


class TtvmPrefix(gdb.Command):
    """Commands for a replay served by `ttvm gdbserver`: when, seek,
last-write, next-write, reg-change, prev-event, next-event, backtrace."""

    def __init__(self):
        super().__init__("ttvm", gdb.COMMAND_RUNNING, gdb.COMPLETE_NONE, True)


class TtvmPassThrough(gdb.Command):
    """Runs the monitor command of the same name; a move flushes gdb's caches
    and shows the new frame."""

    def __init__(self, name, moves, doc):
        self.__doc__ = doc
        super().__init__("ttvm " + name, gdb.COMMAND_RUNNING)
        self.name = name
        self.moves = moves

    def invoke(self, arg, from_tty):
        self.run(self.name + (" " + arg if arg else ""))

    def run(self, command):
        # Not to_string: a failing monitor command raises, and its text (the
        # stub's console output, which says why) would go with the string.
        try:
            gdb.execute("monitor " + command)
        except gdb.error as e:
            raise gdb.GdbError(f"ttvm {self.name} failed ({e})") from None
        finally:
            if self.moves:
                _flush()
        if self.moves:
            _show_frame()


def _address_range(text):
    """EXPR[:LEN] -> (address, length) with gdb's own expression evaluator."""
    m = re.match(r"^(.*[^:]):\s*(0x[0-9a-fA-F]+|\d+)\s*$", text)
    length = None
    if m:
        text, length = m.group(1), int(m.group(2), 0)
    value = gdb.parse_and_eval(text)
    if value.address is not None:
        return int(value.address), length or value.type.sizeof
    return int(value), length or 1


class TtvmWrite(TtvmPassThrough):
    def invoke(self, arg, from_tty):
        if not arg.strip():
            raise gdb.GdbError(f"usage: ttvm {self.name} EXPR[:LEN]")
        try:
            address, length = _address_range(arg)
        except gdb.error as e:
            raise gdb.GdbError(f"ttvm {self.name}: {e}") from None
        self.run(f"{self.name} {address:#x}:{length}")


_SIMPLE = [
    ("when", False, "The current step and the bounds of the recorded history."),
    ("seek", True, "ttvm seek STEP|begin|end: move the replay to STEP."),
    ("reg-change", True, "ttvm reg-change REG: the last step before now that changed REG."),
    ("prev-event", True,
     "ttvm prev-event interrupt|exception|serial|port N: the previous such event."),
    ("next-event", True, "ttvm next-event interrupt|exception|serial|port N: the next one."),
    ("backtrace", False, "The guest's call stack from ttvm's own unwinder."),
]


def _system_registers():
    """Names that the target description puts in group "system", in order."""
    try:
        xml = gdb.execute("maintenance print xml-tdesc", to_string=True)
        root = ET.fromstring(xml[xml.index("<target"):])
    except (gdb.error, ValueError, ET.ParseError):
        return []
    return [r.get("name") for r in root.iter("reg") if r.get("group") == "system"]


class InfoRegisters(gdb.Command):
    """List of registers and their contents (gdb's `info registers`).
`info registers system` lists the control registers, efer and the segment
bases of a ttvm replay; everything else is gdb's own `info all-registers`."""

    def __init__(self):
        super().__init__("info registers", gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        words = arg.split()
        if words and "system".startswith(words[0]) and len(words[0]) >= 2:
            names = _system_registers()
            if names:
                gdb.execute("info all-registers " + " ".join(names + words[1:]))
                return
        gdb.execute("info all-registers " + (arg if arg.strip() else "general"))


_announced = set()


def _on_stop(event):
    """Says where a new connection starts (`ttvm gdbserver --start`: the end
    of the recording by default), once per connection."""
    num = gdb.selected_inferior().connection_num
    if num is None or num in _announced:
        return
    _announced.add(num)
    try:
        out = gdb.execute("monitor when", to_string=True)
    except gdb.error:
        return  # not a ttvm stub
    if re.match(r"^step \d+ \(history", out):
        print("ttvm: this connection starts at " + out.strip())


TtvmPrefix()
for _name, _moves, _doc in _SIMPLE:
    TtvmPassThrough(_name, _moves, _doc)
TtvmWrite("last-write", True, "ttvm last-write EXPR[:LEN]: move to the last store to EXPR "
          "(its bytes, or LEN bytes at its value) before now.")
TtvmWrite("next-write", True, "ttvm next-write EXPR[:LEN]: move to the next store to EXPR "
          "after now.")
InfoRegisters()
gdb.events.stop.connect(_on_stop)
# A plain `monitor seek` moves the replay too.
gdb.execute("define hookpost-monitor\n"
            "maintenance flush register-cache\n"
            "maintenance flush dcache\n"
            "end")
