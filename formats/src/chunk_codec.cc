#include "ttvm/formats/chunk_codec.h"

#include <capnp/serialize-packed.h>
#include <capnp/serialize.h>
#include <kj/io.h>

#include <cstring>
#include <iterator>

#include "frame.h"
#include "schema_convert.h"

namespace ttvm {
namespace {

using formats::guardCapnp;

// Column numbers; the order matches the EventChunk fields @2..@16.
enum Col : int {
  kKind,
  kStepDelta,
  kBigStep,
  kPort,
  kSize,
  kCount,
  kAddress,
  kMsr,
  kFlags,
  kValue8,
  kValue16,
  kValue32,
  kValue64,
  kTsc,
  kDigest,
  kSector,
};
constexpr const char* kColumnNames[] = {
    "kind",  "stepDelta", "bigStep", "port",    "size",    "count", "address", "msr",
    "flags", "value8",    "value16", "value32", "value64", "tsc",   "digest",  "sector"};
constexpr uint32_t kEscape = 0xFFFFFFFF;
constexpr int kNumColumns = kSector + 1;
static_assert(std::size(kColumnNames) == kNumColumns);

bool fits(uint64_t v, unsigned size) {
  return size >= 8 || v < (uint64_t{1} << (8 * size));
}

}  // namespace

namespace {
// The fast form of checkEvent for the reader's hot loop: the decoder already
// zeroes unused fields and range-limits every column, so only the access
// sizes and flags remain to check.
inline bool eventIsWellFormed(const TraceEvent& e) {
  switch (e.kind) {
    case EventKind::kPortIn:
    case EventKind::kPortOut: return e.size == 1 || e.size == 2 || e.size == 4;
    case EventKind::kMmioRead:
    case EventKind::kMmioWrite: return e.size == 1 || e.size == 2 || e.size == 4 || e.size == 8;
    case EventKind::kRdrand:
      return (e.size == 2 || e.size == 4 || e.size == 8) && e.flags <= TraceEvent::kFlagOk &&
             (e.flags || !e.value);
    case EventKind::kMsrWrite: return e.flags <= TraceEvent::kFlagOk;
    case EventKind::kSerialInput: return e.flags <= TraceEvent::kFlagLine && e.value <= 0xFF;
    default: return true;
  }
}
// Writer side: the decoder's guarantees, checked on the caller's event.
inline bool unusedFieldsAreZero(const TraceEvent& e) {
  switch (e.kind) {
    case EventKind::kPortIn:
    case EventKind::kPortOut:
      return e.flags == 0 && e.address <= 0xFFFF && (e.size >= 4 || e.value < (1u << (8 * e.size)));
    case EventKind::kMmioRead:
    case EventKind::kMmioWrite:
      return e.flags == 0 && e.count == 0 &&
             (e.size >= 8 || e.value < (uint64_t{1} << (8 * e.size)));
    case EventKind::kInterrupt:
      return (e.address | e.count | e.size | e.flags) == 0 && e.value <= 0xFF;
    case EventKind::kRdtsc:
    case EventKind::kIdle:
    case EventKind::kDeviceDigest:
    case EventKind::kStateDigest: return (e.address | e.count | e.size | e.flags) == 0;
    case EventKind::kSerialInput: return (e.address | e.count | e.size) == 0 && e.value <= 0xFF;
    case EventKind::kRdrand:
      return (e.address | e.count) == 0 && (e.size >= 8 || e.value < (uint64_t{1} << (8 * e.size)));
    case EventKind::kMsrRead: return (e.count | e.size | e.flags) == 0 && e.address <= 0xFFFFFFFF;
    case EventKind::kMsrWrite: return (e.count | e.size) == 0 && e.address <= 0xFFFFFFFF;
    case EventKind::kDebugExit:
      return (e.address | e.count | e.size | e.flags) == 0 && e.value <= 0xFFFFFFFF;
    case EventKind::kNmi:
    case EventKind::kInterruptWindow:
    case EventKind::kHlt:
    case EventKind::kEndOfRun: return (e.address | e.value | e.count | e.size | e.flags) == 0;
    case EventKind::kDiskSector: return (e.size | e.flags) == 0 && e.value <= 0xFF;
    case EventKind::kDirtyPages: return (e.value | e.size | e.flags) == 0;
    case EventKind::kStopPoint: return (e.size | e.flags) == 0;
  }
  return false;
}
}  // namespace

std::string checkEvent(const TraceEvent& e) {
  const auto k = static_cast<uint8_t>(e.kind);
  if (!isValidEventKind(k)) return "unknown event kind " + std::to_string(k);
  auto mustBeZero = [&](bool addr, bool value, bool count, bool size, bool flags) -> std::string {
    if (addr && e.address) return "address must be 0";
    if (value && e.value) return "value must be 0";
    if (count && e.count) return "count must be 0";
    if (size && e.size) return "size must be 0";
    if (flags && e.flags) return "flags must be 0";
    return "";
  };
  switch (e.kind) {
    case EventKind::kPortIn:
    case EventKind::kPortOut:
      if (e.size != 1 && e.size != 2 && e.size != 4) return "port size must be 1, 2 or 4";
      if (e.address > 0xFFFF) return "port must be <= 0xffff";
      if (!fits(e.value, e.size)) return "value does not fit the access size";
      return mustBeZero(false, false, false, false, true);
    case EventKind::kMmioRead:
    case EventKind::kMmioWrite:
      if (e.size != 1 && e.size != 2 && e.size != 4 && e.size != 8)
        return "MMIO size must be 1, 2, 4 or 8";
      if (!fits(e.value, e.size)) return "value does not fit the access size";
      return mustBeZero(false, false, true, false, true);
    case EventKind::kInterrupt:
      if (e.value > 0xFF) return "vector must be <= 255";
      return mustBeZero(true, false, true, true, true);
    case EventKind::kNmi:
    case EventKind::kInterruptWindow:
    case EventKind::kHlt:
    case EventKind::kEndOfRun: return mustBeZero(true, true, true, true, true);
    case EventKind::kRdtsc:
    case EventKind::kIdle:
    case EventKind::kDeviceDigest:
    case EventKind::kStateDigest: return mustBeZero(true, false, true, true, true);
    case EventKind::kSerialInput:
      if (e.value > 0xFF) return "a serial byte must be <= 0xff";
      if (e.flags > TraceEvent::kFlagLine) return "flags must be 0 or 1";
      return mustBeZero(true, false, true, true, false);
    case EventKind::kRdrand:
      if (e.size != 2 && e.size != 4 && e.size != 8) return "RDRAND size must be 2, 4 or 8";
      if (!fits(e.value, e.size)) return "value does not fit the access size";
      if (e.flags > TraceEvent::kFlagOk) return "flags must be 0 or 1";
      if (!e.flags && e.value) return "value must be 0 when the source had no entropy";
      return mustBeZero(true, false, true, false, false);
    case EventKind::kMsrRead:
      if (e.address > 0xFFFFFFFF) return "MSR index must be <= 0xffffffff";
      return mustBeZero(false, false, true, true, true);
    case EventKind::kMsrWrite:
      if (e.address > 0xFFFFFFFF) return "MSR index must be <= 0xffffffff";
      if (e.flags > TraceEvent::kFlagOk) return "flags must be 0 or 1";
      return mustBeZero(false, false, true, true, false);
    case EventKind::kDebugExit:
      if (e.value > 0xFFFFFFFF) return "status must be <= 0xffffffff";
      return mustBeZero(true, false, true, true, true);
    case EventKind::kDiskSector:
      if (e.value > 0xFF) return "disk slot must be <= 255";
      return mustBeZero(false, false, false, true, true);
    case EventKind::kDirtyPages:
      if (e.count == 0) return "a run of dirty pages must hold at least one page";
      return mustBeZero(false, true, false, true, true);
    case EventKind::kStopPoint: return mustBeZero(false, false, false, true, true);
  }
  return "unknown event kind";
}

namespace {

// The columns of one chunk being written: a pointer per column, advanced by
// each put (or, when sizing, only the byte counts).
template <bool kWrite>
struct OutColumns {
  uint8_t* at[kNumColumns] = {};
  size_t bytes[kNumColumns] = {};
  template <typename T>
  void put(int col, T v) {
    if constexpr (kWrite) {
      std::memcpy(at[col], &v, sizeof v);  // x86: little-endian
      at[col] += sizeof v;
    } else {
      bytes[col] += sizeof v;
    }
  }
  void putBytes(int col, std::span<const uint8_t> b) {
    if constexpr (kWrite) {
      std::memcpy(at[col], b.data(), b.size());
      at[col] += b.size();
    } else {
      bytes[col] += b.size();
    }
  }
};

// Writes the columns of `events`, one event at a time (each checked first).
// A kDiskSector event's bytes are sectors[count * 512, +512).
template <bool kWrite>
void walkEvents(std::span<const TraceEvent> events, std::span<const uint8_t> sectors,
                OutColumns<kWrite>& c) {
  uint64_t prevStep = events[0].step;
  uint64_t prevTsc = 0;
  for (const TraceEvent& e : events) {
    // Validation stays on in release builds; the fast check keeps it cheap.
    if (__builtin_expect(!eventIsWellFormed(e) || !unusedFieldsAreZero(e), 0)) {
      const std::string problem = checkEvent(e);
      TTVM_ASSERT(problem.empty(), "bad trace event (", describeEvent(e), "): ", problem);
    }
    TTVM_ASSERT(e.step >= prevStep, "trace event steps went backward: ", e.step, " after ",
                prevStep);
    c.put(kKind, static_cast<uint8_t>(e.kind));
    const uint64_t delta = e.step - prevStep;
    prevStep = e.step;
    if (delta < kEscape) {
      c.put(kStepDelta, static_cast<uint32_t>(delta));
    } else {
      c.put(kStepDelta, kEscape);
      c.put(kBigStep, delta);
    }
    switch (e.kind) {
      case EventKind::kPortIn:
      case EventKind::kPortOut:
        c.put(kPort, static_cast<uint16_t>(e.address));
        c.put(kSize, e.size);
        c.put(kCount, e.count);
        break;
      case EventKind::kMmioRead:
      case EventKind::kMmioWrite:
        c.put(kAddress, e.address);
        c.put(kSize, e.size);
        break;
      case EventKind::kRdrand:
        c.put(kSize, e.size);
        c.put(kFlags, e.flags);
        break;
      case EventKind::kMsrRead: c.put(kMsr, static_cast<uint32_t>(e.address)); break;
      case EventKind::kMsrWrite:
        c.put(kMsr, static_cast<uint32_t>(e.address));
        c.put(kFlags, e.flags);
        break;
      case EventKind::kSerialInput:
        c.put(kFlags, e.flags);
        c.put(kValue8, static_cast<uint8_t>(e.value));
        break;
      case EventKind::kDirtyPages:
        c.put(kAddress, e.address);
        c.put(kCount, e.count);
        break;
      case EventKind::kStopPoint:
        c.put(kAddress, e.address);
        c.put(kCount, e.count);
        c.put(kDigest, e.value);
        break;
      case EventKind::kDiskSector:
        TTVM_ASSERT(uint64_t{e.count} * kDiskSectorBytes + kDiskSectorBytes <= sectors.size(),
                    "disk sector event ", describeEvent(e), " indexes sector ", e.count, " of ",
                    sectors.size() / kDiskSectorBytes);
        c.put(kAddress, e.address);
        c.put(kValue8, static_cast<uint8_t>(e.value));
        c.putBytes(kSector,
                   sectors.subspan(uint64_t{e.count} * kDiskSectorBytes, kDiskSectorBytes));
        break;
      default: break;
    }
    switch (e.kind) {
      case EventKind::kPortIn:
      case EventKind::kPortOut:
      case EventKind::kMmioRead:
      case EventKind::kMmioWrite:
      case EventKind::kRdrand:
        switch (e.size) {
          case 1: c.put(kValue8, static_cast<uint8_t>(e.value)); break;
          case 2: c.put(kValue16, static_cast<uint16_t>(e.value)); break;
          case 4: c.put(kValue32, static_cast<uint32_t>(e.value)); break;
          default: c.put(kValue64, e.value); break;
        }
        break;
      case EventKind::kInterrupt: c.put(kValue8, static_cast<uint8_t>(e.value)); break;
      case EventKind::kMsrRead:
      case EventKind::kMsrWrite:
      case EventKind::kIdle: c.put(kValue64, e.value); break;
      case EventKind::kDebugExit: c.put(kValue32, static_cast<uint32_t>(e.value)); break;
      case EventKind::kRdtsc:
        c.put(kTsc, e.value - prevTsc);
        prevTsc = e.value;
        break;
      case EventKind::kStateDigest:
      case EventKind::kDeviceDigest: c.put(kDigest, e.value); break;
      default: break;
    }
  }
}

// The byte count of every column, from per-kind and per-size counts (a
// cheap pass: the columns' contents follow from the kinds and access sizes
// alone). An event whose fields disagree with its kind is caught by the
// write pass before any of its bytes are written.
OutColumns<false> columnSizes(std::span<const TraceEvent> events) {
  size_t kinds[256] = {}, sizes[16] = {};
  size_t escapes = 0;
  uint64_t prevStep = events[0].step;
  for (const TraceEvent& e : events) {
    ++kinds[static_cast<uint8_t>(e.kind)];
    ++sizes[e.size & 15];
    escapes += e.step - prevStep >= kEscape;
    prevStep = e.step;
  }
  auto k = [&](EventKind kind) { return kinds[static_cast<uint8_t>(kind)]; };
  const size_t ports = k(EventKind::kPortIn) + k(EventKind::kPortOut);
  const size_t mmio = k(EventKind::kMmioRead) + k(EventKind::kMmioWrite);
  const size_t msrs = k(EventKind::kMsrRead) + k(EventKind::kMsrWrite);
  OutColumns<false> c;
  c.bytes[kKind] = events.size();
  c.bytes[kStepDelta] = 4 * events.size();
  c.bytes[kBigStep] = 8 * escapes;
  c.bytes[kPort] = 2 * ports;
  c.bytes[kSize] = ports + mmio + k(EventKind::kRdrand);
  const size_t dirty = k(EventKind::kDirtyPages), stops = k(EventKind::kStopPoint);
  c.bytes[kCount] = 4 * (ports + dirty + stops);
  c.bytes[kAddress] = 8 * (mmio + k(EventKind::kDiskSector) + dirty + stops);
  c.bytes[kMsr] = 4 * msrs;
  const size_t serial = k(EventKind::kSerialInput);
  c.bytes[kFlags] = k(EventKind::kRdrand) + k(EventKind::kMsrWrite) + serial;
  // Only the sized kinds (port, MMIO, RDRAND) have a non-zero size.
  c.bytes[kValue8] = sizes[1] + k(EventKind::kInterrupt) + k(EventKind::kDiskSector) + serial;
  c.bytes[kValue16] = 2 * sizes[2];
  c.bytes[kValue32] = 4 * (sizes[4] + k(EventKind::kDebugExit));
  c.bytes[kValue64] = 8 * (sizes[8] + msrs + k(EventKind::kIdle));
  c.bytes[kTsc] = 8 * k(EventKind::kRdtsc);
  c.bytes[kDigest] = 8 * (k(EventKind::kStateDigest) + k(EventKind::kDeviceDigest) + stops);
  c.bytes[kSector] = size_t{kDiskSectorBytes} * k(EventKind::kDiskSector);
  return c;
}

}  // namespace

void EventChunkCodec::encode(std::span<const TraceEvent> events, std::vector<uint8_t>& out) {
  encode(events, {}, out);
}

void EventChunkCodec::encode(std::span<const TraceEvent> events, std::span<const uint8_t> sectors,
                             std::vector<uint8_t>& out) {
  encode(events, sectors,
         [&out](std::span<const uint8_t> raw) { out.assign(raw.begin(), raw.end()); });
}

void EventChunkCodec::encode(std::span<const TraceEvent> events,
                             const std::function<void(std::span<const uint8_t>)>& sink) {
  encode(events, {}, sink);
}

void EventChunkCodec::encode(std::span<const TraceEvent> events, std::span<const uint8_t> sectors,
                             const std::function<void(std::span<const uint8_t>)>& sink) {
  TTVM_ASSERT(!events.empty(), "an event chunk holds at least one event");
  const OutColumns<false> sized = columnSizes(events);

  // One segment: the root pointer, EventChunk's 5 data and 16 pointer words,
  // then each column's bytes padded to a word.
  size_t words = 1 + 5 + kNumColumns;
  for (size_t b : sized.bytes) words += (b + 7) / 8;
  if (message_.size() < words + 1) message_.resize(words + 1);  // zero-filled
  {
    capnp::MallocMessageBuilder message(
        kj::arrayPtr(reinterpret_cast<capnp::word*>(message_.data() + 1), words),
        capnp::AllocationStrategy::FIXED_SIZE);
    auto chunk = message.initRoot<schema::EventChunk>();
    chunk.setFirstStep(events[0].step);
    chunk.setEventCount(static_cast<uint32_t>(events.size()));
    chunk.setTraceIdLo(identity_.trace.lo);
    chunk.setTraceIdHi(identity_.trace.hi);
    chunk.setSequence(identity_.sequence);
    OutColumns<true> cols;
    uint8_t* ends[kNumColumns] = {};
    auto init = [&](int col, auto initList) {
      const unsigned n = static_cast<unsigned>(sized.bytes[col]);
      // kind and stepDelta are always present; the others only when used.
      if (n != 0 || col == kKind || col == kStepDelta) {
        cols.at[col] = initList(n).begin();
        ends[col] = cols.at[col] + n;
      }
    };
    init(kKind, [&](unsigned n) { return chunk.initKind(n); });
    init(kStepDelta, [&](unsigned n) { return chunk.initStepDelta(n); });
    init(kBigStep, [&](unsigned n) { return chunk.initBigStep(n); });
    init(kPort, [&](unsigned n) { return chunk.initPort(n); });
    init(kSize, [&](unsigned n) { return chunk.initSize(n); });
    init(kCount, [&](unsigned n) { return chunk.initCount(n); });
    init(kAddress, [&](unsigned n) { return chunk.initAddress(n); });
    init(kMsr, [&](unsigned n) { return chunk.initMsr(n); });
    init(kFlags, [&](unsigned n) { return chunk.initFlags(n); });
    init(kValue8, [&](unsigned n) { return chunk.initValue8(n); });
    init(kValue16, [&](unsigned n) { return chunk.initValue16(n); });
    init(kValue32, [&](unsigned n) { return chunk.initValue32(n); });
    init(kValue64, [&](unsigned n) { return chunk.initValue64(n); });
    init(kTsc, [&](unsigned n) { return chunk.initTsc(n); });
    init(kDigest, [&](unsigned n) { return chunk.initDigest(n); });
    init(kSector, [&](unsigned n) { return chunk.initSector(n); });
    walkEvents(events, sectors, cols);
    for (int col = 0; col < kNumColumns; ++col)
      TTVM_ASSERT(cols.at[col] == ends[col], "column ", kColumnNames[col],
                  " was sized wrongly for its events");

    auto segments = message.getSegmentsForOutput();
    if (segments.size() == 1 &&
        segments[0].begin() == reinterpret_cast<capnp::word*>(message_.data() + 1)) {
      // The serialized form is the segment table word followed by the segment.
      const uint32_t table[2] = {0, static_cast<uint32_t>(segments[0].size())};
      std::memcpy(message_.data(), table, sizeof table);
      sink(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(message_.data()),
                                    (1 + segments[0].size()) * 8));
    } else {
      std::vector<uint8_t> flat;  // did not fit the estimate: never expected
      formats::serializeMessage(message, flat);
      sink(flat);
    }
  }  // the builder zeroes the segment again for the next chunk
  message_[0] = 0;
}

