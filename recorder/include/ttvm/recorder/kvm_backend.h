// KvmBackend: the CpuBackend that runs the guest on the host's CPU through
// KVM (ttvm::kvm, docs/kvm-recording.md). One readable run loop, kvmtool
// style: KVM_RUN, then a switch on the exit that hands port I/O (each
// access of a string instruction KVM batched) and MMIO to the Environment
// the backend was built over, as the emulator would.
//
// Memory. The machine's RAM is one user memory region per stretch between
// its MMIO holes; an access in a hole (or above RAM) exits as MMIO.
// The guest's CPUID is the machine's CpuModel (KVM_SET_CPUID2), restricted
// to nothing: what the table says is what the guest sees.
//
// Position. KVM cannot count steps (no usable PMU in the nested VM), so
// state().steps is the *exit sequence number*: it grows by one at every
// exit that reaches the machine — an I/O or MMIO exit, HLT — and every event
// the environment logs carries it (a trace's Backend::kKvm). Exits the
// machine does not see (a kick, an interrupt window opening) do not count.
// Virtual time, which the machine derives from steps, therefore advances
// by the clock's ns-per-step at each counted exit (plus idle skips).
//
// Interrupts. ttvm decides them: there is no in-kernel irqchip. After each
// counted exit (and before the first entry), when the environment has an
// NMI or interrupt pending, the backend hands it to KVM: an NMI at once
// (KVM_NMI); a vector only where kvm_run says the guest can take it (IF=1,
// no shadow): it is acknowledged then and given to KVM_INTERRUPT, else the
// backend asks for an interrupt window and does so when that opens. KVM
// delivers it at that instruction boundary, the first after the access
// that exited where the guest accepts it. Nothing is injected at a kick or anywhere else: a
// timer that falls due while the guest computes without exiting is taken
// at the next exit or stop point.
//
// Stop points (docs/kvm-recording.md, "Between exits"). run() gives the
// record loop back after its wall slice (setWallSlice: the loop's next timer
// deadline, 1 to 20 ms) so that timers fall due and the loop sees Ctrl-C and
// --timeout. A guest that does not exit would never return: a helper thread
// kicks the vCPU out (a signal; KVM_RUN returns at an instruction boundary)
// when the slice ends inside run(). Where the machine then has an event the
// guest can take, that boundary (and any interrupt window's) is a counted
// exit, a *stop point*: the backend steps past a possible interrupt shadow,
// reads the dirty log of every RAM slot and keeps the events
// (takeStopPoint) that let the replay find that boundary by its state, and
// offers the machine's interrupts there as after any exit.
//
// What KVM does not trap (docs/kvm-recording.md). The guest's CPUID is
// the machine's model, which `--cpuid-hide` may have stripped of TSC,
// RDTSCP, RDRAND, RDSEED and RDPID. MSRs: where the host's KVM can (5.10+),
// every RDMSR and WRMSR KVM would answer itself exits to user space
// (kvm::Vm::msrsToUserSpace; the state MSRs of kvm::inKernelMsrs() stay in
// the kernel), where the backend answers as the emulator does: an emulator
// CPU executes the instruction on KVM's state, reading a machine-owned MSR
// (x2APIC, TSC deadline) from the machine, which logs it, and IA32_TSC from
// the virtual clock (logged as kRdtsc). Such an exit is counted. The TSC:
// its frequency is set to the model's (KVM_SET_TSC_KHZ, where the host
// allows it); RDTSC still reads it without an exit, and the replay stops
// there naming the instruction, unless its page was emulated (create()'s
// `emulateTscPages`, `record --kvm-trap-tsc`).
//
// Failures (INTERNAL_ERROR, FAIL_ENTRY, an exit ttvm does not handle, an
// ioctl refused) stop run() with StepOutcome::kStopRequested and a
// message in failure(); the record loop ends the trace there with the state.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "ttvm/base/result.h"
#include "ttvm/emulator/cpu.h"
#include "ttvm/kvm/kvm.h"
#include "ttvm/machine/cpu_backend.h"
#include "ttvm/machine/stop_point.h"

