#include "ttvm/replayer/guest_symbols.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>

#include "elf_symbol_file.h"

namespace ttvm {
namespace {

// The address range an unsized symbol is taken to cover.
constexpr uint64_t kUnsizedReach = 0x10000;

SymbolKind systemMapKind(char type) {
  switch (type) {
    case 'T':
    case 't':
    case 'W':
    case 'w':
    case 'i': return SymbolKind::kFunction;
    case 'D':
    case 'd':
    case 'B':
    case 'b':
    case 'R':
    case 'r':
    case 'G':
    case 'g':
    case 'S':
    case 's':
    case 'V':
    case 'v': return SymbolKind::kObject;
    default: return SymbolKind::kOther;
  }
}

std::vector<std::string_view> splitFields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

bool parseHex(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 16) return false;
  out = 0;
  for (char c : s) {
    const int d = c >= '0' && c <= '9'   ? c - '0'
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                         : -1;
    if (d < 0) return false;
    out = out << 4 | static_cast<uint64_t>(d);
  }
  return true;
}

bool isElf(std::string_view bytes) {
  return bytes.size() >= 4 && bytes.substr(0, 4) ==
                                  "\x7f"
                                  "ELF";
}

void sortByAddress(std::vector<Symbol>& v) {
  std::stable_sort(v.begin(), v.end(),
                   [](const Symbol& a, const Symbol& b) { return a.address < b.address; });
}

std::string describeSource(const std::string& name, size_t symbols, bool lines) {
  return name + " (" + std::to_string(symbols) + " symbols" + (lines ? ", DWARF lines)" : ")");
}

}  // namespace

Result<std::vector<Symbol>> parseSystemMap(std::string_view text, const std::string& fileName) {
  std::vector<Symbol> out;
  size_t lineNo = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    const std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++lineNo;
    auto where = [&] { return fileName + ":" + std::to_string(lineNo) + ": "; };
    if (line.find('\0') != std::string_view::npos)
      return makeError(where() + "a NUL byte: neither a System.map nor an ELF file");
    const std::vector<std::string_view> f = splitFields(line);
    if (f.empty()) continue;
    // nm's undefined symbols have no address: "U name", "w name".
    if (f.size() == 2 && f[0].size() == 1 && (f[0] == "U" || f[0] == "w" || f[0] == "v")) continue;
    if (line.find("The real System.map is in") != std::string_view::npos)
      return makeError(where() +
                       "a placeholder, not a System.map; the real one is in the "
                       "linux-image-<version>-dbg package (or use its vmlinux)");
    if (f.size() < 3)
      return makeError(where() + "expected 'ADDRESS TYPE NAME', found '" + std::string(line) + "'");
    if (f.size() > 4 || (f.size() == 4 && (f[3].front() != '[' || f[3].back() != ']')))
      return makeError(where() + "more than 'ADDRESS TYPE NAME [module]': '" + std::string(line) +
                       "'");
    uint64_t address = 0;
    if (!parseHex(f[0], address))
      return makeError(where() + "'" + std::string(f[0]) + "' is not a hexadecimal address");
    if (f[1].size() != 1 || !std::isalpha(static_cast<unsigned char>(f[1][0])))
      return makeError(where() + "'" + std::string(f[1]) + "' is not a symbol type letter");
    if (f[1] == "U") continue;
    out.push_back(Symbol{std::string(f[2]), address, 0, systemMapKind(f[1][0])});
  }
  if (out.empty()) return makeError(fileName + ": no symbols (an empty System.map)");
  sortByAddress(out);
  // Sizes: up to the next higher address.
  size_t next = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (next <= i) {
      next = i + 1;
      while (next < out.size() && out[next].address == out[i].address) ++next;
    }
    if (next < out.size()) out[i].size = out[next].address - out[i].address;
  }
  return out;
}

GuestSymbols::GuestSymbols(const TraceHeader& header) {
  for (const GuestImage& img : header.images) {
    std::vector<Symbol> symbols = img.symbols;
    bool lines = false;
    const std::string_view bytes(reinterpret_cast<const char*>(img.bytes.data()), img.bytes.size());
    if (isElf(bytes)) {  // ELF and multiboot-in-ELF images
      // The recorder kept the symbol table; the bytes may also hold DWARF.
      auto elf = ElfSymbolFile::read(img.name, img.bytes);
      if (elf.ok() && elf->lines) {
        lines_.push_back(std::move(elf->lines));
        lines = true;
      }
    }
    if (symbols.empty() && !lines) continue;
    sources_.push_back(describeSource(img.name, symbols.size(), lines));
    merge(std::move(symbols));
  }
}

Status GuestSymbols::addFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return makeError(path + ": cannot open");
  char magic[4] = {};
  in.read(magic, sizeof magic);
  if (isElf(std::string_view(magic, static_cast<size_t>(in.gcount())))) {
    auto elf = ElfSymbolFile::open(path);
    if (!elf.ok()) return elf.error();
    const bool lines = elf->lines != nullptr;
    if (lines) lines_.push_back(std::move(elf->lines));
    sources_.push_back(describeSource(path, elf->symbols.size(), lines));
    merge(std::move(elf->symbols));
    return {};
  }
  in.seekg(0);
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) return makeError(path + ": read error");
  auto map = parseSystemMap(text, path);
  if (!map.ok()) return map.error();
  sources_.push_back(describeSource(path, map->size(), false));
  merge(std::move(*map));
  return {};
}

void GuestSymbols::addSymbols(std::vector<Symbol> symbols, const std::string& name) {
  sources_.push_back(describeSource(name, symbols.size(), false));
  merge(std::move(symbols));
}

