// The machine as a guest sees it: firmware tables in RAM, fw_cfg, the small
// system ports, interrupt routing between the controllers, device state.
#include "ttvm/machine/machine.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <string>

#include "test_support.h"
#include "ttvm/machine/devices/ide_channel.h"
#include "ttvm/machine/devices/io_apic.h"
#include "ttvm/machine/devices/local_apic.h"
#include "ttvm/machine/devices/pc_testdev.h"
#include "ttvm/machine/devices/pic_8259.h"
#include "ttvm/machine/devices/uart_16550.h"
#include "ttvm/machine/disk_image.h"
#include "ttvm/machine/firmware.h"

namespace ttvm {
using ttvm::machine::AcpiPm;
using ttvm::machine::DiskImage;
using ttvm::machine::FwCfg;
using ttvm::machine::IoApic;
using ttvm::machine::LocalApic;
using ttvm::machine::Machine;
using ttvm::machine::MachineOptions;
using ttvm::machine::PcTestDev;
namespace firmware = ttvm::machine::firmware;
namespace {

std::unique_ptr<Machine> makeMachine(uint64_t ram = 64ull << 20) {
  MachineOptions o;
  o.ramBytes = ram;
  o.startClockUnixNs = 1'700'000'000'000'000'000;
  o.cmdline = "console=ttyS0";
  auto m = Machine::create(o);
  EXPECT_TRUE(m.ok());
  (*m)->ports().setReportStream(nullptr);
  (*m)->mmio().setReportStream(nullptr);
  return std::move(*m);
}

uint8_t sum(std::span<const uint8_t> ram, uint64_t at, uint64_t len) {
  uint8_t s = 0;
  for (uint64_t i = 0; i < len; ++i) s = static_cast<uint8_t>(s + ram[at + i]);
  return s;
}
uint32_t rd32(std::span<const uint8_t> ram, uint64_t at) {
  uint32_t v;
  std::memcpy(&v, ram.data() + at, 4);
  return v;
}

TEST(Machine, RejectsBadRamSizes) {
  MachineOptions o;
  o.ramBytes = 1 << 20;
  EXPECT_FALSE(Machine::create(o).ok());
  o.ramBytes = 4ull << 30;
  auto r = Machine::create(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("3 GiB"), std::string::npos);
  o.ramBytes = (64 << 20) + 1;
  EXPECT_FALSE(Machine::create(o).ok());
}

TEST(Firmware, AcpiTablesFoundByScanWithValidChecksums) {
  auto m = makeMachine();
  auto ram = m->ram();
  // Scan the BIOS area as an OS does.
  uint64_t rsdp = 0;
  for (uint64_t a = 0xE0000; a < 0x100000; a += 16)
    if (std::memcmp(ram.data() + a, "RSD PTR ", 8) == 0) {
      rsdp = a;
      break;
    }
  ASSERT_NE(rsdp, 0u);
  EXPECT_EQ(sum(ram, rsdp, 20), 0);
  EXPECT_EQ(sum(ram, rsdp, 36), 0);
  EXPECT_EQ(ram[rsdp + 15], 2);
  uint32_t rsdt = rd32(ram, rsdp + 16);
  ASSERT_EQ(std::memcmp(ram.data() + rsdt, "RSDT", 4), 0);
  uint32_t rsdtLen = rd32(ram, rsdt + 4);
  EXPECT_EQ(sum(ram, rsdt, rsdtLen), 0);
  uint64_t xsdt;
  std::memcpy(&xsdt, ram.data() + rsdp + 24, 8);
  EXPECT_EQ(std::memcmp(ram.data() + xsdt, "XSDT", 4), 0);
  EXPECT_EQ(sum(ram, xsdt, rd32(ram, xsdt + 4)), 0);
  bool sawMadt = false, sawFadt = false;
  for (uint32_t i = 36; i < rsdtLen; i += 4) {
    uint32_t t = rd32(ram, rsdt + i);
    EXPECT_EQ(sum(ram, t, rd32(ram, t + 4)), 0) << "table at " << t;
    if (std::memcmp(ram.data() + t, "FACP", 4) == 0) {
      sawFadt = true;
      uint32_t dsdt = rd32(ram, t + 40);
      EXPECT_EQ(std::memcmp(ram.data() + dsdt, "DSDT", 4), 0);
      EXPECT_EQ(sum(ram, dsdt, rd32(ram, dsdt + 4)), 0);
      EXPECT_EQ(std::memcmp(ram.data() + rd32(ram, t + 36), "FACS", 4), 0);
    }
    if (std::memcmp(ram.data() + t, "APIC", 4) == 0) {
      sawMadt = true;
      EXPECT_EQ(rd32(ram, t + 36), 0xFEE00000u);
      uint32_t len = rd32(ram, t + 4);
      int cpus = 0, ioapics = 0, overrides = 0;
      for (uint32_t o = 44; o < len; o += ram[t + o + 1]) {
        uint8_t type = ram[t + o];
        if (type == 0) ++cpus;
        if (type == 1) {
          ++ioapics;
          EXPECT_EQ(rd32(ram, t + o + 4), 0xFEC00000u);
        }
        if (type == 2 && ram[t + o + 3] == 0) {
          ++overrides;
          EXPECT_EQ(rd32(ram, t + o + 4), 2u);  // IRQ 0 -> GSI 2
        }
      }
      EXPECT_EQ(cpus, 1);
      EXPECT_EQ(ioapics, 1);
      EXPECT_EQ(overrides, 1);
    }
  }
  EXPECT_TRUE(sawMadt);
  EXPECT_TRUE(sawFadt);
}

TEST(Firmware, RealModeStateAndE820) {
  auto m = makeMachine();
  auto ram = m->ram();
  // Every IVT entry points into the BIOS segment; IRQ 0's stub EOIs the PIC.
  for (int v = 0; v < 256; ++v) EXPECT_EQ(rd32(ram, v * 4) >> 16, 0xF000u) << v;
  EXPECT_EQ(ram[0xFFF53], 0xCF);
  EXPECT_EQ(ram[0x413] | (ram[0x414] << 8), 639);
  EXPECT_EQ(ram[0x400] | (ram[0x401] << 8), 0x3F8);
  auto map = firmware::e820Map(64ull << 20);
  uint64_t usable = 0;
  for (const auto& e : map)
    if (e.type == 1) usable += e.length;
  EXPECT_EQ(usable, 0x9FC00u + (64ull << 20) - 0x100000);
  // The BIOS left the PICs at 0x08/0x70 and the PIT at 18.2 Hz.
  EXPECT_EQ(m->pic().imr(0), 0xB8);
  ASSERT_TRUE(m->nextDeadlineNs().has_value());
}

TEST(FwCfg, SignatureIdRamAndFileDirectory) {
  auto m = makeMachine();
  auto select = [&](uint16_t k) { m->portOut(0x510, 2, k); };
  auto readBytes = [&](size_t n) {
    std::vector<uint8_t> b(n);
    for (auto& x : b) x = static_cast<uint8_t>(m->portIn(0x511, 1));
    return b;
  };
  select(0x0000);
  auto sig = readBytes(4);
  EXPECT_EQ(std::string(sig.begin(), sig.end()), "QEMU");
  select(0x0001);
  EXPECT_EQ(readBytes(4)[0], 1);  // traditional interface, no DMA
  select(0x0003);
  auto ramSize = readBytes(8);
  uint64_t r;
  std::memcpy(&r, ramSize.data(), 8);
  EXPECT_EQ(r, 64ull << 20);
  select(0x0005);
  EXPECT_EQ(readBytes(2)[0], 1);  // one CPU
  select(0x0019);
  auto count = readBytes(4);
  uint32_t n = (count[0] << 24) | (count[1] << 16) | (count[2] << 8) | count[3];
  ASSERT_GE(n, 1u);
  bool found = false;
  for (uint32_t i = 0; i < n; ++i) {
    auto e = readBytes(64);
    uint32_t size = (e[0] << 24) | (e[1] << 16) | (e[2] << 8) | e[3];
    uint16_t key = static_cast<uint16_t>((e[4] << 8) | e[5]);
    std::string name(reinterpret_cast<char*>(&e[8]));
    if (name == "etc/e820") {
      found = true;
      select(key);
      auto data = readBytes(size);
      EXPECT_EQ(size % 20, 0u);
      uint64_t firstLen;
      std::memcpy(&firstLen, data.data() + 8, 8);
      EXPECT_EQ(firstLen, 0x9FC00u);
      select(0x0019);
      readBytes(4 + 64 * (i + 1));
    }
  }
  EXPECT_TRUE(found);
  select(0x0015);
  auto cmd = readBytes(14);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(cmd.data())), "console=ttyS0");
  EXPECT_EQ(m->portIn(0x511, 1), 0u);  // past the end
}