namespace {

// A column being read: a little-endian array of T.
struct InCol {
  const uint8_t* p = nullptr;
  size_t n = 0;  // bytes
  size_t at = 0;
  void set(capnp::Data::Reader d) {
    p = d.begin();
    n = d.size();
    at = 0;
  }
  template <typename T>
  bool get(T& out) {
    if (n - at < sizeof(T)) return false;
    std::memcpy(&out, p + at, sizeof(T));
    at += sizeof(T);
    return true;
  }
};

Status decodeMessage(schema::EventChunk::Reader chunk, const std::string& where,
                     std::vector<TraceEvent>& out, std::vector<uint8_t>* sectors) {
  InCol c[kNumColumns];
  c[kKind].set(chunk.getKind());
  c[kStepDelta].set(chunk.getStepDelta());
  c[kBigStep].set(chunk.getBigStep());
  c[kPort].set(chunk.getPort());
  c[kSize].set(chunk.getSize());
  c[kCount].set(chunk.getCount());
  c[kAddress].set(chunk.getAddress());
  c[kMsr].set(chunk.getMsr());
  c[kFlags].set(chunk.getFlags());
  c[kValue8].set(chunk.getValue8());
  c[kValue16].set(chunk.getValue16());
  c[kValue32].set(chunk.getValue32());
  c[kValue64].set(chunk.getValue64());
  c[kTsc].set(chunk.getTsc());
  c[kDigest].set(chunk.getDigest());
  c[kSector].set(chunk.getSector());
  if (sectors != nullptr) sectors->clear();
  uint32_t sectorCount = 0;

  const uint32_t n = chunk.getEventCount();
  if (n == 0) return makeError(where + ": event chunk holds no events");
  if (c[kKind].n != n)
    return makeError(where + ": eventCount is " + std::to_string(n) + " but column 'kind' has " +
                     std::to_string(c[kKind].n) + " entries");
  if (c[kStepDelta].n != uint64_t{n} * 4)
    return makeError(where + ": column 'stepDelta' must have " + std::to_string(n) +
                     " entries, found " + std::to_string(c[kStepDelta].n / 4.0));
  out.resize(n);
  uint64_t step = chunk.getFirstStep();
  uint64_t tsc = 0;
  size_t i = 0;
  int missing = -1;
  auto bad = [&](const std::string& what) {
    return makeError(where + ": event " + std::to_string(i) + " (step " + std::to_string(step) +
                     "): " + what);
  };
#define TTVM_GET(col, var) \
  if (!c[col].get(var)) {  \
    missing = col;         \
    break;                 \
  }
  for (; i < n; ++i) {
    TraceEvent& e = out[i];
    e = TraceEvent{};
    const uint8_t kind = c[kKind].p[i];
    uint32_t d = 0;
    c[kStepDelta].get(d);
    if (d == kEscape) {
      uint64_t big;
      if (!c[kBigStep].get(big)) return bad("column 'bigStep' is too short");
      if (big < kEscape) return bad("escaped step delta " + std::to_string(big) + " is small");
      if (step + big < step) return bad("step overflows 64 bits");
      step += big;
    } else {
      if (i == 0 && d != 0) return bad("the first step delta must be 0");
      if (step + d < step) return bad("step overflows 64 bits");
      step += d;
    }
    e.step = step;
    if (!isValidEventKind(kind)) return bad("unknown event kind " + std::to_string(kind));
    e.kind = static_cast<EventKind>(kind);
    switch (e.kind) {
      case EventKind::kPortIn:
      case EventKind::kPortOut: {
        uint16_t port;
        TTVM_GET(kPort, port);
        TTVM_GET(kSize, e.size);
        TTVM_GET(kCount, e.count);
        e.address = port;
        break;
      }
      case EventKind::kMmioRead:
      case EventKind::kMmioWrite:
        TTVM_GET(kAddress, e.address);
        TTVM_GET(kSize, e.size);
        break;
      case EventKind::kRdrand:
        TTVM_GET(kSize, e.size);
        TTVM_GET(kFlags, e.flags);
        break;
      case EventKind::kMsrRead:
      case EventKind::kMsrWrite: {
        uint32_t msr;
        TTVM_GET(kMsr, msr);
        e.address = msr;
        if (e.kind == EventKind::kMsrWrite) TTVM_GET(kFlags, e.flags);
        break;
      }
      case EventKind::kSerialInput: {
        uint8_t v;
        TTVM_GET(kFlags, e.flags);
        TTVM_GET(kValue8, v);
        e.value = v;
        break;
      }
      case EventKind::kDirtyPages:
        TTVM_GET(kAddress, e.address);
        TTVM_GET(kCount, e.count);
        break;
      case EventKind::kStopPoint:
        TTVM_GET(kAddress, e.address);
        TTVM_GET(kCount, e.count);
        TTVM_GET(kDigest, e.value);
        break;
      default: break;
    }
    if (missing >= 0) break;
    switch (e.kind) {
      case EventKind::kPortIn:
      case EventKind::kPortOut:
      case EventKind::kMmioRead:
      case EventKind::kMmioWrite:
      case EventKind::kRdrand:
        switch (e.size) {
          case 1: {
            uint8_t v;
            TTVM_GET(kValue8, v);
            e.value = v;
            break;
          }
          case 2: {
            uint16_t v;
            TTVM_GET(kValue16, v);
            e.value = v;
            break;
          }
          case 4: {
            uint32_t v;
            TTVM_GET(kValue32, v);
            e.value = v;
            break;
          }
          case 8: TTVM_GET(kValue64, e.value); break;
          default: return bad("invalid access size " + std::to_string(e.size));
        }
        break;
      case EventKind::kInterrupt: {
        uint8_t v;
        TTVM_GET(kValue8, v);
        e.value = v;
        break;
      }
      case EventKind::kMsrRead:
      case EventKind::kMsrWrite:
      case EventKind::kIdle: TTVM_GET(kValue64, e.value); break;
      case EventKind::kDebugExit: {
        uint32_t v;
        TTVM_GET(kValue32, v);
        e.value = v;
        break;
      }
      case EventKind::kRdtsc: {
        uint64_t v;
        TTVM_GET(kTsc, v);
        tsc += v;
        e.value = tsc;
        break;
      }
      case EventKind::kStateDigest:
      case EventKind::kDeviceDigest: TTVM_GET(kDigest, e.value); break;
      case EventKind::kDiskSector: {
        uint8_t slot;
        TTVM_GET(kValue8, slot);
        TTVM_GET(kAddress, e.address);
        e.value = slot;
        InCol& bytes = c[kSector];
        if (bytes.n - bytes.at < kDiskSectorBytes) {
          missing = kSector;
          break;
        }
        if (sectors != nullptr)
          sectors->insert(sectors->end(), bytes.p + bytes.at,
                          bytes.p + bytes.at + kDiskSectorBytes);
        bytes.at += kDiskSectorBytes;
        e.count = sectorCount++;
        break;
      }
      default: break;
    }
    if (missing >= 0) break;
  }
#undef TTVM_GET
  if (missing >= 0) return bad(std::string("column '") + kColumnNames[missing] + "' is too short");
  for (int k = 0; k < kNumColumns; ++k)
    if (c[k].at != c[k].n && k != kKind)
      return makeError(where + ": column '" + kColumnNames[k] + "' has " +
                       std::to_string(c[k].n - c[k].at) + " bytes left over after " +
                       std::to_string(n) + " events");
  // Full per-kind validity (sizes allowed for each kind, flags, unused fields).
  for (size_t k = 0; k < n; ++k) {
    if (__builtin_expect(eventIsWellFormed(out[k]), 1)) continue;
    const std::string problem = checkEvent(out[k]);
    {
      i = k;
      step = out[k].step;
      return bad(problem);
    }
  }
  return {};
}

}  // namespace

