// The one place Zydis decodes guest code: bytes -> Instr (exec/instr.h).
#include "exec/handler_table.h"
#include "exec/internals.h"

namespace ttvm {

void initDecoder(ZydisDecoder& dec, CpuMode mode) {
  ZydisMachineMode mm;
  ZydisStackWidth sw;
  switch (mode) {
    case CpuMode::kLong64:
      mm = ZYDIS_MACHINE_MODE_LONG_64;
      sw = ZYDIS_STACK_WIDTH_64;
      break;
    case CpuMode::kCompatibility32:
      mm = ZYDIS_MACHINE_MODE_LONG_COMPAT_32;
      sw = ZYDIS_STACK_WIDTH_32;
      break;
    case CpuMode::kCompatibility16:
      mm = ZYDIS_MACHINE_MODE_LONG_COMPAT_16;
      sw = ZYDIS_STACK_WIDTH_16;
      break;
    case CpuMode::kProtected32:
      mm = ZYDIS_MACHINE_MODE_LEGACY_32;
      sw = ZYDIS_STACK_WIDTH_32;
      break;
    case CpuMode::kProtected16:
      mm = ZYDIS_MACHINE_MODE_LEGACY_16;
      sw = ZYDIS_STACK_WIDTH_16;
      break;
    case CpuMode::kReal:
    case CpuMode::kVirtual8086:
    default:
      mm = ZYDIS_MACHINE_MODE_REAL_16;
      sw = ZYDIS_STACK_WIDTH_16;
      break;
  }
  const ZyanStatus st = ZydisDecoderInit(&dec, mm, sw);
  TTVM_ASSERT(ZYAN_SUCCESS(st), "ZydisDecoderInit failed");
}

void configureDecoderForModel(ZydisDecoder& dec, const CpuModel& model) {
  // Without BMI1 (CPUID.7.EBX[3]) F3 0F BC is REP BSF, as on older CPUs;
  // without ABM/LZCNT (CPUID.80000001.ECX[5]) F3 0F BD is REP BSR.
  const bool bmi1 = model.lookup(7, 0).ebx & (1u << 3);
  const bool lzcnt = model.lookup(0x80000001u, 0).ecx & (1u << 5);
  ZydisDecoderEnableMode(&dec, ZYDIS_DECODER_MODE_TZCNT, bmi1 ? ZYAN_TRUE : ZYAN_FALSE);
  ZydisDecoderEnableMode(&dec, ZYDIS_DECODER_MODE_LZCNT, lzcnt ? ZYAN_TRUE : ZYAN_FALSE);
  // The reserved-NOP/hint space 0F 18-0F 1F (SDM vol. 2 "NOP", "Reserved NOP"):
  // on a CPU without MPX (CPUID.7.EBX[14]), CET (CPUID.7.ECX[7], EDX[20]) and
  // CLDEMOTE (CPUID.7.ECX[25]), BNDxx, ENDBR32/64, RDSSP, CLDEMOTE and
  // the rest decode as NOPs with a ModRM operand that is never accessed.
  // Zydis decodes them so (NOP, or PREFETCHh for 0F 18 /0-3) with those modes
  // off; with them on it would name instructions this model lacks.
  const CpuidLeaf l7 = model.lookup(7, 0);
  const bool mpx = l7.ebx & (1u << 14);
  const bool cet = (l7.ecx & (1u << 7)) || (l7.edx & (1u << 20));
  const bool cldemote = l7.ecx & (1u << 25);
  ZydisDecoderEnableMode(&dec, ZYDIS_DECODER_MODE_MPX, mpx ? ZYAN_TRUE : ZYAN_FALSE);
  ZydisDecoderEnableMode(&dec, ZYDIS_DECODER_MODE_CET, cet ? ZYAN_TRUE : ZYAN_FALSE);
  ZydisDecoderEnableMode(&dec, ZYDIS_DECODER_MODE_CLDEMOTE, cldemote ? ZYAN_TRUE : ZYAN_FALSE);
}

namespace {

// Maps a Zydis register to (kind, number); false for registers ttvm does not model.
bool mapRegister(ZydisRegister r, OpKind& kind, uint8_t& num) {
  if (r >= ZYDIS_REGISTER_AL && r <= ZYDIS_REGISTER_BL) {
    kind = OpKind::kGpr;
    num = static_cast<uint8_t>(r - ZYDIS_REGISTER_AL);
    return true;
  }
  if (r >= ZYDIS_REGISTER_AH && r <= ZYDIS_REGISTER_BH) {
    kind = OpKind::kGpr;
    num = static_cast<uint8_t>(regid::kAh + (r - ZYDIS_REGISTER_AH));
    return true;
  }
  if (r >= ZYDIS_REGISTER_SPL && r <= ZYDIS_REGISTER_R15B) {
    kind = OpKind::kGpr;
    num = static_cast<uint8_t>(4 + (r - ZYDIS_REGISTER_SPL));
    return true;
  }
  const ZydisRegisterClass cls = ZydisRegisterGetClass(r);
  const int id = ZydisRegisterGetId(r);
  switch (cls) {
    case ZYDIS_REGCLASS_GPR16:
    case ZYDIS_REGCLASS_GPR32:
    case ZYDIS_REGCLASS_GPR64: kind = OpKind::kGpr; break;
    case ZYDIS_REGCLASS_SEGMENT: kind = OpKind::kSeg; break;
    case ZYDIS_REGCLASS_CONTROL: kind = OpKind::kCr; break;
    case ZYDIS_REGCLASS_DEBUG: kind = OpKind::kDr; break;
    case ZYDIS_REGCLASS_X87: kind = OpKind::kSt; break;
    case ZYDIS_REGCLASS_MMX: kind = OpKind::kMmx; break;
    case ZYDIS_REGCLASS_XMM: kind = OpKind::kXmm; break;
    case ZYDIS_REGCLASS_IP:
      kind = OpKind::kGpr;
      num = regid::kRip;
      return true;
    default:
      kind = OpKind::kOther;
      num = regid::kNone;
      return r != ZYDIS_REGISTER_NONE;
  }
  if (id < 0) return false;
  num = static_cast<uint8_t>(id);
  return true;
}

uint8_t segOf(ZydisRegister r) {
  switch (r) {
    case ZYDIS_REGISTER_ES: return 0;
    case ZYDIS_REGISTER_CS: return 1;
    case ZYDIS_REGISTER_SS: return 2;
    case ZYDIS_REGISTER_FS: return 4;
    case ZYDIS_REGISTER_GS: return 5;
    default: return 3;
  }
}

}  // namespace

bool decodeInstr(const ZydisDecoder& dec, CpuMode mode, const uint8_t* bytes, unsigned n,
                 Instr& out, bool& needMore, bool& tooLong) {
  ZydisDecodedInstruction zi;
  tooLong = false;
  ZydisDecodedOperand zo[ZYDIS_MAX_OPERAND_COUNT];
  needMore = false;
  const ZyanStatus st = ZydisDecoderDecodeFull(&dec, bytes, n, &zi, zo);
  if (st == ZYDIS_STATUS_NO_MORE_DATA) {
    needMore = n < 15;
    return false;
  }
  if (st == ZYDIS_STATUS_INSTRUCTION_TOO_LONG) {
    tooLong = true;  // #GP(0), not #UD
    return false;
  }
  if (!ZYAN_SUCCESS(st)) return false;

  out = Instr{};
  out.mnemonic = static_cast<uint16_t>(zi.mnemonic);
  out.length = zi.length;
  out.opSize = static_cast<uint8_t>(zi.operand_width / 8);
  out.addrSize = static_cast<uint8_t>(zi.address_width / 8);
  out.opcode = zi.opcode;
  out.modrmReg = zi.raw.modrm.reg;
  out.modrm = static_cast<uint8_t>(zi.raw.modrm.mod << 6 | zi.raw.modrm.reg << 3 | zi.raw.modrm.rm);
  out.mode = static_cast<uint8_t>(mode);
  const ZyanU64 at = zi.attributes;
  if (at & (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE)) out.prefixes |= prefix::kRep;
  if (at & ZYDIS_ATTRIB_HAS_REPNE) out.prefixes |= prefix::kRepne;
  if (at & ZYDIS_ATTRIB_HAS_LOCK) out.prefixes |= prefix::kLock;
  if (at & ZYDIS_ATTRIB_HAS_OPERANDSIZE) out.prefixes |= prefix::kOpSize;
  if (at & ZYDIS_ATTRIB_HAS_ADDRESSSIZE) out.prefixes |= prefix::kAddrSize;
  if (at & ZYDIS_ATTRIB_HAS_SEGMENT) {
    out.prefixes |= prefix::kSegOverride;
    ZydisRegister sr = ZYDIS_REGISTER_DS;
    if (at & ZYDIS_ATTRIB_HAS_SEGMENT_ES) sr = ZYDIS_REGISTER_ES;
    if (at & ZYDIS_ATTRIB_HAS_SEGMENT_CS) sr = ZYDIS_REGISTER_CS;
    if (at & ZYDIS_ATTRIB_HAS_SEGMENT_SS) sr = ZYDIS_REGISTER_SS;
    if (at & ZYDIS_ATTRIB_HAS_SEGMENT_FS) sr = ZYDIS_REGISTER_FS;
    if (at & ZYDIS_ATTRIB_HAS_SEGMENT_GS) sr = ZYDIS_REGISTER_GS;
    out.segOverride = segOf(sr);
  }

  bool haveMem = false;
  int immCount = 0;
  const int visible = zi.operand_count_visible;
  for (int k = 0; k < visible && k < kMaxOperands; ++k) {
    const ZydisDecodedOperand& o = zo[k];
    Operand& d = out.op[k];
    d.size = static_cast<uint16_t>(o.size / 8);
    switch (o.type) {
      case ZYDIS_OPERAND_TYPE_REGISTER:
        if (!mapRegister(o.reg.value, d.kind, d.reg)) return false;
        break;
      case ZYDIS_OPERAND_TYPE_MEMORY:
        d.kind = OpKind::kMem;
        if (!haveMem) {
          haveMem = true;
          MemRef& m = out.mem;
          m.disp = o.mem.disp.has_displacement ? o.mem.disp.value : 0;
          OpKind kk;
          if (o.mem.base != ZYDIS_REGISTER_NONE && !mapRegister(o.mem.base, kk, m.base))
            return false;
          if (o.mem.index != ZYDIS_REGISTER_NONE && !mapRegister(o.mem.index, kk, m.index))
            return false;
          if (m.index != regid::kNone && m.index >= 16) return false;  // VSIB
          m.scale = o.mem.scale ? o.mem.scale : 1;
          m.seg = segOf(o.mem.segment);
          m.agen = o.mem.type == ZYDIS_MEMOP_TYPE_AGEN;
        }
        break;
      case ZYDIS_OPERAND_TYPE_POINTER:
        d.kind = OpKind::kPtr;
        out.imm = o.ptr.offset;
        out.imm2 = o.ptr.segment;
        break;
      case ZYDIS_OPERAND_TYPE_IMMEDIATE:
        d.kind = OpKind::kImm;
        if (immCount++ == 0)
          out.imm = o.imm.value.u;
        else
          out.imm2 = o.imm.value.u;
        break;
      default: d.kind = OpKind::kNone; break;
    }
    out.numOps = static_cast<uint8_t>(k + 1);
  }
  const HandlerTable& table = HandlerTable::instance();
  out.handler = table.lookup(zi.mnemonic, out.opSize);
  for (int k = 0; k < out.numOps; ++k)
    if (out.op[k].kind == OpKind::kXmm || out.op[k].kind == OpKind::kMmx) {
      out.handler = table.lookupVector(zi.mnemonic);
      break;
    }
  if (out.handler != nullptr) {
    if (const HandlerTable::Picker pick = table.picker(zi.mnemonic)) {
      if (const Handler h = pick(out)) out.handler = h;
    }
  }
  if (!out.handler) out.handler = &handleUnimplemented;
  return true;
}

}  // namespace ttvm
