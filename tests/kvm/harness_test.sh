#!/usr/bin/env bash
# ctest -L kvm: the nested-VM harness (scripts/nested_kvm.sh) itself. A real
# boot runs a shell inside the VM: its output and its exit status (3) must come
# back through the serial console. Fake QEMUs check that a VM that never comes
# up, or hangs, fails loudly instead of passing; a missing QEMU, or a virtual
# CPU without SVM (so no /dev/kvm inside), skips with the reason.
#
# usage: harness_test.sh NESTED_KVM_SH
# Exits 77 (skip) when the harness skips the real boot (no QEMU, no kernel
# packages, no /dev/kvm inside the VM).
set -uo pipefail
harness=${1:?usage: harness_test.sh NESTED_KVM_SH}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
check() {  # check NAME WANT_STATUS WANT_TEXT STATUS OUTPUT_FILE
  if [ "$4" -ne "$2" ] || ! grep -q -- "$3" "$5"; then
    echo "FAIL: $1: status $4 (want $2), output should contain '$3':"
    sed 's/^/  | /' "$5"
    failures=$((failures + 1))
  else
    echo "ok: $1 (status $4)"
  fi
}

# A real boot: the command's output and status come back. The command is a
# script inside a folder also given with --file: the folder's files must be
# at their own paths (not copied into a folder of the same name).
mkdir "$work/files"
echo "payload-7" >"$work/files/data"
printf '#!/bin/sh\necho "inside: $(ls /dev/kvm) $(cat %q)"\nexit 3\n' "$work/files/data" >"$work/files/cmd.sh"
chmod +x "$work/files/cmd.sh"
bash "$harness" --timeout 90 --file "$work/files" -- "$work/files/cmd.sh" >"$work/real" 2>&1
rc=$?
if [ $rc -eq 77 ]; then
  cat "$work/real"
  exit 77
fi
check "real boot" 3 "inside: /dev/kvm payload-7" $rc "$work/real"
grep -q "ttvm-nested: /dev/kvm ready" "$work/real" || { echo "FAIL: no ready line"; failures=$((failures + 1)); }

# A "QEMU" that exits 0 at once, printing nothing: the VM never came up.
printf '#!/bin/sh\necho "fake firmware"\nexit 0\n' >"$work/qemu-silent"
# A "QEMU" that hangs.
printf '#!/bin/sh\nsleep 600\n' >"$work/qemu-hang"
# A "QEMU" whose guest comes up but loses the command (no sentinel).
printf '#!/bin/sh\necho "ttvm-nested: /dev/kvm ready, 1 CPU"\necho "Kernel panic"\nexit 0\n' >"$work/qemu-panic"
chmod +x "$work"/qemu-*
QEMU="$work/qemu-silent" bash "$harness" -- /bin/true >"$work/silent" 2>&1
check "VM never up" 1 "never reached its /init" $? "$work/silent"
grep -q "fake firmware" "$work/silent" || { echo "FAIL: the console tail is not shown"; failures=$((failures + 1)); }
QEMU="$work/qemu-hang" bash "$harness" --timeout 3 -- /bin/true >"$work/hang" 2>&1
check "VM hangs" 1 "no end after 3 s" $? "$work/hang"
QEMU="$work/qemu-panic" bash "$harness" -- /bin/true >"$work/panic" 2>&1
check "no sentinel" 1 "no 'ttvm-nested-exit: N' sentinel" $? "$work/panic"
# A "QEMU" whose CPU wedges as QEMU 7.2's TCG sometimes does: idle, and its
# monitor shows a halted CPU with an interrupt pending in the LAPIC's IRR.
# The harness must see it, boot once more and say so; a second wedge fails.
# With a marker file, the second boot comes up and runs the command.
cat >"$work/qemu-wedge" <<'PY'
#!/usr/bin/env python3
import os, socket, sys, time
args = sys.argv[1:]
path = args[args.index("-monitor") + 1].split(",")[0][len("unix:"):]
marker = os.environ.get("WEDGE_ONCE_MARKER")
if marker and os.path.exists(marker):
    print("ttvm-nested: /dev/kvm ready, 1 CPU\nttvm-nested-exit: 0", flush=True)
    sys.exit(0)
if marker:
    open(marker, "w").close()
print("ttvm-nested: /dev/kvm ready, 1 CPU", flush=True)
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(4)
while True:
    c, _ = srv.accept()
    c.sendall(b"QEMU 7.2 monitor\n(qemu) ")
    for line in c.makefile():
        if "registers" in line:
            c.sendall(b"RIP=ffffffffa9a17a0b RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\n(qemu) ")
        elif "lapic" in line:
            c.sendall(b"ISR\t (none)\nIRR\t 236 \n(qemu) ")
    c.close()
PY
chmod +x "$work/qemu-wedge"
TTVM_NESTED_QUIET_S=2 QEMU="$work/qemu-wedge" bash "$harness" --timeout 60 -- /bin/true >"$work/wedge" 2>&1
check "VM wedges twice" 1 "wedged in QEMU twice (halted, never taking a pending interrupt: RIP=ffffffffa9a17a0b" $? "$work/wedge"
TTVM_NESTED_QUIET_S=2 WEDGE_ONCE_MARKER="$work/wedged-once" QEMU="$work/qemu-wedge" \
  bash "$harness" --timeout 60 -- /bin/true >"$work/wedge1" 2>&1
check "VM wedges once" 0 "wedged in QEMU .*IRR 236 ); booting it again" $? "$work/wedge1"
# A real QEMU whose virtual CPU has no SVM: kvm-amd cannot load, so there is
# no /dev/kvm inside and the harness must skip, saying so.
real_qemu=$(command -v qemu-system-x86_64)
printf '#!/bin/bash\nargs=()\nfor a in "$@"; do [ "${a%%%%,*}" = max ] && a="$a,-svm"; args+=("$a"); done\nexec %q "${args[@]}"\n' \
  "$real_qemu" >"$work/qemu-nosvm"
chmod +x "$work/qemu-nosvm"
QEMU="$work/qemu-nosvm" bash "$harness" --timeout 90 -- /bin/true >"$work/nosvm" 2>&1
check "no SVM in the VM" 77 "SKIP: inside the nested VM: no /dev/kvm after loading kvm-amd (the virtual CPU shows no svm flag)" $? "$work/nosvm"
QEMU=/nonexistent/qemu bash "$harness" -- /bin/true >"$work/noqemu" 2>&1
check "no QEMU" 77 "SKIP: /nonexistent/qemu not found" $? "$work/noqemu"

[ $failures -eq 0 ] || { echo "$failures harness check(s) failed"; exit 1; }
echo "harness: all checks passed"
