// The raw KVM layer: resource types over /dev/kvm, a VM and its vCPUs.
//
// Ownership is a straight line, as in kvmtool and Firecracker: Kvm owns the
// /dev/kvm descriptor, Vm a VM descriptor, Vcpu a vCPU descriptor and its
// kvm_run mapping. Each is movable, not copyable, and closes what it owns.
// Nothing is global (two machines live in one process), except the no-op
// handler of the kick signal, which is process-wide by nature.
//
// What this layer deliberately does not do: create an in-kernel irqchip, PIT
// or clock. ttvm's own devices decide every interrupt (issue 13), so HLT,
// port I/O and every access outside the memory regions exit to user space.
//
// Every failure of an ioctl is a Result naming the ioctl and errno; a user
// without /dev/kvm is told why and pointed at `--backend emu`.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ttvm/base/result.h"
#include "ttvm/emulator/cpu_model.h"
#include "ttvm/emulator/cpu_state.h"
#include "ttvm/kvm/kvm_abi.h"
#include "ttvm/kvm/vcpu_exit.h"

struct kvm_run;

namespace ttvm::kvm {

// Whether this thread can count the retired branches of a guest it runs,
// and only those (perf_event_open of PERF_COUNT_HW_BRANCH_INSTRUCTIONS with
// exclude_host): what rr-style exact positions between exits would need.
// Fails naming the reason (no PMU: ENOENT; not permitted: EACCES).
Status probeGuestBranchCounter();

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_ = -1;
};

class Vm;
class Vcpu;

// Optional capabilities, read once at open (KVM_CHECK_EXTENSION works on the
// /dev/kvm and VM descriptors, not on a vCPU's).
struct KvmCapabilities {
  bool xsave = false;  // KVM_GET/SET_XSAVE: the FPU with MXCSR
  bool xcrs = false;   // KVM_GET/SET_XCRS: XCR0
  // KVM_CAP_X86_USER_SPACE_MSR and KVM_CAP_X86_MSR_FILTER (Linux 5.10+):
  // MSR accesses can exit to user space (Vm::msrsToUserSpace).
  bool userSpaceMsr = false;
  bool tscControl = false;  // KVM_CAP_TSC_CONTROL: KVM_SET_TSC_KHZ scales the guest's TSC
  // KVM_CAP_SYNC_REGS with regs, sregs and events: KVM_RUN leaves them in
  // kvm_run (kvm_run.s.regs), so reading them back needs no ioctl.
  bool syncRegs = false;
};

// /dev/kvm: the API version and the capabilities ttvm needs are checked at
// open, so a Kvm that exists can run guests.
class Kvm {
 public:
  // Opens `path` (normally /dev/kvm). Errors say why (no such device, no
  // permission, not a KVM device, API version, missing capabilities) and
  // suggest `--backend emu`.
  static Result<Kvm> open(const std::string& path = "/dev/kvm");

  // KVM_CHECK_EXTENSION: 0 when absent, else a capability-specific value.
  int checkExtension(int capability) const;
  // KVM_GET_SUPPORTED_CPUID: what this host's KVM can show a guest.
  Result<std::vector<CpuidLeaf>> supportedCpuid() const;
  Result<Vm> createVm() const;
  const KvmCapabilities& capabilities() const { return caps_; }
  // Runs a one-page real-mode guest (kSelfCheckCode) under a CPUID table of
  // its own and checks that the guest sees that table. Some /dev/kvm
  // devices (paravirtualized nested setups in sandboxes) open and run
  // guests but let them see the host's CPUID: a recording there could not
  // replay. Fails saying so, and suggests --backend emu.
  Status checkGuestCpuid() const;
  const std::string& path() const { return path_; }

 private:
  Kvm(Fd fd, std::string path, size_t runMapSize, KvmCapabilities caps)
      : fd_(std::move(fd)), path_(std::move(path)), runMapSize_(runMapSize), caps_(caps) {}
  Fd fd_;
  std::string path_;
  size_t runMapSize_ = 0;  // KVM_GET_VCPU_MMAP_SIZE
  KvmCapabilities caps_;
};

