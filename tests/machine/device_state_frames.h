// Machine::saveDeviceState() split into its parts, so that a test comparing
// two device states names the device that differs. The layout is the one
// machine.cc writes: magic (8 bytes), version (u32), the clock's idle offset
// and the generator (u64 each) — returned as the part named "machine" —
// then a device count (u32) and per device its name and its state, each a
// u32 length and the bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ttvm/machine/state_io.h"

namespace ttvm::test {

using DeviceStateFrames = std::vector<std::pair<std::string, std::vector<uint8_t>>>;

// Empty when `blob` is not a whole device state.
inline DeviceStateFrames deviceStateFrames(std::span<const uint8_t> blob) {
  machine::StateReader r(blob, "device state");
  constexpr size_t kHead = 8 + 4 + 8 + 8;
  if (blob.size() < kHead) return {};
  for (size_t i = 0; i < kHead; ++i) r.u8();
  DeviceStateFrames frames;
  frames.emplace_back("machine", std::vector<uint8_t>(blob.begin() + 12, blob.begin() + kHead));
  const uint32_t count = r.u32();
  for (uint32_t i = 0; i < count && !r.failed(); ++i) {
    std::string name = r.str(64);
    std::vector<uint8_t> state = r.bytes(r.remaining());
    frames.emplace_back(std::move(name), std::move(state));
  }
  if (r.failed() || r.remaining() != 0) return {};
  return frames;
}

// The parts of `a` and `b` that differ, by name ("" when they are equal).
inline std::string differingDevices(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  const DeviceStateFrames fa = deviceStateFrames(a), fb = deviceStateFrames(b);
  if (fa.size() != fb.size()) return "different device lists";
  std::string out;
  for (size_t i = 0; i < fa.size(); ++i)
    if (fa[i] != fb[i]) out += (out.empty() ? "" : ", ") + fa[i].first;
  return out;
}

}  // namespace ttvm::test