TEST(SystemPorts, ExitPanicResetShutdown) {
  struct Case {
    uint16_t port;
    unsigned size;
    std::vector<uint32_t> writes;
    EndReason reason;
  };
  std::vector<Case> cases = {
      {0xF4, 4, {0x10}, EndReason::kExitDevice}, {0xF6, 1, {3}, EndReason::kExitDevice},
      {0x505, 1, {1}, EndReason::kPanic},        {0x64, 1, {0xFE}, EndReason::kReset},
      {0xCF9, 1, {0x06}, EndReason::kReset},     {0x92, 1, {0x01}, EndReason::kReset},
  };
  for (const Case& c : cases) {
    auto m = makeMachine();
    for (uint32_t v : c.writes) m->portOut(c.port, c.size, v);
    ASSERT_TRUE(m->stopRequest().has_value()) << std::hex << c.port;
    EXPECT_EQ(m->stopRequest()->reason, c.reason) << std::hex << c.port;
    EXPECT_TRUE(m->serviceNeeded());
  }
  auto m = makeMachine();
  m->portOut(0xF4, 4, 0x10);
  EXPECT_EQ(m->stopRequest()->exitStatus, 0x21u);
  EXPECT_EQ(m->stopRequest()->guestValue, 0x10u);
  // CRASH_LOADED alone does not stop; 0xCF9 without RST_CPU does not either.
  auto m2 = makeMachine();
  m2->portOut(0x505, 1, 2);
  m2->portOut(0xCF9, 1, 0x02);
  EXPECT_EQ(m2->portIn(0x505, 1), 3u);
  EXPECT_EQ(m2->portIn(0x64, 1) & 0x02, 0u);  // keyboard controller never busy
  EXPECT_FALSE(m2->stopRequest().has_value());
  for (char c : std::string("Shutdow")) m2->portOut(0x8900, 1, static_cast<uint8_t>(c));
  EXPECT_FALSE(m2->stopRequest().has_value());
  m2->portOut(0x8900, 1, 'n');
  ASSERT_TRUE(m2->stopRequest().has_value());
  EXPECT_EQ(m2->stopRequest()->reason, EndReason::kShutdown);
}

