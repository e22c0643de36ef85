// GuestSymbols: the replayer's one symbol layer — names, sizes and, where
// DWARF is present, source lines for guest virtual addresses (both ways) and
// the variables in scope at a position. Replay output,
// backtraces (backtrace.h), the gdb stub's monitor commands and the GUI all
// ask it; a DAP server and source views are meant to ask it too.
//
// Sources, merged into one address-sorted table:
//  - the trace header's guest images: their ELF symbol tables (the recorder
//    keeps them), and the DWARF line tables of an image that carries them
//    (the trace holds the image's bytes). This is the default;
//  - symbol files added with addFile() (`--symbols`, repeatable): a
//    System.map (`nm -n` output, the kernel's format, also /proc/kallsyms)
//    or an ELF file (a vmlinux, with or without DWARF).
// System.map has no sizes: a symbol's size is inferred as the distance to
// the next higher address in the same file.
//
// A value type: copies share the (immutable) DWARF readers, whose lookups
// lock internally, so a GUI may copy the table to another thread. ELF and
// DWARF reading is elfutils' libelf/libdw, behind this header
// (docs/dependencies.md).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ttvm/base/result.h"
#include "ttvm/emulator/cpu_state.h"
#include "ttvm/emulator/disassembler.h"
#include "ttvm/formats/trace_types.h"

namespace ttvm {

// A line of source: the file as the compiler named it, 1-based line.
struct SourceLine {
  std::string file;
  unsigned line = 0;
  bool operator==(const SourceLine&) const = default;
};

class DwarfLines;  // one ELF file's line tables (src/elf_symbol_file.h)

// A char array's bytes as gdb prints the array (print elements 200,
// repeats threshold 10, null-stop off): one trailing NUL dropped, runs of
// more than 10 equal characters as 'c' <repeats N times>, the rest in
// quotes with C escapes and 3-digit octal for other bytes.
std::string formatCharArray(std::span<const uint8_t> bytes);

// A parameter or local variable of the function at a position, with its
// value there (GuestSymbols::variablesAt).
struct GuestVariable {
  std::string name;
  std::string type;   // as C spells it: "const char *", "size_t"
  std::string value;  // as gdb prints it: "14", "0x10cf98 \"id-0034:lookup\"",
                      // "<optimized out>"; aggregates "{...}"
  bool parameter = false;
  std::optional<uint64_t> address;  // where it lives, when in memory
};
// A function at a position (GuestSymbols::functionsAt), from DWARF.
struct GuestFunction {
  std::string name;
  // Where the position is in it: the line of the address for the innermost
  // function, the line of the inlined call for the functions it was inlined
  // into.
  std::optional<SourceLine> line;
  // An inlined call that the address begins (address - 1 is outside it):
  // gdb, stopping there, shows the caller at the call's line first.
  bool starts = false;
};
// Reads guest-linear memory at the position; false when a byte is unmapped.
using GuestMemoryReader = std::function<bool(uint64_t address, std::span<uint8_t> out)>;

// The symbols of one System.map, sorted by address, sizes inferred. Lines
// are "ADDRESS TYPE NAME" with an optional fourth "[module]" column
// (/proc/kallsyms); U (undefined) and blank lines are skipped. Types T/t/W/w
// (and i) are functions; D/d/B/b/R/r/G/g/S/s/V/v objects; others (A, N, ...)
// neither. An error names the file and the line.
Result<std::vector<Symbol>> parseSystemMap(std::string_view text, const std::string& fileName);

class GuestSymbols {
 public:
  GuestSymbols() = default;
  explicit GuestSymbols(const TraceHeader& header);

  // Adds the symbols of `path`: an ELF file (by its magic) or a System.map.
  // An error names the file and what is wrong with it (line, offset).
  Status addFile(const std::string& path);
  // Adds symbols from elsewhere (`name` names their source in sources()).
  void addSymbols(std::vector<Symbol> symbols, const std::string& name);

  // The symbol containing `address`: a sized symbol that covers it, else the
  // nearest unsized one below it within 64 KiB. Among symbols starting at the
  // same address a function wins, then the source added last (a --symbols
  // file over the trace's image). nullptr when none.
  const Symbol* lookup(uint64_t address) const;
  // "name+0x12" (lookup()); nullopt when none.
  std::optional<std::string> describe(uint64_t address) const;
  // The address of the symbol called `name` (a function first).
  std::optional<uint64_t> find(const std::string& name) const;
  // The source line of the instruction at `address`, from the first source
  // with DWARF line tables that covers it: of the rows at the greatest
  // address <= `address`, the last that begins a statement (else the last),
  // as gdb chooses.
  std::optional<SourceLine> sourceLine(uint64_t address) const;
  // Where a breakpoint on `line` of `file` goes: the lowest statement address
  // of that line in each function (a line may be inlined or split), from the
  // first source whose line tables know the file; `line` moves to the next
  // line with code when it has none. `file` is matched by its trailing path
  // components (an editor's path in another checkout works). Empty: no code.
  std::vector<uint64_t> lineAddresses(const std::string& file, unsigned& line) const;
  // The functions at `address`, innermost first, from DWARF: where calls
  // were inlined there (DW_TAG_inlined_subroutine), the inlined functions
  // and then the one they were inlined into, as gdb shows them as frames of
  // their own. Empty when no DWARF covers it.
  std::vector<GuestFunction> functionsAt(uint64_t address) const;
  // The parameters, then the locals, in scope at `cpu`'s RIP in one
  // function there (`inlineDepth` picks it among functionsAt()'s: 0, the
  // innermost), from DWARF, with their values in `cpu`'s registers and
  // `read`'s memory: location lists and expressions of registers, register
  // + offset, the frame base (the CFA from the CFI), addresses, constants,
  // and entry values (DW_OP_entry_value: the caller's call-site parameter
  // evaluated in the caller's frame, as gdb finds them). A variable whose
  // location needs more (pieces, implicit pointers) is "<optimized out>".
  // `frame` > 0: the caller that many frames up, its registers unwound
  // through the CFI; as gdb, a register the CFI has no rule for keeps its
  // value (the compiler's location lists say what lives across a call:
  // callee-saved registers, and call-clobbered ones that IPA register
  // allocation knows the callee keeps). Empty when the CFI cannot unwind.
  std::vector<GuestVariable> variablesAt(const CpuState& cpu, const GuestMemoryReader& read,
                                         unsigned frame = 0, unsigned inlineDepth = 0) const;

  bool empty() const { return symbols_.empty(); }
  size_t size() const { return symbols_.size(); }
  // "demo.elf (312 symbols, DWARF lines)", one per source, in load order.
  const std::vector<std::string>& sources() const { return sources_; }

 private:
  void merge(std::vector<Symbol> symbols);

  std::vector<Symbol> symbols_;   // sorted by address, zero-address and unnamed dropped
  std::vector<uint32_t> byName_;  // indexes into symbols_, sorted by name
  std::vector<std::shared_ptr<const DwarfLines>> lines_;
  std::vector<std::string> sources_;
};

}  // namespace ttvm