void GuestSymbols::merge(std::vector<Symbol> symbols) {
  for (Symbol& s : symbols)
    if (s.address != 0 && !s.name.empty()) symbols_.push_back(std::move(s));
  sortByAddress(symbols_);
  byName_.resize(symbols_.size());
  for (uint32_t i = 0; i < byName_.size(); ++i) byName_[i] = i;
  // By name; among equal names a function first, then the lowest address.
  std::sort(byName_.begin(), byName_.end(), [&](uint32_t a, uint32_t b) {
    const Symbol& x = symbols_[a];
    const Symbol& y = symbols_[b];
    if (x.name != y.name) return x.name < y.name;
    const bool fx = x.kind == SymbolKind::kFunction, fy = y.kind == SymbolKind::kFunction;
    if (fx != fy) return fx;
    return a < b;
  });
}

const Symbol* GuestSymbols::lookup(uint64_t address) const {
  // The last symbol starting at or below `address`; prefer functions when
  // several start at the same address.
  auto it = std::upper_bound(symbols_.begin(), symbols_.end(), address,
                             [](uint64_t a, const Symbol& s) { return a < s.address; });
  const Symbol* best = nullptr;
  for (auto j = it; j != symbols_.begin();) {
    --j;
    const Symbol& s = *j;
    const bool inside =
        s.size != 0 ? address - s.address < s.size : address - s.address < kUnsizedReach;
    if (inside &&
        (best == nullptr || (best->address == s.address && s.kind == SymbolKind::kFunction &&
                             best->kind != SymbolKind::kFunction)))
      best = &s;
    if (best != nullptr && s.address != best->address) break;
    if (address - s.address > (1ull << 20)) break;  // nothing sized can cover it
  }
  return best;
}

std::optional<std::string> GuestSymbols::describe(uint64_t address) const {
  const Symbol* s = lookup(address);
  if (s == nullptr) return std::nullopt;
  const uint64_t off = address - s->address;
  if (off == 0) return s->name;
  char buf[32];
  std::snprintf(buf, sizeof buf, "+0x%llx", static_cast<unsigned long long>(off));
  return s->name + buf;
}

std::optional<uint64_t> GuestSymbols::find(const std::string& name) const {
  auto it =
      std::lower_bound(byName_.begin(), byName_.end(), name,
                       [&](uint32_t i, const std::string& n) { return symbols_[i].name < n; });
  if (it == byName_.end() || symbols_[*it].name != name) return std::nullopt;
  return symbols_[*it].address;
}

std::vector<uint64_t> GuestSymbols::lineAddresses(const std::string& file, unsigned& line) const {
  for (const auto& l : lines_) {
    unsigned found = line;
    std::vector<uint64_t> all = l->addressesOf(file, found);
    if (all.empty()) continue;
    line = found;
    // The lowest address in each function (ascending order: the first seen).
    std::vector<uint64_t> out;
    std::vector<const Symbol*> functions;
    for (uint64_t a : all) {
      const Symbol* f = lookup(a);
      if (f != nullptr && std::find(functions.begin(), functions.end(), f) != functions.end())
        continue;
      functions.push_back(f);
      out.push_back(a);
    }
    return out;
  }
  return {};
}

namespace {

// One frame up through the first loaded file whose CFI has a rule there.
bool unwindOnce(const std::vector<std::shared_ptr<const DwarfLines>>& files, DwarfRegisters& regs,
                const GuestMemoryReader& read) {
  for (const auto& l : files)
    if (l->unwind(regs, read)) return true;
  return false;
}

}  // namespace

std::vector<GuestVariable> GuestSymbols::variablesAt(const CpuState& cpu,
                                                     const GuestMemoryReader& read, unsigned frame,
                                                     unsigned inlineDepth) const {
  DwarfRegisters regs{cpu, 0x1FFFF, cpu.rip};
  for (unsigned k = 0; k < frame; ++k)
    if (!unwindOnce(lines_, regs, read)) return {};
  DwarfLines::Frames frames;
  frames.cfa = [this](const DwarfRegisters& r) {
    for (const auto& l : lines_)
      if (auto c = l->cfa(r)) return c;
    return std::optional<uint64_t>();
  };
  // An entry value's call-site value may itself need one, a frame further
  // up (a parameter passed on unchanged): gdb follows such chains too; a
  // few frames are plenty.
  unsigned nested = 0;
  frames.entryValue = [&](const DwarfRegisters& r, unsigned reg) -> std::optional<uint64_t> {
    DwarfRegisters caller = r;
    if (nested >= 4 || !unwindOnce(lines_, caller, read)) return std::nullopt;
    ++nested;
    std::optional<uint64_t> out;
    for (const auto& l : lines_)
      if ((out = l->callSiteValue(caller, reg, frames))) break;
    --nested;
    return out;
  };
  for (const auto& l : lines_) {
    std::vector<GuestVariable> out;
    if (l->variables(regs, inlineDepth, read, *this, frames, out)) return out;
  }
  return {};
}

std::vector<GuestFunction> GuestSymbols::functionsAt(uint64_t address) const {
  for (const auto& l : lines_) {
    std::vector<GuestFunction> out = l->functionsAt(address);
    if (out.empty()) continue;
    out.front().line = sourceLine(address);
    return out;
  }
  return {};
}

std::optional<SourceLine> GuestSymbols::sourceLine(uint64_t address) const {
  for (const auto& l : lines_)
    if (auto s = l->find(address)) return s;
  return std::nullopt;
}

}  // namespace ttvm