class Vm {
 public:
  // Maps `host` (page-aligned, a whole number of pages, owned by the caller
  // and outliving the Vm) at guest-physical `guestPhys` as memory slot
  // `slot`. Guest-physical addresses outside every slot are MMIO: accesses
  // there exit with ExitKind::kMmio. With `logDirty`, KVM logs the pages the
  // guest (or KVM on its behalf) writes (KVM_MEM_LOG_DIRTY_PAGES).
  Status setMemory(uint32_t slot, uint64_t guestPhys, std::span<uint8_t> host,
                   bool logDirty = false);
  // KVM_GET_DIRTY_LOG of a slot set with `logDirty`: one bit per page of the
  // slot (bit i of word w: page 64 * w + i) for the pages written since the
  // last call (or since the slot was set), which KVM then clears. `bitmap`
  // holds at least (pages + 63) / 64 words.
  Status takeDirtyLog(uint32_t slot, std::span<uint64_t> bitmap);
  Result<Vcpu> createVcpu(uint32_t id);
  // Sends every RDMSR and WRMSR KVM would answer itself to user space, but
  // those of kvm::inKernelMsrs() (kvm_abi.h): KVM_ENABLE_CAP of
  // KVM_CAP_X86_USER_SPACE_MSR (reasons INVAL, UNKNOWN and FILTER) and
  // KVM_X86_SET_MSR_FILTER. The accesses then exit as ExitKind::kMsr and are
  // answered with Vcpu::answerMsr. Fails, saying why, where the host's KVM
  // lacks either capability.
  Status msrsToUserSpace();
  // KVM_ENABLE_CAP of KVM_CAP_EXIT_ON_EMULATION_FAILURE (Linux 5.14+): an
  // instruction KVM's emulator cannot run exits to user space as
  // KVM_INTERNAL_ERROR_EMULATION at every privilege level, with nothing
  // queued (without it KVM raises #UD in the guest at CPL > 0). Fails,
  // saying why, where the host's KVM lacks it.
  Status exitOnEmulationFailure();

 private:
  friend class Kvm;
  Vm(Fd fd, size_t runMapSize, KvmCapabilities caps)
      : fd_(std::move(fd)), runMapSize_(runMapSize), caps_(caps) {}
  Fd fd_;
  size_t runMapSize_ = 0;
  KvmCapabilities caps_;
};

// One vCPU. run() and the state calls belong to one thread (the vCPU
// thread); kick() may be called from any thread.
class Vcpu {
 public:
  Vcpu(Vcpu&& o) noexcept;
  Vcpu& operator=(Vcpu&&) = delete;
  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;
  ~Vcpu();

  // KVM_SET_CPUID2 with exactly the model's leaves (toKvmCpuid). Call it
  // before setState: KVM checks some MSRs and CR4 bits against CPUID.
  Status setCpuid(const CpuModel& model);
  // The guest's CPUID table as KVM holds it (KVM_GET_CPUID2).
  Result<std::vector<CpuidLeaf>> cpuid() const;

  // Loads every register of `s` (see KvmCpuState for what KVM cannot take).
  Status setState(const CpuState& s);
  // Reads every register back (steps 0).
  Result<CpuState> state() const;
  // The same, but of the parts that cost an ioctl each beyond what kvm_run
  // holds (state_part: the FPU, the debug registers, XCR0, the MSRs) only
  // `parts`; the others keep the values of the last setState() or read, for
  // a caller that knows they did not change since. The general registers,
  // segments, control registers and pending events come from kvm_run where
  // KVM synced them at the last KVM_RUN (KvmCapabilities::syncRegs) and
  // nothing was set since, else by ioctl.
  Result<CpuState> state(StateParts parts) const;

