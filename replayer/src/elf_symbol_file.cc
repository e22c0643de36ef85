#include "elf_symbol_file.h"

#include <elfutils/libdw.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

namespace ttvm {
namespace {

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

std::optional<SourceLine> DwarfLines::find(uint64_t address) const {
  std::lock_guard lock(mu_);
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
    Dwarf_Line* line = dwarf_getsrc_die(&cu, address);
    if (line == nullptr) continue;
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
  std::lock_guard lock(mu_);
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
