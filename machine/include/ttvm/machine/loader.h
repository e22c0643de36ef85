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
//  2b. a Linux bzImage ("HdrS" at 0x202, boot protocol 2.06 or later):
//     loaded by the Linux/x86 boot protocol (linux_loader.cc): boot_params
//     with the E820 map, the command line (--append) and the initrd (the
//     --initrd files back to back) within the header's limits, entered at
//     the 64-bit entry with an identity map, or the 32-bit entry;
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

namespace ttvm::machine {

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
  // --kernel: the file must be a kernel (bzImage, multiboot or ELF), not a
  // boot sector or flat binary; a bzImage error then names the header field.
  bool kernelOnly = false;
};

// The setup header of a bzImage, as the loader reads and checks it.
struct LinuxSetupHeader {
  uint16_t version = 0;          // 0x206: protocol version, major << 8 | minor
  uint32_t setupSects = 0;       // 0x1f1 (0 means 4)
  uint32_t syssize = 0;          // 0x1f4: protected-mode kernel size in 16-byte units
  uint8_t loadflags = 0;         // 0x211
  uint32_t initrdAddrMax = 0;    // 0x22c: highest byte address the initrd may use
  uint32_t kernelAlignment = 0;  // 0x230
  bool relocatable = false;      // 0x234
  uint16_t xloadflags = 0;       // 0x236 (2.09+)
  uint32_t cmdlineSize = 0;      // 0x238: longest command line, without its NUL
  uint64_t prefAddress = 0;      // 0x258 (2.10+)
  uint32_t initSize = 0;         // 0x260 (2.10+): bytes the kernel needs from its load address
  uint64_t headerEnd = 0;        // 0x202 + the byte at 0x201: end of the header in the file
  uint64_t kernelOffset = 0;     // file offset of the protected-mode kernel
  uint64_t kernelBytes = 0;      // its length in the file
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
// Whether `file` carries a Linux boot-protocol header (0xaa55 at 0x1fe, "HdrS" at 0x202).
bool isLinuxBzImage(std::span<const uint8_t> file);
// Reads and checks the setup header; errors name `name`, the byte offset and the field.
Result<LinuxSetupHeader> parseLinuxSetupHeader(std::span<const uint8_t> file,
                                               const std::string& name);
// Loads a bzImage (LoadOptions: append = command line, modules = initrd files).
Result<LoadedGuest> loadLinux(Machine& machine, std::span<const uint8_t> file,
                              const LoadOptions& options);

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

}  // namespace ttvm::machine