namespace ttvm {

// The guest-physical stretches of RAM that become KVM memory slots:
// [0, ramBytes) minus the MMIO holes (sorted, disjoint). Errors name a
// stretch that is not a whole number of pages.
Result<std::vector<PhysicalMemory::Range>> kvmRamSlots(
    uint64_t ramBytes, std::span<const PhysicalMemory::Range> holes);

// The RAM pages (sorted page numbers) whose bytes hold the encoding of
// RDTSC (0F 31) or RDTSCP (0F 01 F9), wherever it starts: a page where one
// ends that began on the page before counts too. Pages inside `holes` are
// left out. These are the pages `--kvm-trap-tsc` keeps out of KVM's memory
// (see KvmBackend::create).
std::vector<uint64_t> tscReadingPages(std::span<const uint8_t> ram,
                                      std::span<const PhysicalMemory::Range> holes);

// The hidden segment state KVM reports on AMD SVM, in the emulator's terms
// (CpuModel's architecture): `now` as read back, `before` the state the
// backend last reported. Two differences the guest cannot observe, seen on
// the nested VM's kvm-amd (the demo guest):
//  - a usable code or data segment's type has its accessed bit set (every
//    load sets it in the descriptor; SVM reports the type as it was read);
//  - a data segment loaded with a null selector keeps its hidden limit, as
//    the emulator does (SVM reports 0).
//  - a data segment made unusable by an IRET to an outer level (DPL < CPL)
//    keeps its attributes with the unusable bit, as the emulator does (SVM
//    reports it not present: P clear; debug_tf's cpl3 case).
//  - CS of a conforming code segment entered from an outer level has the
//    CPL as its DPL, as the emulator keeps it (SVM: the descriptor's DPL,
//    the CPL in SS's; segments' far CALL from CPL 3 to a DPL-0 one).
void normalizeSvmSegments(CpuState& now, const CpuState& before);

// KVM's emulator runs a REP string instruction's I/O iterations in one go
// and leaves the vCPU at the instruction with its count exhausted and RF
// set, for a final pass that only moves RIP (measured: REP INSB of 16 bytes
// in the nested VM). The emulator's boundary there is after the
// instruction: when `code` (the bytes at RIP) is a REP-prefixed string
// instruction, its count register (by address size) is 0 and RF is set,
// moves RIP past it and clears RF. Returns whether it did.
bool completeRepRestart(CpuState& s, std::span<const uint8_t> code);

// The legacy and REX prefixes of the instruction whose bytes are `code`, in
// `mode`, as a string instruction reads them: REP/REPNE, the address size
// (0x67 switches it) and the opcode byte after them (length 0 when `code`
// holds prefixes only).
struct StringPrefixes {
  bool rep = false;
  uint64_t addrMask = ~0ull;  // the address size's: RCX, RSI and RDI count in it
  size_t length = 0;          // prefixes and opcode byte
  uint8_t opcode = 0;
  bool isPortString() const { return length != 0 && opcode >= 0x6C && opcode <= 0x6F; }
  bool isString() const {
    return isPortString() || (opcode >= 0xA4 && opcode <= 0xA7) ||
           (opcode >= 0xAA && opcode <= 0xAF);
  }
};
StringPrefixes stringPrefixes(std::span<const uint8_t> code, CpuMode mode);

// The linear address of RIP in `s` (CS's base outside 64-bit mode).
uint64_t linearRipOf(const CpuState& s);

// Whether the instruction executed just before an instruction boundary may
// have opened an interrupt shadow (STI, MOV SS, POP SS): `before` holds the
// bytes just before the boundary (up to 15, fewer where they are not
// mapped). None of the three is a branch, so such an instruction ends
// exactly at the boundary; true when some suffix of `before` decodes in
// `mode` to one of them with exactly its length. Conservative: the bytes of
// another instruction can end like one (MOV AL, 0xFB ends with STI's 0xFB),
// and a branch may have led there instead.
bool mayFollowShadowOpener(std::span<const uint8_t> before, CpuMode mode);

class KvmBackend final : public machine::CpuBackend {
 public:
  // A VM with one vCPU over `memory` (the machine's RAM and MMIO holes),
  // showing the guest `model`'s CPUID. `kvm` need not outlive the backend;
  // `env` and the RAM must.
  // With `stopPoints`, a kick is a stop point (see above) and setWallSlice
  // takes effect; without, a kick only gives the loop back (no exit counted,
  // nothing injected there) and run() lasts up to 20 ms.
  //
  // With `emulateTscPages` (`ttvm record --kvm-trap-tsc`), the pages of
  // RAM that hold RDTSC or RDTSCP when the backend is made
  // (tscReadingPages) are left out of KVM's memory slots. KVM cannot fetch
  // an instruction there: it exits (KVM_INTERNAL_ERROR_EMULATION, at every
  // privilege level with kvm::Vm::exitOnEmulationFailure) and the backend
  // runs that one instruction in ttvm's emulator on KVM's state, through
  // the environment, which logs the TSC an RDTSC reads (the virtual clock)
  // as it logs port reads. Such an instruction is a counted exit when it
  // made an access (a port, MMIO, the TSC, an MSR) or halted, and is
  // otherwise invisible to the trace: the replay runs it in the emulator
  // anyway. The guest's data accesses to those pages from code KVM runs
  // exit as MMIO and are served from RAM, uncounted. Pages the guest
  // writes later are not scanned: an RDTSC it writes there runs under KVM
  // unrecorded, and the replay stops at it, as without the option.
  static Result<std::unique_ptr<KvmBackend>> create(const kvm::Kvm& kvm, const CpuModel& model,
                                                    PhysicalMemory memory, Environment& env,
                                                    bool stopPoints = false,
                                                    bool emulateTscPages = false);
  ~KvmBackend() override;

