#include "ttvm/machine/devices/pvpanic.h"

#include <cstdio>

namespace ttvm::machine {

void PvPanic::portWrite(uint16_t, unsigned, uint32_t value) {
  events_ |= static_cast<uint8_t>(value & (kPanicked | kCrashLoaded));
  if (value & kPanicked) {
    StopRequest r;
    r.reason = EndReason::kPanic;
    r.message = "guest reported a panic through pvpanic (port 0x505)";
    control_->requestStop(std::move(r));
  } else if (value & kCrashLoaded) {
    std::fprintf(stderr, "ttvm: guest reported through pvpanic that a crash kernel is loaded\n");
  }
}

}  // namespace ttvm::machine
