#include "ttvm/machine/devices/uart_16550.h"

namespace ttvm::machine {
namespace {

// Register offsets and bits.
constexpr unsigned kRbrThr = 0, kIer = 1, kIirFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6,
                   kScr = 7;
constexpr uint8_t kIerRda = 0x01, kIerThre = 0x02, kIerRls = 0x04, kIerMs = 0x08;
constexpr uint8_t kIirNone = 0x01, kIirMs = 0x00, kIirThre = 0x02, kIirRda = 0x04, kIirRls = 0x06,
                  kIirTimeout = 0x0C, kIirFifo = 0xC0;
constexpr uint8_t kFcrEnable = 0x01, kFcrClearRx = 0x02, kFcrClearTx = 0x04;
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08, kMcrLoop = 0x10;
constexpr uint8_t kLsrDr = 0x01, kLsrOe = 0x02, kLsrPe = 0x04, kLsrFe = 0x08, kLsrBi = 0x10,
                  kLsrThre = 0x20, kLsrTemt = 0x40, kLsrFifoErr = 0x80;
constexpr uint8_t kMsrDcts = 0x01, kMsrDdsr = 0x02, kMsrTeri = 0x04, kMsrDdcd = 0x08,
                  kMsrCts = 0x10, kMsrDsr = 0x20, kMsrRi = 0x40, kMsrDcd = 0x80;
constexpr uint8_t kMsrDeltas = kMsrDcts | kMsrDdsr | kMsrTeri | kMsrDdcd;

}  // namespace

Uart16550::Uart16550(std::string name, ConsoleSink* console, IrqLine irq, VirtualClock* clock)
    : name_(std::move(name)), console_(console), irq_(irq), clock_(clock) {}

void Uart16550::saveState(StateWriter& out) const {
  for (uint8_t r : {ier_, iir_, fcr_, lcr_, mcr_, lsr_, msr_, scr_}) out.u8(r);
  out.u16(divisor_);
  out.boolean(thrInterruptPending_);
  out.boolean(timeoutPending_);
  out.bytes(rx_);
  out.u8(static_cast<uint8_t>(rxHead_));
  out.u8(static_cast<uint8_t>(rxCount_));
  out.u64(timeoutDeadlineNs_);
  out.boolean(irqLevel_);
}

Status Uart16550::loadState(StateReader& in) {
  for (uint8_t* r : {&ier_, &iir_, &fcr_, &lcr_, &mcr_, &lsr_, &msr_, &scr_}) *r = in.u8();
  divisor_ = in.u16();
  thrInterruptPending_ = in.boolean();
  timeoutPending_ = in.boolean();
  in.fixedBytes(rx_);
  rxHead_ = in.u8();
  rxCount_ = in.u8();
  timeoutDeadlineNs_ = in.u64();
  irqLevel_ = in.boolean();
  if (rxHead_ >= kFifoSize || rxCount_ > kFifoSize)
    in.fail("UART receive FIFO indexes out of range");
  return in.status();
}

unsigned Uart16550::triggerLevel() const {
  if (!(fcr_ & kFcrEnable)) return 1;
  static constexpr unsigned kLevels[4] = {1, 4, 8, 14};
  return kLevels[fcr_ >> 6];
}

uint64_t Uart16550::charTimeNs() const {
  // 1 start + data + parity + stop bits at 115200 / divisor baud.
  unsigned bits = 1 + (5 + (lcr_ & 3)) + ((lcr_ & 0x08) ? 1 : 0) + ((lcr_ & 0x04) ? 2 : 1);
  uint64_t div = divisor_ == 0 ? 1 : divisor_;
  return bits * div * 1'000'000'000ull / 115200;
}

unsigned Uart16550::receiveRoom() const {
  unsigned cap = (fcr_ & kFcrEnable) ? kFifoSize : 1;
  return rxCount_ >= cap ? 0 : cap - rxCount_;
}

void Uart16550::pushRx(uint8_t byte) {
  if (receiveRoom() == 0) {
    lsr_ |= kLsrOe;
  } else {
    rx_[(rxHead_ + rxCount_) % kFifoSize] = byte;
    ++rxCount_;
    lsr_ |= kLsrDr;
  }
  timeoutPending_ = false;
  if ((fcr_ & kFcrEnable) && clock_ != nullptr) {
    timeoutDeadlineNs_ = clock_->nowNs() + 4 * charTimeNs();
    clock_->requestReschedule();
  }
  updateIrq();
}

void Uart16550::setLineInput(std::vector<uint8_t> bytes) {
  line_ = std::move(bytes);
  linePos_ = 0;
  lineByteInFifo_ = false;
  feedLine();
}

void Uart16550::feedLine() {
  if (rxCount_ != 0 || !(mcr_ & kMcrRts) || (mcr_ & kMcrLoop)) return;
  if (lineSource_) {
    if (const std::optional<uint8_t> b = lineSource_()) pushRx(*b);
    return;
  }
  if (linePos_ >= line_.size()) return;
  const uint8_t b = line_[linePos_++];
  pushRx(b);
  lineByteInFifo_ = true;
  if (observer_) observer_(b, true);
}

void Uart16550::clearRx() {
  if (lineByteInFifo_ && rxCount_ > 0) --linePos_;
  lineByteInFifo_ = false;
  rxHead_ = rxCount_ = 0;
  lsr_ &= static_cast<uint8_t>(~(kLsrDr | kLsrFifoErr));
}

bool Uart16550::receive(uint8_t byte) {
  if (mcr_ & kMcrLoop) return true;  // the line is disconnected in loopback
  bool room = receiveRoom() > 0;
  pushRx(byte);
  if (observer_) observer_(byte, false);
  return room;
}

void Uart16550::transmit(uint8_t byte) {
  if (mcr_ & kMcrLoop) {
    pushRx(byte);
  } else if (console_ != nullptr) {
    console_->write(byte);
  }
  // The byte left at once: THR and the shift register are empty again.
  lsr_ |= kLsrThre | kLsrTemt;
  thrInterruptPending_ = true;
}

void Uart16550::updateIrq() {
  uint8_t id = kIirNone;
  if ((ier_ & kIerRls) && (lsr_ & (kLsrOe | kLsrPe | kLsrFe | kLsrBi))) {
    id = kIirRls;
  } else if ((ier_ & kIerRda) && timeoutPending_) {
    id = kIirTimeout;
  } else if ((ier_ & kIerRda) && rxCount_ >= triggerLevel()) {
    id = kIirRda;
  } else if ((ier_ & kIerThre) && thrInterruptPending_) {
    id = kIirThre;
  } else if ((ier_ & kIerMs) && (msr_ & kMsrDeltas)) {
    id = kIirMs;
  }
  iir_ = static_cast<uint8_t>(id | ((fcr_ & kFcrEnable) ? kIirFifo : 0));
  bool level = id != kIirNone;
  if (level != irqLevel_) {
    irqLevel_ = level;
    irq_.set(level);
  }
}

void Uart16550::updateMsrFromLoopback(uint8_t oldMcr) {
  auto lines = [](uint8_t mcr) {
    uint8_t m = 0;
    if (mcr & kMcrRts) m |= kMsrCts;
    if (mcr & kMcrDtr) m |= kMsrDsr;
    if (mcr & kMcrOut1) m |= kMsrRi;
    if (mcr & kMcrOut2) m |= kMsrDcd;
    return m;
  };
  uint8_t before = (oldMcr & kMcrLoop) ? lines(oldMcr) : static_cast<uint8_t>(msr_ & 0xF0);
  uint8_t after = (mcr_ & kMcrLoop) ? lines(mcr_) : static_cast<uint8_t>(0);
  uint8_t changed = before ^ after;
  uint8_t deltas = msr_ & kMsrDeltas;
  if (changed & kMsrCts) deltas |= kMsrDcts;
  if (changed & kMsrDsr) deltas |= kMsrDdsr;
  if (changed & kMsrDcd) deltas |= kMsrDdcd;
  if ((before & kMsrRi) && !(after & kMsrRi)) deltas |= kMsrTeri;  // trailing edge of RI
  msr_ = static_cast<uint8_t>(after | deltas);
}

uint8_t Uart16550::readReg(unsigned reg) {
  switch (reg) {
    case kRbrThr: {
      if (lcr_ & kLcrDlab) return static_cast<uint8_t>(divisor_);
      uint8_t v = 0;
      if (rxCount_ > 0) {
        v = rx_[rxHead_];
        rxHead_ = (rxHead_ + 1) % kFifoSize;
        --rxCount_;
        lineByteInFifo_ = false;  // a line byte is always at the head
      }
      if (rxCount_ == 0) {
        lsr_ &= static_cast<uint8_t>(~(kLsrDr | kLsrFifoErr));
        timeoutDeadlineNs_ = 0;
      } else if ((fcr_ & kFcrEnable) && clock_ != nullptr) {
        timeoutDeadlineNs_ = clock_->nowNs() + 4 * charTimeNs();
        clock_->requestReschedule();
      }
      timeoutPending_ = false;
      feedLine();
      updateIrq();
      return v;
    }
    case kIer:
      if (lcr_ & kLcrDlab) return static_cast<uint8_t>(divisor_ >> 8);
      return ier_;
    case kIirFcr: {
      uint8_t v = iir_;
      // Reading IIR while it reports THRE acknowledges that interrupt.
      if ((v & 0x0F) == kIirThre) {
        thrInterruptPending_ = false;
        updateIrq();
      }
      return v;
    }
    case kLcr: return lcr_;
    case kMcr: return mcr_;
    case kLsr: {
      uint8_t v = lsr_;
      lsr_ &= static_cast<uint8_t>(~(kLsrOe | kLsrPe | kLsrFe | kLsrBi));
      if (v & (kLsrOe | kLsrPe | kLsrFe | kLsrBi)) updateIrq();
      return v;
    }
    case kMsr: {
      uint8_t v = msr_;
      msr_ &= static_cast<uint8_t>(~kMsrDeltas);
      if (v & kMsrDeltas) updateIrq();
      return v;
    }
    default: return scr_;
  }
}

void Uart16550::writeReg(unsigned reg, uint8_t v) {
  switch (reg) {
    case kRbrThr:
      if (lcr_ & kLcrDlab) {
        divisor_ = static_cast<uint16_t>((divisor_ & 0xFF00) | v);
        return;
      }
      thrInterruptPending_ = false;
      lsr_ &= static_cast<uint8_t>(~(kLsrThre | kLsrTemt));
      transmit(v);
      updateIrq();
      return;
    case kIer: {
      if (lcr_ & kLcrDlab) {
        divisor_ = static_cast<uint16_t>((divisor_ & 0x00FF) | (v << 8));
        return;
      }
      uint8_t old = ier_;
      ier_ = v & 0x0F;
      if ((ier_ & kIerThre) && !(old & kIerThre) && (lsr_ & kLsrThre)) thrInterruptPending_ = true;
      if (!(ier_ & kIerThre)) thrInterruptPending_ = false;
      updateIrq();
      return;
    }
    case kIirFcr: {
      if (v & kFcrClearRx) {
        clearRx();
        timeoutPending_ = false;
        timeoutDeadlineNs_ = 0;
      }
      // The transmit FIFO is always empty (instant transmission).
      if ((v ^ fcr_) & kFcrEnable) {
        // Changing the FIFO enable clears both FIFOs.
        const uint8_t errors = lsr_ & kLsrFifoErr;
        clearRx();
        lsr_ |= errors;
      }
      fcr_ = v & 0xC9;  // enable, DMA mode, trigger level
      if (!(fcr_ & kFcrEnable)) fcr_ = 0;
      feedLine();
      updateIrq();
      return;
    }
    case kLcr: lcr_ = v; return;
    case kMcr: {
      uint8_t old = mcr_;
      mcr_ = v & 0x1F;
      if ((old | mcr_) & kMcrLoop) updateMsrFromLoopback(old);
      feedLine();
      updateIrq();
      return;
    }
    case kLsr: return;  // read-only (factory test register)
    case kMsr: return;  // read-only
    default: scr_ = v; return;
  }
}

uint32_t Uart16550::portRead(uint16_t port, unsigned size) {
  uint32_t v = readReg(port & 7u);
  // Wider reads return successive registers, as a byte-wide bus does.
  for (unsigned i = 1; i < size; ++i) v |= uint32_t{readReg((port + i) & 7u)} << (8 * i);
  return v;
}

void Uart16550::portWrite(uint16_t port, unsigned size, uint32_t value) {
  for (unsigned i = 0; i < size; ++i)
    writeReg((port + i) & 7u, static_cast<uint8_t>(value >> (8 * i)));
}

std::optional<uint64_t> Uart16550::nextDeadlineNs() const {
  if (timeoutDeadlineNs_ == 0 || rxCount_ == 0 || timeoutPending_) return std::nullopt;
  return timeoutDeadlineNs_;
}

void Uart16550::advanceTo(uint64_t nowNs) {
  if (timeoutDeadlineNs_ != 0 && nowNs >= timeoutDeadlineNs_ && rxCount_ > 0 && !timeoutPending_) {
    timeoutDeadlineNs_ = 0;
    timeoutPending_ = true;
    updateIrq();
  }
}

}  // namespace ttvm::machine
