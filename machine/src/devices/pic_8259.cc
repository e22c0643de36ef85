#include "ttvm/machine/devices/pic_8259.h"

namespace ttvm::machine {

int Pic8259Pair::Chip::priority(uint8_t mask) const {
  if (mask == 0) return 8;
  int p = 0;
  while (!(mask & (1 << ((p + priorityAdd) & 7)))) ++p;
  return p;
}

// The IRQ this chip would present now, or -1.
int Pic8259Pair::Chip::pendingIrq(bool isMaster) const {
  int p = priority(static_cast<uint8_t>(irr & ~imr));
  if (p == 8) return -1;
  uint8_t inService = isr;
  if (specialMask) inService &= static_cast<uint8_t>(~imr);
  // Special fully nested: a slave request may interrupt a slave handler.
  if (isMaster && specialFullyNested) inService &= static_cast<uint8_t>(~(1 << 2));
  int cur = priority(inService);
  return p < cur ? (p + priorityAdd) & 7 : -1;
}

void Pic8259Pair::Chip::intack(int irq) {
  if (autoEoi) {
    if (rotateOnAutoEoi) priorityAdd = static_cast<uint8_t>((irq + 1) & 7);
  } else {
    isr |= static_cast<uint8_t>(1 << irq);
  }
  // An edge request is consumed by the acknowledge; a level request stays
  // while the line is high.
  if (!(elcr & (1 << irq)) && !levelMode) irr &= static_cast<uint8_t>(~(1 << irq));
}

void Pic8259Pair::Chip::setLine(int irq, bool level) {
  uint8_t bit = static_cast<uint8_t>(1 << irq);
  bool levelTriggered = (elcr & bit) || levelMode;
  if (levelTriggered) {
    if (level) {
      irr |= bit;
    } else {
      irr &= static_cast<uint8_t>(~bit);
    }
  } else if (level && !(lineLevel & bit)) {
    irr |= bit;  // rising edge
  }
  if (level) {
    lineLevel |= bit;
  } else {
    lineLevel &= static_cast<uint8_t>(~bit);
  }
}

void Pic8259Pair::Chip::writeCommand(uint8_t v) {
  if (v & 0x10) {  // ICW1
    imr = 0;
    isr = 0;
    irr = 0;  // the edge-sense latch is reset: a line must rise again
    priorityAdd = 0;
    readIsr = false;
    poll = false;
    specialMask = false;
    autoEoi = false;
    rotateOnAutoEoi = false;
    specialFullyNested = false;
    init4 = v & 0x01;
    singleMode = v & 0x02;
    levelMode = v & 0x08;
    initState = 1;
    return;
  }
  if (v & 0x08) {  // OCW3
    if (v & 0x04) poll = true;
    if (v & 0x02) readIsr = v & 0x01;
    if (v & 0x40) specialMask = (v >> 5) & 1;
    return;
  }
  // OCW2
  int cmd = v >> 5;
  switch (cmd) {
    case 0:  // clear rotate in automatic EOI
    case 4:  // set rotate in automatic EOI
      rotateOnAutoEoi = cmd == 4;
      break;
    case 1:    // non-specific EOI
    case 5: {  // rotate on non-specific EOI
      int p = priority(isr);
      if (p != 8) {
        int irq = (p + priorityAdd) & 7;
        isr &= static_cast<uint8_t>(~(1 << irq));
        if (cmd == 5) priorityAdd = static_cast<uint8_t>((irq + 1) & 7);
      }
      break;
    }
    case 3: isr &= static_cast<uint8_t>(~(1 << (v & 7))); break;     // specific EOI
    case 6: priorityAdd = static_cast<uint8_t>((v + 1) & 7); break;  // set priority
    case 7:                                                          // rotate on specific EOI
      isr &= static_cast<uint8_t>(~(1 << (v & 7)));
      priorityAdd = static_cast<uint8_t>((v + 1) & 7);
      break;
    default: break;  // 2: no operation
  }
}

void Pic8259Pair::Chip::writeData(uint8_t v) {
  switch (initState) {
    case 0: imr = v; break;  // OCW1
    case 1:                  // ICW2
      irqBase = v & 0xF8;
      initState = singleMode ? (init4 ? 3 : 0) : 2;
      break;
    case 2: initState = init4 ? 3 : 0; break;  // ICW3 (cascade wiring is fixed)
    case 3:                                    // ICW4
      specialFullyNested = (v >> 4) & 1;
      autoEoi = (v >> 1) & 1;
      initState = 0;
      break;
    default: initState = 0; break;
  }
}

void Pic8259Pair::Chip::save(StateWriter& out) const {
  for (uint8_t r : {irr, isr, imr, lineLevel, elcr, elcrMask, priorityAdd, irqBase, initState})
    out.u8(r);
  for (bool b : {init4, singleMode, levelMode, readIsr, poll, specialMask, autoEoi, rotateOnAutoEoi,
                 specialFullyNested})
    out.boolean(b);
}

void Pic8259Pair::Chip::load(StateReader& in) {
  for (uint8_t* r :
       {&irr, &isr, &imr, &lineLevel, &elcr, &elcrMask, &priorityAdd, &irqBase, &initState})
    *r = in.u8();
  for (bool* b : {&init4, &singleMode, &levelMode, &readIsr, &poll, &specialMask, &autoEoi,
                  &rotateOnAutoEoi, &specialFullyNested})
    *b = in.boolean();
  if (initState > 3) in.fail("PIC init state > 3");
  priorityAdd &= 7;
}

void Pic8259Pair::saveState(StateWriter& out) const {
  chips_[0].save(out);
  chips_[1].save(out);
  out.boolean(output_);
}

Status Pic8259Pair::loadState(StateReader& in) {
  chips_[0].load(in);
  chips_[1].load(in);
  output_ = in.boolean();
  return in.status();
}

void Pic8259Pair::update() {
  // The slave's INT output drives master line 2.
  chips_[0].setLine(2, chips_[1].pendingIrq(false) >= 0);
  output_ = chips_[0].pendingIrq(true) >= 0;
}

void Pic8259Pair::setIrq(unsigned irq, bool level) {
  if (irq >= 16) return;
  chips_[irq >> 3].setLine(static_cast<int>(irq & 7), level);
  update();
}

uint8_t Pic8259Pair::acknowledge() {
  Chip& master = chips_[0];
  Chip& slave = chips_[1];
  uint8_t vector;
  int irq = master.pendingIrq(true);
  if (irq < 0) {
    vector = static_cast<uint8_t>(master.irqBase + 7);  // spurious IRQ 7
  } else if (irq == 2) {
    int irq2 = slave.pendingIrq(false);
    if (irq2 >= 0) {
      slave.intack(irq2);
      vector = static_cast<uint8_t>(slave.irqBase + irq2);
    } else {
      vector = static_cast<uint8_t>(slave.irqBase + 7);  // spurious IRQ 15
    }
    master.intack(2);
  } else {
    master.intack(irq);
    vector = static_cast<uint8_t>(master.irqBase + irq);
  }
  update();
  return vector;
}

uint8_t Pic8259Pair::pollRead(int chip) {
  Chip& c = chips_[chip];
  c.poll = false;
  int irq = c.pendingIrq(chip == 0);
  if (irq < 0) return 0;
  if (chip == 0 && irq == 2) {
    // Polling the master for a cascaded request acknowledges the slave's too.
    int irq2 = chips_[1].pendingIrq(false);
    if (irq2 >= 0) chips_[1].intack(irq2);
  }
  c.intack(irq);
  update();
  return static_cast<uint8_t>(0x80 | irq);
}

uint32_t Pic8259Pair::portRead(uint16_t port, unsigned) {
  if (port == 0x4D0 || port == 0x4D1) return chips_[port & 1].elcr;
  int chip = port >= 0xA0 ? 1 : 0;
  Chip& c = chips_[chip];
  if (c.poll) return pollRead(chip);
  if ((port & 1) == 0) return c.readIsr ? c.isr : c.irr;
  return c.imr;
}

void Pic8259Pair::portWrite(uint16_t port, unsigned, uint32_t value) {
  auto v = static_cast<uint8_t>(value);
  if (port == 0x4D0 || port == 0x4D1) {
    Chip& c = chips_[port & 1];
    c.elcr = v & c.elcrMask;
    update();
    return;
  }
  Chip& c = chips_[port >= 0xA0 ? 1 : 0];
  if ((port & 1) == 0) {
    c.writeCommand(v);
  } else {
    c.writeData(v);
  }
  update();
}

void Pic8259Pair::biosInit(uint8_t masterBase, uint8_t slaveBase, uint8_t masterMask,
                           uint8_t slaveMask) {
  // ICW1 (edge, cascade, ICW4), ICW2 (base), ICW3 (wiring), ICW4 (8086), OCW1.
  portWrite(0x20, 1, 0x11);
  portWrite(0x21, 1, masterBase);
  portWrite(0x21, 1, 0x04);
  portWrite(0x21, 1, 0x01);
  portWrite(0x21, 1, masterMask);
  portWrite(0xA0, 1, 0x11);
  portWrite(0xA1, 1, slaveBase);
  portWrite(0xA1, 1, 0x02);
  portWrite(0xA1, 1, 0x01);
  portWrite(0xA1, 1, slaveMask);
}

}  // namespace ttvm::machine
