#include "ttvm/machine/devices/pit_8254.h"

namespace ttvm::machine {
uint64_t Pit8254::ticksSinceLoad(const Channel& c, uint64_t nowNs) const {
  if (!c.counting) return c.pausedTicks;
  uint64_t dt = nowNs >= c.loadNs ? nowNs - c.loadNs : 0;
  return c.pausedTicks + mulDiv(dt, kFrequencyHz, 1'000'000'000);
}

uint64_t Pit8254::tickToNs(const Channel& c, uint64_t ticks) const {
  // The time at which `ticks` ticks (counted from the load) have elapsed.
  uint64_t t = ticks > c.pausedTicks ? ticks - c.pausedTicks : 0;
  return c.loadNs + mulDivCeil(t, 1'000'000'000, kFrequencyHz);
}

uint16_t Pit8254::countAt(const Channel& c, uint64_t nowNs) const {
  if (c.nullCount && !c.counting) return static_cast<uint16_t>(c.reload);
  uint64_t d = ticksSinceLoad(c, nowNs);
  uint64_t n = c.reload;
  switch (c.mode) {
    case 2: return static_cast<uint16_t>(n - (d % n));
    case 3: return static_cast<uint16_t>(n - ((2 * d) % n));
    default: return static_cast<uint16_t>((n - d) & 0xFFFF);  // 0, 1, 4, 5 wrap
  }
}

bool Pit8254::outAt(const Channel& c, uint64_t nowNs) const {
  uint64_t d = ticksSinceLoad(c, nowNs);
  uint64_t n = c.reload;
  switch (c.mode) {
    case 0: return !c.nullCount && d >= n;  // low from the count write until TC
    case 1: return (!c.counting && c.pausedTicks == 0) || d >= n;  // low from trigger to TC
    case 2: return (d % n) != n - 1 || !c.counting;
    case 3: return (d % n) < (n + 1) / 2;
    case 4:
    case 5: return d != n;
    default: return true;
  }
}

std::optional<uint64_t> Pit8254::nextEdgeAfter(const Channel& c, uint64_t nowNs) const {
  if (!c.counting) return std::nullopt;
  uint64_t d = ticksSinceLoad(c, nowNs);
  uint64_t n = c.reload;
  uint64_t edgeTick;
  switch (c.mode) {
    case 0:
    case 1:
      if (d >= n) return std::nullopt;  // fired already; waits for a new count
      edgeTick = n;
      break;
    case 2:
    case 3: edgeTick = (d / n + 1) * n; break;  // OUT rises at each period's start
    case 4:
    case 5:
      if (d >= n + 1) return std::nullopt;
      edgeTick = n + 1;  // the strobe ends (rising edge) one tick after TC
      break;
    default: return std::nullopt;
  }
  uint64_t t = tickToNs(c, edgeTick);
  if (t <= nowNs) t = nowNs + 1;
  return t;
}

void Pit8254::recomputeIrqDeadline() {
  uint64_t now = clock_->nowNs();
  auto next = nextEdgeAfter(ch_[0], now);
  irqArmed_ = next.has_value();
  nextIrqNs_ = next.value_or(0);
  clock_->requestReschedule();
}

std::optional<uint64_t> Pit8254::nextDeadlineNs() const {
  if (!irqArmed_) return std::nullopt;
  return nextIrqNs_;
}

void Pit8254::advanceTo(uint64_t nowNs) {
  if (!irqArmed_ || nowNs < nextIrqNs_) return;
  // One edge per call: if the loop fell behind (several periods at once),
  // the 8259 would have latched only one request anyway.
  irq0_.pulse();
  auto next = nextEdgeAfter(ch_[0], nowNs);
  irqArmed_ = next.has_value();
  nextIrqNs_ = next.value_or(0);
}

void Pit8254::loadCount(int ch, uint32_t value) {
  Channel& c = ch_[ch];
  c.reload = value == 0 ? 0x10000 : value;
  c.nullCount = false;
  c.pausedTicks = 0;
  c.loadNs = clock_->nowNs();
  // Modes 1 and 5 wait for a gate trigger; the others start counting at once
  // (mode 2/3 with the gate high).
  c.counting = (c.mode == 1 || c.mode == 5) ? false : c.gate;
  if (ch == 0) recomputeIrqDeadline();
}

void Pit8254::setGate(int ch, bool gate) {
  Channel& c = ch_[ch];
  if (gate == c.gate) return;
  uint64_t now = clock_->nowNs();
  if (!gate) {
    // Modes 0/2/3/4 stop counting while the gate is low.
    if (c.counting && c.mode != 1 && c.mode != 5) {
      c.pausedTicks = ticksSinceLoad(c, now);
      c.counting = false;
    }
  } else if (!c.nullCount) {
    if (c.mode == 1 || c.mode == 5 || c.mode == 2 || c.mode == 3) {
      c.pausedTicks = 0;  // rising gate (re)triggers
    }
    c.loadNs = now;
    c.counting = true;
  }
  c.gate = gate;
  if (ch == 0) recomputeIrqDeadline();
}

uint8_t Pit8254::statusByte(int ch) const {
  const Channel& c = ch_[ch];
  return static_cast<uint8_t>((outAt(c, clock_->nowNs()) ? 0x80 : 0) | (c.nullCount ? 0x40 : 0) |
                              (c.access << 4) | (c.mode << 1) | (c.bcd ? 1 : 0));
}

uint16_t Pit8254::currentCount(int channel) const {
  return countAt(ch_[channel], clock_->nowNs());
}
bool Pit8254::output(int channel) const {
  return outAt(ch_[channel], clock_->nowNs());
}

uint32_t Pit8254::portRead(uint16_t port, unsigned) {
  if (port == 0x61) {
    uint64_t now = clock_->nowNs();
    // Bit 4 toggles with every DRAM refresh cycle (15.085 us).
    uint8_t refresh = ((now / 15085) & 1) ? 0x10 : 0;
    uint8_t out2 = outAt(ch_[2], now) ? 0x20 : 0;
    return static_cast<uint8_t>((port61_ & 0x0F) | refresh | out2);
  }
  if (port == 0x43) return 0xFF;  // the control word register is write-only
  int ch = port - 0x40;
  Channel& c = ch_[ch];
  if (c.statusLatched) {
    c.statusLatched = false;
    return c.latchedStatus;
  }
  if (c.countLatched) {
    uint8_t v;
    if (c.latchedAccess == 1) {
      v = static_cast<uint8_t>(c.latchedCount);
      c.countLatched = false;
    } else if (c.latchedAccess == 2) {
      v = static_cast<uint8_t>(c.latchedCount >> 8);
      c.countLatched = false;
    } else if (!c.latchMsbNext) {
      v = static_cast<uint8_t>(c.latchedCount);
      c.latchMsbNext = true;
    } else {
      v = static_cast<uint8_t>(c.latchedCount >> 8);
      c.latchMsbNext = false;
      c.countLatched = false;
    }
    return v;
  }
  uint16_t count = countAt(c, clock_->nowNs());
  switch (c.access) {
    case 1: return static_cast<uint8_t>(count);
    case 2: return static_cast<uint8_t>(count >> 8);
    default:
      c.readMsbNext = !c.readMsbNext;
      return c.readMsbNext ? static_cast<uint8_t>(count) : static_cast<uint8_t>(count >> 8);
  }
}

void Pit8254::portWrite(uint16_t port, unsigned, uint32_t value) {
  auto v = static_cast<uint8_t>(value);
  if (port == 0x61) {
    port61_ = v & 0x03;
    setGate(2, v & 1);
    return;
  }
  if (port == 0x43) {
    int ch = v >> 6;
    if (ch == 3) {  // read-back command
      for (int i = 0; i < 3; ++i) {
        if (!(v & (2 << i))) continue;
        Channel& c = ch_[i];
        if (!(v & 0x20) && !c.countLatched) {
          c.countLatched = true;
          c.latchedCount = countAt(c, clock_->nowNs());
          c.latchedAccess = c.access;
          c.latchMsbNext = false;
        }
        if (!(v & 0x10) && !c.statusLatched) {
          c.statusLatched = true;
          c.latchedStatus = statusByte(i);
        }
      }
      return;
    }
    Channel& c = ch_[ch];
    int access = (v >> 4) & 3;
    if (access == 0) {  // counter latch command
      if (!c.countLatched) {
        c.countLatched = true;
        c.latchedCount = countAt(c, clock_->nowNs());
        c.latchedAccess = c.access;
        c.latchMsbNext = false;
      }
      return;
    }
    c.access = static_cast<uint8_t>(access);
    uint8_t mode = (v >> 1) & 7;
    if (mode >= 6) mode -= 4;  // 6 and 7 are aliases of 2 and 3
    c.mode = mode;
    c.bcd = v & 1;
    c.readMsbNext = false;
    c.writeMsbNext = false;
    c.countLatched = false;
    c.nullCount = true;
    c.counting = false;  // writing the mode stops the counter until a count arrives
    c.pausedTicks = 0;
    if (ch == 0) recomputeIrqDeadline();
    return;
  }
  int ch = port - 0x40;
  Channel& c = ch_[ch];
  switch (c.access) {
    case 1: loadCount(ch, v); break;
    case 2: loadCount(ch, uint32_t{v} << 8); break;
    default:
      if (!c.writeMsbNext) {
        c.writeLatch = v;
        c.writeMsbNext = true;
        // Mode 0: writing the first byte stops the count.
        if (c.mode == 0 && c.counting) {
          c.counting = false;
          c.pausedTicks = ticksSinceLoad(c, clock_->nowNs());
          if (ch == 0) recomputeIrqDeadline();
        }
      } else {
        c.writeMsbNext = false;
        loadCount(ch, c.writeLatch | (uint32_t{v} << 8));
      }
      break;
  }
}

void Pit8254::biosInit() {
  portWrite(0x43, 1, 0x36);  // channel 0, LSB then MSB, mode 3, binary
  portWrite(0x40, 1, 0x00);
  portWrite(0x40, 1, 0x00);  // 65536: 18.2 Hz
}

void Pit8254::saveState(StateWriter& out) const {
  for (const Channel& c : ch_) {
    out.u32(c.reload);
    out.u8(c.mode);
    out.u8(c.access);
    for (bool b : {c.bcd, c.gate, c.counting, c.nullCount, c.readMsbNext, c.writeMsbNext,
                   c.countLatched, c.latchMsbNext, c.statusLatched})
      out.boolean(b);
    out.u64(c.loadNs);
    out.u64(c.pausedTicks);
    out.u8(c.writeLatch);
    out.u16(c.latchedCount);
    out.u8(c.latchedAccess);
    out.u8(c.latchedStatus);
  }
  out.u8(port61_);
  out.u64(nextIrqNs_);
  out.boolean(irqArmed_);
}

Status Pit8254::loadState(StateReader& in) {
  for (Channel& c : ch_) {
    c.reload = in.u32();
    c.mode = in.u8();
    c.access = in.u8();
    for (bool* b : {&c.bcd, &c.gate, &c.counting, &c.nullCount, &c.readMsbNext, &c.writeMsbNext,
                    &c.countLatched, &c.latchMsbNext, &c.statusLatched})
      *b = in.boolean();
    c.loadNs = in.u64();
    c.pausedTicks = in.u64();
    c.writeLatch = in.u8();
    c.latchedCount = in.u16();
    c.latchedAccess = in.u8();
    c.latchedStatus = in.u8();
    if (c.reload == 0 || c.reload > 0x10000 || c.mode > 5 || c.access == 0 || c.access > 3)
      in.fail("PIT channel registers out of range");
  }
  port61_ = in.u8();
  nextIrqNs_ = in.u64();
  irqArmed_ = in.boolean();
  return in.status();
}

}  // namespace ttvm::machine
