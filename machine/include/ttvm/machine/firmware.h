// What the PC firmware leaves in guest RAM before a kernel runs, written by
// the machine at creation (ttvm runs no BIOS code):
//
//   0x00000-0x003FF  real-mode IVT: every vector points at an IRET stub in
//                    the BIOS segment; IRQ 0-15 (vectors 0x08-0x0F, 0x70-0x77)
//                    point at stubs that send the 8259 their EOI, and IRQ 0's
//                    stub counts ticks at 0x46C as a BIOS does.
//   0x00400-0x004FF  BIOS data area: COM1 base, equipment word, base memory
//                    size (639 KiB), EBDA segment, tick count.
//   0x9FC00-0x9FFFF  EBDA (reserved in the E820 map).
//   0xE0000-0xEFFFF  ACPI tables: RSDT, XSDT, FADT, FACS, DSDT (\_S5 soft-off
//                    as SLP_TYP 5, and QEMU's pvpanic device QEMU0001 at port
//                    0x505), MADT (one
//                    CPU, LAPIC 0xFEE00000, I/O APIC 0xFEC00000, ISA IRQ 0 ->
//                    GSI 2, SCI IRQ 9 level, LINT1 NMI).
//   0xF0000          RSDP (revision 2), found by scanning 0xE0000-0xFFFFF.
//   0xF0040          Intel MP 1.4 floating pointer, found by the same scan;
//                    its configuration table at 0xF0200 (one CPU, ISA bus,
//                    I/O APIC, the MADT's interrupt routing).
//   0xF0100          the GDT that loaders point GDTR at (selectors below).
//   0xFF000-0xFFFFF  stubs; F000:FF53 IRET, F000:FEA5 IRQ 0, F000:FFF0 reset
//                    vector (CLI; HLT).
//
// The region 0xC0000-0xFFFFF is RAM holding firmware (reserved in E820);
// 0xA0000-0xBFFFF (VGA) is not RAM and goes to the MMIO bus.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ttvm/emulator/cpu_model.h"

namespace ttvm::machine::firmware {

inline constexpr uint64_t kVgaHoleBegin = 0xA0000;
inline constexpr uint64_t kVgaHoleEnd = 0xC0000;
inline constexpr uint64_t kEbdaBase = 0x9FC00;
inline constexpr uint64_t kAcpiBase = 0xE0000;
inline constexpr uint64_t kRsdpAddress = 0xF0000;
inline constexpr uint64_t kMpFloatingPointer = 0xF0040;
inline constexpr uint64_t kGdtAddress = 0xF0100;
inline constexpr uint64_t kMpConfigTable = 0xF0200, kMpConfigTableEnd = 0xF0400;
inline constexpr uint16_t kGdtLimit = 6 * 8 - 1;
// Selectors of the loader GDT.
inline constexpr uint16_t kCode32Selector = 0x08;
inline constexpr uint16_t kData32Selector = 0x10;
inline constexpr uint16_t kCode64Selector = 0x18;
inline constexpr uint16_t kCode16Selector = 0x20;
inline constexpr uint16_t kData16Selector = 0x28;
inline constexpr uint64_t kIretStub = 0xFFF53;

// The lowest address above 1 MiB that MMIO claims: RAM must end below it.
inline constexpr uint64_t kMaxRamBytes = 0xC0000000;  // 3 GiB

// SLP_TYP of \_S5 in the DSDT (the OS writes it with SLP_EN to PM1a control).
inline constexpr uint8_t kSleepTypeSoftOff = 5;
inline constexpr uint16_t kPvPanicPort = 0x505;

struct E820Entry {
  uint64_t address;
  uint64_t length;
  uint32_t type;  // 1 usable, 2 reserved, 3 ACPI reclaimable
};

std::vector<E820Entry> e820Map(uint64_t ramBytes);
// The DSDT's definition block (the AML after the 36-byte table header).
std::vector<uint8_t> dsdtAml();
// The legacy fw_cfg E820 table / etc/e820 file encoding (packed {u64, u64, u32}).
std::vector<uint8_t> encodeE820(const std::vector<E820Entry>& map);

// Writes the IVT, BDA, stubs, GDT, ACPI and MP tables (the processor entry from `cpu`) into `ram`
// (its size is the RAM size).
void writeFirmware(std::span<uint8_t> ram, const CpuModel& cpu);

}  // namespace ttvm::machine::firmware
