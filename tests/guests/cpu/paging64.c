/* 4-level paging (IA-32e): 4 KiB / 2 MiB / 1 GiB pages, #PF error codes and
 * CR2, accessed/dirty bits, CR0.WP, NX, reserved bits, INVLPG / CR3 / CR4.PGE
 * TLB semantics.
 * SDM vol. 3 ch. 4 "Paging": 4.5 "4-Level Paging", 4.6 "Access Rights"
 * (U/S, R/W, WP, NX), 4.7 "Page-Fault Exceptions" (error code: P=bit0,
 * W/R=bit1, U/S=bit2, RSVD=bit3, I/D=bit4), 4.8 "Accessed and Dirty Flags",
 * 4.10.4 "Invalidation of TLBs and Paging-Structure Caches" (INVLPG; MOV CR3
 * flushes non-global entries; toggling CR4.PGE flushes all).
 * TLB caveat (4.10.4.3): after changing a PTE without invalidation the CPU
 * *may* use either translation; hardware and ttvm's exact software TLB keep
 * the old one for a page just accessed, which is what tlb_* check. */
#include "guest.h"

GUEST_NAME("paging64");

#define P 0x1ull
#define RW 0x2ull
#define US 0x4ull
#define A 0x20ull
#define D 0x40ull
#define PS 0x80ull
#define G 0x100ull
#define NX (1ull << 63)

#define TV 0x8000000000ull /* PML4[1]: the test area */

static uint64_t pml4[512] __attribute__((aligned(4096)));
static uint64_t pdpt0[512] __attribute__((aligned(4096)));
static uint64_t tpdpt[512] __attribute__((aligned(4096)));
static uint64_t tpd[512] __attribute__((aligned(4096)));
static uint64_t tpt[512] __attribute__((aligned(4096)));
static uint8_t phys[8][4096] __attribute__((aligned(4096)));
static uint64_t kpd[512] __attribute__((aligned(4096))); /* 0..1 GiB, supervisor-only */
extern uint64_t boot_pd[];

#define VA(i) ((volatile uint64_t*)(TV + (uint64_t)(i) * 4096))

/* Probes: return the value read, or leave trap_count > 0 on a fault. */
uint64_t pf_read(volatile void* p);
void pf_write(volatile void* p, uint64_t v);
void pf_exec(volatile void* p);
__asm__(".text\n"
        "pf_read: lea 9f(%rip), %rax\n"
        "  mov %rax, trap_resume(%rip)\n"
        "  mov (%rdi), %rax\n"
        "  movq $0, trap_resume(%rip)\n"
        "  ret\n"
        "9: mov $0xBAD, %eax\n"
        "  ret\n"
        "pf_write: lea 9f(%rip), %rax\n"
        "  mov %rax, trap_resume(%rip)\n"
        "  mov %rsi, (%rdi)\n"
        "  movq $0, trap_resume(%rip)\n"
        "9: ret\n"
        "pf_exec: lea 9f(%rip), %rax\n"
        "  mov %rax, trap_resume(%rip)\n"
        "  call *%rdi\n"
        "  movq $0, trap_resume(%rip)\n"
        "  ret\n"
        "9: add $8, %rsp\n" /* the CALL completed; its target fetch faulted */
        "  ret\n");
static ureg u_read(ureg p) { return pf_read((volatile void*)p); }
static ureg u_write(ureg p) {
  pf_write((volatile void*)p, 0x55);
  return 0;
}

static void expect_pf(const char* what, uint64_t addr, uint32_t err) {
  CHECK_MSG(trap_count == 1, "%s: %d trap(s), expected one #PF", what, trap_count);
  if (trap_count < 1) return;
  CHECK_MSG(trap_log[0].vector == 14, "%s: vector %u, expected 14", what, trap_log[0].vector);
  CHECK_MSG(trap_log[0].error == err, "%s: error code %#x, expected %#x", what, trap_log[0].error,
            err);
  CHECK_MSG(trap_log[0].cr2 == addr, "%s: CR2 %#lx, expected %#lx", what,
            (unsigned long)trap_log[0].cr2, (unsigned long)addr);
}
#define NO_FAULT(what) CHECK_MSG(trap_count == 0, "%s: unexpected trap (vector %u error %#x)", what, \
                                 trap_log[0].vector, trap_log[0].error)

static uint64_t pa(const void* p) { return (uint64_t)(uintptr_t)p; }
static void set_pte(int i, uint64_t v) { tpt[i] = v; }

