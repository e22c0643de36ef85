/* ACPI tables as an OS finds them: the RSDP on a 16-byte boundary in the BIOS
 * area 0xE0000-0xFFFFF, its checksums, the RSDT (and XSDT for revision 2+),
 * each table's checksum, and the MADT ("APIC"): the local APIC address, one
 * enabled processor-local APIC whose ID is the running CPU's, and one I/O APIC
 * at 0xFEC00000 with GSI base 0. */
#include "dev.h"

/* Counts of the ACPI PM timer (3.579545 MHz) during PIT channel 2's mode-0
 * countdown of `pit_count` ticks (gated through port 0x61). */
static uint32_t pm_ticks_during_pit(uint16_t port, uint32_t mask, uint16_t pit_count) {
  uint8_t p61 = inb(0x61);
  outb(0x61, p61 & ~0x03);
  outb(0x43, 0xB0);
  outb(0x42, (uint8_t)pit_count);
  outb(0x42, (uint8_t)(pit_count >> 8));
  uint32_t t0 = inl(port) & mask;
  outb(0x61, (uint8_t)((p61 & ~0x02) | 0x01));
  for (uint64_t i = 0; i < 200000000ull && !(inb(0x61) & 0x20); i++) {
  }
  uint32_t t1 = inl(port) & mask;
  outb(0x61, p61 & ~0x03);
  return (t1 - t0) & mask;
}

GUEST_NAME("acpi");

struct __attribute__((packed)) rsdp {
  char signature[8];
  uint8_t checksum;
  char oem_id[6];
  uint8_t revision;
  uint32_t rsdt_address;
  uint32_t length; /* revision >= 2 */
  uint64_t xsdt_address;
  uint8_t extended_checksum;
  uint8_t reserved[3];
};

struct __attribute__((packed)) sdt_header {
  char signature[4];
  uint32_t length;
  uint8_t revision;
  uint8_t checksum;
  char oem_id[6];
  char oem_table_id[8];
  uint32_t oem_revision;
  uint32_t creator_id;
  uint32_t creator_revision;
};

static uint8_t sum(const void* p, uint32_t n) {
  const uint8_t* b = p;
  uint8_t s = 0;
  for (uint32_t i = 0; i < n; i++) s = (uint8_t)(s + b[i]);
  return s;
}

static const struct sdt_header* check_table(uint64_t addr, const char* want) {
  if (addr == 0 || addr >= (1ull << 32)) {
    CHECK_MSG(0, "%s at %#lx: outside the identity-mapped 4 GiB", want, (unsigned long)addr);
    return NULL;
  }
  const struct sdt_header* h = (const struct sdt_header*)(uintptr_t)addr;
  if (want)
    CHECK_MSG(memcmp(h->signature, want, 4) == 0, "table at %#lx is not %s", (unsigned long)addr,
              want);
  CHECK_MSG(h->length >= sizeof *h && h->length < (1u << 20), "table at %#lx: length %u",
            (unsigned long)addr, h->length);
  if (h->length < sizeof *h || h->length >= (1u << 20)) return NULL;
  CHECK_MSG(sum(h, h->length) == 0, "table at %#lx: checksum %#x", (unsigned long)addr,
            sum(h, h->length));
  char sig[5] = {0}, oem[7] = {0};
  memcpy(sig, h->signature, 4);
  memcpy(oem, h->oem_id, 6);
  printf("  %s at %#lx, %u bytes, OEM \"%s\"\n", sig, (unsigned long)addr, h->length, oem);
  return h;
}

