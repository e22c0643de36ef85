/* Virtual-8086 mode (SDM vol. 3 ch. 20): linear = segment * 16 + offset at
 * CPL 3; INT n with IOPL = 3 goes through the protected-mode IDT (a DPL-3
 * gate), the handler sees EFLAGS.VM and the v86 CS:IP, and IRET returns to v86
 * (20.3.1.1, 20.3.3); with IOPL < 3 INT n, and HLT always, raise #GP(0)
 * as do PUSHF/POPF (20.2.7 "Sensitive Instructions"); IN/OUT in v86 mode always consult the
 * TSS I/O permission bitmap, whatever IOPL (20.2.8.1). */
#include "guest.h"

GUEST_NAME("v86");

#define SCRATCH ((volatile uint16_t*)0x6000)
extern uint16_t v86_offsets[5]; /* int, after int, out, exit, pushf */
void v86_run(uint32_t eflags);
#define VM 0x20000u

static void gp_hook(struct trap_frame* f) {
  if (!(f->rflags & VM)) {
    printf("FAIL: %s: #GP outside v86 at %#x:%#x\n", current_case, f->cs, f->rip);
    guest_exit(1);
  }
  uint16_t ip = (uint16_t)f->rip;
  if (ip == v86_offsets[0]) {
    f->rip += 2; /* INT 0x30 with IOPL < 3 */
  } else if (ip == v86_offsets[4]) {
    f->rip += 1; /* PUSHF with IOPL < 3; the POP that follows reads stale stack */
  } else if (ip == v86_offsets[2]) {
    f->rip += 1; /* OUT denied by the bitmap */
  } else if (ip == v86_offsets[3]) {
    f->rip = (ureg)user_return_stub; /* HLT: leave v86 mode */
    f->cs = SEL_CODE32;
    f->rflags = 0x2;
  } else {
    printf("FAIL: %s: #GP in v86 at %#x:%#x\n", current_case, f->cs, f->rip);
    guest_exit(1);
  }
}

static void run(uint32_t eflags) {
  for (int i = 0; i < 8; i++) SCRATCH[i] = 0;
  trap_log_clear();
  v86_run(eflags);
}

static int count_vec(uint32_t v) {
  int n = 0;
  for (int i = 0; i < trap_count && i < TRAP_LOG_MAX; i++) n += trap_log[i].vector == v;
  return n;
}

void guest_main(void) {
  set_trap_hook(13, gp_hook);
  set_trap_record_only(0x30, 1);
  idt_set_attr(0x30, 0xE, 3, 0);

  case_begin("v86_iopl3");
  run(0x3000);
  CHECK_EQ(SCRATCH[0], 0x0800);
  CHECK_EQ(SCRATCH[1], 0xBEEF);
  CHECK_EQ(SCRATCH[2], 0x1111);
  CHECK_EQ(SCRATCH[3], 0x2222);
  CHECK_EQ(SCRATCH[4] & 0x3000, 0x3000); /* PUSHF shows IOPL 3 */
  CHECK_EQ(trap_count, 3);               /* INT 0x30, OUT #GP, HLT #GP */
  CHECK_EQ(trap_log[0].vector, 0x30);
  CHECK_EQ(trap_log[0].cs, 0x0800);
  CHECK_EQ(trap_log[0].rip, v86_offsets[1]);
  CHECK(trap_log[0].rflags & VM);

  case_begin("v86_io_no_bitmap");
  /* The OUT above faulted even with IOPL 3: no bitmap in the TSS. */
  CHECK_EQ(count_vec(13), 2);
  CHECK_EQ(trap_log[1].vector, 13);
  CHECK_EQ(trap_log[1].error, 0);
  CHECK_EQ(trap_log[1].rip, v86_offsets[2]);

  case_begin("v86_io_bitmap");
  static uint8_t map[128];
  memset(map, 0xFF, sizeof(map));
  map[0x3FF / 8] &= (uint8_t) ~(1u << (0x3FF % 8));
  tss_set_iomap(map, sizeof(map));
  run(0x3000);
  CHECK_EQ(count_vec(13), 1); /* only the HLT */
  CHECK_EQ(inb(0x3FF), 0x5A);

  case_begin("v86_iopl0");
  run(0x0000);
  CHECK_EQ(count_vec(0x30), 0);
  /* PUSHF -> #GP(0), INT -> #GP(0), HLT -> #GP(0); OUT allowed by the bitmap */
  CHECK_EQ(trap_count, 3);
  CHECK_EQ(trap_log[0].vector, 13);
  CHECK_EQ(trap_log[0].rip, v86_offsets[4]);
  CHECK_EQ(trap_log[1].vector, 13);
  CHECK_EQ(trap_log[1].error, 0);
  CHECK_EQ(trap_log[1].rip, v86_offsets[0]);
  CHECK_EQ(SCRATCH[2], 0x1111);
  tss_set_iomap(map, 0);
}