TEST(AcpiPm, TimerShutdownAndFadt) {
  auto m = makeMachine();
  CpuState cpu = Machine::initialCpuState();
  m->bindCpuState(&cpu);
  EXPECT_EQ(m->portIn(0x604, 2) & 1, 1u);  // SCI_EN: always in ACPI mode
  cpu.steps = 1'000'000'000;               // one virtual second
  EXPECT_EQ(m->portIn(0x608, 4), 3579545u & 0xFFFFFF);
  cpu.steps = 5'000'000'000;  // the timer is 24 bits wide
  EXPECT_EQ(m->portIn(0x608, 4), (5ull * 3579545) & 0xFFFFFF);
  m->portOut(0x604, 2, (5u << 10) | 1);  // SLP_TYP without SLP_EN: nothing
  EXPECT_FALSE(m->stopRequest().has_value());
  m->portOut(0x604, 2, (1u << 13) | 1);
  ASSERT_TRUE(m->stopRequest().has_value());
  EXPECT_EQ(m->stopRequest()->reason, EndReason::kShutdown);
  // The FADT points at these blocks.
  auto ram = m->ram();
  uint32_t fadt = 0;
  uint32_t rsdt = rd32(ram, firmware::kRsdpAddress + 16);
  for (uint32_t i = 36; i < rd32(ram, rsdt + 4); i += 4)
    if (std::memcmp(ram.data() + rd32(ram, rsdt + i), "FACP", 4) == 0) fadt = rd32(ram, rsdt + i);
  ASSERT_NE(fadt, 0u);
  EXPECT_EQ(rd32(ram, fadt + 64), 0x604u);
  EXPECT_EQ(rd32(ram, fadt + 76), 0x608u);
  EXPECT_EQ(sum(ram, fadt, 244), 0);
  m->bindCpuState(nullptr);
}

