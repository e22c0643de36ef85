/* 32-bit paging and PAE paging (32-bit guest).
 * SDM vol. 3: 4.3 "32-Bit Paging" (4 KiB pages, 4 MiB pages with CR4.PSE;
 * bit 21 of a 4 MiB PDE is reserved), 4.4 "PAE Paging" (PDPTEs loaded by MOV
 * CR3 — a reserved bit in a present PDPTE makes MOV CR3 raise #GP(0), 4.4.1;
 * 2 MiB pages; XD with EFER.NXE), 4.6 access rights, 4.7 #PF error codes,
 * 4.8 A/D bits, 4.10.4 INVLPG. Same TLB caveat as paging64.c. */
#include "guest.h"

GUEST_NAME("paging32");

#define P 0x1u
#define RW 0x2u
#define US 0x4u
#define A 0x20u
#define D 0x40u
#define PS 0x80u
#define TV 0x40000000u

static uint32_t pd32[1024] __attribute__((aligned(4096)));
static uint32_t pt32[1024] __attribute__((aligned(4096)));
static uint64_t pdpt[4] __attribute__((aligned(32)));
static uint64_t pae_pd[2][512] __attribute__((aligned(4096)));
static uint64_t pae_pt[512] __attribute__((aligned(4096)));
static uint8_t phys[4][4096] __attribute__((aligned(4096)));

uint32_t pf_read(volatile void* p);
void pf_write(volatile void* p, uint32_t v);
void pf_exec(volatile void* p);
__asm__(".text\n"
        "pf_read: mov 4(%esp), %edx\n"
        "  movl $9f, trap_resume\n"
        "  mov (%edx), %eax\n"
        "  movl $0, trap_resume\n"
        "  ret\n"
        "9: mov $0xBAD, %eax\n"
        "  ret\n"
        "pf_write: mov 4(%esp), %edx\n"
        "  mov 8(%esp), %ecx\n"
        "  movl $9f, trap_resume\n"
        "  mov %ecx, (%edx)\n"
        "  movl $0, trap_resume\n"
        "9: ret\n"
        "pf_exec: mov 4(%esp), %edx\n"
        "  movl $9f, trap_resume\n"
        "  call *%edx\n"
        "  movl $0, trap_resume\n"
        "  ret\n"
        "9: add $4, %esp\n"
        "  ret\n");
static ureg u_read(ureg p) { return pf_read((volatile void*)p); }
static ureg u_write(ureg p) {
  pf_write((volatile void*)p, 0x55);
  return 0;
}
#define VA(i) ((volatile uint32_t*)(TV + (i) * 4096u))

static void expect_pf(const char* what, uint32_t addr, uint32_t err) {
  CHECK_MSG(trap_count == 1, "%s: %d trap(s), expected one #PF", what, trap_count);
  if (trap_count < 1) return;
  CHECK_MSG(trap_log[0].vector == 14, "%s: vector %u, expected 14", what, trap_log[0].vector);
  CHECK_MSG(trap_log[0].error == err, "%s: error code %#x, expected %#x", what, trap_log[0].error,
            err);
  CHECK_MSG(trap_log[0].cr2 == addr, "%s: CR2 %#lx, expected %#x", what,
            (unsigned long)trap_log[0].cr2, addr);
}
#define NO_FAULT(what) \
  CHECK_MSG(trap_count == 0, "%s: unexpected vector %u error %#x", what, trap_log[0].vector, \
            trap_log[0].error)

static void paging_off(void) {
  write_cr0(read_cr0() & ~0x80000000u);
  write_cr4(read_cr4() & ~(0x20u | 0x10u));
}

