#include "ttvm/machine/devices/cmos_rtc.h"

#include <algorithm>

namespace ttvm::machine {
namespace {

constexpr uint8_t kSec = 0, kSecAlarm = 1, kMin = 2, kMinAlarm = 3, kHour = 4, kHourAlarm = 5,
                  kWeekday = 6, kDay = 7, kMonth = 8, kYear = 9, kRegA = 0x0A, kRegB = 0x0B,
                  kRegC = 0x0C, kRegD = 0x0D, kCentury = 0x32;
constexpr uint8_t kBSet = 0x80, kBPie = 0x40, kBAie = 0x20, kBUie = 0x10, kBDm = 0x04, kB24h = 0x02;
constexpr uint8_t kCIrqf = 0x80, kCPf = 0x40, kCAf = 0x20, kCUf = 0x10;
constexpr uint64_t kSecondNs = 1'000'000'000;

// Days since 1970-01-01 -> civil date (proleptic Gregorian), and back.
void civilFromDays(int64_t z, int& y, int& m, int& d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  auto doe = static_cast<unsigned>(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t yy = static_cast<int64_t>(yoe) + era * 400;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  y = static_cast<int>(yy + (m <= 2));
}
int64_t daysFromCivil(int y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  auto yoe = static_cast<unsigned>(y - era * 400);
  unsigned doy = (153 * static_cast<unsigned>(m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

struct Civil {
  int year, month, day, hour, minute, second, weekday;  // weekday 1 = Sunday
};
Civil toCivil(int64_t unixSec) {
  Civil c{};
  int64_t days = unixSec >= 0 ? unixSec / 86400 : (unixSec - 86399) / 86400;
  int64_t rem = unixSec - days * 86400;
  civilFromDays(days, c.year, c.month, c.day);
  c.hour = static_cast<int>(rem / 3600);
  c.minute = static_cast<int>(rem / 60 % 60);
  c.second = static_cast<int>(rem % 60);
  c.weekday = static_cast<int>(((days % 7) + 7 + 4) % 7) + 1;  // 1970-01-01 was a Thursday
  return c;
}
int64_t fromCivil(const Civil& c) {
  return daysFromCivil(c.year, c.month, c.day) * 86400 + c.hour * 3600 + c.minute * 60 + c.second;
}

}  // namespace

CmosRtc::CmosRtc(IrqLine irq8, VirtualClock* clock, int64_t startUnixNs, uint64_t ramBytes)
    : irq_(irq8), clock_(clock) {
  int64_t sec =
      startUnixNs >= 0 ? startUnixNs / 1'000'000'000 : (startUnixNs - 999'999'999) / 1'000'000'000;
  offsetSec_ = sec;
  startFracNs_ = startUnixNs - sec * 1'000'000'000;
  cmos_[kRegA] = 0x26;   // 32.768 kHz time base, 1024 Hz periodic rate
  cmos_[kRegB] = kB24h;  // 24-hour, BCD
  cmos_[kRegD] = 0x80;   // valid RAM and time
  cmos_[0x10] = 0x00;    // no floppy
  cmos_[0x14] = 0x06;    // equipment: FPU, VGA/EGA
  cmos_[0x15] = 0x80;    // base memory 640 KiB
  cmos_[0x16] = 0x02;
  uint64_t extKb = ramBytes > (1u << 20) ? (ramBytes - (1u << 20)) / 1024 : 0;
  if (extKb > 0xFFFF) extKb = 0xFFFF;
  cmos_[0x17] = cmos_[0x30] = static_cast<uint8_t>(extKb);
  cmos_[0x18] = cmos_[0x31] = static_cast<uint8_t>(extKb >> 8);
  uint64_t above16M = ramBytes > (16u << 20) ? (ramBytes - (16u << 20)) / 65536 : 0;
  if (above16M > 0xFFFF) above16M = 0xFFFF;
  cmos_[0x34] = static_cast<uint8_t>(above16M);
  cmos_[0x35] = static_cast<uint8_t>(above16M >> 8);
  cmos_[0x5F] = 0;  // CPUs - 1
  recompute();
}

int64_t CmosRtc::unixSecondsNow() const {
  uint64_t ns = clock_->nowNs() + static_cast<uint64_t>(startFracNs_);
  return offsetSec_ + static_cast<int64_t>(ns / kSecondNs);
}

uint8_t CmosRtc::toGuest(int value) const {
  if (cmos_[kRegB] & kBDm) return static_cast<uint8_t>(value);
  return static_cast<uint8_t>(((value / 10) << 4) | (value % 10));
}

int CmosRtc::fromGuest(uint8_t v) const {
  if (cmos_[kRegB] & kBDm) return v;
  return (v >> 4) * 10 + (v & 0x0F);
}

uint64_t CmosRtc::periodicPeriodNs() const {
  unsigned rate = cmos_[kRegA] & 0x0F;
  if (rate == 0) return 0;
  if (rate <= 2) rate += 7;  // rates 1 and 2 alias 8 and 9 with a 32.768 kHz base
  // Period = 2^(rate-1) / 32768 s.
  return (kSecondNs << (rate - 1)) / 32768;
}

void CmosRtc::recompute() {
  uint64_t now = clock_->nowNs();
  uint64_t period = periodicPeriodNs();
  if ((cmos_[kRegB] & kBPie) && period != 0) {
    nextPeriodicNs_ = (now / period + 1) * period;
  } else {
    nextPeriodicNs_ = 0;
  }
  uint64_t frac = static_cast<uint64_t>(startFracNs_);
  // The next whole guest second.
  nextSecondNs_ = ((now + frac) / kSecondNs + 1) * kSecondNs - frac;
  clock_->requestReschedule();
}

std::optional<uint64_t> CmosRtc::nextDeadlineNs() const {
  std::optional<uint64_t> d;
  if (nextPeriodicNs_ != 0) d = nextPeriodicNs_;
  // The update cycle, whatever its interrupts: it sets UF in register C and
  // moves to the next second even when no interrupt follows (TimedDevice's
  // invariant: nothing changes between deadlines).
  return d ? std::min(*d, nextSecondNs_) : nextSecondNs_;
}

void CmosRtc::advanceTo(uint64_t nowNs) {
  bool changed = false;
  uint64_t period = periodicPeriodNs();
  if (nextPeriodicNs_ != 0 && nowNs >= nextPeriodicNs_ && period != 0) {
    cmos_[kRegC] |= kCPf;
    nextPeriodicNs_ = (nowNs / period + 1) * period;
    changed = true;
  }
  uint64_t frac = static_cast<uint64_t>(startFracNs_);
  if (nowNs >= nextSecondNs_) {
    if (!(cmos_[kRegB] & kBSet)) {
      cmos_[kRegC] |= kCUf;
      Civil c = toCivil(unixSecondsNow());
      auto match = [&](uint8_t alarm, int value) {
        return (alarm & 0xC0) == 0xC0 || fromGuest(alarm) == value;  // 11xxxxxx = don't care
      };
      if (match(cmos_[kSecAlarm], c.second) && match(cmos_[kMinAlarm], c.minute) &&
          match(cmos_[kHourAlarm], c.hour))
        cmos_[kRegC] |= kCAf;
    }
    nextSecondNs_ = ((nowNs + frac) / kSecondNs + 1) * kSecondNs - frac;
    changed = true;
  }
  if (changed) updateIrq();
}

void CmosRtc::updateIrq() {
  uint8_t b = cmos_[kRegB];
  uint8_t c = cmos_[kRegC];
  bool irqf =
      ((c & kCPf) && (b & kBPie)) || ((c & kCAf) && (b & kBAie)) || ((c & kCUf) && (b & kBUie));
  if (irqf) {
    cmos_[kRegC] |= kCIrqf;
  } else {
    cmos_[kRegC] &= static_cast<uint8_t>(~kCIrqf);
  }
  if (irqf != irqLevel_) {
    irqLevel_ = irqf;
    irq_.set(irqf);
  }
}

uint8_t CmosRtc::readRegister(uint8_t reg) {
  if (reg <= kYear || reg == kCentury) {
    Civil c = toCivil(unixSecondsNow());
    int hour = c.hour;
    uint8_t pm = 0;
    if (!(cmos_[kRegB] & kB24h)) {
      pm = hour >= 12 ? 0x80 : 0;
      hour = hour % 12 == 0 ? 12 : hour % 12;
    }
    switch (reg) {
      case kSec: return toGuest(c.second);
      case kMin: return toGuest(c.minute);
      case kHour: return static_cast<uint8_t>(toGuest(hour) | pm);
      case kWeekday: return toGuest(c.weekday);
      case kDay: return toGuest(c.day);
      case kMonth: return toGuest(c.month);
      case kYear: return toGuest(c.year % 100);
      case kCentury: return toGuest(c.year / 100);
      default: return cmos_[reg];  // alarms
    }
  }
  if (reg == kRegA) {
    // UIP is set during the 244 us before each update (the end of the second).
    uint64_t frac = (clock_->nowNs() + static_cast<uint64_t>(startFracNs_)) % kSecondNs;
    bool uip = !(cmos_[kRegB] & kBSet) && frac >= kSecondNs - 244'000;
    return static_cast<uint8_t>((cmos_[kRegA] & 0x7F) | (uip ? 0x80 : 0));
  }
  if (reg == kRegC) {
    uint8_t v = cmos_[kRegC];
    cmos_[kRegC] = 0;
    updateIrq();
    return v;
  }
  return cmos_[reg];
}

void CmosRtc::writeRegister(uint8_t reg, uint8_t v) {
  if (reg <= kYear || reg == kCentury) {
    if (reg == kSecAlarm || reg == kMinAlarm || reg == kHourAlarm) {
      cmos_[reg] = v;
      return;
    }
    Civil c = toCivil(unixSecondsNow());
    switch (reg) {
      case kSec: c.second = fromGuest(v); break;
      case kMin: c.minute = fromGuest(v); break;
      case kHour: {
        int h = fromGuest(v & 0x7F);
        if (!(cmos_[kRegB] & kB24h)) h = (h % 12) + ((v & 0x80) ? 12 : 0);
        c.hour = h;
        break;
      }
      case kWeekday: return;  // derived from the date
      case kDay: c.day = fromGuest(v); break;
      case kMonth: c.month = fromGuest(v); break;
      case kYear: c.year = c.year / 100 * 100 + fromGuest(v); break;
      case kCentury: c.year = fromGuest(v) * 100 + c.year % 100; break;
      default: break;
    }
    if (c.month < 1 || c.month > 12 || c.day < 1 || c.day > 31 || c.hour > 23 || c.minute > 59 ||
        c.second > 59)
      return;  // an invalid date is ignored
    offsetSec_ += fromCivil(c) - unixSecondsNow();
    return;
  }
  switch (reg) {
    case kRegA:
      cmos_[kRegA] = v & 0x7F;
      recompute();
      return;
    case kRegB:
      cmos_[kRegB] = v;
      recompute();
      updateIrq();
      return;
    case kRegC:
    case kRegD: return;  // read-only
    default: cmos_[reg] = v; return;
  }
}

uint32_t CmosRtc::portRead(uint16_t port, unsigned) {
  if (port == 0x70) return 0xFF;  // the index register is write-only on PCs
  return readRegister(index_ & 0x7F);
}

void CmosRtc::portWrite(uint16_t port, unsigned, uint32_t value) {
  if (port == 0x70) {
    index_ = static_cast<uint8_t>(value);
    return;
  }
  writeRegister(index_ & 0x7F, static_cast<uint8_t>(value));
}

void CmosRtc::saveState(StateWriter& out) const {
  out.u64(static_cast<uint64_t>(offsetSec_));
  out.u64(static_cast<uint64_t>(startFracNs_));
  out.u8(index_);
  out.bytes(cmos_);
  out.u64(nextPeriodicNs_);
  out.u64(nextSecondNs_);
  out.boolean(irqLevel_);
}

Status CmosRtc::loadState(StateReader& in) {
  offsetSec_ = static_cast<int64_t>(in.u64());
  startFracNs_ = static_cast<int64_t>(in.u64());
  index_ = in.u8();
  in.fixedBytes(cmos_);
  nextPeriodicNs_ = in.u64();
  nextSecondNs_ = in.u64();
  irqLevel_ = in.boolean();
  if (startFracNs_ < 0 || startFracNs_ >= 1'000'000'000)
    in.fail("RTC sub-second offset out of range");
  return in.status();
}

}  // namespace ttvm::machine