TEST(SystemPorts, DebugConsolePostAndA20) {
  auto m = makeMachine();
  test::StringConsole console;
  m->setConsole(&console);
  EXPECT_EQ(m->portIn(0xE9, 1), 0xE9u);
  m->portOut(0xE9, 1, 'h');
  m->portOut(0x3F8, 1, 'i');
  EXPECT_EQ(console.text, "hi");
  m->portOut(0x80, 1, 0x42);
  EXPECT_EQ(m->portIn(0x80, 1), 0x42u);
  EXPECT_EQ(m->portIn(0x92, 1) & 0x02, 0x02u);  // A20 on
  EXPECT_EQ(m->ports().unclaimedAccesses(), 0u);
  EXPECT_EQ(m->portIn(0x2F8, 1), 0xFFu);  // COM2 absent
  EXPECT_EQ(m->ports().unclaimedAccesses(), 1u);
}

TEST(PcTestDev, LatchIrqLinesAndMmioMemory) {
  auto m = makeMachine();
  m->portOut(0xE0, 4, 0xDEADBEEF);
  EXPECT_EQ(m->portIn(0xE0, 4), 0xDEADBEEFu);
  EXPECT_EQ(m->portIn(0xE2, 1), 0xADu);
  m->mmioWrite(PcTestDev::kMemBase + 0x100, 8, 0x1122334455667788ull);
  EXPECT_EQ(m->mmioRead(PcTestDev::kMemBase + 0x104, 4), 0x11223344u);
  // IRQ line 10 through the 8259 (unmask slave line 2 and the cascade).
  m->portOut(0xA1, 1, 0xFB);
  m->portOut(0x21, 1, 0xFB);
  m->portOut(0x2000 + 10, 1, 1);
  EXPECT_TRUE(m->interruptPending());
  EXPECT_EQ(m->acknowledgeInterrupt(), 0x72);
  m->portOut(0x2000 + 10, 1, 0);
}

TEST(InterruptRouting, PicThroughVirtualWireThenIoApicThroughLapic) {
  auto m = makeMachine();
  CpuState cpu = Machine::initialCpuState();
  m->bindCpuState(&cpu);
  m->portOut(0x21, 1, 0xFE);  // only IRQ 0
  m->setIrqLevel(0, true);
  m->setIrqLevel(0, false);
  EXPECT_TRUE(m->interruptPending());  // LAPIC software-disabled, LINT0 ExtINT: PIC passes
  EXPECT_EQ(m->acknowledgeInterrupt(), 0x08);
  // Now the APIC way: enable the LAPIC, mask the PIC, route GSI 2 (ISA IRQ 0).
  m->mmioWrite(0xFEE000F0, 4, 0x1FF);
  m->mmioWrite(0xFEE00350, 4, 0x10700);  // mask LINT0
  m->mmioWrite(0xFEC00000, 4, 0x10 + 2 * 2);
  m->mmioWrite(0xFEC00010, 4, 0x30);
  m->setIrqLevel(0, true);
  m->setIrqLevel(0, false);
  EXPECT_TRUE(m->interruptPending());
  EXPECT_EQ(m->acknowledgeInterrupt(), 0x30);
  // x2APIC MSRs answer through the machine, and only in x2APIC mode.
  EXPECT_FALSE(m->readMsr(0x802).has_value());
  cpu.msr.apicBase |= 1u << 10;
  EXPECT_EQ(*m->readMsr(0x802), 0u);
  EXPECT_FALSE(m->readMsr(0x10).has_value());  // not a machine MSR
  m->bindCpuState(nullptr);
}

