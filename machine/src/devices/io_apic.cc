#include "ttvm/machine/devices/io_apic.h"

namespace ttvm::machine {
namespace {

constexpr uint64_t kMasked = 1ull << 16;
constexpr uint64_t kLevel = 1ull << 15;
constexpr uint64_t kRemoteIrr = 1ull << 14;
constexpr uint64_t kDeliveryStatus = 1ull << 12;
constexpr uint64_t kWritable =
    0xFF000000'0001AFFFull;                // dest, mask, trigger, polarity, destmode, mode, vector
constexpr uint32_t kVersion = 0x00170020;  // 24 entries, version 0x20

}  // namespace

bool IoApic::deliver(unsigned pin) {
  uint64_t e = redirection_[pin];
  auto vector = static_cast<uint8_t>(e & 0xFF);
  unsigned mode = (e >> 8) & 7;
  bool logical = (e >> 11) & 1;
  auto dest = static_cast<uint8_t>(e >> 56);
  if (lapic_ == nullptr) return false;
  // With one CPU: physical destination must be its ID (or broadcast);
  // logical destinations accept any set bit (flat model) - one CPU answers.
  if (!logical && dest != 0xFF && dest != 0) {
    // Destination ID 0 is the BSP; others name absent CPUs.
    return false;
  }
  if (logical && dest == 0) return false;
  switch (mode) {
    case 0:  // fixed
    case 1:  // lowest priority
      lapic_->acceptInterrupt(vector, (e & kLevel) != 0);
      return true;
    case 4:  // NMI
      lapic_->raiseLint1();
      return true;
    default: return false;  // SMI, INIT, ExtINT: not routed through the I/O APIC here
  }
}

void IoApic::service(unsigned pin) {
  uint64_t& e = redirection_[pin];
  if (e & kMasked) return;
  bool asserted = (levels_ >> pin) & 1;
  if (!(e & kLevel) || !asserted || (e & kRemoteIrr)) return;
  if (deliver(pin)) e |= kRemoteIrr;
}

void IoApic::setPin(unsigned pin, bool level) {
  if (pin >= kPins) return;
  bool old = (levels_ >> pin) & 1;
  if (level) {
    levels_ |= 1u << pin;
  } else {
    levels_ &= ~(1u << pin);
  }
  uint64_t e = redirection_[pin];
  if (e & kLevel) {
    service(pin);
  } else if (level && !old && !(e & kMasked)) {
    deliver(pin);
  }
}

void IoApic::endOfInterrupt(uint8_t vector) {
  for (unsigned pin = 0; pin < kPins; ++pin) {
    uint64_t& e = redirection_[pin];
    if ((e & kLevel) && (e & kRemoteIrr) && (e & 0xFF) == vector) {
      e &= ~kRemoteIrr;
      service(pin);
    }
  }
}

uint64_t IoApic::mmioRead(uint64_t offset, unsigned size) {
  uint32_t v = 0;
  if (offset < 0x10) {
    v = select_;
  } else if (offset >= 0x10 && offset < 0x20) {
    uint32_t reg = select_ & 0xFF;
    if (reg == 0) {
      v = uint32_t{id_} << 24;
    } else if (reg == 1) {
      v = kVersion;
    } else if (reg == 2) {
      v = uint32_t{id_} << 24;
    } else if (reg >= 0x10 && reg < 0x10 + 2 * kPins) {
      uint64_t e = redirection_[(reg - 0x10) / 2];
      v = (reg & 1) ? static_cast<uint32_t>(e >> 32) : static_cast<uint32_t>(e);
    }
  }
  uint64_t r = uint64_t{v} >> (8 * (offset & 3));
  return size >= 8 ? r : r & ((1ull << (8 * size)) - 1);
}

void IoApic::mmioWrite(uint64_t offset, unsigned, uint64_t value) {
  auto v = static_cast<uint32_t>(value);
  if (offset == 0x00) {
    select_ = v & 0xFF;
    return;
  }
  if (offset == 0x40) {  // EOI register (version 0x20)
    endOfInterrupt(static_cast<uint8_t>(v));
    return;
  }
  if (offset != 0x10) return;
  uint32_t reg = select_;
  if (reg == 0) {
    id_ = static_cast<uint8_t>((v >> 24) & 0x0F);
    return;
  }
  if (reg < 0x10 || reg >= 0x10 + 2 * kPins) return;  // version/arbitration are read-only
  unsigned pin = (reg - 0x10) / 2;
  uint64_t& e = redirection_[pin];
  uint64_t keep = e & (kRemoteIrr | kDeliveryStatus);
  uint64_t updated;
  if (reg & 1) {
    updated = (e & 0xFFFFFFFFull) | (uint64_t{v} << 32);
  } else {
    updated = (e & 0xFFFFFFFF00000000ull) | v;
  }
  e = (updated & kWritable) | keep;
  if (!(e & kLevel)) e &= ~kRemoteIrr;  // edge entries never hold Remote IRR
  service(pin);                         // an unmasked, asserted level line delivers now
}

void IoApic::saveState(StateWriter& out) const {
  out.u8(id_);
  out.u32(select_);
  for (uint64_t e : redirection_) out.u64(e);
  out.u32(levels_);
}

Status IoApic::loadState(StateReader& in) {
  id_ = in.u8();
  select_ = in.u32();
  for (uint64_t& e : redirection_) e = in.u64();
  levels_ = in.u32();
  return in.status();
}

}  // namespace ttvm::machine
