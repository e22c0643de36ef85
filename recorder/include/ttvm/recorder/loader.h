// Guest loaders: put a guest file into a Machine's RAM and give the CPU state
// it starts in, as QEMU's -kernel would.
//
// Detection (loadGuest), in this order:
//  1. an explicit --load-addr: a flat binary at that address, entered at
//     --entry (default: the load address) in --mode real|prot|long;
//  2. a multiboot (v1) header in the first 8 KiB: a multiboot kernel, loaded
//     from its ELF program headers, or from the header's address fields when
//     flag 16 (the a.out kludge) is set, and entered as QEMU's multiboot
//     loader enters it: 32-bit flat protected mode, paging off, interrupts
//     off, EAX = 0x2BADB002, EBX = the multiboot information (mem_lower/upper,
//     boot device, cmdline "<guest> <append>", modules from --initrd, an
//     E820-style memory map, boot loader name);
//  3. an ELF32 file: loaded by its program headers (physical addresses),
//     entered in 32-bit flat protected mode;
//  4. an ELF64 file: loaded likewise, entered in long mode with the first
//     4 GiB identity-mapped (2 MiB pages built in RAM) and a 64-bit GDT;
//  5. a 512-byte-or-larger file ending its first sector with 55 AA: a boot
//     sector, loaded at 0x7C00 and entered in real mode with DL = 0x80
//     (loadBootDisk does the same from the first disk, see below).
// Anything else is an error that says which options would load it.
//
// ELF symbol tables (.symtab) become GuestImage::symbols, so replays can name
// functions. Every error names the file and the offending offset or address.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ttvm/base/result.h"
#include "ttvm/emulator/cpu_state.h"
#include "ttvm/formats/trace_types.h"

namespace ttvm {

class Machine;

enum class GuestMode : uint8_t { kReal, kProtected, kLong };

struct LoadOptions {
  std::string name;    // the guest's name as given (multiboot cmdline's first word)
  std::string append;  // --append: kernel command line
  // --initrd: multiboot modules, each "FILE[ ARGS]" (comma-separated on the CLI).
  std::vector<std::string> modules;
  std::optional<uint64_t> loadAddress;
  std::optional<uint64_t> entry;
  std::optional<GuestMode> mode;
};

struct LoadedGuest {
  std::vector<GuestImage> images;  // the guest first, then its modules
  CpuState cpu;                    // the state the guest starts in
  std::string description;         // one line for -v, e.g. "multiboot ELF, entry 0x100000"
};

// The bytes of the regular file `path`, refused without reading when it is
// anything else (a directory, a device such as /dev/zero, a FIFO) or larger
// than `maxBytes` (the guest's RAM: nothing bigger can be loaded), which
// `limit` names for the message ("of guest RAM (--ram)"). Every error names
// the file.
Result<std::vector<uint8_t>> readFileBytes(const std::string& path, uint64_t maxBytes,
                                           std::string_view limit);

// Loads `file` into `machine`'s RAM (reading module files from disk).
Result<LoadedGuest> loadGuest(Machine& machine, std::span<const uint8_t> file,
                              const LoadOptions& options);

// Boots the machine's first disk in IDE order the way a PC BIOS hands over:
// its sector 0 (which must end with 55 AA) loaded at 0x7C00, entered in real
// mode at 0000:7C00 with DL = 0x80. The trace's image is that one sector; the
// rest of the disk reaches the trace only as the guest reads it.
Result<LoadedGuest> loadBootDisk(Machine& machine);

// The symbols of an ELF file (empty when it has no .symtab), sorted by address.
Result<std::vector<Symbol>> elfSymbols(std::span<const uint8_t> file);

// The CPU states loaders start guests in (for tests and other loaders).
CpuState realModeState(uint16_t cs, uint16_t ip);
CpuState protectedModeState(uint32_t eip);
// `pml4` is the physical address of page tables built by buildIdentityMap.
CpuState longModeState(uint64_t rip, uint64_t pml4, uint64_t rsp);
// Builds 4-level page tables identity-mapping [0, 4 GiB) with 2 MiB pages
// in 6 pages of RAM at `at` (4 KiB aligned).
Status buildIdentityMap(std::span<uint8_t> ram, uint64_t at);

}  // namespace ttvm
