#include "elf_symbol_file.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "ttvm/base/hex.h"

namespace ttvm {
namespace {

// libdw parses lazily and is not thread-safe: one lock serializes every
// lookup, of every file. Recursive: a lookup asks other files (and its own)
// for CFAs and entry values while it holds it.
std::recursive_mutex& libdwLock() {
  static std::recursive_mutex mu;
  return mu;
}

// libelf's one-time version handshake; every handle is made after it.
bool elfReady() {
  static const bool ok = elf_version(EV_CURRENT) != EV_NONE;
  return ok;
}

SymbolKind kindOf(unsigned type) {
  switch (type) {
    case STT_FUNC:
    case STT_GNU_IFUNC: return SymbolKind::kFunction;
    case STT_OBJECT:
    case STT_COMMON:
    case STT_TLS: return SymbolKind::kObject;
    default: return SymbolKind::kOther;
  }
}

// The defined symbols of the first section of type `type` (SHT_SYMTAB or
// SHT_DYNSYM); false when there is none.
bool readSymbolTable(Elf* elf, Elf64_Word type, std::vector<Symbol>& out) {
  for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr sh;
    if (gelf_getshdr(scn, &sh) == nullptr || sh.sh_type != type || sh.sh_entsize == 0) continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (data == nullptr) continue;
    const size_t n = sh.sh_size / sh.sh_entsize;
    for (size_t i = 0; i < n; ++i) {
      GElf_Sym sym;
      if (gelf_getsym(data, static_cast<int>(i), &sym) == nullptr) break;
      const unsigned t = GELF_ST_TYPE(sym.st_info);
      if (sym.st_shndx == SHN_UNDEF || t == STT_SECTION || t == STT_FILE) continue;
      const char* name = elf_strptr(elf, sh.sh_link, sym.st_name);
      if (name == nullptr || *name == '\0') continue;
      out.push_back(Symbol{name, sym.st_value, sym.st_size, kindOf(t)});
    }
    return true;
  }
  return false;
}

}  // namespace

DwarfLines::~DwarfLines() {
  if (dwarf_ != nullptr) dwarf_end(dwarf_);
  if (elf_ != nullptr) elf_end(elf_);
  if (fd_ >= 0) close(fd_);
}

void DwarfLines::index() const {
  indexed_ = true;
  Dwarf_Off off = 0, next = 0;
  size_t headerSize = 0;
  while (dwarf_nextcu(dwarf_, off, &next, &headerSize, nullptr, nullptr, nullptr) == 0) {
    Dwarf_Die cu;
    if (dwarf_offdie(dwarf_, off + headerSize, &cu) != nullptr) {
      Dwarf_Addr base = 0, begin = 0, end = 0;
      for (ptrdiff_t r = 0; (r = dwarf_ranges(&cu, r, &base, &begin, &end)) > 0;)
        if (end > begin) ranges_.push_back(Range{begin, end, off + headerSize});
    }
    off = next;
  }
  std::sort(ranges_.begin(), ranges_.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
}

std::optional<uint64_t> DwarfLines::cuAt(uint64_t pc) const {
  if (!indexed_) index();
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), pc,
                             [](uint64_t a, const Range& r) { return a < r.begin; });
  for (int tries = 0; it != ranges_.begin() && tries < 8; ++tries) {
    --it;
    if (pc < it->end) return it->cuOffset;
  }
  return std::nullopt;
}

std::optional<SourceLine> DwarfLines::find(uint64_t address) const {
  std::lock_guard lock(libdwLock());
  if (!indexed_) index();
  // CU ranges may nest or overlap (rarely); try each range covering the
  // address, nearest start first.
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), address,
                             [](uint64_t a, const Range& r) { return a < r.begin; });
  for (int tries = 0; it != ranges_.begin() && tries < 8; ++tries) {
    --it;
    if (address >= it->end) continue;
    Dwarf_Die cu;
    if (dwarf_offdie(dwarf_, it->cuOffset, &cu) == nullptr) continue;
    // The rows at the greatest address <= `address`; of those, the last
    // that begins a statement (gdb's choice: at 0x100f10 of the demo the
    // rows say 64, 65 (is_stmt), 66, and gdb says 65), else the last row.
    Dwarf_Lines* lines = nullptr;
    size_t count = 0;
    if (dwarf_getsrclines(&cu, &lines, &count) != 0 || count == 0) continue;
    auto addressOf = [lines](size_t i) {
      Dwarf_Addr a = 0;
      dwarf_lineaddr(dwarf_onesrcline(lines, i), &a);
      return a;
    };
    size_t lo = 0, hi = count;  // the first row above `address`
    while (lo < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      if (addressOf(mid) <= address)
        lo = mid + 1;
      else
        hi = mid;
    }
    if (lo == 0) continue;
    const Dwarf_Addr at = addressOf(lo - 1);
    Dwarf_Line* line = dwarf_onesrcline(lines, lo - 1);
    bool end = false;
    if (line == nullptr || dwarf_lineendsequence(line, &end) != 0 || end) continue;
    for (size_t i = lo; i-- > 0 && addressOf(i) == at;) {
      Dwarf_Line* row = dwarf_onesrcline(lines, i);
      bool stmt = false;
      if (dwarf_lineendsequence(row, &end) == 0 && !end &&
          dwarf_linebeginstatement(row, &stmt) == 0 && stmt) {
        line = row;
        break;
      }
    }
    int lineNo = 0;
    const char* file = dwarf_linesrc(line, nullptr, nullptr);
    if (file == nullptr || dwarf_lineno(line, &lineNo) != 0 || lineNo <= 0) continue;
    return SourceLine{file, static_cast<unsigned>(lineNo)};
  }
  return std::nullopt;
}