  // KVM_SET_GUEST_DEBUG: with `on`, KVM_GUESTDBG_SINGLESTEP: after every
  // instruction the guest retires (or the exception it delivers), KVM_RUN
  // returns ExitKind::kDebug with the next RIP.
  //
  // KVM falls short of that in two ways that run() repairs (measured on
  // Debian's 6.1, docs/kvm-recording.md):
  //  - it sets the guest's TF only while RIP is where stepping was enabled,
  //    so after an instruction its emulator completes (string I/O, MMIO) the
  //    guest runs free: run() arms stepping again before every entry;
  //  - it loses the trap after an MMIO write it hands to user space (its
  //    complete_emulated_mmio says "FIXME: return into emulator if
  //    single-stepping"): the run() after an I/O or MMIO exit first lets KVM
  //    complete it without entering the guest (KVM_RUN with immediate_exit);
  //    if KVM reports nothing and RIP moved, run() returns the trap itself
  //    (DebugExit::repaired).
  // What stays KVM's: a REP string instruction traps once when it completes
  // (KVM's emulator runs the iterations in one go), not after every
  // iteration as the architecture and ttvm's emulator do.
  //
  // Stepping is armed again before every entry: KVM keeps the TF it set
  // after a trap, but keeping stepping armed only where that TF could be
  // gone (after setState, a non-trap exit, an injected event, POPF or IRET)
  // lost the traps after a REP OUTSB that KVM's emulator completed
  // (SingleStepOverRepStringIo: the next three instructions ran free), so
  // the one KVM_SET_GUEST_DEBUG per entry stays. setSingleStep(on) with the
  // mode already `on` does nothing (no ioctl).
  Status setSingleStep(bool on);

  // KVM_RUN until the next exit. An I/O read or MMIO read must be answered
  // in the returned exit's data before calling run() again. A HLT exit marks
  // the vCPU halted (state().pending.halted) until setState clears it.
  Result<VcpuExit> run();

  // Makes run() return ExitKind::kInterrupted as soon as possible, from any
  // thread: sets kvm_run.immediate_exit (which a KVM_RUN not yet entered
  // sees) and signals the thread that last called prepareKick() (which
  // interrupts a guest already running). Call prepareKick() on the vCPU
  // thread first.
  void prepareKick();
  void kick();

  // The kick signal (a real-time signal with a no-op handler, installed once).
  static int kickSignal();
  // Blocks the kick signal in the calling thread except inside KVM_RUN
  // (KVM_SET_SIGNAL_MASK), as QEMU does: a kick sent while the thread is
  // outside the guest waits for the next KVM_RUN, which then returns
  // ExitKind::kInterrupted at once, and no other system call of the thread
  // sees EINTR. Call it on the vCPU thread; a kicker then only signals it
  // (pthread_kill with kickSignal()).
  Status kickOnlyInRun();

  // Interrupts without an in-kernel irqchip: ttvm's devices decide them.
  // Whether the guest could take an interrupt when KVM_RUN last returned
  // (kvm_run's ready_for_interrupt_injection and if_flag: IF=1, no
  // interrupt shadow, nothing being injected).
  bool readyForInterrupt() const;
  // KVM_INTERRUPT: KVM delivers `vector` at the first instruction boundary
  // where the guest accepts it, from the next entry on. Wakes a halted vCPU.
  Status injectInterrupt(uint8_t vector);
  // Whether KVM still holds an interrupt or NMI given to it that the guest
  // has not taken yet (KVM_GET_VCPU_EVENTS): a KVM_RUN that returned before
  // entering the guest (a kick) leaves it queued for the next entry.
  Result<bool> eventQueued() const;
  // The same, by kind: an interrupt injected, an NMI injected or pending
  // (KVM holds an NMI given while NMIs are blocked until they are not).
  struct QueuedEvents {
    bool interrupt = false;
    bool nmi = false;
  };
  Result<QueuedEvents> queuedEvents() const;
  // KVM_NMI: delivered where NMIs are not blocked. Wakes a halted vCPU.
  Status injectNmi();
  // kvm_run.request_interrupt_window: KVM_RUN returns
  // ExitKind::kIrqWindowOpen as soon as the guest can take an interrupt.
  void requestInterruptWindow(bool on);
  // CR8 and the APIC base MSR as of the last exit (KVM keeps them in kvm_run
  // without an in-kernel LAPIC, and reads CR8 back from there at entry).
  uint64_t exitCr8() const;
  uint64_t exitApicBase() const;
  // CR8 for the next entry (KVM_RUN loads it from kvm_run without an
  // in-kernel LAPIC): an x2APIC TPR write ttvm answered.
  void setEntryCr8(uint64_t cr8);
  // Finishes the instruction of the last I/O or MMIO exit without entering
  // the guest (KVM_RUN with immediate_exit): afterwards state() shows it
  // retired. Returns the next exit when the instruction made one more
  // access (it must be answered and completed in turn), else nullopt.
  Result<std::optional<VcpuExit>> completeExit();
  // Answers the last ExitKind::kMsr exit before the next run(): a RDMSR's
  // value or a WRMSR accepted, or nullopt to raise #GP in the guest.
  void answerMsr(std::optional<uint64_t> value);

