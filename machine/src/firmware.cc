#include "ttvm/machine/firmware.h"

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>

#include "ttvm/base/assert.h"

namespace ttvm::machine::firmware {
namespace {

class Writer {
 public:
  Writer(std::span<uint8_t> ram, uint64_t at) : ram_(ram), at_(at) {}
  void u8(uint64_t off, uint8_t v) { ram_[at_ + off] = v; }
  void u16(uint64_t off, uint16_t v) { put(off, v, 2); }
  void u32(uint64_t off, uint32_t v) { put(off, v, 4); }
  void u64(uint64_t off, uint64_t v) { put(off, v, 8); }
  void str(uint64_t off, std::string_view s) { std::memcpy(&ram_[at_ + off], s.data(), s.size()); }
  void bytes(uint64_t off, std::initializer_list<uint8_t> b) {
    for (uint8_t x : b) ram_[at_ + off++] = x;
  }
  // Sets the byte at `off` so that bytes [0, len) sum to zero.
  void checksum(uint64_t off, uint64_t len) {
    ram_[at_ + off] = 0;
    uint8_t sum = 0;
    for (uint64_t i = 0; i < len; ++i) sum = static_cast<uint8_t>(sum + ram_[at_ + i]);
    ram_[at_ + off] = static_cast<uint8_t>(-sum);
  }

