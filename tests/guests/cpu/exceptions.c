/* Exception vectors, classes and error codes in 64-bit mode (SDM vol. 3, 6.15
 * "Exception and Interrupt Reference"): #DE (fault, DIV by 0 and IDIV
 * overflow), #UD (UD2, LOCK on a non-lockable instruction), #NM (x87 with
 * CR0.TS or CR0.EM), #GP(0) (non-canonical address; privileged instructions
 * and I/O at CPL 3 — vol. 1 19.5 "Protected-Mode I/O": IOPL, then the TSS I/O
 * permission bitmap), #SS(0) (non-canonical stack reference), #AC(0)
 * (CR0.AM + RFLAGS.AC at CPL 3, vol. 3 6.15 Interrupt 17). Every fault
 * reports the faulting instruction's RIP, RF = 1 in the image (18.3.1.1). */
#include "guest.h"

GUEST_NAME("exceptions");

/* Each probe: set trap_resume to its end label, run the instruction. */
#define PROBE(label, insns)                  \
  __asm__(".text\n" label ": lea 9f(%rip), %rax\n" \
          "  mov %rax, trap_resume(%rip)\n" label "_insn: " insns "\n" \
          "  movq $0, trap_resume(%rip)\n" \
          "9: ret\n")
#define PROBE_DECL(label) \
  void label(void);       \
  extern char label##_insn[]

PROBE("p_div0", "xor %ecx, %ecx\n div %ecx");
PROBE_DECL(p_div0);
PROBE("p_idiv_ovf", "mov $0x80000000, %eax\n cdq\n mov $-1, %ecx\n idiv %ecx");
PROBE_DECL(p_idiv_ovf);
PROBE("p_ud2", "ud2");
PROBE_DECL(p_ud2);
PROBE("p_lock_nop", ".byte 0xf0, 0x90");
PROBE_DECL(p_lock_nop);
PROBE("p_fninit", "fninit");
PROBE_DECL(p_fninit);
PROBE("p_noncanon", "mov $0x0000800000000000, %rcx\n mov (%rcx), %rcx");
PROBE_DECL(p_noncanon);
/* RBP-based reference: the stack segment, so #SS(0); RBP is restored on both paths. */
__asm__(".text\n"
        "p_noncanon_ss: push %rbp\n"
        "  lea 9f(%rip), %rax\n"
        "  mov %rax, trap_resume(%rip)\n"
        "  mov $0x0000800000000000, %rbp\n"
        "p_noncanon_ss_insn: mov (%rbp), %rcx\n"
        "  movq $0, trap_resume(%rip)\n"
        "9: pop %rbp\n"
        "  ret\n");
PROBE_DECL(p_noncanon_ss);
/* CPL-3 probes (run through user_call; fn(arg) returns 0). */
PROBE("u_cli", "cli");
PROBE_DECL(u_cli);
PROBE("u_hlt", "hlt");
PROBE_DECL(u_hlt);
PROBE("u_mov_cr0", "mov %cr0, %rcx");
PROBE_DECL(u_mov_cr0);
PROBE("u_out_3ff", "mov $0x3FF, %edx\n mov $0x42, %al\n outb %al, %dx");
PROBE_DECL(u_out_3ff);
PROBE("u_out_3fe", "mov $0x3FE, %edx\n mov $0x42, %al\n outb %al, %dx");
PROBE_DECL(u_out_3fe);
PROBE("u_misaligned", "lea trap_count(%rip), %rcx\n mov 1(%rcx), %ecx");
PROBE_DECL(u_misaligned);

static int fault_count_before;
static void expect_fault(const char* what, void (*probe)(void), const char* insn, uint32_t vec,
                         uint32_t err) {
  trap_log_clear();
  probe();
  CHECK_MSG(trap_count == 1, "%s: %d trap(s), expected vector %u", what, trap_count, vec);
  if (trap_count < 1) return;
  CHECK_MSG(trap_log[0].vector == vec && trap_log[0].error == err,
            "%s: vector %u error %#x, expected vector %u error %#x", what, trap_log[0].vector,
            trap_log[0].error, vec, err);
  CHECK_MSG(trap_log[0].rip == (ureg)insn, "%s: rip %#lx, expected %#lx (the instruction)", what,
            (unsigned long)trap_log[0].rip, (unsigned long)(ureg)insn);
}
static ureg user_probe(ureg fn) {
  ((void (*)(void))fn)();
  return 0;
}
static void expect_user_fault(const char* what, void (*probe)(void), const char* insn,
                              uint32_t vec, uint32_t err, ureg flags) {
  trap_log_clear();
  user_call(user_probe, (ureg)user_stack_top, (ureg)probe, flags);
  CHECK_MSG(trap_count == 1, "%s: %d trap(s), expected vector %u", what, trap_count, vec);
  if (trap_count < 1) return;
  CHECK_MSG(trap_log[0].vector == vec && trap_log[0].error == err,
            "%s: vector %u error %#x, expected vector %u error %#x", what, trap_log[0].vector,
            trap_log[0].error, vec, err);
  CHECK_MSG(trap_log[0].rip == (ureg)insn && (trap_log[0].cs & 3) == 3,
            "%s: at %#lx:%#lx, expected CPL 3 at %#lx", what, (unsigned long)trap_log[0].cs,
            (unsigned long)trap_log[0].rip, (unsigned long)(ureg)insn);
}
static void expect_user_ok(const char* what, void (*probe)(void), ureg flags) {
  trap_log_clear();
  user_call(user_probe, (ureg)user_stack_top, (ureg)probe, flags);
  CHECK_MSG(trap_count == 0, "%s: unexpected vector %u error %#x", what, trap_log[0].vector,
            trap_log[0].error);
}