// IA32_APIC_BASE moves the local APIC's MMIO page (kvm-unit-tests' "relocate
// apic"): the CPU writes the MSR in its state, the bus follows at the next
// access. In x2APIC mode or disabled no page answers. The I/O APIC stays.
TEST(LocalApicRelocation, PageFollowsApicBase) {
  auto m = makeMachine();
  CpuState cpu = Machine::initialCpuState();
  m->bindCpuState(&cpu);
  constexpr uint64_t kOld = LocalApic::kDefaultBase, kNew = 0xFED40000;
  const uint64_t version = m->mmioRead(kOld + 0x30, 4);
  EXPECT_EQ(version & 0xFF, 0x14u);
  EXPECT_EQ(m->mmio().ownerOf(kOld), "lapic");

  cpu.msr.apicBase = kNew | 0x900;  // BSP, enabled, xAPIC
  EXPECT_EQ(m->mmioRead(kNew + 0x30, 4), version);
  EXPECT_EQ(m->mmioRead(kOld + 0x30, 4), 0xFFFFFFFFu);
  EXPECT_EQ(m->mmio().ownerOf(kNew + 0xFFF), "lapic");
  EXPECT_EQ(m->mmio().ownerOf(kOld), "");
  m->mmioWrite(kNew + 0x80, 4, 0x50);  // TPR through the new page
  EXPECT_EQ(m->lapic().tpr(), 0x50);
  m->mmioWrite(kOld + 0x80, 4, 0x20);  // the old page is unclaimed
  EXPECT_EQ(m->lapic().tpr(), 0x50);
  m->mmioWrite(kNew + 0x80, 4, 0);
  // The I/O APIC's page is where it was.
  m->mmioWrite(IoApic::kBase, 4, 1);
  EXPECT_EQ(m->mmioRead(IoApic::kBase + 0x10, 4) & 0xFF, 0x20u);
  EXPECT_EQ(m->mmio().ownerOf(IoApic::kBase), "ioapic");

  // Moved onto the I/O APIC's page: the CPU's own APIC answers there.
  cpu.msr.apicBase = IoApic::kBase | 0x900;
  EXPECT_EQ(m->mmioRead(IoApic::kBase + 0x30, 4), version);
  EXPECT_EQ(m->mmio().ownerOf(IoApic::kBase), "lapic");

  cpu.msr.apicBase = kNew | 0xD00;  // x2APIC: no MMIO page
  EXPECT_EQ(m->mmioRead(kNew + 0x30, 4), 0xFFFFFFFFu);
  EXPECT_EQ(*m->readMsr(0x803), version);
  EXPECT_EQ(m->mmio().ownerOf(IoApic::kBase), "ioapic");
  cpu.msr.apicBase = kNew | 0x100;  // disabled
  EXPECT_EQ(m->mmioRead(kNew + 0x30, 4), 0xFFFFFFFFu);
  EXPECT_EQ(m->mmioRead(kOld + 0x30, 4), 0xFFFFFFFFu);
  cpu.msr.apicBase = kOld | 0x900;
  EXPECT_EQ(m->mmioRead(kOld + 0x30, 4), version);
  m->bindCpuState(nullptr);
}

// A page moved into RAM cannot be reached (the CPU keeps RAM addresses to
// itself); the machine says so once.
TEST(LocalApicRelocation, PageInsideRamIsReportedOnce) {
  auto m = makeMachine();
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* mem = open_memstream(&buf, &len);
  m->mmio().setReportStream(mem);
  CpuState cpu = Machine::initialCpuState();
  m->bindCpuState(&cpu);
  cpu.msr.apicBase = 0xFED40000 | 0x900;  // above RAM: fine
  m->portOut(0x80, 1, 0);
  cpu.msr.apicBase = 0xA0000 | 0x900;  // the VGA hole reaches the bus: fine
  m->portOut(0x80, 1, 0);
  EXPECT_EQ(m->mmioRead(0xA0030, 4) & 0xFF, 0x14u);
  std::fflush(mem);
  EXPECT_EQ(len, 0u);
  cpu.msr.apicBase = 0x100000 | 0x900;
  m->portOut(0x80, 1, 0);
  cpu.msr.apicBase = 0x200000 | 0x900;
  m->portOut(0x80, 1, 0);
  std::fclose(mem);
  const std::string out(buf, len);
  std::free(buf);
  EXPECT_NE(out.find("local APIC's registers to 0x100000, inside RAM"), std::string::npos) << out;
  EXPECT_EQ(out.find("0x200000"), std::string::npos) << out;
  m->bindCpuState(nullptr);
}

TEST(DeviceState, RoundTripAndRejection) {
  auto a = makeMachine();
  CpuState cpu = Machine::initialCpuState();
  a->bindCpuState(&cpu);
  a->portOut(0x3F9, 1, 0x02);
  a->portOut(0xE0, 1, 0x77);
  a->portOut(0x70, 1, 0x0B);
  a->portOut(0x71, 1, 0x06);
  a->clock().skipTo(12345);
  auto blob = a->saveDeviceState();
  auto b = makeMachine();
  ASSERT_TRUE(b->loadDeviceState(blob).ok());
  EXPECT_EQ(b->saveDeviceState(), blob);
  EXPECT_EQ(b->portIn(0xE0, 1), 0x77u);
  EXPECT_EQ(b->clock().idleNs(), 12345u);
  auto bad = blob;
  bad[0] = 'X';
  Status s = b->loadDeviceState(bad);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("magic"), std::string::npos);
  for (size_t cut : {size_t{10}, blob.size() / 2, blob.size() - 1}) {
    Status t = b->loadDeviceState(std::span<const uint8_t>(blob).first(cut));
    EXPECT_FALSE(t.ok()) << cut;
    EXPECT_NE(t.error().message.find("offset"), std::string::npos) << t.error().message;
  }
  a->bindCpuState(nullptr);
}

