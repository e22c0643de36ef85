/* QEMU's pc-testdev: a 4-byte latch at ports 0xE0-0xE3 (each access reads or
 * writes its bytes of the latch) and 64 KiB of RAM-like MMIO at 0xFF000000,
 * accessed with every size and alignment so that the MMIO path (not RAM)
 * handles splits and merges. */
#include "dev.h"

GUEST_NAME("testdev");

#define IOMEM 0xFF000000u

static volatile uint8_t* const iomem8 = (volatile uint8_t*)(uintptr_t)IOMEM;

void guest_main(void) {
  /* Nothing is printed between latch accesses: with QEMU's pc-testdev and no
   * debug console, the guest library's writes to port 0xE9 land in the
   * latch's byte 1 (QEMU decodes the latch more widely than its 4 ports). */
  outl(0xE0, 0x12345678);
  uint32_t d = inl(0xE0);
  uint8_t b0 = inb(0xE0), b1 = inb(0xE1), b2 = inb(0xE2), b3 = inb(0xE3);
  uint16_t w0 = inw(0xE0), w2 = inw(0xE2);
  outb(0xE2, 0xAB);
  uint32_t after_byte = inl(0xE0);
  outw(0xE0, 0xBEEF);
  uint32_t after_word = inl(0xE0);
  outb(0xE3, 0x00);
  outb(0xE1, 0x11);
  uint32_t after_bytes = inl(0xE0);

  case_begin("latch_dword");
  CHECK_EQ(d, 0x12345678);
  CHECK_EQ(b0, 0x78);
  CHECK_EQ(b1, 0x56);
  CHECK_EQ(b2, 0x34);
  CHECK_EQ(b3, 0x12);
  CHECK_EQ(w0, 0x5678);
  CHECK_EQ(w2, 0x1234);

  case_begin("latch_bytes");
  CHECK_EQ(after_byte, 0x12AB5678);
  CHECK_EQ(after_word, 0x12ABBEEF);
  CHECK_EQ(after_bytes, 0x00AB11EF);

  case_begin("iomem_sizes");
  for (int i = 0; i < 16; i++) iomem8[i] = (uint8_t)(0xA0 + i);
  CHECK_EQ(*(volatile uint32_t*)(uintptr_t)IOMEM, 0xA3A2A1A0);
  CHECK_EQ(*(volatile uint16_t*)(uintptr_t)(IOMEM + 6), 0xA7A6);
  CHECK_EQ(*(volatile uint64_t*)(uintptr_t)(IOMEM + 8), 0xAFAEADACABAAA9A8ull);
  *(volatile uint64_t*)(uintptr_t)(IOMEM + 0x100) = 0x0123456789ABCDEFull;
  CHECK_EQ(iomem8[0x100], 0xEF);
  CHECK_EQ(iomem8[0x107], 0x01);
  CHECK_EQ(*(volatile uint32_t*)(uintptr_t)(IOMEM + 0x104), 0x01234567);
  *(volatile uint16_t*)(uintptr_t)(IOMEM + 0x102) = 0x5AA5;
  CHECK_EQ(*(volatile uint64_t*)(uintptr_t)(IOMEM + 0x100), 0x012345675AA5CDEFull);

  case_begin("iomem_unaligned");
  *(volatile uint32_t*)(uintptr_t)(IOMEM + 0x201) = 0xDDCCBBAA;
  CHECK_EQ(iomem8[0x201], 0xAA);
  CHECK_EQ(iomem8[0x204], 0xDD);
  CHECK_EQ(*(volatile uint16_t*)(uintptr_t)(IOMEM + 0x203), 0xDDCC);

  case_begin("iomem_range");
  /* The whole 64 KiB is storage: a pattern across it reads back. */
  for (uint32_t off = 0; off < 0x10000; off += 0x400)
    *(volatile uint32_t*)(uintptr_t)(IOMEM + off) = 0xC0DE0000u | (off >> 10);
  int bad = 0;
  for (uint32_t off = 0; off < 0x10000; off += 0x400)
    bad += *(volatile uint32_t*)(uintptr_t)(IOMEM + off) != (0xC0DE0000u | (off >> 10));
  CHECK_MSG(bad == 0, "%d of 64 words in the MMIO window did not read back", bad);
  uint32_t last = 0x10000 - 4;
  *(volatile uint32_t*)(uintptr_t)(IOMEM + last) = 0xFEEDF00D;
  CHECK_EQ(*(volatile uint32_t*)(uintptr_t)(IOMEM + last), 0xFEEDF00D);

  case_begin("string_io");
  /* REP MOVSB from the MMIO window into RAM goes through the MMIO path too. */
  uint8_t copy[16];
  for (int i = 0; i < 16; i++) iomem8[0x300 + i] = (uint8_t)(i * 7);
  void* src = (void*)(uintptr_t)(IOMEM + 0x300);
  void* dst = copy;
  uintptr_t n = 16;
  __asm__ volatile("rep movsb" : "+S"(src), "+D"(dst), "+c"(n) : : "memory");
  int mismatch = 0;
  for (int i = 0; i < 16; i++) mismatch += copy[i] != (uint8_t)(i * 7);
  CHECK_MSG(mismatch == 0, "%d bytes differ after REP MOVSB from MMIO", mismatch);
}