void guest_main(void) {
  (void)fault_count_before;
  case_begin("de");
  expect_fault("DIV by zero", p_div0, p_div0_insn + 2, 0, 0); /* after the XOR */
  expect_fault("IDIV overflow", p_idiv_ovf, p_idiv_ovf_insn + 5 + 1 + 5, 0, 0);

  case_begin("ud");
  expect_fault("UD2", p_ud2, p_ud2_insn, 6, 0);
  expect_fault("LOCK NOP", p_lock_nop, p_lock_nop_insn, 6, 0);

  case_begin("nm");
  write_cr0(read_cr0() | 8); /* TS */
  expect_fault("FNINIT with CR0.TS", p_fninit, p_fninit_insn, 7, 0);
  __asm__ volatile("clts");
  write_cr0(read_cr0() | 4); /* EM */
  expect_fault("FNINIT with CR0.EM", p_fninit, p_fninit_insn, 7, 0);
  write_cr0(read_cr0() & ~(ureg)4);
  trap_log_clear();
  p_fninit();
  CHECK_EQ(trap_count, 0);

  case_begin("gp_ss_noncanonical");
  expect_fault("non-canonical load", p_noncanon, p_noncanon_insn + 10, 13, 0);
  expect_fault("non-canonical stack reference", p_noncanon_ss, p_noncanon_ss_insn, 12, 0);

  case_begin("fault_rf");
  expect_fault("UD2", p_ud2, p_ud2_insn, 6, 0);
  CHECK_MSG(trap_log[0].rflags & FL_RF, "#UD image rflags %#lx: RF clear",
            (unsigned long)trap_log[0].rflags);

  case_begin("cpl3_privileged");
  expect_user_fault("CLI at CPL 3, IOPL 0", u_cli, u_cli_insn, 13, 0, 0x2);
  expect_user_fault("HLT at CPL 3", u_hlt, u_hlt_insn, 13, 0, 0x2);
  expect_user_fault("MOV from CR0 at CPL 3", u_mov_cr0, u_mov_cr0_insn, 13, 0, 0x2);
  expect_user_ok("CLI at CPL 3, IOPL 3", u_cli, 0x3002);

  case_begin("io_permission");
  /* Default TSS: no bitmap (map base beyond the limit): IOPL decides. */
  expect_user_fault("OUT with IOPL 0, no bitmap", u_out_3ff, u_out_3ff_insn + 7, 13, 0, 0x2);
  expect_user_ok("OUT with IOPL 3", u_out_3ff, 0x3002);
  static uint8_t map[128];
  memset(map, 0xFF, sizeof(map));
  map[0x3FF / 8] &= (uint8_t) ~(1u << (0x3FF % 8)); /* allow port 0x3FF only */
  tss_set_iomap(map, sizeof(map));
  expect_user_ok("OUT to a port the bitmap allows", u_out_3ff, 0x2);
  expect_user_fault("OUT to a port the bitmap denies", u_out_3fe, u_out_3fe_insn + 7, 13, 0, 0x2);
  tss_set_iomap(map, 0); /* back to "no bitmap" */
  CHECK_EQ(inb(0x3FF), 0x42); /* COM1 scratch register got the allowed writes */

  case_begin("ac");
  write_cr0(read_cr0() | (1u << 18)); /* AM */
  expect_user_fault("misaligned load, AC=1", u_misaligned, u_misaligned_insn + 7, 17, 0,
                    0x2 | 0x40000);
  expect_user_ok("misaligned load, AC=0", u_misaligned, 0x2);
  write_cr0(read_cr0() & ~(ureg)(1u << 18));
}
