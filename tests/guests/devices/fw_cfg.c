/* QEMU's firmware configuration interface, as SeaBIOS and kernels read it:
 * selector port 0x510 (16-bit), data port 0x511 (bytes). The signature
 * "QEMU", the feature ID, the CPU count and RAM size, the file directory
 * (key 0x19: big-endian count, then 64-byte entries), one file read by its
 * selector, and the DMA interface (0x514, big-endian descriptor address)
 * when the ID advertises it. */
#include "dev.h"

GUEST_NAME("fw_cfg");

#define FW_CFG_SIGNATURE 0x00
#define FW_CFG_ID 0x01
#define FW_CFG_RAM_SIZE 0x03
#define FW_CFG_NB_CPUS 0x05
#define FW_CFG_FILE_DIR 0x19

static void fw_select(uint16_t key) {
  outw(0x510, key);
}
static void fw_read(void* buf, uint32_t n) {
  uint8_t* p = buf;
  for (uint32_t i = 0; i < n; i++) p[i] = inb(0x511);
}
static uint32_t be32(const uint8_t* p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint16_t be16(const uint8_t* p) {
  return (uint16_t)(p[0] << 8 | p[1]);
}
static uint64_t bswap64(uint64_t v) {
  return __builtin_bswap64(v);
}
static uint32_t bswap32(uint32_t v) {
  return __builtin_bswap32(v);
}

struct fw_cfg_file {
  uint32_t size;   /* big-endian */
  uint16_t select; /* big-endian */
  uint16_t reserved;
  char name[56];
};

struct fw_cfg_dma {
  uint32_t control; /* big-endian: bit 0 error, 1 read, 3 select (key in 31:16) */
  uint32_t length;
  uint64_t address;
} __attribute__((aligned(16)));

static uint8_t file_buf[65536];
static uint8_t file_buf2[65536];
static struct fw_cfg_file dir[256];
extern uint32_t mb_info;

void guest_main(void) {
  case_begin("signature");
  char sig[5] = {0};
  fw_select(FW_CFG_SIGNATURE);
  fw_read(sig, 4);
  CHECK_MSG(memcmp(sig, "QEMU", 4) == 0, "signature %02x %02x %02x %02x, expected \"QEMU\"",
            (uint8_t)sig[0], (uint8_t)sig[1], (uint8_t)sig[2], (uint8_t)sig[3]);

  case_begin("id");
  uint32_t id;
  fw_select(FW_CFG_ID);
  fw_read(&id, 4);
  printf("fw_cfg ID %#x\n", id);
  CHECK_MSG(id & 1, "ID %#x: traditional interface bit clear", id);

  case_begin("cpus_and_ram");
  uint16_t cpus;
  fw_select(FW_CFG_NB_CPUS);
  fw_read(&cpus, 2);
  CHECK_EQ(cpus, 1);
  uint64_t ram;
  fw_select(FW_CFG_RAM_SIZE);
  fw_read(&ram, 8);
  const uint32_t* mb = (const uint32_t*)(uintptr_t)mb_info;
  printf("fw_cfg RAM size %#lx, multiboot mem_upper %u KiB\n", (unsigned long)ram, mb[2]);
  CHECK_MSG(ram >= 16u << 20, "RAM size %#lx below 16 MiB", (unsigned long)ram);
  if (mb[0] & 1) {
    uint64_t upper = ((uint64_t)mb[2] + 1024) * 1024;
    CHECK_MSG(ram >= upper && ram - upper <= (16u << 20),
              "RAM size %#lx does not match multiboot mem_upper (%#lx bytes up to its end)",
              (unsigned long)ram, (unsigned long)upper);
  }

  case_begin("more_keys");
  /* FW_CFG_MAX_CPUS (0x0F): at least the CPU count; a key nobody defines
   * reads as zeros (QEMU's fw_cfg_read with an invalid selector). */
  uint16_t max_cpus;
  fw_select(0x0F);
  fw_read(&max_cpus, 2);
  CHECK_MSG(max_cpus >= cpus && max_cpus <= 288, "max CPUs %u with %u CPUs", max_cpus, cpus);
  uint8_t unknown[8];
  fw_select(0x3FFF);
  fw_read(unknown, 8);
  int zero = 1;
  for (int i = 0; i < 8; i++) zero &= unknown[i] == 0;
  CHECK_MSG(zero, "undefined key 0x3FFF reads %02x %02x %02x %02x..., expected zeros", unknown[0],
            unknown[1], unknown[2], unknown[3]);
  /* The signature key re-selected reads from its start again. */
  fw_select(FW_CFG_SIGNATURE);
  char again[4];
  fw_read(again, 4);
  CHECK_MSG(memcmp(again, "QEMU", 4) == 0, "signature after re-selecting differs");

  case_begin("file_dir");
  uint8_t count_be[4];
  fw_select(FW_CFG_FILE_DIR);
  fw_read(count_be, 4);
  uint32_t count = be32(count_be);
  printf("fw_cfg: %u files\n", count);
  CHECK_MSG(count >= 1 && count <= 256, "file count %u", count);
  if (count > 256) count = 256;
  fw_read(dir, count * sizeof dir[0]);
  int e820 = -1;
  for (uint32_t i = 0; i < count; i++) {
    int terminated = 0;
    for (int k = 0; k < 56; k++) terminated |= dir[i].name[k] == '\0';
    CHECK_MSG(terminated, "file %u: name not NUL-terminated", i);
    dir[i].name[55] = '\0';
    uint16_t sel = be16((const uint8_t*)&dir[i].select);
    printf("  %#06x %8u %s\n", sel, be32((const uint8_t*)&dir[i].size), dir[i].name);
    CHECK_MSG(sel >= 0x20, "file %s: selector %#x below the file range", dir[i].name, sel);
    if (memcmp(dir[i].name, "etc/e820", 9) == 0) e820 = (int)i;
  }

  case_begin("file_read");
  int pick = e820 >= 0 ? e820 : 0;
  uint16_t sel = be16((const uint8_t*)&dir[pick].select);
  uint32_t size = be32((const uint8_t*)&dir[pick].size);
  if (size > sizeof file_buf) size = sizeof file_buf;
  fw_select(sel);
  fw_read(file_buf, size);
  uint8_t past_end;
  fw_read(&past_end, 1);
  CHECK_MSG(past_end == 0, "read past the end of %s gives %#x, expected 0", dir[pick].name,
            past_end);
  fw_select(sel); /* selecting again rewinds to offset 0 */
  fw_read(file_buf2, size);
  CHECK_MSG(memcmp(file_buf, file_buf2, size) == 0, "two reads of %s differ", dir[pick].name);
  if (e820 >= 0) {
    /* struct e820_entry { u64 address, length; u32 type; } little-endian */
    int ram_entries = 0, covers_1m = 0;
    for (uint32_t off = 0; off + 20 <= size; off += 20) {
      uint64_t addr, len;
      uint32_t type;
      memcpy(&addr, file_buf + off, 8);
      memcpy(&len, file_buf + off + 8, 8);
      memcpy(&type, file_buf + off + 16, 4);
      printf("  e820 %#lx + %#lx type %u\n", (unsigned long)addr, (unsigned long)len, type);
      if (type == 1) {
        ram_entries++;
        covers_1m |= addr <= 0x100000 && addr + len > 0x200000;
      }
    }
    CHECK_MSG(size % 20 == 0 && size > 0, "etc/e820 size %u is not a multiple of 20", size);
    CHECK_MSG(ram_entries >= 1 && covers_1m, "etc/e820 has no RAM entry covering 1-2 MiB");
  } else {
    printf("note: no etc/e820; read %s (%u bytes)\n", dir[pick].name, size);
  }

  case_begin("dma");
  if (!(id & 2)) {
    printf("note: ID %#x has no DMA bit: case skipped\n", id);
  } else {
    char dma_sig[9] = {0};
    for (int i = 0; i < 8; i++) dma_sig[i] = (char)inb((uint16_t)(0x514 + i));
    CHECK_MSG(memcmp(dma_sig, "QEMU CFG", 8) == 0, "DMA ports read \"%s\", expected \"QEMU CFG\"",
              dma_sig);
    static struct fw_cfg_dma desc;
    desc.control = bswap32(((uint32_t)sel << 16) | 0x08 | 0x02); /* select + read */
    desc.length = bswap32(size);
    desc.address = bswap64((uint64_t)(uintptr_t)file_buf2);
    memset(file_buf2, 0xCC, size);
    uint64_t a = (uint64_t)(uintptr_t)&desc;
    outl(0x514, bswap32((uint32_t)(a >> 32)));
    outl(0x518, bswap32((uint32_t)a)); /* the low half starts the transfer */
    uint32_t control = bswap32(desc.control);
    CHECK_MSG(control == 0, "DMA control %#x after the transfer, expected 0 (done, no error)",
              control);
    CHECK_MSG(memcmp(file_buf, file_buf2, size) == 0, "DMA read of %s differs from port reads",
              dir[pick].name);
  }
}
