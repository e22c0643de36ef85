// Loader tests with small ELF, multiboot and flat inputs built here.
#include "ttvm/machine/loader.h"

#include <elf.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "ttvm/machine/firmware.h"
#include "ttvm/machine/machine.h"

namespace ttvm {
using ttvm::machine::GuestMode;
using ttvm::machine::LoadOptions;
using ttvm::machine::Machine;
using ttvm::machine::MachineOptions;
namespace firmware = ttvm::machine::firmware;
using ttvm::machine::loadGuest;
namespace {

std::unique_ptr<Machine> machine() {
  MachineOptions o;
  o.ramBytes = 32ull << 20;
  auto m = Machine::create(o);
  return std::move(m).value();
}

template <typename T>
void put(std::vector<uint8_t>& b, size_t off, const T& v) {
  if (b.size() < off + sizeof(T)) b.resize(off + sizeof(T));
  std::memcpy(b.data() + off, &v, sizeof(T));
}

std::vector<uint8_t> multibootHeader(uint32_t flags) {
  std::vector<uint8_t> h(12);
  uint32_t magic = 0x1BADB002, sum = static_cast<uint32_t>(-(0x1BADB002 + flags));
  std::memcpy(h.data(), &magic, 4);
  std::memcpy(h.data() + 4, &flags, 4);
  std::memcpy(h.data() + 8, &sum, 4);
  return h;
}

// A one-segment ELF: code at file offset 0x100, loaded at paddr/vaddr, with a
// .symtab holding "entry_fn" (FUNC) and "data_obj" (OBJECT).
std::vector<uint8_t> makeElf(bool is64, uint64_t paddr, uint64_t vaddr, uint64_t entry,
                             std::vector<uint8_t> code, uint64_t memsz = 0) {
  std::vector<uint8_t> f(0x100 + code.size(), 0);
  std::copy(code.begin(), code.end(), f.begin() + 0x100);
  if (memsz == 0) memsz = code.size();
  // String and symbol tables after the code.
  const std::string strtab = std::string("\0entry_fn\0data_obj\0", 19);
  size_t strOff = f.size();
  for (char c : strtab) f.push_back(static_cast<uint8_t>(c));
  while (f.size() % 8) f.push_back(0);
  size_t symOff = f.size();
  size_t shOff;
  if (is64) {
    Elf64_Sym syms[3] = {};
    syms[1].st_name = 1, syms[1].st_value = entry, syms[1].st_size = 4,
    syms[1].st_info = ELF64_ST_INFO(STB_GLOBAL, STT_FUNC), syms[1].st_shndx = 1;
    syms[2].st_name = 10, syms[2].st_value = vaddr + 0x10, syms[2].st_size = 8,
    syms[2].st_info = ELF64_ST_INFO(STB_GLOBAL, STT_OBJECT), syms[2].st_shndx = 1;
    for (auto& s : syms) put(f, f.size(), s);
    shOff = f.size();
    Elf64_Shdr sh[3] = {};
    sh[1].sh_type = SHT_SYMTAB, sh[1].sh_offset = symOff, sh[1].sh_size = sizeof syms,
    sh[1].sh_link = 2, sh[1].sh_entsize = sizeof(Elf64_Sym);
    sh[2].sh_type = SHT_STRTAB, sh[2].sh_offset = strOff, sh[2].sh_size = strtab.size();
    for (auto& s : sh) put(f, f.size(), s);
    Elf64_Ehdr h = {};
    std::memcpy(h.e_ident, ELFMAG, SELFMAG);
    h.e_ident[EI_CLASS] = ELFCLASS64, h.e_ident[EI_DATA] = ELFDATA2LSB, h.e_ident[EI_VERSION] = 1;
    h.e_type = ET_EXEC, h.e_machine = EM_X86_64, h.e_version = 1, h.e_entry = entry;
    h.e_phoff = sizeof h, h.e_phentsize = sizeof(Elf64_Phdr), h.e_phnum = 1;
    h.e_shoff = shOff, h.e_shentsize = sizeof(Elf64_Shdr), h.e_shnum = 3;
    h.e_ehsize = sizeof h;
    put(f, 0, h);
    Elf64_Phdr p = {};
    p.p_type = PT_LOAD, p.p_offset = 0x100, p.p_vaddr = vaddr, p.p_paddr = paddr;
    p.p_filesz = code.size(), p.p_memsz = memsz, p.p_flags = PF_R | PF_X;
    put(f, sizeof h, p);
  } else {
    Elf32_Sym syms[3] = {};
    syms[1].st_name = 1, syms[1].st_value = static_cast<uint32_t>(entry), syms[1].st_size = 4,
    syms[1].st_info = ELF32_ST_INFO(STB_GLOBAL, STT_FUNC), syms[1].st_shndx = 1;
    syms[2].st_name = 10, syms[2].st_value = static_cast<uint32_t>(vaddr + 0x10),
    syms[2].st_size = 8, syms[2].st_info = ELF32_ST_INFO(STB_GLOBAL, STT_OBJECT),
    syms[2].st_shndx = 1;
    for (auto& s : syms) put(f, f.size(), s);
    shOff = f.size();
    Elf32_Shdr sh[3] = {};
    sh[1].sh_type = SHT_SYMTAB, sh[1].sh_offset = static_cast<uint32_t>(symOff),
    sh[1].sh_size = sizeof syms, sh[1].sh_link = 2, sh[1].sh_entsize = sizeof(Elf32_Sym);
    sh[2].sh_type = SHT_STRTAB, sh[2].sh_offset = static_cast<uint32_t>(strOff),
    sh[2].sh_size = static_cast<uint32_t>(strtab.size());
    for (auto& s : sh) put(f, f.size(), s);
    Elf32_Ehdr h = {};
    std::memcpy(h.e_ident, ELFMAG, SELFMAG);
    h.e_ident[EI_CLASS] = ELFCLASS32, h.e_ident[EI_DATA] = ELFDATA2LSB, h.e_ident[EI_VERSION] = 1;
    h.e_type = ET_EXEC, h.e_machine = EM_386, h.e_version = 1;
    h.e_entry = static_cast<uint32_t>(entry);
    h.e_phoff = sizeof h, h.e_phentsize = sizeof(Elf32_Phdr), h.e_phnum = 1;
    h.e_shoff = static_cast<uint32_t>(shOff), h.e_shentsize = sizeof(Elf32_Shdr), h.e_shnum = 3;
    h.e_ehsize = sizeof h;
    put(f, 0, h);
    Elf32_Phdr p = {};
    p.p_type = PT_LOAD, p.p_offset = 0x100, p.p_vaddr = static_cast<uint32_t>(vaddr);
    p.p_paddr = static_cast<uint32_t>(paddr), p.p_filesz = static_cast<uint32_t>(code.size());
    p.p_memsz = static_cast<uint32_t>(memsz), p.p_flags = PF_R | PF_X;
    put(f, sizeof h, p);
  }
  return f;
}

uint32_t rd32(std::span<const uint8_t> ram, uint64_t a) {
  uint32_t v;
  std::memcpy(&v, ram.data() + a, 4);
  return v;
}

TEST(Loader, Elf32EntersFlatProtectedModeWithSymbols) {
  auto m = machine();
  std::vector<uint8_t> code = {0x90, 0x90, 0xF4};
  auto f = makeElf(false, 0x200000, 0x200000, 0x200001, code, 0x1000);
  auto g = loadGuest(*m, f, LoadOptions{"k.elf"});
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->images[0].format, ImageFormat::kElf32);
  EXPECT_EQ(g->cpu.rip, 0x200001u);
  EXPECT_EQ(g->cpu.cr0 & 1, 1u);
  EXPECT_EQ(g->cpu.cr0 & cr0::kPG, 0u);
  EXPECT_EQ(cpuMode(g->cpu), CpuMode::kProtected32);
  EXPECT_EQ(g->cpu.gdtr.base, firmware::kGdtAddress);
  EXPECT_EQ(std::memcmp(m->ram().data() + 0x200000, code.data(), 3), 0);
  EXPECT_EQ(m->ram()[0x200003], 0);  // bss zeroed
  ASSERT_EQ(g->images[0].symbols.size(), 2u);
  EXPECT_EQ(g->images[0].symbols[0].name, "entry_fn");
  EXPECT_EQ(g->images[0].symbols[0].kind, SymbolKind::kFunction);
  EXPECT_EQ(g->images[0].symbols[1].name, "data_obj");
  EXPECT_EQ(g->images[0].symbols[1].kind, SymbolKind::kObject);
}

TEST(Loader, Elf64EntersLongModeWithIdentityMap) {
  auto m = machine();
  auto f = makeElf(true, 0x300000, 0xFFFFFFFF80300000ull, 0x300000, {0xF4});
  auto g = loadGuest(*m, f, LoadOptions{"k64"});
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->images[0].format, ImageFormat::kElf64);
  EXPECT_EQ(cpuMode(g->cpu), CpuMode::kLong64);
  EXPECT_EQ(g->cpu.msr.efer & (efer::kLME | efer::kLMA), efer::kLME | efer::kLMA);
  EXPECT_TRUE(g->cpu.cr4 & cr4::kPAE);
  // Walk the tables for 0xFEE00000: PML4[0] -> PDPT[3] -> PD[503], a 2 MiB page.
  auto ram = m->ram();
  uint64_t pml4 = g->cpu.cr3;
  uint64_t pdpt = rd32(ram, pml4) & ~0xFFFull;
  uint64_t pd = rd32(ram, pdpt + 3 * 8) & ~0xFFFull;
  uint64_t pde = rd32(ram, pd + 503 * 8);
  EXPECT_EQ(pde & 0x83, 0x83u);
  EXPECT_EQ(pde & ~0xFFFull, 0xFEE00000u & ~0x1FFFFFull);
  EXPECT_EQ(g->images[0].symbols.size(), 2u);
}

