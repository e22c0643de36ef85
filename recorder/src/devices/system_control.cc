#include "ttvm/recorder/devices/system_control.h"

namespace ttvm {
namespace {

void requestReboot(RunControl* control, std::string why) {
  StopRequest r;
  r.reason = EndReason::kReset;
  r.message = std::move(why);
  control->requestStop(std::move(r));
}

}  // namespace

void KeyboardController::saveState(StateWriter& out) const {
  out.u8(pendingCommand_);
  out.u8(commandByte_);
  out.u8(outputPort_);
  out.boolean(outputFull_);
  out.u8(output_);
}

Status KeyboardController::loadState(StateReader& in) {
  pendingCommand_ = in.u8();
  commandByte_ = in.u8();
  outputPort_ = in.u8();
  outputFull_ = in.boolean();
  output_ = in.u8();
  return in.status();
}

uint32_t KeyboardController::portRead(uint16_t port, unsigned) {
  if (port == 0x64) {
    // Bit 0: output buffer full; bit 1: input buffer full (never: commands
    // complete at once); bit 2: system flag (POST passed).
    return (outputFull_ ? 1u : 0u) | 0x04u;
  }
  uint8_t v = output_;
  outputFull_ = false;
  return v;
}

void KeyboardController::portWrite(uint16_t port, unsigned, uint32_t value) {
  auto v = static_cast<uint8_t>(value);
  if (port == 0x64) {
    pendingCommand_ = 0;
    switch (v) {
      case 0x20:  // read command byte
        output_ = commandByte_;
        outputFull_ = true;
        break;
      case 0x60:  // write command byte (data follows)
      case 0xD1:  // write output port (data follows)
        pendingCommand_ = v;
        break;
      case 0xD0:  // read output port
        output_ = outputPort_;
        outputFull_ = true;
        break;
      case 0xAA:  // self test
        output_ = 0x55;
        outputFull_ = true;
        break;
      case 0xAB:  // interface test
        output_ = 0x00;
        outputFull_ = true;
        break;
      case 0xFE:  // pulse the CPU reset line
        requestReboot(control_,
                      "guest reset the machine through the keyboard controller (0x64 <- 0xFE)");
        break;
      default:
        if ((v & 0xF0) == 0xF0 && !(v & 1))
          requestReboot(control_, "guest pulsed the keyboard controller's reset line");
        break;
    }
    return;
  }
  // Port 0x60: the data byte of a pending command, else a byte for the
  // keyboard, which is absent (no reply).
  if (pendingCommand_ == 0x60) {
    commandByte_ = v;
  } else if (pendingCommand_ == 0xD1) {
    outputPort_ = v;
    if (!(v & 1)) requestReboot(control_, "guest cleared the reset bit of the i8042 output port");
  }
  pendingCommand_ = 0;
}

void ResetControl::portWrite(uint16_t port, unsigned size, uint32_t value) {
  if (port != kPort || size != 1) return;
  auto v = static_cast<uint8_t>(value);
  if (v & 0x04) {
    requestReboot(control_, "guest reset the machine through port 0xCF9");
    return;
  }
  value_ = v & 0x0A;
}

void SystemControlA::portWrite(uint16_t, unsigned, uint32_t value) {
  auto v = static_cast<uint8_t>(value);
  // Bit 0 resets on a 0 -> 1 transition.
  if ((v & 1) && !(value_ & 1)) {
    value_ = v;
    requestReboot(control_, "guest reset the machine through port 0x92");
    return;
  }
  value_ = v;
}

void ShutdownPort::portWrite(uint16_t, unsigned size, uint32_t value) {
  static constexpr char kWord[] = "Shutdown";
  for (unsigned i = 0; i < size; ++i) {
    char c = static_cast<char>(value >> (8 * i));
    if (c == kWord[matched_]) {
      ++matched_;
    } else {
      matched_ = c == kWord[0] ? 1 : 0;
    }
    if (matched_ == 8) {
      matched_ = 0;
      StopRequest r;
      r.reason = EndReason::kShutdown;
      r.message = "guest wrote \"Shutdown\" to port 0x8900";
      control_->requestStop(std::move(r));
      return;
    }
  }
}

}  // namespace ttvm