Status EventChunkCodec::decode(std::span<const uint8_t> raw, const std::string& where,
                               std::vector<TraceEvent>& out, ChunkIdentity* identity,
                               std::vector<uint8_t>* sectors) {
  if (raw.empty() || raw.size() % 8 != 0)
    return makeError(where + ": message size " + std::to_string(raw.size()) +
                     " is not a positive multiple of 8");
  std::vector<uint64_t> copy;
  const capnp::word* words = reinterpret_cast<const capnp::word*>(raw.data());
  if (reinterpret_cast<uintptr_t>(raw.data()) % 8 != 0) {
    copy.resize(raw.size() / 8);
    std::memcpy(copy.data(), raw.data(), raw.size());
    words = reinterpret_cast<const capnp::word*>(copy.data());
  }
  return guardCapnp(where, [&]() -> Status {
    capnp::FlatArrayMessageReader reader(kj::ArrayPtr<const capnp::word>(words, raw.size() / 8),
                                         formats::readerOptionsFor(raw.size()));
    auto chunk = reader.getRoot<schema::EventChunk>();
    if (identity != nullptr)
      *identity = {{chunk.getTraceIdLo(), chunk.getTraceIdHi()}, chunk.getSequence()};
    return decodeMessage(chunk, where, out, sectors);
  });
}

