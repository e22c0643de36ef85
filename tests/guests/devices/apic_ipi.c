/* Local APIC interrupt acceptance, driven by self-IPIs through the ICR (as an
 * OS's IPI path and its interrupt-priority logic use them): delivery status,
 * IRR -> ISR on acceptance, EOI, priority order of two pending vectors, TPR
 * blocking and PPR, and x2APIC mode (MSRs, SELF_IPI) when CPUID.1:ECX[21]
 * advertises it. The 8259s are masked. */
#include "dev.h"

GUEST_NAME("apic_ipi");

#define LAPIC_PPR 0x0A0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define ICR_SELF (1u << 18)
#define ICR_PENDING (1u << 12)

static volatile int order[8];
static volatile int taken;
static volatile int isr_in_handler, irr_in_handler;

static void record(struct trap_frame* f) {
  int v = (int)f->vector;
  if (taken == 0) {
    isr_in_handler = lapic_vector_bit(LAPIC_ISR, v);
    irr_in_handler = lapic_vector_bit(LAPIC_IRR, v);
  }
  if (taken < 8) order[taken] = v;
  taken++;
  lapic_eoi();
}

static void self_ipi(int vector) {
  lapic_write(LAPIC_ICR_HI, 0);
  lapic_write(LAPIC_ICR_LO, ICR_SELF | (uint32_t)vector);
}

static volatile int x2_taken;
static void x2_record(struct trap_frame* f) {
  (void)f;
  x2_taken++;
  wrmsr(0x80B, 0); /* x2APIC EOI */
}

static volatile int x2_isr_seen;
static void x2_timer(struct trap_frame* f) {
  (void)f;
  if (x2_taken == 0) x2_isr_seen = (int)((rdmsr(0x810 + 0x63 / 32) >> (0x63 % 32)) & 1);
  x2_taken++;
  wrmsr(0x80B, 0);
}