 private:
  void put(uint64_t off, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) ram_[at_ + off + i] = static_cast<uint8_t>(v >> (8 * i));
  }
  std::span<uint8_t> ram_;
  uint64_t at_;
};

// The 36-byte ACPI table header; the checksum is set by finishTable.
void tableHeader(Writer& w, std::string_view sig, uint32_t length, uint8_t revision) {
  w.str(0, sig);
  w.u32(4, length);
  w.u8(8, revision);
  w.str(10, "TTVM  ");
  w.str(16, "TTVMPC  ");
  w.u32(24, 1);
  w.str(28, "TTVM");
  w.u32(32, 1);
}

void genericAddress(Writer& w, uint64_t off, uint8_t space, uint8_t bits, uint8_t access,
                    uint64_t address) {
  w.u8(off, space);
  w.u8(off + 1, bits);
  w.u8(off + 2, 0);
  w.u8(off + 3, access);
  w.u64(off + 4, address);
}

// AML (ACPI spec chapter 20), assembled by hand: the few opcodes the DSDT uses.
namespace aml {
using Bytes = std::vector<uint8_t>;
constexpr uint8_t kNameOp = 0x08, kBytePrefix = 0x0A, kStringPrefix = 0x0D, kScopeOp = 0x10,
                  kBufferOp = 0x11, kPackageOp = 0x12, kExtOpPrefix = 0x5B, kDeviceOp = 0x82,
                  kRootChar = 0x5C;

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
Bytes seg(std::string_view name4) {
  TTVM_ASSERT(name4.size() == 4, "AML NameSeg '", std::string(name4), "'");
  return Bytes(name4.begin(), name4.end());
}
// PkgLength (20.2.4) followed by `body`: the length counts its own bytes.
Bytes package(Bytes opcode, const Bytes& body) {
  size_t n = body.size() + 1;
  Bytes len;
  if (n <= 0x3F) {
    len = {static_cast<uint8_t>(n)};
  } else {
    n = body.size() + 2;
    if (n > 0xFFF) n = body.size() + 3;
    const unsigned follow = n > 0xFFF ? 2 : 1;
    TTVM_ASSERT(n <= 0xFFFFF, "AML package of ", n, " bytes");
    len = {static_cast<uint8_t>((follow << 6) | (n & 0xF)), static_cast<uint8_t>(n >> 4)};
    if (follow == 2) len.push_back(static_cast<uint8_t>(n >> 12));
  }
  return cat({opcode, len, body});
}
Bytes name(std::string_view name4, const Bytes& value) {
  return cat({{kNameOp}, seg(name4), value});
}
Bytes byteConst(uint8_t v) {
  return v == 0 ? Bytes{0x00} : v == 1 ? Bytes{0x01} : Bytes{kBytePrefix, v};  // Zero, One
}
Bytes string(std::string_view s) {
  Bytes out(s.size() + 2, 0);  // StringPrefix, the characters, NUL
  out[0] = kStringPrefix;
  std::copy(s.begin(), s.end(), out.begin() + 1);
  return out;
}
Bytes buffer(const Bytes& bytes) {
  TTVM_ASSERT(bytes.size() < 0x100, "AML buffer of ", bytes.size(), " bytes");
  return package({kBufferOp}, cat({byteConst(static_cast<uint8_t>(bytes.size())), bytes}));
}
// A resource template with one fixed 16-bit-decoded I/O range (6.4.2.5) and the end tag.
Bytes ioResource(uint16_t port, uint8_t length) {
  const auto lo = static_cast<uint8_t>(port), hi = static_cast<uint8_t>(port >> 8);
  return buffer({0x47, 0x01, lo, hi, lo, hi, 0x01, length, 0x79, 0x00});
}
}  // namespace aml

constexpr uint64_t kRsdt = 0xE0000, kXsdt = 0xE0040, kFadt = 0xE0100, kFacs = 0xE0200,
                   kDsdt = 0xE0240, kMadt = 0xE0300;

void writeAcpi(std::span<uint8_t> ram) {
  // FADT (revision 3, 244 bytes).
  {
    Writer w(ram, kFadt);
    tableHeader(w, "FACP", 244, 3);
    w.u32(36, static_cast<uint32_t>(kFacs));
    w.u32(40, static_cast<uint32_t>(kDsdt));
    w.u16(46, 9);  // SCI interrupt
    // PIIX4-style PM block (devices/acpi_pm.h): PM1a event 0x600 (4 bytes),
    // PM1a control 0x604 (2), PM timer 0x608 (4, 24-bit).
    w.u32(56, 0x600);
    w.u32(64, 0x604);
    w.u32(76, 0x608);
    w.u8(88, 4);
    w.u8(89, 2);
    w.u8(91, 4);
    genericAddress(w, 148, 1, 32, 2, 0x600);  // X_PM1a_EVT_BLK
    genericAddress(w, 172, 1, 16, 2, 0x604);  // X_PM1a_CNT_BLK
    genericAddress(w, 208, 1, 32, 3, 0x608);  // X_PM_TMR_BLK
    w.u8(108, 0x32);                          // CMOS century register
    w.u16(109, 0x0003);                       // IAPC_BOOT_ARCH: legacy devices, 8042
    w.u32(112, (1u << 0) | (1u << 10));       // WBINVD, RESET_REG_SUP
    genericAddress(w, 116, 1, 8, 1, 0xCF9);   // reset register: I/O port 0xCF9
    w.u8(128, 0x06);
    w.u64(132, kFacs);
    w.u64(140, kDsdt);
    w.checksum(9, 244);
  }
  // FACS (no checksum).
  {
    Writer w(ram, kFacs);
    w.str(0, "FACS");
    w.u32(4, 64);
    w.u8(32, 2);  // version
  }
  // DSDT.
  {
    const std::vector<uint8_t> body = dsdtAml();
    const auto length = static_cast<uint32_t>(36 + body.size());
    TTVM_ASSERT(kDsdt + length <= kMadt, "DSDT of ", length, " bytes overlaps the MADT");
    Writer w(ram, kDsdt);
    tableHeader(w, "DSDT", length, 2);
    for (size_t i = 0; i < body.size(); ++i) w.u8(36 + i, body[i]);
    w.checksum(9, length);
  }
  // MADT.
  {
    Writer w(ram, kMadt);
    uint32_t off = 44;
    w.u32(36, 0xFEE00000);       // local APIC address
    w.u32(40, 1);                // PCAT_COMPAT: dual 8259s present
    w.bytes(off, {0, 8, 0, 0});  // processor local APIC: UID 0, APIC ID 0
    w.u32(off + 4, 1);           // enabled
    off += 8;
    w.bytes(off, {1, 12, 0, 0});  // I/O APIC ID 0
    w.u32(off + 4, 0xFEC00000);
    w.u32(off + 8, 0);  // GSI base
    off += 12;
    w.bytes(off, {2, 10, 0, 0});  // ISA IRQ 0 -> GSI 2, conforming
    w.u32(off + 4, 2);
    w.u16(off + 8, 0);
    off += 10;
    w.bytes(off, {2, 10, 0, 9});  // ISA IRQ 9 (SCI) -> GSI 9, active high, level
    w.u32(off + 4, 9);
    w.u16(off + 8, 0x000D);
    off += 10;
    w.bytes(off, {4, 6, 0xFF, 0, 0, 1});  // local APIC NMI on LINT1, all CPUs
    off += 6;
    tableHeader(w, "APIC", off, 1);
    w.checksum(9, off);
  }
  // RSDT and XSDT: FADT, MADT.
  {
    Writer w(ram, kRsdt);
    tableHeader(w, "RSDT", 36 + 8, 1);
    w.u32(36, static_cast<uint32_t>(kFadt));
    w.u32(40, static_cast<uint32_t>(kMadt));
    w.checksum(9, 44);
  }
  {
    Writer w(ram, kXsdt);
    tableHeader(w, "XSDT", 36 + 16, 1);
    w.u64(36, kFadt);
    w.u64(44, kMadt);
    w.checksum(9, 52);
  }
  // RSDP, revision 2.
  {
    Writer w(ram, kRsdpAddress);
    w.str(0, "RSD PTR ");
    w.str(9, "TTVM  ");
    w.u8(15, 2);
    w.u32(16, static_cast<uint32_t>(kRsdt));
    w.u32(20, 36);
    w.u64(24, kXsdt);
    w.checksum(8, 20);
    w.checksum(32, 36);
  }
}

// Intel MultiProcessor Specification 1.4 tables (chapter 4), the same machine
// as the MADT: one CPU (LAPIC ID 0, BSP), an ISA bus, the I/O APIC (ID 0) and
// ISA IRQ n -> INTIN n but IRQ 0 -> INTIN 2 and the 8259 (ExtINT) on INTIN 0,
// LINT0 ExtINT and LINT1 NMI.
void writeMpTables(std::span<uint8_t> ram, const CpuModel& cpu) {
  Writer t(ram, kMpConfigTable);
  uint32_t off = 44;
  uint16_t entries = 0;
  // Processor: LAPIC ID 0, version 0x14, enabled + bootstrap, CPUID(1) signature and EDX.
  const CpuidLeaf leaf1 = cpu.lookup(1, 0);
  t.bytes(off, {0, 0, 0x14, 0x03});
  t.u32(off + 4, leaf1.eax);
  t.u32(off + 8, leaf1.edx);
  off += 20, ++entries;
  t.bytes(off, {1, 0});  // bus 0: ISA
  t.str(off + 2, "ISA   ");
  off += 8, ++entries;
  t.bytes(off, {2, 0, 0x11, 0x01});  // I/O APIC 0, version 0x11, enabled
  t.u32(off + 4, 0xFEC00000);
  off += 8, ++entries;
  auto ioInterrupt = [&](uint8_t type, uint16_t flags, uint8_t irq, uint8_t intin) {
    t.bytes(off, {3, type});
    t.u16(off + 2, flags);
    t.bytes(off + 4, {0, irq, 0, intin});
    off += 8, ++entries;
  };
  ioInterrupt(3, 0, 0, 0);  // ExtINT from the 8259 on INTIN 0
  for (uint8_t irq = 0; irq < 16; ++irq) {
    if (irq == 2) continue;  // the cascade
    // SCI (IRQ 9): active high, level triggered, as the MADT's override.
    ioInterrupt(0, irq == 9 ? 0x000D : 0, irq, irq == 0 ? 2 : irq);
  }
  t.bytes(off, {4, 3, 0, 0, 0, 0, 0xFF, 0});  // ExtINT -> LINT0 of all CPUs
  off += 8, ++entries;
  t.bytes(off, {4, 1, 0, 0, 0, 0, 0xFF, 1});  // NMI -> LINT1 of all CPUs
  off += 8, ++entries;
  t.str(0, "PCMP");
  t.u16(4, static_cast<uint16_t>(off));
  t.u8(6, 4);  // specification revision 1.4
  t.str(8, "TTVM    ");
  t.str(16, "TTVMPC      ");
  t.u16(34, entries);
  t.u32(36, 0xFEE00000);
  t.checksum(7, off);
  TTVM_ASSERT(kMpConfigTable + off <= kMpConfigTableEnd, "MP table of ", off, " bytes");

  Writer f(ram, kMpFloatingPointer);
  f.str(0, "_MP_");
  f.u32(4, static_cast<uint32_t>(kMpConfigTable));
  f.u8(8, 1);  // length in 16-byte units
  f.u8(9, 4);  // revision 1.4
  // Feature bytes 0: a configuration table is present; IMCR absent (virtual wire).
  f.checksum(10, 16);
}

void writeRealModeBios(std::span<uint8_t> ram) {
  constexpr uint16_t kSeg = 0xF000;
  constexpr uint16_t kIrq0 = 0xFEA5, kMasterEoi = 0xF100, kSlaveEoi = 0xF110, kRtc = 0xF120;
  Writer bios(ram, 0xF0000);
  bios.u8(0xFF53, 0xCF);  // IRET
  // IRQ 0: count ticks at 0040:006C (with the midnight word at 0x46E), EOI.
  bios.bytes(kIrq0, {0x1E, 0x50, 0x31, 0xC0, 0x8E, 0xD8,  // push ds; push ax; xor ax,ax; mov ds,ax
                     0xFF, 0x06, 0x6C, 0x04,              // inc word [0x46C]
                     0x75, 0x04,                          // jnz +4
                     0xFF, 0x06, 0x6E, 0x04,              // inc word [0x46E]
                     0xB0, 0x20, 0xE6, 0x20,              // mov al,0x20; out 0x20,al
                     0x58, 0x1F, 0xCF});                  // pop ax; pop ds; iret
  bios.bytes(kMasterEoi, {0x50, 0xB0, 0x20, 0xE6, 0x20, 0x58, 0xCF});
  bios.bytes(kSlaveEoi, {0x50, 0xB0, 0x20, 0xE6, 0xA0, 0xE6, 0x20, 0x58, 0xCF});
  // IRQ 8 (RTC): read register C so the RTC drops its request, then EOI both.
  bios.bytes(kRtc, {0x50, 0xB0, 0x0C, 0xE6, 0x70, 0xE4, 0x71, 0xB0, 0x20, 0xE6, 0xA0, 0xE6, 0x20,
                    0x58, 0xCF});
  // Reset vector: CLI; HLT; JMP back to the HLT.
  bios.bytes(0xFFF0, {0xFA, 0xF4, 0xEB, 0xFD});
  bios.str(0xFFF5, "11/25/26");
  bios.u8(0xFFFE, 0xFC);  // model: AT

  Writer ivt(ram, 0);
  auto setVector = [&](int v, uint16_t offset) {
    ivt.u16(v * 4, offset);
    ivt.u16(v * 4 + 2, kSeg);
  };
  for (int v = 0; v < 256; ++v) setVector(v, 0xFF53);
  setVector(0x08, kIrq0);
  for (int v = 0x09; v <= 0x0F; ++v) setVector(v, kMasterEoi);
  for (int v = 0x70; v <= 0x77; ++v) setVector(v, kSlaveEoi);
  setVector(0x70, kRtc);

  Writer bda(ram, 0x400);
  bda.u16(0x00, 0x3F8);                                  // COM1
  bda.u16(0x0E, static_cast<uint16_t>(kEbdaBase >> 4));  // EBDA segment
  bda.u16(0x10, 0x0222);  // equipment: FPU, 80x25 colour, one serial port (bits 9-11)
  bda.u16(0x13, static_cast<uint16_t>(kEbdaBase / 1024));  // base memory in KiB (639)
  Writer ebda(ram, kEbdaBase);
  ebda.u8(0, 1);  // EBDA size in KiB
}

void writeGdt(std::span<uint8_t> ram) {
  Writer w(ram, kGdtAddress);
  w.u64(0x00, 0);
  w.u64(kCode32Selector, 0x00CF9B000000FFFFull);  // 32-bit code, flat
  w.u64(kData32Selector, 0x00CF93000000FFFFull);  // data, flat
  w.u64(kCode64Selector, 0x00AF9B000000FFFFull);  // 64-bit code
  w.u64(kCode16Selector, 0x00009B000000FFFFull);  // 16-bit code, 64 KiB
  w.u64(kData16Selector, 0x000093000000FFFFull);  // 16-bit data, 64 KiB
}

}  // namespace