  // The guest's TSC. KVM runs it from the host's TSC without exits: these
  // set where it starts and how fast it runs, not what the guest reads.
  // KVM_SET_TSC_KHZ: its frequency (where the host cannot scale the TSC,
  // KVM takes only rates at or above the host's, by catching up at exits).
  Status setTscKhz(uint32_t khz);
  Result<uint32_t> tscKhz() const;  // KVM_GET_TSC_KHZ
  // IA32_TSC now, read and written by the host (KVM_GET/SET_MSRS): a write
  // sets the TSC offset so that the guest reads `value` from here on.
  Result<uint64_t> guestTsc() const;
  Status setGuestTsc(uint64_t value);

  // RIP and RFLAGS as KVM holds them now (KVM_GET_REGS); at an MMIO exit,
  // the values before the instruction (KVM's emulator writes them back when
  // it completes).
  struct RipFlags {
    uint64_t rip = 0;
    uint64_t rflags = 0;
  };
  Result<RipFlags> ripAndFlags() const;
  // Queues the single-step #DB the guest's own TF owes after the last
  // instruction, for delivery at the next entry: DR6 gets BS with B0-B3
  // cleared, and the exception goes in through KVM_SET_VCPU_EVENTS. Does
  // nothing when KVM already has a #DB queued. For the trap KVM loses after
  // an MMIO write it completes in user space (the FIXME in its
  // complete_emulated_mmio; docs/kvm-recording.md).
  Status queueSingleStepTrap();
  // Queues a #DB trap with DR6's B0-B3 = `hits` (breakpoint conditions met
  // by the last instruction, e.g. an I/O breakpoint on a port access that
  // exited): where KVM already has a #DB queued (its own single-step trap),
  // the bits join its DR6, as one trap reports both.
  Status queueBreakpointTrap(uint64_t hits);

  // Every ioctl on the vCPU so far, by request: how often, and the wall time
  // spent in it (what `ttvm lockstep -v` prints).
  struct IoctlStat {
    const char* name = "";
    uint64_t calls = 0;
    uint64_t ns = 0;
  };
  const std::vector<IoctlStat>& ioctlStats() const { return stats_; }

 private:
  // Queues a #DB trap with `dr6Bits` in DR6 (B0-B3 replaced); where KVM
  // already has a #DB queued, adds the bits to it (`joinQueued`) or leaves it.
  Status queueDebugTrap(uint64_t dr6Bits, bool joinQueued);
  friend class Vm;
  Vcpu(Fd fd, kvm_run* run, size_t mapSize, KvmCapabilities caps)
      : fd_(std::move(fd)), run_(run), mapSize_(mapSize), caps_(caps) {}
  Status armSingleStep(bool on);
  Result<uint64_t> rip() const;
  // ioctl(fd_, request, arg), counted and timed under `name` in stats_.
  int call(unsigned long request, const char* name, unsigned long arg) const;
  template <class T>
  int call(unsigned long request, const char* name, T* arg) const {
    return call(request, name, reinterpret_cast<unsigned long>(arg));
  }
  // A setter changed the vCPU: kvm_run's synced registers are stale.
  void changed() { synced_ = false; }
  Result<VcpuExit> enter();
  VcpuExit noteExit(VcpuExit e);
  Fd fd_;
  kvm_run* run_ = nullptr;
  size_t mapSize_ = 0;
  KvmCapabilities caps_;
  bool halted_ = false;
  bool singleStep_ = false;
  bool kicksMasked_ = false;        // kickOnlyInRun()
  bool completionPending_ = false;  // stepping, and the last exit was I/O or MMIO
  uint64_t stepRip_ = 0;            // stepping: RIP of the instruction being stepped
  bool synced_ = false;             // kvm_run.s.regs holds the vCPU's regs, sregs, events
  // What the last setState() or state() read held, the parts state(parts)
  // leaves out included; `known_` once every part was set or read.
  mutable KvmCpuState last_;
  mutable bool known_ = false;
  mutable std::vector<IoctlStat> stats_;
  std::atomic<bool> kickReady_{false};
  pthread_t thread_{};
};

}  // namespace ttvm::kvm
