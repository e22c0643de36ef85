// VcpuExit: why KVM_RUN returned, decoded from the shared kvm_run page into a
// plain value (decodeExit in kvm_abi.h). The run loop switches on `kind` and
// hands port I/O and MMIO to the machine's buses, as kvmtool and Firecracker
// do; tests build exits from made-up kvm_run pages.
//
// The data spans of I/O and MMIO exits point into the kvm_run page itself:
// an OUT or MMIO write's bytes are there to read, and an IN or MMIO read is
// answered by writing its bytes there before the next KVM_RUN. They are valid
// until then, and only then.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ttvm::kvm {

enum class ExitKind : uint8_t {
  kIo,             // IN/OUT/INS/OUTS: `io`
  kMmio,           // an access to guest-physical memory outside every region: `mmio`
  kHlt,            // HLT (no in-kernel LAPIC: the halt is ttvm's to keep)
  kShutdown,       // triple fault, or another shutdown condition
  kDebug,          // a #DB or #BP intercepted for the host debugger: `debug`
  kInternalError,  // KVM could not emulate or deliver something: `internal`
  kFailEntry,      // the hardware refused VM entry: `failEntry`
  kInterrupted,    // a signal or immediate_exit ended KVM_RUN (the kick)
  kIrqWindowOpen,  // the guest can take an interrupt (request_interrupt_window)
  kMsr,            // RDMSR/WRMSR KVM handed to user space (KVM_CAP_X86_USER_SPACE_MSR): `msr`
  kSetTpr,         // a MOV to CR8 lowered it (no in-kernel LAPIC; done, RIP after it)
  kOther,          // any other reason, kept raw in `rawReason`
};

struct IoExit {
  uint16_t port = 0;
  uint8_t size = 0;         // bytes per access: 1, 2 or 4
  bool in = false;          // true: the guest reads, answer into `data`
  uint32_t count = 0;       // accesses: >1 for a string instruction KVM batched (INS)
  std::span<uint8_t> data;  // count * size bytes, access i at data[i * size]
};

struct MmioExit {
  uint64_t address = 0;  // guest-physical
  bool write = false;
  std::span<uint8_t> data;  // 1..8 bytes; a read is answered into it
};

// A RDMSR (answered with answerMsrExit before the next KVM_RUN) or WRMSR
// (acknowledged the same way) KVM did not handle itself.
struct MsrExit {
  uint32_t index = 0;
  bool write = false;
  uint64_t value = 0;   // what a WRMSR writes (EDX:EAX)
  uint32_t reason = 0;  // KVM_MSR_EXIT_REASON_INVAL, _UNKNOWN or _FILTER
};

struct DebugExit {
  uint32_t exception = 0;  // 1 (#DB) or 3 (#BP)
  uint64_t pc = 0;         // RIP where the guest stopped (next instruction for a trap)
  uint64_t dr6 = 0;
  uint64_t dr7 = 0;
  bool repaired = false;  // a single-step trap KVM lost, supplied by Vcpu::run
};

struct InternalErrorExit {
  // KVM_INTERNAL_ERROR_EMULATION: its emulator could not run (or fetch) the
  // instruction at RIP.
  static constexpr uint32_t kEmulation = 1;
  uint32_t suberror = 0;       // KVM_INTERNAL_ERROR_*
  std::vector<uint64_t> data;  // KVM's diagnostic words (suberror-specific)
};

struct FailEntryExit {
  uint64_t reason = 0;  // hardware_entry_failure_reason (VMX exit reason / SVM exit code)
  uint32_t cpu = 0;     // host CPU the entry failed on
};

struct VcpuExit {
  ExitKind kind = ExitKind::kOther;
  uint32_t rawReason = 0;  // KVM_EXIT_*
  IoExit io;
  MmioExit mmio;
  MsrExit msr;
  DebugExit debug;
  InternalErrorExit internal;
  FailEntryExit failEntry;
};

// One line for messages and logs, e.g. "io out port 0x3f8 size 1 count 5".
std::string describe(const VcpuExit& e);

}  // namespace ttvm::kvm
