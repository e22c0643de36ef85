#include "cpu_harness.h"

#include <cctype>

#include <gtest/gtest.h>

namespace ttvm::cputest {

std::vector<uint8_t> hexBytes(const std::string& hex) {
  std::vector<uint8_t> out;
  int nibble = -1;
  for (char ch : hex) {
    if (!std::isxdigit(static_cast<unsigned char>(ch))) continue;
    const int v =
        std::isdigit(static_cast<unsigned char>(ch)) ? ch - '0' : (std::tolower(ch) - 'a' + 10);
    if (nibble < 0) {
      nibble = v;
    } else {
      out.push_back(static_cast<uint8_t>(nibble << 4 | v));
      nibble = -1;
    }
  }
  return out;
}

uint64_t descriptor(uint32_t base, uint32_t limit, uint32_t access, uint32_t flags4) {
  uint64_t d = limit & 0xFFFF;
  d |= uint64_t{base & 0xFFFFFF} << 16;
  d |= uint64_t{access & 0xFF} << 40;
  d |= uint64_t{(limit >> 16) & 0xF} << 48;
  d |= uint64_t{flags4 & 0xF} << 52;
  d |= uint64_t{(base >> 24) & 0xFF} << 56;
  return d;
}

Machine::Machine(size_t ramSize, std::vector<PhysicalMemory::Range> holes) : ram(ramSize, 0) {
  PhysicalMemory mem;
  mem.ram = std::span<uint8_t>(ram.data(), ram.size());
  mem.mmioHoles = std::move(holes);
  cpu = std::make_unique<Cpu>(CpuModel::ttvmDefault(), mem, env);
}

void Machine::load(uint64_t phys, const std::vector<uint8_t>& bytes) {
  std::memcpy(ram.data() + phys, bytes.data(), bytes.size());
  cpu->notifyRamWritten(phys, bytes.size());
}

void Machine::put(uint64_t phys, uint64_t v, unsigned size) {
  std::memcpy(ram.data() + phys, &v, size);
  cpu->notifyRamWritten(phys, size);
}

uint64_t Machine::get(uint64_t phys, unsigned size) const {
  uint64_t v = 0;
  std::memcpy(&v, ram.data() + phys, size);
  return v;
}

void Machine::setupReal(uint16_t cs, uint16_t ip) {
  CpuState s = resetState();
  s.segment(SegReg::kCs) = SegmentRegister{cs, uint64_t{cs} << 4, 0xFFFF, 0x9B};
  s.rip = ip;
  s.reg(Gpr::kRsp) = 0x7000;
  s.reg(Gpr::kRdx) = 0;
  s.idtr = TableRegister{0, 0x3FF};
  cpu->setState(s);
}

namespace {
void writeGdt(Machine& m) {
  using namespace layout;
  m.put(kGdt + 0x00, 0, 8);
  m.put(kGdt + kCode64, descriptor(0, 0xFFFFF, 0x9B, 0xA), 8);
  m.put(kGdt + kData0, descriptor(0, 0xFFFFF, 0x93, 0xC), 8);
  m.put(kGdt + kUserCode32, descriptor(0, 0xFFFFF, 0xFB, 0xC), 8);
  m.put(kGdt + kUserData, descriptor(0, 0xFFFFF, 0xF3, 0xC), 8);
  m.put(kGdt + kUserCode64, descriptor(0, 0xFFFFF, 0xFB, 0xA), 8);
  // 64-bit TSS (16 bytes): base kTss, limit 0x67 + I/O bitmap.
  m.put(kGdt + kTssSel, descriptor(static_cast<uint32_t>(kTss), 0x67 + 0x2000 + 1, 0x89, 0), 8);
  m.put(kGdt + kTssSel + 8, 0, 8);
  m.put(kGdt + kCode32, descriptor(0, 0xFFFFF, 0x9B, 0xC), 8);
  m.put(kGdt + kCode16, descriptor(0, 0xFFFF, 0x9B, 0x0), 8);
  m.put(kGdt + kData16, descriptor(0, 0xFFFF, 0x93, 0x0), 8);
}

SegmentRegister cacheOf(uint16_t sel, uint64_t raw) {
  SegmentRegister r;
  r.selector = sel;
  r.base = ((raw >> 16) & 0xFFFFFF) | (((raw >> 56) & 0xFF) << 24);
  uint32_t limit = static_cast<uint32_t>((raw & 0xFFFF) | (((raw >> 48) & 0xF) << 16));
  r.attributes = static_cast<uint32_t>((raw >> 40) & 0xFF) |
                 (static_cast<uint32_t>((raw >> 52) & 0xF) << 12) | 1;
  if (r.attributes & segattr::kG) limit = (limit << 12) | 0xFFF;
  r.limit = limit;
  return r;
}
}  // namespace

void Machine::setupFlat32(uint64_t eip) {
  using namespace layout;
  writeGdt(*this);
  CpuState s = resetState();
  s.cr0 = cr0::kPE | cr0::kET;
  s.gdtr = TableRegister{kGdt, 0x57};
  s.idtr = TableRegister{kIdt, 0x7FF};
  s.segment(SegReg::kCs) = cacheOf(kCode32, get(kGdt + kCode32, 8));
  for (SegReg r : {SegReg::kDs, SegReg::kEs, SegReg::kSs, SegReg::kFs, SegReg::kGs})
    s.segment(r) = cacheOf(kData0, get(kGdt + kData0, 8));
  s.rip = eip;
  s.reg(Gpr::kRsp) = kStackTop;
  s.reg(Gpr::kRdx) = 0;
  cpu->setState(s);
}

void Machine::setupLong64(uint64_t rip) {
  using namespace layout;
  writeGdt(*this);
  put(kPml4, kPdpt | 7, 8);
  put(kPdpt, kPd | 7, 8);
  for (uint64_t k = 0; k < 512; ++k) put(kPd + k * 8, (k << 21) | 0x87, 8);
  // TSS: RSP0, IST1, I/O bitmap offset 0x68 (all ports allowed).
  put(kTss + 4, kRsp0, 8);
  put(kTss + 0x24, kIst1, 8);
  put(kTss + 0x66, 0x68, 2);
  CpuState s = resetState();
  s.cr0 = cr0::kPE | cr0::kPG | cr0::kET | cr0::kWP;
  s.cr3 = kPml4;
  s.cr4 = cr4::kPAE | cr4::kPGE | cr4::kOSFXSR;
  s.msr.efer = efer::kLME | efer::kLMA | efer::kNXE | efer::kSCE;
  s.gdtr = TableRegister{kGdt, 0x57};
  s.idtr = TableRegister{kIdt, 0xFFF};
  s.segment(SegReg::kCs) = cacheOf(kCode64, get(kGdt + kCode64, 8));
  for (SegReg r : {SegReg::kDs, SegReg::kEs, SegReg::kSs, SegReg::kFs, SegReg::kGs})
    s.segment(r) = cacheOf(kData0, get(kGdt + kData0, 8));
  s.tr = SegmentRegister{kTssSel, kTss, 0x67 + 0x2000 + 1, 0x8B};
  s.rip = rip;
  s.reg(Gpr::kRsp) = kStackTop;
  s.reg(Gpr::kRdx) = 0;
  cpu->setState(s);
}

void Machine::enterUser64() {
  edit([&](CpuState& s) {
    s.segment(SegReg::kCs) =
        cacheOf(layout::kUserCode64 | 3, get(layout::kGdt + layout::kUserCode64, 8));
    s.segment(SegReg::kSs) =
        cacheOf(layout::kUserData | 3, get(layout::kGdt + layout::kUserData, 8));
    s.segment(SegReg::kCs).selector = layout::kUserCode64 | 3;
    s.segment(SegReg::kSs).selector = layout::kUserData | 3;
  });
}

void Machine::enterCompat32() {
  edit([&](CpuState& s) {
    s.segment(SegReg::kCs) = cacheOf(layout::kCode32, get(layout::kGdt + layout::kCode32, 8));
  });
}

void Machine::setAllIdt64(uint64_t handler) {
  for (unsigned v = 0; v < 32; ++v) setIdt64(static_cast<uint8_t>(v), handler);
}

void Machine::map4k(uint64_t linear, uint64_t phys, uint64_t pte) {
  constexpr uint64_t kPd2 = 0x13000, kPt = 0x14000;
  put(layout::kPdpt + 8, kPd2 | 7, 8);
  put(kPd2, kPt | 7, 8);
  const uint64_t index = (linear - 0x40000000) >> 12;
  put(kPt + index * 8, phys | pte, 8);
}

void Machine::setIdt64(uint8_t vector, uint64_t handler, int dpl, int ist, uint8_t type,
                       uint16_t sel) {
  const uint64_t lo = (handler & 0xFFFF) | (uint64_t{sel} << 16) | (uint64_t(ist & 7) << 32) |
                      (uint64_t{type} << 40) | (uint64_t(dpl & 3) << 45) | (1ull << 47) |
                      (((handler >> 16) & 0xFFFF) << 48);
  put(layout::kIdt + vector * 16u, lo, 8);
  put(layout::kIdt + vector * 16u + 8, handler >> 32, 8);
}

void Machine::setIdt32(uint8_t vector, uint32_t handler, int dpl, uint8_t type, uint16_t sel) {
  const uint64_t g = (handler & 0xFFFF) | (uint64_t{sel} << 16) | (uint64_t{type} << 40) |
                     (uint64_t(dpl & 3) << 45) | (1ull << 47) |
                     (uint64_t{(handler >> 16) & 0xFFFF} << 48);
  put(layout::kIdt + vector * 8u, g, 8);
}

uint64_t codeAddress(CpuMode mode) {
  return mode == CpuMode::kReal ? 0x7C00 : layout::kCode;
}

void runInstrCase(const InstrCase& c) {
  SCOPED_TRACE(c.name);
  Machine m;
  const uint64_t code = codeAddress(c.mode);
  switch (c.mode) {
    case CpuMode::kReal: m.setupReal(0, static_cast<uint16_t>(code)); break;
    case CpuMode::kProtected32: m.setupFlat32(code); break;
    case CpuMode::kLong64: m.setupLong64(code); break;
    case CpuMode::kCompatibility32:
      m.setupLong64(code);
      m.enterCompat32();
      break;
    default: FAIL() << "unsupported mode in table";
  }
  // Every exception vector gets a handler (HLT) so a delivered exception is
  // reported as kException instead of escalating to a triple fault.
  const uint64_t handler = c.mode == CpuMode::kReal ? 0x9000 : layout::kCode + 0x8000;
  m.loadHex(handler, "f4");
  for (uint8_t v = 0; v < 32; ++v) {
    if (c.mode == CpuMode::kLong64 || c.mode == CpuMode::kCompatibility32) m.setIdt64(v, handler);
    if (c.mode == CpuMode::kProtected32) m.setIdt32(v, static_cast<uint32_t>(handler));
    if (c.mode == CpuMode::kReal) m.put(v * 4u, handler, 4);  // 0000:9000
  }
  const std::vector<uint8_t> bytes = hexBytes(c.bytes);
  m.load(code, bytes);
  for (const MemValue& mv : c.memBefore) m.put(mv.addr, mv.value, mv.size);
  m.edit([&](CpuState& s) {
    for (const RegValue& r : c.before) s.reg(r.reg) = r.value;
    s.rflags = c.flagsBefore | flags::kFixed1;
  });
  const CpuState before = m.state();
  StepResult r;
  for (int k = 0; k < c.steps; ++k) r = m.step();
  const CpuState after = m.state();
  if (c.exception) {
    EXPECT_EQ(r.outcome, StepOutcome::kException);
    EXPECT_EQ(int(r.vector), int(*c.exception));
    return;
  }
  ASSERT_EQ(r.outcome, StepOutcome::kRetired)
      << "vector " << int(r.vector) << " error " << r.errorCode << " unimpl "
      << (m.cpu->unimplementedLog().empty() ? std::string() : m.cpu->unimplementedLog().back());
  EXPECT_EQ(after.rip, c.ripAfter ? *c.ripAfter : code + bytes.size());
  // Registers: listed ones must match; all others unchanged.
  for (int g = 0; g < kNumGprs; ++g) {
    uint64_t want = before.gpr[g];
    for (const RegValue& rv : c.after)
      if (static_cast<int>(rv.reg) == g) want = rv.value;
    EXPECT_EQ(after.gpr[g], want) << "gpr " << g;
  }
  if (c.flagsAfter) {
    EXPECT_EQ(after.rflags, *c.flagsAfter | flags::kFixed1) << std::hex;
  }
  for (const MemValue& mv : c.memAfter)
    EXPECT_EQ(m.get(mv.addr, mv.size), mv.value) << std::hex << mv.addr;
  EXPECT_EQ(after.steps, before.steps + c.steps);
}

}  // namespace ttvm::cputest