Result<ChunkIdentity> EventChunkCodec::identity(std::span<const uint8_t> raw,
                                                const std::string& where) {
  if (raw.empty() || raw.size() % 8 != 0)
    return makeError(where + ": message size " + std::to_string(raw.size()) +
                     " is not a positive multiple of 8");
  std::vector<uint64_t> copy(raw.size() / 8);
  std::memcpy(copy.data(), raw.data(), raw.size());
  ChunkIdentity id;
  Status s = guardCapnp(where, [&]() -> Status {
    capnp::FlatArrayMessageReader reader(
        kj::ArrayPtr<const capnp::word>(reinterpret_cast<const capnp::word*>(copy.data()),
                                        copy.size()),
        formats::readerOptionsFor(raw.size()));
    auto chunk = reader.getRoot<schema::EventChunk>();
    id = {{chunk.getTraceIdLo(), chunk.getTraceIdHi()}, chunk.getSequence()};
    return Status{};
  });
  if (!s.ok()) return s.error();
  return id;
}

Result<size_t> EventChunkCodec::packedSize(std::span<const uint8_t> raw) {
  if (raw.size() % 8 != 0) return makeError("packedSize: message size is not a multiple of 8");
  std::vector<uint64_t> copy(raw.size() / 8);
  if (!raw.empty()) std::memcpy(copy.data(), raw.data(), raw.size());
  Result<size_t> result = size_t{0};
  Status s = guardCapnp("packedSize", [&]() -> Status {
    capnp::FlatArrayMessageReader reader(
        kj::ArrayPtr<const capnp::word>(reinterpret_cast<const capnp::word*>(copy.data()),
                                        copy.size()),
        formats::readerOptionsFor(raw.size()));
    capnp::MallocMessageBuilder builder;
    builder.setRoot(reader.getRoot<schema::EventChunk>());
    kj::VectorOutputStream stream;
    capnp::writePackedMessage(stream, builder);
    result = stream.getArray().size();
    return {};
  });
  if (!s.ok()) return s.error();
  return result;
}

}  // namespace ttvm
