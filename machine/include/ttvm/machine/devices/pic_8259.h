// The 8259A programmable interrupt controller pair of a PC: master at
// 0x20/0x21 (IRQ 0-7), slave at 0xA0/0xA1 (IRQ 8-15) cascaded on master IRQ 2,
// and the edge/level control registers (ELCR) at 0x4D0/0x4D1.
//
// Modelled from the 8259A data sheet: ICW1-ICW4 initialisation, OCW1 (mask),
// OCW2 (non-specific / specific / rotating EOI, set priority), OCW3 (read
// IRR/ISR, poll mode, special mask mode), automatic EOI, special fully nested
// mode, edge or level sensing per line (ELCR, or ICW1.LTIM for a whole chip).
// An interrupt acknowledged when no request is valid any more yields the
// spurious vector (IRQ 7 of the chip, no ISR bit set; for the slave the
// master still sets its cascade ISR bit, as hardware does).
#pragma once

#include <cstdint>

#include "ttvm/machine/device.h"

namespace ttvm::machine {

class Pic8259Pair final : public Device, public PortDevice {
 public:
  Pic8259Pair() {
    chips_[0].elcrMask = 0xF8;  // IRQ 0, 1, 2 are always edge (as on PIIX)
    chips_[1].elcrMask = 0xDE;  // IRQ 8 and 13 too
  }
  std::string_view name() const override { return "pic"; }
  void saveState(StateWriter& out) const override;
  Status loadState(StateReader& in) override;

  uint32_t portRead(uint16_t port, unsigned size) override;
  void portWrite(uint16_t port, unsigned size, uint32_t value) override;

  // Line level of IRQ 0-15.
  void setIrq(unsigned irq, bool level);
  // INTR output to the CPU (through the LAPIC's LINT0 when it is enabled).
  bool outputHigh() const { return output_; }
  // The INTA cycle: the vector of the highest-priority request (or spurious).
  uint8_t acknowledge();

  // Programs both chips as a PC BIOS leaves them (vector bases, cascade,
  // 8086 mode) with the given masks.
  void biosInit(uint8_t masterBase, uint8_t slaveBase, uint8_t masterMask, uint8_t slaveMask);

  // Register views for tests.
  uint8_t irr(int chip) const { return chips_[chip].irr; }
  uint8_t isr(int chip) const { return chips_[chip].isr; }
  uint8_t imr(int chip) const { return chips_[chip].imr; }

 private:
  struct Chip {
    uint8_t irr = 0, isr = 0, imr = 0;
    uint8_t lineLevel = 0;  // current input levels (edge detection)
    uint8_t elcr = 0;       // 1 = level-triggered
    uint8_t elcrMask = 0;
    uint8_t priorityAdd = 0;  // the highest-priority line
    uint8_t irqBase = 0;
    uint8_t initState = 0;  // 0 ready, 1-3 expecting ICW2-ICW4
    bool init4 = false, singleMode = false, levelMode = false;
    bool readIsr = false, poll = false, specialMask = false;
    bool autoEoi = false, rotateOnAutoEoi = false, specialFullyNested = false;

    int priority(uint8_t mask) const;
    int pendingIrq(bool isMaster) const;
    void intack(int irq);
    void setLine(int irq, bool level);
    void writeCommand(uint8_t v);
    void writeData(uint8_t v);
    void save(StateWriter& out) const;
    void load(StateReader& in);
  };
  void update();
  uint8_t pollRead(int chip);

  Chip chips_[2];
  bool output_ = false;
};

}  // namespace ttvm::machine