std::vector<uint8_t> dsdtAml() {
  using namespace aml;
  // Scope (\_SB) { Device (PEVT) { Name (_HID, "QEMU0001")
  //   Name (_CRS, ResourceTemplate () { IO (Decode16, 0x505, 0x505, 1, 1) }) } }
  // QEMU's pvpanic ISA device: Linux's pvpanic-mmio driver binds to it and
  // writes "panicked" to the port, which ends the run as a panic.
  const Bytes pvpanic =
      package({kExtOpPrefix, kDeviceOp}, cat({seg("PEVT"), name("_HID", string("QEMU0001")),
                                              name("_CRS", ioResource(kPvPanicPort, 1))}));
  const Bytes sb = package({kScopeOp}, cat({{kRootChar}, seg("_SB_"), pvpanic}));
  // Name (\_S5, Package (4) { 5, 5, Zero, Zero }): SLP_TYPa/b for soft-off,
  // which the OS writes with SLP_EN to PM1a control (devices/acpi_pm.h).
  const Bytes s5 = cat({{kNameOp, kRootChar},
                        seg("_S5_"),
                        package({kPackageOp}, cat({{4},
                                                   byteConst(kSleepTypeSoftOff),
                                                   byteConst(kSleepTypeSoftOff),
                                                   byteConst(0),
                                                   byteConst(0)}))});
  return cat({sb, s5});
}