TEST(Loader, MultibootElfInfoCmdlineModulesAndMmap) {
  auto m = machine();
  std::vector<uint8_t> code = multibootHeader(0x3);
  code.push_back(0xF4);
  auto f = makeElf(false, 0x100000, 0x100000, 0x10000C, code);
  // A module file on disk.
  std::string mod = ::testing::TempDir() + "/ttvm_loader_module.bin";
  std::FILE* fp = std::fopen(mod.c_str(), "wb");
  ASSERT_NE(fp, nullptr);
  std::fputs("module bytes", fp);
  std::fclose(fp);
  LoadOptions o;
  o.name = "kernel.elf";
  o.append = "a=1 b=2";
  o.modules = {mod + " arg1"};
  auto g = loadGuest(*m, f, o);
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->images[0].format, ImageFormat::kMultiboot);
  ASSERT_EQ(g->images.size(), 2u);
  EXPECT_EQ(g->cpu.reg(Gpr::kRax), 0x2BADB002u);
  EXPECT_EQ(cpuMode(g->cpu), CpuMode::kProtected32);
  EXPECT_EQ(g->cpu.rflags & flags::kIF, 0u);
  auto ram = m->ram();
  uint64_t info = g->cpu.reg(Gpr::kRbx);
  uint32_t fl = rd32(ram, info);
  EXPECT_EQ(fl & 0x24F, 0x24Fu);  // mem, boot device, cmdline, mods, mmap, loader name
  EXPECT_EQ(rd32(ram, info + 4), 639u);
  EXPECT_EQ(rd32(ram, info + 8), (32u << 10) - 1024);
  EXPECT_STREQ(reinterpret_cast<const char*>(ram.data() + rd32(ram, info + 16)),
               "kernel.elf a=1 b=2");
  EXPECT_STREQ(reinterpret_cast<const char*>(ram.data() + rd32(ram, info + 64)), "ttvm");
  ASSERT_EQ(rd32(ram, info + 20), 1u);
  uint64_t modEntry = rd32(ram, info + 24);
  uint32_t start = rd32(ram, modEntry), end = rd32(ram, modEntry + 4);
  EXPECT_EQ(start % 4096, 0u);
  EXPECT_EQ(end - start, 12u);
  EXPECT_EQ(std::memcmp(ram.data() + start, "module bytes", 12), 0);
  EXPECT_STREQ(reinterpret_cast<const char*>(ram.data() + rd32(ram, modEntry + 8)),
               (mod + " arg1").c_str());
  // The memory map: 24-byte entries (size field 20), usable RAM summing up.
  uint32_t len = rd32(ram, info + 44), addr = rd32(ram, info + 48);
  uint64_t usable = 0;
  for (uint32_t off = 0; off < len; off += rd32(ram, addr + off) + 4) {
    uint64_t base, length;
    std::memcpy(&base, ram.data() + addr + off + 4, 8);
    std::memcpy(&length, ram.data() + addr + off + 12, 8);
    if (rd32(ram, addr + off + 20) == 1) usable += length;
  }
  EXPECT_EQ(usable, 0x9FC00u + (32u << 20) - 0x100000);
}

