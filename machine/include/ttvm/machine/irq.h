// Interrupt lines. A device holds IrqLine values; the machine's router
// (IrqSink) forwards a level change of ISA IRQ n to the 8259A pair and to the
// I/O APIC (ISA IRQ 0 -> GSI 2, as the MADT's interrupt source override says).
#pragma once

#include <cstdint>

namespace ttvm::machine {

class IrqSink {
 public:
  virtual ~IrqSink() = default;
  // Sets the level of interrupt line `irq` (ISA IRQ 0-15, or GSI 16-23).
  virtual void setIrqLevel(unsigned irq, bool level) = 0;
};

class IrqLine {
 public:
  IrqLine() = default;
  IrqLine(IrqSink* sink, unsigned irq) : sink_(sink), irq_(irq) {}
  void set(bool level) {
    if (sink_ != nullptr) sink_->setIrqLevel(irq_, level);
  }
  void raise() { set(true); }
  void lower() { set(false); }
  // An edge: raise then lower (what an edge-triggered controller latches).
  void pulse() {
    set(true);
    set(false);
  }
  unsigned irq() const { return irq_; }

 private:
  IrqSink* sink_ = nullptr;
  unsigned irq_ = 0;
};

}  // namespace ttvm::machine
