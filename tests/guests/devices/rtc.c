/* CMOS real-time clock (ports 0x70/0x71) read as an OS does at boot: wait
 * for "update in progress" (register A bit 7) to clear, read the time twice
 * until both reads agree, decode BCD or binary per register B, and check the
 * values are plausible (year >= 2020). Then the binary data mode, register D
 * (valid RAM and time), and the periodic interrupt on IRQ 8 through the
 * slave 8259 (register C acknowledges it). */
#include "dev.h"

GUEST_NAME("rtc");

struct rtc_time {
  uint8_t sec, min, hour, day, mon, year, century;
};

static void read_raw(struct rtc_time* t) {
  for (int i = 0; i < 1000000 && (cmos_read(0x0A) & 0x80); i++) {
  }
  t->sec = cmos_read(0x00);
  t->min = cmos_read(0x02);
  t->hour = cmos_read(0x04);
  t->day = cmos_read(0x07);
  t->mon = cmos_read(0x08);
  t->year = cmos_read(0x09);
  t->century = cmos_read(0x32);
}

static int same(const struct rtc_time* a, const struct rtc_time* b) {
  return a->sec == b->sec && a->min == b->min && a->hour == b->hour && a->day == b->day &&
         a->mon == b->mon && a->year == b->year && a->century == b->century;
}

static void read_stable(struct rtc_time* t) {
  struct rtc_time again;
  read_raw(t);
  for (int i = 0; i < 10; i++) {
    read_raw(&again);
    if (same(t, &again)) return;
    *t = again;
  }
}

static int valid_bcd(uint8_t v) {
  return (v & 0x0F) <= 9 && (v >> 4) <= 9;
}
static uint8_t from_bcd(uint8_t v) {
  return (uint8_t)((v >> 4) * 10 + (v & 0x0F));
}

static volatile int periodic_count;
static volatile uint8_t regc_seen;

static void rtc_irq(struct trap_frame* f) {
  (void)f;
  uint8_t c = cmos_read(0x0C); /* reading C acknowledges and lowers IRQ 8 */
  if (periodic_count == 0) regc_seen = c;
  periodic_count++;
  pic_eoi(8);
}

static volatile int alarm_count;
static volatile uint8_t alarm_regc, alarm_sec;
static void alarm_irq(struct trap_frame* f) {
  (void)f;
  uint8_t c = cmos_read(0x0C);
  if (c & 0x20) {
    alarm_regc = c;
    alarm_sec = cmos_read(0x00);
    alarm_count++;
  }
  pic_eoi(8);
}

static volatile int update_count;
static volatile uint8_t update_sec[4];
static volatile uint8_t update_regc;

static void update_irq(struct trap_frame* f) {
  (void)f;
  uint8_t c = cmos_read(0x0C);
  if (c & 0x10) {
    if (update_count < 4) update_sec[update_count] = cmos_read(0x00);
    update_regc = c;
    update_count++;
  }
  pic_eoi(8);
}

