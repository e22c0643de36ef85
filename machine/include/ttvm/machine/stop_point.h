// Stop points: where a recorder that cannot count steps (KVM) stopped the
// guest between exits, in a form the replay finds again by state
// (docs/kvm-recording.md, "Between exits: stop points").
//
// A stop point is the instruction boundary the vCPU was kicked out at. The
// trace holds its RIP and a fingerprint: the architectural registers (the
// stateDigest of the state, step count excluded) and the contents of every
// guest-physical page written since the previous stop point (KVM's dirty
// log), each page with its number. The replay runs forward from the event
// before it to the first boundary whose fingerprint over the same pages
// is equal. Pages outside the list were not written by the guest since the
// previous stop point, so at that boundary the whole state (registers and
// all of RAM) equals the one KVM stopped at: the two futures are the same.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ttvm/emulator/cpu_state.h"
#include "ttvm/formats/trace_types.h"

namespace ttvm::machine {

// A run of guest-physical pages [first, first + count).
struct PageRun {
  uint64_t first = 0;
  uint32_t count = 0;
  bool operator==(const PageRun&) const = default;
};

// The runs of the set bits of a dirty bitmap (bit i of word w: page
// firstPage + 64 * w + i), as KVM_GET_DIRTY_LOG returns it per memory slot.
// Appended to `runs`, merged with its last run where they touch.
void appendDirtyRuns(std::span<const uint64_t> bitmap, uint64_t firstPage,
                     std::vector<PageRun>& runs);

// The guest-physical addresses, sorted, of the access bytes (byte 5) of
// every descriptor slot of the GDT and of the LDT of `s` in protected mode,
// through `translate` (linear to physical, no side effects; slots it cannot
// translate are left out).
std::vector<uint64_t> descriptorAccessBytes(
    const CpuState& s, const std::function<std::optional<uint64_t>(uint64_t)>& translate);

// The fingerprint of `s` (its step count ignored, an STI shadow taken as a
// MOV SS one: SVM reports both so) and of the contents of the pages of
// `runs` in `ram` (pages beyond it hash as absent). The accessed bit of a
// code or data descriptor (S set) at any of `accessBytes` is hashed as
// clear: the CPU sets it on a segment load, and the nested VM's CPU (QEMU's
// TCG) leaves it clear on a far JMP (docs/kvm-recording.md).
uint64_t stopFingerprint(const CpuState& s, std::span<const uint8_t> ram,
                         std::span<const PageRun> runs, std::span<const uint64_t> accessBytes = {});

// The parts of a fingerprint, for logs that compare a recording with its
// replay: "regs <digest> gprs <quick key> [<general registers>]
// (<name>=<value> ...) pages
// <n>:<hash> ...", the parenthesis naming every register the quick key
// leaves out (segments as selector:base:limit:attributes; x87 and XMM
// registers as one hash each), so that differing digests show which differs.
std::string describeStopState(const CpuState& s, std::span<const uint8_t> ram,
                              std::span<const PageRun> runs,
                              std::span<const uint64_t> accessBytes = {});

// The registers of the quick key by name ("rax=... r15=... rip=...
// rflags=..."), for logs of boundaries whose quick keys differ.
std::string describeGeneralRegisters(const CpuState& s);

// A cheap first test of a boundary: a hash of the general registers, RIP
// and RFLAGS (a loop whose registers change never reaches the fingerprint).
uint32_t stopQuickKey(const CpuState& s);

// A stop point as it goes to the trace: the runs (kDirtyPages), then the
// point (kStopPoint), all at exit number `exit`.
std::vector<TraceEvent> stopPointEvents(uint64_t exit, const CpuState& s,
                                        std::span<const uint8_t> ram, std::span<const PageRun> runs,
                                        std::span<const uint64_t> accessBytes = {});

}  // namespace ttvm::machine