TEST(Loader, MultibootAoutKludge) {
  auto m = machine();
  // header_addr 0x101000 at file offset 0x40; load_addr 0x100FC0 (file offset 0).
  std::vector<uint8_t> f(0x200, 0x90);
  auto h = multibootHeader(0x10003);
  std::memcpy(f.data() + 0x40, h.data(), 12);
  uint32_t fields[5] = {0x101000, 0x100FC0, 0, 0x102000, 0x101100};
  std::memcpy(f.data() + 0x4C, fields, sizeof fields);
  f[0x140] = 0xF4;
  auto g = loadGuest(*m, f, LoadOptions{"aout"});
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->images[0].format, ImageFormat::kMultiboot);
  EXPECT_EQ(g->cpu.rip, 0x101100u);
  EXPECT_EQ(m->ram()[0x101100], 0xF4);  // file offset 0x140 -> 0x100FC0 + 0x140
  EXPECT_EQ(m->ram()[0x101FFF], 0x00);  // bss up to bss_end_addr
}

TEST(Loader, FlatBinariesInEachMode) {
  std::vector<uint8_t> code = {0xF4};
  {
    auto m = machine();
    LoadOptions o{"flat.bin"};
    o.loadAddress = 0x7C00;
    o.mode = GuestMode::kReal;
    auto g = loadGuest(*m, code, o);
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(cpuMode(g->cpu), CpuMode::kReal);
    EXPECT_EQ(g->cpu.segment(SegReg::kCs).base + g->cpu.rip, 0x7C00u);
  }
  {
    auto m = machine();
    LoadOptions o{"flat.bin"};
    o.loadAddress = 0x12345;
    o.mode = GuestMode::kReal;
    auto g = loadGuest(*m, code, o);
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(g->cpu.segment(SegReg::kCs).selector, 0x1000);
    EXPECT_EQ(g->cpu.rip, 0x2345u);
  }
  {
    auto m = machine();
    LoadOptions o{"flat.bin"};
    o.loadAddress = 0x400000;
    o.entry = 0x400000;
    auto g = loadGuest(*m, code, o);
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(cpuMode(g->cpu), CpuMode::kProtected32);
    EXPECT_EQ(m->ram()[0x400000], 0xF4);
  }
  {
    auto m = machine();
    LoadOptions o{"flat.bin"};
    o.loadAddress = 0x400000;
    o.mode = GuestMode::kLong;
    auto g = loadGuest(*m, code, o);
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(cpuMode(g->cpu), CpuMode::kLong64);
  }
}

