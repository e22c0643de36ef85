// A whole-machine recording for the replayer's tests (links the recorder,
// which scripted_trace_support, shared with other test binaries, does not).
#pragma once

#include <cstdint>
#include <string>

namespace ttvm::testing {

// Records a whole-machine trace (format 1.3) of `steps` steps of a boot
// sector spinning on `jmp $`, with 1 us of virtual time per step (the RTC's
// seconds change the device state; a device digest comes every 64 Ki
// steps), and returns its path.
std::string recordSpinningBootSector(const std::string& stem, uint64_t steps);

}  // namespace ttvm::testing
