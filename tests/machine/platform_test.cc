// The PC platform pieces a stock kernel probes: the DSDT (\_S5 and the
// pvpanic device, checked with ACPICA's disassembler where installed), the
// Intel MP tables, PCI configuration mechanism #1 with its host bridge, the
// CGA text memory and CRTC, and the i8042 driven as Linux's probe drives it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "test_support.h"
#include "ttvm/machine/devices/cga_text.h"
#include "ttvm/machine/devices/pci_host.h"
#include "ttvm/machine/devices/system_control.h"
#include "ttvm/machine/firmware.h"
#include "ttvm/machine/machine.h"

namespace ttvm {
using ttvm::machine::IrqLine;
using ttvm::machine::KeyboardController;
using ttvm::machine::Machine;
using ttvm::machine::MachineOptions;
namespace firmware = ttvm::machine::firmware;
namespace {

std::unique_ptr<Machine> makeMachine() {
  MachineOptions o;
  o.ramBytes = 64ull << 20;
  auto m = Machine::create(o);
  EXPECT_TRUE(m.ok());
  (*m)->ports().setReportStream(nullptr);
  (*m)->mmio().setReportStream(nullptr);
  return std::move(*m);
}

uint32_t rd32(std::span<const uint8_t> ram, uint64_t at) {
  uint32_t v;
  std::memcpy(&v, ram.data() + at, 4);
  return v;
}
uint8_t sum(std::span<const uint8_t> ram, uint64_t at, uint64_t len) {
  uint8_t s = 0;
  for (uint64_t i = 0; i < len; ++i) s = static_cast<uint8_t>(s + ram[at + i]);
  return s;
}

// The DSDT as the OS finds it: RSDP -> RSDT -> FADT -> DSDT.
std::vector<uint8_t> dsdtFromRam(std::span<const uint8_t> ram) {
  const uint32_t rsdt = rd32(ram, firmware::kRsdpAddress + 16);
  for (uint32_t i = 36; i < rd32(ram, rsdt + 4); i += 4) {
    const uint32_t t = rd32(ram, rsdt + i);
    if (std::memcmp(ram.data() + t, "FACP", 4) != 0) continue;
    const uint32_t dsdt = rd32(ram, t + 40);
    return {ram.begin() + dsdt, ram.begin() + dsdt + rd32(ram, dsdt + 4)};
  }
  return {};
}

TEST(Platform, DsdtHasS5AndThePvpanicDevice) {
  auto m = makeMachine();
  const std::vector<uint8_t> dsdt = dsdtFromRam(m->ram());
  ASSERT_GT(dsdt.size(), 36u);
  EXPECT_EQ(std::memcmp(dsdt.data(), "DSDT", 4), 0);
  EXPECT_EQ(sum(dsdt, 0, dsdt.size()), 0);
  // Name (\_S5, Package (4) {5, 5, Zero, Zero}), byte for byte (ACPI 20.2).
  const uint8_t s5[] = {0x08, 0x5C, '_',  'S',  '5',  '_',  0x12, 0x08,
                        0x04, 0x0A, 0x05, 0x0A, 0x05, 0x00, 0x00};
  EXPECT_NE(std::search(dsdt.begin(), dsdt.end(), std::begin(s5), std::end(s5)), dsdt.end());
  EXPECT_EQ(firmware::kSleepTypeSoftOff, 5);

  // ACPICA's own disassembler reads the table back.
  if (std::system("iasl -v >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "iasl (Debian package acpica-tools) is not installed";
  char dir[] = "/tmp/ttvm-dsdt-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string base = std::string(dir) + "/dsdt";
  std::ofstream(base + ".dat", std::ios::binary)
      .write(reinterpret_cast<const char*>(dsdt.data()), static_cast<std::streamsize>(dsdt.size()));
  const std::string cmd = "cd " + std::string(dir) + " && iasl -d dsdt.dat >iasl.log 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "iasl -d failed; see " << dir << "/iasl.log";
  std::stringstream dsl;
  dsl << std::ifstream(base + ".dsl").rdbuf();
  const std::string text = dsl.str();
  std::stringstream log;
  log << std::ifstream(std::string(dir) + "/iasl.log").rdbuf();
  std::system(("rm -rf " + std::string(dir)).c_str());
  EXPECT_NE(text.find("Name (\\_S5, Package (0x04)"), std::string::npos) << text;
  EXPECT_NE(text.find("0x05"), std::string::npos);
  EXPECT_NE(text.find("Device (PEVT)"), std::string::npos) << text;
  EXPECT_NE(text.find("Name (_HID, \"QEMU0001\")"), std::string::npos) << text;
  EXPECT_NE(text.find("IO (Decode16,"), std::string::npos) << text;
  EXPECT_NE(text.find("0x0505"), std::string::npos) << text;
  EXPECT_EQ(log.str().find("rror"), std::string::npos) << log.str();
}

TEST(Platform, MpFloatingPointerAndConfigurationTable) {
  auto m = makeMachine();
  auto ram = m->ram();
  uint64_t fp = 0;
  for (uint64_t a = 0xF0000; a < 0x100000; a += 16)
    if (std::memcmp(ram.data() + a, "_MP_", 4) == 0) {
      fp = a;
      break;
    }
  ASSERT_NE(fp, 0u) << "no MP floating pointer in the BIOS area";
  EXPECT_EQ(sum(ram, fp, 16), 0);
  EXPECT_EQ(ram[fp + 8], 1);   // 16 bytes
  EXPECT_EQ(ram[fp + 9], 4);   // revision 1.4
  EXPECT_EQ(ram[fp + 11], 0);  // a configuration table, not a default configuration
  const uint32_t t = rd32(ram, fp + 4);
  ASSERT_EQ(std::memcmp(ram.data() + t, "PCMP", 4), 0);
  const uint16_t len = static_cast<uint16_t>(ram[t + 4] | ram[t + 5] << 8);
  EXPECT_EQ(sum(ram, t, len), 0);
  EXPECT_EQ(ram[t + 6], 4);
  EXPECT_EQ(rd32(ram, t + 36), 0xFEE00000u);
  const unsigned count = ram[t + 34] | ram[t + 35] << 8;
  unsigned seen = 0, cpus = 0, buses = 0, ioapics = 0, irq0 = 0, lint = 0;
  for (uint32_t o = 44; o < len; ++seen) {
    const uint8_t type = ram[t + o];
    ASSERT_LE(type, 4) << "entry " << seen;
    if (type == 0) {
      ++cpus;
      EXPECT_EQ(ram[t + o + 3] & 3, 3);  // enabled, bootstrap processor
      EXPECT_EQ(rd32(ram, t + o + 4), m->cpuModel().lookup(1, 0).eax);
    }
    if (type == 1) {
      ++buses;
      EXPECT_EQ(std::memcmp(ram.data() + t + o + 2, "ISA   ", 6), 0);
    }
    if (type == 2) {
      ++ioapics;
      EXPECT_EQ(rd32(ram, t + o + 4), 0xFEC00000u);
    }
    if (type == 3 && ram[t + o + 1] == 0 && ram[t + o + 5] == 0) {
      ++irq0;
      EXPECT_EQ(ram[t + o + 7], 2);  // ISA IRQ 0 -> INTIN 2
    }
    if (type == 4) ++lint;
    o += type == 0 ? 20 : 8;
  }
  EXPECT_EQ(seen, count);
  EXPECT_EQ(cpus, 1u);
  EXPECT_EQ(buses, 1u);
  EXPECT_EQ(ioapics, 1u);
  EXPECT_EQ(irq0, 1u);
  EXPECT_EQ(lint, 2u);
}

TEST(Platform, PciConfigMechanismOneWithHostBridge) {
  auto m = makeMachine();
  // Linux's pci_check_type1(): the address register reads back a dword write.
  m->portOut(0xCFB, 1, 0x01);
  m->portOut(0xCF8, 4, 0x80000000);
  EXPECT_EQ(m->portIn(0xCF8, 4), 0x80000000u);
  EXPECT_EQ(m->portIn(0xCFC, 4), 0x12378086u);  // 00:00.0 vendor/device
  EXPECT_EQ(m->portIn(0xCFE, 2), 0x1237u);
  m->portOut(0xCF8, 4, 0x80000008);
  EXPECT_EQ(m->portIn(0xCFE, 2), 0x0600u);  // class: host bridge
  EXPECT_EQ(m->portIn(0xCFC, 1), 0x02u);    // revision
  m->portOut(0xCF8, 4, 0x8000000C);
  EXPECT_EQ(m->portIn(0xCFE, 1), 0x00u);  // header type 0
  // Command: I/O, memory and bus master are writable; the rest is not.
  m->portOut(0xCF8, 4, 0x80000004);
  m->portOut(0xCFC, 2, 0xFFFF);
  EXPECT_EQ(m->portIn(0xCFC, 2), 0x0007u);
  m->portOut(0xCF8, 4, 0x80000010);  // BAR0: none
  m->portOut(0xCFC, 4, 0xFFFFFFFF);
  EXPECT_EQ(m->portIn(0xCFC, 4), 0u);
  // No other device or bus; the enable bit off selects nothing.
  for (uint32_t a : {0x80000800u, 0x80000100u, 0x80010000u, 0x00000000u}) {
    m->portOut(0xCF8, 4, a);
    EXPECT_EQ(m->portIn(0xCFC, 4), 0xFFFFFFFFu) << std::hex << a;
  }
  // Reserved address bits read as zero; 0xCF9 is still the reset control register.
  m->portOut(0xCF8, 4, 0xFF000003);
  EXPECT_EQ(m->portIn(0xCF8, 4), 0x80000000u);
  EXPECT_EQ(m->ports().ownerOf(0xCF9), "reset-control");
  EXPECT_EQ(m->pciHost().config(0x04), 0x07);
  // The state survives a save and load.
  auto blob = m->saveDeviceState();
  auto m2 = makeMachine();
  ASSERT_TRUE(m2->loadDeviceState(blob).ok());
  EXPECT_EQ(m2->portIn(0xCF8, 4), 0x80000000u);
  EXPECT_EQ(m2->pciHost().config(0x04), 0x07);
}

TEST(Platform, CgaTextMemoryAndCursorReadBack) {
  auto m = makeMachine();
  m->portOut(0x3D4, 1, 0x0E);
  m->portOut(0x3D5, 1, 0x07);
  m->portOut(0x3D4, 1, 0x0F);
  m->portOut(0x3D5, 1, 0xD0);
  EXPECT_EQ(m->portIn(0x3D4, 1), 0x0Fu);
  EXPECT_EQ(m->portIn(0x3D5, 1), 0xD0u);
  m->portOut(0x3D4, 1, 0x0E);
  EXPECT_EQ(m->portIn(0x3D5, 1), 0x07u);
  m->portOut(0x3D4, 2, 0x120F);  // a word OUT: index 0x0F, data 0x12
  EXPECT_EQ(m->cga().cursor(), 0x0712u);
  EXPECT_EQ(m->portIn(0x3D4, 2), 0x120Fu);
  m->mmioWrite(0xB8000, 2, 0x1F41);  // 'A', white on blue
  m->mmioWrite(0xB8F9E, 4, 0x07420743);
  EXPECT_EQ(m->mmioRead(0xB8000, 2), 0x1F41u);
  EXPECT_EQ(m->mmioRead(0xB8F9F, 2), 0x4207u);
  EXPECT_EQ(m->cga().textByte(0xF9E), 0x43);
  auto blob = m->saveDeviceState();
  auto m2 = makeMachine();
  ASSERT_TRUE(m2->loadDeviceState(blob).ok());
  EXPECT_EQ(m2->mmioRead(0xB8000, 2), 0x1F41u);
  EXPECT_EQ(m2->cga().cursor(), 0x0712u);
}

// The sequence of Linux's i8042 driver (drivers/input/serio/i8042.c):
// flush, read/write the configuration byte, the aux loopback, the aux
// enable/disable bit test, then the aux IRQ test. Each answer is there at
// once, so the driver never waits for a timeout.
TEST(Platform, I8042AnswersLinuxProbeAtOnce) {
  test::RecordingIrqs irqs;
  test::RecordingControl control;
  KeyboardController kbc(&control, IrqLine(&irqs, 1), IrqLine(&irqs, 12));
  EXPECT_EQ(kbc.portRead(0x64, 1) & 0x11, 0x10u);  // empty; keyboard not inhibited
  auto command = [&](uint8_t c) { kbc.portWrite(0x64, 1, c); };
  auto data = [&]() {
    EXPECT_EQ(kbc.portRead(0x64, 1) & 1, 1u) << "no output";
    return static_cast<uint8_t>(kbc.portRead(0x60, 1));
  };
  command(0x20);
  const uint8_t ctr = data();
  command(0x60);
  kbc.portWrite(0x60, 1, ctr & ~0x03);  // interrupts off while probing
  command(0xD3);                        // aux loopback
  kbc.portWrite(0x60, 1, 0x5A);
  EXPECT_EQ(kbc.portRead(0x64, 1) & 0x21, 0x21u);  // full, from the aux port
  EXPECT_EQ(data(), 0x5A);
  EXPECT_EQ(kbc.portRead(0x64, 1) & 0x21, 0x00u);
  command(0xA7);
  command(0x20);
  EXPECT_EQ(data() & 0x20, 0x20);  // aux disabled
  command(0xA8);
  command(0x20);
  EXPECT_EQ(data() & 0x20, 0x00);  // aux enabled
  EXPECT_EQ(irqs.rises[12], 0);
  // The aux IRQ test: interrupts on, a looped-back byte raises IRQ 12 until read.
  command(0x60);
  kbc.portWrite(0x60, 1, 0x03);
  command(0xD3);
  kbc.portWrite(0x60, 1, 0xA5);
  EXPECT_TRUE(irqs.level[12]);
  EXPECT_FALSE(irqs.level[1]);
  EXPECT_EQ(data(), 0xA5);
  EXPECT_FALSE(irqs.level[12]);
  // Keyboard-side output raises IRQ 1.
  command(0xD2);
  kbc.portWrite(0x60, 1, 0x1C);
  EXPECT_TRUE(irqs.level[1]);
  EXPECT_EQ(kbc.portRead(0x64, 1) & 0x20, 0u);
  EXPECT_EQ(data(), 0x1C);
  command(0xAA);
  EXPECT_EQ(data(), 0x55);
  command(0xA9);
  EXPECT_EQ(data(), 0x00);
  command(0xAB);
  EXPECT_EQ(data(), 0x00);
  // Bytes for the absent keyboard get no reply.
  kbc.portWrite(0x60, 1, 0xF2);
  EXPECT_EQ(kbc.portRead(0x64, 1) & 1, 0u);
  EXPECT_TRUE(control.requests.empty());
}

}  // namespace
}  // namespace ttvm
