// The Linux/x86 boot protocol (the kernel's Documentation/arch/x86/boot.rst),
// as QEMU's -kernel follows it, for protocol 2.06 and later, without running
// the kernel's real-mode setup code: boot_params is built here and the CPU
// starts at the 64-bit entry (startup_64, load address + 0x200) or, for a
// kernel without XLF_KERNEL_64, at the 32-bit protected-mode entry.
//
// Guest-physical layout (all below 1 MiB, which Linux always reserves):
//   0x06000  the boot GDT (__BOOT_CS 0x10, __BOOT_DS 0x18)
//   0x07000  boot_params (the zero page)
//   0x09000  identity page tables for the 64-bit entry (6 pages, 4 GiB)
//   0x20000  the command line (cmdline_size + 1 bytes at most)
// The protected-mode kernel goes at pref_address (protocol 2.10+, when it
// fits, aligned to kernel_alignment) or at 1 MiB; the initrd as high as
// initrd_addr_max and RAM allow, 4 KiB aligned, above the kernel's init_size.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "ttvm/base/hex.h"
#include "ttvm/machine/firmware.h"
#include "ttvm/machine/loader.h"
#include "ttvm/machine/machine.h"

namespace ttvm::machine {
namespace {

// Setup header fields: offsets in the file and in boot_params alike.
namespace hdr {
constexpr size_t kSetupSects = 0x1F1, kSyssize = 0x1F4, kVidMode = 0x1FA, kBootFlag = 0x1FE,
                 kJump = 0x200, kHeader = 0x202, kVersion = 0x206, kTypeOfLoader = 0x210,
                 kLoadflags = 0x211, kCode32Start = 0x214, kRamdiskImage = 0x218,
                 kRamdiskSize = 0x21C, kCmdLinePtr = 0x228, kInitrdAddrMax = 0x22C,
                 kKernelAlignment = 0x230, kRelocatable = 0x234, kXloadflags = 0x236,
                 kCmdlineSize = 0x238, kPrefAddress = 0x258, kInitSize = 0x260;
}  // namespace hdr
// boot_params fields outside the setup header.
namespace bp {
constexpr size_t kAcpiRsdpAddr = 0x070, kExtRamdiskImage = 0x0C0, kExtRamdiskSize = 0x0C4,
                 kExtCmdLinePtr = 0x0C8, kE820Entries = 0x1E8, kE820Table = 0x2D0, kE820Max = 128,
                 kSize = 0x1000;
}  // namespace bp

constexpr uint16_t kBootCs = 0x10, kBootDs = 0x18;
constexpr uint64_t kGdtAt = 0x6000, kBootParamsAt = 0x7000, kPageTablesAt = 0x9000,
                   kCmdlineAt = 0x20000;
constexpr uint8_t kLoadedHigh = 0x01;  // loadflags
constexpr uint16_t kXlfKernel64 = 0x01, kXlfCanBeLoadedAbove4G = 0x02;
constexpr uint8_t kTypeOfLoaderUndefined = 0xFF;  // ttvm has no assigned boot loader ID

std::string protocolName(uint16_t version) {
  char b[16];
  std::snprintf(b, sizeof b, "%u.%02u", version >> 8, version & 0xFF);
  return b;
}

uint64_t get(std::span<const uint8_t> f, size_t off, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= uint64_t{f[off + i]} << (8 * i);
  return v;
}

void set(std::span<uint8_t> b, size_t off, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace

bool isLinuxBzImage(std::span<const uint8_t> f) {
  return f.size() >= hdr::kHeader + 4 && get(f, hdr::kBootFlag, 2) == 0xAA55 &&
         std::memcmp(f.data() + hdr::kHeader, "HdrS", 4) == 0;
}

Result<LinuxSetupHeader> parseLinuxSetupHeader(std::span<const uint8_t> f,
                                               const std::string& name) {
  auto at = [&](size_t off, const char* field) {
    return name + ": byte " + hex(off) + " (" + field + ")";
  };
  if (f.size() < 0x400)
    return makeError(name + ": " + std::to_string(f.size()) +
                     " bytes, too short for a Linux bzImage (the setup header ends past 0x268)");
  if (get(f, hdr::kBootFlag, 2) != 0xAA55)
    return makeError(at(hdr::kBootFlag, "boot_flag") + " is " + hex(get(f, hdr::kBootFlag, 2)) +
                     ", not 0xaa55: not a Linux bzImage");
  if (std::memcmp(f.data() + hdr::kHeader, "HdrS", 4) != 0)
    return makeError(at(hdr::kHeader, "header") + " is " + hex(get(f, hdr::kHeader, 4)) +
                     ", not \"HdrS\": not a Linux bzImage (or a kernel older than protocol 2.00)");
  LinuxSetupHeader h;
  h.version = static_cast<uint16_t>(get(f, hdr::kVersion, 2));
  if (h.version < 0x206)
    return makeError(at(hdr::kVersion, "version") + ": boot protocol " + protocolName(h.version) +
                     "; ttvm loads protocol 2.06 (Linux 2.6.22) and later");
  if (f[hdr::kJump] != 0xEB)
    return makeError(at(hdr::kJump, "jump") + " is " + hex(f[hdr::kJump]) +
                     ", not a short JMP (0xeb): the setup header's length is unknown");
  h.headerEnd = hdr::kHeader + f[hdr::kJump + 1];
  if (h.headerEnd < hdr::kCmdlineSize + 4 || h.headerEnd > 0x290)
    return makeError(at(hdr::kJump + 1, "jump offset") + " puts the end of the setup header at " +
                     hex(h.headerEnd) + ", outside [0x23c, 0x290]");
  h.setupSects = f[hdr::kSetupSects] == 0 ? 4 : f[hdr::kSetupSects];
  h.syssize = static_cast<uint32_t>(get(f, hdr::kSyssize, 4));
  h.loadflags = f[hdr::kLoadflags];
  h.initrdAddrMax = static_cast<uint32_t>(get(f, hdr::kInitrdAddrMax, 4));
  h.kernelAlignment = static_cast<uint32_t>(get(f, hdr::kKernelAlignment, 4));
  h.relocatable = f[hdr::kRelocatable] != 0;
  h.cmdlineSize = static_cast<uint32_t>(get(f, hdr::kCmdlineSize, 4));
  if (h.version >= 0x209) h.xloadflags = static_cast<uint16_t>(get(f, hdr::kXloadflags, 2));
  if (h.version >= 0x20A) {
    h.prefAddress = get(f, hdr::kPrefAddress, 8);
    h.initSize = static_cast<uint32_t>(get(f, hdr::kInitSize, 4));
  }
  if (!(h.loadflags & kLoadedHigh))
    return makeError(at(hdr::kLoadflags, "loadflags") + " is " + hex(h.loadflags) +
                     ": a zImage (LOADED_HIGH clear), which loads at 0x10000; ttvm loads bzImages");
  h.kernelOffset = (uint64_t{h.setupSects} + 1) * 512;
  if (h.kernelOffset >= f.size())
    return makeError(at(hdr::kSetupSects, "setup_sects") + ": " + std::to_string(h.setupSects) +
                     " setup sectors put the protected-mode kernel at " + hex(h.kernelOffset) +
                     ", past the end of the file (" + hex(f.size()) + " bytes)");
  h.kernelBytes = f.size() - h.kernelOffset;
  if (uint64_t{h.syssize} * 16 > h.kernelBytes + 15)
    return makeError(at(hdr::kSyssize, "syssize") + ": " + hex(uint64_t{h.syssize} * 16) +
                     " bytes of protected-mode kernel from " + hex(h.kernelOffset) +
                     ", but the file has " + hex(h.kernelBytes) + " (truncated?)");
  if (h.kernelAlignment == 0 || (h.kernelAlignment & (h.kernelAlignment - 1)) != 0)
    return makeError(at(hdr::kKernelAlignment, "kernel_alignment") + " is " +
                     hex(h.kernelAlignment) + ", not a power of two");
  if (h.initSize == 0) h.initSize = static_cast<uint32_t>(std::max<uint64_t>(h.kernelBytes, 1));
  return h;
}

Result<LoadedGuest> loadLinux(Machine& m, std::span<const uint8_t> f, const LoadOptions& o) {
  auto parsed = parseLinuxSetupHeader(f, o.name);
  TTVM_TRY(parsed);
  const LinuxSetupHeader& h = *parsed;
  std::span<uint8_t> ram = m.ram();
  const uint64_t ramEnd = ram.size();

  // Where the protected-mode kernel goes.
  uint64_t load = 0x100000;
  if (h.relocatable && h.prefAddress != 0) {
    uint64_t pref = (h.prefAddress + h.kernelAlignment - 1) & ~uint64_t{h.kernelAlignment - 1};
    if (pref + h.initSize <= ramEnd) load = pref;
  }
  const uint64_t kernelEnd = load + std::max<uint64_t>(h.initSize, h.kernelBytes);
  if (kernelEnd > ramEnd)
    return makeError(o.name + ": the kernel needs [" + hex(load) + ", " + hex(kernelEnd) +
                     ") (init_size at byte 0x260 is " + hex(h.initSize) + ") but RAM ends at " +
                     hex(ramEnd) + "; try a larger --ram");
  std::memcpy(ram.data() + load, f.data() + h.kernelOffset, h.kernelBytes);

  // Command line.
  if (o.append.size() > h.cmdlineSize)
    return makeError("--append: the command line has " + std::to_string(o.append.size()) +
                     " bytes; " + o.name + " takes at most " + std::to_string(h.cmdlineSize) +
                     " (cmdline_size at byte 0x238)");
  std::memcpy(ram.data() + kCmdlineAt, o.append.data(), o.append.size());
  ram[kCmdlineAt + o.append.size()] = 0;

  LoadedGuest g;
  GuestImage kernel;
  kernel.name = o.name;
  kernel.format = ImageFormat::kLinux;
  kernel.loadAddress = load;
  const bool entry64 = (h.xloadflags & kXlfKernel64) != 0;
  kernel.entry = entry64 ? load + 0x200 : load;
  kernel.bytes.assign(f.begin(), f.end());
  g.images.push_back(std::move(kernel));

  // The initrd: the --initrd files back to back (cpio archives concatenate),
  // as high as both RAM and initrd_addr_max allow.
  uint64_t initrdAddr = 0, initrdSize = 0;
  if (!o.modules.empty()) {
    std::vector<uint8_t> initrd;
    for (const std::string& path : o.modules) {
      auto bytes = readFileBytes(path, ramEnd - std::min(ramEnd, kernelEnd + initrd.size()),
                                 "of guest RAM left above the kernel");
      if (!bytes) return makeError("--initrd: " + bytes.error().message);
      initrd.insert(initrd.end(), bytes->begin(), bytes->end());
      while (initrd.size() % 4 != 0) initrd.push_back(0);
    }
    initrdSize = initrd.size();
    uint64_t limit = ramEnd;
    if (!(h.xloadflags & kXlfCanBeLoadedAbove4G) || limit > 0xFFFFFFFF)
      limit = std::min<uint64_t>(limit, uint64_t{h.initrdAddrMax} + 1);
    if (initrdSize > limit || ((limit - initrdSize) & ~uint64_t{0xFFF}) < kernelEnd) {
      std::string names;
      for (const std::string& p : o.modules) names += (names.empty() ? "" : ",") + p;
      return makeError("--initrd " + names + ": " + std::to_string(initrdSize) +
                       " bytes do not fit between the kernel's end " + hex(kernelEnd) + " and " +
                       hex(limit) + " (the lower of RAM's end and initrd_addr_max " +
                       hex(h.initrdAddrMax) + " at byte 0x22c of " + o.name +
                       "); try a larger --ram");
    }
    initrdAddr = (limit - initrdSize) & ~uint64_t{0xFFF};
    std::memcpy(ram.data() + initrdAddr, initrd.data(), initrd.size());
    GuestImage img;
    img.name = o.modules.size() == 1 ? o.modules[0].substr(o.modules[0].rfind('/') + 1)
                                     : std::string("initrd");
    img.format = ImageFormat::kFlat;
    img.loadAddress = initrdAddr;
    img.bytes = std::move(initrd);
    g.images.push_back(std::move(img));
  }

  // boot_params: zero, the file's setup header at 0x1f1, then what the boot
  // loader fills in.
  std::span<uint8_t> zp = ram.subspan(kBootParamsAt, bp::kSize);
  std::fill(zp.begin(), zp.end(), 0);
  std::memcpy(zp.data() + hdr::kSetupSects, f.data() + hdr::kSetupSects,
              h.headerEnd - hdr::kSetupSects);
  set(zp, hdr::kVidMode, 0xFFFF, 2);  // "normal"
  set(zp, hdr::kTypeOfLoader, kTypeOfLoaderUndefined, 1);
  set(zp, hdr::kLoadflags, h.loadflags, 1);
  set(zp, hdr::kCode32Start, load, 4);
  set(zp, hdr::kCmdLinePtr, kCmdlineAt, 4);
  set(zp, hdr::kRamdiskImage, initrdAddr, 4);
  set(zp, hdr::kRamdiskSize, initrdSize, 4);
  set(zp, bp::kExtRamdiskImage, initrdAddr >> 32, 4);
  set(zp, bp::kExtRamdiskSize, initrdSize >> 32, 4);
  set(zp, bp::kExtCmdLinePtr, 0, 4);
  if (h.version >= 0x20E) set(zp, bp::kAcpiRsdpAddr, firmware::kRsdpAddress, 8);
  const auto map = firmware::e820Map(ramEnd);
  TTVM_ASSERT(map.size() <= bp::kE820Max, "e820 map of ", map.size(), " entries");
  set(zp, bp::kE820Entries, map.size(), 1);
  for (size_t i = 0; i < map.size(); ++i) {
    set(zp, bp::kE820Table + 20 * i, map[i].address, 8);
    set(zp, bp::kE820Table + 20 * i + 8, map[i].length, 8);
    set(zp, bp::kE820Table + 20 * i + 16, map[i].type, 4);
  }

  // The boot GDT: __BOOT_CS and __BOOT_DS, 4 GiB flat (64-bit code for the
  // 64-bit entry, 32-bit code for the 32-bit one).
  const uint64_t code = entry64 ? 0x00AF9B000000FFFFull : 0x00CF9B000000FFFFull;
  set(ram, kGdtAt, 0, 8);
  set(ram, kGdtAt + 8, 0, 8);
  set(ram, kGdtAt + kBootCs, code, 8);
  set(ram, kGdtAt + kBootDs, 0x00CF93000000FFFFull, 8);

  CpuState s;
  if (entry64) {
    // Identity map of the first 4 GiB: covers the kernel's init_size, the
    // zero page, the command line and the initrd (RAM ends below 3 GiB).
    TTVM_TRY(buildIdentityMap(ram, kPageTablesAt));
    s = longModeState(load + 0x200, kPageTablesAt, kBootParamsAt);  // the stack is unused
    s.segment(SegReg::kCs) = {kBootCs, 0, 0xFFFFFFFF, 0xA09B};
    g.description = "Linux bzImage, boot protocol " + protocolName(h.version) + ", loaded at " +
                    hex(load) + ", 64-bit entry " + hex(load + 0x200);
  } else {
    s = protectedModeState(static_cast<uint32_t>(load));
    s.segment(SegReg::kCs) = {kBootCs, 0, 0xFFFFFFFF, 0xC09B};
    s.reg(Gpr::kRsp) = 0;
    g.description = "Linux bzImage, boot protocol " + protocolName(h.version) + ", loaded at " +
                    hex(load) + ", 32-bit entry";
  }
  s.gdtr = {kGdtAt, 4 * 8 - 1};
  for (SegReg r : {SegReg::kDs, SegReg::kEs, SegReg::kSs, SegReg::kFs, SegReg::kGs})
    s.segment(r) = {kBootDs, 0, 0xFFFFFFFF, 0xC093};
  s.reg(Gpr::kRsi) = kBootParamsAt;
  s.rflags = flags::kFixed1;  // interrupts off
  g.cpu = s;
  if (initrdSize != 0)
    g.description += ", initrd " + std::to_string(initrdSize) + " bytes at " + hex(initrdAddr);
  return g;
}

}  // namespace ttvm::machine
