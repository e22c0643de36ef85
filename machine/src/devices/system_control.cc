#include "ttvm/machine/devices/system_control.h"

namespace ttvm::machine {
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
  out.boolean(outputAux_);
  out.u8(output_);
}

Status KeyboardController::loadState(StateReader& in) {
  pendingCommand_ = in.u8();
  commandByte_ = in.u8();
  outputPort_ = in.u8();
  outputFull_ = in.boolean();
  outputAux_ = in.boolean();
  output_ = in.u8();
  // The IRQ lines are not driven here: the interrupt controllers' state,
  // loaded with the machine's, already holds their levels, and driving them
  // again would change it (a level-triggered 8259 line re-latched after the
  // guest's ICW1 cleared it, or a line another device shares lowered).
  return in.status();
}

namespace {
// Configuration byte bits.
constexpr uint8_t kKeyboardIrqEnable = 0x01, kAuxIrqEnable = 0x02, kKeyboardDisabled = 0x10,
                  kAuxDisabled = 0x20;
}  // namespace

void KeyboardController::output(uint8_t v, bool aux) {
  output_ = v;
  outputFull_ = true;
  outputAux_ = aux;
  updateIrqs();
}

void KeyboardController::updateIrqs() {
  keyboardIrq_.set(outputFull_ && !outputAux_ && (commandByte_ & kKeyboardIrqEnable));
  auxIrq_.set(outputFull_ && outputAux_ && (commandByte_ & kAuxIrqEnable));
}

uint32_t KeyboardController::portRead(uint16_t port, unsigned) {
  if (port == 0x64) {
    // Bit 0: output buffer full; bit 1: input buffer full (never: commands
    // complete at once); bit 2: system flag (POST passed); bit 4: keyboard
    // not inhibited (no key lock); bit 5: the output is from the aux port.
    return (outputFull_ ? 0x01u : 0u) | 0x04u | 0x10u | (outputFull_ && outputAux_ ? 0x20u : 0u);
  }
  uint8_t v = output_;
  outputFull_ = false;
  updateIrqs();
  return v;
}

void KeyboardController::portWrite(uint16_t port, unsigned, uint32_t value) {
  auto v = static_cast<uint8_t>(value);
  if (port == 0x64) {
    pendingCommand_ = 0;
    switch (v) {
      case 0x20: output(commandByte_, false); break;  // read the configuration byte
      case 0x60:                                      // write the configuration byte (data follows)
      case 0xD1:                                      // write the output port (data follows)
      case 0xD2:  // loop a byte back as keyboard output (data follows)
      case 0xD3:  // loop a byte back as aux output (data follows)
      case 0xD4:  // send a byte to the aux device (absent: no reply)
        pendingCommand_ = v;
        break;
      case 0xA7: commandByte_ |= kAuxDisabled; break;
      case 0xA8: commandByte_ &= static_cast<uint8_t>(~kAuxDisabled); break;
      case 0xAD: commandByte_ |= kKeyboardDisabled; break;
      case 0xAE: commandByte_ &= static_cast<uint8_t>(~kKeyboardDisabled); break;
      case 0xD0: output(outputPort_, false); break;  // read the output port
      case 0xAA: output(0x55, false); break;         // self test passed
      case 0xA9:                                     // aux interface test: no error
      case 0xAB: output(0x00, false); break;         // keyboard interface test: no error
      case 0xFE:                                     // pulse the CPU reset line
        requestReboot(control_,
                      "guest reset the machine through the keyboard controller (0x64 <- 0xFE)");
        break;
      default:
        if ((v & 0xF0) == 0xF0 && !(v & 1))
          requestReboot(control_, "guest pulsed the keyboard controller's reset line");
        break;
    }
    updateIrqs();
    return;
  }
  // Port 0x60: the data byte of a pending command, else a byte for the
  // keyboard, which is absent (no reply).
  switch (pendingCommand_) {
    case 0x60: commandByte_ = v; break;
    case 0xD1:
      outputPort_ = v;
      if (!(v & 1)) requestReboot(control_, "guest cleared the reset bit of the i8042 output port");
      break;
    case 0xD2: output(v, false); break;
    case 0xD3: output(v, true); break;
    default: break;
  }
  pendingCommand_ = 0;
  updateIrqs();
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

}  // namespace ttvm::machine