void guest_main(void) {
  cli();
  pic_init();

  case_begin("status");
  uint8_t b = cmos_read(0x0B);
  uint8_t d = cmos_read(0x0D);
  printf("RTC register A %#x B %#x D %#x\n", cmos_read(0x0A), b, d);
  CHECK_MSG(d & 0x80, "register D %#x: VRT (valid RAM and time) clear", d);
  CHECK_MSG(b & 0x02, "register B %#x: 24-hour mode expected, as a PC BIOS sets", b);

  case_begin("time_bcd");
  cmos_write(0x0B, b & ~0x04); /* data mode BCD */
  struct rtc_time t;
  read_stable(&t);
  CHECK_MSG(valid_bcd(t.sec) && valid_bcd(t.min) && valid_bcd(t.hour) && valid_bcd(t.day) &&
                valid_bcd(t.mon) && valid_bcd(t.year) && valid_bcd(t.century),
            "not BCD: %02x:%02x:%02x %02x/%02x/%02x%02x", t.hour, t.min, t.sec, t.day, t.mon,
            t.century, t.year);
  int sec = from_bcd(t.sec), min = from_bcd(t.min), hour = from_bcd(t.hour);
  int day = from_bcd(t.day), mon = from_bcd(t.mon);
  int year = from_bcd(t.century) * 100 + from_bcd(t.year);
  printf("RTC time %04d-%02d-%02d %02d:%02d:%02d\n", year, mon, day, hour, min, sec);
  CHECK_MSG(sec < 60 && min < 60 && hour < 24, "time %d:%d:%d out of range", hour, min, sec);
  CHECK_MSG(day >= 1 && day <= 31 && mon >= 1 && mon <= 12, "date %d/%d out of range", day, mon);
  CHECK_MSG(year >= 2020 && year < 2100, "year %d not plausible", year);

  case_begin("time_binary");
  cmos_write(0x0B, b | 0x04); /* data mode binary */
  struct rtc_time u;
  read_stable(&u);
  cmos_write(0x0B, b);
  CHECK_MSG(u.year == year % 100 && u.century == year / 100, "binary year %u/%u, BCD read gave %d",
            u.century, u.year, year);
  CHECK_MSG(u.mon == mon && u.day == day, "binary date %u/%u, BCD %d/%d", u.day, u.mon, day, mon);
  CHECK_MSG(u.hour < 24 && u.min < 60 && u.sec < 60, "binary time %u:%u:%u", u.hour, u.min, u.sec);
  /* Within the same hour unless the clock rolled over between the reads. */
  CHECK_MSG(u.hour == hour || (u.min == 0 && min == 59), "binary hour %u, BCD %d", u.hour, hour);

  case_begin("cmos_ram");
  uint8_t saved = cmos_read(0x40);
  cmos_write(0x40, 0x5A);
  uint8_t r1 = cmos_read(0x40);
  cmos_write(0x40, 0xA5);
  uint8_t r2 = cmos_read(0x40);
  cmos_write(0x40, saved);
  CHECK_MSG(r1 == 0x5A && r2 == 0xA5, "CMOS byte 0x40 read %#x/%#x after writing 0x5A/0xA5", r1,
            r2);

  case_begin("periodic_irq8");
  set_trap_hook(PIC_SLAVE_BASE + 0, rtc_irq);
  uint8_t a = cmos_read(0x0A);
  cmos_write(0x0A, (uint8_t)((a & 0xF0) | 0x06)); /* rate 6: 1024 Hz */
  (void)cmos_read(0x0C);
  cmos_write(0x0B, b | 0x40); /* PIE */
  pic_unmask(8);
  int n = wait_count(&periodic_count, 8, WAIT_LIMIT);
  cmos_write(0x0B, b & ~0x70);
  pic_mask(8);
  (void)cmos_read(0x0C);
  cmos_write(0x0A, a);
  CHECK_MSG(n >= 8, "%d periodic RTC interrupts, expected 8", n);
  CHECK_MSG((regc_seen & 0xC0) == 0xC0, "register C %#x in the handler: IRQF and PF expected",
            regc_seen);

  case_begin("alarm_irq");
  /* Alarm (register B bit 5): seconds = now + 2, minutes and hours "don't
   * care" (0xC0-0xFF); one interrupt with AF in register C, at that second. */
  set_trap_hook(PIC_SLAVE_BASE + 0, alarm_irq);
  cmos_write(0x0B, b & ~0x04); /* BCD */
  struct rtc_time now;
  read_stable(&now);
  uint8_t target = (uint8_t)((from_bcd(now.sec) + 2) % 60);
  uint8_t target_bcd = (uint8_t)(((target / 10) << 4) | (target % 10));
  cmos_write(0x01, target_bcd);
  cmos_write(0x03, 0xFF);
  cmos_write(0x05, 0xFF);
  (void)cmos_read(0x0C);
  cmos_write(0x0B, (b & ~0x04) | 0x20); /* AIE */
  pic_unmask(8);
  for (int i = 0; i < 400 && alarm_count < 1; i++) __asm__ volatile("sti; hlt; cli");
  cmos_write(0x0B, b);
  pic_mask(8);
  (void)cmos_read(0x0C);
  CHECK_MSG(alarm_count == 1, "%d alarm interrupts, expected 1", alarm_count);
  CHECK_MSG(alarm_regc & 0x20, "register C %#x in the handler: AF clear", alarm_regc);
  CHECK_MSG(alarm_sec == target_bcd, "alarm fired at second %#x, set for %#x", alarm_sec,
            target_bcd);

  case_begin("update_irq");
  /* Update-ended interrupts (register B bit 4) arrive once a second, after
   * the time registers changed: two in a row are one second apart. HLT lets
   * virtual time run to the next event. */
  set_trap_hook(PIC_SLAVE_BASE + 0, update_irq);
  (void)cmos_read(0x0C);
  cmos_write(0x0B, (b & ~0x04) | 0x10); /* BCD, UIE */
  pic_unmask(8);
  for (int i = 0; i < 400 && update_count < 3; i++) __asm__ volatile("sti; hlt; cli");
  cmos_write(0x0B, b);
  pic_mask(8);
  (void)cmos_read(0x0C);
  CHECK_MSG(update_count >= 3, "%d update-ended interrupts", update_count);
  if (update_count >= 3) {
    int s1 = from_bcd(update_sec[1]), s2 = from_bcd(update_sec[2]);
    CHECK_MSG((s1 + 1) % 60 == s2, "seconds %d then %d at consecutive update interrupts", s1, s2);
    CHECK_MSG(update_regc & 0x10, "register C %#x in the handler: UF clear", update_regc);
  }
}
