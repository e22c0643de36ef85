// Device snapshots (issue 12.4): Machine::saveDeviceState() taken at a random
// point of a device-heavy run and loaded into a second machine gives a machine
// that behaves the same from there on. A seeded random driver programs every
// device the way drivers do (8259 pair and ELCR, 8254 with port 0x61, RTC with
// periodic/alarm/update interrupts and CMOS RAM, local APIC timer, TPR,
// self-IPIs and EOI, I/O APIC redirection, 16550 with FIFO, interrupts and
// loopback, IDE identify and PIO reads, fw_cfg, i8042, ACPI PM timer, PCI
// configuration, CGA CRTC and text memory, pc-testdev IRQ lines and memory,
// debug console, POST and the other small ports), lets virtual time pass
// (steps and idle skips, advanceTimers()), takes the interrupts the machine
// raises and feeds the UART bytes from outside. After the snapshot both
// machines get the same sequence: every read, every acknowledged interrupt
// vector and NMI, the next timer deadline, console output and deviceDigest()
// must agree after each access. Separately, every device's saved state loads
// and saves again byte for byte.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "device_state_frames.h"
#include "test_support.h"
#include "ttvm/machine/devices/uart_16550.h"
#include "ttvm/machine/disk_image.h"
#include "ttvm/machine/machine.h"

namespace ttvm {
using ttvm::machine::DiskImage;
using ttvm::machine::Machine;
using ttvm::machine::MachineOptions;
namespace {

// One thing the driver does to a machine. Ports and MMIO addresses are
// absolute; kAdvance lets `value` steps pass, kIdle skips virtual time to the
// next deadline (a halted CPU), kInput is a byte arriving at the UART, kTake
// a CPU with interrupts enabled taking what is pending (between two, they
// wait: the CPU runs with IF=0), kCr8 a MOV to CR8, kTscDeadline a write of
// IA32_TSC_DEADLINE `value` TSC ticks ahead, kMsrRead a RDMSR of `address`.
struct Access {
  enum Kind {
    kIn,
    kOut,
    kRead,
    kWrite,
    kAdvance,
    kIdle,
    kInput,
    kRandom,
    kTake,
    kCr8,
    kTscDeadline,
    kMsrRead
  } kind;
  uint64_t address = 0;
  unsigned size = 1;
  uint64_t value = 0;
};

// A machine under the driver, with the CPU state its clock and local APIC read.
struct Driven {
  std::unique_ptr<Machine> m;
  CpuState cpu = Machine::initialCpuState();
  test::StringConsole console;
  size_t taken = 0;  // interrupt vectors and NMIs acknowledged

  Driven() {
    MachineOptions o;
    o.ramBytes = 16ull << 20;
    o.startClockUnixNs = 1'700'000'000'000'000'000;
    o.rngSeed = 5;
    auto r = Machine::create(o);
    EXPECT_TRUE(r.ok());
    m = std::move(*r);
    m->ports().setReportStream(nullptr);
    m->mmio().setReportStream(nullptr);
    m->bindCpuState(&cpu);
    m->setConsole(&console);
    // The same disk content in both machines (a disk's content is not
    // device state; the driver never writes it).
    for (unsigned slot : {0u, 2u}) {
      std::vector<uint8_t> bytes(64 * 512);
      for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 13 + slot);
      EXPECT_TRUE(
          m->attachDisk(slot, DiskImage::fromBytes("d" + std::to_string(slot), bytes)).ok());
    }
  }