static void setup(void) {
  for (int i = 0; i < 4; i++) pdpt0[i] = (pa(boot_pd) + (uint64_t)i * 4096) | P | RW | US;
  pml4[0] = pa(pdpt0) | P | RW | US;
  pml4[1] = pa(tpdpt) | P | RW | US;
  tpdpt[0] = pa(tpd) | P | RW | US;
  tpd[0] = pa(tpt) | P | RW | US;
  for (int i = 0; i < 8; i++) {
    memset(phys[i], 0, 4096);
    *(uint64_t*)phys[i] = 0x1111111111111111ull * (uint64_t)(i + 1);
    phys[i][4095] = 0xC3; /* RET, for execute probes at the page's last byte */
  }
  write_cr3(pa(pml4));
}

void guest_main(void) {
  uint32_t r[4];
  cpuid(0x80000001u, 0, r);
  int has_1g = (r[3] >> 26) & 1, has_nx = (r[3] >> 20) & 1;
  cpuid(0x80000008u, 0, r);
  int maxphy = r[0] & 0xFF;
  printf("MAXPHYADDR %d, 1 GiB pages %d, NX %d\n", maxphy, has_1g, has_nx);
  setup();

  case_begin("map_4k");
  set_pte(0, pa(phys[0]) | P | RW);
  set_pte(1, pa(phys[1]) | P | RW);
  trap_log_clear();
  CHECK_EQ(pf_read(VA(0)), 0x1111111111111111ull);
  CHECK_EQ(pf_read(VA(1)), 0x2222222222222222ull);
  NO_FAULT("read");

  case_begin("accessed_dirty");
  /* 4.8: the walk sets A in every entry it uses, and D in the final entry on a write. */
  tpd[0] &= ~A;
  set_pte(2, pa(phys[2]) | P | RW);
  invlpg(VA(2));
  trap_log_clear();
  (void)pf_read(VA(2));
  CHECK_EQ(tpt[2] & (A | D), A);
  CHECK(tpd[0] & A);
  pf_write(VA(2), 5);
  CHECK_EQ(tpt[2] & (A | D), A | D);
  NO_FAULT("accesses");

  case_begin("pf_not_present");
  set_pte(3, 0);
  invlpg(VA(3));
  trap_log_clear();
  (void)pf_read((volatile char*)VA(3) + 0x18);
  expect_pf("read", TV + 3 * 4096 + 0x18, 0x0);
  trap_log_clear();
  pf_write(VA(3), 1);
  expect_pf("write", TV + 3 * 4096, 0x2);
  /* Not-present upper level: PD entry 1 (virtual TV + 2 MiB). */
  tpd[1] = 0;
  trap_log_clear();
  (void)pf_read((volatile char*)(TV + 0x200000 + 0x40));
  expect_pf("PDE not present", TV + 0x200000 + 0x40, 0x0);

  case_begin("pf_rf");
  /* A #PF is a fault: the EFLAGS image has RF = 1 (SDM vol. 3 18.3.1.1). */
  trap_log_clear();
  (void)pf_read(VA(3));
  CHECK_EQ(trap_count, 1);
  CHECK_MSG(trap_log[0].rflags & FL_RF, "#PF image rflags %#lx: RF clear",
            (unsigned long)trap_log[0].rflags);

  case_begin("pf_write_protect");
  set_pte(4, pa(phys[4]) | P); /* read-only */
  invlpg(VA(4));
  write_cr0(read_cr0() | (1ul << 16)); /* WP */
  trap_log_clear();
  pf_write(VA(4), 9);
  expect_pf("supervisor write, WP=1", TV + 4 * 4096, 0x3);
  write_cr0(read_cr0() & ~(1ul << 16));
  trap_log_clear();
  pf_write(VA(4), 9);
  NO_FAULT("supervisor write, WP=0");
  CHECK_EQ(*(volatile uint64_t*)phys[4], 9);
  write_cr0(read_cr0() | (1ul << 16));

  case_begin("pf_user");
  /* U/S must be 1 at every level for CPL-3 access (4.6.1). */
  set_pte(5, pa(phys[5]) | P | RW);      /* supervisor page */
  set_pte(6, pa(phys[6]) | P | US);      /* user, read-only */
  set_pte(7, pa(phys[7]) | P | RW | US); /* user, writable */
  invlpg(VA(5));
  invlpg(VA(6));
  invlpg(VA(7));
  trap_log_clear();
  user_call(u_read, (ureg)user_stack_top, TV + 5 * 4096 + 8, 0x2);
  expect_pf("user read of supervisor page", TV + 5 * 4096 + 8, 0x5);
  trap_log_clear();
  user_call(u_write, (ureg)user_stack_top, TV + 6 * 4096, 0x2);
  expect_pf("user write of read-only page", TV + 6 * 4096, 0x7);
  trap_log_clear();
  CHECK_EQ(user_call(u_read, (ureg)user_stack_top, TV + 7 * 4096, 0x2), 0x8888888888888888ull);
  user_call(u_write, (ureg)user_stack_top, TV + 7 * 4096, 0x2);
  NO_FAULT("user access of user page");
  trap_log_clear();
  user_call(u_read, (ureg)user_stack_top, TV + 3 * 4096, 0x2);
  expect_pf("user read, not present", TV + 3 * 4096, 0x4);

  if (has_nx) {
    case_begin("pf_nx");
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | (1u << 11)); /* NXE */
    set_pte(1, pa(phys[1]) | P | RW);
    invlpg(VA(1));
    trap_log_clear();
    pf_exec((volatile char*)VA(1) + 4095);
    NO_FAULT("execute, NX clear");
    set_pte(1, pa(phys[1]) | P | RW | NX);
    invlpg(VA(1));
    trap_log_clear();
    pf_exec((volatile char*)VA(1) + 4095);
    expect_pf("execute, NX set", TV + 4096 + 4095, 0x11);
    trap_log_clear();
    pf_exec((volatile char*)VA(3) + 4095);
    expect_pf("execute, not present", TV + 3 * 4096 + 4095, 0x10);
    CHECK_EQ(pf_read(VA(1)), 0x2222222222222222ull); /* data reads unaffected */
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) & ~(1ull << 11));
    set_pte(1, pa(phys[1]) | P | RW);
    invlpg(VA(1));
  }

  case_begin("pf_reserved");
  /* A reserved bit set in a present entry: error code P | RSVD (| W/R ...),
   * 4.7: P = 1 because the entry was present ("Bad pagetable: 0009" on hardware). */
  if (has_nx) {
    /* NX set while EFER.NXE = 0 is a reserved bit (4.5.4). */
    set_pte(1, pa(phys[1]) | P | RW | NX);
    invlpg(VA(1));
    trap_log_clear();
    (void)pf_read(VA(1));
    expect_pf("NX bit with NXE=0", TV + 4096, 0x9);
    set_pte(1, pa(phys[1]) | P | RW);
    invlpg(VA(1));
  }
  /* Bit 13 of a 2 MiB PDE (PAT is bit 12) is reserved. */
  tpd[1] = 0x800000 | P | RW | PS | (1ull << 13);
  invlpg((void*)(TV + 0x200000));
  trap_log_clear();
  (void)pf_read((volatile void*)(TV + 0x200000));
  expect_pf("2 MiB PDE reserved bit 13", TV + 0x200000, 0x9);
  tpd[1] = 0;
  invlpg((void*)(TV + 0x200000));
  if (maxphy < 52) {
    set_pte(2, pa(phys[2]) | P | RW | (1ull << maxphy));
    invlpg(VA(2));
    trap_log_clear();
    (void)pf_read(VA(2));
    expect_pf("PTE bit MAXPHYADDR", TV + 2 * 4096, 0x9);
    trap_log_clear();
    pf_write(VA(2), 1);
    expect_pf("PTE bit MAXPHYADDR, write", TV + 2 * 4096, 0xB);
    set_pte(2, pa(phys[2]) | P | RW);
    invlpg(VA(2));
  }
  /* PS in a PML4 entry is reserved (4.5.4 table 4-15). */
  pml4[2] = pa(tpdpt) | P | RW | PS;
  trap_log_clear();
  (void)pf_read((volatile void*)(2 * TV));
  expect_pf("PML4E.PS", 2 * TV, 0x9);
  pml4[2] = 0;

  case_begin("page_2m");
  /* PDE with PS: a 2 MiB page at physical 8 MiB (above the guest image). */
  tpd[1] = 0x800000 | P | RW | PS;
  invlpg((void*)(TV + 0x200000));
  *(volatile uint64_t*)(0x800000 + 0x12340) = 0xFEEDFACE;
  trap_log_clear();
  CHECK_EQ(pf_read((volatile void*)(TV + 0x200000 + 0x12340)), 0xFEEDFACE);
  pf_write((volatile void*)(TV + 0x200000 + 0x1FFFF8), 0x77);
  CHECK_EQ(*(volatile uint64_t*)(0x800000 + 0x1FFFF8), 0x77);
  CHECK_EQ(tpd[1] & (A | D), A | D);
  NO_FAULT("2 MiB page");

  case_begin("page_1g");
  static volatile uint64_t marker = 0xC0FFEE;
  tpdpt[1] = 0 | P | RW | PS;
  invlpg((void*)(TV + 0x40000000));
  trap_log_clear();
  uint64_t v = pf_read((volatile void*)(TV + 0x40000000 + pa((const void*)&marker)));
  if (has_1g) {
    NO_FAULT("1 GiB page");
    CHECK_EQ(v, 0xC0FFEE);
    CHECK_EQ(tpdpt[1] & A, A);
  } else {
    /* Without CPUID Page1GB, PS in a PDPTE is reserved (4.5.4). */
    expect_pf("1 GiB page without Page1GB", TV + 0x40000000 + pa((const void*)&marker), 0x9);
  }
  tpdpt[1] = 0;

  case_begin("tlb_invlpg");
  set_pte(0, pa(phys[0]) | P | RW);
  invlpg(VA(0));
  trap_log_clear();
  CHECK_EQ(pf_read(VA(0)), 0x1111111111111111ull); /* fills the TLB */
  set_pte(0, pa(phys[1]) | P | RW);                /* no invalidation */
  CHECK_EQ(pf_read(VA(0)), 0x1111111111111111ull); /* stale: old frame */
  invlpg(VA(0));
  CHECK_EQ(pf_read(VA(0)), 0x2222222222222222ull);
  NO_FAULT("reads");

  case_begin("tlb_cr3");
  set_pte(0, pa(phys[0]) | P | RW);
  CHECK_EQ(pf_read(VA(0)), 0x2222222222222222ull); /* stale */
  write_cr3(read_cr3());
  CHECK_EQ(pf_read(VA(0)), 0x1111111111111111ull);
  /* A not-present fault does not leave a translation behind (4.10.2.3). */
  set_pte(3, 0);
  invlpg(VA(3));
  trap_log_clear();
  (void)pf_read(VA(3));
  set_pte(3, pa(phys[3]) | P | RW);
  CHECK_EQ(pf_read(VA(3)), 0x4444444444444444ull);
  CHECK_EQ(trap_count, 1);

  case_begin("tlb_global");
  write_cr4(read_cr4() | (1u << 7)); /* PGE */
  set_pte(0, pa(phys[0]) | P | RW | G);
  invlpg(VA(0));
  CHECK_EQ(pf_read(VA(0)), 0x1111111111111111ull);
  set_pte(0, pa(phys[1]) | P | RW | G);
  write_cr3(read_cr3()); /* does not flush global entries */
  CHECK_EQ(pf_read(VA(0)), 0x1111111111111111ull);
  write_cr4(read_cr4() & ~(1u << 7)); /* toggling PGE flushes everything */
  CHECK_EQ(pf_read(VA(0)), 0x2222222222222222ull);
  write_cr4(read_cr4() | (1u << 7));
  set_pte(0, pa(phys[0]) | P | RW | G);
  invlpg(VA(0)); /* INVLPG flushes a global entry too */
  CHECK_EQ(pf_read(VA(0)), 0x1111111111111111ull);
  write_cr4(read_cr4() & ~(1u << 7));

  /* SMEP/SMAP (4.6.1): the rest of the guest must be supervisor-only for
   * these, so 0..1 GiB is remapped through kpd (U/S = 0) while they run. */
  cpuid(7, 0, r);
  int has_smep = (r[1] >> 7) & 1, has_smap = (r[1] >> 20) & 1;
  printf("SMEP %d, SMAP %d\n", has_smep, has_smap);
  for (int i = 0; i < 512; i++) kpd[i] = ((uint64_t)i << 21) | P | RW | PS;
  pdpt0[0] = pa(kpd) | P | RW | US;
  write_cr3(read_cr3());
  set_pte(1, pa(phys[1]) | P | RW | US); /* a user page; its last byte is RET */
  invlpg(VA(1));
  if (has_smep) {
    case_begin("smep");
    trap_log_clear();
    pf_exec((volatile char*)VA(1) + 4095);
    NO_FAULT("supervisor fetch from a user page, SMEP=0");
    write_cr4(read_cr4() | (1u << 20));
    trap_log_clear();
    pf_exec((volatile char*)VA(1) + 4095);
    expect_pf("supervisor fetch from a user page, SMEP=1", TV + 4096 + 4095, 0x11);
    trap_log_clear();
    CHECK_EQ(pf_read(VA(1)), 0x2222222222222222ull); /* data access unaffected */
    NO_FAULT("supervisor read, SMEP only");
    write_cr4(read_cr4() & ~(1u << 20));
  }
  if (has_smap) {
    case_begin("smap");
    write_cr4(read_cr4() | (1u << 21));
    trap_log_clear();
    (void)pf_read(VA(1));
    expect_pf("supervisor read of a user page, SMAP=1, AC=0", TV + 4096, 0x1);
    trap_log_clear();
    pf_write(VA(1), 1);
    expect_pf("supervisor write of a user page, SMAP=1, AC=0", TV + 4096, 0x3);
    __asm__ volatile("stac" ::: "cc");
    trap_log_clear();
    CHECK_EQ(pf_read(VA(1)), 0x2222222222222222ull);
    NO_FAULT("supervisor read with AC=1");
    __asm__ volatile("clac" ::: "cc");
    write_cr4(read_cr4() & ~(1u << 21));
  }
  pdpt0[0] = (pa(boot_pd) + 0) | P | RW | US;

  extern uint64_t boot_pml4[];
  write_cr3(pa(boot_pml4));
}