  // Has KVM map every RAM page of its slots below 4 GiB in its nested page
  // tables now, before the guest runs (`ttvm lockstep`): a short loop run in
  // the VM at the start of the first slot (flat 32-bit protected mode,
  // paging off) reads and writes back one dword of each page, then HLT; the
  // loop's bytes are put back. What it is for: an exit in the middle of an
  // event delivery, which the first touch of a page (an NPF) is, makes the
  // nested VM's KVM deliver the chain again from the next instruction
  // where an INT n raised it (QEMU's SVM reports the INT in EXITINTINFO, KVM
  // re-injects it past the instruction without NRIPS: docs/kvm-recording.md,
  // "An event chain cut by an exit"). Without dirty logging (no stop points)
  // KVM keeps the mappings. Each page is an NPF exit: 0.28 ms in the nested
  // VM (1.1 s for 16 MiB, 5.2 s for 64 MiB), so `ttvm lockstep` asks for it
  // (--map-ram). Call it before setState; it leaves the vCPU's registers to
  // that.
  Status mapAllRam();

  Backend kind() const override { return Backend::kKvm; }
  bool countsSteps() const override { return false; }
  // Runs until `maxSteps` more exits were counted, HLT (kHalted), a triple
  // fault, the environment's stopRequested() after an exit, a failure
  // (kStopRequested with failure()), or a kick (kRetired). The state is read
  // back from KVM before it returns, with the last access's instruction
  // completed.
  StepResult run(uint64_t maxSteps) override;
  // One instruction under KVM_GUESTDBG_SINGLESTEP (a REP string instruction
  // KVM's emulator completes counts as one).
  StepResult step() override;
  const CpuState& state() const override { return state_; }
  void setState(const CpuState& state) override;
  void inject(const machine::InjectedEvent& e) override;
  bool pendingInjection() const override { return injectVector_.has_value() || injectNmi_; }
  bool readLinear(uint64_t linear, std::span<uint8_t> out) const override;
  // KVM's dirty log is not used yet: while tracking is on, every RAM page
  // counts as dirty (a superset, which is what a checkpoint copier needs).
  void setDirtyTracking(bool on) override { dirtyTracking_ = on; }
  std::vector<uint64_t> takeDirtyPages() override;
  const std::vector<std::string>& unimplementedLog() const override { return unimplemented_; }
  const std::string& failure() const override { return failure_; }
  void setWallSlice(std::chrono::nanoseconds slice) override;
  std::vector<TraceEvent> takeStopPoint() override;
  // step() reads the state back through kvm_run's synced registers (no
  // ioctl) and, of the parts that cost one each, only `parts`.
  void setStepReadBack(StateParts parts) override { stepParts_ = parts; }
  void refreshState(StateParts parts) override;
  // The vCPU's ioctls so far (kvm::Vcpu::ioctlStats).
  const std::vector<kvm::Vcpu::IoctlStat>& ioctlStats() const { return vcpu_.ioctlStats(); }
  std::vector<uint64_t> emulatedPages() const override { return emulated_; }

