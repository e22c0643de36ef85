#include "ttvm/replayer/kvm_steps.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "ttvm/base/hex.h"
#include "ttvm/base/log.h"
#include "ttvm/emulator/cpu.h"
#include "ttvm/emulator/disassembler.h"
#include "ttvm/formats/trace_writer.h"
#include "ttvm/machine/devices/local_apic.h"
#include "ttvm/machine/machine.h"
#include "ttvm/machine/replay_environment.h"
#include "ttvm/machine/stop_point.h"

namespace ttvm {
namespace {

// Steps the emulator may run past the last event without reaching the next
// one before the search gives up (a guest that loops where the hardware
// exited has diverged; this bounds how long that takes to say).
constexpr uint64_t kMaxStepsBetweenEvents = 200'000'000;

uint64_t linearOf(const CpuState& s, uint64_t rip) {
  return cpuMode(s) == CpuMode::kLong64 ? rip : (s.segment(SegReg::kCs).base + rip) & 0xFFFFFFFFull;
}

// The instruction at `rip` in the CPU's current mode (length 0: unmapped or
// not an instruction).
Disassembly decodeAt(const Cpu& cpu, uint64_t rip) {
  const CpuState& s = cpu.state();
  std::vector<uint8_t> bytes(15);
  for (size_t n = 15; n > 0; --n) {
    bytes.resize(n);
    if (cpu.readLinear(linearOf(s, rip), bytes)) return disassemble(bytes, cpuMode(s), rip);
  }
  return {};
}

// The disassembly of the instruction at `rip` in the CPU's current mode.
std::string instructionAt(const Cpu& cpu, uint64_t rip) {
  const CpuState& s = cpu.state();
  std::vector<uint8_t> byte(1);
  if (!cpu.readLinear(linearOf(s, rip), byte)) return "(unmapped)";
  const Disassembly d = decodeAt(cpu, rip);
  return d.length != 0 ? d.text : "(bad instruction)";
}

// Answers the emulator from the KVM trace's events in order and stamps each
// with the step it is consumed at.
class ExitOrderEnvironment final : public Environment {
 public:
  // An input the guest read without an exit (see unrecordedKind()).
  enum class Unrecorded : uint8_t { kNone, kTsc, kRandom, kMsrRead, kMsrWrite };
  // `emulatedPages`: the trace header's (sorted), whose instructions ran in
  // ttvm's emulator under KVM, so an RDTSC there has its value in the trace.
  ExitOrderEnvironment(const std::vector<TraceEvent>& events,
                       const std::vector<uint64_t>& emulatedPages)
      : events_(events), emulatedPages_(emulatedPages) {}
  // The CPU whose step count stamps the events (and whose instruction
  // tells an RDMSR of IA32_TSC from RDTSC).
  void bindCpu(const Cpu* cpu) {
    cpu_ = &cpu->state();
    emulator_ = cpu;
  }

