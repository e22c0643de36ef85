// Reading symbols and line tables from an ELF file with elfutils (libelf,
// libdw). The only place in ttvm that includes their headers.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
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

// A frame's registers as DWARF sees them: which are known (bit n = DWARF
// register n; callers lose the call-clobbered ones), and the PC to look
// scopes up at (RIP in frame 0, the return address - 1 in callers).
struct DwarfRegisters {
  CpuState cpu;
  uint32_t valid = 0x1FFFF;  // rax..r15 and rip
  uint64_t scopePc = 0;
};

// One ELF file's DWARF line tables. Owns the file (descriptor or bytes) and
// the libelf/libdw handles; its lookups are safe from several threads (libdw
// parses lazily, so they are serialized by one lock for all files, which a
// lookup may hold while it asks another file).
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
  // What a file asks of all the loaded files while it evaluates a frame's
  // variables (GuestSymbols fills it in).
  struct Frames {
    // The CFA of the frame of `regs` from any file's CFI (libdw reads the
    // .debug_frame of a 64-bit program's ELF32 container, such as a
    // multiboot image, with 4-byte addresses, and finds no rule).
    std::function<std::optional<uint64_t>(const DwarfRegisters&)> cfa;
    // The value DWARF register `reg` had on entry to the function of the
    // frame of `regs` (DW_OP_entry_value): unwound to the caller, the
    // DW_AT_call_value of its call site's parameter in that register.
    std::function<std::optional<uint64_t>(const DwarfRegisters&, unsigned reg)> entryValue;
  };
  // GuestSymbols::variablesAt for this file: false when no function of its
  // DWARF covers the position (`symbols` names the pointers' targets).
  // `inlineDepth` picks the function among those inlined at regs.scopePc
  // (0: the innermost; see functionsAt).
  bool variables(const DwarfRegisters& regs, unsigned inlineDepth, const GuestMemoryReader& read,
                 const GuestSymbols& symbols, const Frames& frames,
                 std::vector<GuestVariable>& out) const;
  // The value of the parameter passed in DWARF register `reg` by the call
  // that returns to `caller` (its registers, unwound): the call site's
  // DW_AT_call_value evaluated in the caller's frame; nullopt when this file
  // has no such call site or the value needs what is unknown there.
  std::optional<uint64_t> callSiteValue(const DwarfRegisters& caller, unsigned reg,
                                        const Frames& frames) const;
  // The functions at `pc`, innermost first: all but the last were inlined
  // into the next (DW_TAG_inlined_subroutine). Each but the first has the
  // line of the inlined call in it; the first has none (GuestSymbols fills
  // in the line of `pc`). Empty when no function of this file covers pc.
  std::vector<GuestFunction> functionsAt(uint64_t pc) const;
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
  // The offset of the CU DIE whose ranges cover `pc` (index() first).
  std::optional<uint64_t> cuAt(uint64_t pc) const;

  int fd_ = -1;                 // the file, when opened from a path
  std::vector<uint8_t> bytes_;  // the file, when read from memory
  Elf* elf_ = nullptr;
  Dwarf* dwarf_ = nullptr;
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
