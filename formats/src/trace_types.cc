#include "ttvm/formats/trace_types.h"

#include <sys/random.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>

#include "ttvm/base/assert.h"

namespace ttvm {

std::string_view eventKindName(EventKind k) {
  switch (k) {
    case EventKind::kPortIn: return "PortIn";
    case EventKind::kPortOut: return "PortOut";
    case EventKind::kMmioRead: return "MmioRead";
    case EventKind::kMmioWrite: return "MmioWrite";
    case EventKind::kInterrupt: return "Interrupt";
    case EventKind::kNmi: return "Nmi";
    case EventKind::kInterruptWindow: return "InterruptWindow";
    case EventKind::kRdtsc: return "Rdtsc";
    case EventKind::kRdrand: return "Rdrand";
    case EventKind::kMsrRead: return "MsrRead";
    case EventKind::kMsrWrite: return "MsrWrite";
    case EventKind::kDebugExit: return "DebugExit";
    case EventKind::kHlt: return "Hlt";
    case EventKind::kStateDigest: return "StateDigest";
    case EventKind::kEndOfRun: return "EndOfRun";
    case EventKind::kDiskSector: return "DiskSector";
    case EventKind::kSerialInput: return "SerialInput";
    case EventKind::kIdle: return "Idle";
    case EventKind::kDeviceDigest: return "DeviceDigest";
    case EventKind::kDirtyPages: return "DirtyPages";
    case EventKind::kStopPoint: return "StopPoint";
  }
  return "Unknown";
}

bool isValidEventKind(uint8_t k) {
  return k >= static_cast<uint8_t>(EventKind::kPortIn) &&
         k <= static_cast<uint8_t>(EventKind::kStopPoint);
}

std::string utcTimeText(int64_t unixNs) {
  const std::time_t t = static_cast<std::time_t>(unixNs / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string describeSlice(const SliceOrigin& o) {
  return "a slice of " + (o.sourceName.empty() ? std::string("another trace") : o.sourceName) +
         ": steps " + std::to_string(o.fromStep) + ".." + std::to_string(o.toStep) + " of its 0.." +
         std::to_string(o.sourceEndStep) + " (step numbers are the source's; before step " +
         std::to_string(o.fromStep) + " there is no history)" +
         (o.partialRam ? "; RAM the slice never accesses reads as zero" : "");
}

std::string describeEvent(const TraceEvent& e) {
  char buf[160];
  const auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  const std::string name(eventKindName(e.kind));
  switch (e.kind) {
    case EventKind::kPortIn:
    case EventKind::kPortOut:
      std::snprintf(buf, sizeof buf, "step %llu %s port=0x%llx size=%u value=0x%llx count=%u",
                    u(e.step), name.c_str(), u(e.address), e.size, u(e.value), e.count);
      break;
    case EventKind::kMmioRead:
    case EventKind::kMmioWrite:
      std::snprintf(buf, sizeof buf, "step %llu %s addr=0x%llx size=%u value=0x%llx", u(e.step),
                    name.c_str(), u(e.address), e.size, u(e.value));
      break;
    case EventKind::kInterrupt:
      std::snprintf(buf, sizeof buf, "step %llu Interrupt vector=0x%llx", u(e.step), u(e.value));
      break;
    case EventKind::kRdrand:
      std::snprintf(buf, sizeof buf, "step %llu Rdrand size=%u value=0x%llx ok=%u", u(e.step),
                    e.size, u(e.value), e.flags & TraceEvent::kFlagOk);
      break;
    case EventKind::kMsrRead:
    case EventKind::kMsrWrite:
      std::snprintf(buf, sizeof buf, "step %llu %s msr=0x%llx value=0x%llx%s", u(e.step),
                    name.c_str(), u(e.address), u(e.value),
                    e.kind == EventKind::kMsrWrite ? (e.flags ? " accepted" : " refused") : "");
      break;
    case EventKind::kDiskSector:
      std::snprintf(buf, sizeof buf, "step %llu DiskSector disk=%llu lba=%llu", u(e.step),
                    u(e.value), u(e.address));
      break;
    case EventKind::kSerialInput:
      std::snprintf(buf, sizeof buf, "step %llu SerialInput byte=0x%02llx from the %s", u(e.step),
                    u(e.value), e.flags & TraceEvent::kFlagLine ? "line" : "terminal");
      break;
    case EventKind::kIdle:
      std::snprintf(buf, sizeof buf, "step %llu Idle until %llu ns", u(e.step), u(e.value));
      break;
    case EventKind::kDirtyPages:
      std::snprintf(buf, sizeof buf, "step %llu DirtyPages pages=0x%llx+%u", u(e.step),
                    u(e.address), e.count);
      break;
    case EventKind::kStopPoint:
      std::snprintf(buf, sizeof buf, "step %llu StopPoint rip=0x%llx fingerprint=0x%llx key=0x%x",
                    u(e.step), u(e.address), u(e.value), e.count);
      break;
    case EventKind::kRdtsc:
    case EventKind::kStateDigest:
    case EventKind::kDeviceDigest:
    case EventKind::kDebugExit:
      std::snprintf(buf, sizeof buf, "step %llu %s value=0x%llx", u(e.step), name.c_str(),
                    u(e.value));
      break;
    default:
      std::snprintf(buf, sizeof buf, "step %llu %s", u(e.step), name.c_str());
      if (!isValidEventKind(static_cast<uint8_t>(e.kind)))
        std::snprintf(buf, sizeof buf, "step %llu kind=%u", u(e.step),
                      static_cast<unsigned>(e.kind));
      break;
  }
  return buf;
}

std::string_view endReasonName(EndReason r) {
  switch (r) {
    case EndReason::kExitDevice: return "exit-device";
    case EndReason::kShutdown: return "shutdown";
    case EndReason::kTripleFault: return "triple-fault";
    case EndReason::kPanic: return "panic";
    case EndReason::kReset: return "reset";
    case EndReason::kHang: return "hang";
    case EndReason::kMaxSteps: return "max-steps";
    case EndReason::kTimeout: return "timeout";
    case EndReason::kInterrupted: return "interrupted";
    case EndReason::kInternalError: return "internal-error";
  }
  return "unknown";
}

void RamPages::add(uint64_t number, std::span<const uint8_t> data) {
  TTVM_ASSERT(data.size() == kPageSize, "a RAM page is 4096 bytes, got ", data.size());
  TTVM_ASSERT(numbers.empty() || number > numbers.back(),
              "RAM page numbers must increase: ", number, " after ", numbers.back());
  numbers.push_back(number);
  bytes.insert(bytes.end(), data.begin(), data.end());
}

RamPages RamPages::fromFlat(std::span<const uint8_t> ram) {
  RamPages pages;
  const size_t n = ram.size() / kPageSize;
  for (size_t i = 0; i < n; ++i) {
    auto page = ram.subspan(i * kPageSize, kPageSize);
    // Compare 8 bytes at a time; most pages of a fresh guest are zero.
    bool zero = true;
    for (size_t k = 0; k < kPageSize && zero; k += 8) {
      uint64_t w;
      std::memcpy(&w, page.data() + k, 8);
      zero = w == 0;
    }
    if (!zero) pages.add(i, page);
  }
  if (ram.size() % kPageSize) {
    std::vector<uint8_t> tail(kPageSize, 0);
    std::memcpy(tail.data(), ram.data() + n * kPageSize, ram.size() % kPageSize);
    if (std::any_of(tail.begin(), tail.end(), [](uint8_t b) { return b != 0; })) pages.add(n, tail);
  }
  return pages;
}

bool RamPages::applyTo(std::span<uint8_t> ram, std::string* error) const {
  const uint64_t ramPages = (ram.size() + kPageSize - 1) / kPageSize;
  for (uint64_t n : numbers) {
    if (n >= ramPages) {
      if (error)
        *error =
            "RAM page " + std::to_string(n) + " (address 0x" +
            [n] {
              char b[24];
              std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(n * kPageSize));
              return std::string(b);
            }() +
            ") is outside guest RAM of " + std::to_string(ram.size()) + " bytes";
      return false;
    }
  }
  std::memset(ram.data(), 0, ram.size());
  for (size_t k = 0; k < numbers.size(); ++k) {
    const uint64_t at = numbers[k] * kPageSize;
    const size_t len = std::min<uint64_t>(kPageSize, ram.size() - at);
    std::memcpy(ram.data() + at, bytes.data() + k * kPageSize, len);
  }
  return true;
}

TraceId randomTraceId() {
  TraceId id;
  while (id.empty()) {
    uint64_t w[2] = {};
    if (::getrandom(w, sizeof w, 0) != sizeof w) {
      std::random_device rd;  // the kernel's source failed: still not a constant
      w[0] = (uint64_t{rd()} << 32) ^ rd();
      w[1] = (uint64_t{rd()} << 32) ^ rd();
    }
    id = {w[0], w[1]};
  }
  return id;
}

namespace {
constexpr std::string_view kRecoveredPrefix = "recovered at step ";
}  // namespace

TraceEnd recoveredEnd(const CpuState& finalCpu, uint64_t finalDigest, const std::string& why) {
  TraceEnd e;
  e.reason = EndReason::kInterrupted;
  e.finalCpu = finalCpu;
  e.finalDigest = finalDigest;
  e.steps = finalCpu.steps;
  e.message = std::string(kRecoveredPrefix) + std::to_string(e.steps) +
              " by `ttvm recover`: " + why +
              "; the final state is the replay's at that step, the end of the readable prefix";
  return e;
}

bool isRecoveredEnd(const TraceEnd& e) {
  return e.reason == EndReason::kInterrupted && e.message.starts_with(kRecoveredPrefix);
}

}  // namespace ttvm