static void run_32bit(void) {
  for (int i = 0; i < 256; i++) pd32[i] = ((uint32_t)i << 22) | P | RW | US | PS; /* 0..1 GiB */
  pd32[256] = (uint32_t)(ureg)pt32 | P | RW | US;
  for (int i = 0; i < 4; i++) {
    memset(phys[i], 0, 4096);
    *(uint32_t*)phys[i] = 0x11111111u * (uint32_t)(i + 1);
    phys[i][4095] = 0xC3;
  }
  write_cr4(read_cr4() | 0x10); /* PSE */
  write_cr3((ureg)pd32);
  write_cr0(read_cr0() | 0x80010000u); /* PG | WP */

  case_begin("pg32_4k");
  pt32[0] = (uint32_t)(ureg)phys[0] | P | RW;
  pt32[1] = (uint32_t)(ureg)phys[1] | P | RW;
  trap_log_clear();
  CHECK_EQ(pf_read(VA(0)), 0x11111111u);
  CHECK_EQ(pf_read(VA(1)), 0x22222222u);
  NO_FAULT("reads");

  case_begin("pg32_accessed_dirty");
  pt32[2] = (uint32_t)(ureg)phys[2] | P | RW;
  pd32[256] &= ~A;
  trap_log_clear();
  (void)pf_read(VA(2));
  CHECK_EQ(pt32[2] & (A | D), A);
  CHECK(pd32[256] & A);
  pf_write(VA(2), 3);
  CHECK_EQ(pt32[2] & (A | D), A | D);
  CHECK_EQ(pd32[256] & D, 0); /* D exists only in the entry that maps the page */

  case_begin("pg32_pf_codes");
  pt32[3] = 0;
  trap_log_clear();
  (void)pf_read((volatile char*)VA(3) + 5);
  expect_pf("not present read", TV + 3 * 4096 + 5, 0);
  trap_log_clear();
  pf_write(VA(3), 1);
  expect_pf("not present write", TV + 3 * 4096, 2);
  pt32[1] = (uint32_t)(ureg)phys[1] | P; /* read-only, supervisor */
  invlpg(VA(1));
  trap_log_clear();
  pf_write(VA(1), 1);
  expect_pf("write to read-only, WP=1", TV + 4096, 3);
  trap_log_clear();
  user_call(u_read, (ureg)user_stack_top, TV + 4096, 0x2);
  expect_pf("user read of supervisor page", TV + 4096, 5);
  pt32[1] = (uint32_t)(ureg)phys[1] | P | US;
  invlpg(VA(1));
  trap_log_clear();
  user_call(u_write, (ureg)user_stack_top, TV + 4096, 0x2);
  expect_pf("user write to read-only", TV + 4096, 7);
  write_cr0(read_cr0() & ~0x10000u);
  trap_log_clear();
  pf_write(VA(1), 0x77); /* supervisor, WP = 0: allowed */
  NO_FAULT("WP=0 write");
  CHECK_EQ(*(volatile uint32_t*)phys[1], 0x77);
  write_cr0(read_cr0() | 0x10000u);

  case_begin("pg32_4m");
  pd32[257] = 0x800000u | P | RW | PS;
  *(volatile uint32_t*)(0x800000u + 0x3FFFFC) = 0xCAFEF00D;
  trap_log_clear();
  CHECK_EQ(pf_read((volatile void*)(TV + 0x400000 + 0x3FFFFC)), 0xCAFEF00D);
  pf_write((volatile void*)(TV + 0x400000), 1);
  CHECK_EQ(pd32[257] & (A | D), A | D);
  NO_FAULT("4 MiB page");

  case_begin("pg32_tlb");
  pt32[0] = (uint32_t)(ureg)phys[0] | P | RW;
  invlpg(VA(0));
  CHECK_EQ(pf_read(VA(0)), 0x11111111u);
  pt32[0] = (uint32_t)(ureg)phys[2] | P | RW;
  CHECK_EQ(pf_read(VA(0)), 0x11111111u); /* stale */
  invlpg(VA(0));
  CHECK_EQ(pf_read(VA(0)), 3u); /* phys[2] was written with 3 above */

  case_begin("pg32_reserved");
  /* Bit 21 of a 4 MiB PDE is reserved (4.3, table 4-4): P | RSVD. */
  pd32[258] = 0x800000u | P | RW | PS | (1u << 21);
  trap_log_clear();
  (void)pf_read((volatile void*)(TV + 0x800000));
  expect_pf("4 MiB PDE bit 21", TV + 0x800000, 9);

  paging_off();
}