// Checkpoints (checkpointReplayedState) hold the device memories apart and
// share their bytes: at random, the CGA's and the pc-testdev's memories are
// written through the MMIO bus, checkpoints are taken, and earlier ones
// restored (sometimes twice in a row). A checkpoint shares each memory's
// buffer with the previous checkpoint unless that memory was written in
// between, and holds only the registers otherwise; a restore shares the
// checkpoint's buffers (the next checkpoint holds the same ones). After every
// restore the whole device state equals the one saved, and the memories read
// back the old bytes, however the memories were written since.
TEST(DeviceState, CheckpointsShareUnchangedDeviceMemories) {
  auto m = makeMachine();
  CpuState cpu = Machine::initialCpuState();
  m->bindCpuState(&cpu);
  constexpr uint64_t kCga = 0xB8000, kCgaSize = 0x8000;
  const uint64_t kTest = PcTestDev::kMemBase, kTestSize = PcTestDev::kMemSize;
  std::mt19937_64 rng(7);
  struct Saved {
    Machine::DeviceCheckpoint checkpoint;
    std::vector<uint8_t> blob;  // saveDeviceState() at the same time
  };
  std::vector<Saved> saved;
  // The memories' buffers as the last checkpoint held them, and which
  // memories were written since (the pc-testdev's comes first, then the CGA's).
  std::array<const std::vector<uint8_t>*, 2> last{};
  std::array<bool, 2> written{};
  auto take = [&] {
    Saved c{m->checkpointReplayedState(), m->saveDeviceState()};
    EXPECT_EQ(c.checkpoint.memories.size(), 2u);
    if (c.checkpoint.memories.size() != 2) return;
    EXPECT_EQ(c.checkpoint.state.size(), c.blob.size() - kTestSize - kCgaSize);
    for (size_t i = 0; i < 2; ++i) {
      const std::vector<uint8_t>* buffer = c.checkpoint.memories[i].bytes.get();
      if (last[i] != nullptr) {
        EXPECT_EQ(buffer == last[i], !written[i])
            << "memory " << i << " at checkpoint " << saved.size();
      }
      last[i] = buffer;
      written[i] = false;
    }
    saved.push_back(std::move(c));
  };
  take();
  int restores = 0, shared = 0;
  for (int i = 0; i < 400; ++i) {
    const unsigned what = rng() % 8;
    if (what < 3) {
      // A few writes, to one memory or both, of 1-8 bytes.
      for (int k = 1 + static_cast<int>(rng() % 3); k > 0; --k) {
        const bool cga = rng() % 2 == 0;
        const unsigned size = 1u << (rng() % 4);
        const uint64_t at = (cga ? kCga : kTest) + rng() % ((cga ? kCgaSize : kTestSize) - 8);
        m->mmioWrite(at, size, rng());
        written[cga ? 1 : 0] = true;
      }
    } else if (what < 6) {
      const size_t before = saved.size();
      take();
      if (before > 0 && saved.back().checkpoint.memories[0].bytes ==
                            saved[before - 1].checkpoint.memories[0].bytes)
        ++shared;
    } else {
      const Saved& c = saved[rng() % saved.size()];
      const int times = rng() % 3 == 0 ? 2 : 1;
      for (int t = 0; t < times; ++t) {
        ASSERT_TRUE(m->restoreReplayedState(c.checkpoint).ok()) << "at " << i;
        ASSERT_EQ(m->saveDeviceState(), c.blob) << "restore " << restores << " at " << i;
      }
      // The memories now hold the checkpoint's buffers.
      for (size_t k = 0; k < 2; ++k) {
        last[k] = c.checkpoint.memories[k].bytes.get();
        written[k] = false;
      }
      ++restores;
    }
  }
  EXPECT_GT(restores, 50);
  EXPECT_GT(shared, 20);
  // A write after a checkpoint, then its restore: the old bytes come back,
  // and the checkpoint's own bytes did not change with the write.
  const std::vector<uint8_t> before = m->saveDeviceState();
  const Machine::DeviceCheckpoint c = m->checkpointReplayedState();
  const std::vector<uint8_t> cgaBytes = *c.memories[1].bytes;
  const uint64_t cgaWord = m->mmioRead(kCga + 0x100, 8), testWord = m->mmioRead(kTest + 0x200, 8);
  m->mmioWrite(kCga + 0x100, 8, ~cgaWord);
  m->mmioWrite(kTest + 0x200, 8, ~testWord);
  EXPECT_EQ(*c.memories[1].bytes, cgaBytes);
  ASSERT_TRUE(m->restoreReplayedState(c).ok());
  EXPECT_EQ(m->mmioRead(kCga + 0x100, 8), cgaWord);
  EXPECT_EQ(m->mmioRead(kTest + 0x200, 8), testWord);
  EXPECT_EQ(m->saveDeviceState(), before);
  // A checkpoint short of a memory, or with one of another size, is refused.
  Machine::DeviceCheckpoint shortOne = c;
  shortOne.memories.pop_back();
  Status s = m->restoreReplayedState(shortOne);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("held apart"), std::string::npos) << s.error().message;
  Machine::DeviceCheckpoint swapped = c;
  std::swap(swapped.memories[0], swapped.memories[1]);
  s = m->restoreReplayedState(swapped);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("bytes"), std::string::npos) << s.error().message;
  // A full state (a trace's INIT frame) is copied in full.
  auto other = makeMachine();
  other->mmioWrite(kCga, 8, 0x1122334455667788ull);
  ASSERT_TRUE(other->loadDeviceState(before).ok());
  EXPECT_EQ(other->saveDeviceState(), before);
  m->bindCpuState(nullptr);
}