  // Exits of each kind since creation (counted or not), for summaries and tests.
  struct ExitCounts {
    uint64_t io = 0, mmio = 0, msr = 0, hlt = 0, window = 0, kicks = 0, stops = 0;
    uint64_t setTpr = 0;         // MOVs to CR8 that lowered it (KVM_EXIT_SET_TPR)
    uint64_t repairedTraps = 0;  // guest single-step traps after MMIO writes queued by ttvm
    uint64_t repIterations = 0;  // REP string port iterations run one by one under TF
    uint64_t ioBreakpoints = 0;  // guest I/O breakpoint traps queued by ttvm after port exits
    uint64_t shadowSteps = 0;    // instructions stepped past a possible shadow before a stop point
    uint64_t emulated = 0;       // instructions ttvm's emulator ran (fetched from emulated pages)
    uint64_t emulatedRam = 0;    // accesses to emulated pages served from RAM
  };
  const ExitCounts& exitCounts() const { return counts_; }
  // What the PMU probe found (kvm::probeGuestBranchCounter), for -v.
  const std::string& pmuNote() const { return pmuNote_; }
  // Where RDMSR/WRMSR are answered and what the guest's TSC runs at, for -v.
  const std::string& msrNote() const { return msrNote_; }
  const std::string& tscNote() const { return tscNote_; }

 private:
  KvmBackend(kvm::Vm vm, kvm::Vcpu vcpu, const CpuModel& model, PhysicalMemory memory,
             Environment& env);
  // Hands the machine's (or an injected) interrupt or NMI to KVM.
  Status offerEvents();
  // Answers an I/O or MMIO exit through the environment.
  void serve(const kvm::VcpuExit& e);
  // Answers an MSR exit as the emulator would (see above).
  Status serveMsr(const kvm::VcpuExit& e);
  // Whether `e` is an MMIO exit on an emulated page; if so, serves it from
  // RAM (no counted exit, nothing logged).
  bool serveEmulatedRam(const kvm::VcpuExit& e);
  bool isEmulatedPage(uint64_t physical) const;
  // Runs the instruction KVM could not fetch (an emulated page's) in the
  // emulator on KVM's state, and the ones after it while they are on
  // emulated pages, none of them has made an access or halted, the wall
  // clock is before `wallEnd`, no interrupt window the backend asked KVM
  // for has opened (`*windowOpened` then, as KVM would exit) and (with
  // `single`) only that one was run; then gives KVM the state after them.
  // kRetired, kTripleFault, or kStopRequested with failure().
  // (`start`: the state to run from instead of KVM's.)
  StepResult emulateRun(const kvm::VcpuExit& e, std::chrono::steady_clock::time_point wallEnd,
                        bool single, bool* windowOpened = nullptr, const CpuState* start = nullptr);
  // KVM runs the iterations of a REP string port instruction in one go
  // (count > 1), so a guest single-stepping it (its own TF) would trap once,
  // after the last, where the CPU traps after every iteration. At such an
  // exit with TF set: OUTS, the iteration KVM ran goes to the machine and
  // its trap is queued; INS, KVM's batch is given nothing to do (the bytes
  // already at the destination) and one iteration and its trap run in the
  // emulator from the state before the instruction (a counted exit).
  // nullopt where TF is clear or the instruction is no INS/OUTS.
  // `hostStep` (step(), under KVM_GUESTDBG_SINGLESTEP, whose TF KVM hides
  // from RFLAGS): a REP INS/OUTS runs one iteration whatever TF reads, and
  // the step ends after it, as the host's TF traps; no trap is queued.
  std::optional<StepResult> stepRepPortIteration(const kvm::VcpuExit& e, bool hostStep = false);
  // Completes the last access (answering further ones it makes) and reads the
  // state back (of the parts that cost an ioctl, only `parts`).
  Status settle(StateParts parts = state_part::kAll);
  // After an MMIO write exit: KVM loses the single-step trap the guest's own
  // TF owes after it (x86_emulate_instruction checks single-step only when
  // it does not exit; complete_emulated_mmio's FIXME: the case ttvm began
  // from). When TF is set, completes the access and queues the #DB (after
  // each iteration of a REP string instruction writing MMIO, as the
  // architecture traps).
  Status deliverLostSingleStep();
  // After a port exit (one access, IN or OUT): KVM emulates the instruction,
  // so the hardware never checks the guest's I/O breakpoints (CR4.DE, R/Wn =
  // 10) for it. Where the access meets one, completes it and queues the #DB
  // with those B0-B3 (joining KVM's own single-step trap when TF is set).
  Status deliverIoBreakpoint(const kvm::IoExit& io);
  StepResult fail(std::string message);
  StepResult runUntil(uint64_t endExit, std::chrono::steady_clock::time_point wallEnd);
  // One instruction under KVM_GUESTDBG_SINGLESTEP, offering the machine's
  // events before it only when `offer`.
  StepResult stepInstruction(bool offer);
  // Reads and clears the dirty logs, and queues the stop point's events.
  Status recordStopPoint();
  // Whether offerEvents() would hand KVM an NMI or a vector now.
  bool injectionDue();
  // A stop point where ttvm may inject: first steps the guest past any
  // instruction that may have opened an interrupt shadow at the current
  // boundary (mayFollowShadowOpener), so that the point is one where the
  // architecture lets an interrupt in (see kvm_backend.cc), then records it.
  // kRetired, or how a stepped instruction ended the run.
  StepResult stopHere();
  uint64_t linearRip() const;
  // The instruction bytes at RIP in `s` (up to 15, fewer where the rest is
  // not mapped), through the emulator's page walk.
  std::span<const uint8_t> codeAt(const CpuState& s, std::span<uint8_t, 15> buffer) const;
  // The disassembly of the instruction at RIP, for logs.
  std::string instructionAtRip() const;
  void kicker();
  void armKick(std::chrono::steady_clock::time_point at);
  void disarmKick();

