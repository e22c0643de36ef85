/* Issue 4 point 6: priority among simultaneous debug events and interrupts.
 * SDM vol. 3, 6.9 "Priority Among Concurrent Exceptions and Interrupts"
 * (table 6-2): class 4 "traps on the previous instruction — breakpoints, debug
 * trap exceptions (TF flag set or data/I-O breakpoint)" outranks class 6
 * "maskable hardware interrupts". Vol. 3, 18.3.1.2 / 18.2.3: trap-class debug
 * conditions on one instruction boundary are reported in a single #DB with all
 * their DR6 bits (BS together with Bn). AMD APM vol. 2, 8.5 "Priorities". */
#include "dbg_seq.h"

GUEST_NAME("debug_prio");

static volatile uint64_t watched;

/* ss_databp: the stepped instruction also hits a write breakpoint. */
L(sd_start); L(sd_write); L(sd_after); TAIL_LABELS(sd);
__asm__(".text\n"
        "sd_start: " TF_ON
        "sd_write: movq $7, watched(%rip)\n"
        "sd_after: nop\n" TF_OFF("sd") "  ret\n");

/* ss_irq: a self-IPI is made pending while IF = 0; the stepped POPF that sets
 * IF ends on a boundary with both the single-step trap and the interrupt: #DB
 * first (saved RIP = pi_after, IF = 1 in the image), then the interrupt (same
 * RIP), then stepping continues. */
L(pi_start); L(pi_1); L(pi_popf); L(pi_after); TAIL_LABELS(pi);
__asm__(".text\n"
        "pi_start: push %rbx\n"
        "  cli\n"
        "  mov $0xFEE00000, %ebx\n"
        "  movl $0x40040, 0x300(%rbx)\n" /* ICR: self, fixed, vector 0x40 */
        "1: testl $1, 0x220(%rbx)\n"      /* until IRR bit 0x40 is set: pending */
        "  jz 1b\n" TF_ON
        "  pushfq\n"
        "pi_1: orq $0x200, (%rsp)\n"
        "pi_popf: popfq\n"
        "pi_after: nop\n" TF_OFF("pi") "  cli\n"
        "  pop %rbx\n"
        "  ret\n");

/* ss_databp_rep: TF and a data breakpoint inside REP STOSB: one #DB per
 * iteration, the iteration that hits reports BS | B0. */
L(rs_start); L(rs_rep); TAIL_LABELS(rs);
__asm__(".text\n"
        "rs_start: mov $3, %ecx\n"
        "  xor %eax, %eax\n" TF_ON
        "rs_rep: rep stosb\n" TF_OFF("rs") "  ret\n");

/* ss_nmi: an NMI sent to ourselves (ICR: delivery mode NMI, physical
 * destination = APIC ID 0) by a stepped instruction. At that boundary the
 * single-step trap (class 4) wins over the NMI (class 5): #DB is delivered
 * first; IF does not mask NMIs, so the NMI is taken inside the #DB handler
 * (at its first instruction when already pending, as in emulators). The NMI
 * handler therefore logs first, then the #DB handler. */
L(nm_start); L(nm_icr); L(nm_after); TAIL_LABELS(nm);
__asm__(".text\n"
        "nm_start: push %rbx\n"
        "  mov $0xFEE00000, %ebx\n"
        "  movl $0, 0x310(%rbx)\n" /* ICR high: destination APIC ID 0 */
        TF_ON
        "nm_icr: movl $0x400, 0x300(%rbx)\n" /* ICR low: NMI, physical, no shorthand */
        "nm_after: nop\n" TF_OFF("nm")
        "  pop %rbx\n"
        "  ret\n");

static void irq_hook(struct trap_frame* f) {
  (void)f;
  *(volatile uint32_t*)0xFEE000B0 = 0; /* EOI */
}

void guest_main(void) {
  set_trap_record_only(1, 1);
  write_dr7(0x400);

  case_begin("ss_databp");
  write_dr0((ureg)&watched);
  write_dr7(0x400 | 1 | (1u << 16) | (2u << 18)); /* L0, write, 8 bytes */
  RUN(sd_start);
  write_dr7(0x400);
  {
    const struct trap_expect e[] = {{1, (ureg)sd_after, DR6_BS | DR6_B0, FL_TF, 0, 0, 0},
                                    DB(sd_t0), DB_TAIL(sd)};
    expect_traps(e, 5);
  }
  CHECK_EQ(watched, 7);

  case_begin("ss_databp_rep");
  {
    static volatile uint8_t dst[4];
    write_dr0((ureg)&dst[1]);
    write_dr7(0x400 | 1 | (1u << 16)); /* L0, write, 1 byte */
    write_dr6(DR6_INIT);
    trap_log_clear();
    __asm__ volatile("call rs_start" ::"D"(dst) : "rax", "rcx", "memory");
    write_dr7(0x400);
    const struct trap_expect e[] = {{1, (ureg)rs_rep, DR6_BS, FL_TF, 0, 1, 2},
                                    {1, (ureg)rs_rep, DR6_BS | DR6_B0, FL_TF, 0, 1, 1},
                                    {1, (ureg)rs_t0, DR6_BS, FL_TF, 0, 1, 0},
                                    DB_TAIL(rs)};
    expect_traps(e, 6);
  }

  case_begin("ss_irq");
  *(volatile uint32_t*)0xFEE000F0 = 0x1FF; /* LAPIC software enable (SDM 11.9) */
  set_trap_hook(0x40, irq_hook);
  RUN(pi_start);
  {
    const struct trap_expect e[] = {DB(pi_1),
                                    DB(pi_popf),
                                    DB(pi_after),
                                    {0x40, (ureg)pi_after, 0, FL_TF | FL_IF, 0, 0, 0},
                                    DB(pi_t0),
                                    DB_TAIL(pi)};
    expect_traps(e, 8);
    CHECK(trap_log[2].rflags & FL_IF);
  }

  case_begin("ss_nmi");
  set_trap_record_only(2, 1);
  RUN(nm_start);
  {
    /* IPI latency is not architectural, so the NMI's exact RIP is not checked:
     * only that it came after the #DB's delivery, inside the #DB handler (TF
     * clear in its image, kernel CS), and before the handler logged. */
    CHECK_EQ(trap_count, 6);
    CHECK_EQ(trap_log[0].vector, 2);
    CHECK_EQ(trap_log[0].cs, SEL_CODE64);
    CHECK_MSG(!(trap_log[0].rflags & FL_TF) && trap_log[0].rip != (ureg)nm_after,
              "NMI taken at %#lx rflags %#lx: before the single-step #DB",
              (unsigned long)trap_log[0].rip, (unsigned long)trap_log[0].rflags);
    const struct trap_expect e[] = {DB(nm_after), DB(nm_t0), DB_TAIL(nm)};
    int n = trap_count;
    for (int i = 1; i < n && i < TRAP_LOG_MAX; i++) trap_log[i - 1] = trap_log[i];
    trap_count = n - 1;
    expect_traps(e, 5);
  }
}
