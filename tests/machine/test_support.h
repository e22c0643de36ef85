// Helpers shared by the recorder's unit tests.
#pragma once

#include <string>
#include <vector>

#include "ttvm/machine/device.h"
#include "ttvm/machine/irq.h"

namespace ttvm::test {

// Records every level change per line.
struct RecordingIrqs final : machine::IrqSink {
  bool level[32] = {};
  int rises[32] = {};
  void setIrqLevel(unsigned irq, bool l) override {
    if (l && !level[irq]) ++rises[irq];
    level[irq] = l;
  }
};

struct StringConsole final : machine::ConsoleSink {
  std::string text;
  void write(uint8_t b) override { text.push_back(static_cast<char>(b)); }
};

struct RecordingControl final : machine::RunControl {
  std::vector<machine::StopRequest> requests;
  void requestStop(machine::StopRequest r) override { requests.push_back(std::move(r)); }
};

}  // namespace ttvm::test
