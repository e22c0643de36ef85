#!/bin/sh
# kvm_bench (run inside the nested VM by scripts/nested_kvm.sh; `cmake
# --build build/release --target kvm_bench`): the KVM backend's numbers of
# issue 13, each against a peer measured in the same run:
#  - recording overhead: a CPU-bound guest (bench/int_workload, ROUNDS
#    rounds, ~15 M instructions each) recorded under KVM with a trace and
#    without (--no-trace), RUNS alternating pairs; the ratio traced/untraced
#    of each pair and their median (target <= 1.1);
#  - exits per second: rec_io's port loop (20,000 exits), traced and not;
#  - replay: `ttvm verify` (assigning the steps and replaying in the
#    emulator) of each trace, against the time it took to record.
# Wall times come from the recorder's own summary (set-up excluded) and
# /proc/uptime around verify.
#
# The replay of the CPU-bound guest uses a 1-round recording (the emulator
# runs ~100x slower than KVM there).
#
# usage: kvm_bench.sh TTVM INT_WORKLOAD REC_IO [RUNS] [ROUNDS]
T=${1:?usage: kvm_bench.sh TTVM INT_WORKLOAD REC_IO [RUNS] [ROUNDS]}
CPU=${2:?usage}
IO=${3:?usage}
RUNS=${4:-7}
ROUNDS=${5:-8}
W=/tmp/kvm-bench
mkdir -p $W && cd $W || exit 1
now() { cut -d' ' -f1 /proc/uptime; }
# seconds: the recorder summary's wall time
secs() { grep -o 'in [0-9.]* s' "$1" | head -1 | tr -dc '0-9.'; }
median() { sort -n | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2}'; }

echo "CPU-bound: int_workload rounds=$ROUNDS under KVM, $RUNS pairs (no trace, trace)"
: >$W/ratios
for i in $(seq 1 $RUNS); do
  $T record --backend kvm --no-trace --append rounds=$ROUNDS $CPU >$W/c0.out 2>$W/c0.err </dev/null
  $T record --backend kvm -o $W/cpu.ttvm --append rounds=$ROUNDS $CPU >$W/c1.out 2>$W/c1.err </dev/null
  a=$(secs $W/c0.err) b=$(secs $W/c1.err)
  grep -q "rounds $ROUNDS checksum" $W/c0.out && cmp -s $W/c0.out $W/c1.out ||
    { echo "int_workload did not finish its $ROUNDS rounds alike under KVM"; cat $W/c0.out $W/c1.out; exit 1; }
  echo "$a $b" | awk '{printf "  pair: %.3f s untraced, %.3f s traced, ratio %.3f\n", $1, $2, $2 / $1}'
  echo "$a $b" | awk '{print $2 / $1}' >>$W/ratios
done
echo "  $(grep -o 'rounds .*' $W/c1.out), $(grep -o 'exits .*KVM)' $W/c1.err)"
echo "  median ratio traced/untraced: $(median <$W/ratios) (range $(sort -n $W/ratios | head -1)-$(sort -n $W/ratios | tail -1))"
$T record --backend kvm -o $W/cpu.ttvm --append rounds=1 $CPU >$W/c1.out 2>$W/c1.err </dev/null
t0=$(now)
$T verify $W/cpu.ttvm >$W/cpu.verify 2>&1 || { echo "verify of the CPU-bound trace failed"; tail $W/cpu.verify; }
t1=$(now)
rec=$(secs $W/c1.err)
echo "$t0 $t1 $rec" | awk '{printf "  replay in the emulator (ttvm verify): %.2f s, %.1fx the traced recording (%.3f s)\n", $2 - $1, ($2 - $1) / $3, $3}'
grep -o '[0-9]* exits are [0-9]* emulator steps' $W/cpu.verify | sed 's/^/  /'

echo "Exits: rec_io, 20000 port-write exits, $RUNS runs each (no trace, trace)"
: >$W/r0
: >$W/r1
for i in $(seq 1 $RUNS); do
  $T record --backend kvm --no-trace --max-steps 20000 $IO >/dev/null 2>$W/i0.err </dev/null
  $T record --backend kvm --max-steps 20000 -o $W/io.ttvm $IO >/dev/null 2>$W/i1.err </dev/null
  grep -o '([0-9]* exits/s' $W/i0.err | tr -dc '0-9' >>$W/r0; echo >>$W/r0
  grep -o '([0-9]* exits/s' $W/i1.err | tr -dc '0-9' >>$W/r1; echo >>$W/r1
done
echo "  untraced: median $(median <$W/r0) exits/s (range $(sort -n $W/r0 | head -1)-$(sort -n $W/r0 | tail -1))"
echo "  traced:   median $(median <$W/r1) exits/s (range $(sort -n $W/r1 | head -1)-$(sort -n $W/r1 | tail -1))"
t0=$(now)
$T verify $W/io.ttvm >$W/io.verify 2>&1 || { echo "verify of rec_io failed"; tail $W/io.verify; }
t1=$(now)
rec=$(secs $W/i1.err)
echo "$t0 $t1 $rec" | awk '{printf "  replay in the emulator (ttvm verify): %.2f s, %.2fx the traced recording (%.3f s)\n", $2 - $1, ($2 - $1) / $3, $3}'