  uint32_t portIn(uint16_t port, unsigned size) override {
    const TraceEvent* e = take(EventKind::kPortIn, port, size, std::nullopt, "in");
    return e != nullptr ? uint32_t(e->value) : ~0u;
  }
  void portOut(uint16_t port, unsigned size, uint32_t value) override {
    take(EventKind::kPortOut, port, size, value, "out");
  }
  uint64_t mmioRead(uint64_t addr, unsigned size) override {
    const TraceEvent* e = take(EventKind::kMmioRead, addr, size, std::nullopt, "mmio read");
    return e != nullptr ? e->value : ~0ull;
  }
  void mmioWrite(uint64_t addr, unsigned size, uint64_t value) override {
    take(EventKind::kMmioWrite, addr, size, value, "mmio write");
  }
  // What KVM let the guest read without an exit is not in the trace: the
  // replay stops at the instruction (assignSteps names it).
  // RDMSR of IA32_TSC and of the machine's MSRs, and their WRMSRs, left
  // KVM (KvmBackend::serveMsr) and are in the trace in order; RDTSC never
  // is, but on a page ttvm emulated (`record --kvm-trap-tsc`), whose RDTSC
  // and RDTSCP ran in ttvm's emulator and are in the trace in order too.
  // Where the trace does not have the access next (a trace recorded where
  // KVM answered MSRs itself, or a divergence), it is unrecorded.
  uint64_t readTsc() override {
    latchBlockedNmis();
    const TraceEvent* e = peek();
    if (problem_.empty() && e != nullptr && e->kind == EventKind::kRdtsc) {
      const Disassembly d = decodeAt(*emulator_, cpu_->rip);
      if (d.text.starts_with("rdmsr") || (d.text.starts_with("rdtsc") && onEmulatedPage(d))) {
        stamp(*e);
        ++next_;
        return e->value;
      }
    }
    unrecorded(Unrecorded::kTsc);
    return 0;
  }
  std::optional<uint64_t> readRandom(unsigned) override {
    unrecorded(Unrecorded::kRandom);
    return std::nullopt;
  }
  std::optional<uint64_t> readMsr(uint32_t index) override {
    // A read the recorder's machine refused (#GP) left KVM too but was not
    // logged: the machine's answer depends on the index and the x2APIC
    // mode alone, so the replay refuses it again without an event.
    if (problem_.empty() && !machine::LocalApic::answersMsrRead(index, cpu_->msr.apicBase))
      return std::nullopt;
    latchBlockedNmis();
    const TraceEvent* e = peek();
    if (problem_.empty() && e != nullptr && e->kind == EventKind::kMsrRead && e->address == index) {
      stamp(*e);
      ++next_;
      return e->value;
    }
    unrecorded(Unrecorded::kMsrRead, index);
    return std::nullopt;
  }
  bool writeMsr(uint32_t index, uint64_t value) override {
    latchBlockedNmis();
    const TraceEvent* e = peek();
    if (problem_.empty() && e != nullptr && e->kind == EventKind::kMsrWrite &&
        e->address == index && e->value == value) {
      stamp(*e);
      ++next_;
      return (e->flags & TraceEvent::kFlagOk) != 0;
    }
    unrecorded(Unrecorded::kMsrWrite, index);
    return false;
  }
  bool interruptPending() override {
    latchBlockedNmis();
    return nextIs(EventKind::kInterrupt);
  }
  uint8_t acknowledgeInterrupt() override {
    const TraceEvent* e = take(EventKind::kInterrupt, 0, 0, std::nullopt, "interrupt");
    return e != nullptr ? uint8_t(e->value) : 0;
  }
  bool nmiPending() override { return latched_.has_value() || nextIs(EventKind::kNmi); }
  void acknowledgeNmi() override {
    if (latched_) {
      stamp(*latched_);
      latched_.reset();
      return;
    }
    take(EventKind::kNmi, 0, 0, std::nullopt, "nmi");
  }
  // KVM takes an NMI given while NMIs are blocked (in an NMI handler) and
  // delivers it once they are not (after IRET), as the CPU latches one;
  // further ones meanwhile are lost. The trace has each where ttvm gave it,
  // before accesses the guest made while it waited: an NMI event met while
  // the emulator's NMIs are blocked is latched, or dropped when one already
  // is, and the events after it come first.
  void latchBlockedNmis() {
    while (problem_.empty() && cpu_->pending.nmiBlocked && nextIs(EventKind::kNmi)) {
      if (!latched_) latched_ = events_[next_];
      ++next_;
    }
  }
  bool stopRequested() override { return !problem_.empty(); }

  // The next event, or null at the end.
  const TraceEvent* peek() const { return next_ < events_.size() ? &events_[next_] : nullptr; }
  // Events consumed so far.
  size_t position() const { return next_; }
  // Consumes a stop point's event: it served to place the events after it
  // and is not part of the stepped trace.
  void skip() { ++next_; }
  // Consumes a passive event at the current boundary; a state digest is
  // checked first (KVM's hashes the state at step 0) and then stamped as a
  // digest of the emulator's state at this step. False when it differs.
  bool takePassive() {
    TraceEvent e = events_[next_++];
    if (e.kind == EventKind::kStateDigest) {
      CpuState atZero = *cpu_;
      atZero.steps = 0;
      if (stateDigest(atZero) != e.value) {
        problem_ = "the emulator's state differs from KVM's at exit " + std::to_string(e.step) +
                   " (state digest " + hex(stateDigest(atZero)) + ", recorded under KVM " +
                   hex(e.value) + ")";
        return false;
      }
      e.value = stateDigest(*cpu_);
    }
    stamp(e);
    return true;
  }
  const std::vector<TraceEvent>& stamped() const { return out_; }
  const std::string& problem() const { return problem_; }
  // Set when the problem is an input KVM did not trap (the instruction
  // asked for it), with the MSR index for kMsrRead/kMsrWrite.
  Unrecorded unrecordedKind() const { return unrecorded_; }
  uint32_t unrecordedMsr() const { return unrecordedMsr_; }