  kvm::Vm vm_;
  kvm::Vcpu vcpu_;
  const CpuModel& model_;
  PhysicalMemory memory_;
  Environment& env_;
  CpuState state_;
  bool exitPending_ = false;  // the last exit was I/O or MMIO, not completed yet
  bool halted_ = false;
  bool offerDue_ = true;       // a counted exit happened since the last offerEvents()
  bool windowWanted_ = false;  // KVM was asked to exit when an interrupt window opens
  std::optional<uint8_t> injectVector_;
  bool injectNmi_ = false;
  bool dirtyTracking_ = false;
  StateParts stepParts_ = state_part::kAll;  // setStepReadBack
  ExitCounts counts_;
  std::string failure_;
  std::vector<std::string> unimplemented_;
  mutable std::unique_ptr<Cpu> walker_;  // readLinear's page walker
  std::unique_ptr<Environment> msrEnv_;  // serveMsr's: MSRs and the TSC only
  std::unique_ptr<Cpu> msrCpu_;          // serveMsr's emulator
  std::vector<uint64_t> emulated_;       // the emulated pages, sorted
  class EmulatedEnvironment;
  std::unique_ptr<EmulatedEnvironment> emuEnv_;  // emulateRun's
  std::unique_ptr<Cpu> emuCpu_;                  // emulateRun's emulator
  // Pages written where KVM's dirty log cannot see (by the emulator, or
  // served from RAM) since the last stop point: the next one lists them.
  std::vector<uint64_t> emulatedDirty_;
  std::vector<PhysicalMemory::Range> slots_;  // the RAM slots, by slot number
  std::vector<uint64_t> dirtyBitmap_;
  std::vector<TraceEvent> stopEvents_;  // the last stop point's, not taken yet
  std::string pmuNote_, msrNote_, tscNote_;
  bool stopPoints_ = false;
  bool kicked_ = false;  // the last run() ended at a kick, no stop point made yet
  std::chrono::nanoseconds wallSlice_ = std::chrono::milliseconds(20);
  // The kicker thread: signals the vCPU when a run() call passes kickAt_.
  pthread_t vcpuThread_{};
  std::mutex kickMutex_;
  std::condition_variable kickCv_;
  uint64_t runCalls_ = 0;  // run() calls so far
  uint64_t kickRun_ = 0;   // the run() call to kick at kickAt_, 0: none
  std::chrono::steady_clock::time_point kickAt_;
  bool stopKicker_ = false;
  std::thread kicker_;
};

}  // namespace ttvm