  // Applies `a`; returns what the machine answered or raised, in order.
  std::vector<uint64_t> apply(const Access& a) {
    std::vector<uint64_t> seen;
    switch (a.kind) {
      case Access::kIn: seen.push_back(m->portIn(static_cast<uint16_t>(a.address), a.size)); break;
      case Access::kOut:
        m->portOut(static_cast<uint16_t>(a.address), a.size, static_cast<uint32_t>(a.value));
        break;
      case Access::kRead: seen.push_back(m->mmioRead(a.address, a.size)); break;
      case Access::kWrite: m->mmioWrite(a.address, a.size, a.value); break;
      case Access::kAdvance:
        cpu.steps += a.value;
        m->advanceTimers();
        break;
      case Access::kIdle:
        if (auto d = m->nextDeadlineNs()) m->clock().skipTo(*d);
        m->advanceTimers();
        break;
      case Access::kInput: seen.push_back(m->com1().receive(static_cast<uint8_t>(a.value))); break;
      case Access::kRandom: seen.push_back(m->readRandom(a.size).value_or(~0ull)); break;
      case Access::kTake:
        // At most a few: unacknowledged sources stay in service until the
        // driver's EOIs.
        for (int i = 0; i < 8 && m->interruptPending(); ++i, ++taken)
          seen.push_back(m->acknowledgeInterrupt());
        if (m->nmiPending()) {
          m->acknowledgeNmi();
          seen.push_back(0x100);
          ++taken;
        }
        break;
      case Access::kCr8: cpu.cr8 = a.value; break;
      case Access::kTscDeadline: seen.push_back(m->writeMsr(0x6E0, m->readTsc() + a.value)); break;
      case Access::kMsrRead:
        seen.push_back(m->readMsr(static_cast<uint32_t>(a.address)).value_or(~0ull));
        break;
    }
    seen.push_back(m->interruptPending());
    seen.push_back(m->nmiPending());
    seen.push_back(m->nextDeadlineNs().value_or(~0ull));
    seen.push_back(m->readTsc());
    return seen;
  }
};

constexpr uint64_t kLapic = 0xFEE00000, kIoApic = 0xFEC00000;

// Appends one driver action (a few accesses) chosen by `rng`.
void addAction(std::mt19937_64& rng, std::vector<Access>& out) {
  auto in = [&](uint16_t port, unsigned size = 1) { out.push_back({Access::kIn, port, size, 0}); };
  auto outp = [&](uint16_t port, uint32_t v, unsigned size = 1) {
    out.push_back({Access::kOut, port, size, v});
  };
  auto rd = [&](uint64_t addr, unsigned size = 4) {
    out.push_back({Access::kRead, addr, size, 0});
  };
  auto wr = [&](uint64_t addr, uint64_t v, unsigned size = 4) {
    out.push_back({Access::kWrite, addr, size, v});
  };
  auto r = [&](uint64_t n) { return rng() % n; };
  switch (r(34)) {
    case 0: {  // 8259 initialisation (ICW1-4), random base and auto-EOI
      const uint16_t base = r(2) == 0 ? 0x20 : 0xA0;
      outp(base, 0x11);
      outp(base + 1, static_cast<uint32_t>(0x20 + 8 * r(12)));
      outp(base + 1, base == 0x20 ? 4 : 2);
      outp(base + 1, r(2) == 0 ? 1 : 3);
      break;
    }
    case 1: outp(r(2) == 0 ? 0x21 : 0xA1, static_cast<uint32_t>(r(256))); break;  // masks
    case 2: {                                                                     // read IRR or ISR
      const uint16_t base = r(2) == 0 ? 0x20 : 0xA0;
      outp(base, r(2) == 0 ? 0x0A : 0x0B);
      in(base);
      in(base + 1);
      break;
    }
    case 3: {  // EOI: non-specific or specific, to one or both
      outp(0xA0, r(2) == 0 ? 0x20 : static_cast<uint32_t>(0x60 + r(8)));
      outp(0x20, r(2) == 0 ? 0x20 : static_cast<uint32_t>(0x60 + r(8)));
      break;
    }
    case 4:  // ELCR
      if (r(2) == 0)
        outp(static_cast<uint16_t>(0x4D0 + r(2)), static_cast<uint32_t>(r(256) & 0xF8));
      in(static_cast<uint16_t>(0x4D0 + r(2)));
      break;
    case 5: {  // 8254: a channel in a mode with a divisor (LSB, MSB or both)
      const uint32_t ch = static_cast<uint32_t>(r(3)), mode = static_cast<uint32_t>(r(6));
      const uint32_t access = static_cast<uint32_t>(1 + r(3));
      const uint32_t div = static_cast<uint32_t>(200 + r(60000));
      outp(0x43, (ch << 6) | (access << 4) | (mode << 1) | static_cast<uint32_t>(r(4) == 0));
      if (access != 2) outp(static_cast<uint16_t>(0x40 + ch), (div & 0xFF) | 0x80);
      if (access != 1) outp(static_cast<uint16_t>(0x40 + ch), div >> 8);
      break;
    }
    case 6: {  // latch and read a count; or read-back with status
      const uint32_t ch = static_cast<uint32_t>(r(3));
      if (r(2) == 0)
        outp(0x43, ch << 6);
      else
        outp(0x43, 0xC0 | static_cast<uint32_t>(r(2) << 4) | (2u << ch));
      in(static_cast<uint16_t>(0x40 + ch));
      in(static_cast<uint16_t>(0x40 + ch));
      in(static_cast<uint16_t>(0x40 + ch));
      break;
    }
    case 7:  // port 0x61: channel 2 gate and speaker
      if (r(2) == 0) outp(0x61, static_cast<uint32_t>(r(4)));
      in(0x61);
      break;
    case 8: {  // RTC: rate and interrupt enables
      outp(0x70, 0x0A);
      outp(0x71, static_cast<uint32_t>(0x20 | (3 + r(13))));
      outp(0x70, 0x0B);
      outp(0x71, static_cast<uint32_t>(0x02 | (r(8) << 4) | (r(2) << 2)));
      break;
    }
    case 9:  // RTC: a register (0x0C clears the flags) or CMOS RAM
      outp(0x70, static_cast<uint32_t>(r(3) == 0 ? 0x0C : r(0x80)));
      in(0x71);
      break;
    case 10:  // CMOS RAM and the alarm registers
      outp(0x70, static_cast<uint32_t>(r(2) == 0 ? 1 + 2 * r(3) : 0x10 + r(0x70)));
      outp(0x71, static_cast<uint32_t>(r(256)));
      break;
    case 11: {  // 16550: divisor, line control, FIFO, interrupt enables, modem control
      outp(0x3FB, 0x80);
      outp(0x3F8, static_cast<uint32_t>(1 + r(12)));
      outp(0x3F9, 0);
      outp(0x3FB, static_cast<uint32_t>(r(64)));
      outp(0x3FA, static_cast<uint32_t>(r(4) == 0 ? 0 : 0x01 | (r(4) << 6) | (r(4) << 1)));
      outp(0x3F9, static_cast<uint32_t>(r(16)));
      outp(0x3FC, static_cast<uint32_t>(0x08 | (r(2) << 4) | r(4)));
      break;
    }
    case 12:  // 16550: transmit (looped back into the receive FIFO in loopback mode)
      for (uint64_t i = 0, n = 1 + r(20); i < n; ++i) outp(0x3F8, static_cast<uint32_t>(r(256)));
      break;
    case 13:  // 16550: status and data reads
      for (uint64_t i = 0, n = 1 + r(8); i < n; ++i) in(static_cast<uint16_t>(0x3F8 + r(8)));
      break;
    case 14:  // 16550: scratch and interrupt enable
      outp(r(2) == 0 ? 0x3FF : 0x3F9, static_cast<uint32_t>(r(256) & (r(2) == 0 ? 0xFF : 0x0F)));
      break;
    case 15:  // bytes from outside
      for (uint64_t i = 0, n = 1 + r(20); i < n; ++i)
        out.push_back({Access::kInput, 0, 1, static_cast<uint64_t>(0x20 + r(90))});
      break;
    case 16: {  // local APIC: enable, timer mode, divisor, count
      wr(kLapic + 0xF0, 0x100 | 0xFF);
      wr(kLapic + 0x3E0, r(12));
      // One-shot, periodic or TSC-deadline (armed through the MSR).
      wr(kLapic + 0x320, (0x30 + r(0xC0)) | (r(3) << 17) | (r(6) == 0 ? 1u << 16 : 0));
      wr(kLapic + 0x380, 50 + r(100000));
      if (r(3) == 0) out.push_back({Access::kTscDeadline, 0, 8, 1 + r(2'000'000)});
      break;
    }
    case 17:  // local APIC: current count, IRR/ISR/TMR words, ESR, LVTs
      for (uint64_t i = 0, n = 1 + r(4); i < n; ++i) {
        static constexpr uint32_t kRegs[] = {0x390, 0x100, 0x110, 0x170, 0x200, 0x210, 0x270,
                                             0x180, 0x280, 0x320, 0x350, 0x360, 0x80,  0xA0,
                                             0x20,  0x30,  0xD0,  0x300, 0x310, 0x3E0};
        rd(kLapic + kRegs[r(std::size(kRegs))]);
        if (r(2) == 0) out.push_back({Access::kMsrRead, 0x6E0, 8, 0});
      }
      break;
    case 18: wr(kLapic + 0xB0, 0); break;  // EOI
    case 19:                               // TPR through the registers or CR8; the APIC ID
      if (r(2) == 0) {
        wr(kLapic + 0x80, r(16) << 4);
      } else {
        out.push_back({Access::kCr8, 0, 8, r(16)});
      }
      if (r(8) == 0) wr(kLapic + 0x20, r(16) << 24);
      break;
    case 20:  // self-IPI (fixed, or NMI now and then); ESR write
      wr(kLapic + 0x300, 0x40000 | (r(3) == 0 ? 0x400 : 0x40 + r(0xB0)));
      if (r(4) == 0) wr(kLapic + 0x280, 0);
      break;
    case 21:  // LINT0 as ExtINT (virtual wire) or masked; LDR/DFR
      wr(kLapic + 0x350, r(2) == 0 ? 0x700 : 0x10700);
      if (r(2) == 0) wr(kLapic + (r(2) == 0 ? 0xD0 : 0xE0), r(1ull << 32) & 0xFF000000u);
      break;
    case 22: {  // I/O APIC: one redirection entry, edge or level, masked or not
      const uint64_t pin = r(24);
      wr(kIoApic, 0x10 + 2 * pin);
      wr(kIoApic + 0x10,
         (0x30 + r(0xC0)) | (r(4) == 0 ? 1u << 16 : 0) | (r(3) == 0 ? 1u << 15 : 0));
      wr(kIoApic, 0x11 + 2 * pin);
      wr(kIoApic + 0x10, 0);
      break;
    }
    case 23:  // I/O APIC: its ID now and then; read an entry, the ID or the version
      if (r(4) == 0) {
        wr(kIoApic, 0);
        wr(kIoApic + 0x10, r(16) << 24);
      }
      wr(kIoApic, r(3) == 0 ? r(3) : 0x10 + r(48));
      rd(kIoApic + 0x10);
      break;
    case 24: {  // IDE: identify or read sectors, on a random channel and drive
      const uint16_t base = r(2) == 0 ? 0x1F0 : 0x170;
      // IDENTIFY, READ SECTORS (28 and 48-bit LBA), SET MULTIPLE, READ MULTIPLE.
      static constexpr uint32_t kCommands[] = {0xEC, 0x20, 0x24, 0xC6, 0xC4};
      const uint32_t command = kCommands[r(std::size(kCommands))];
      outp(base == 0x1F0 ? 0x3F6 : 0x376, static_cast<uint32_t>(r(2) << 1));  // nIEN
      outp(base + 6, static_cast<uint32_t>(0xE0 | (r(4) == 0 ? 0x10 : 0)));
      // 48-bit: the high bytes first (count, LBA 24-47), as drivers write them.
      if (command == 0x24)
        for (uint16_t reg = 2; reg <= 5; ++reg) outp(base + reg, 0);
      outp(base + 2, static_cast<uint32_t>(command == 0xC6 ? 1u << r(4) : 1 + r(8)));
      outp(base + 3, static_cast<uint32_t>(r(60)));
      outp(base + 4, 0);
      outp(base + 5, 0);
      outp(base + 7, command);
      break;
    }
    case 25: {  // IDE: status, part of the data, task file (the 48-bit high bytes now and then)
      const uint16_t base = r(2) == 0 ? 0x1F0 : 0x170, ctl = base == 0x1F0 ? 0x3F6 : 0x376;
      in(base + 7);
      for (uint64_t i = 0, n = r(600); i < n; ++i) in(base, 2);
      const bool hob = r(3) == 0;
      if (hob) outp(ctl, 0x80);
      in(static_cast<uint16_t>(base + 1 + r(6)));
      in(static_cast<uint16_t>(base + 1 + r(6)));
      if (hob) outp(ctl, 0);
      in(ctl);
      break;
    }
    case 26:  // fw_cfg: select an item, read some of it
      outp(0x510, static_cast<uint32_t>(std::array<uint32_t, 6>{0, 1, 3, 0x15, 0x19, 0x8003}[r(6)]),
           2);
      for (uint64_t i = 0, n = r(24); i < n; ++i) in(0x511);
      break;
    case 27: {  // i8042: controller commands and the configuration byte
      // (0xD1 writes the output port: bit 0 stays set, clear would reset.)
      static constexpr uint32_t kCmds[] = {0x20, 0xAA, 0xA8, 0xA7, 0xAE, 0xAD, 0xAB,
                                           0xA9, 0xD0, 0x60, 0xD1, 0xD2, 0xD3};
      const uint32_t cmd = kCmds[r(std::size(kCmds))];
      outp(0x64, cmd);
      if (cmd == 0x60) outp(0x60, static_cast<uint32_t>(r(256) & 0x77));
      if (cmd == 0xD1) outp(0x60, static_cast<uint32_t>(r(256) | 1));
      if (cmd == 0xD2 || cmd == 0xD3) outp(0x60, static_cast<uint32_t>(r(256)));
      in(0x64);
      in(0x60);
      break;
    }
    case 28:  // ACPI PM: timer, status (write-1-to-clear), enable, SCI_EN
      in(0x608, 4);
      if (r(2) == 0)
        outp(static_cast<uint16_t>(0x600 + 2 * r(2)), static_cast<uint32_t>(r(0x10000)), 2);
      if (r(4) == 0) outp(0x604, static_cast<uint32_t>(r(2)), 2);
      in(static_cast<uint16_t>(0x600 + 2 * r(3)), 2);
      break;
    case 29:  // PCI configuration space of the host bridge (and nothing)
      outp(0xCF8, static_cast<uint32_t>(0x80000000u | (r(4) == 0 ? 0x800 : 0) | (r(64) << 2)), 4);
      in(static_cast<uint16_t>(0xCFC + r(4)));
      if (r(4) == 0) outp(0xCFC, static_cast<uint32_t>(r(1ull << 32)), 4);
      break;
    case 30:  // CGA: CRTC registers and text memory
      outp(0x3D4, static_cast<uint32_t>(r(18)));
      if (r(2) == 0) outp(0x3D5, static_cast<uint32_t>(r(256)));
      in(0x3D5);
      wr(0xB8000 + 2 * r(2000), r(0x10000), 2);
      rd(0xB8000 + 2 * r(2000), 2);
      break;
    case 31:  // pc-testdev: an IRQ line up or down, the latch, its memory
      outp(static_cast<uint16_t>(0x2000 + 3 + r(12)), static_cast<uint32_t>(r(2)));
      in(static_cast<uint16_t>(0x2000 + 3 + r(12)));
      outp(0xE0, static_cast<uint32_t>(r(1ull << 32)), 4);
      in(0xE0, 4);
      wr(0xFF000000 + 4 * r(0x4000), r(1ull << 32));
      rd(0xFF000000 + 4 * r(0x4000));
      break;
    case 32:  // debug console, POST code, port 0x92 (A20 only), the ports that only stop a run
      outp(0xE9, static_cast<uint32_t>(0x41 + r(26)));
      outp(0x80, static_cast<uint32_t>(r(256)));
      outp(0x92, static_cast<uint32_t>(r(2) << 1));
      for (uint16_t p : {0xE9, 0x80, 0x92, 0xF4, 0x505, 0xCF9, 0x8900}) in(p);
      out.push_back({Access::kRandom, 0, 8, 0});
      break;
    default:  // time passes: steps, or an idle skip to the next deadline
      if (r(3) == 0)
        out.push_back({Access::kIdle, 0, 0, 0});
      else
        out.push_back({Access::kAdvance, 0, 0, 1 + r(r(4) == 0 ? 3'000'000 : 20'000)});
      break;
  }
}

// `count` driver actions, each a few accesses.
std::vector<std::vector<Access>> randomDriver(uint64_t seed, size_t count) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<Access>> actions(count);
  for (std::vector<Access>& a : actions) {
    addAction(rng, a);
    // Interrupts are taken after most actions; the others leave them pending.
    if (rng() % 3 != 0) a.push_back({Access::kTake, 0, 0, 0});
  }
  return actions;
}

std::string describe(const Access& a) {
  static const char* kKinds[] = {"in",    "out",    "read", "write", "advance",      "idle",
                                 "input", "rdrand", "take", "cr8",   "tsc-deadline", "rdmsr"};
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s 0x%llx/%u value 0x%llx", kKinds[a.kind],
                static_cast<unsigned long long>(a.address), a.size,
                static_cast<unsigned long long>(a.value));
  return buf;
}

// A snapshot loaded into a second machine, and both driven on: the same
// answers, interrupts, deadlines, console output and device digests. Each
// seed's run is snapshotted at random points, 5 to 65 actions apart; the
// copy follows the original from its point to the next.
TEST(DeviceSnapshot, RestoredMachineBehavesLikeTheOriginalFromRandomPoints) {
  size_t compared = 0, interrupts = 0, snapshots = 0;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 pick(seed * 1000);
    const std::vector<std::vector<Access>> run = randomDriver(seed, 4000);
    Driven a;
    std::unique_ptr<Driven> b;
    size_t nextSnapshot = 5 + pick() % 60;
    for (size_t i = 0; i < run.size(); ++i) {
      // The snapshot falls before any access of its action, also between a
      // selector write and the data access it selects.
      const size_t splitAt = i == nextSnapshot ? pick() % run[i].size() : run[i].size();
      const size_t takenBefore = a.taken;
      for (size_t j = 0; j < run[i].size(); ++j) {
        if (j == splitAt) {
          nextSnapshot += 5 + pick() % 60;
          if (b != nullptr) {
            EXPECT_EQ(b->console.text, a.console.text) << "before action " << i;
          }
          const std::vector<uint8_t> snapshot = a.m->saveDeviceState();
          b = std::make_unique<Driven>();
          b->cpu = a.cpu;  // the CPU is saved by its owner, not with the devices
          Status s = b->m->loadDeviceState(snapshot);
          ASSERT_TRUE(s.ok()) << s.error().message;
          ASSERT_EQ(test::differingDevices(b->m->saveDeviceState(), snapshot), "");
          a.console.text.clear();
          ++snapshots;
        }
        const Access& x = run[i][j];
        const std::vector<uint64_t> wa = a.apply(x);
        if (b == nullptr) continue;
        const std::vector<uint64_t> wb = b->apply(x);
        ASSERT_EQ(wb, wa) << "action " << i << ", access " << j << ": " << describe(x);
      }
      if (b == nullptr) continue;
      interrupts += a.taken - takenBefore;
      ++compared;
      if (a.m->deviceDigest() != b->m->deviceDigest()) {
        FAIL() << "action " << i << ": the state differs in "
               << test::differingDevices(b->m->saveDeviceState(), a.m->saveDeviceState());
      }
    }
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->console.text, a.console.text);
  }
  std::printf("%zu actions compared after %zu snapshots, %zu interrupts taken\n", compared,
              snapshots, interrupts);
  // The driver must have made the devices interrupt, or the test shows little.
  EXPECT_GT(interrupts, compared / 20);
}

