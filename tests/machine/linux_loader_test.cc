// The Linux/x86 boot protocol loader, with small bzImages built here: the
// setup header checks, boot_params, the command line, the initrd placement
// and the entry state; every bad input names the file and the field.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "ttvm/machine/firmware.h"
#include "ttvm/machine/loader.h"
#include "ttvm/machine/machine.h"

namespace ttvm {
using ttvm::machine::LoadOptions;
using ttvm::machine::Machine;
using ttvm::machine::MachineOptions;
namespace firmware = ttvm::machine::firmware;
using ttvm::machine::loadGuest;
namespace {

std::unique_ptr<Machine> machine(uint64_t mib = 32) {
  MachineOptions o;
  o.ramBytes = mib << 20;
  return std::move(Machine::create(o)).value();
}

void put(std::vector<uint8_t>& b, size_t off, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t get(std::span<const uint8_t> b, size_t off, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= uint64_t{b[off + i]} << (8 * i);
  return v;
}

// A bzImage with one setup sector and `kernelBytes` of protected-mode kernel
// (bytes 0, 1, 2, ...), protocol `version`, 64-bit entry, relocatable.
std::vector<uint8_t> bzImage(uint16_t version = 0x20F, size_t kernelBytes = 0x3000) {
  std::vector<uint8_t> f(0x400 + kernelBytes, 0);
  for (size_t i = 0; i < kernelBytes; ++i) f[0x400 + i] = static_cast<uint8_t>(i * 7 + 1);
  put(f, 0x1F1, 1, 1);                 // setup_sects
  put(f, 0x1F4, kernelBytes / 16, 4);  // syssize
  put(f, 0x1FE, 0xAA55, 2);            // boot_flag
  put(f, 0x200, 0x66EB, 2);            // jmp to 0x268
  std::memcpy(f.data() + 0x202, "HdrS", 4);
  put(f, 0x206, version, 2);
  put(f, 0x211, 0x01, 1);        // LOADED_HIGH
  put(f, 0x22C, 0x7FFFFFFF, 4);  // initrd_addr_max
  put(f, 0x230, 0x200000, 4);    // kernel_alignment
  put(f, 0x234, 1, 1);           // relocatable
  put(f, 0x236, 0x3, 2);         // XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
  put(f, 0x238, 64, 4);          // cmdline_size
  put(f, 0x258, 0x1000000, 8);   // pref_address
  put(f, 0x260, 0x100000, 4);    // init_size
  return f;
}

std::string tempFile(const std::vector<uint8_t>& bytes) {
  char name[] = "/tmp/ttvm-initrd-XXXXXX";
  int fd = mkstemp(name);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  close(fd);
  return name;
}

TEST(LinuxLoader, BootParamsEntryAndInitrd) {
  auto m = machine();
  const auto f = bzImage();
  std::vector<uint8_t> initrd(5000);
  for (size_t i = 0; i < initrd.size(); ++i) initrd[i] = static_cast<uint8_t>(i ^ 0x5A);
  const std::string initrdPath = tempFile(initrd);
  LoadOptions o{"vmlinuz"};
  o.append = "console=ttyS0 quiet";
  o.modules = {initrdPath};
  o.kernelOnly = true;
  auto g = loadGuest(*m, f, o);
  std::remove(initrdPath.c_str());
  ASSERT_TRUE(g.ok()) << g.error().message;
  auto ram = m->ram();
  // The kernel at pref_address; the 64-bit entry 0x200 past it.
  ASSERT_EQ(g->images.size(), 2u);
  EXPECT_EQ(g->images[0].format, ImageFormat::kLinux);
  EXPECT_EQ(g->images[0].loadAddress, 0x1000000u);
  EXPECT_EQ(std::memcmp(ram.data() + 0x1000000, f.data() + 0x400, 0x3000), 0);
  const CpuState& s = g->cpu;
  EXPECT_EQ(cpuMode(s), CpuMode::kLong64);
  EXPECT_EQ(s.rip, 0x1000200u);
  EXPECT_EQ(s.segment(SegReg::kCs).selector, 0x10);
  EXPECT_EQ(s.segment(SegReg::kDs).selector, 0x18);
  EXPECT_EQ(s.segment(SegReg::kSs).selector, 0x18);
  EXPECT_EQ(s.rflags & flags::kIF, 0u);
  // The GDT the entry state names holds __BOOT_CS (64-bit code) and __BOOT_DS.
  EXPECT_EQ(get(ram, s.gdtr.base + 0x10, 8), 0x00AF9B000000FFFFull);
  EXPECT_EQ(get(ram, s.gdtr.base + 0x18, 8), 0x00CF93000000FFFFull);
  // boot_params at RSI: the file's header copied, what the loader sets.
  const uint64_t zp = s.reg(Gpr::kRsi);
  ASSERT_LT(zp + 0x1000, 0x100000u);
  EXPECT_EQ(std::memcmp(ram.data() + zp + 0x202, "HdrS", 4), 0);
  EXPECT_EQ(get(ram, zp + 0x206, 2), 0x20Fu);
  EXPECT_EQ(get(ram, zp + 0x210, 1), 0xFFu);  // type_of_loader
  const uint64_t cmd = get(ram, zp + 0x228, 4);
  EXPECT_STREQ(reinterpret_cast<const char*>(ram.data() + cmd), "console=ttyS0 quiet");
  const uint64_t rd = get(ram, zp + 0x218, 4), rdSize = get(ram, zp + 0x21C, 4);
  EXPECT_EQ(rdSize, 5000u);
  EXPECT_EQ(rd % 4096, 0u);
  EXPECT_GE(rd, 0x1000000u + 0x100000u);  // above the kernel's init_size
  EXPECT_LE(rd + rdSize, ram.size());
  EXPECT_EQ(std::memcmp(ram.data() + rd, initrd.data(), initrd.size()), 0);
  EXPECT_EQ(g->images[1].bytes.size(), 5000u);  // the trace keeps it
  // The E820 map is the machine's.
  const auto map = firmware::e820Map(ram.size());
  ASSERT_EQ(get(ram, zp + 0x1E8, 1), map.size());
  for (size_t i = 0; i < map.size(); ++i) {
    EXPECT_EQ(get(ram, zp + 0x2D0 + 20 * i, 8), map[i].address);
    EXPECT_EQ(get(ram, zp + 0x2D0 + 20 * i + 8, 8), map[i].length);
    EXPECT_EQ(get(ram, zp + 0x2D0 + 20 * i + 16, 4), map[i].type);
  }
  EXPECT_EQ(get(ram, zp + 0x070, 8), firmware::kRsdpAddress);  // acpi_rsdp_addr (2.14+)
}

TEST(LinuxLoader, ThirtyTwoBitEntryAndOneMibLoad) {
  auto m = machine(16);  // pref_address + init_size does not fit: 1 MiB
  auto f = bzImage();
  put(f, 0x236, 0, 2);  // no 64-bit entry
  auto g = loadGuest(*m, f, LoadOptions{"vmlinuz"});
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->images[0].loadAddress, 0x100000u);
  EXPECT_EQ(cpuMode(g->cpu), CpuMode::kProtected32);
  EXPECT_EQ(g->cpu.rip, 0x100000u);
  EXPECT_EQ(g->cpu.segment(SegReg::kCs).selector, 0x10);
  EXPECT_EQ(get(m->ram(), g->cpu.gdtr.base + 0x10, 8), 0x00CF9B000000FFFFull);
  EXPECT_EQ(g->cpu.reg(Gpr::kRsi), 0x7000u);
}

TEST(LinuxLoader, ErrorsNameTheFileAndTheField) {
  auto expectError = [](std::vector<uint8_t> f, LoadOptions o, std::vector<std::string> parts) {
    auto m = machine();
    auto g = loadGuest(*m, f, o);
    ASSERT_FALSE(g.ok());
    for (const std::string& p : parts)
      EXPECT_NE(g.error().message.find(p), std::string::npos)
          << "'" << p << "' missing from: " << g.error().message;
  };
  LoadOptions k{"bzImage"};
  k.kernelOnly = true;
  auto notHdrS = bzImage();
  std::memcpy(notHdrS.data() + 0x202, "HdrX", 4);
  expectError(notHdrS, k, {"bzImage", "0x202", "HdrS"});
  expectError(bzImage(0x205), k, {"bzImage", "0x206", "2.05", "2.06"});
  auto truncated = bzImage();
  truncated.resize(0x1400);
  expectError(truncated, k, {"bzImage", "0x1f4", "syssize"});
  LoadOptions longCmd = k;
  longCmd.append = std::string(65, 'x');
  expectError(bzImage(), longCmd, {"--append", "65", "64", "cmdline_size", "0x238"});
  auto lowMax = bzImage();
  put(lowMax, 0x22C, 0x10FFFFF, 4);  // initrd_addr_max inside the kernel's init_size
  put(lowMax, 0x236, 0x1, 2);
  LoadOptions withInitrd = k;
  const std::string path = tempFile(std::vector<uint8_t>(8192, 1));
  withInitrd.modules = {path};
  expectError(lowMax, withInitrd, {path, "initrd_addr_max", "0x22c", "0x10fffff"});
  std::remove(path.c_str());
  // A file that is not a kernel at all, given as --kernel.
  expectError(std::vector<uint8_t>(4096, 0x90), k, {"bzImage", "--kernel", "0x202"});
  // Every truncation is an error or a load, never a crash.
  const auto f = bzImage();
  for (size_t cut = 0; cut < f.size(); cut += 61) {
    auto mm = machine();
    (void)loadGuest(*mm, std::span<const uint8_t>(f).first(cut), k);
  }
}

}  // namespace
}  // namespace ttvm
