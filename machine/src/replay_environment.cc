#include "ttvm/machine/replay_environment.h"

#include <cstdio>
#include <cstring>
#include <sstream>

#include "ttvm/base/hex.h"
#include "ttvm/machine/devices/uart_16550.h"
#include "ttvm/machine/machine.h"

namespace ttvm::machine {
namespace {

constexpr size_t kChunkCacheSize = 6;

std::string request(const char* what, uint64_t address, unsigned size) {
  std::ostringstream o;
  o << what << " " << (address <= 0xFFFF ? "port=" : "address=") << hex(address)
    << " size=" << size;
  return o.str();
}

std::string named(const std::string& owner) {
  return owner.empty() ? std::string("no device (unclaimed)") : "device '" + owner + "'";
}
std::string portDevice(Machine& m, uint16_t port) {
  return named(m.ports().ownerOf(port));
}
std::string mmioDevice(Machine& m, uint64_t addr) {
  return named(m.mmio().ownerOf(addr));
}

}  // namespace

bool isPassiveEvent(EventKind k) {
  switch (k) {
    case EventKind::kStateDigest:
    case EventKind::kDeviceDigest:
    case EventKind::kHlt:
    case EventKind::kInterruptWindow:
    case EventKind::kDebugExit:
    case EventKind::kEndOfRun: return true;
    default: return false;
  }
}

ReplayEnvironment::ReplayEnvironment(const EventSource& reader, const CpuState* cpu)
    : reader_(reader), cpu_(cpu), cache_(kChunkCacheSize) {}

ReplayEnvironment::~ReplayEnvironment() {
  if (whole_) machine_->com1().setLineSource(nullptr);
}

void ReplayEnvironment::bindMachine(Machine* machine) {
  if (whole_) machine_->com1().setLineSource(nullptr);
  machine_ = machine;
  whole_ = machine != nullptr && machine->replaysWholeMachine();
  if (whole_) machine_->com1().setLineSource([this] { return takeLineByte(); });
  updateAttention();
}

const volatile uint32_t* ReplayEnvironment::eventHint() const {
  return whole_ ? machine_->eventHint() : &hint_;
}

void ReplayEnvironment::updateAttention() {
  if (whole_) machine_->setAttention(divergence_.has_value() || externalStop_);
}

void ReplayEnvironment::clearDivergence() {
  divergence_.reset();
  updateAttention();
}

void ReplayEnvironment::requestStop(bool on) {
  externalStop_ = on;
  if (on) hint_ = 1;
  updateAttention();
}

size_t ReplayEnvironment::applyBoundaryInputs() {
  size_t n = 0;
  const uint64_t now = cpu_->steps;
  for (const TraceEvent* e = peekInput(now);
       e != nullptr && !divergence_ && e->step == now && e->kind == EventKind::kSerialInput &&
       !(e->flags & TraceEvent::kFlagLine);
       e = peekInput(now)) {
    machine_->com1().receive(static_cast<uint8_t>(e->value));
    advance();
    ++n;
  }
  return n;
}

bool ReplayEnvironment::inputsBeforeIdle() {
  const uint64_t now = cpu_->steps;
  const EventPosition saved = pos_;
  const std::optional<TraceEvent> savedLast = last_;
  bool any = false, idle = false;
  for (const TraceEvent* e = peekInput(now); e != nullptr && e->step == now; e = peekInput(now)) {
    if (e->kind == EventKind::kSerialInput && !(e->flags & TraceEvent::kFlagLine)) {
      any = true;
      advance();
      continue;
    }
    idle = e->kind == EventKind::kIdle;
    break;
  }
  // peekInput consumed only passive marks of this step: dropping them is
  // what the loop's next settle would do, but the position is restored.
  pos_ = saved;
  head_ = nullptr;
  last_ = savedLast;
  return any && idle;
}

bool ReplayEnvironment::takeIdle() {
  const uint64_t now = cpu_->steps;
  const TraceEvent* e = peekInput(now);
  if (divergence_ || e == nullptr || e->step != now || e->kind != EventKind::kIdle) return false;
  const uint64_t ns = e->value;
  if (ns < machine_->clock().nowNs()) {
    diverge("the recording's idle skip at this step goes back in virtual time (to " +
                std::to_string(ns) + " ns from " + std::to_string(machine_->clock().nowNs()) +
                " ns)",
            "hlt");
    return false;
  }
  machine_->clock().skipTo(ns);
  advance();
  return true;
}

std::optional<uint8_t> ReplayEnvironment::takeLineByte() {
  const uint64_t now = cpu_->steps;
  const TraceEvent* e = peekInput(now);
  if (divergence_ || e == nullptr || e->step != now || e->kind != EventKind::kSerialInput ||
      !(e->flags & TraceEvent::kFlagLine))
    return std::nullopt;
  const auto b = static_cast<uint8_t>(e->value);
  advance();
  return b;
}

void ReplayEnvironment::checkRecorded(EventKind kind, uint64_t address, unsigned size,
                                      uint64_t value, const std::string& device) {
  if (divergence_) return;
  const TraceEvent* e = peekInput(cpu_->steps);
  if (e == nullptr || e->step != cpu_->steps || e->kind != kind) return;  // not logged
  std::string what = std::string(eventKindName(kind));
  if (address != 0 || size != 0) what = request(what.c_str(), address, size);
  if (e->address != address || (size != 0 && e->size != size)) {
    diverge(
        "the replay asked " + device + " for another port, address or size than the trace holds",
        what);
    return;
  }
  if (e->value != value) {
    // A write's value comes from the CPU, a read's from the device.
    const bool write = kind == EventKind::kPortOut || kind == EventKind::kMmioWrite ||
                       kind == EventKind::kMsrWrite;
    diverge(write ? "the replay wrote another value than the recorded run (" + hex(value) + " to " +
                        device + ", recorded " + hex(e->value) + ")"
                  : device + " answered " + hex(value) +
                        " in the replay where the recording's answered " + hex(e->value),
            what + " value=" + hex(value));
    return;
  }
  advance();
}

bool ReplayEnvironment::loadChunk(size_t i) {
  if (currentIndex_ == i && current_) return true;
  for (CachedChunk& c : cache_) {
    if (c.index == i && c.events) {
      c.lastUse = ++useClock_;
      current_ = c.events;
      currentSectors_ = c.sectors;
      currentIndex_ = i;
      return true;
    }
  }
  std::vector<TraceEvent> decoded;
  std::vector<uint8_t> sectorBytes;
  if (Status s = reader_.readChunkInto(i, decoded, &sectorBytes); !s.ok()) {
    if (readError_.empty()) readError_ = s.error().message;
    current_.reset();
    currentSectors_.reset();
    currentIndex_ = SIZE_MAX;
    return false;
  }
  auto events = std::make_shared<const std::vector<TraceEvent>>(std::move(decoded));
  auto sectors = std::make_shared<const std::vector<uint8_t>>(std::move(sectorBytes));
  CachedChunk* victim = &cache_[0];
  for (CachedChunk& c : cache_)
    if (c.lastUse < victim->lastUse) victim = &c;
  *victim = CachedChunk{i, events, sectors, ++useClock_};
  current_ = std::move(events);
  currentSectors_ = std::move(sectors);
  currentIndex_ = i;
  return true;
}

const TraceEvent* ReplayEnvironment::peekSlow() {
  while (pos_.chunk < reader_.chunkCount()) {
    if (!loadChunk(pos_.chunk)) return nullptr;
    if (pos_.index < current_->size()) return head_ = &(*current_)[pos_.index];
    ++pos_.chunk;
    pos_.index = 0;
  }
  return nullptr;
}

void ReplayEnvironment::advance() {
  const TraceEvent* e = peek();
  TTVM_ASSERT(e != nullptr, "advance() past the end of the trace at chunk ", pos_.chunk);
  last_ = *e;
  ++pos_.index;
  head_ = nullptr;
}

void ReplayEnvironment::setPosition(EventPosition p) {
  pos_ = p;
  head_ = nullptr;
  last_.reset();
}

void ReplayEnvironment::diverge(std::string reason, std::string actual) {
  hint_ = 1;
  if (divergence_) return;
  struct Attention {
    ReplayEnvironment* env;
    ~Attention() { env->updateAttention(); }
  } attention{this};
  DivergenceReport d;
  d.step = cpu_->steps;
  d.rip = cpu_->rip;
  const TraceEvent* e = peek();
  if (e != nullptr) d.expected = *e;
  d.actual = std::move(actual);
  d.lastMatching = last_;
  d.reason = std::move(reason);
  if (!readError_.empty()) d.reason += " (trace read error: " + readError_ + ")";
  divergence_ = std::move(d);
}

const TraceEvent* ReplayEnvironment::peekInput(uint64_t now) {
  const TraceEvent* e = peek();
  // Passive marks recorded at this step after an input (e.g. a HLT mark
  // between two inputs of one step) carry nothing to check: skip them. A
  // state digest here would mean the session skipped a boundary: a bug.
  while (e != nullptr && e->step == now && isPassiveEvent(e->kind) &&
         e->kind != EventKind::kStateDigest && e->kind != EventKind::kDeviceDigest &&
         e->kind != EventKind::kEndOfRun) {
    advance();
    e = peek();
  }
  return e;
}

const TraceEvent* ReplayEnvironment::expectRequest(EventKind kind, uint64_t address, unsigned size,
                                                   const std::string& actual) {
  if (divergence_) return nullptr;
  const uint64_t now = cpu_->steps;
  const TraceEvent* e = peekInput(now);
  if (e == nullptr) {
    diverge("the trace has no more events but the replay asked for an input", actual);
    return nullptr;
  }
  if (e->step != now) {
    diverge(e->step > now ? "the replay asked for an input the trace does not hold at this step"
                          : "the trace's next event belongs to an earlier step",
            actual);
    return nullptr;
  }
  if (e->kind != kind) {
    diverge("the replay asked for another kind of input than the trace holds", actual);
    return nullptr;
  }
  if (e->address != address || (size != 0 && e->size != size)) {
    diverge("the replay asked for another port, address or size than the trace holds", actual);
    return nullptr;
  }
  if ((kind == EventKind::kPortIn || kind == EventKind::kPortOut) && e->count > 1) {
    diverge("multi-item port events (string I/O recorded as one exit) need the KVM replay path",
            actual);
    return nullptr;
  }
  return e;
}

bool ReplayEnvironment::diskSector(unsigned slot, uint64_t lba, std::span<uint8_t> out) {
  if (divergence_) return false;
  const uint64_t key = uint64_t{slot} << 56 | lba;
  const uint64_t now = cpu_->steps;
  const TraceEvent* e = peekInput(now);
  if (e != nullptr && e->step == now && e->kind == EventKind::kDiskSector && e->value == slot &&
      e->address == lba) {
    const size_t at = size_t{e->count} * kDiskSectorBytes;
    TTVM_ASSERT(currentSectors_ && at + kDiskSectorBytes <= currentSectors_->size(),
                "disk sector event without its bytes: ", describeEvent(*e));
    std::memcpy(sectors_[key].data(), currentSectors_->data() + at, kDiskSectorBytes);
    advance();
  }
  auto it = sectors_.find(key);
  if (it == sectors_.end() && sectorFallback_) {
    std::array<uint8_t, kDiskSectorBytes> bytes;
    if (sectorFallback_(slot, lba, bytes)) it = sectors_.emplace(key, bytes).first;
  }
  if (it == sectors_.end()) {
    diverge("the replayed disk controller read disk " + std::to_string(slot) + " sector (LBA) " +
                std::to_string(lba) + " at step " + std::to_string(now) +
                ", which the trace does not hold",
            "disk read disk=" + std::to_string(slot) + " lba=" + std::to_string(lba));
    return false;
  }
  std::memcpy(out.data(), it->second.data(), kDiskSectorBytes);
  return true;
}

uint32_t ReplayEnvironment::portIn(uint16_t port, unsigned size) {
  if (whole_) {
    const uint32_t v = machine_->portIn(port, size);
    checkRecorded(EventKind::kPortIn, port, size, v, portDevice(*machine_, port));
    if (observer_) observer_(TraceEvent::portIn(cpu_->steps, port, static_cast<uint8_t>(size), v));
    return v;
  }
  if (machine_ != nullptr && machine_->portReplayed(port))
    return machine_->ports().read(port, size);
  const TraceEvent* e =
      expectRequest(EventKind::kPortIn, port, size, request("portIn", port, size));
  if (e == nullptr) return size == 4 ? 0xFFFFFFFFu : ((1u << (8 * size)) - 1);
  const uint32_t v = static_cast<uint32_t>(e->value);
  advance();
  return v;
}

void ReplayEnvironment::portOut(uint16_t port, unsigned size, uint32_t value) {
  if (whole_) {
    checkRecorded(EventKind::kPortOut, port, size, value, portDevice(*machine_, port));
    if (observer_)
      observer_(TraceEvent::portOut(cpu_->steps, port, static_cast<uint8_t>(size), value));
    return machine_->portOut(port, size, value);
  }
  if (machine_ != nullptr && machine_->portReplayed(port))
    return machine_->ports().write(port, size, value);
  const std::string actual = request("portOut", port, size) + " value=" + hex(value);
  const TraceEvent* e = expectRequest(EventKind::kPortOut, port, size, actual);
  if (e == nullptr) return;
  if (e->value != value) {
    diverge("the replay wrote another value than the recorded run", actual);
    return;
  }
  advance();
}

uint64_t ReplayEnvironment::mmioRead(uint64_t physAddr, unsigned size) {
  if (whole_) {
    const uint64_t v = machine_->mmioRead(physAddr, size);
    checkRecorded(EventKind::kMmioRead, physAddr, size, v, mmioDevice(*machine_, physAddr));
    if (observer_)
      observer_(TraceEvent::mmioRead(cpu_->steps, physAddr, static_cast<uint8_t>(size), v));
    return v;
  }
  const TraceEvent* e =
      expectRequest(EventKind::kMmioRead, physAddr, size, request("mmioRead", physAddr, size));
  if (e == nullptr) return size == 8 ? ~0ull : ((1ull << (8 * size)) - 1);
  const uint64_t v = e->value;
  advance();
  return v;
}

void ReplayEnvironment::mmioWrite(uint64_t physAddr, unsigned size, uint64_t value) {
  if (whole_) {
    checkRecorded(EventKind::kMmioWrite, physAddr, size, value, mmioDevice(*machine_, physAddr));
    if (observer_)
      observer_(TraceEvent::mmioWrite(cpu_->steps, physAddr, static_cast<uint8_t>(size), value));
    return machine_->mmioWrite(physAddr, size, value);
  }
  const std::string actual = request("mmioWrite", physAddr, size) + " value=" + hex(value);
  const TraceEvent* e = expectRequest(EventKind::kMmioWrite, physAddr, size, actual);
  if (e == nullptr) return;
  if (e->value != value) {
    diverge("the replay wrote another value than the recorded run", actual);
    return;
  }
  advance();
}

uint64_t ReplayEnvironment::readTsc() {
  if (whole_) {
    const uint64_t v = machine_->readTsc();
    checkRecorded(EventKind::kRdtsc, 0, 0, v, "the TSC (virtual clock)");
    return v;
  }
  const TraceEvent* e = expectRequest(EventKind::kRdtsc, 0, 0, "rdtsc");
  if (e == nullptr) return 0;
  const uint64_t v = e->value;
  advance();
  return v;
}

std::optional<uint64_t> ReplayEnvironment::readRandom(unsigned size) {
  if (whole_) {
    const std::optional<uint64_t> v = machine_->readRandom(size);
    checkRecorded(EventKind::kRdrand, 0, size, v.value_or(0), "the machine's RDRAND generator");
    return v;
  }
  const TraceEvent* e =
      expectRequest(EventKind::kRdrand, 0, size, "rdrand size=" + std::to_string(size));
  if (e == nullptr) return std::nullopt;
  const bool ok = (e->flags & TraceEvent::kFlagOk) != 0;
  const uint64_t v = e->value;
  advance();
  if (!ok) return std::nullopt;
  return v;
}

// Machine-owned MSRs: the recorder logs kMsrRead only when the machine
// answered (an unanswered read raises #GP in the guest, which the replay
// reproduces by answering nullopt when the trace holds no read here).
std::optional<uint64_t> ReplayEnvironment::readMsr(uint32_t index) {
  if (whole_) {
    const std::optional<uint64_t> v = machine_->readMsr(index);
    if (v) checkRecorded(EventKind::kMsrRead, index, 0, *v, "the local APIC (MSR)");
    return v;
  }
  if (divergence_) return std::nullopt;
  const TraceEvent* e = peek();
  if (e == nullptr || e->step != cpu_->steps || e->kind != EventKind::kMsrRead) return std::nullopt;
  if (e->address != index) {
    diverge("the replay read another MSR than the recorded run", "rdmsr index=" + hex(index));
    return std::nullopt;
  }
  const uint64_t v = e->value;
  advance();
  return v;
}

bool ReplayEnvironment::writeMsr(uint32_t index, uint64_t value) {
  if (whole_) {
    checkRecorded(EventKind::kMsrWrite, index, 0, value, "the local APIC (MSR " + hex(index) + ")");
    return machine_->writeMsr(index, value);
  }
  if (divergence_) return false;
  const TraceEvent* e = peek();
  if (e == nullptr || e->step != cpu_->steps || e->kind != EventKind::kMsrWrite) return false;
  const std::string actual = "wrmsr index=" + hex(index) + " value=" + hex(value);
  if (e->address != index || e->value != value) {
    diverge("the replay wrote another MSR or value than the recorded run", actual);
    return false;
  }
  const bool ok = (e->flags & TraceEvent::kFlagOk) != 0;
  advance();
  return ok;
}

bool ReplayEnvironment::interruptPending() {
  if (divergence_) return false;
  if (whole_) return machine_->interruptPending();
  const TraceEvent* e = peek();
  return e != nullptr && e->step == cpu_->steps && e->kind == EventKind::kInterrupt;
}

uint8_t ReplayEnvironment::acknowledgeInterrupt() {
  if (whole_) {
    const uint8_t v = machine_->acknowledgeInterrupt();
    checkRecorded(EventKind::kInterrupt, 0, 0, v, "the interrupt controllers");
    if (observer_) observer_(TraceEvent::interrupt(cpu_->steps, v));
    return v;
  }
  const TraceEvent* e = peek();
  if (e == nullptr || e->kind != EventKind::kInterrupt || e->step != cpu_->steps) {
    diverge("the CPU acknowledged an interrupt the trace does not hold", "acknowledgeInterrupt");
    return 0x20;
  }
  const uint8_t v = static_cast<uint8_t>(e->value);
  advance();
  return v;
}

bool ReplayEnvironment::nmiPending() {
  if (divergence_) return false;
  if (whole_) return machine_->nmiPending();
  const TraceEvent* e = peek();
  return e != nullptr && e->step == cpu_->steps && e->kind == EventKind::kNmi;
}

void ReplayEnvironment::acknowledgeNmi() {
  if (whole_) {
    machine_->acknowledgeNmi();
    checkRecorded(EventKind::kNmi, 0, 0, 0, "the local APIC (NMI)");
    if (observer_) observer_(TraceEvent::nmi(cpu_->steps));
    return;
  }
  const TraceEvent* e = peek();
  if (e == nullptr || e->kind != EventKind::kNmi || e->step != cpu_->steps) {
    diverge("the CPU acknowledged an NMI the trace does not hold", "acknowledgeNmi");
    return;
  }
  advance();
}

bool ReplayEnvironment::stopRequested() {
  // Whole machine: a timer reprogrammed in this step ends the slice, as it
  // did while recording, so that the loop fires it at the same boundary.
  // (The machine's own stop requests only mark the end of the recording.)
  return divergence_.has_value() || externalStop_ ||
         (whole_ && machine_->clock().reschedulePending());
}

}  // namespace ttvm::machine
