// Mode switches as real kernels do them, both directions: real -> 32-bit
// protected -> long mode -> compatibility mode -> 32-bit protected (paging
// and long mode off) -> 16-bit protected -> real mode. The guest writes a
// marker per stage; the test also checks the CPU mode after every step
// against the sequence of modes the program passes through.
#include <gtest/gtest.h>

#include <set>

#include "cpu_harness.h"

namespace ttvm::cputest {
namespace {

/* nasm source of kModeSwitch (assembled with `nasm -f bin`):
; Loaded at 0x7C00, entered in real mode with CS=0. Goes real -> 32-bit
; protected -> long mode (64-bit) -> compatibility mode -> 32-bit protected
; (paging and long mode off) -> real mode, writing a marker at each stage.
bits 16
org 0x7C00
start:
  cli
  xor ax, ax
  mov ds, ax
  mov ss, ax
  mov sp, 0x7000
  mov byte [0x500], 1          ; stage 1: real mode
  lgdt [gdtr]
  mov eax, cr0
  or eax, 1
  mov cr0, eax
  jmp 0x08:pm32
bits 32
pm32:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov esp, 0x7000
  mov byte [0x501], 2          ; stage 2: protected mode
  ; page tables at 0x10000: PML4 -> PDPT -> PD with 2 MiB identity pages
  mov edi, 0x10000
  xor eax, eax
  mov ecx, 3*1024
  rep stosd
  mov dword [0x10000], 0x11003
  mov dword [0x11000], 0x12003
  mov dword [0x12000], 0x000083
  mov dword [0x12008], 0x200083
  mov eax, cr4
  or eax, 1 << 5               ; PAE
  mov cr4, eax
  mov eax, 0x10000
  mov cr3, eax
  mov ecx, 0xC0000080
  rdmsr
  or eax, 1 << 8               ; LME
  wrmsr
  mov eax, cr0
  or eax, 1 << 31              ; PG -> LMA
  mov cr0, eax
  jmp 0x18:lm64
bits 64
lm64:
  mov byte [0x502], 3          ; stage 3: 64-bit mode
  mov rax, 0x1122334455667788
  mov [0x508], rax
  ; back to compatibility mode through a far return
  lea rbx, [rel compat]
  push 0x08
  push rbx
  retfq
bits 32
compat:
  mov byte [0x503], 4          ; stage 4: compatibility mode
  mov eax, cr0
  and eax, 0x7FFFFFFF          ; PG off -> LMA off
  mov cr0, eax
  mov ecx, 0xC0000080
  rdmsr
  and eax, ~(1 << 8)
  wrmsr
  mov byte [0x504], 5          ; stage 5: legacy protected mode again
  jmp 0x20:pm16
bits 16
pm16:
  mov ax, 0x28
  mov ds, ax
  mov ss, ax
  mov eax, cr0
  and eax, ~1
  mov cr0, eax
  jmp 0:real_again
real_again:
  xor ax, ax
  mov ds, ax
  mov ss, ax
  mov byte [0x505], 6          ; stage 6: real mode again
  mov ax, [0x508]
  hlt
align 8
gdt:
  dq 0
  dq 0x00CF9B000000FFFF        ; 0x08 32-bit code
  dq 0x00CF93000000FFFF        ; 0x10 data
  dq 0x00AF9B000000FFFF        ; 0x18 64-bit code
  dq 0x00009B000000FFFF        ; 0x20 16-bit code
  dq 0x000093000000FFFF        ; 0x28 16-bit data
gdt_end:
gdtr:
  dw gdt_end - gdt - 1
  dd gdt
*/
const char kModeSwitch[] =
    "fa31c08ed88ed0bc0070c6060005010f0116507d0f20c06683c8010f22c0ea237c080066b810008ed88ec08ed0bc00"
    "70"
    "0000c6050105000002bf0000010031c0b9000c0000f3abc7050000010003100100c7050010010003200100c7050020"
    "01"
    "0083000000c70508200100830020000f20e083c8200f22e0b8000001000f22d8b9800000c00f320d000100000f300f"
    "20"
    "c00d000000800f22c0eaa07c00001800c60425020500000348b888776655443322114889042508050000488d1d0500"
    "00"
    "006a085348cbc60503050000040f20c025ffffff7f0f22c0b9800000c00f3225fffeffff0f30c6050405000005eaf4"
    "7c"
    "00002000b828008ed88ed00f20c06683e0fe0f22c0ea0a7d000031c08ed88ed0c606050506a10805f4909090909090"
    "90"
    "0000000000000000ffff0000009bcf00ffff00000093cf00ffff0000009baf00ffff0000009b0000ffff0000009300"
    "00"
    "2f00207d0000";

TEST(ModeSwitch, RealToLongAndBackToReal) {
  Machine m;
  m.setupReal(0, 0x7C00);
  m.loadHex(0x7C00, kModeSwitch);
  std::vector<CpuMode> seen;
  StepResult r;
  for (int k = 0; k < 20000; ++k) {
    r = m.step();
    if (r.outcome != StepOutcome::kRetired) break;
    const CpuMode mode = cpuMode(m.state());
    if (seen.empty() || seen.back() != mode) seen.push_back(mode);
    if (m.state().pending.halted) break;
  }
  ASSERT_TRUE(m.state().pending.halted)
      << toString(r.outcome) << " vector " << int(r.vector) << " rip " << std::hex << m.state().rip;
  for (int stage = 0; stage < 6; ++stage) EXPECT_EQ(m.get(0x500 + stage, 1), stage + 1u) << stage;
  EXPECT_EQ(m.get(0x508, 8), 0x1122334455667788u);
  // MOV CR0 (PE) leaves the 16-bit CS cache until the far JMP, and
  // enabling paging with LME set enters compatibility mode until the JMP to a
  // 64-bit code segment.
  const std::vector<CpuMode> expected = {
      CpuMode::kReal,   CpuMode::kProtected16,     CpuMode::kProtected32, CpuMode::kCompatibility32,
      CpuMode::kLong64, CpuMode::kCompatibility32, CpuMode::kProtected32, CpuMode::kProtected16,
      CpuMode::kReal};
  EXPECT_EQ(seen, expected);
  const CpuState s = m.state();
  EXPECT_EQ(s.reg(Gpr::kRax) & 0xFFFF, 0x7788u);
  EXPECT_EQ(s.msr.efer & (efer::kLMA | efer::kLME), 0u);
  EXPECT_EQ(s.cr0 & (cr0::kPG | cr0::kPE), 0u);
  // The decode cache keeps separate entries per mode for the same bytes.
  EXPECT_TRUE(m.cpu->unimplementedLog().empty());
}

// CR0.PG may not be turned on with EFER.LME=1 but CR4.PAE=0 (#GP), and
// 64-bit mode cannot turn paging off.
TEST(ModeSwitch, IllegalTransitionsFault) {
  Machine m;
  m.setupFlat32(layout::kCode);
  for (uint8_t v = 0; v < 32; ++v) m.setIdt32(v, static_cast<uint32_t>(layout::kCode + 0x8000));
  m.loadHex(layout::kCode + 0x8000, "f4");
  // mov eax,cr0; or eax,0x80000000; mov cr0,eax
  m.loadHex(layout::kCode, "0f 20 c0 0d 00 00 00 80 0f 22 c0");
  m.edit([](CpuState& s) { s.msr.efer = efer::kLME; });
  ASSERT_EQ(m.run(2).outcome, StepOutcome::kRetired);
  StepResult r = m.step();
  EXPECT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 13);

  Machine l;
  l.setupLong64(layout::kCode);
  l.setAllIdt64(layout::kCode + 0x8000);
  l.loadHex(layout::kCode + 0x8000, "f4");
  // mov rax,cr0; btr rax,31 (use and) ; mov cr0,rax
  l.loadHex(layout::kCode, "0f 20 c0 25 ff ff ff 7f 0f 22 c0");
  ASSERT_EQ(l.run(2).outcome, StepOutcome::kRetired);
  r = l.step();
  EXPECT_EQ(r.outcome, StepOutcome::kException);
  EXPECT_EQ(int(r.vector), 13);
}

}  // namespace
}  // namespace ttvm::cputest
