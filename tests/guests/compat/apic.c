/* The local APIC as the unit-test kernels' APIC test uses it on one CPU:
 * version, hardware disable through IA32_APIC_BASE (CPUID.1:EDX.APIC follows
 * it, the MMIO page reads all-ones, CR8 keeps working) and enable again, CR8
 * writes seen in TPR, the legal and illegal IA32_APIC_BASE mode transitions
 * and reserved bits, self IPIs by shorthand in xAPIC and x2APIC mode, the
 * physical broadcast destination, NMI IPIs to itself while an NMI is being
 * handled (one more is latched, the rest are lost), the timer in one-shot
 * mode against the TSC, TMCCT across one-shot/periodic mode changes, and
 * the register page moved through IA32_APIC_BASE ("relocate apic"). */
#include "kut.h"

#define MAX_TPR 0xF

static int apic_feature(void) {
  return (cpuid_leaf(1).d >> 9) & 1;
}
static uint64_t apicbase(void) {
  return rdmsr(MSR_IA32_APICBASE);
}

/* Back to the mode the start-up code left (x2APIC when offered). */
static void restore_mode(void) {
  reset_apic();
  enable_x2apic();
  apic_write(APIC_SPIV, 0x1FF);
}

static void test_version(void) {
  uint32_t v = apic_read(APIC_LVR);
  report((v & 0xFF) >= 0x10 && (v & 0xFF) <= 0x15, "version: %#x", v & 0xFF);
  report(((v >> 16) & 0xFF) >= 3, "version: max LVT entry %u", (v >> 16) & 0xFF);
}

static void verify_disabled_mmio(void) {
  volatile uint32_t* lvr = (volatile uint32_t*)(ulong_t)(APIC_DEFAULT_PHYS_BASE + APIC_LVR);
  volatile uint32_t* tpr = (volatile uint32_t*)(ulong_t)(APIC_DEFAULT_PHYS_BASE + APIC_TASKPRI);
  ulong_t cr8 = read_cr8();
  /* Writes to the page must not reach the APIC's registers. */
  for (unsigned off = 0; off < 0x1000; off += 4)
    *(volatile uint32_t*)(ulong_t)(APIC_DEFAULT_PHYS_BASE + off) = 0xFFFFFFFF;
  report(*lvr == 0xFFFFFFFF, "MMIO version reads %#x", *lvr);
  report(read_cr8() == cr8, "CR8 %#lx unchanged", (unsigned long)read_cr8());
  write_cr8(cr8 ^ MAX_TPR);
  report(read_cr8() == (cr8 ^ MAX_TPR), "CR8 written: %#lx", (unsigned long)read_cr8());
  report(*tpr == 0xFFFFFFFF, "MMIO TPR reads %#x", *tpr);
  write_cr8(cr8);
}

static void test_disable(void) {
  report_prefix_push("apic_disable");
  uint32_t version = apic_read(APIC_LVR);
  ulong_t cr8 = read_cr8();
  disable_apic();
  report(!(apicbase() & APIC_EN), "IA32_APIC_BASE.EN clear");
  report(!apic_feature(), "CPUID.1:EDX.APIC clear");
  verify_disabled_mmio();

  reset_apic();
  report((apicbase() & (APIC_EN | APIC_EXTD)) == APIC_EN, "enabled again in xAPIC mode");
  report(apic_feature(), "CPUID.1:EDX.APIC set");
  report(xapic_read(APIC_LVR) == version, "MMIO version %#x", xapic_read(APIC_LVR));
  report(xapic_read(APIC_TASKPRI) == cr8 << 4, "MMIO TPR %#x = CR8 << 4", xapic_read(APIC_TASKPRI));
  write_cr8(cr8 ^ MAX_TPR);
  report(xapic_read(APIC_TASKPRI) == (cr8 ^ MAX_TPR) << 4, "TPR %#x follows CR8 %#lx",
         xapic_read(APIC_TASKPRI), (unsigned long)read_cr8());
  write_cr8(cr8);
  if (enable_x2apic()) {
    report((apicbase() & (APIC_EN | APIC_EXTD)) == (APIC_EN | APIC_EXTD), "x2APIC mode");
    report(apic_feature(), "CPUID.1:EDX.APIC set in x2APIC mode");
    verify_disabled_mmio();
  }
  report_prefix_pop();
  restore_mode();
}

/* The TPR is CR8 (TPR[7:4]) both ways: a TPR written through the APIC's
 * registers (the MSR in x2APIC mode, the page in xAPIC mode) is what CR8
 * reads, and keeps its low four bits; a CR8 write clears them. */