  // Whether a byte of the instruction at RIP lies on an emulated page (KVM
  // could not fetch it whole, so ttvm's emulator ran it).
  bool onEmulatedPage(const Disassembly& d) const {
    for (uint64_t at : {cpu_->rip, cpu_->rip + std::max<uint64_t>(d.length, 1) - 1}) {
      const std::optional<uint64_t> physical = emulator_->translate(linearOf(*cpu_, at));
      if (physical &&
          std::binary_search(emulatedPages_.begin(), emulatedPages_.end(), *physical / kPageSize))
        return true;
    }
    return false;
  }

 private:
  bool nextIs(EventKind k) const {
    const TraceEvent* e = peek();
    return problem_.empty() && e != nullptr && e->kind == k;
  }
  void stamp(const TraceEvent& e) {
    TraceEvent s = e;
    s.step = cpu_->steps;
    out_.push_back(s);
  }
  const TraceEvent* take(EventKind kind, uint64_t address, unsigned size,
                         std::optional<uint64_t> value, const std::string& what) {
    if (!problem_.empty()) return nullptr;
    latchBlockedNmis();
    const TraceEvent* e = peek();
    if (e == nullptr || e->kind != kind || e->address != address || e->size != size ||
        (value && *value != e->value)) {
      std::string did = what;
      if (kind != EventKind::kInterrupt && kind != EventKind::kNmi)
        did += " " + hex(address) + " size " + std::to_string(size);
      if (value) did += " value " + hex(*value);
      problem_ = "the emulator made " + did + " where the trace's next event is " +
                 (e != nullptr ? describeEvent(*e) : std::string("the end of the trace"));
      if (e != nullptr && e->kind == EventKind::kStopPoint)
        problem_ += " (no boundary before it had the state KVM stopped at)";
      return nullptr;
    }
    ++next_;
    stamp(*e);
    return e;
  }
  void unrecorded(Unrecorded kind, uint32_t msr = 0) {
    if (!problem_.empty()) return;
    problem_ = "an input KVM did not trap";
    unrecorded_ = kind;
    unrecordedMsr_ = msr;
  }

