#include "ttvm/replayer/replay_session.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "ttvm/base/hex.h"
#include "ttvm/base/log.h"
#include "ttvm/emulator/state_diff.h"
#include "ttvm/machine/disk_image.h"
#include "ttvm/machine/machine.h"

namespace ttvm {
using ttvm::machine::DivergenceReport;
using ttvm::machine::EventPosition;
using ttvm::machine::isPassiveEvent;
using ttvm::machine::Machine;
using ttvm::machine::ReplayEnvironment;
ReplaySession::ReplaySession(const TraceReader& reader, std::unique_ptr<Machine> machine)
    : reader_(reader),
      machine_(std::move(machine)),
      env_(reader, nullptr),
      symbols_(reader.header()) {}

ReplaySession::~ReplaySession() = default;

namespace {

// The last position of `reader`'s history: its footer's step count, or
// without footer its readable prefix's end, the last event or snapshot (a
// snapshot flushes the events before it, so none is missing there), at
// least `initial`.
uint64_t historyEnd(const TraceReader& reader, uint64_t initial) {
  if (reader.end()) return reader.end()->steps;
  uint64_t end = initial;
  if (!reader.chunks().empty()) end = std::max(end, reader.chunks().back().lastStep);
  if (!reader.snapshots().empty()) end = std::max(end, reader.snapshots().back().step);
  return end;
}

}  // namespace

Result<std::unique_ptr<ReplaySession>> ReplaySession::open(const TraceReader& reader,
                                                           CpuEngine engine) {
  const TraceHeader& h = reader.header();
  if (h.backend != Backend::kEmulator)
    return makeError(reader.path() +
                     ": this trace was recorded under KVM (events carry exit numbers); "
                     "its steps are assigned first (assignSteps, kvm_steps.h: ttvm replay and "
                     "verify do it)");
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
  s->cpu_->setEngine(engine);
  if (const char* fault = std::getenv("TTVM_TEST_FAST_ENGINE_FAULT"))
    s->fastEngineFault_ = std::strtoull(fault, nullptr, 0);
  s->env_.bindCpuState(&s->cpu_->state());
  // The whole machine's clock counts this CPU's steps; its local APIC reads
  // IA32_APIC_BASE and CR8 from it.
  if (s->machine_->replaysWholeMachine()) s->machine_->bindCpuState(&s->cpu_->state());
  s->endStep_ = historyEnd(reader, init->cpu.steps);
  if (s->endStep_ < init->cpu.steps)
    return makeError(reader.path() + ": the footer says the run ended at step " +
                     std::to_string(s->endStep_) + ", before its initial state (step " +
                     std::to_string(init->cpu.steps) + ")");
  s->loop_ = std::make_unique<machine::ReplayLoop>(
      *s->cpu_, s->env_, s->machine_->replaysWholeMachine() ? s->machine_.get() : nullptr,
      s->endStep_);
  return s;
}

SessionStop ReplaySession::runTo(uint64_t target, const RunOptions& options) {
  if (!fastEngineFault_ || cpu_->engine() != CpuEngine::kFast || step() > *fastEngineFault_ ||
      target <= *fastEngineFault_)
    return loop_->runTo(target, options);
  // The test seam (see open()): run to the step, then corrupt what the
  // recording never set.
  if (step() < *fastEngineFault_) {
    const SessionStop st = loop_->runTo(*fastEngineFault_, options);
    if (st.kind != SessionStopKind::kTarget || step() != *fastEngineFault_) return st;
  }
  CpuState corrupted = cpu_->state();
  corrupted.reg(Gpr::kR15) ^= uint64_t{1} << 62;
  cpu_->setState(corrupted);
  return loop_->runTo(target, options);
}

Result<SectorTable> sectorsLoggedBefore(const TraceReader& reader, EventPosition position) {
  SectorTable table;
  std::vector<TraceEvent> chunk;
  std::vector<uint8_t> sectors;
  for (size_t c = 0; c <= position.chunk && c < reader.chunkCount(); ++c) {
    TTVM_TRY(reader.readChunkInto(c, chunk, &sectors));
    const size_t n = c == position.chunk ? std::min(position.index, chunk.size()) : chunk.size();
    for (size_t i = 0; i < n; ++i) {
      const TraceEvent& e = chunk[i];
      if (e.kind != EventKind::kDiskSector) continue;
      std::memcpy(table[{static_cast<unsigned>(e.value), e.address}].data(),
                  sectors.data() + size_t{e.count} * kDiskSectorBytes, kDiskSectorBytes);
    }
  }
  return table;
}

Status ReplaySession::startFromSnapshot(size_t index) {
  const std::string where = reader_.path() + ": snapshot " + std::to_string(index);
  if (index >= reader_.snapshots().size())
    return makeError(where + ": the trace holds " + std::to_string(reader_.snapshots().size()));
  if (!env_.wholeMachine())
    return makeError(where + ": only a whole-machine trace (format 1.3 or later) starts there");
  const SnapshotInfo& info = reader_.snapshots()[index];
  if (info.step < step())
    return makeError(where + " (step " + std::to_string(info.step) +
                     ") lies before the replay's position");
  auto snap = reader_.loadSnapshot(index);
  if (!snap.ok()) return snap.error();
  // The events after it: a snapshot flushes the events before it, so it
  // lies between two chunks.
  EventPosition after{0, 0};
  while (after.chunk < reader_.chunkCount() && reader_.chunks()[after.chunk].offset < info.offset)
    ++after.chunk;
  auto sectors = sectorsLoggedBefore(reader_, after);
  if (!sectors.ok()) return sectors.error();
  std::span<uint8_t> ram = machine_->ram();
  machine_->clearRam();
  for (size_t k = 0; k < snap->ram.pageCount(); ++k) {
    const uint64_t p = snap->ram.numbers[k];
    if (p >= ram.size() / kPageSize)
      return makeError(where + ": RAM page " + std::to_string(p) + " lies beyond the machine's " +
                       std::to_string(ram.size() >> 20) + " MiB of RAM");
    std::memcpy(ram.data() + p * kPageSize, snap->ram.page(k).data(), kPageSize);
  }
  cpu_->notifyRamWritten(0, ram.size());
  if (Status st = machine_->loadDeviceState(snap->deviceState); !st.ok())
    return makeError(where + ": " + st.error().message);
  machine_->clearStopRequest();
  cpu_->setState(snap->cpu);
  env_.setPosition(after);
  env_.clearDivergence();
  env_.requestStop(false);
  sectorsBeforeStart_ = std::move(*sectors);
  env_.setSectorFallback([this](unsigned slot, uint64_t lba, std::span<uint8_t> out) {
    auto it = sectorsBeforeStart_.find({slot, lba});
    if (it == sectorsBeforeStart_.end()) return false;
    std::memcpy(out.data(), it->second.data(), kDiskSectorBytes);
    return true;
  });
  return {};
}

void ReplaySession::extendEnd() {
  endStep_ = std::max(endStep_, historyEnd(reader_, endStep_));
  loop_->extendEnd(endStep_);
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

SectorTable ReplaySession::writtenSectors() const {
  SectorTable table;
  const Machine& m = *machine_;
  for (unsigned slot = 0; slot < Machine::kDiskSlots; ++slot) {
    if (m.disk(slot) == nullptr) continue;
    m.disk(slot)->forEachWritten([&](uint64_t lba, std::span<const uint8_t> bytes) {
      std::memcpy(table[{slot, lba}].data(), bytes.data(), kDiskSectorBytes);
    });
  }
  return table;
}

std::vector<uint8_t> ReplaySession::saveInitialDeviceState() const {
  if (!runsDevices_) return {};
  return machine_->saveDeviceState();
}

Machine::DeviceCheckpoint ReplaySession::checkpointDevices() const {
  if (!runsDevices_) return {};
  return machine_->checkpointReplayedState();
}

void ReplaySession::restore(const CpuState& cpu, EventPosition position,
                            const Machine::DeviceCheckpoint& devices) {
  if (runsDevices_) {
    Status s = machine_->restoreReplayedState(devices);
    TTVM_ASSERT(s.ok(), "restoring the replayed devices at step ", cpu.steps, ": ",
                s.ok() ? "" : s.error().message);
    // A device's request to end the run belongs to the position it was made
    // at (the end of the recording), not to the state restored.
    machine_->clearStopRequest();
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

std::string ReplaySession::checkEndState() const {
  if (!reader_.end()) return "";
  const TraceEnd& end = *reader_.end();
  std::ostringstream o;
  const CpuState& s = state();
  if (s.steps != end.steps)
    o << "step count " << s.steps << ", recorded end at " << end.steps << "; ";
  if (stateDigest(s) != end.finalDigest)
    o << "state digest " << hex(stateDigest(s)) << ", recorded " << hex(end.finalDigest) << "; ";
  for (const FieldDifference& d : stateDifferences(s, end.finalCpu))
    o << d.field << " " << hex(d.reference) << " vs recorded " << hex(d.follower) << "; ";
  std::string r = o.str();
  if (r.size() >= 2) r.resize(r.size() - 2);
  return r;
}

}  // namespace ttvm
