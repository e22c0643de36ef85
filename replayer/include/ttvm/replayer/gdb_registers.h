// gdb register layouts for i386 and x86-64 and the target descriptions
// (qXfer:features:read:target.xml) that name them. The numbering is the one
// the description gives (regnum attributes), so `g` and `p N` agree with it.
//
// Features: org.gnu.gdb.i386.core (GPRs, RIP, EFLAGS, selectors, x87),
// org.gnu.gdb.i386.sse (XMM, MXCSR), org.gnu.gdb.i386.segments (fs_base,
// gs_base) and org.ttvm.sys (cr0, cr2, cr3, cr4, cr8, efer, cs_base, ss_base,
// ds_base, es_base) so that `info registers cr3` works. The control
// registers and every segment base carry group="system". gdb's x86
// architectures decide group membership themselves and ignore that
// attribute (i386_register_reggroup_p), so stock gdb's `info registers
// system` lists them only with scripts/ttvm-gdb.py, which reads the groups
// from this description; other clients (LLDB's register sets) use it as is.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ttvm/emulator/cpu_state.h"

namespace ttvm {

enum class GdbArch : uint8_t { kI386, kX86_64 };
const char* toString(GdbArch a);

struct GdbRegister {
  std::string name;
  unsigned bits = 0;  // 32, 64, 80 or 128
  std::string type;   // tdesc type name
  std::string group;  // "" = gdb's default
  std::string feature;
};

// The registers of `arch`, index = gdb register number.
const std::vector<GdbRegister>& gdbRegisters(GdbArch arch);
// The whole target description (self-contained, no xi:include).
const std::string& gdbTargetXml(GdbArch arch);
// Register `n` of `arch` in `s` as target-byte-order (little-endian) bytes;
// empty when n is out of range. 32-bit layouts truncate 64-bit values.
std::string gdbRegisterBytes(GdbArch arch, const CpuState& s, size_t n);
// The full x87 tag word (2 bits per physical register: 00 valid, 01 zero,
// 10 special, 11 empty) from the FXSAVE abridged tag and the registers.
uint16_t gdbFullTagWord(const FpuState& f);

}  // namespace ttvm
