/* Timer calibration as kernels do it at boot (Linux's pit_calibrate_tsc and
 * APIC-timer calibration): PIT channel 2 in mode 0, gated through port 0x61,
 * counts a known interval; the TSC and the local APIC timer's current count
 * are read at its start and at terminal count (OUT2, port 0x61 bit 5). The
 * rates must be plausible and the same in two windows: all three clocks run
 * from one time base. */
#include "dev.h"

GUEST_NAME("timer_calibration");

#define WINDOW_COUNT 5966 /* PIT ticks: 5.0 ms at 1193182 Hz */

struct window {
  uint64_t tsc;
  uint32_t apic;
  int ok;
};

static struct window measure(void) {
  struct window w = {0, 0, 0};
  uint8_t p61 = inb(0x61);
  outb(0x61, (uint8_t)((p61 & ~0x03) | 0x00)); /* gate off, speaker off */
  outb(0x43, 0xB0);                            /* channel 2, lobyte/hibyte, mode 0 */
  outb(0x42, WINDOW_COUNT & 0xFF);
  outb(0x42, WINDOW_COUNT >> 8);
  lapic_write(LAPIC_TIMER_INITIAL, 0xFFFFFFFF);
  uint32_t apic0 = lapic_read(LAPIC_TIMER_CURRENT);
  uint64_t tsc0 = rdtsc();
  outb(0x61, (uint8_t)((p61 & ~0x02) | 0x01)); /* gate on: counting starts */
  uint64_t spins = 0;
  while (!(inb(0x61) & 0x20) && spins < 200000000ull) spins++;
  uint64_t tsc1 = rdtsc();
  uint32_t apic1 = lapic_read(LAPIC_TIMER_CURRENT);
  outb(0x61, p61 & ~0x03);
  w.ok = (inb(0x61) & 0x20) || spins < 200000000ull;
  w.tsc = tsc1 - tsc0;
  w.apic = apic0 - apic1;
  return w;
}

static uint64_t per_second(uint64_t delta) {
  return delta * PIT_HZ / WINDOW_COUNT;
}

void guest_main(void) {
  cli();
  pic_init();
  lapic_enable();
  lapic_write(LAPIC_TIMER_DIVIDE, 0xB);            /* divide by 1 */
  lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | 0x40); /* one-shot, masked: only the count */

  case_begin("windows");
  /* Emulators stretch some windows (translation, host scheduling), so rates
   * come from the shortest of four windows, and the cross-checks compare the
   * TSC/APIC ratio, which each window measures over the same interval. */
  struct window w[4];
  int best = 0, all_ok = 1;
  for (int i = 0; i < 4; i++) {
    w[i] = measure();
    all_ok &= w[i].ok;
    if (w[i].tsc < w[best].tsc) best = i;
  }
  CHECK_MSG(all_ok, "PIT channel 2 never reached terminal count");
  uint64_t tsc_hz = per_second(w[best].tsc), apic_hz = per_second(w[best].apic);
  printf("TSC %lu Hz, APIC timer %lu Hz\n", (unsigned long)tsc_hz, (unsigned long)apic_hz);
  for (int i = 0; i < 4; i++)
    printf("  window %d: TSC %lu, APIC %u\n", i, (unsigned long)w[i].tsc, w[i].apic);

  /* Lower bounds only: a starved emulator thread notices terminal count late
   * and stretches every window, which inflates both rates. */
  case_begin("tsc_rate");
  CHECK_MSG(tsc_hz >= 100000000ull, "TSC %lu Hz is not plausible", (unsigned long)tsc_hz);

  case_begin("apic_rate");
  CHECK_MSG(apic_hz >= 1000000ull, "APIC timer %lu Hz is not plausible", (unsigned long)apic_hz);

  case_begin("same_time_base");
  /* APIC counts per 2^20 TSC cycles, per window: at least three of the four
   * within 5% of the median (a host preempting the emulator between two
   * reads may stretch one window's start or end). */
  uint64_t r[4];
  for (int i = 0; i < 4; i++) r[i] = ((uint64_t)w[i].apic << 20) / (w[i].tsc ? w[i].tsc : 1);
  uint64_t sorted[4] = {r[0], r[1], r[2], r[3]};
  for (int i = 0; i < 4; i++)
    for (int j = i + 1; j < 4; j++)
      if (sorted[j] < sorted[i]) {
        uint64_t t = sorted[i];
        sorted[i] = sorted[j];
        sorted[j] = t;
      }
  uint64_t median = (sorted[1] + sorted[2]) / 2;
  int close = 0;
  for (int i = 0; i < 4; i++)
    close += (r[i] > median ? r[i] - median : median - r[i]) * 20 <= median;
  CHECK_MSG(close >= 3, "APIC/TSC ratios (x 2^-20) %lu %lu %lu %lu: fewer than 3 within 5%%",
            (unsigned long)r[0], (unsigned long)r[1], (unsigned long)r[2], (unsigned long)r[3]);
}