static void test_tpr_is_cr8(void) {
  report_prefix_push("tpr_cr8");
  const ulong_t cr8 = read_cr8();
  apic_write(APIC_TASKPRI, 0x55);
  report(read_cr8() == 5, "CR8 %#lx after TPR 0x55", (unsigned long)read_cr8());
  report(apic_read(APIC_TASKPRI) == 0x55, "TPR %#x keeps its low bits", apic_read(APIC_TASKPRI));
  write_cr8(3);
  report(apic_read(APIC_TASKPRI) == 0x30, "TPR %#x after CR8 3", apic_read(APIC_TASKPRI));
  write_cr8(cr8);
  report(apic_read(APIC_TASKPRI) == cr8 << 4, "TPR %#x restored", apic_read(APIC_TASKPRI));
  report_prefix_pop();
}

static int write_base_faults(uint64_t v) {
  return wrmsr_safe(MSR_IA32_APICBASE, v) == GP_VECTOR;
}

static void test_transitions(void) {
  report_prefix_push("apicbase_modes");
  uint64_t base = apicbase() & ~(uint64_t)(APIC_EN | APIC_EXTD);
  if (enable_x2apic()) {
    report(write_base_faults(base | APIC_EXTD), "x2APIC -> invalid (EXTD without EN) faults");
    report(write_base_faults(base | APIC_EN), "x2APIC -> xAPIC faults");
    report(!write_base_faults(base), "x2APIC -> disabled");
    report(write_base_faults(base | APIC_EXTD), "disabled -> invalid faults");
    report(write_base_faults(base | APIC_EN | APIC_EXTD), "disabled -> x2APIC faults");
    report(!write_base_faults(base | APIC_EN), "disabled -> xAPIC");
    report(write_base_faults(base | APIC_EXTD), "xAPIC -> invalid faults");
    report(!write_base_faults(base | APIC_EN | APIC_EXTD), "xAPIC -> x2APIC");
  } else {
    report(write_base_faults(APIC_EN | APIC_EXTD), "x2APIC not offered: EXTD faults");
  }
  report_prefix_pop();
  restore_mode();

  report_prefix_push("apicbase_reserved");
  uint64_t orig = apicbase();
  unsigned maxphys = cpuid_leaf(0x80000008).a & 0xFF;
  report(write_base_faults(orig | (1ull << maxphys)), "bit %u (MAXPHYADDR) faults", maxphys);
  report(write_base_faults(orig | 1), "bit 0 faults");
  report(apicbase() == orig, "unchanged after the faults");
  report_prefix_pop();
}

static volatile int ipi_count;
static void self_ipi_isr(struct ex_regs* r) {
  (void)r;
  ipi_count++;
  eoi();
}
static void self_ipi(uint32_t icr, uint32_t dest) {
  ipi_count = 0;
  uint64_t start = rdtsc();
  irq_enable();
  apic_icr_write(icr, dest);
  while (ipi_count == 0 && rdtsc() - start < 100000000ull) pause_();
  irq_disable();
}

static void test_self_ipi(void) {
  handle_irq(0xF1, self_ipi_isr);
  report_prefix_push("self_ipi_xapic");
  reset_apic();
  report((apicbase() & (APIC_EN | APIC_EXTD)) == APIC_EN, "xAPIC mode");
  self_ipi(APIC_DEST_SELF | APIC_DEST_PHYSICAL | APIC_DM_FIXED | 0xF1, 0);
  report(ipi_count == 1, "self IPI by shorthand: %d", ipi_count);
  report(!(xapic_read(APIC_ICR) & APIC_ICR_BUSY), "ICR delivery status idle");
  report_prefix_pop();
  report_prefix_push("self_ipi_x2apic");
  if (enable_x2apic()) {
    self_ipi(APIC_DEST_SELF | APIC_DEST_PHYSICAL | APIC_DM_FIXED | 0xF1, 0);
    report(ipi_count == 1, "self IPI by shorthand: %d", ipi_count);
    ipi_count = 0;
    irq_enable();
    wrmsr(0x800 + APIC_SELF_IPI / 16, 0xF1); /* the SELF IPI register */
    __asm__ volatile("nop");
    irq_disable();
    report(ipi_count == 1, "SELF IPI register: %d", ipi_count);
  } else {
    report_skip("x2APIC not offered");
  }
  report_prefix_pop();
  restore_mode();
}

