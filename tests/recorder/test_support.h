// Helpers shared by the recorder's unit tests.
#pragma once

#include <string>
#include <vector>

#include "ttvm/recorder/device.h"
#include "ttvm/recorder/irq.h"

namespace ttvm::test {

// Records every level change per line.
struct RecordingIrqs final : IrqSink {
  bool level[32] = {};
  int rises[32] = {};
  void setIrqLevel(unsigned irq, bool l) override {
    if (l && !level[irq]) ++rises[irq];
    level[irq] = l;
  }
};

struct StringConsole final : ConsoleSink {
  std::string text;
  void write(uint8_t b) override { text.push_back(static_cast<char>(b)); }
};

struct RecordingControl final : RunControl {
  std::vector<StopRequest> requests;
  void requestStop(StopRequest r) override { requests.push_back(std::move(r)); }
};

}  // namespace ttvm::test
