// The MMX-only instructions: PSHUFW, MOVNTQ, MASKMOVQ, MOVQ2DQ, MOVDQ2Q, and
// MASKMOVDQU (its XMM twin). The MMX forms of the shared integer operations
// are in fpu/mmx.h, reached from the handlers in fpu/sse.cc.
#include "fpu/mmx.h"

#include "fpu/fpu.h"

namespace ttvm::fpu {
namespace {

// PSHUFW mm, mm/m64, imm8.
ExecStatus pshufw(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(mmxAvailable(c));
  uint64_t b;
  TTVM_RETURN_ON_FAULT(readQword(c, i, 1, b));
  mmx::finish(c, i.op[0].reg, sse::shuffleLowWords(Vec128{{b, 0}}, uint8_t(i.imm)).q[0]);
  return ExecStatus::kNext;
}

// MOVNTQ m64, mm (the non-temporal hint changes nothing here).
ExecStatus movntq(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(mmxAvailable(c));
  TTVM_RETURN_ON_FAULT(
      c.writeMem<uint64_t>(i.mem.seg, c.effectiveAddress(i), readMmx(c, i.op[1].reg)));
  enterMmxMode(c);
  return ExecStatus::kNext;
}

// MASKMOVQ/MASKMOVDQU: byte k of op[0] goes to DS:rDI + k (segment override
// allowed) where the top bit of byte k of op[1] is set. Each selected byte
// is its own write, in ascending order: a fault part-way leaves the bytes
// before it written (the SDM leaves the order of the stores open).
template <size_t kBytes>
bool maskedStore(CpuImpl& c, const Instr& i, const Vec128& data, const Vec128& mask) {
  uint8_t d[16], m[16];
  std::memcpy(d, data.q.data(), 16);
  std::memcpy(m, mask.q.data(), 16);
  const unsigned seg = (i.prefixes & prefix::kSegOverride) ? i.segOverride : 3;
  const uint64_t base = c.gpr(Gpr::kRdi);
  for (size_t k = 0; k < kBytes; ++k) {
    if (!(m[k] & 0x80)) continue;
    if (!c.writeMem<uint8_t>(seg, CpuImpl::truncAddr(base + k, i.addrSize), d[k])) return false;
  }
  return true;
}

ExecStatus maskmovq(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(mmxAvailable(c));
  const Vec128 data{{readMmx(c, i.op[0].reg), 0}}, mask{{readMmx(c, i.op[1].reg), 0}};
  TTVM_RETURN_ON_FAULT(maskedStore<8>(c, i, data, mask));
  enterMmxMode(c);
  return ExecStatus::kNext;
}

ExecStatus maskmovdqu(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(sseAvailable(c));
  TTVM_RETURN_ON_FAULT(maskedStore<16>(c, i, xmm(c, i.op[0].reg), xmm(c, i.op[1].reg)));
  return ExecStatus::kNext;
}

// MOVQ2DQ xmm, mm (the upper qword zeroed) and MOVDQ2Q mm, xmm: SSE2
// instructions with the MMX rules on top.
ExecStatus movq2dq(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(sseAvailable(c));
  TTVM_RETURN_ON_FAULT(mmxAvailable(c));
  xmm(c, i.op[0].reg) = Vec128{{readMmx(c, i.op[1].reg), 0}};
  enterMmxMode(c);
  return ExecStatus::kNext;
}

ExecStatus movdq2q(CpuImpl& c, const Instr& i) {
  TTVM_RETURN_ON_FAULT(sseAvailable(c));
  TTVM_RETURN_ON_FAULT(mmxAvailable(c));
  mmx::finish(c, i.op[0].reg, xmm(c, i.op[1].reg).q[0]);
  return ExecStatus::kNext;
}

}  // namespace

void registerMmxHandlers(HandlerTable& t) {
  t.setVector(ZYDIS_MNEMONIC_PSHUFW, &pshufw);
  t.setVector(ZYDIS_MNEMONIC_MOVNTQ, &movntq);
  t.setVector(ZYDIS_MNEMONIC_MASKMOVQ, &maskmovq);
  t.setVector(ZYDIS_MNEMONIC_MASKMOVDQU, &maskmovdqu);
  t.setVector(ZYDIS_MNEMONIC_MOVQ2DQ, &movq2dq);
  t.setVector(ZYDIS_MNEMONIC_MOVDQ2Q, &movdq2q);
}

}  // namespace ttvm::fpu