static void test_broadcast(void) {
  report_prefix_push("broadcast");
  handle_irq(0xCF, self_ipi_isr);
  uint32_t all = enable_x2apic() ? 0xFFFFFFFF : 0xFF;
  self_ipi(APIC_DEST_PHYSICAL | APIC_DM_FIXED | APIC_INT_ASSERT | 0xCF, all);
  report(ipi_count == 1, "physical destination %#x reaches the only CPU", all);
  self_ipi(APIC_DEST_PHYSICAL | APIC_DM_FIXED | APIC_INT_ASSERT | APIC_DEST_ALLINC | 0xCF, 0);
  report(ipi_count == 1, "all-including-self shorthand");
  self_ipi(APIC_DEST_PHYSICAL | APIC_DM_FIXED | APIC_INT_ASSERT | APIC_DEST_ALLBUT | 0xCF, 0);
  report(ipi_count == 0, "all-but-self shorthand does not reach the sender");
  report_prefix_pop();
}

static volatile int nmi_received;
static void pending_nmi_handler(struct ex_regs* r) {
  (void)r;
  if (++nmi_received == 1) {
    for (int i = 0; i < 10; i++) apic_icr_write(APIC_DEST_PHYSICAL | APIC_DM_NMI, apic_id());
  }
}

static void test_pending_nmi(void) {
  handle_irq(NMI_VECTOR, pending_nmi_handler);
  int ok = 1;
  for (int i = 0; i < 200 && ok; i++) {
    nmi_received = 0;
    apic_icr_write(APIC_DEST_PHYSICAL | APIC_DM_NMI, apic_id());
    uint64_t start = rdtsc();
    while (nmi_received < 2 && rdtsc() - start < 100000000ull) pause_();
    for (int k = 0; k < 100; k++) pause_(); /* a third would arrive now */
    ok = nmi_received == 2;
  }
  report(ok, "pending nmi: one latched while in the handler (%d received)", nmi_received);
  handle_irq(NMI_VECTOR, 0);
}

static volatile int lvtt_count;
static void lvtt_handler(struct ex_regs* r) {
  (void)r;
  lvtt_count++;
  eoi();
}

static void test_timer_one_shot(void) {
  const uint32_t interval = 0x10000;
  handle_irq(0xEE, lvtt_handler);
  lvtt_count = 0;
  irq_enable();
  apic_write(APIC_LVTT, APIC_LVT_TIMER_ONESHOT | 0xEE);
  apic_write(APIC_TDCR, 0xB); /* divide by 1 */
  uint64_t t1 = rdtsc();
  apic_write(APIC_TMICT, interval);
  uint64_t start = rdtsc();
  while (!lvtt_count && rdtsc() - start < 1000000000ull) pause_();
  uint64_t t2 = rdtsc();
  irq_disable();
  report(lvtt_count == 1 && t2 - t1 >= interval,
         "timer one shot: %d interrupt(s) after %llu TSC ticks", lvtt_count,
         (unsigned long long)(t2 - t1));
  apic_write(APIC_LVTT, APIC_LVT_MASKED);
}

static void change_mode(uint32_t mode) {
  apic_write(APIC_LVTT, (apic_read(APIC_LVTT) & ~APIC_LVT_TIMER_MASK) | mode);
}
/* Waits until TMCCT is at most half of `initial`, then (unless half) until
 * it reaches 0 or wraps (periodic); bounded so that a stuck counter fails. */
static void wait_tmcct(uint32_t initial, int half, int wrap) {
  uint32_t c = apic_read(APIC_TMCCT);
  uint64_t start = rdtsc();
  if (!c) return;
  while (c > initial / 2 && rdtsc() - start < 2000000000ull) c = apic_read(APIC_TMCCT);
  if (half) return;
  while (c <= initial / 2 && c > 0 && rdtsc() - start < 2000000000ull) c = apic_read(APIC_TMCCT);
  while (wrap && !c && rdtsc() - start < 2000000000ull) c = apic_read(APIC_TMCCT);
}