void guest_main(void) {
  cli();
  pic_init();
  lapic_enable();
  set_trap_hook(0x60, record);
  set_trap_hook(0x61, record);
  set_trap_hook(0x91, record);

  case_begin("self_ipi");
  self_ipi(0x60);
  int idle = 0;
  for (int i = 0; i < 100000 && (lapic_read(LAPIC_ICR_LO) & ICR_PENDING); i++) idle++;
  CHECK_MSG(!(lapic_read(LAPIC_ICR_LO) & ICR_PENDING), "ICR delivery status stays pending");
  CHECK_MSG(lapic_vector_bit(LAPIC_IRR, 0x60), "IRR bit of 0x60 clear with IF=0");
  CHECK_MSG(!lapic_vector_bit(LAPIC_ISR, 0x60), "ISR bit of 0x60 set before acceptance");
  int n = wait_count(&taken, 1, WAIT_LIMIT);
  CHECK_MSG(n == 1 && order[0] == 0x60, "%d interrupts (first vector %#x), expected 0x60", n,
            order[0]);
  CHECK_MSG(isr_in_handler && !irr_in_handler, "in the handler: ISR %d IRR %d, expected 1 0",
            isr_in_handler, irr_in_handler);
  CHECK_MSG(!lapic_vector_bit(LAPIC_ISR, 0x60), "ISR bit of 0x60 still set after EOI");
  CHECK_MSG(!lapic_vector_bit(LAPIC_TMR, 0x60), "TMR bit set for an edge IPI");

  case_begin("priority");
  taken = 0;
  self_ipi(0x61);
  self_ipi(0x91);
  n = wait_count(&taken, 2, WAIT_LIMIT);
  CHECK_MSG(n == 2, "%d interrupts, expected 2", n);
  CHECK_MSG(order[0] == 0x91 && order[1] == 0x61, "order %#x, %#x; expected 0x91 then 0x61",
            order[0], order[1]);

  case_begin("tpr");
  taken = 0;
  lapic_write(LAPIC_TPR, 0x70);
  self_ipi(0x61);
  spin_sti(200000);
  CHECK_MSG(taken == 0, "vector 0x61 delivered with TPR 0x70");
  CHECK_MSG(lapic_vector_bit(LAPIC_IRR, 0x61), "vector 0x61 not pending in IRR under TPR 0x70");
  uint32_t ppr = lapic_read(LAPIC_PPR);
  CHECK_MSG((ppr & 0xF0) == 0x70, "PPR %#x with TPR 0x70 and nothing in service", ppr);
  self_ipi(0x91); /* class 9 > 7: passes the TPR */
  n = wait_count(&taken, 1, WAIT_LIMIT);
  CHECK_MSG(n == 1 && order[0] == 0x91, "vector 0x91 under TPR 0x70: %d interrupts", n);
  lapic_write(LAPIC_TPR, 0);
  n = wait_count(&taken, 2, WAIT_LIMIT);
  CHECK_MSG(n == 2 && order[1] == 0x61, "vector 0x61 not delivered after TPR 0 (%d)", n);

  case_begin("x2apic");
  uint32_t r[4];
  cpuid(1, 0, r);
  if (!(r[2] & (1u << 21))) {
    printf("note: CPUID.1:ECX[21] = 0, x2APIC not supported: case skipped\n");
    return;
  }
  uint32_t xid = lapic_read(LAPIC_ID) >> 24, xver = lapic_read(LAPIC_VERSION);
  wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | (1u << 10));
  CHECK_MSG(rdmsr(MSR_APIC_BASE) & (1u << 10), "IA32_APIC_BASE.EXTD does not stick");
  CHECK_EQ(rdmsr(0x802), xid); /* x2APIC ID: the full 32-bit ID */
  CHECK_EQ(rdmsr(0x803) & 0xFF00FF, xver & 0xFF00FF);
  CHECK_EQ(rdmsr(0x80F) & 0x1FF, 0x1FF); /* SVR keeps its value across the switch */
  set_trap_hook(0x62, x2_record);
  wrmsr(0x83F, 0x62); /* SELF_IPI */
  n = wait_count(&x2_taken, 1, WAIT_LIMIT);
  CHECK_MSG(n == 1, "%d interrupts from x2APIC SELF_IPI, expected 1", n);
  wrmsr(0x830, ICR_SELF | 0x62); /* ICR as one 64-bit MSR */
  n = wait_count(&x2_taken, 2, WAIT_LIMIT);
  CHECK_MSG(n == 2, "%d interrupts after an x2APIC ICR self-IPI, expected 2", n);

  case_begin("x2apic_timer_tpr");
  /* The same registers through MSRs 0x800 + offset/16: ISR in the handler
   * (0x810 + vector/32), TPR (0x808), the timer (LVT 0x832, initial 0x838,
   * current 0x839, divide 0x83E). */
  set_trap_hook(0x63, x2_timer);
  x2_taken = 0;
  wrmsr(0x83E, 0x3);                  /* divide by 16 */
  wrmsr(0x832, LVT_PERIODIC | 0x63);  /* periodic */
  wrmsr(0x838, 20000);
  uint64_t cur = rdmsr(0x839);
  CHECK_MSG(cur > 0 && cur <= 20000, "x2APIC current count %lu after loading 20000",
            (unsigned long)cur);
  n = wait_count(&x2_taken, 3, WAIT_LIMIT);
  wrmsr(0x832, LVT_MASKED | 0x63);
  wrmsr(0x838, 0);
  spin_sti(1000);
  CHECK_MSG(n >= 3, "%d x2APIC timer interrupts, expected 3", n);
  CHECK_MSG(x2_isr_seen, "x2APIC ISR (MSR 0x812) lacks vector 0x63 in the handler");
  wrmsr(0x808, 0x70);
  CHECK_EQ(rdmsr(0x808), 0x70);
  x2_taken = 0;
  wrmsr(0x83F, 0x62); /* class 6 <= TPR class 7: held */
  spin_sti(100000);
  CHECK_MSG(x2_taken == 0, "vector 0x62 delivered under x2APIC TPR 0x70");
  wrmsr(0x808, 0);
  n = wait_count(&x2_taken, 1, WAIT_LIMIT);
  CHECK_MSG(n == 1, "vector 0x62 not delivered after TPR 0 (%d)", n);
}
