// KVM traces in the emulator: exit numbers to steps.
//
// Under KVM the recorder cannot count steps: a KVM trace's events carry exit
// numbers (Backend::kKvm), and it holds every device answer and every
// interrupt and NMI injected (docs/kvm-recording.md). assignSteps replays
// such a trace once in the emulator and gives every event the step at which
// the emulator consumes it, by order:
//  - each port or MMIO access is the trace's next access, with the same
//    kind, port or address, size (and value for a write); it takes the step
//    of the instruction (or REP iteration) that makes it;
//  - an interrupt or NMI is pending for the emulator as soon as every event
//    before it has been consumed, and takes the step at which the CPU
//    acknowledges it: the first boundary where the guest accepts it, which
//    is where KVM delivered it (it was injected after the exit before it);
//  - a stop point (kStopPoint, after its kDirtyPages runs: KVM kicked the
//    vCPU out between exits) is the first boundary after the events before
//    it whose RIP and stopFingerprint over the listed pages equal the
//    recorded ones (docs/kvm-recording.md argues why that boundary is as
//    good as KVM's); the events after it are placed from there, and it is
//    not written to the stepped trace.;
//  - passive events (state digests, HLT marks, the exit device's value, the
//    end of the run) take the first instruction boundary after the events
//    before them: the recorder took its digests with the exiting
//    instruction completed, at that boundary.
// Anything else the emulator asks for (the TSC, RDRAND, an MSR the machine
// owns) was never in a KVM trace (KVM does not trap it), and an access that
// differs from the trace's next one is a divergence: assignSteps fails
// naming the step, the RIP and the instruction, and the recorded event.
//
// The result is the same trace with steps (backend emulator, old mode: every
// answer from the trace), so that replay, verify, seek, reverse execution
// and gdb work on it unchanged. The recorded state digests and final state
// stay KVM's: `ttvm verify` checks the emulator against the hardware.
#pragma once

#include <cstdint>
#include <string>

#include "ttvm/base/result.h"
#include "ttvm/formats/trace_reader.h"

namespace ttvm {

struct SteppedTrace {
  uint64_t exits = 0;       // the KVM trace's last exit number
  uint64_t steps = 0;       // the emulator's steps to its end
  uint64_t events = 0;      // events restamped
  uint64_t stopPoints = 0;  // stop points found (see below)
};

// Writes `kvmTrace` with steps to `outPath` (see above).
Result<SteppedTrace> assignSteps(const TraceReader& kvmTrace, const std::string& outPath);

// Opens `path` for replay: a KVM trace is first written with steps to a
// file in $TMPDIR, which is opened instead (and unlinked at once: the
// reader keeps it open); `note` then says so. Other traces open as they are.
Result<TraceReader> openForReplay(const std::string& path, std::string* note);

}  // namespace ttvm