static void test_change_mode(void) {
  report_prefix_push("timer_mode");
  const uint32_t tmict = 0x999999;
  apic_write(APIC_LVTT, APIC_LVT_MASKED | 0xEE);
  apic_write(APIC_TDCR, 0xB);
  apic_write(APIC_TMICT, tmict);
  change_mode(APIC_LVT_TIMER_PERIODIC);
  report(apic_read(APIC_TMICT) == tmict, "TMICT kept across a mode change");

  change_mode(APIC_LVT_TIMER_ONESHOT);
  apic_write(APIC_TMICT, tmict);
  report(apic_read(APIC_TMCCT) != 0, "one-shot: TMCCT counting");
  wait_tmcct(tmict, 0, 0);
  report(apic_read(APIC_TMCCT) == 0, "one-shot: TMCCT reached 0");

  apic_write(APIC_TMICT, tmict);
  wait_tmcct(tmict, 1, 0);
  change_mode(APIC_LVT_TIMER_PERIODIC);
  uint32_t c = apic_read(APIC_TMCCT);
  report(c != 0 && c < tmict / 2, "one-shot -> periodic: TMCCT %#x goes on from where it was", c);
  wait_tmcct(tmict, 0, 1);
  c = apic_read(APIC_TMCCT);
  report(c > tmict / 2, "periodic: TMCCT %#x reloaded from TMICT", c);

  wait_tmcct(tmict, 1, 0);
  change_mode(APIC_LVT_TIMER_ONESHOT);
  c = apic_read(APIC_TMCCT);
  report(c != 0 && c < tmict / 2, "periodic -> one-shot: TMCCT %#x not reloaded", c);
  wait_tmcct(tmict, 0, 0);
  report(apic_read(APIC_TMCCT) == 0, "one-shot: TMCCT reached 0 again");
  change_mode(APIC_LVT_TIMER_PERIODIC);
  report(apic_read(APIC_TMCCT) == 0, "expired one-shot -> periodic: TMCCT stays 0");
  apic_write(APIC_TMICT, 0);
  apic_write(APIC_LVTT, APIC_LVT_MASKED);
  report_prefix_pop();
}

/* The unit-test kernels' "relocate apic": disable, then enable at another
 * base; the registers answer there and no longer at the old page. In x2APIC
 * mode the page is gone. */
#define ALTERNATE_APIC_BASE 0xFED40000u
static uint32_t alt_read(unsigned reg) {
  return *(volatile uint32_t*)(ulong_t)(ALTERNATE_APIC_BASE + reg);
}
static void alt_write(unsigned reg, uint32_t v) {
  *(volatile uint32_t*)(ulong_t)(ALTERNATE_APIC_BASE + reg) = v;
}
static void test_relocation(void) {
  report_prefix_push("apicbase_relocate");
  uint64_t orig = apicbase();
  uint32_t lvr = apic_read(APIC_LVR);
  disable_apic();
  wrmsr(MSR_IA32_APICBASE, ALTERNATE_APIC_BASE | APIC_BSP | APIC_EN);
  report(alt_read(APIC_LVR) == lvr, "relocate apic: version %#x at the new base",
         alt_read(APIC_LVR));
  report(xapic_read(APIC_LVR) == 0xFFFFFFFF, "the old page reads %#x", xapic_read(APIC_LVR));
  alt_write(APIC_SPIV, 0x1FF);
  alt_write(APIC_TASKPRI, 0x50);
  xapic_write(APIC_TASKPRI, 0x20);
  report(alt_read(APIC_TASKPRI) == 0x50, "TPR %#x written through the new page only",
         alt_read(APIC_TASKPRI));
  alt_write(APIC_TASKPRI, 0);
  if (cpuid_leaf(1).c & (1u << 21)) {
    wrmsr(MSR_IA32_APICBASE, ALTERNATE_APIC_BASE | APIC_BSP | APIC_EN | APIC_EXTD);
    report(alt_read(APIC_LVR) == 0xFFFFFFFF, "x2APIC mode: no page at the new base");
    report((uint32_t)rdmsr(0x800 + APIC_LVR / 16) == lvr, "x2APIC mode: version MSR");
  } else {
    report_skip("x2APIC not offered");
  }
  /* Back to the original base, then to the start-up's mode. */
  disable_apic();
  wrmsr(MSR_IA32_APICBASE, orig & ~(uint64_t)(APIC_EN | APIC_EXTD));
  restore_mode();
  report(apicbase() == orig, "IA32_APIC_BASE %#lx restored", (unsigned long)apicbase());
  report(apic_read(APIC_LVR) == lvr, "version at the original base");
  report_prefix_pop();
}

int main(int argc, char** argv) {
  (void)argc;
  (void)argv;
  kut_assert((apicbase() & APIC_EN) && (apic_read(APIC_SPIV) & 0x100));
  test_version();
  test_tpr_is_cr8();
  test_self_ipi();
  test_broadcast();
  test_pending_nmi();
  test_timer_one_shot();
  test_change_mode();
  test_relocation();
  /* These disable the APIC through IA32_APIC_BASE (QEMU's TCG APIC cannot
   * be enabled again afterwards): last. */
  test_transitions();
  test_disable();
  return report_summary();
}