namespace {

// How many trailing path components `a` and `b` share ("x/demo/workload.c"
// and "/y/demo/workload.c": 2).
size_t sharedTrailingComponents(std::string_view a, std::string_view b) {
  size_t shared = 0;
  while (!a.empty() && !b.empty()) {
    const size_t sa = a.find_last_of('/');
    const size_t sb = b.find_last_of('/');
    const std::string_view ca = sa == std::string_view::npos ? a : a.substr(sa + 1);
    const std::string_view cb = sb == std::string_view::npos ? b : b.substr(sb + 1);
    if (ca != cb || ca.empty()) break;
    ++shared;
    a = sa == std::string_view::npos ? std::string_view() : a.substr(0, sa);
    b = sb == std::string_view::npos ? std::string_view() : b.substr(0, sb);
  }
  return shared;
}

}  // namespace

std::vector<uint64_t> DwarfLines::addressesOf(const std::string& file, unsigned& line) const {
  std::lock_guard lock(libdwLock());
  struct Row {
    unsigned line;
    uint64_t address;
  };
  std::vector<Row> rows;  // statements at or below `line` in the best-matching files
  size_t best = 1;
  Dwarf_Off off = 0, next = 0;
  size_t headerSize = 0;
  while (dwarf_nextcu(dwarf_, off, &next, &headerSize, nullptr, nullptr, nullptr) == 0) {
    Dwarf_Die cu;
    Dwarf_Lines* lines = nullptr;
    size_t n = 0;
    if (dwarf_offdie(dwarf_, off + headerSize, &cu) != nullptr &&
        dwarf_getsrclines(&cu, &lines, &n) == 0) {
      for (size_t i = 0; i < n; ++i) {
        Dwarf_Line* l = dwarf_onesrcline(lines, i);
        bool stmt = false;
        int lineNo = 0;
        Dwarf_Addr address = 0;
        const char* name = dwarf_linesrc(l, nullptr, nullptr);
        if (name == nullptr || dwarf_linebeginstatement(l, &stmt) != 0 || !stmt ||
            dwarf_lineno(l, &lineNo) != 0 || lineNo < static_cast<int>(line) ||
            dwarf_lineaddr(l, &address) != 0)
          continue;
        const size_t shared = sharedTrailingComponents(file, name);
        if (shared < best) continue;
        if (shared > best) rows.clear();
        best = shared;
        rows.push_back(Row{static_cast<unsigned>(lineNo), address});
      }
    }
    off = next;
  }
  if (rows.empty()) return {};
  unsigned nearest = rows[0].line;
  for (const Row& r : rows) nearest = std::min(nearest, r.line);
  line = nearest;
  std::vector<uint64_t> out;
  for (const Row& r : rows)
    if (r.line == nearest) out.push_back(r.address);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

namespace {

// DWARF's x86-64 register numbers (the psABI's) -> the CPU's; 16 is RIP
// (the return address column of the CFI).
constexpr Gpr kDwarfGpr[16] = {Gpr::kRax, Gpr::kRdx, Gpr::kRcx, Gpr::kRbx, Gpr::kRsi, Gpr::kRdi,
                               Gpr::kRbp, Gpr::kRsp, Gpr::kR8,  Gpr::kR9,  Gpr::kR10, Gpr::kR11,
                               Gpr::kR12, Gpr::kR13, Gpr::kR14, Gpr::kR15};

std::optional<uint64_t> dwarfRegister(const DwarfRegisters& regs, unsigned n) {
  if (n > 16 || !(regs.valid >> n & 1)) return std::nullopt;
  return n == 16 ? regs.cpu.rip : regs.cpu.reg(kDwarfGpr[n]);
}

void setDwarfRegister(DwarfRegisters& regs, unsigned n, uint64_t v) {
  if (n > 16) return;
  if (n == 16)
    regs.cpu.rip = v;
  else
    regs.cpu.reg(kDwarfGpr[n]) = v;
  regs.valid |= 1u << n;
}

// Where a location expression puts a value: in memory at an address, or the
// value itself (a register, DW_OP_stack_value).
struct Location {
  bool inMemory = true;
  uint64_t value = 0;  // the address, or the value
};

// The value of a DW_OP_entry_value operation (nullopt: unknown).
using EntryValue = std::function<std::optional<uint64_t>(const Dwarf_Op&)>;

// Evaluates the subset of DWARF expressions a compiler gives variables at
// -O2: registers, register + offset, the frame base, addresses, constants,
// entry values (through `entry`, when given). nullopt for anything else
// (pieces, implicit pointers). `frameBase` is also the CFA for
// DW_OP_call_frame_cfa (the CFI's rules).
std::optional<Location> evaluate(const Dwarf_Op* ops, size_t n, const DwarfRegisters& cpu,
                                 const std::optional<uint64_t>& frameBase,
                                 const EntryValue* entry = nullptr) {
  std::vector<uint64_t> stack;
  Location loc;
  for (size_t i = 0; i < n; ++i) {
    const Dwarf_Op& op = ops[i];
    const uint8_t a = op.atom;
    if (a >= DW_OP_reg0 && a <= DW_OP_reg31) {
      const auto v = dwarfRegister(cpu, a - DW_OP_reg0);
      if (!v || n != 1) return std::nullopt;
      return Location{false, *v};
    }
    if (a == DW_OP_regx) {
      const auto v = dwarfRegister(cpu, static_cast<unsigned>(op.number));
      if (!v || n != 1) return std::nullopt;
      return Location{false, *v};
    }
    if (a >= DW_OP_breg0 && a <= DW_OP_breg31) {
      const auto v = dwarfRegister(cpu, a - DW_OP_breg0);
      if (!v) return std::nullopt;
      stack.push_back(*v + op.number);
    } else if (a == DW_OP_bregx) {
      const auto v = dwarfRegister(cpu, static_cast<unsigned>(op.number));
      if (!v) return std::nullopt;
      stack.push_back(*v + op.number2);
    } else if (a == DW_OP_fbreg) {
      if (!frameBase) return std::nullopt;
      stack.push_back(*frameBase + op.number);
    } else if (a >= DW_OP_lit0 && a <= DW_OP_lit31) {
      stack.push_back(a - DW_OP_lit0);
    } else if (a == DW_OP_addr || a == DW_OP_const1u || a == DW_OP_const1s || a == DW_OP_const2u ||
               a == DW_OP_const2s || a == DW_OP_const4u || a == DW_OP_const4s ||
               a == DW_OP_const8u || a == DW_OP_const8s || a == DW_OP_constu || a == DW_OP_consts) {
      stack.push_back(op.number);
    } else if (a == DW_OP_call_frame_cfa) {
      if (!frameBase) return std::nullopt;
      stack.push_back(*frameBase);
    } else if (a == DW_OP_plus_uconst) {
      if (stack.empty()) return std::nullopt;
      stack.back() += op.number;
    } else if (a == DW_OP_dup || a == DW_OP_over || a == DW_OP_pick) {
      const size_t back = a == DW_OP_dup ? 0 : a == DW_OP_over ? 1 : op.number;
      if (stack.size() <= back) return std::nullopt;
      stack.push_back(stack[stack.size() - 1 - back]);
    } else if (a == DW_OP_drop) {
      if (stack.empty()) return std::nullopt;
      stack.pop_back();
    } else if (a == DW_OP_swap) {
      if (stack.size() < 2) return std::nullopt;
      std::swap(stack[stack.size() - 1], stack[stack.size() - 2]);
    } else if (a == DW_OP_neg || a == DW_OP_not || a == DW_OP_abs) {
      if (stack.empty()) return std::nullopt;
      uint64_t& v = stack.back();
      v = a == DW_OP_neg ? 0 - v : a == DW_OP_not ? ~v : static_cast<int64_t>(v) < 0 ? 0 - v : v;
    } else if (a == DW_OP_plus || a == DW_OP_minus || a == DW_OP_mul || a == DW_OP_and ||
               a == DW_OP_or || a == DW_OP_xor || a == DW_OP_shl || a == DW_OP_shr ||
               a == DW_OP_shra || a == DW_OP_div || a == DW_OP_mod) {
      if (stack.size() < 2) return std::nullopt;
      const uint64_t top = stack.back();
      stack.pop_back();
      uint64_t& v = stack.back();
      switch (a) {
        case DW_OP_plus: v += top; break;
        case DW_OP_minus: v -= top; break;
        case DW_OP_mul: v *= top; break;
        case DW_OP_and: v &= top; break;
        case DW_OP_or: v |= top; break;
        case DW_OP_xor: v ^= top; break;
        case DW_OP_shl: v = top < 64 ? v << top : 0; break;
        case DW_OP_shr: v = top < 64 ? v >> top : 0; break;
        case DW_OP_shra:
          v = static_cast<uint64_t>(static_cast<int64_t>(v) >> std::min<uint64_t>(top, 63));
          break;
        case DW_OP_div:  // signed, as DWARF says
          if (top == 0) return std::nullopt;
          v = top == ~uint64_t{0}
                  ? 0 - v
                  : static_cast<uint64_t>(static_cast<int64_t>(v) / static_cast<int64_t>(top));
          break;
        default:  // DW_OP_mod
          if (top == 0) return std::nullopt;
          v %= top;
          break;
      }
    } else if (a == DW_OP_entry_value || a == DW_OP_GNU_entry_value) {
      const std::optional<uint64_t> v = entry != nullptr ? (*entry)(op) : std::nullopt;
      if (!v) return std::nullopt;
      stack.push_back(*v);
    } else if (a == DW_OP_stack_value) {
      loc.inMemory = false;
    } else {
      return std::nullopt;
    }
  }
  if (stack.empty()) return std::nullopt;
  loc.value = stack.back();
  return loc;
}

// The type of `die` (through DW_AT_type), nullopt for void.
std::optional<Dwarf_Die> typeOf(Dwarf_Die* die) {
  Dwarf_Attribute attr;
  Dwarf_Die type;
  if (dwarf_attr_integrate(die, DW_AT_type, &attr) == nullptr ||
      dwarf_formref_die(&attr, &type) == nullptr)
    return std::nullopt;
  return type;
}

// C's spelling of a type.
std::string typeName(std::optional<Dwarf_Die> type) {
  if (!type) return "void";
  const int tag = dwarf_tag(&*type);
  const char* name = dwarf_diename(&*type);
  switch (tag) {
    case DW_TAG_pointer_type: return typeName(typeOf(&*type)) + " *";
    case DW_TAG_const_type: return "const " + typeName(typeOf(&*type));
    case DW_TAG_volatile_type: return "volatile " + typeName(typeOf(&*type));
    case DW_TAG_structure_type: return std::string("struct ") + (name ? name : "{...}");
    case DW_TAG_union_type: return std::string("union ") + (name ? name : "{...}");
    case DW_TAG_enumeration_type: return std::string("enum ") + (name ? name : "{...}");
    case DW_TAG_array_type: return typeName(typeOf(&*type)) + " []";
    default: return name ? name : "?";
  }
}

// `type` without typedefs and qualifiers.
std::optional<Dwarf_Die> stripped(std::optional<Dwarf_Die> type) {
  while (type) {
    const int tag = dwarf_tag(&*type);
    if (tag != DW_TAG_typedef && tag != DW_TAG_const_type && tag != DW_TAG_volatile_type) break;
    type = typeOf(&*type);
  }
  return type;
}

uint64_t attrUnsigned(Dwarf_Die* die, unsigned name, uint64_t otherwise) {
  Dwarf_Attribute attr;
  Dwarf_Word v = 0;
  if (dwarf_attr_integrate(die, name, &attr) == nullptr || dwarf_formudata(&attr, &v) != 0)
    return otherwise;
  return v;
}

// gdb's rendering of `bits` (the value's bytes, little-endian) of `type`.
std::string formatValue(std::optional<Dwarf_Die> declared, uint64_t bits,
                        const GuestMemoryReader& read, const GuestSymbols& symbols) {
  const std::optional<Dwarf_Die> type = stripped(declared);
  if (!type) return hex(bits);
  const int tag = dwarf_tag(const_cast<Dwarf_Die*>(&*type));
  Dwarf_Die t = *type;
  const uint64_t size = attrUnsigned(&t, DW_AT_byte_size, 8);
  if (size < 8) bits &= (uint64_t{1} << (8 * size)) - 1;
  if (tag == DW_TAG_pointer_type) {
    std::string out = hex(bits);
    const Symbol* sym = symbols.lookup(bits);
    if (sym != nullptr && sym->kind != SymbolKind::kOther && bits != 0)
      out += " <" + sym->name + "+" + std::to_string(bits - sym->address) + ">";
    const std::optional<Dwarf_Die> pointee = stripped(typeOf(&t));
    if (pointee && dwarf_tag(const_cast<Dwarf_Die*>(&*pointee)) == DW_TAG_base_type) {
      Dwarf_Die p = *pointee;
      const uint64_t enc = attrUnsigned(&p, DW_AT_encoding, 0);
      if (attrUnsigned(&p, DW_AT_byte_size, 0) == 1 &&
          (enc == DW_ATE_signed_char || enc == DW_ATE_unsigned_char)) {
        std::string text;
        for (uint64_t i = 0; i < 200; ++i) {
          uint8_t c = 0;
          if (!read(bits + i, std::span<uint8_t>(&c, 1))) {
            if (i == 0) return out + " <error: Cannot access memory at address " + hex(bits) + ">";
            break;
          }
          if (c == 0) break;
          if (c == '"' || c == '\\') text += '\\';
          text += static_cast<char>(c);
        }
        out += " \"" + text + "\"";
      }
    }
    return out;
  }
  if (tag == DW_TAG_base_type) {
    const uint64_t enc = attrUnsigned(&t, DW_AT_encoding, 0);
    if (enc == DW_ATE_boolean) return bits ? "true" : "false";
    if (enc == DW_ATE_signed || enc == DW_ATE_signed_char) {
      const int shift = static_cast<int>(64 - 8 * std::min<uint64_t>(size, 8));
      const int64_t v = static_cast<int64_t>(bits << shift) >> shift;
      return std::to_string(v);
    }
    if (enc == DW_ATE_unsigned || enc == DW_ATE_unsigned_char) return std::to_string(bits);
  }
  if (tag == DW_TAG_enumeration_type) return std::to_string(bits);
  return "{...}";
}

// The element count of an array type with one known bound; nullopt else.
std::optional<uint64_t> arrayCount(Dwarf_Die array) {
  Dwarf_Die sub;
  if (dwarf_child(&array, &sub) != 0 || dwarf_tag(&sub) != DW_TAG_subrange_type)
    return std::nullopt;
  Dwarf_Attribute attr;
  Dwarf_Word v = 0;
  if (dwarf_attr(&sub, DW_AT_count, &attr) != nullptr && dwarf_formudata(&attr, &v) == 0) return v;
  if (dwarf_attr(&sub, DW_AT_upper_bound, &attr) != nullptr && dwarf_formudata(&attr, &v) == 0)
    return v + 1;
  return std::nullopt;
}

// Whether `type` (stripped) is a 1-byte character type.
bool isCharType(std::optional<Dwarf_Die> type) {
  type = stripped(type);
  if (!type || dwarf_tag(&*type) != DW_TAG_base_type) return false;
  const uint64_t enc = attrUnsigned(&*type, DW_AT_encoding, 0);
  return attrUnsigned(&*type, DW_AT_byte_size, 0) == 1 &&
         (enc == DW_ATE_signed_char || enc == DW_ATE_unsigned_char);
}

}  // namespace

std::string formatCharArray(std::span<const uint8_t> bytes) {
  constexpr size_t kElements = 200, kRepeats = 10;
  const bool truncated = bytes.size() > kElements;
  if (truncated) bytes = bytes.first(kElements);
  if (!truncated && !bytes.empty() && bytes.back() == 0) bytes = bytes.first(bytes.size() - 1);
  if (bytes.empty()) return "\"\"";
  auto escape = [](uint8_t c, char quote) {
    switch (c) {
      case '\a': return std::string("\\a");
      case '\b': return std::string("\\b");
      case '\f': return std::string("\\f");
      case '\n': return std::string("\\n");
      case '\r': return std::string("\\r");
      case '\t': return std::string("\\t");
      case '\v': return std::string("\\v");
      case '\\': return std::string("\\\\");
      default: break;
    }
    if (c == static_cast<uint8_t>(quote)) return std::string("\\") + quote;
    if (c >= 0x20 && c < 0x7F) return std::string(1, static_cast<char>(c));
    char oct[8];
    std::snprintf(oct, sizeof oct, "\\%03o", c);
    return std::string(oct);
  };
  std::string out;
  bool inQuotes = false;
  for (size_t i = 0; i < bytes.size();) {
    size_t run = 1;
    while (i + run < bytes.size() && bytes[i + run] == bytes[i]) ++run;
    if (run > kRepeats) {
      if (inQuotes)
        out += "\", ";
      else if (!out.empty())
        out += ", ";
      inQuotes = false;
      out += "'" + escape(bytes[i], '"') + "' <repeats " + std::to_string(run) + " times>";
      i += run;
      continue;
    }
    if (!inQuotes) out += out.empty() ? "\"" : ", \"";
    inQuotes = true;
    for (size_t k = 0; k < run; ++k) out += escape(bytes[i], '"');
    i += run;
  }
  if (inQuotes) out += "\"";
  if (truncated) out += "...";
  return out;
}

bool DwarfLines::unwind(DwarfRegisters& regs, const GuestMemoryReader& read) const {
  std::lock_guard lock(libdwLock());
  Dwarf_CFI* cfi = dwarf_getcfi(dwarf_);
  if (cfi == nullptr) cfi = dwarf_getcfi_elf(elf_);
  Dwarf_Frame* frame = nullptr;
  if (cfi == nullptr || dwarf_cfi_addrframe(cfi, regs.scopePc, &frame) != 0) return false;
  Dwarf_Op* cfaOps = nullptr;
  size_t cfaLen = 0;
  std::optional<uint64_t> cfa;
  if (dwarf_frame_cfa(frame, &cfaOps, &cfaLen) == 0 && cfaLen > 0)
    if (auto l = evaluate(cfaOps, cfaLen, regs, std::nullopt)) cfa = l->value;
  DwarfRegisters caller{regs.cpu, 0, 0};
  for (unsigned r = 0; cfa && r <= 16; ++r) {
    Dwarf_Op mem[3];
    Dwarf_Op* ops = nullptr;
    size_t n = 0;
    if (dwarf_frame_register(frame, static_cast<int>(r), mem, &ops, &n) != 0) continue;
    // Same value (ops null), or undefined (ops == mem). libdw makes a
    // register the CFI does not mention undefined unless the ABI's defaults
    // say it is preserved, and elfutils' x86-64 defaults name rax where
    // they mean rbx. gdb keeps the value of a register without a rule; so
    // do we, for all but the return address (undefined there: the
    // outermost frame). Which registers hold a caller's variable across the
    // call is the location lists' to say.
    if (n == 0) {
      if (ops == nullptr || r < 16)
        if (const auto v = dwarfRegister(regs, r)) setDwarfRegister(caller, r, *v);
      continue;
    }
    const auto loc = evaluate(ops, n, regs, cfa);
    if (!loc) continue;
    uint64_t v = loc->value;
    if (loc->inMemory) {
      uint8_t bytes[8];
      if (!read(loc->value, bytes)) continue;
      v = 0;
      for (int b = 0; b < 8; ++b) v |= uint64_t{bytes[b]} << (8 * b);
    }
    setDwarfRegister(caller, r, v);
  }
  free(frame);
  if (!cfa || !(caller.valid >> 16 & 1)) return false;
  setDwarfRegister(caller, 7, *cfa);    // the caller's RSP is the CFA
  caller.scopePc = caller.cpu.rip - 1;  // inside the call, for scopes and location lists
  regs = caller;
  return true;
}

std::optional<uint64_t> DwarfLines::cfa(const DwarfRegisters& regs) const {
  std::lock_guard lock(libdwLock());
  Dwarf_CFI* cfi = dwarf_ != nullptr ? dwarf_getcfi(dwarf_) : nullptr;
  if (cfi == nullptr) cfi = dwarf_getcfi_elf(elf_);
  Dwarf_Frame* frame = nullptr;
  if (cfi == nullptr || dwarf_cfi_addrframe(cfi, regs.scopePc, &frame) != 0) return std::nullopt;
  Dwarf_Op* cfaOps = nullptr;
  size_t cfaLen = 0;
  std::optional<uint64_t> out;
  if (dwarf_frame_cfa(frame, &cfaOps, &cfaLen) == 0 && cfaLen > 0)
    if (auto l = evaluate(cfaOps, cfaLen, regs, std::nullopt)) out = l->value;
  free(frame);
  return out;
}

namespace {

bool isFunction(int tag) {
  return tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine;
}

// The scopes with code at `pc` under `parent`, outermost first: a
// subprogram, then the lexical blocks and inlined subroutines nested in it.
// (The concrete tree: dwarf_getscopes follows an inlined instance to its
// abstract definition instead, and loses the function it was inlined into.)
void scopesAt(Dwarf_Die parent, uint64_t pc, std::vector<Dwarf_Die>& out) {
  Dwarf_Die child;
  if (dwarf_child(&parent, &child) != 0) return;
  do {
    const int tag = dwarf_tag(&child);
    if (isFunction(tag) || tag == DW_TAG_lexical_block) {
      if (dwarf_haspc(&child, pc) == 1) {
        out.push_back(child);
        scopesAt(child, pc, out);
        return;
      }
    } else if (tag == DW_TAG_namespace || tag == DW_TAG_module) {
      const size_t before = out.size();
      scopesAt(child, pc, out);
      if (out.size() > before) return;
    }
  } while (dwarf_siblingof(&child, &child) == 0);
}

// The DWARF register a one-operation location names (DW_OP_regN, regx).
std::optional<unsigned> registerOf(const Dwarf_Op& op) {
  if (op.atom >= DW_OP_reg0 && op.atom <= DW_OP_reg31) return op.atom - DW_OP_reg0;
  if (op.atom == DW_OP_regx) return static_cast<unsigned>(op.number);
  return std::nullopt;
}

// DW_OP_entry_value in an expression of `attr`, at the frame of `regs`: its
// operand names a register (what GCC and clang emit, and all gdb takes),
// whose value on entry `frames` finds in the caller.
EntryValue entryValueOf(Dwarf_Attribute* attr, const DwarfRegisters& regs,
                        const DwarfLines::Frames& frames) {
  return [attr, &regs, &frames](const Dwarf_Op& op) -> std::optional<uint64_t> {
    Dwarf_Attribute operand;
    Dwarf_Op* ops = nullptr;
    size_t n = 0;
    if (!frames.entryValue || dwarf_getlocation_attr(attr, &op, &operand) != 0 ||
        dwarf_getlocation(&operand, &ops, &n) != 0 || n != 1)
      return std::nullopt;
    const std::optional<unsigned> reg = registerOf(ops[0]);
    if (!reg) return std::nullopt;
    return frames.entryValue(regs, *reg);
  };
}

// The frame base of `subprogram` at regs.scopePc.
std::optional<uint64_t> frameBaseOf(Dwarf_Die* subprogram, const DwarfRegisters& regs,
                                    const DwarfLines::Frames& frames) {
  Dwarf_Attribute attr;
  Dwarf_Op* ops = nullptr;
  size_t len = 0;
  if (dwarf_attr_integrate(subprogram, DW_AT_frame_base, &attr) == nullptr ||
      dwarf_getlocation_addr(&attr, regs.scopePc, &ops, &len, 1) != 1)
    return std::nullopt;
  if (len == 1 && ops[0].atom == DW_OP_call_frame_cfa) return frames.cfa(regs);
  if (const auto l = evaluate(ops, len, regs, std::nullopt)) return l->value;
  return std::nullopt;
}

// The name of a function DIE (an inlined or out-of-line instance names it
// through its abstract origin).
const char* functionName(Dwarf_Die* die) {
  Dwarf_Attribute attr;
  return dwarf_attr_integrate(die, DW_AT_name, &attr) != nullptr ? dwarf_formstring(&attr)
                                                                 : nullptr;
}

}  // namespace

bool DwarfLines::variables(const DwarfRegisters& cpu, unsigned inlineDepth,
                           const GuestMemoryReader& read, const GuestSymbols& symbols,
                           const Frames& frames, std::vector<GuestVariable>& out) const {
  std::lock_guard lock(libdwLock());
  const uint64_t pc = cpu.scopePc;
  const std::optional<uint64_t> cuOffset = cuAt(pc);
  Dwarf_Die cu;
  if (!cuOffset || dwarf_offdie(dwarf_, *cuOffset, &cu) == nullptr) return false;
  std::vector<Dwarf_Die> scopes;
  scopesAt(cu, pc, scopes);
  // The functions among the scopes (the subprogram, then the calls inlined
  // into it); the one asked for and the blocks inside it, up to the next
  // inlined call. The frame base is the subprogram's.
  std::vector<size_t> functions;
  for (size_t i = 0; i < scopes.size(); ++i)
    if (isFunction(dwarf_tag(&scopes[i]))) functions.push_back(i);
  if (functions.empty() || inlineDepth >= functions.size()) return false;
  const size_t k = functions.size() - 1 - inlineDepth;
  const size_t function = functions[k];
  const size_t innerEnd = k + 1 < functions.size() ? functions[k + 1] : scopes.size();
  std::optional<uint64_t> frameBase;
  if (dwarf_tag(&scopes[0]) == DW_TAG_subprogram) frameBase = frameBaseOf(&scopes[0], cpu, frames);
  std::vector<GuestVariable> params, locals;
  for (size_t i = function; i < innerEnd; ++i) {
    Dwarf_Die child;
    if (dwarf_child(&scopes[i], &child) != 0) continue;
    do {
      const int tag = dwarf_tag(&child);
      if (tag != DW_TAG_formal_parameter && tag != DW_TAG_variable) continue;
      // An inlined or out-of-line instance names it through its abstract origin.
      Dwarf_Attribute nameAttr;
      const char* name = dwarf_attr_integrate(&child, DW_AT_name, &nameAttr) != nullptr
                             ? dwarf_formstring(&nameAttr)
                             : nullptr;
      if (name == nullptr) continue;
      GuestVariable v;
      v.name = name;
      v.parameter = tag == DW_TAG_formal_parameter;
      const std::optional<Dwarf_Die> type = typeOf(&child);
      v.type = typeName(type);
      v.value = "<optimized out>";
      Dwarf_Attribute loc;
      Dwarf_Op* ops = nullptr;
      size_t len = 0;
      const EntryValue entry = entryValueOf(&loc, cpu, frames);
      if (dwarf_attr_integrate(&child, DW_AT_location, &loc) != nullptr &&
          dwarf_getlocation_addr(&loc, pc, &ops, &len, 1) == 1) {
        if (const auto l = evaluate(ops, len, cpu, frameBase, &entry)) {
          uint64_t bits = l->value;
          if (l->inMemory) {
            v.address = l->value;
            std::optional<Dwarf_Die> s = stripped(type);
            Dwarf_Die sd;
            if (s) sd = *s;
            const uint64_t size = s ? attrUnsigned(&sd, DW_AT_byte_size, 8) : 8;
            uint8_t bytes[8] = {};
            const bool isArray = s && dwarf_tag(&sd) == DW_TAG_array_type;
            const std::optional<uint64_t> count = isArray ? arrayCount(sd) : std::nullopt;
            std::vector<uint8_t> text;
            if (count && *count <= 4096 && isCharType(typeOf(&sd))) {
              text.resize(*count);
              v.value = read(l->value, text)
                            ? formatCharArray(text)
                            : "<error: Cannot access memory at address " + hex(l->value) + ">";
            } else if (size > 8 || (s && (dwarf_tag(&sd) == DW_TAG_structure_type ||
                                          dwarf_tag(&sd) == DW_TAG_array_type ||
                                          dwarf_tag(&sd) == DW_TAG_union_type))) {
              v.value = "{...}";
            } else if (!read(l->value, std::span<uint8_t>(bytes, size))) {
              v.value = "<error: Cannot access memory at address " + hex(l->value) + ">";
            } else {
              bits = 0;
              for (uint64_t b = 0; b < size; ++b) bits |= uint64_t{bytes[b]} << (8 * b);
              v.value = formatValue(type, bits, read, symbols);
            }
          } else {
            v.value = formatValue(type, bits, read, symbols);
          }
        }
      }
      (v.parameter ? params : locals).push_back(std::move(v));
    } while (dwarf_siblingof(&child, &child) == 0);
  }
  // An inlined instance without its own parameter entries: gdb lists the
  // abstract function's, optimized out.
  Dwarf_Attribute origin;
  Dwarf_Die abstract;
  if (params.empty() && dwarf_tag(&scopes[function]) == DW_TAG_inlined_subroutine &&
      dwarf_attr(&scopes[function], DW_AT_abstract_origin, &origin) != nullptr &&
      dwarf_formref_die(&origin, &abstract) != nullptr) {
    Dwarf_Die child;
    if (dwarf_child(&abstract, &child) == 0) {
      do {
        if (dwarf_tag(&child) != DW_TAG_formal_parameter) continue;
        const char* name = dwarf_diename(&child);
        if (name == nullptr) continue;
        params.push_back(
            GuestVariable{name, typeName(typeOf(&child)), "<optimized out>", true, std::nullopt});
      } while (dwarf_siblingof(&child, &child) == 0);
    }
  }
  out = std::move(params);
  out.insert(out.end(), std::make_move_iterator(locals.begin()),
             std::make_move_iterator(locals.end()));
  return true;
}

std::optional<uint64_t> DwarfLines::callSiteValue(const DwarfRegisters& caller, unsigned reg,
                                                  const Frames& frames) const {
  std::lock_guard lock(libdwLock());
  const std::optional<uint64_t> cuOffset = cuAt(caller.scopePc);
  Dwarf_Die cu;
  if (!cuOffset || dwarf_offdie(dwarf_, *cuOffset, &cu) == nullptr) return std::nullopt;
  std::vector<Dwarf_Die> scopes;
  scopesAt(cu, caller.scopePc, scopes);
  if (scopes.empty() || dwarf_tag(&scopes[0]) != DW_TAG_subprogram) return std::nullopt;
  // The call site that returns to the caller's pc is a child of the
  // innermost scope around the call (DW_AT_call_return_pc; GCC's older
  // DW_TAG_GNU_call_site has it as DW_AT_low_pc).
  for (size_t i = scopes.size(); i-- > 0;) {
    Dwarf_Die site;
    if (dwarf_child(&scopes[i], &site) != 0) continue;
    do {
      const int tag = dwarf_tag(&site);
      if (tag != DW_TAG_call_site && tag != DW_TAG_GNU_call_site) continue;
      Dwarf_Attribute attr;
      Dwarf_Addr returnPc = 0;
      if ((dwarf_attr(&site, DW_AT_call_return_pc, &attr) == nullptr &&
           dwarf_attr(&site, DW_AT_low_pc, &attr) == nullptr) ||
          dwarf_formaddr(&attr, &returnPc) != 0 || returnPc != caller.cpu.rip)
        continue;
      Dwarf_Die param;
      if (dwarf_child(&site, &param) != 0) return std::nullopt;
      do {
        const int ptag = dwarf_tag(&param);
        if (ptag != DW_TAG_call_site_parameter && ptag != DW_TAG_GNU_call_site_parameter) continue;
        Dwarf_Attribute where, value;
        Dwarf_Op* ops = nullptr;
        size_t n = 0;
        if (dwarf_attr(&param, DW_AT_location, &where) == nullptr ||
            dwarf_getlocation(&where, &ops, &n) != 0 || n != 1 || registerOf(ops[0]) != reg)
          continue;
        if (dwarf_attr(&param, DW_AT_call_value, &value) == nullptr &&
            dwarf_attr(&param, DW_AT_GNU_call_site_value, &value) == nullptr)
          return std::nullopt;
        if (dwarf_getlocation(&value, &ops, &n) != 0 || n == 0) return std::nullopt;
        // A DWARF expression whose result is the value (not a location).
        const EntryValue entry = entryValueOf(&value, caller, frames);
        const auto v = evaluate(ops, n, caller, frameBaseOf(&scopes[0], caller, frames), &entry);
        if (!v) return std::nullopt;
        return v->value;
      } while (dwarf_siblingof(&param, &param) == 0);
      return std::nullopt;
    } while (dwarf_siblingof(&site, &site) == 0);
  }
  return std::nullopt;
}

std::vector<GuestFunction> DwarfLines::functionsAt(uint64_t pc) const {
  std::lock_guard lock(libdwLock());
  const std::optional<uint64_t> cuOffset = cuAt(pc);
  Dwarf_Die cu;
  if (!cuOffset || dwarf_offdie(dwarf_, *cuOffset, &cu) == nullptr) return {};
  std::vector<Dwarf_Die> scopes;
  scopesAt(cu, pc, scopes);
  Dwarf_Files* files = nullptr;
  size_t fileCount = 0;
  if (dwarf_getsrcfiles(&cu, &files, &fileCount) != 0) files = nullptr;
  std::vector<GuestFunction> out;
  Dwarf_Die* inlined = nullptr;  // the inlined call one function in
  for (size_t i = scopes.size(); i-- > 0;) {
    const int tag = dwarf_tag(&scopes[i]);
    if (!isFunction(tag)) continue;
    GuestFunction f;
    const char* name = functionName(&scopes[i]);
    f.name = name != nullptr ? name : "??";
    if (inlined != nullptr) {
      Dwarf_Attribute attr;
      Dwarf_Word file = 0, line = 0;
      const char* path = nullptr;
      if (files != nullptr && dwarf_attr(inlined, DW_AT_call_file, &attr) != nullptr &&
          dwarf_formudata(&attr, &file) == 0 && file < fileCount &&
          (path = dwarf_filesrc(files, file, nullptr, nullptr)) != nullptr &&
          dwarf_attr(inlined, DW_AT_call_line, &attr) != nullptr &&
          dwarf_formudata(&attr, &line) == 0 && line > 0)
        f.line = SourceLine{path, static_cast<unsigned>(line)};
    }
    f.starts = tag == DW_TAG_inlined_subroutine && dwarf_haspc(&scopes[i], pc - 1) != 1;
    out.push_back(std::move(f));
    if (tag == DW_TAG_subprogram) break;  // not inlined: the frame's own function
    inlined = &scopes[i];
  }
  return out;
}

Result<ElfSymbolFile> ElfSymbolFile::open(const std::string& path) {
  auto owner = std::unique_ptr<DwarfLines>(new DwarfLines);
  owner->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (owner->fd_ < 0) return makeError(path + ": " + std::strerror(errno));
  if (!elfReady()) return makeError(path + ": libelf refused its version handshake");
  owner->elf_ = elf_begin(owner->fd_, ELF_C_READ_MMAP, nullptr);
  return load(path, std::move(owner));
}

Result<ElfSymbolFile> ElfSymbolFile::read(const std::string& name, std::span<const uint8_t> bytes) {
  auto owner = std::unique_ptr<DwarfLines>(new DwarfLines);
  owner->bytes_.assign(bytes.begin(), bytes.end());
  if (!elfReady()) return makeError(name + ": libelf refused its version handshake");
  // libelf only reads an image opened with ELF_C_READ; the cast is its API's.
  owner->elf_ = elf_memory(reinterpret_cast<char*>(owner->bytes_.data()), owner->bytes_.size());
  return load(name, std::move(owner));
}

Result<ElfSymbolFile> ElfSymbolFile::load(const std::string& name,
                                          std::unique_ptr<DwarfLines> owner) {
  Elf* elf = owner->elf_;
  if (elf == nullptr) return makeError(name + ": " + elf_errmsg(-1));
  if (elf_kind(elf) != ELF_K_ELF) return makeError(name + ": not an ELF file");
  size_t shstrndx = 0;
  if (elf_getshdrstrndx(elf, &shstrndx) != 0)
    return makeError(name + ": bad ELF section headers: " + elf_errmsg(-1));
  ElfSymbolFile f;
  if (!readSymbolTable(elf, SHT_SYMTAB, f.symbols)) readSymbolTable(elf, SHT_DYNSYM, f.symbols);
  owner->dwarf_ = dwarf_begin_elf(elf, DWARF_C_READ, nullptr);
  bool hasLines = false;
  if (owner->dwarf_ != nullptr) {
    Dwarf_Off next = 0;
    size_t headerSize = 0;
    hasLines = dwarf_nextcu(owner->dwarf_, 0, &next, &headerSize, nullptr, nullptr, nullptr) == 0;
  }
  if (f.symbols.empty() && !hasLines)
    return makeError(name + ": an ELF file with neither a symbol table nor DWARF (stripped?)");
  std::stable_sort(f.symbols.begin(), f.symbols.end(),
                   [](const Symbol& a, const Symbol& b) { return a.address < b.address; });
  if (hasLines) f.lines = std::shared_ptr<DwarfLines>(owner.release());
  return f;
}

}  // namespace ttvm
