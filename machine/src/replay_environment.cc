#include "ttvm/machine/replay_environment.h"

#include <cstdio>
#include <cstring>
#include <sstream>

#include "ttvm/base/hex.h"
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

}  // namespace

bool isPassiveEvent(EventKind k) {
  switch (k) {
    case EventKind::kStateDigest:
    case EventKind::kHlt:
    case EventKind::kInterruptWindow:
    case EventKind::kDebugExit:
    case EventKind::kEndOfRun: return true;
    default: return false;
  }
}

ReplayEnvironment::ReplayEnvironment(const TraceReader& reader, const CpuState* cpu)
    : reader_(reader), cpu_(cpu), cache_(kChunkCacheSize) {}

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
         e->kind != EventKind::kStateDigest && e->kind != EventKind::kEndOfRun) {
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
  const TraceEvent* e =
      expectRequest(EventKind::kMmioRead, physAddr, size, request("mmioRead", physAddr, size));
  if (e == nullptr) return size == 8 ? ~0ull : ((1ull << (8 * size)) - 1);
  const uint64_t v = e->value;
  advance();
  return v;
}

void ReplayEnvironment::mmioWrite(uint64_t physAddr, unsigned size, uint64_t value) {
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
  const TraceEvent* e = expectRequest(EventKind::kRdtsc, 0, 0, "rdtsc");
  if (e == nullptr) return 0;
  const uint64_t v = e->value;
  advance();
  return v;
}

std::optional<uint64_t> ReplayEnvironment::readRandom(unsigned size) {
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
  const TraceEvent* e = peek();
  return e != nullptr && e->step == cpu_->steps && e->kind == EventKind::kInterrupt;
}

uint8_t ReplayEnvironment::acknowledgeInterrupt() {
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
  const TraceEvent* e = peek();
  return e != nullptr && e->step == cpu_->steps && e->kind == EventKind::kNmi;
}

void ReplayEnvironment::acknowledgeNmi() {
  const TraceEvent* e = peek();
  if (e == nullptr || e->kind != EventKind::kNmi || e->step != cpu_->steps) {
    diverge("the CPU acknowledged an NMI the trace does not hold", "acknowledgeNmi");
    return;
  }
  advance();
}

bool ReplayEnvironment::stopRequested() {
  return divergence_.has_value() || externalStop_;
}

}  // namespace ttvm::machine