TEST(Loader, BootSector) {
  auto m = machine();
  std::vector<uint8_t> f(512, 0);
  f[0] = 0xF4;
  f[510] = 0x55;
  f[511] = 0xAA;
  auto g = loadGuest(*m, f, LoadOptions{"disk.img"});
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->images[0].format, ImageFormat::kBootSector);
  EXPECT_EQ(g->cpu.reg(Gpr::kRdx) & 0xFF, 0x80u);
  EXPECT_EQ(m->ram()[0x7C00], 0xF4);
}

TEST(Loader, ClearErrors) {
  auto m = machine();
  auto noFormat = loadGuest(*m, std::vector<uint8_t>(100, 0x90), LoadOptions{"junk"});
  ASSERT_FALSE(noFormat.ok());
  EXPECT_NE(noFormat.error().message.find("--load-addr"), std::string::npos);
  // A segment past the end of RAM names the address.
  auto big = makeElf(false, 0x4000000, 0x4000000, 0x4000000, {0xF4});
  auto r = loadGuest(*m, big, LoadOptions{"big.elf"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("0x4000000"), std::string::npos);
  EXPECT_NE(r.error().message.find("--ram"), std::string::npos);
  // Every truncation of an ELF is an error or a load, never a crash.
  auto elf = makeElf(false, 0x200000, 0x200000, 0x200000, {0xF4});
  for (size_t cut = 0; cut < elf.size(); ++cut) {
    auto mm = machine();
    (void)loadGuest(*mm, std::span<const uint8_t>(elf).first(cut), LoadOptions{"cut"});
  }
  auto vga = makeElf(false, 0xB8000, 0xB8000, 0xB8000, {0xF4});
  auto v = loadGuest(*m, vga, LoadOptions{"vga.elf"});
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error().message.find("VGA"), std::string::npos);
  LoadOptions o{"x"};
  o.mode = GuestMode::kReal;
  EXPECT_FALSE(loadGuest(*m, std::vector<uint8_t>{0xF4}, o).ok());
}

}  // namespace
}  // namespace ttvm