// deviceDigest() leaves the device memories out of the state it writes and
// reuses the hash of a memory's words when its version and the chain value
// before it are those of the last digest. At random points among writes to
// the memories, to registers saved before and between them (the
// pc-testdev's latch, the CMOS, the CGA's CRTC), clock skips and checkpoint
// restores, it must equal the definition: digestOf(saveDeviceState()).
TEST(DeviceState, DigestEqualsAFullRehashAtRandomPoints) {
  auto m = makeMachine();
  CpuState cpu = Machine::initialCpuState();
  m->bindCpuState(&cpu);
  std::mt19937_64 rng(5);
  std::vector<Machine::DeviceCheckpoint> saved{m->checkpointReplayedState()};
  std::set<uint64_t> digests;
  for (int i = 0; i < 600; ++i) {
    switch (rng() % 9) {
      case 0: m->mmioWrite(0xB8000 + rng() % 0x7FF8, 1u << (rng() % 4), rng()); break;
      case 1:
        m->mmioWrite(PcTestDev::kMemBase + rng() % (PcTestDev::kMemSize - 8), 1u << (rng() % 4),
                     rng());
        break;
      case 2: m->portOut(0xE0, 1, static_cast<uint32_t>(rng())); break;  // pc-testdev latch
      case 3:
        m->portOut(0x70, 1, 0x0E + rng() % 0x30);  // CMOS RAM
        m->portOut(0x71, 1, static_cast<uint32_t>(rng() & 0xFF));
        break;
      case 4:
        m->portOut(0x3D4, 1, 0x0E + rng() % 2);  // the CRTC's cursor, saved before the text
        m->portOut(0x3D5, 1, static_cast<uint32_t>(rng() & 0xFF));
        break;
      case 5: m->clock().skipTo(m->clock().nowNs() + 1 + rng() % 1000000); break;
      case 6: saved.push_back(m->checkpointReplayedState()); break;
      case 7: ASSERT_TRUE(m->restoreReplayedState(saved[rng() % saved.size()]).ok()); break;
      default: break;  // nothing changed: the same digest again
    }
    const uint64_t d = m->deviceDigest();
    ASSERT_EQ(d, Machine::digestOf(m->saveDeviceState())) << "at " << i;
    digests.insert(d);
  }
  EXPECT_GT(digests.size(), 300u);  // the state did change
  m->bindCpuState(nullptr);
}

TEST(Machine, NonZeroPagesMatchAFullScan) {
  auto m = makeMachine();
  m->ram()[0x300123] = 7;                      // a page the test touches
  volatile uint8_t sink = m->ram()[0x500000];  // a page only read: zero
  (void)sink;
  RamPages fast = m->nonZeroPages();
  EXPECT_EQ(fast, RamPages::fromFlat(m->ram()));
  EXPECT_GT(fast.pageCount(), 3u);  // firmware pages and the one above
}

