#include "ttvm/replayer/gdb_registers.h"

#include <cstring>

namespace ttvm {
namespace {

constexpr const char* kCore = "org.gnu.gdb.i386.core";
constexpr const char* kSse = "org.gnu.gdb.i386.sse";
constexpr const char* kSegments = "org.gnu.gdb.i386.segments";
constexpr const char* kSys = "org.ttvm.sys";

std::vector<GdbRegister> makeLayout(GdbArch arch) {
  const bool wide = arch == GdbArch::kX86_64;
  const unsigned w = wide ? 64 : 32;
  std::vector<GdbRegister> r;
  auto add = [&](std::string name, unsigned bits, std::string type, std::string feature,
                 std::string group = "") {
    r.push_back({std::move(name), bits, std::move(type), std::move(group), std::move(feature)});
  };
  if (wide) {
    for (const char* n : {"rax", "rbx", "rcx", "rdx", "rsi", "rdi"}) add(n, 64, "int64", kCore);
    add("rbp", 64, "data_ptr", kCore);
    add("rsp", 64, "data_ptr", kCore);
    for (int i = 8; i < 16; ++i) add("r" + std::to_string(i), 64, "int64", kCore);
    add("rip", 64, "code_ptr", kCore);
  } else {
    for (const char* n : {"eax", "ecx", "edx", "ebx"}) add(n, 32, "int32", kCore);
    add("esp", 32, "data_ptr", kCore);
    add("ebp", 32, "data_ptr", kCore);
    add("esi", 32, "int32", kCore);
    add("edi", 32, "int32", kCore);
    add("eip", 32, "code_ptr", kCore);
  }
  add("eflags", 32, "i386_eflags", kCore);
  for (const char* n : {"cs", "ss", "ds", "es", "fs", "gs"}) add(n, 32, "int32", kCore);
  for (int i = 0; i < 8; ++i) add("st" + std::to_string(i), 80, "i387_ext", kCore);
  for (const char* n : {"fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"})
    add(n, 32, "int", kCore, "float");
  const int xmms = wide ? 16 : 8;
  for (int i = 0; i < xmms; ++i) add("xmm" + std::to_string(i), 128, "vec128", kSse);
  add("mxcsr", 32, "i386_mxcsr", kSse, "vector");
  // gdb 13's i386 (32-bit) architecture numbers org.gnu.gdb.i386.segments
  // registers beyond its register count and asserts; there they go in
  // org.ttvm.sys (same names, so `info registers fs_base` still works).
  add("fs_base", w, "int", wide ? kSegments : kSys, "system");
  add("gs_base", w, "int", wide ? kSegments : kSys, "system");
  for (const char* n : {"cr0", "cr2", "cr3", "cr4", "cr8", "efer"})
    add(n, 64, "int64", kSys, "system");
  // The other segment bases (hidden parts of the segment registers); after
  // efer so that the numbers of the registers above do not move.
  for (const char* n : {"cs_base", "ss_base", "ds_base", "es_base"})
    add(n, w, "int", kSys, "system");
  return r;
}

const char* kTypes =
    "<vector id=\"v4f\" type=\"ieee_single\" count=\"4\"/>"
    "<vector id=\"v2d\" type=\"ieee_double\" count=\"2\"/>"
    "<vector id=\"v16i8\" type=\"int8\" count=\"16\"/>"
    "<vector id=\"v8i16\" type=\"int16\" count=\"8\"/>"
    "<vector id=\"v4i32\" type=\"int32\" count=\"4\"/>"
    "<vector id=\"v2i64\" type=\"int64\" count=\"2\"/>"
    "<union id=\"vec128\"><field name=\"v4_float\" type=\"v4f\"/>"
    "<field name=\"v2_double\" type=\"v2d\"/><field name=\"v16_int8\" type=\"v16i8\"/>"
    "<field name=\"v8_int16\" type=\"v8i16\"/><field name=\"v4_int32\" type=\"v4i32\"/>"
    "<field name=\"v2_int64\" type=\"v2i64\"/><field name=\"uint128\" type=\"uint128\"/>"
    "</union>";

const char* kEflagsType =
    "<flags id=\"i386_eflags\" size=\"4\">"
    "<field name=\"CF\" start=\"0\" end=\"0\"/><field name=\"\" start=\"1\" end=\"1\"/>"
    "<field name=\"PF\" start=\"2\" end=\"2\"/><field name=\"AF\" start=\"4\" end=\"4\"/>"
    "<field name=\"ZF\" start=\"6\" end=\"6\"/><field name=\"SF\" start=\"7\" end=\"7\"/>"
    "<field name=\"TF\" start=\"8\" end=\"8\"/><field name=\"IF\" start=\"9\" end=\"9\"/>"
    "<field name=\"DF\" start=\"10\" end=\"10\"/><field name=\"OF\" start=\"11\" end=\"11\"/>"
    "<field name=\"NT\" start=\"14\" end=\"14\"/><field name=\"RF\" start=\"16\" end=\"16\"/>"
    "<field name=\"VM\" start=\"17\" end=\"17\"/><field name=\"AC\" start=\"18\" end=\"18\"/>"
    "<field name=\"VIF\" start=\"19\" end=\"19\"/><field name=\"VIP\" start=\"20\" end=\"20\"/>"
    "<field name=\"ID\" start=\"21\" end=\"21\"/></flags>";

const char* kMxcsrType =
    "<flags id=\"i386_mxcsr\" size=\"4\">"
    "<field name=\"IE\" start=\"0\" end=\"0\"/><field name=\"DE\" start=\"1\" end=\"1\"/>"
    "<field name=\"ZE\" start=\"2\" end=\"2\"/><field name=\"OE\" start=\"3\" end=\"3\"/>"
    "<field name=\"UE\" start=\"4\" end=\"4\"/><field name=\"PE\" start=\"5\" end=\"5\"/>"
    "<field name=\"DAZ\" start=\"6\" end=\"6\"/><field name=\"IM\" start=\"7\" end=\"7\"/>"
    "<field name=\"DM\" start=\"8\" end=\"8\"/><field name=\"ZM\" start=\"9\" end=\"9\"/>"
    "<field name=\"OM\" start=\"10\" end=\"10\"/><field name=\"UM\" start=\"11\" end=\"11\"/>"
    "<field name=\"PM\" start=\"12\" end=\"12\"/><field name=\"FZ\" start=\"15\" end=\"15\"/>"
    "</flags>";

std::string makeXml(GdbArch arch) {
  const auto& regs = gdbRegisters(arch);
  std::string x =
      "<?xml version=\"1.0\"?>\n<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n<target "
      "version=\"1.0\">\n<architecture>";
  x += arch == GdbArch::kX86_64 ? "i386:x86-64" : "i386";
  x += "</architecture>\n";
  std::string current;
  for (size_t i = 0; i < regs.size(); ++i) {
    const GdbRegister& r = regs[i];
    if (r.feature != current) {
      if (!current.empty()) x += "</feature>\n";
      current = r.feature;
      x += "<feature name=\"" + current + "\">\n";
      if (current == kCore) x += kEflagsType;
      if (current == kSse) {
        x += kTypes;
        x += kMxcsrType;
      }
      x += "\n";
    }
    x += "<reg name=\"" + r.name + "\" bitsize=\"" + std::to_string(r.bits) + "\" type=\"" +
         r.type + "\" regnum=\"" + std::to_string(i) + "\"";
    if (!r.group.empty()) x += " group=\"" + r.group + "\"";
    x += "/>\n";
  }
  x += "</feature>\n</target>\n";
  return x;
}

void putLe(std::string& out, uint64_t v, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

}  // namespace

const char* toString(GdbArch a) {
  return a == GdbArch::kX86_64 ? "x86-64" : "i386";
}

const std::vector<GdbRegister>& gdbRegisters(GdbArch arch) {
  static const std::vector<GdbRegister> k32 = makeLayout(GdbArch::kI386);
  static const std::vector<GdbRegister> k64 = makeLayout(GdbArch::kX86_64);
  return arch == GdbArch::kX86_64 ? k64 : k32;
}

const std::string& gdbTargetXml(GdbArch arch) {
  static const std::string k32 = makeXml(GdbArch::kI386);
  static const std::string k64 = makeXml(GdbArch::kX86_64);
  return arch == GdbArch::kX86_64 ? k64 : k32;
}

uint16_t gdbFullTagWord(const FpuState& f) {
  // The abridged tag and the full tag word both index physical registers.
  uint16_t tag = 0;
  for (int i = 0; i < 8; ++i) {
    unsigned t = 3;  // empty
    if (f.ftw & (1u << i)) {
      const Float80& r = f.st[i];
      const unsigned exp = r.signExponent & 0x7FFF;
      if (exp == 0x7FFF)
        t = 2;
      else if (exp == 0)
        t = r.significand == 0 ? 1 : 2;
      else
        t = (r.significand >> 63) ? 0 : 2;
    }
    tag = static_cast<uint16_t>(tag | (t << (2 * i)));
  }
  return tag;
}

std::string gdbRegisterBytes(GdbArch arch, const CpuState& s, size_t n) {
  const auto& regs = gdbRegisters(arch);
  if (n >= regs.size()) return {};
  const GdbRegister& r = regs[n];
  const std::string& name = r.name;
  std::string out;
  const unsigned bytes = r.bits / 8;
  if (r.bits == 80) {
    // st0..st7 are relative to TOP; FpuState::st holds physical R0..R7.
    const int top = (s.fpu.fsw >> 11) & 7;
    const int i = name[2] - '0';
    const Float80& f = s.fpu.st[(top + i) & 7];
    putLe(out, f.significand, 8);
    putLe(out, f.signExponent, 2);
    return out;
  }
  if (r.bits == 128) {
    const Vec128& v = s.fpu.xmm[std::stoi(name.substr(3))];
    putLe(out, v.q[0], 8);
    putLe(out, v.q[1], 8);
    return out;
  }
  uint64_t v = 0;
  static constexpr std::pair<const char*, Gpr> kGprs[] = {
      {"ax", Gpr::kRax}, {"bx", Gpr::kRbx}, {"cx", Gpr::kRcx}, {"dx", Gpr::kRdx},
      {"si", Gpr::kRsi}, {"di", Gpr::kRdi}, {"bp", Gpr::kRbp}, {"sp", Gpr::kRsp},
  };
  static constexpr std::pair<const char*, SegReg> kSegs[] = {
      {"cs", SegReg::kCs}, {"ss", SegReg::kSs}, {"ds", SegReg::kDs},
      {"es", SegReg::kEs}, {"fs", SegReg::kFs}, {"gs", SegReg::kGs},
  };
  bool found = false;
  if ((name[0] == 'r' || name[0] == 'e') && name.size() == 3) {
    for (const auto& [suffix, g] : kGprs) {
      if (name.compare(1, 2, suffix) == 0) {
        v = s.reg(g);
        found = true;
      }
    }
  }
  if (!found && name[0] == 'r' && name.size() <= 3 && name[1] >= '0' && name[1] <= '9') {
    v = s.gpr[static_cast<size_t>(std::stoi(name.substr(1)))];
    found = true;
  }
  if (!found) {
    for (const auto& [seg, sr] : kSegs) {
      if (name == seg) {
        v = s.segment(sr).selector;
        found = true;
      }
    }
  }
  if (!found) {
    if (name == "rip" || name == "eip")
      v = s.rip;
    else if (name == "eflags")
      v = s.rflags;
    else if (name == "fctrl")
      v = s.fpu.fcw;
    else if (name == "fstat")
      v = s.fpu.fsw;
    else if (name == "ftag")
      v = gdbFullTagWord(s.fpu);
    else if (name == "fiseg")
      v = s.fpu.fcs;
    else if (name == "fioff")
      v = s.fpu.fip & 0xFFFFFFFFu;
    else if (name == "foseg")
      v = s.fpu.fds;
    else if (name == "fooff")
      v = s.fpu.fdp & 0xFFFFFFFFu;
    else if (name == "fop")
      v = s.fpu.fop;
    else if (name == "mxcsr")
      v = s.fpu.mxcsr;
    else if (name == "fs_base")
      v = s.segment(SegReg::kFs).base;
    else if (name == "gs_base")
      v = s.segment(SegReg::kGs).base;
    else if (name == "cs_base")
      v = s.segment(SegReg::kCs).base;
    else if (name == "ss_base")
      v = s.segment(SegReg::kSs).base;
    else if (name == "ds_base")
      v = s.segment(SegReg::kDs).base;
    else if (name == "es_base")
      v = s.segment(SegReg::kEs).base;
    else if (name == "cr0")
      v = s.cr0;
    else if (name == "cr2")
      v = s.cr2;
    else if (name == "cr3")
      v = s.cr3;
    else if (name == "cr4")
      v = s.cr4;
    else if (name == "cr8")
      v = s.cr8;
    else if (name == "efer")
      v = s.msr.efer;
  }
  putLe(out, v, bytes);
  return out;
}

}  // namespace ttvm