  const std::vector<TraceEvent>& events_;
  const std::vector<uint64_t>& emulatedPages_;
  std::optional<TraceEvent> latched_;  // an NMI KVM held until NMIs were unblocked
  const CpuState* cpu_ = nullptr;
  const Cpu* emulator_ = nullptr;
  size_t next_ = 0;
  std::vector<TraceEvent> out_;
  std::string problem_;
  Unrecorded unrecorded_ = Unrecorded::kNone;
  uint32_t unrecordedMsr_ = 0;
};

// "step S, rip R: disassembly" for the instruction at `rip` (default: the
// CPU's next one).
std::string where(const Cpu& cpu, std::optional<uint64_t> at = std::nullopt,
                  std::optional<uint64_t> step = std::nullopt) {
  const uint64_t rip = at.value_or(cpu.state().rip);
  return "step " + std::to_string(step.value_or(cpu.state().steps)) + ", rip " + hex(rip) + ": " +
         instructionAt(cpu, rip);
}

// Why the value an instruction read is not in a KVM trace, from what it is
// (`mnemonic`, the disassembly's first word), what it asked the
// environment for, and whether the trace's CPU model showed its feature.
std::string whyUnrecorded(const CpuModel& model, std::string_view mnemonic,
                          ExitOrderEnvironment::Unrecorded kind, uint32_t msr, bool pagesEmulated) {
  using U = ExitOrderEnvironment::Unrecorded;
  auto hidden = [&](const char* feature) {
    return !showsFeature(model, *findCpuidFeature(feature));
  };
  // With --kvm-trap-tsc, an RDTSC the recording did not emulate is on a
  // page that did not hold it when the guest started.
  const std::string notOnAPage =
      pagesEmulated ? "; it is not on a page ttvm emulated: written there after the start" : "";
  if (mnemonic == "rdtsc")
    return (hidden("tsc") ? "CPUID hid the TSC; the guest executed it anyway"
                          : "KVM lets the guest read the host's TSC without an exit") +
           notOnAPage;
  if (mnemonic == "rdtscp")  // shown (hidden, the emulator raises #UD)
    return "KVM lets the guest read the host's TSC without an exit" + notOnAPage;
  if (mnemonic == "rdrand" || mnemonic == "rdseed") {
    const char* feature = mnemonic == "rdrand" ? "rdrand" : "rdseed";
    const char* name = mnemonic == "rdrand" ? "RDRAND" : "RDSEED";
    return hidden(feature) ? std::string("CPUID hid ") + name + "; the guest executed it anyway"
                           : "KVM lets the guest read the host's generator without an exit";
  }
  if (kind == U::kTsc && mnemonic == "rdmsr")
    return "KVM answered RDMSR of IA32_TSC in the kernel, from the host's TSC";
  if (kind == U::kTsc) return "a write of IA32_TSC depends on the host's TSC when it happened";
  if (kind == U::kMsrRead || kind == U::kMsrWrite)
    return std::string("the trace holds no ") + (kind == U::kMsrRead ? "RDMSR " : "WRMSR ") +
           hex(msr) +
           " here: KVM answered it in the kernel (a trace recorded without MSR "
           "exits), or the replay took another path";
  return "KVM did not trap it";
}

}  // namespace

Result<SteppedTrace> assignSteps(const TraceReader& kvmTrace, const std::string& outPath) {
  const TraceHeader& h = kvmTrace.header();
  if (h.backend != Backend::kKvm) return makeError(kvmTrace.path() + ": not a KVM trace");
  if (!h.replayedDevices.empty())
    return makeError(kvmTrace.path() + ": a KVM trace whose devices the replay runs (" +
                     h.replayedDevices.front() + ", ...): this ttvm cannot assign its steps");
  std::vector<TraceEvent> events;
  for (size_t i = 0; i < kvmTrace.chunkCount(); ++i) {
    auto chunk = kvmTrace.readChunk(i);
    if (!chunk) return chunk.error();
    events.insert(events.end(), chunk->begin(), chunk->end());
  }
  auto init = kvmTrace.initialState();
  if (!init) return init.error();
  auto machine = machine::Machine::fromTraceHeader(h);
  if (!machine) return makeError(kvmTrace.path() + ": " + machine.error().message);
  std::span<uint8_t> ram = (*machine)->ram();
  (*machine)->clearRam();
  for (size_t k = 0; k < init->ram.pageCount(); ++k) {
    const uint64_t p = init->ram.numbers[k];
    if ((p + 1) * kPageSize > ram.size())
      return makeError(kvmTrace.path() + ": initial RAM page " + std::to_string(p) +
                       " lies beyond the machine's RAM");
    std::memcpy(ram.data() + p * kPageSize, init->ram.page(k).data(), kPageSize);
  }

  CpuState start = init->cpu;
  start.steps = 0;
  ExitOrderEnvironment env(events, h.emulatedPages);
  // The reference engine, whatever the replay default (kDefaultReplayEngine):
  // the loop below calls step() (always the reference interpreter) because
  // it looks at every instruction boundary (a stop point's fingerprint, an
  // interrupt KVM delivered there), and what it assigns is written into the
  // stepped trace, which is then checked only against KVM's own digests.
  // The stepped copy replays on the default engine like any trace.
  Cpu cpu(h.cpuModel, (*machine)->physicalMemory(), env);
  cpu.setEngine(CpuEngine::kReference);
  cpu.setState(start);
  env.bindCpu(&cpu);

  std::string hiddenNote;  // a hidden instruction the emulator refused (see below)
  auto fail = [&](std::string message) {
    if (!hiddenNote.empty()) message += "; before that, at " + hiddenNote;
    return makeError(std::move(message));
  };
  bool ended = false;
  uint64_t sinceEvent = 0;
  size_t consumed = 0;
  std::vector<machine::PageRun> dirty;  // the runs before the next stop point
  uint64_t stops = 0;
  int ripOnlyMisses = 0;  // near misses logged for the next stop point
  for (;;) {
    // At this boundary: the passive events that follow what was consumed,
    // and a stop point if this boundary is where KVM stopped.
    env.latchBlockedNmis();
    for (const TraceEvent* e = env.peek(); e != nullptr; e = env.peek()) {
      if (e->kind == EventKind::kDirtyPages) {
        dirty.push_back({e->address, e->count});
        env.skip();
        continue;
      }
      if (e->kind == EventKind::kStopPoint) {
        if (cpu.state().rip != e->address) break;
        if (machine::stopQuickKey(cpu.state()) != e->count) {
          // The first few boundaries at the RIP whose general registers
          // differ, for TTVM_LOG=kvm=trace (the quick key is a hash).
          if (ripOnlyMisses < 3) {
            ++ripOnlyMisses;
            TTVM_LOG("kvm", kTrace,
                     "stop point " << e->step << " not at step " << cpu.state().steps
                                   << " (general registers differ): "
                                   << machine::describeGeneralRegisters(cpu.state()));
          }
          break;
        }
        // Descriptors' accessed bits hash as clear (traces recorded before
        // that rule hash them as they are: either definition matches).
        const std::vector<uint64_t> accessBytes = machine::descriptorAccessBytes(
            cpu.state(), [&cpu](uint64_t linear) { return cpu.translate(linear); });
        if (machine::stopFingerprint(cpu.state(), ram, dirty, accessBytes) != e->value &&
            (accessBytes.empty() ||
             machine::stopFingerprint(cpu.state(), ram, dirty) != e->value)) {
          TTVM_LOG(
              "kvm", kTrace,
              "stop point " << e->step << " not at step " << cpu.state().steps << ": "
                            << machine::describeStopState(cpu.state(), ram, dirty, accessBytes));
          break;
        }
        env.skip();
        dirty.clear();
        ripOnlyMisses = 0;
        ++stops;
        continue;
      }
      if (!machine::isPassiveEvent(e->kind)) break;
      const bool end = e->kind == EventKind::kEndOfRun;
      if (!env.takePassive())
        return fail(kvmTrace.path() + ": at " + where(cpu) + ": " + env.problem());
      if (end) ended = true;
    }
    if (ended || env.peek() == nullptr) break;
    const uint64_t rip = cpu.state().rip, step = cpu.state().steps;
    const StepResult r = cpu.step();
    if (hiddenNote.empty() &&
        (r.outcome == StepOutcome::kException || r.outcome == StepOutcome::kTripleFault)) {
      // #UD (or what its delivery became) for an instruction the model
      // hides: RDTSCP without its CPUID bit
      // (the emulator enforces it, as KVM on Intel and AMD hardware does),
      // RDPID (never shown; not in the emulator). KVM on an AMD host lets
      // the guest run RDPID anyway, and the nested VM's CPU runs a hidden
      // RDTSCP: the replay goes on with the #UD, and names this instruction
      // if it later leaves the trace's path.
      const std::string text = instructionAt(cpu, rip);
      const char* feature =
          text.starts_with("rdtscp") && !showsFeature(h.cpuModel, *findCpuidFeature("rdtscp"))
              ? "RDTSCP"
          : text.starts_with("rdpid") ? "RDPID"
                                      : nullptr;
      if (feature != nullptr)
        hiddenNote = "step " + std::to_string(step) + ": " + text + " at " + hex(rip) +
                     ": the emulator raised #UD (CPUID hid " + feature +
                     "); under KVM the guest may have executed it, reading " +
                     (std::string(feature) == "RDPID" ? "IA32_TSC_AUX" : "the host's TSC") +
                     ", which the trace does not hold";
    }
    if (env.unrecordedKind() != ExitOrderEnvironment::Unrecorded::kNone) {
      // "step N: rdrand eax at 0x...: value not recorded under KVM (...)"
      const std::string text = instructionAt(cpu, rip);
      const std::string mnemonic = text.substr(0, text.find(' '));
      return fail(kvmTrace.path() + ": step " + std::to_string(step) + ": " + text + " at " +
                  hex(rip) + ": value not recorded under KVM (" +
                  whyUnrecorded(h.cpuModel, mnemonic, env.unrecordedKind(), env.unrecordedMsr(),
                                !h.emulatedPages.empty()) +
                  "; the trace's next event is " +
                  (env.peek() != nullptr ? describeEvent(*env.peek()) : std::string("its end")) +
                  ")");
    }
    if (!env.problem().empty())
      return fail(kvmTrace.path() + ": assigning steps to the KVM trace's exits, at " +
                  where(cpu, rip, step) + ": " + env.problem());
    if (env.position() != consumed) {
      consumed = env.position();
      sinceEvent = 0;
    } else if (++sinceEvent > kMaxStepsBetweenEvents) {
      return fail(kvmTrace.path() + ": the emulator ran " + std::to_string(kMaxStepsBetweenEvents) +
                  " steps without making the trace's next access (" + describeEvent(*env.peek()) +
                  "), now at " + where(cpu));
    }
    if (r.outcome == StepOutcome::kHalted && !env.interruptPending() && !env.nmiPending())
      return fail(kvmTrace.path() + ": the emulator halted at " + where(cpu) +
                  " where the trace's next event is " + describeEvent(*env.peek()));
    if (r.outcome == StepOutcome::kTripleFault) {
      const TraceEvent* e = env.peek();
      if (e == nullptr || !machine::isPassiveEvent(e->kind))
        return fail(kvmTrace.path() + ": the emulator triple-faulted at " + where(cpu) +
                    " before the trace's " + describeEvent(*e));
    }
  }

  TraceHeader out = h;
  out.backend = Backend::kEmulator;
  out.traceId = {};
  out.host = h.host + "; recorded under KVM, steps assigned by the emulator";
  InitialState outInit = *init;
  outInit.cpu.steps = 0;
  TraceWriter::Options wo;
  auto w = TraceWriter::create(outPath, out, outInit, wo);
  if (!w) return makeError("cannot write the stepped trace: " + w.error().message);
  for (const TraceEvent& e : env.stamped()) (*w)->append(e);
  SteppedTrace result;
  result.steps = cpu.state().steps;
  result.events = env.stamped().size();
  result.stopPoints = stops;
  if (!kvmTrace.end()) {
    // A KVM trace without footer (its recorder was killed) gives a stepped
    // trace without footer: its end was never recorded, so nothing may
    // claim one (`ttvm verify` then says the end is unchecked, and
    // `ttvm recover` completes the KVM trace itself).
    result.exits = kvmTrace.chunkCount() == 0 ? 0 : kvmTrace.chunks().back().lastStep;
    if (Status st = (*w)->flush(); !st.ok())
      return makeError("cannot write the stepped trace: " + st.error().message);
    return result;
  }
  TraceEnd end = *kvmTrace.end();
  result.exits = end.steps;
  // The recorded final state stays KVM's; its position is the emulator's.
  end.steps = result.steps;
  end.finalCpu.steps = result.steps;
  end.finalDigest = stateDigest(end.finalCpu);
  if (Status st = (*w)->close(end); !st.ok())
    return makeError("cannot write the stepped trace: " + st.error().message);
  return result;
}

Result<TraceReader> openForReplay(const std::string& path, std::string* note) {
  auto reader = TraceReader::open(path);
  if (!reader || reader->header().backend != Backend::kKvm) return reader;
  // A name of this process's own: the file is unlinked once open (the reader
  // keeps its descriptor), so nothing is left behind and two replays of one
  // trace do not write the same file.
  const char* tmp = std::getenv("TMPDIR");
  const TraceId& id = reader->header().traceId;
  const std::string stepped = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                              "/ttvm-steps-" + hex(id.hi) + hex(id.lo) + "-" +
                              std::to_string(::getpid()) + ".ttvm";
  auto s = assignSteps(*reader, stepped);
  if (!s) {
    ::unlink(stepped.c_str());
    return s.error();
  }
  auto out = TraceReader::open(stepped);
  ::unlink(stepped.c_str());
  if (out && note != nullptr)
    *note = path + ": recorded under KVM: " + std::to_string(s->exits) + " exits are " +
            std::to_string(s->steps) + " emulator steps" +
            (s->stopPoints != 0 ? " (" + std::to_string(s->stopPoints) + " stop points found)"
                                : std::string());
  return out;
}

}  // namespace ttvm