TEST(MachineConfig, FromTraceHeaderRebuildsTheSameMachine) {
  auto a = makeMachine(32ull << 20);
  TraceHeader h;
  h.machine = a->config();
  h.cpuModel = a->cpuModel();
  auto b = Machine::fromTraceHeader(h);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ((*b)->config(), a->config());
  EXPECT_EQ((*b)->ram().size(), 32ull << 20);
  h.machine.devices[3] = "floppy@0x3f0";
  auto c = Machine::fromTraceHeader(h);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("floppy"), std::string::npos);
}

TEST(MachineConfig, AReplayedMachineDoesNotReportTheGuestsAccessesAgain) {
  // The recording's machine reports the first access to an unclaimed port
  // or page; the machine a replay builds from the header stays quiet.
  MachineOptions o;
  o.ramBytes = 16ull << 20;
  auto live = Machine::create(o);
  ASSERT_TRUE(live.ok());
  TraceHeader h;
  h.machine = (*live)->config();
  h.cpuModel = (*live)->cpuModel();
  h.replayedDevices = (*live)->wholeMachine();
  ::testing::internal::CaptureStderr();
  (void)(*live)->portIn(0x1234, 1);
  (void)(*live)->mmioRead(0xFD000000, 4);
  const std::string recorded = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(recorded.find("unclaimed port 0x1234"), std::string::npos) << recorded;
  EXPECT_NE(recorded.find("unclaimed physical address 0xfd000000"), std::string::npos) << recorded;
  auto replayed = Machine::fromTraceHeader(h);
  ASSERT_TRUE(replayed.ok()) << replayed.error().message;
  EXPECT_TRUE((*replayed)->replaysWholeMachine());
  ::testing::internal::CaptureStderr();
  EXPECT_EQ((*replayed)->portIn(0x1234, 1), 0xFFu);
  EXPECT_EQ((*replayed)->mmioRead(0xFD000000, 4), 0xFFFFFFFFu);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

TEST(MachineDisks, SlotsChannelsIrqsAndTheDeviceList) {
  auto m = makeMachine();
  auto disk = [](size_t sectors) {
    return DiskImage::fromBytes("d" + std::to_string(sectors), std::vector<uint8_t>(sectors * 512));
  };
  ASSERT_TRUE(m->attachDisk(1, disk(8)).ok());
  ASSERT_TRUE(m->attachDisk(2, disk(9)).ok());
  EXPECT_FALSE(m->attachDisk(2, disk(1)).ok());  // taken
  auto over = m->attachDisk(4, disk(1));
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.error().message.find("at most 4 disks"), std::string::npos);
  // Primary: no master (reads 0), the slave answers; secondary: the master.
  EXPECT_EQ(m->portIn(0x1F7, 1), 0u);
  m->portOut(0x1F6, 1, 0xB0);
  EXPECT_EQ(m->portIn(0x1F7, 1), 0x50u);
  EXPECT_EQ(m->portIn(0x177, 1), 0x50u);
  // IDENTIFY on the secondary raises IRQ 15 (at the 8259: slave IRR bit 7).
  m->portOut(0x177, 1, 0xEC);
  EXPECT_TRUE(m->ide(1).irqLevel());
  EXPECT_NE(m->pic().irr(1) & 0x80, 0);
  EXPECT_EQ(m->portIn(0x376, 1), 0x58u);  // alternate status
  for (int i = 0; i < 60; ++i) (void)m->portIn(0x170, 2);
  EXPECT_EQ(m->portIn(0x170, 2), 9u);  // word 60: capacity
  (void)m->portIn(0x177, 1);
  EXPECT_FALSE(m->ide(1).irqLevel());
  // The header names the disks; a machine rebuilt from it has none.
  MachineConfig c = m->config();
  EXPECT_EQ(c.devices[c.devices.size() - 2], "disk@ide0.1:sectors=8");
  EXPECT_EQ(c.devices.back(), "disk@ide1.0:sectors=9");
  TraceHeader h;
  h.machine = c;
  h.cpuModel = m->cpuModel();
  auto b = Machine::fromTraceHeader(h);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ((*b)->disk(1), nullptr);
  EXPECT_EQ((*b)->portIn(0x177, 1), 0u);
}

}  // namespace
}  // namespace ttvm
