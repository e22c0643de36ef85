/* The multiboot information a loader hands over (spec 0.6.96, section 3.3),
 * checked from inside the guest as a kernel uses it: memory sizes and the
 * memory map agree, the command line given with --append (QEMU: -append),
 * and one module given with --initrd "FILE ARGS" (QEMU: -initrd), page
 * aligned as the header's flag bit 0 asks, holding the file's bytes. */
#include "guest.h"

GUEST_NAME("multiboot_info");

extern uint32_t mb_info;

struct __attribute__((packed)) mb_info_block {
  uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
  uint32_t syms[4];
  uint32_t mmap_length, mmap_addr;
  uint32_t drives_length, drives_addr, config_table, boot_loader_name;
};

struct __attribute__((packed)) mb_module {
  uint32_t mod_start, mod_end, string, reserved;
};

struct __attribute__((packed)) mb_mmap_entry {
  uint32_t size; /* of the rest of the entry */
  uint64_t addr, len;
  uint32_t type;
};

static int contains(const char* s, const char* needle) {
  for (; *s; s++) {
    const char *a = s, *b = needle;
    while (*a && *b && *a == *b) a++, b++;
    if (!*b) return 1;
  }
  return 0;
}

void guest_main(void) {
  const struct mb_info_block* mbi = (const struct mb_info_block*)(uintptr_t)mb_info;
  printf("multiboot info at %#x, flags %#x\n", mb_info, mbi->flags);

  case_begin("memory");
  CHECK_MSG(mbi->flags & 1, "flags %#x: no mem_lower/mem_upper", mbi->flags);
  CHECK_MSG(mbi->mem_lower >= 512 && mbi->mem_lower <= 640, "mem_lower %u KiB", mbi->mem_lower);
  CHECK_MSG(mbi->mem_upper >= 16 * 1024, "mem_upper %u KiB", mbi->mem_upper);

  case_begin("mmap");
  CHECK_MSG(mbi->flags & (1u << 6), "flags %#x: no memory map", mbi->flags);
  if (mbi->flags & (1u << 6)) {
    int low_ram = 0, high_ram = 0, entries = 0;
    for (uint32_t off = 0; off < mbi->mmap_length && entries < 64; entries++) {
      const struct mb_mmap_entry* e = (const void*)(uintptr_t)(mbi->mmap_addr + off);
      printf("  mmap %#lx + %#lx type %u\n", (unsigned long)e->addr, (unsigned long)e->len,
             e->type);
      if (e->type == 1 && e->addr == 0) low_ram = e->len >= (uint64_t)mbi->mem_lower * 1024;
      if (e->type == 1 && e->addr == 0x100000) high_ram = e->len == (uint64_t)mbi->mem_upper * 1024;
      CHECK_MSG(e->size >= 20, "mmap entry at +%u: size %u", off, e->size);
      if (e->size < 20) break;
      off += e->size + 4;
    }
    CHECK_MSG(low_ram, "no RAM entry at 0 covering mem_lower (%u KiB)", mbi->mem_lower);
    CHECK_MSG(high_ram, "no RAM entry at 1 MiB of exactly mem_upper (%u KiB)", mbi->mem_upper);
  }

  case_begin("cmdline");
  CHECK_MSG(mbi->flags & (1u << 2), "flags %#x: no command line", mbi->flags);
  if (mbi->flags & (1u << 2)) {
    const char* cmdline = (const char*)(uintptr_t)mbi->cmdline;
    printf("cmdline \"%s\"\n", cmdline);
    CHECK_MSG(contains(cmdline, "ttvm-mbi arg=42"), "command line lacks \"ttvm-mbi arg=42\"");
  }

  case_begin("module");
  CHECK_MSG(mbi->flags & (1u << 3), "flags %#x: no modules", mbi->flags);
  if (mbi->flags & (1u << 3)) {
    CHECK_EQ(mbi->mods_count, 1);
    const struct mb_module* m = (const struct mb_module*)(uintptr_t)mbi->mods_addr;
    if (mbi->mods_count >= 1) {
      const char* str = (const char*)(uintptr_t)m->string;
      printf("module %#x..%#x \"%s\"\n", m->mod_start, m->mod_end, str ? str : "");
      CHECK_MSG((m->mod_start & 0xFFF) == 0, "module at %#x: not page aligned", m->mod_start);
      CHECK_MSG(m->mod_end - m->mod_start == 32, "module is %u bytes, the file 32",
                m->mod_end - m->mod_start);
      CHECK_MSG(memcmp((const void*)(uintptr_t)m->mod_start, "ttvm multiboot module, 32 bytes\n",
                       32) == 0,
                "module bytes differ from the file");
      CHECK_MSG(str && contains(str, "modarg=7"), "module string lacks \"modarg=7\"");
    }
  }
}