static void run_pae(void) {
  uint32_t r[4];
  cpuid(0x80000001u, 0, r);
  int has_nx = (r[3] >> 20) & 1;
  for (int i = 0; i < 512; i++) pae_pd[0][i] = ((uint64_t)i << 21) | P | RW | US | PS;
  pdpt[0] = (uint32_t)(ureg)pae_pd[0] | P;
  pdpt[1] = (uint32_t)(ureg)pae_pd[1] | P;
  pdpt[2] = pdpt[3] = 0;
  pae_pd[1][0] = (uint32_t)(ureg)pae_pt | P | RW | US;
  pae_pd[1][1] = 0x800000u | P | RW | PS;
  pae_pt[0] = (uint32_t)(ureg)phys[0] | P | RW;
  pae_pt[1] = (uint32_t)(ureg)phys[1] | P | RW;
  write_cr4(read_cr4() | 0x20); /* PAE */
  write_cr3((ureg)pdpt);
  write_cr0(read_cr0() | 0x80010000u);

  case_begin("pae_4k_2m");
  trap_log_clear();
  CHECK_EQ(pf_read(VA(0)), 0x11111111u);
  *(volatile uint32_t*)(0x800000u + 0x1FFFF0) = 0x600DF00D;
  CHECK_EQ(pf_read((volatile void*)(TV + 0x200000 + 0x1FFFF0)), 0x600DF00D);
  pf_write(VA(1), 9);
  CHECK_EQ(pae_pt[1] & (A | D), A | D);
  CHECK_EQ(pae_pd[1][1] & A, A);
  NO_FAULT("accesses");
  pae_pt[2] = 0;
  trap_log_clear();
  pf_write(VA(2), 1);
  expect_pf("not present write", TV + 2 * 4096, 2);

  if (has_nx) {
    case_begin("pae_nx");
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | (1u << 11));
    pae_pt[1] = (uint32_t)(ureg)phys[1] | P | RW | (1ull << 63);
    invlpg(VA(1));
    trap_log_clear();
    pf_exec((volatile char*)VA(1) + 4095);
    expect_pf("execute XD page", TV + 4096 + 4095, 0x11);
    pae_pt[1] = (uint32_t)(ureg)phys[1] | P | RW;
    invlpg(VA(1));
    trap_log_clear();
    pf_exec((volatile char*)VA(1) + 4095);
    NO_FAULT("execute");
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) & ~(1ull << 11));
  }

  case_begin("pae_reserved");
  cpuid(0x80000008u, 0, r);
  int maxphy = r[0] & 0xFF;
  pae_pt[3] = (uint32_t)(ureg)phys[3] | P | RW | (1ull << maxphy);
  trap_log_clear();
  (void)pf_read(VA(3));
  expect_pf("PTE bit MAXPHYADDR", TV + 3 * 4096, 9);
  pae_pt[3] = 0;
  invlpg(VA(3));

  case_begin("pae_pdpte_reserved");
  /* Bits 1-2 (and 5-8) of a PAE PDPTE are reserved. Intel: MOV CR3 loads the
   * four PDPTEs and faults #GP(0) on a reserved bit (SDM vol. 3 4.4.1). AMD
   * (APM vol. 2 5.3.2) keeps no PDPTE registers: the check may happen at the
   * walk instead, as a #PF with P | RSVD; both are accepted on AMD models. */
  cpuid(0, 0, r);
  int intel = r[1] == 0x756E6547u; /* "Genu" */
  pdpt[2] = (uint32_t)(ureg)pae_pd[1] | P | RW;
  trap_log_clear();
  __asm__ volatile("movl $1f, trap_resume\n mov %0, %%cr3\n movl $0, trap_resume\n1:" ::"r"(
                       (ureg)pdpt)
                   : "memory");
  if (intel || trap_count) {
    CHECK_EQ(trap_count, 1);
    CHECK_EQ(trap_log[0].vector, 13);
    CHECK_EQ(trap_log[0].error, 0);
  } else {
    trap_log_clear();
    (void)pf_read((volatile void*)0x80000000u);
    expect_pf("access through a PDPTE with a reserved bit", 0x80000000u, 9);
  }
  pdpt[2] = 0;
  write_cr3((ureg)pdpt);

  paging_off();
}

void guest_main(void) {
  run_32bit();
  run_pae();
}
