#include "ttvm/replayer/replay_session.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "ttvm/base/hex.h"
#include "ttvm/base/log.h"
#include "ttvm/machine/machine.h"

namespace ttvm {
using ttvm::machine::DivergenceReport;
using ttvm::machine::EventPosition;
using ttvm::machine::isPassiveEvent;
using ttvm::machine::Machine;
using ttvm::machine::ReplayEnvironment;
const char* toString(SessionStopKind k) {
  switch (k) {
    case SessionStopKind::kTarget: return "target";
    case SessionStopKind::kEnd: return "end of history";
    case SessionStopKind::kBreakpoint: return "breakpoint";
    case SessionStopKind::kWatchpoint: return "watchpoint";
    case SessionStopKind::kException: return "exception";
    case SessionStopKind::kInterrupt: return "interrupt";
    case SessionStopKind::kDivergence: return "divergence";
    case SessionStopKind::kCancelled: return "cancelled";
  }
  return "?";
}

std::string DivergenceReport::format() const {
  std::ostringstream o;
  o << "divergence at step " << step << ": " << reason << "\n";
  o << "  rip " << hex(rip);
  if (!symbol.empty()) o << " <" << symbol << ">";
  if (!disassembly.empty()) o << ": " << disassembly;
  o << "\n";
  o << "  trace expected: " << (expected ? describeEvent(*expected) : "end of trace") << "\n";
  o << "  replay did:     " << (actual.empty() ? "nothing (no input requested)" : actual) << "\n";
  o << "  last matching:  " << (lastMatching ? describeEvent(*lastMatching) : "none") << "\n";
  return o.str();
}

ReplaySession::ReplaySession(const TraceReader& reader, std::unique_ptr<Machine> machine)
    : reader_(reader),
      machine_(std::move(machine)),
      env_(reader, nullptr),
      symbols_(reader.header()) {}

ReplaySession::~ReplaySession() = default;

Result<std::unique_ptr<ReplaySession>> ReplaySession::open(const TraceReader& reader) {
  const TraceHeader& h = reader.header();
  if (h.backend != Backend::kEmulator)
    return makeError(reader.path() +
                     ": this trace was recorded under KVM (events carry exit numbers); "
                     "replaying KVM traces is not supported yet");
  auto machine = Machine::fromTraceHeader(h);
  if (!machine.ok()) return makeError(reader.path() + ": " + machine.error().message);
  auto init = reader.initialState();
  if (!init.ok()) return init.error();
  std::unique_ptr<ReplaySession> s(new ReplaySession(reader, std::move(machine).value()));
  // RAM = the initial pages, zero elsewhere: the firmware set-up's pages are
  // given back, then the initial pages are copied in; untouched RAM is never
  // read or written, so it stays unallocated whatever the RAM size.
  std::span<uint8_t> ram = s->machine_->ram();
  s->machine_->clearRam();
  size_t next = 0;
  for (; next < init->ram.pageCount(); ++next) {
    const uint64_t p = init->ram.numbers[next];
    if (p >= ram.size() / kPageSize) break;
    std::memcpy(ram.data() + p * kPageSize, init->ram.page(next).data(), kPageSize);
  }
  if (next != init->ram.pageCount())
    return makeError(reader.path() + ": initial state: RAM page " +
                     std::to_string(init->ram.numbers[next]) + " lies beyond the machine's " +
                     std::to_string(ram.size() >> 20) + " MiB of RAM");
  s->initialPages_ = init->ram.numbers;
  if (!h.replayedDevices.empty()) {
    // The replay-computed devices start where the recording's did (the INIT
    // frame's device state), their disks over the sectors the trace holds.
    ReplayEnvironment* env = &s->env_;
    Status st = s->machine_->attachDisksOf(
        h.machine, [env](unsigned slot, uint64_t lba, std::span<uint8_t> out) {
          return env->diskSector(slot, lba, out);
        });
    if (st.ok()) st = s->machine_->loadDeviceState(init->deviceState);
    if (!st.ok()) return makeError(reader.path() + ": initial state: " + st.error().message);
    s->env_.bindMachine(s->machine_.get());
    s->runsDevices_ = true;
  }
  s->cpu_ = std::make_unique<Cpu>(h.cpuModel, s->machine_->physicalMemory(), s->env_);
  s->cpu_->setState(init->cpu);
  s->env_.bindCpuState(&s->cpu_->state());
  if (reader.end()) {
    s->endStep_ = reader.end()->steps;
  } else {
    // No footer: the readable prefix ends at the last event or snapshot
    // (a snapshot flushes the events before it, so none is missing there).
    s->endStep_ = init->cpu.steps;
    if (!reader.chunks().empty())
      s->endStep_ = std::max(s->endStep_, reader.chunks().back().lastStep);
    if (!reader.snapshots().empty())
      s->endStep_ = std::max(s->endStep_, reader.snapshots().back().step);
  }
  if (s->endStep_ < init->cpu.steps)
    return makeError(reader.path() + ": the footer says the run ended at step " +
                     std::to_string(s->endStep_) + ", before its initial state (step " +
                     std::to_string(init->cpu.steps) + ")");
  return s;
}

std::span<uint8_t> ReplaySession::ram() {
  return machine_->ram();
}
std::span<const uint8_t> ReplaySession::ram() const {
  return static_cast<const Machine&>(*machine_).ram();
}

std::vector<uint8_t> ReplaySession::saveDevices() const {
  if (!runsDevices_) return {};
  return machine_->saveReplayedState();
}

void ReplaySession::restore(const CpuState& cpu, EventPosition position,
                            std::span<const uint8_t> devices) {
  if (runsDevices_) {
    Status s = machine_->loadReplayedState(devices);
    TTVM_ASSERT(s.ok(), "restoring the replayed devices at step ", cpu.steps, ": ",
                s.ok() ? "" : s.error().message);
  }
  cpu_->setState(cpu);
  env_.setPosition(position);
  env_.clearDivergence();
  env_.requestStop(false);
}

uint64_t ReplaySession::linearRip(uint64_t rip) const {
  const CpuState& s = state();
  if (cpuMode(s) == CpuMode::kLong64) return rip;
  return (s.segment(SegReg::kCs).base + rip) & 0xFFFFFFFFull;
}

std::string ReplaySession::symbolAt(uint64_t rip) const {
  return symbols_.describe(linearRip(rip)).value_or("");
}

std::string ReplaySession::disassembleAt(uint64_t rip) const {
  uint8_t bytes[15];
  size_t n = 0;
  const uint64_t lin = linearRip(rip);
  // Read byte by byte so an instruction at the end of a mapped page still decodes.
  for (; n < sizeof bytes; ++n)
    if (!cpu_->readLinear(lin + n, std::span<uint8_t>(bytes + n, 1))) break;
  if (n == 0) return "(unmapped)";
  Disassembly d = disassemble(std::span<const uint8_t>(bytes, n), cpuMode(state()), rip);
  return d.length == 0 ? "(bad instruction)" : d.text;
}

std::optional<DivergenceReport> ReplaySession::divergence() const {
  std::optional<DivergenceReport> d = env_.divergence();
  if (!d) return d;
  d->symbol = symbolAt(d->rip);
  d->disassembly = disassembleAt(d->rip);
  return d;
}

void ReplaySession::divergeAt(uint64_t step, uint64_t rip, std::string reason, std::string actual) {
  env_.diverge(std::move(reason), std::move(actual));
  // diverge() stamped the current position; name the step that misbehaved.
  auto& d = const_cast<std::optional<DivergenceReport>&>(env_.divergence());
  if (d) {
    d->step = step;
    d->rip = rip;
  }
}

bool ReplaySession::settleBoundary() {
  const uint64_t now = step();
  for (const TraceEvent* e = env_.peek(); e != nullptr && isPassiveEvent(e->kind);
       e = env_.peek()) {
    if (e->step > now) break;
    if (e->kind == EventKind::kStateDigest) {
      if (e->step < now) {
        divergeAt(e->step, state().rip,
                  "a state digest of step " + std::to_string(e->step) +
                      " was passed without being checked (events out of order)",
                  "");
        return false;
      }
      const uint64_t mine = stateDigest(state());
      if (mine != e->value) {
        divergeAt(now, state().rip,
                  "the CPU state differs from the recorded one (state digest " + hex(mine) +
                      ", recorded " + hex(e->value) + ")",
                  "state digest " + hex(mine));
        return false;
      }
      ++digestsChecked_;
    }
    env_.advance();
  }
  return !env_.divergence();
}

SessionStop ReplaySession::runTo(uint64_t target, const RunOptions& options) {
  SessionStop stop;
  target = std::min(target, endStep_);
  for (;;) {
    const uint64_t now = step();
    stop.step = now;
    if (env_.divergence() || !settleBoundary()) {
      stop.kind = SessionStopKind::kDivergence;
      return stop;
    }
    if (now >= target) {
      stop.kind = now >= endStep_ ? SessionStopKind::kEnd : SessionStopKind::kTarget;
      return stop;
    }
    if (options.cancel != nullptr && options.cancel->load(std::memory_order_relaxed)) {
      stop.kind = SessionStopKind::kCancelled;
      return stop;
    }
    const TraceEvent* e = env_.peek();
    if (e != nullptr && e->step < now) {
      divergeAt(e->step, state().rip, "the replay passed a recorded input without asking for it",
                "");
      stop.kind = SessionStopKind::kDivergence;
      return stop;
    }
    if (e == nullptr && !env_.readError().empty() && !reader_.chunks().empty()) {
      divergeAt(now, state().rip, "the trace could not be read: " + env_.readError(), "");
      stop.kind = SessionStopKind::kDivergence;
      return stop;
    }
    // Run up to the next event's step, or through the one step that must consume it.
    uint64_t limit = std::min(target, now + options.sliceSteps);
    const bool consuming = e != nullptr && e->step == now;
    if (e != nullptr) limit = std::min(limit, consuming ? now + 1 : e->step);
    const uint64_t ripBefore = state().rip;
    env_.beginSlice(consuming);
    const StepResult r = cpu_->run(limit - now);
    stop.result = r;
    stop.step = step();
    if (consuming && step() > now) {
      // Every input of step `now` must have been consumed by it; passive marks
      // recorded after them (HLT, debug exit) are skipped here.
      for (const TraceEvent* n = env_.peek(); n != nullptr && n->step == now; n = env_.peek()) {
        if (isPassiveEvent(n->kind) && n->kind != EventKind::kStateDigest) {
          env_.advance();
          continue;
        }
        if (!env_.divergence())
          divergeAt(now, ripBefore,
                    "the instruction at this step did not ask for the recorded input", "");
        break;
      }
    }
    if (env_.divergence()) {
      stop.kind = SessionStopKind::kDivergence;
      return stop;
    }
    if (options.progress) options.progress(step());
    switch (r.outcome) {
      case StepOutcome::kRetired:
      case StepOutcome::kStopRequested: break;
      case StepOutcome::kException:
        if (r.vector < 32 && (options.stopOnExceptions >> r.vector) & 1) {
          stop.kind = SessionStopKind::kException;
          return stop;
        }
        break;
      case StepOutcome::kInterrupt:
      case StepOutcome::kNmi:
        if (options.stopOnInterrupts) {
          stop.kind = SessionStopKind::kInterrupt;
          return stop;
        }
        break;
      case StepOutcome::kBreakpoint: stop.kind = SessionStopKind::kBreakpoint; return stop;
      case StepOutcome::kWatchpoint: stop.kind = SessionStopKind::kWatchpoint; return stop;
      case StepOutcome::kHalted: {
        if (step() >= endStep_) break;  // the loop top reports the end
        const TraceEvent* n = env_.peek();
        divergeAt(step(), state().rip,
                  "the CPU is halted with no interrupt pending but the recorded run went on",
                  n != nullptr
                      ? "hlt (waiting; interrupts " +
                            std::string(state().rflags & flags::kIF ? "enabled" : "disabled") + ")"
                      : "hlt");
        stop.kind = SessionStopKind::kDivergence;
        return stop;
      }
      case StepOutcome::kTripleFault:
        if (step() >= endStep_) break;
        divergeAt(step(), state().rip, "the replay triple-faulted before the recorded end", "");
        stop.kind = SessionStopKind::kDivergence;
        return stop;
    }
  }
}

std::string ReplaySession::checkEndState() const {
  if (!reader_.end()) return "";
  const TraceEnd& end = *reader_.end();
  std::ostringstream o;
  const CpuState& s = state();
  if (s.steps != end.steps)
    o << "step count " << s.steps << ", recorded end at " << end.steps << "; ";
  if (stateDigest(s) != end.finalDigest)
    o << "state digest " << hex(stateDigest(s)) << ", recorded " << hex(end.finalDigest) << "; ";
  if (!(s == end.finalCpu)) {
    const CpuState& f = end.finalCpu;
    static const char* kNames[] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                   "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
    for (int i = 0; i < kNumGprs; ++i)
      if (s.gpr[i] != f.gpr[i])
        o << kNames[i] << " " << hex(s.gpr[i]) << " vs recorded " << hex(f.gpr[i]) << "; ";
    if (s.rip != f.rip) o << "rip " << hex(s.rip) << " vs recorded " << hex(f.rip) << "; ";
    if (s.rflags != f.rflags)
      o << "rflags " << hex(s.rflags) << " vs recorded " << hex(f.rflags) << "; ";
    if (o.str().empty()) o << "final CPU state differs (segments, control or FPU registers); ";
  }
  std::string r = o.str();
  if (r.size() >= 2) r.resize(r.size() - 2);
  return r;
}

}  // namespace ttvm
