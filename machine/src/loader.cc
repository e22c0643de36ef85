#include "ttvm/machine/loader.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "ttvm/base/hex.h"
#include "ttvm/machine/disk_image.h"
#include "ttvm/machine/firmware.h"
#include "ttvm/machine/machine.h"

namespace ttvm::machine {
namespace {

constexpr uint32_t kMultibootMagic = 0x1BADB002;
constexpr uint32_t kMultibootBootloaderMagic = 0x2BADB002;
constexpr uint32_t kMultibootAoutKludge = 1u << 16;
constexpr uint64_t kStackTop = 0x80000;  // initial stack for non-multiboot entries
constexpr uint64_t kPageTableCandidates[] = {0x70000, 0x1000, 0x90000};

template <typename T>
bool readStruct(std::span<const uint8_t> f, uint64_t off, T& out) {
  if (off > f.size() || f.size() - off < sizeof(T)) return false;
  std::memcpy(&out, f.data() + off, sizeof(T));
  return true;
}

uint32_t le32(std::span<const uint8_t> f, size_t off) {
  return f[off] | (f[off + 1] << 8) | (f[off + 2] << 16) | (uint32_t{f[off + 3]} << 24);
}

// Copies bytes into guest RAM; the destination must be RAM (not the VGA hole).
Status copyToRam(Machine& m, const std::string& what, uint64_t addr, std::span<const uint8_t> bytes,
                 uint64_t memBytes) {
  auto ram = m.ram();
  if (addr > ram.size() || memBytes > ram.size() - addr)
    return makeError(what + ": [" + hex(addr) + ", " + hex(addr + memBytes) +
                     ") does not fit in RAM (" + std::to_string(ram.size() >> 20) + " MiB, up to " +
                     hex(ram.size()) + "); try a larger --ram");
  if (addr < firmware::kVgaHoleEnd && addr + memBytes > firmware::kVgaHoleBegin)
    return makeError(what + ": [" + hex(addr) + ", " + hex(addr + memBytes) +
                     ") overlaps the VGA window 0xa0000-0xbffff, which is not RAM");
  std::memcpy(ram.data() + addr, bytes.data(), std::min<uint64_t>(bytes.size(), memBytes));
  if (memBytes > bytes.size())
    std::memset(ram.data() + addr + bytes.size(), 0, memBytes - bytes.size());
  return {};
}

struct Segment {
  uint64_t fileOffset, fileBytes, paddr, vaddr, memBytes;
};

struct ElfInfo {
  bool is64 = false;
  uint16_t machine = 0;
  uint64_t entry = 0;
  std::vector<Segment> segments;  // PT_LOAD
};

Result<ElfInfo> parseElf(std::span<const uint8_t> f, const std::string& name) {
  ElfInfo info;
  if (f.size() < EI_NIDENT || std::memcmp(f.data(), ELFMAG, SELFMAG) != 0)
    return makeError(name + ": not an ELF file");
  if (f[EI_DATA] != ELFDATA2LSB) return makeError(name + ": ELF is not little-endian");
  info.is64 = f[EI_CLASS] == ELFCLASS64;
  if (!info.is64 && f[EI_CLASS] != ELFCLASS32)
    return makeError(name + ": byte 4 (EI_CLASS) is " + std::to_string(f[EI_CLASS]) +
                     ", neither 32- nor 64-bit ELF");
  uint64_t phoff, phentsize, phnum;
  if (info.is64) {
    Elf64_Ehdr h;
    if (!readStruct(f, 0, h)) return makeError(name + ": truncated ELF64 header");
    info.machine = h.e_machine;
    info.entry = h.e_entry;
    phoff = h.e_phoff;
    phentsize = h.e_phentsize;
    phnum = h.e_phnum;
    if (phnum && phentsize < sizeof(Elf64_Phdr))
      return makeError(name + ": e_phentsize " + std::to_string(phentsize) + " is too small");
  } else {
    Elf32_Ehdr h;
    if (!readStruct(f, 0, h)) return makeError(name + ": truncated ELF32 header");
    info.machine = h.e_machine;
    info.entry = h.e_entry;
    phoff = h.e_phoff;
    phentsize = h.e_phentsize;
    phnum = h.e_phnum;
    if (phnum && phentsize < sizeof(Elf32_Phdr))
      return makeError(name + ": e_phentsize " + std::to_string(phentsize) + " is too small");
  }
  if (info.machine != EM_386 && info.machine != EM_X86_64)
    return makeError(name + ": ELF machine " + std::to_string(info.machine) + " is not x86");
  for (uint64_t i = 0; i < phnum; ++i) {
    uint64_t off = phoff + i * phentsize;
    Segment s{};
    uint32_t type;
    if (info.is64) {
      Elf64_Phdr p;
      if (!readStruct(f, off, p))
        return makeError(name + ": program header " + std::to_string(i) + " at offset " + hex(off) +
                         " is past the end of the file");
      type = p.p_type;
      s = {p.p_offset, p.p_filesz, p.p_paddr, p.p_vaddr, p.p_memsz};
    } else {
      Elf32_Phdr p;
      if (!readStruct(f, off, p))
        return makeError(name + ": program header " + std::to_string(i) + " at offset " + hex(off) +
                         " is past the end of the file");
      type = p.p_type;
      s = {p.p_offset, p.p_filesz, p.p_paddr, p.p_vaddr, p.p_memsz};
    }
    if (type != PT_LOAD || s.memBytes == 0) continue;
    if (s.fileOffset > f.size() || s.fileBytes > f.size() - s.fileOffset)
      return makeError(name + ": segment " + std::to_string(i) + " file bytes [" +
                       hex(s.fileOffset) + ", " + hex(s.fileOffset + s.fileBytes) +
                       ") run past the end of the file (" + hex(f.size()) + " bytes)");
    if (s.fileBytes > s.memBytes)
      return makeError(name + ": segment " + std::to_string(i) + " has p_filesz > p_memsz");
    info.segments.push_back(s);
  }
  if (info.segments.empty()) return makeError(name + ": ELF has no loadable segments");
  return info;
}

// Loads PT_LOAD segments at their physical addresses; returns the end of the
// highest one. Translates a virtual entry point to its physical address.
Result<uint64_t> loadElfSegments(Machine& m, const ElfInfo& info, std::span<const uint8_t> f,
                                 const std::string& name, uint64_t& entry, uint64_t& lowest) {
  uint64_t end = 0;
  lowest = ~0ull;
  for (size_t i = 0; i < info.segments.size(); ++i) {
    const Segment& s = info.segments[i];
    TTVM_TRY(copyToRam(m, name + " segment " + std::to_string(i), s.paddr,
                       f.subspan(s.fileOffset, s.fileBytes), s.memBytes));
    end = std::max(end, s.paddr + s.memBytes);
    lowest = std::min(lowest, s.paddr);
  }
  entry = info.entry;
  bool inPhysical = false;
  for (const Segment& s : info.segments)
    if (entry >= s.paddr && entry < s.paddr + s.memBytes) inPhysical = true;
  if (!inPhysical) {
    for (const Segment& s : info.segments) {
      if (entry >= s.vaddr && entry < s.vaddr + s.memBytes) {
        entry = entry - s.vaddr + s.paddr;
        break;
      }
    }
  }
  return end;
}

uint64_t alignUp(uint64_t v, uint64_t a) {
  return (v + a - 1) & ~(a - 1);
}

struct MultibootHeader {
  uint64_t offset;  // in the file
  uint32_t flags;
  uint32_t headerAddr, loadAddr, loadEndAddr, bssEndAddr, entryAddr;
};

std::optional<MultibootHeader> findMultiboot(std::span<const uint8_t> f) {
  size_t limit = std::min<size_t>(f.size(), 8192);
  for (size_t off = 0; off + 12 <= limit; off += 4) {
    if (le32(f, off) != kMultibootMagic) continue;
    uint32_t flags = le32(f, off + 4);
    uint32_t sum = le32(f, off + 8);
    if (static_cast<uint32_t>(kMultibootMagic + flags + sum) != 0) continue;
    MultibootHeader h{off, flags, 0, 0, 0, 0, 0};
    if ((flags & kMultibootAoutKludge) && off + 32 <= f.size()) {
      h.headerAddr = le32(f, off + 12);
      h.loadAddr = le32(f, off + 16);
      h.loadEndAddr = le32(f, off + 20);
      h.bssEndAddr = le32(f, off + 24);
      h.entryAddr = le32(f, off + 28);
    }
    return h;
  }
  return std::nullopt;
}

Result<LoadedGuest> loadMultiboot(Machine& m, std::span<const uint8_t> f, const LoadOptions& o,
                                  const MultibootHeader& mb) {
  LoadedGuest g;
  GuestImage img;
  img.name = o.name;
  img.format = ImageFormat::kMultiboot;
  uint64_t entry, end, lowest;
  bool isElf = f.size() >= 4 && std::memcmp(f.data(), ELFMAG, SELFMAG) == 0;
  if ((mb.flags & kMultibootAoutKludge) || !isElf) {
    if (!(mb.flags & kMultibootAoutKludge))
      return makeError(o.name + ": multiboot header at offset " + hex(mb.offset) +
                       " has no address fields (flag 16) and the file is not ELF");
    if (mb.headerAddr < mb.loadAddr || mb.headerAddr - mb.loadAddr > mb.offset)
      return makeError(o.name + ": multiboot header_addr " + hex(mb.headerAddr) +
                       " and load_addr " + hex(mb.loadAddr) + " do not match its file offset " +
                       hex(mb.offset));
    uint64_t fileStart = mb.offset - (mb.headerAddr - mb.loadAddr);
    uint64_t loadEnd = mb.loadEndAddr != 0 ? mb.loadEndAddr : mb.loadAddr + (f.size() - fileStart);
    if (loadEnd < mb.loadAddr || loadEnd - mb.loadAddr > f.size() - fileStart)
      return makeError(o.name + ": multiboot load_end_addr " + hex(loadEnd) +
                       " lies beyond the end of the file");
    uint64_t bssEnd = mb.bssEndAddr != 0 ? std::max<uint64_t>(mb.bssEndAddr, loadEnd) : loadEnd;
    TTVM_TRY(copyToRam(m, o.name + " (multiboot image)", mb.loadAddr,
                       f.subspan(fileStart, loadEnd - mb.loadAddr), bssEnd - mb.loadAddr));
    entry = mb.entryAddr;
    end = bssEnd;
    lowest = mb.loadAddr;
    g.description =
        "multiboot kernel (a.out kludge), load " + hex(mb.loadAddr) + ", entry " + hex(entry);
  } else {
    auto info = parseElf(f, o.name);
    TTVM_TRY(info);
    auto e = loadElfSegments(m, *info, f, o.name, entry, lowest);
    TTVM_TRY(e);
    end = *e;
    g.description = std::string("multiboot kernel (ELF") + (info->is64 ? "64" : "32") +
                    "), entry " + hex(entry);
    auto syms = elfSymbols(f);
    if (syms) img.symbols = std::move(*syms);
  }
  img.loadAddress = lowest;
  img.entry = entry;
  img.bytes.assign(f.begin(), f.end());
  g.images.push_back(std::move(img));

  // Modules, page-aligned after the kernel (QEMU does the same).
  auto ram = m.ram();
  uint64_t cursor = alignUp(end, 4096);
  struct Mod {
    uint64_t start, end;
    std::string text;
  };
  std::vector<Mod> mods;
  for (const std::string& spec : o.modules) {
    std::string path = spec.substr(0, spec.find(' '));
    auto bytes = readFileBytes(path, cursor < ram.size() ? ram.size() - cursor : 0,
                               "of guest RAM left after the kernel");
    if (!bytes) return makeError("--initrd: " + bytes.error().message);
    TTVM_TRY(copyToRam(m, "module " + path, cursor, *bytes, bytes->size()));
    mods.push_back({cursor, cursor + bytes->size(), spec});
    GuestImage mi;
    mi.name = path.substr(path.rfind('/') + 1);
    mi.format = ImageFormat::kFlat;
    mi.loadAddress = cursor;
    mi.entry = 0;
    mi.bytes = std::move(*bytes);
    g.images.push_back(std::move(mi));
    cursor = alignUp(mods.back().end, 4096);
  }

  // The multiboot information block and what it points at.
  std::vector<uint8_t> block;
  auto at = [&](size_t off) { return cursor + off; };
  auto addString = [&](const std::string& s) {
    uint64_t a = at(block.size());
    block.insert(block.end(), s.begin(), s.end());
    block.push_back(0);
    return a;
  };
  auto put32 = [](std::vector<uint8_t>& b, size_t off, uint64_t v) {
    for (int i = 0; i < 4; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
  };
  block.resize(88, 0);  // struct multiboot_info (through the VBE fields)
  std::string cmdline = o.name;
  if (!o.append.empty()) cmdline += " " + o.append;
  uint64_t cmdAddr = addString(cmdline);
  uint64_t loaderName = addString("ttvm");
  std::vector<uint64_t> modStrings;
  for (const Mod& md : mods) modStrings.push_back(addString(md.text));
  block.resize(alignUp(block.size(), 8), 0);
  uint64_t modsAddr = at(block.size());
  for (size_t i = 0; i < mods.size(); ++i) {
    size_t off = block.size();
    block.resize(off + 16, 0);
    put32(block, off, mods[i].start);
    put32(block, off + 4, mods[i].end);
    put32(block, off + 8, modStrings[i]);
  }
  uint64_t mmapAddr = at(block.size());
  for (const auto& e : firmware::e820Map(ram.size())) {
    size_t off = block.size();
    block.resize(off + 24, 0);
    put32(block, off, 20);
    put32(block, off + 4, e.address);
    put32(block, off + 8, e.address >> 32);
    put32(block, off + 12, e.length);
    put32(block, off + 16, e.length >> 32);
    put32(block, off + 20, e.type);
  }
  uint64_t mmapLength = at(block.size()) - mmapAddr;
  uint32_t flags = (1u << 0) | (1u << 1) | (1u << 2) | (1u << 3) | (1u << 6) | (1u << 9);
  put32(block, 0, flags);
  put32(block, 4, firmware::kEbdaBase / 1024);      // mem_lower (KiB)
  put32(block, 8, (ram.size() - 0x100000) / 1024);  // mem_upper (KiB above 1 MiB)
  put32(block, 12, 0x8000FFFF);                     // boot device: first hard disk
  put32(block, 16, cmdAddr);
  put32(block, 20, mods.size());
  put32(block, 24, modsAddr);
  put32(block, 44, mmapLength);
  put32(block, 48, mmapAddr);
  put32(block, 64, loaderName);
  TTVM_TRY(copyToRam(m, "multiboot information", cursor, block, block.size()));

  CpuState s = protectedModeState(static_cast<uint32_t>(entry));
  s.reg(Gpr::kRax) = kMultibootBootloaderMagic;
  s.reg(Gpr::kRbx) = cursor;
  g.cpu = s;
  return g;
}

}  // namespace

namespace {

// A boot sector's hand-over: `image`'s first 512 bytes at 0x7C00, real mode,
// DL = 0x80 (the first hard disk). `image` becomes the trace's guest image.
Result<LoadedGuest> bootSectorGuest(Machine& m, const std::string& name,
                                    std::span<const uint8_t> image) {
  LoadedGuest g;
  TTVM_TRY(copyToRam(m, name, 0x7C00, image.subspan(0, 512), 512));
  GuestImage img;
  img.name = name;
  img.format = ImageFormat::kBootSector;
  img.loadAddress = 0x7C00;
  img.entry = 0x7C00;
  img.bytes.assign(image.begin(), image.end());
  g.images.push_back(std::move(img));
  g.cpu = realModeState(0, 0x7C00);
  g.cpu.reg(Gpr::kRdx) = 0x80;
  g.description = "boot sector at 0x7c00 in real mode";
  return g;
}

}  // namespace

Result<std::vector<uint8_t>> readFileBytes(const std::string& path, uint64_t maxBytes,
                                           std::string_view limit) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return makeError(path + ": cannot open: " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return makeError(path + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) {
    const char* what = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    return makeError(path + ": is " + what + ", not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > maxBytes)
    return makeError(path + ": is " + std::to_string(size) + " bytes, more than the " +
                     std::to_string(maxBytes) + " bytes " + std::string(limit));
  std::vector<uint8_t> bytes(size);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(fd, bytes.data() + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return makeError(path + ": read error at byte " + std::to_string(done) + ": " +
                       std::strerror(errno));
    if (n == 0)
      return makeError(path + ": shrank to " + std::to_string(done) + " bytes while being read");
    done += static_cast<size_t>(n);
  }
  return bytes;
}

CpuState realModeState(uint16_t cs, uint16_t ip) {
  CpuState s = resetState();
  for (int i = 0; i < kNumSegRegs; ++i) {
    SegmentRegister& r = s.seg[i];
    r.selector = 0;
    r.base = 0;
    r.limit = 0xFFFF;
    r.attributes = 0x93;
  }
  SegmentRegister& c = s.segment(SegReg::kCs);
  c.selector = cs;
  c.base = uint64_t{cs} << 4;
  c.attributes = 0x9B;
  s.rip = ip;
  s.idtr = {0, 0x3FF};
  s.reg(Gpr::kRsp) = 0x7C00;
  return s;
}

CpuState protectedModeState(uint32_t eip) {
  CpuState s = resetState();
  s.cr0 = cr0::kPE | cr0::kET;
  s.gdtr = {firmware::kGdtAddress, firmware::kGdtLimit};
  s.idtr = {0, 0x3FF};
  for (int i = 0; i < kNumSegRegs; ++i)
    s.seg[i] = {firmware::kData32Selector, 0, 0xFFFFFFFF, 0xC093};
  s.segment(SegReg::kCs) = {firmware::kCode32Selector, 0, 0xFFFFFFFF, 0xC09B};
  s.rip = eip;
  s.rflags = flags::kFixed1;
  s.reg(Gpr::kRsp) = kStackTop;
  return s;
}

CpuState longModeState(uint64_t rip, uint64_t pml4, uint64_t rsp) {
  CpuState s = protectedModeState(0);
  s.cr0 = cr0::kPE | cr0::kET | cr0::kNE | cr0::kWP | cr0::kPG;
  s.cr4 = cr4::kPAE;
  s.cr3 = pml4;
  s.msr.efer = efer::kLME | efer::kLMA;
  s.segment(SegReg::kCs) = {firmware::kCode64Selector, 0, 0xFFFFFFFF, 0xA09B};
  s.rip = rip;
  s.reg(Gpr::kRsp) = rsp;
  return s;
}

Status buildIdentityMap(std::span<uint8_t> ram, uint64_t at) {
  if (at % 4096 != 0 || at + 6 * 4096 > ram.size())
    return makeError("page tables at " + hex(at) + " do not fit in RAM");
  std::memset(ram.data() + at, 0, 6 * 4096);
  auto put = [&](uint64_t addr, uint64_t v) { std::memcpy(ram.data() + addr, &v, 8); };
  uint64_t pml4 = at, pdpt = at + 0x1000, pd = at + 0x2000;
  put(pml4, pdpt | 0x3);  // present, writable
  for (uint64_t i = 0; i < 4; ++i) {
    put(pdpt + 8 * i, (pd + 0x1000 * i) | 0x3);
    for (uint64_t j = 0; j < 512; ++j)
      put(pd + 0x1000 * i + 8 * j, ((i << 30) | (j << 21)) | 0x83);  // present, writable, 2 MiB
  }
  return {};
}

Result<std::vector<Symbol>> elfSymbols(std::span<const uint8_t> f) {
  std::vector<Symbol> out;
  if (f.size() < EI_NIDENT || std::memcmp(f.data(), ELFMAG, SELFMAG) != 0) return out;
  bool is64 = f[EI_CLASS] == ELFCLASS64;
  uint64_t shoff, shentsize, shnum;
  if (is64) {
    Elf64_Ehdr h;
    if (!readStruct(f, 0, h)) return makeError("truncated ELF header");
    shoff = h.e_shoff, shentsize = h.e_shentsize, shnum = h.e_shnum;
  } else {
    Elf32_Ehdr h;
    if (!readStruct(f, 0, h)) return makeError("truncated ELF header");
    shoff = h.e_shoff, shentsize = h.e_shentsize, shnum = h.e_shnum;
  }
  struct Sec {
    uint32_t type, link;
    uint64_t offset, size, entsize;
  };
  auto section = [&](uint64_t i) -> std::optional<Sec> {
    uint64_t off = shoff + i * shentsize;
    if (is64) {
      Elf64_Shdr s;
      if (shentsize < sizeof s || !readStruct(f, off, s)) return std::nullopt;
      return Sec{s.sh_type, s.sh_link, s.sh_offset, s.sh_size, s.sh_entsize};
    }
    Elf32_Shdr s;
    if (shentsize < sizeof s || !readStruct(f, off, s)) return std::nullopt;
    return Sec{s.sh_type, s.sh_link, s.sh_offset, s.sh_size, s.sh_entsize};
  };
  for (uint64_t i = 0; i < shnum && i < 4096; ++i) {
    auto sec = section(i);
    if (!sec)
      return makeError("section header " + std::to_string(i) + " at " + hex(shoff + i * shentsize) +
                       " is past the end of the file");
    if (sec->type != SHT_SYMTAB) continue;
    auto strtab = section(sec->link);
    if (!strtab || strtab->offset > f.size() || strtab->size > f.size() - strtab->offset)
      return makeError("symbol table's string table (section " + std::to_string(sec->link) +
                       ") lies outside the file");
    uint64_t entsize = is64 ? sizeof(Elf64_Sym) : sizeof(Elf32_Sym);
    if (sec->offset > f.size() || sec->size > f.size() - sec->offset)
      return makeError("symbol table at " + hex(sec->offset) + " lies outside the file");
    for (uint64_t k = 0; k + entsize <= sec->size; k += entsize) {
      uint32_t nameOff;
      uint64_t value, size;
      unsigned char info;
      uint16_t shndx;
      if (is64) {
        Elf64_Sym s;
        readStruct(f, sec->offset + k, s);
        nameOff = s.st_name, value = s.st_value, size = s.st_size, info = s.st_info,
        shndx = s.st_shndx;
      } else {
        Elf32_Sym s;
        readStruct(f, sec->offset + k, s);
        nameOff = s.st_name, value = s.st_value, size = s.st_size, info = s.st_info,
        shndx = s.st_shndx;
      }
      int type = info & 0xF;
      if (shndx == SHN_UNDEF || nameOff == 0 || nameOff >= strtab->size) continue;
      if (type == STT_SECTION || type == STT_FILE) continue;
      const char* str = reinterpret_cast<const char*>(f.data() + strtab->offset + nameOff);
      size_t maxLen = strtab->size - nameOff;
      std::string nm(str, strnlen(str, maxLen));
      if (nm.empty()) continue;
      Symbol sym;
      sym.name = std::move(nm);
      sym.address = value;
      sym.size = size;
      sym.kind = type == STT_FUNC     ? SymbolKind::kFunction
                 : type == STT_OBJECT ? SymbolKind::kObject
                                      : SymbolKind::kOther;
      out.push_back(std::move(sym));
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Symbol& a, const Symbol& b) { return a.address < b.address; });
  return out;
}

Result<LoadedGuest> loadGuest(Machine& m, std::span<const uint8_t> f, const LoadOptions& o) {
  if (f.empty()) return makeError(o.name + ": the file is empty");
  // 1. Flat binary.
  if (o.loadAddress) {
    LoadedGuest g;
    GuestMode mode = o.mode.value_or(GuestMode::kProtected);
    uint64_t load = *o.loadAddress;
    uint64_t entry = o.entry.value_or(load);
    TTVM_TRY(copyToRam(m, o.name, load, f, f.size()));
    GuestImage img;
    img.name = o.name;
    img.format = ImageFormat::kFlat;
    img.loadAddress = load;
    img.entry = entry;
    img.bytes.assign(f.begin(), f.end());
    g.images.push_back(std::move(img));
    switch (mode) {
      case GuestMode::kReal: {
        if (entry >= 0x100000)
          return makeError("--entry " + hex(entry) + " is above 1 MiB, out of reach of real mode");
        auto cs = static_cast<uint16_t>((entry >> 4) & 0xF000);
        g.cpu = realModeState(cs, static_cast<uint16_t>(entry - (uint64_t{cs} << 4)));
        break;
      }
      case GuestMode::kProtected:
        if (entry > 0xFFFFFFFF) return makeError("--entry " + hex(entry) + " is above 4 GiB");
        g.cpu = protectedModeState(static_cast<uint32_t>(entry));
        break;
      case GuestMode::kLong: {
        uint64_t tables = 0;
        for (uint64_t c : kPageTableCandidates)
          if (c + 6 * 4096 <= load || c >= load + f.size()) {
            tables = c;
            break;
          }
        TTVM_TRY(buildIdentityMap(m.ram(), tables));
        g.cpu = longModeState(entry, tables, kStackTop);
        break;
      }
    }
    static constexpr const char* kModes[] = {"real", "protected", "long"};
    g.description = "flat binary at " + hex(load) + ", entry " + hex(entry) + " in " +
                    kModes[static_cast<int>(mode)] + " mode";
    return g;
  }
  if (o.mode || o.entry)
    return makeError("--mode and --entry apply to flat binaries: give --load-addr too");
  // 2. Multiboot, then a Linux bzImage.
  if (auto mb = findMultiboot(f)) return loadMultiboot(m, f, o, *mb);
  if (isLinuxBzImage(f) || (o.kernelOnly && f.size() >= 512 && f[510] == 0x55 && f[511] == 0xAA))
    return loadLinux(m, f, o);
  if (!o.modules.empty())
    return makeError("--initrd needs a multiboot kernel or a Linux bzImage; " + o.name +
                     " has neither a multiboot header in its first 8 KiB nor \"HdrS\" at 0x202");
  // 3-4. ELF.
  if (f.size() >= SELFMAG && std::memcmp(f.data(), ELFMAG, SELFMAG) == 0) {
    auto info = parseElf(f, o.name);
    TTVM_TRY(info);
    uint64_t entry, lowest;
    auto end = loadElfSegments(m, *info, f, o.name, entry, lowest);
    TTVM_TRY(end);
    LoadedGuest g;
    GuestImage img;
    img.name = o.name;
    img.format = info->is64 ? ImageFormat::kElf64 : ImageFormat::kElf32;
    img.loadAddress = lowest;
    img.entry = entry;
    img.bytes.assign(f.begin(), f.end());
    auto syms = elfSymbols(f);
    if (!syms) return makeError(o.name + ": " + syms.error().message);
    img.symbols = std::move(*syms);
    if (!info->is64) {
      if (entry > 0xFFFFFFFF)
        return makeError(o.name + ": entry " + hex(entry) + " is above 4 GiB");
      g.cpu = protectedModeState(static_cast<uint32_t>(entry));
      g.description = "ELF32, entry " + hex(entry) + " in 32-bit protected mode";
    } else {
      uint64_t tables = 0;
      for (uint64_t c : kPageTableCandidates) {
        bool clash = false;
        for (const Segment& s : info->segments)
          if (c < s.paddr + s.memBytes && s.paddr < c + 6 * 4096) clash = true;
        if (!clash) {
          tables = c;
          break;
        }
      }
      if (tables == 0) return makeError(o.name + ": no room below 1 MiB for the boot page tables");
      TTVM_TRY(buildIdentityMap(m.ram(), tables));
      g.cpu = longModeState(info->entry, tables, kStackTop);
      g.description = "ELF64, entry " + hex(info->entry) + " in long mode (4 GiB identity map at " +
                      hex(tables) + ")";
    }
    g.images.push_back(std::move(img));
    return g;
  }
  if (o.kernelOnly)
    return makeError(o.name +
                     ": --kernel takes a Linux bzImage, a multiboot kernel or an ELF file; this is "
                     "none (no \"HdrS\" at offset 0x202, no multiboot header in the first 8 KiB, "
                     "no ELF magic at offset 0)");
  // 5. Boot sector.
  if (f.size() >= 512 && f[510] == 0x55 && f[511] == 0xAA) return bootSectorGuest(m, o.name, f);
  return makeError(o.name +
                   ": not a multiboot kernel, ELF file or boot sector (no multiboot header in "
                   "the first 8 KiB, no ELF magic, no 55 AA at offset 510); for a flat binary "
                   "give --load-addr ADDR [--entry ADDR] [--mode real|prot|long]");
}

Result<LoadedGuest> loadBootDisk(Machine& m) {
  const DiskImage* disk = nullptr;
  unsigned slot = 0;
  for (; slot < Machine::kDiskSlots && disk == nullptr; ++slot) disk = m.disk(slot);
  if (disk == nullptr) return makeError("no disk to boot from");
  std::vector<uint8_t> sector(DiskImage::kSectorBytes);
  if (!disk->read(0, sector))
    return makeError(disk->path() + ": cannot read sector 0: " + std::strerror(errno));
  if (sector[510] != 0x55 || sector[511] != 0xAA) {
    char found[16];
    std::snprintf(found, sizeof found, "%02x %02x", sector[510], sector[511]);
    return makeError(disk->path() +
                     ": not bootable: sector 0 does not end with the boot signature 55 AA "
                     "(bytes 510-511 are " +
                     found + "); give a kernel to boot instead, or a disk with a boot sector");
  }
  auto g = bootSectorGuest(m, disk->path().substr(disk->path().rfind('/') + 1), sector);
  if (g)
    g->description = "boot sector of disk " + std::to_string(slot - 1) + " (" + disk->path() +
                     ") at 0x7c00 in real mode, DL = 0x80";
  return g;
}

}  // namespace ttvm::machine
