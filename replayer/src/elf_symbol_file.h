// Reading symbols and line tables from an ELF file with elfutils (libelf,
// libdw). The only place in ttvm that includes their headers.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ttvm/base/result.h"
#include "ttvm/formats/trace_types.h"
#include "ttvm/replayer/guest_symbols.h"

typedef struct Elf Elf;
typedef struct Dwarf Dwarf;

namespace ttvm {

// One ELF file's DWARF line tables. Owns the file (descriptor or bytes) and
// the libelf/libdw handles; find() is safe from several threads (libdw
// parses lazily, so lookups are serialized).
// A frame's registers as DWARF sees them: which are known (bit n = DWARF
// register n; callers lose the call-clobbered ones), and the PC to look
// scopes up at (RIP in frame 0, the return address - 1 in callers).
struct DwarfRegisters {
  CpuState cpu;
  uint32_t valid = 0x1FFFF;  // rax..r15 and rip
  uint64_t scopePc = 0;
};

class DwarfLines {
 public:
  ~DwarfLines();
  DwarfLines(const DwarfLines&) = delete;
  DwarfLines& operator=(const DwarfLines&) = delete;

  std::optional<SourceLine> find(uint64_t address) const;
  // The addresses of the statements (is_stmt rows) of `line` in `file`,
  // with `line` moved to the next line that has one when it has none (as gdb
  // places a breakpoint). `file` matches a table's file by its last path
  // components: the table's files that share the most trailing components
  // with it (at least the name) win, so another checkout's path works.
  std::vector<uint64_t> addressesOf(const std::string& file, unsigned& line) const;
  // The canonical frame address of the frame of `regs` (at regs.scopePc)
  // through this file's CFI; nullopt when it has no rule there.
  std::optional<uint64_t> cfa(const DwarfRegisters& regs) const;
  // GuestSymbols::variablesAt for this file: false when no function of its
  // DWARF covers the position (`symbols` names the pointers' targets).
  // A frame base of DW_OP_call_frame_cfa comes from `cfa`: any file's CFI
  // (libdw reads the .debug_frame of a 64-bit program's ELF32 container,
  // such as a multiboot image, with 4-byte addresses, and finds no rule).
  using CfaSource = std::function<std::optional<uint64_t>(const DwarfRegisters&)>;
  bool variables(const DwarfRegisters& regs, const GuestMemoryReader& read,
                 const GuestSymbols& symbols, const CfaSource& cfa,
                 std::vector<GuestVariable>& out) const;
  // One frame up through this file's CFI (.debug_frame, else .eh_frame):
  // false when it has no rule for regs.scopePc or no return address.
  bool unwind(DwarfRegisters& regs, const GuestMemoryReader& read) const;

 private:
  friend struct ElfSymbolFile;
  DwarfLines() = default;
  // The address ranges of each compilation unit, built on the first find().
  struct Range {
    uint64_t begin = 0, end = 0;  // [begin, end)
    uint64_t cuOffset = 0;        // the CU DIE's offset in .debug_info
  };
  void index() const;

  int fd_ = -1;                 // the file, when opened from a path
  std::vector<uint8_t> bytes_;  // the file, when read from memory
  Elf* elf_ = nullptr;
  Dwarf* dwarf_ = nullptr;
  mutable std::mutex mu_;
  mutable bool indexed_ = false;
  mutable std::vector<Range> ranges_;  // sorted by begin
};

// What an ELF file gives the symbol layer.
struct ElfSymbolFile {
  std::vector<Symbol> symbols;        // .symtab (else .dynsym), defined symbols only
  std::shared_ptr<DwarfLines> lines;  // null without DWARF line tables

  // `name` is used in messages. An error names the file and what is wrong.
  static Result<ElfSymbolFile> open(const std::string& path);
  static Result<ElfSymbolFile> read(const std::string& name, std::span<const uint8_t> bytes);

 private:
  static Result<ElfSymbolFile> load(const std::string& name, std::unique_ptr<DwarfLines> owner);
};

}  // namespace ttvm