// Every device's state loads and saves again byte for byte, at random
// points of the same driver: into a fresh machine, and into one that another
// driver keeps running (as a replay restores a checkpoint into the machine
// that ran ahead).
TEST(DeviceSnapshot, EveryDeviceSavesLoadsAndSavesIdentically) {
  Driven a, other;
  const std::vector<std::vector<Access>> run = randomDriver(77, 4000);
  const std::vector<std::vector<Access>> otherRun = randomDriver(78, 4000);
  std::vector<std::string> names;
  for (size_t i = 0; i < run.size(); ++i) {
    for (const Access& x : run[i]) a.apply(x);
    for (const Access& x : otherRun[i]) other.apply(x);
    if (i % 10 != 9) continue;
    const std::vector<uint8_t> saved = a.m->saveDeviceState();
    const test::DeviceStateFrames frames = test::deviceStateFrames(saved);
    names.clear();
    for (const auto& f : frames) names.push_back(f.first);
    Driven fresh;
    for (Driven* into : {&fresh, &other}) {
      const char* which = into == &fresh ? "a fresh machine" : "a running machine";
      ASSERT_TRUE(into->m->loadDeviceState(saved).ok());
      const test::DeviceStateFrames again = test::deviceStateFrames(into->m->saveDeviceState());
      ASSERT_EQ(again.size(), frames.size());
      for (size_t d = 0; d < frames.size(); ++d) {
        ASSERT_EQ(again[d].first, frames[d].first);
        const std::vector<uint8_t>& x = frames[d].second;
        const std::vector<uint8_t>& y = again[d].second;
        size_t k = 0;
        while (k < x.size() && k < y.size() && x[k] == y[k]) ++k;
        EXPECT_TRUE(x == y) << frames[d].first << " saves other bytes after a load into " << which
                            << " (action " << i << "): first difference at byte " << k << " of "
                            << x.size();
      }
    }
  }
  // Every device of the machine (and the machine's own part) was in the state.
  std::vector<std::string> want = {"machine"};
  for (const std::string& n : a.m->wholeMachine())
    if (n != "clock") want.push_back(n);
  EXPECT_EQ(names, want);
}

}  // namespace
}  // namespace ttvm
