/* Local APIC timer (xAPIC MMIO): periodic and one-shot modes, the current
 * count register, the divide configuration, a masked LVT, and TSC-deadline
 * mode when CPUID.1:ECX[24] advertises it. The 8259s are masked: every
 * interrupt comes from the local APIC. */
#include "dev.h"

GUEST_NAME("apic_timer");

#define TIMER_VECTOR 0x40

static volatile int ticks;
static volatile int isr_bit_in_handler;

static void timer_irq(struct trap_frame* f) {
  (void)f;
  if (ticks == 0) isr_bit_in_handler = lapic_vector_bit(LAPIC_ISR, TIMER_VECTOR);
  ticks++;
  lapic_eoi();
}

static void timer_stop(void) {
  lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | TIMER_VECTOR);
  lapic_write(LAPIC_TIMER_INITIAL, 0);
}

void guest_main(void) {
  cli();
  pic_init();
  set_trap_hook(TIMER_VECTOR, timer_irq);

  case_begin("enable");
  uint64_t base = rdmsr(MSR_APIC_BASE);
  CHECK_MSG((base & 0xFFFFF000u) == LAPIC_BASE && (base & (1u << 11)),
            "IA32_APIC_BASE %#lx: expected 0xFEE00000 and the global enable", (unsigned long)base);
  CHECK_MSG(base & (1u << 8), "IA32_APIC_BASE %#lx: BSP flag clear", (unsigned long)base);
  lapic_enable();
  uint32_t version = lapic_read(LAPIC_VERSION);
  CHECK_MSG((version & 0xFF) >= 0x10 && (version & 0xFF) <= 0x15,
            "APIC version %#x is not an integrated APIC", version);
  CHECK_MSG(((version >> 16) & 0xFF) >= 3, "max LVT entry %u", (version >> 16) & 0xFF);
  CHECK_MSG(lapic_read(LAPIC_SVR) == 0x1FF, "SVR reads %#x, wrote 0x1FF", lapic_read(LAPIC_SVR));

  case_begin("periodic");
  lapic_write(LAPIC_TIMER_DIVIDE, 0x3); /* divide by 16 */
  CHECK_EQ(lapic_read(LAPIC_TIMER_DIVIDE) & 0xB, 0x3);
  lapic_write(LAPIC_LVT_TIMER, LVT_PERIODIC | TIMER_VECTOR);
  lapic_write(LAPIC_TIMER_INITIAL, 20000);
  CHECK_EQ(lapic_read(LAPIC_TIMER_INITIAL), 20000);
  uint32_t cur1 = lapic_read(LAPIC_TIMER_CURRENT);
  CHECK_MSG(cur1 > 0 && cur1 <= 20000, "current count %u right after loading 20000", cur1);
  int n = wait_count(&ticks, 10, WAIT_LIMIT);
  CHECK_MSG(n >= 10, "%d periodic interrupts, expected 10", n);
  CHECK_MSG(isr_bit_in_handler, "ISR bit of vector %#x not set in the handler", TIMER_VECTOR);
  CHECK_MSG(!lapic_vector_bit(LAPIC_ISR, TIMER_VECTOR), "ISR bit still set after EOI");
  uint32_t cur2 = lapic_read(LAPIC_TIMER_CURRENT);
  CHECK_MSG(cur2 > 0 && cur2 <= 20000, "periodic current count %u (reloads, never stays 0)", cur2);
  timer_stop();
  spin_sti(1000); /* one expiry may have been pending when the timer stopped */
  int stopped = ticks;
  spin_sti(1000000);
  CHECK_MSG(ticks == stopped, "%d interrupts after initial count 0", ticks - stopped);

  case_begin("one_shot");
  ticks = 0;
  lapic_write(LAPIC_TIMER_DIVIDE, 0xB);       /* divide by 1 */
  lapic_write(LAPIC_LVT_TIMER, TIMER_VECTOR); /* one-shot */
  lapic_write(LAPIC_TIMER_INITIAL, 100000);
  n = wait_count(&ticks, 1, WAIT_LIMIT);
  CHECK_MSG(n == 1, "%d one-shot interrupts, expected 1", n);
  spin_sti(3000000);
  CHECK_MSG(ticks == 1, "one-shot fired %d times", ticks);
  CHECK_MSG(lapic_read(LAPIC_TIMER_CURRENT) == 0, "current count %u after a one-shot expired",
            lapic_read(LAPIC_TIMER_CURRENT));

  case_begin("masked");
  ticks = 0;
  lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | TIMER_VECTOR);
  lapic_write(LAPIC_TIMER_INITIAL, 1000000);
  uint32_t m1 = lapic_read(LAPIC_TIMER_CURRENT);
  spin_sti(200000);
  uint32_t m2 = lapic_read(LAPIC_TIMER_CURRENT);
  CHECK_MSG(m2 < m1, "masked timer does not count down (%u, %u)", m1, m2);
  CHECK_MSG(ticks == 0, "%d interrupts from a masked LVT", ticks);
  timer_stop();

  case_begin("divide");
  /* Divide configuration 1, 2, 4 ... 128 (SDM 10.5.4: bits 0, 1, 3): the
   * count rate relative to the TSC scales by the divisor. Each rate is
   * measured over the same spin; a measurement off by more than 10% (a host
   * preempting the emulator between two reads) is retried. */
  static const uint8_t kDivide[8] = {0xB, 0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA};
  uint64_t base_rate = 0;
  for (int k = 0; k < 8; k++) {
    uint64_t rate = 0;
    int good = 0;
    for (int attempt = 0; attempt < 4 && !good; attempt++) {
      lapic_write(LAPIC_TIMER_DIVIDE, kDivide[k]);
      lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | TIMER_VECTOR);
      lapic_write(LAPIC_TIMER_INITIAL, 0xFFFFFFFF);
      uint64_t t0 = rdtsc();
      uint32_t c0 = lapic_read(LAPIC_TIMER_CURRENT);
      for (volatile int i = 0; i < 200000; i++) {
      }
      uint32_t c1 = lapic_read(LAPIC_TIMER_CURRENT);
      uint64_t t1 = rdtsc();
      /* APIC counts x 2^k per 2^20 TSC cycles: the same for every k. */
      rate = (((uint64_t)(c0 - c1)) << (20 + k)) / (t1 - t0 ? t1 - t0 : 1);
      if (k == 0) {
        base_rate = rate;
        good = rate > 0;
      } else {
        uint64_t d = rate > base_rate ? rate - base_rate : base_rate - rate;
        good = d * 10 <= base_rate;
      }
    }
    CHECK_MSG(good, "divide by %d: rate %lu (x 2^-20 per TSC cycle, scaled), divide by 1: %lu",
              1 << k, (unsigned long)rate, (unsigned long)base_rate);
  }
  timer_stop();

  case_begin("tsc_deadline");
  uint32_t r[4];
  cpuid(1, 0, r);
  if (!(r[2] & (1u << 24))) {
    printf("note: CPUID.1:ECX[24] = 0, TSC-deadline mode not supported: case skipped\n");
  } else {
    ticks = 0;
    lapic_write(LAPIC_LVT_TIMER, LVT_TSC_DEADLINE | TIMER_VECTOR);
    /* SDM 10.5.4.1: a write to the deadline MSR arms the timer; 0 disarms. */
    uint64_t deadline = rdtsc() + 2000000;
    wrmsr(MSR_TSC_DEADLINE, deadline);
    CHECK_MSG(rdmsr(MSR_TSC_DEADLINE) == deadline, "IA32_TSC_DEADLINE reads %#lx, wrote %#lx",
              (unsigned long)rdmsr(MSR_TSC_DEADLINE), (unsigned long)deadline);
    n = wait_count(&ticks, 1, WAIT_LIMIT);
    uint64_t now = rdtsc();
    CHECK_MSG(n == 1, "%d TSC-deadline interrupts, expected 1", n);
    CHECK_MSG(now >= deadline, "interrupt before the deadline (TSC %#lx < %#lx)",
              (unsigned long)now, (unsigned long)deadline);
    CHECK_MSG(rdmsr(MSR_TSC_DEADLINE) == 0, "IA32_TSC_DEADLINE %#lx after it fired, expected 0",
              (unsigned long)rdmsr(MSR_TSC_DEADLINE));
    /* Disarming: write 0 before the deadline; nothing fires. */
    wrmsr(MSR_TSC_DEADLINE, rdtsc() + 2000000);
    wrmsr(MSR_TSC_DEADLINE, 0);
    spin_sti(3000000);
    CHECK_MSG(ticks == 1, "disarmed TSC deadline fired (%d interrupts)", ticks);
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | TIMER_VECTOR);
  }
}