void guest_main(void) {
  case_begin("rsdp");
  const struct rsdp* r = NULL;
  for (uintptr_t a = 0xE0000; a < 0x100000; a += 16) {
    if (memcmp((const void*)a, "RSD PTR ", 8) == 0 && sum((const void*)a, 20) == 0) {
      r = (const struct rsdp*)a;
      break;
    }
  }
  CHECK_MSG(r != NULL, "no RSDP with a valid checksum in 0xE0000-0xFFFFF");
  if (!r) return;
  printf("RSDP at %p, revision %u, RSDT %#x\n", (const void*)r, r->revision, r->rsdt_address);
  if (r->revision >= 2) {
    CHECK_MSG(r->length >= 36, "RSDP length %u", r->length);
    CHECK_MSG(sum(r, r->length) == 0, "RSDP extended checksum fails");
  }

  case_begin("rsdt");
  const struct sdt_header* rsdt = check_table(r->rsdt_address, "RSDT");
  const struct sdt_header* madt = NULL;
  const struct sdt_header* facp = NULL;
  if (rsdt) {
    uint32_t n = (rsdt->length - sizeof *rsdt) / 4;
    const uint32_t* entry = (const uint32_t*)(rsdt + 1);
    for (uint32_t i = 0; i < n; i++) {
      const struct sdt_header* t = check_table(entry[i], NULL);
      if (t && memcmp(t->signature, "APIC", 4) == 0) madt = t;
      if (t && memcmp(t->signature, "FACP", 4) == 0) facp = t;
    }
  }
  CHECK_MSG(madt != NULL, "no MADT (\"APIC\") in the RSDT");
  CHECK_MSG(facp != NULL, "no FADT (\"FACP\") in the RSDT");

  case_begin("xsdt");
  if (r->revision >= 2 && r->xsdt_address) {
    const struct sdt_header* xsdt = check_table(r->xsdt_address, "XSDT");
    const struct sdt_header* xmadt = NULL;
    if (xsdt) {
      uint32_t n = (xsdt->length - sizeof *xsdt) / 8;
      const uint8_t* entry = (const uint8_t*)(xsdt + 1);
      for (uint32_t i = 0; i < n; i++) {
        uint64_t a;
        memcpy(&a, entry + 8 * i, 8);
        const struct sdt_header* t = check_table(a, NULL);
        if (t && memcmp(t->signature, "APIC", 4) == 0) xmadt = t;
      }
    }
    CHECK_MSG(xmadt != NULL, "no MADT in the XSDT");
    if (madt && xmadt) CHECK_MSG(madt == xmadt, "RSDT and XSDT name different MADTs");
  } else {
    printf("note: RSDP revision %u: no XSDT\n", r->revision);
  }

  case_begin("pm_timer");
  /* FADT: PM_TMR_BLK (offset 76), PM_TMR_LEN (91), flags (112, bit 8:
   * TMR_VAL_EXT = 32-bit counter). Linux calibrates against this timer. */
  if (facp && facp->length >= 116) {
    const uint8_t* f = (const uint8_t*)facp;
    uint32_t blk, flags;
    memcpy(&blk, f + 76, 4);
    memcpy(&flags, f + 112, 4);
    uint8_t len = f[91];
    printf("FADT: PM timer block %#x, length %u, %s-bit\n", blk, len,
           (flags & (1u << 8)) ? "32" : "24");
    if (blk == 0) {
      printf("note: FADT has no PM timer: case skipped\n");
    } else {
      CHECK_MSG(len == 4 && blk < 0x10000, "PM timer block %#x length %u", blk, len);
      uint32_t mask = (flags & (1u << 8)) ? 0xFFFFFFFFu : 0xFFFFFFu;
      uint32_t raw = inl((uint16_t)blk);
      CHECK_MSG((raw & ~mask) == 0, "24-bit PM timer reads %#x: bits above 23 set", raw);
      /* 10 ms of PIT = 35795 PM ticks; a late poll only adds ticks. */
      uint32_t ticks = pm_ticks_during_pit((uint16_t)blk, mask, 11932);
      uint32_t again = pm_ticks_during_pit((uint16_t)blk, mask, 11932);
      if (again < ticks) ticks = again; /* an emulator's first window runs long */
      printf("PM timer: %u ticks in 10 ms of PIT time (expected 35795)\n", ticks);
      CHECK_MSG(ticks >= 35795 * 9 / 10, "PM timer counted %u in 10 ms, expected 35795", ticks);
    }
  }

  case_begin("madt");
  if (!madt) return;
  const uint8_t* m = (const uint8_t*)madt;
  uint32_t lapic_addr;
  memcpy(&lapic_addr, m + 36, 4);
  CHECK_MSG(lapic_addr == LAPIC_BASE, "MADT local APIC address %#x", lapic_addr);
  uint8_t my_id = (uint8_t)(lapic_read(LAPIC_ID) >> 24);
  int lapics = 0, enabled_self = 0, ioapics = 0, ioapic_ok = 0, override0 = 0;
  for (uint32_t off = 44; off + 2 <= madt->length;) {
    uint8_t type = m[off], len = m[off + 1];
    CHECK_MSG(len >= 2 && off + len <= madt->length, "MADT entry at offset %u: length %u", off,
              len);
    if (len < 2 || off + len > madt->length) break;
    if (type == 0 && len == 8) {
      uint32_t flags;
      memcpy(&flags, m + off + 4, 4);
      printf("  LAPIC processor %u id %u flags %#x\n", m[off + 2], m[off + 3], flags);
      lapics++;
      if (m[off + 3] == my_id && (flags & 1)) enabled_self = 1;
    } else if (type == 1 && len == 12) {
      uint32_t addr, gsi;
      memcpy(&addr, m + off + 4, 4);
      memcpy(&gsi, m + off + 8, 4);
      printf("  IOAPIC id %u at %#x, GSI base %u\n", m[off + 2], addr, gsi);
      ioapics++;
      ioapic_ok |= addr == IOAPIC_BASE && gsi == 0;
    } else if (type == 2 && len == 10) {
      uint32_t gsi;
      memcpy(&gsi, m + off + 4, 4);
      printf("  override: ISA IRQ %u -> GSI %u\n", m[off + 3], gsi);
      if (m[off + 3] == 0) override0 = gsi == 2;
    }
    off += len;
  }
  CHECK_MSG(lapics == 1, "%d processor-local APIC entries, expected 1", lapics);
  CHECK_MSG(enabled_self, "no enabled LAPIC entry with the running CPU's APIC ID %u", my_id);
  CHECK_MSG(ioapics == 1 && ioapic_ok, "%d IOAPIC entries; expected one at 0xFEC00000, GSI 0",
            ioapics);
  CHECK_MSG(override0, "no interrupt source override ISA IRQ 0 -> GSI 2");
}