std::vector<E820Entry> e820Map(uint64_t ramBytes) {
  std::vector<E820Entry> map;
  map.push_back({0, kEbdaBase, 1});
  map.push_back({kEbdaBase, kVgaHoleBegin - kEbdaBase, 2});
  map.push_back({0xE0000, 0x20000, 2});  // ACPI tables and BIOS
  if (ramBytes > 0x100000) map.push_back({0x100000, ramBytes - 0x100000, 1});
  map.push_back({0xFEC00000, 0x1000, 2});   // I/O APIC
  map.push_back({0xFEE00000, 0x1000, 2});   // local APIC
  map.push_back({0xFFFC0000, 0x40000, 2});  // BIOS flash alias
  return map;
}

std::vector<uint8_t> encodeE820(const std::vector<E820Entry>& map) {
  std::vector<uint8_t> out;
  auto put = [&](uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  for (const E820Entry& e : map) {
    put(e.address, 8);
    put(e.length, 8);
    put(e.type, 4);
  }
  return out;
}

void writeFirmware(std::span<uint8_t> ram, const CpuModel& cpu) {
  TTVM_ASSERT(ram.size() >= 0x100000, "RAM below 1 MiB: ", ram.size());
  writeRealModeBios(ram);
  writeGdt(ram);
  writeAcpi(ram);
  writeMpTables(ram, cpu);
}

}  // namespace ttvm::machine::firmware
