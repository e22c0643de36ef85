// The small PC system-control ports, each a device of its own:
//  - KeyboardController: the i8042 (a PS/2 controller with a keyboard and an
//    auxiliary port, no device on either): status at 0x64 (never busy,
//    keyboard not inhibited), data at 0x60. Every controller command a
//    driver probes with answers at once, so Linux's probe needs no timeout:
//    read/write the configuration byte (0x20/0x60), disable/enable the aux
//    and keyboard ports (0xA7/0xA8, 0xAD/0xAE: the byte's bits 5 and 4),
//    self test 0xAA -> 0x55, interface tests 0xA9/0xAB -> 0x00, and the
//    loopbacks 0xD2/0xD3 (the next data byte comes back as keyboard or aux
//    output, status bit 5 set for aux). Output raises IRQ 1 (keyboard) or
//    IRQ 12 (aux) while the configuration byte enables it (bits 0/1) until
//    the guest reads it. Bytes for the absent devices get no reply. 0xFE
//    (pulse the reset line) ends the run as a reboot; 0xD1 writes the
//    output port (bit 0 clear = reset, bit 1 = A20).
//  - ResetControl: port 0xCF9 (reset control register); a byte write with
//    bit 2 (RST_CPU) set ends the run as a reboot.
//  - SystemControlA: port 0x92 ("fast A20 and init"); bit 1 A20, bit 0 a
//    reset. A20 is always on in ttvm (the bit is remembered for reads).
//  - PostPort: port 0x80 (POST codes); remembers the last code.
//  - ShutdownPort: Bochs/QEMU's 0x8900: writing the string "Shutdown" ends
//    the run as a power-off.
#pragma once

#include <string>

#include "ttvm/machine/device.h"
#include "ttvm/machine/irq.h"

namespace ttvm::machine {

class KeyboardController final : public Device, public PortDevice {
 public:
  static constexpr unsigned kKeyboardIrq = 1, kAuxIrq = 12;
  KeyboardController(RunControl* control, IrqLine keyboardIrq, IrqLine auxIrq)
      : control_(control), keyboardIrq_(keyboardIrq), auxIrq_(auxIrq) {}
  std::string_view name() const override { return "i8042"; }
  void saveState(StateWriter& out) const override;
  Status loadState(StateReader& in) override;
  uint32_t portRead(uint16_t port, unsigned size) override;
  void portWrite(uint16_t port, unsigned size, uint32_t value) override;

 private:
  // Puts a byte in the output buffer (from the aux port when `aux`).
  void output(uint8_t v, bool aux);
  // Drives IRQ 1/12 from the output buffer and the configuration byte.
  void updateIrqs();

  RunControl* control_;
  IrqLine keyboardIrq_, auxIrq_;
  uint8_t pendingCommand_ = 0;  // a command waiting for its data byte at 0x60
  uint8_t commandByte_ = 0x61;  // controller configuration byte
  uint8_t outputPort_ = 0x03;   // bit 0 = not reset, bit 1 = A20
  bool outputFull_ = false;
  bool outputAux_ = false;  // the output byte came from the aux port
  uint8_t output_ = 0;
};

class ResetControl final : public Device, public PortDevice {
 public:
  static constexpr uint16_t kPort = 0xCF9;
  explicit ResetControl(RunControl* control) : control_(control) {}
  std::string_view name() const override { return "reset-control"; }
  void saveState(StateWriter& out) const override { out.u8(value_); }
  Status loadState(StateReader& in) override {
    value_ = in.u8();
    return in.status();
  }
  uint32_t portRead(uint16_t, unsigned) override { return value_; }
  void portWrite(uint16_t port, unsigned size, uint32_t value) override;

 private:
  RunControl* control_;
  uint8_t value_ = 0;
};

class SystemControlA final : public Device, public PortDevice {
 public:
  static constexpr uint16_t kPort = 0x92;
  explicit SystemControlA(RunControl* control) : control_(control) {}
  std::string_view name() const override { return "port92"; }
  void saveState(StateWriter& out) const override { out.u8(value_); }
  Status loadState(StateReader& in) override {
    value_ = in.u8();
    return in.status();
  }
  uint32_t portRead(uint16_t, unsigned) override { return value_; }
  void portWrite(uint16_t, unsigned, uint32_t value) override;

 private:
  RunControl* control_;
  uint8_t value_ = 0x02;  // A20 on
};

class PostPort final : public Device, public PortDevice {
 public:
  static constexpr uint16_t kPort = 0x80;
  std::string_view name() const override { return "post"; }
  void saveState(StateWriter& out) const override { out.u8(last_); }
  Status loadState(StateReader& in) override {
    last_ = in.u8();
    return in.status();
  }
  uint32_t portRead(uint16_t, unsigned) override { return last_; }
  void portWrite(uint16_t, unsigned, uint32_t value) override {
    last_ = static_cast<uint8_t>(value);
  }
  uint8_t lastCode() const { return last_; }

 private:
  uint8_t last_ = 0;
};

class ShutdownPort final : public Device, public PortDevice {
 public:
  static constexpr uint16_t kPort = 0x8900;
  explicit ShutdownPort(RunControl* control) : control_(control) {}
  std::string_view name() const override { return "shutdown-port"; }
  void saveState(StateWriter& out) const override { out.u8(matched_); }
  Status loadState(StateReader& in) override {
    matched_ = in.u8();
    if (matched_ > 8) in.fail("shutdown-port progress > 8");
    return in.status();
  }
  uint32_t portRead(uint16_t, unsigned size) override {
    return static_cast<uint32_t>((1ull << (8 * size)) - 1);
  }
  void portWrite(uint16_t port, unsigned size, uint32_t value) override;

 private:
  RunControl* control_;
  uint8_t matched_ = 0;  // characters of "Shutdown" seen in a row
};

}  // namespace ttvm::machine
