/* The state a unit-test kernel finds once the start-up code (cstart.asm,
 * kut_boot) has run, checked as such kernels rely on it: the multiboot
 * information (memory size agreeing with fw_cfg, the command line from
 * -append/--append split into argv, the initrd holding the environment),
 * fw_cfg's signature and CPU count, one CPU after INIT/STARTUP to all others,
 * the local APIC reset through IA32_APIC_BASE, software-enabled and in x2APIC
 * mode when CPUID offers it, the 8259 masks, the ACPI tables (RSDP in the
 * BIOS area, RSDT, FADT, FACS, MADT with one processor), the per-CPU GS base
 * kept across the start-up's segment reloads, the paging set-up, the TSS. */
#include "kut.h"

static void check_multiboot(void) {
  report_prefix_push("multiboot");
  report(boot_info != 0, "information block passed in EBX");
  report((boot_info->flags & 0x45) == 0x45, "flags %#x: memory, command line, memory map",
         boot_info->flags);
  uint64_t ram = fwcfg_get(FW_CFG_RAM_SIZE, 8);
  /* QEMU keeps the top 128 KiB below the RAM size to itself; ttvm reports all. */
  uint64_t upper_end = (uint64_t)boot_info->mem_upper * 1024 + 0x100000;
  report(upper_end <= ram && upper_end + 0x100000 > ram,
         "mem_upper %u KiB ends within 1 MiB below fw_cfg's RAM size %#llx", boot_info->mem_upper,
         (unsigned long long)ram);
  report(boot_info->mem_lower >= 600 && boot_info->mem_lower <= 640, "mem_lower %u KiB",
         boot_info->mem_lower);
  /* The original's page allocator takes [edata, mem_upper * 1 KiB): nothing
   * the loader needs later may sit there, and the kernel must fit below it. */
  report((uint64_t)(ulong_t)edata < (uint64_t)boot_info->mem_upper * 1024,
         "kernel end %p below the allocator's limit", (void*)edata);
  report((uint64_t)boot_info->cmdline >= (uint64_t)(ulong_t)kernel_end ||
             (uint64_t)boot_info->cmdline < 0x100000,
         "command line at %#x lies outside the kernel image", boot_info->cmdline);

  report(kut_argc == 3, "argc %d (kernel name + 2 arguments)", kut_argc);
  if (kut_argc == 3) {
    report(!strcmp(kut_argv[1], "first-arg"), "argv[1] '%s'", kut_argv[1]);
    report(!strcmp(kut_argv[2], "nr=42"), "argv[2] '%s'", kut_argv[2]);
  }
  report(boot_info->mods_count == 1, "one module (the initrd), %u", boot_info->mods_count);
  report(initrd != 0, "initrd at %p", (void*)initrd);
  report((ulong_t)initrd >= (ulong_t)kernel_end, "initrd after the kernel");
  const char* v = getenv("KUT_ENV_CHECK");
  report(v && !strcmp(v, "present"), "environment from the initrd: KUT_ENV_CHECK=%s",
         v ? v : "(unset)");
  v = getenv("NR_ITEMS");
  report(v && atol(v) == 17, "NR_ITEMS=%s", v ? v : "(unset)");
  report_prefix_pop();
}

static void check_cpus(void) {
  report_prefix_push("smp");
  char sig[5] = {0};
  /* The signature item, byte by byte: "QEMU". */
  __asm__ volatile("outw %0, %1" ::"a"((uint16_t)FW_CFG_SIGNATURE), "d"((uint16_t)0x510));
  for (int i = 0; i < 4; i++) sig[i] = (char)inb(0x511);
  report(!strcmp(sig, "QEMU"), "fw_cfg signature '%s'", sig);
  report(kut_cpu_count == 1, "fw_cfg CPU count %u", kut_cpu_count);
  report(fwcfg_get(FW_CFG_MAX_CPUS, 2) >= 1, "fw_cfg max CPUs %u",
         (unsigned)fwcfg_get(FW_CFG_MAX_CPUS, 2));
  report(ap_arrived == 0, "no AP ran the trampoline after INIT/STARTUP");
  ulong_t zero = 0;
  __asm__ volatile("" : "+r"(zero)); /* physical 0 is RAM, not a null pointer */
  uint8_t trampoline_first = *(volatile uint8_t*)zero;
  report(trampoline_first == 0xFA, "trampoline (cli first) copied to physical 0");
  report_prefix_pop();
}

static void check_apic(void) {
  uint64_t base = rdmsr(MSR_IA32_APICBASE);
  report((base & ~0xFFFull) == APIC_DEFAULT_PHYS_BASE, "apic base: IA32_APIC_BASE %#llx",
         (unsigned long long)base);
  /* QEMU's TCG APIC cannot be enabled again once IA32_APIC_BASE disabled it
   * (a known limitation of its userspace APIC); KVM and hardware can. */
  report_prefix_push("reenable");
  report(base & APIC_EN, "globally enabled after the reset (%#llx)", (unsigned long long)base);
  report_prefix_pop();
  report_prefix_push("apic");
  report(base & APIC_BSP, "BSP flag");
  int has_x2 = (cpuid_leaf(1).c >> 21) & 1;
  report(!!(base & APIC_EXTD) == has_x2, "x2APIC mode %s CPUID (ECX.21 = %d)",
         (base & APIC_EXTD) ? "on, as" : "off, as", has_x2);
  report(apic_read(APIC_SPIV) & 0x100, "software-enabled (SPIV %#x)", apic_read(APIC_SPIV));
  report((apic_read(APIC_SPIV) & 0xFF) == 0xFF, "spurious vector 0xff");
  uint32_t cpuid_id = cpuid_leaf(1).b >> 24;
  report(kut_boot_apic_id == cpuid_id, "xAPIC ID over MMIO %u = CPUID.1:EBX[31:24] %u",
         kut_boot_apic_id, cpuid_id);
  report(apic_id() == cpuid_id, "APIC ID now %u", apic_id());
  uint32_t ver = apic_read(APIC_LVR);
  report((ver & 0xFF) >= 0x10 && (ver & 0xFF) <= 0x15, "version %#x", ver);
  report(inb(0x21) == 0xFF && inb(0xA1) == 0xFF, "8259 masks %#x %#x", inb(0x21), inb(0xA1));
  report_prefix_pop();
}

static void check_acpi(void) {
  report_prefix_push("acpi");
  uint8_t* rsdp = find_acpi_table("RSDP");
  report(rsdp != 0, "RSDP found at %p", (void*)rsdp);
  if (!rsdp) {
    report_prefix_pop();
    return;
  }
  report(acpi_checksum_ok(rsdp, 20), "RSDP checksum");
  uint8_t* rsdt = find_acpi_table("RSDT");
  report(rsdt && acpi_checksum_ok(rsdt, *(uint32_t*)(rsdt + 4)), "RSDT and its checksum");
  uint8_t* fadt = find_acpi_table("FACP");
  report(fadt && acpi_checksum_ok(fadt, *(uint32_t*)(fadt + 4)), "FADT and its checksum");
  uint8_t* facs = find_acpi_table("FACS");
  report(facs && !memcmp(facs, "FACS", 4), "FACS through the FADT at %p", (void*)facs);
  uint8_t* madt = find_acpi_table("APIC");
  report(madt && acpi_checksum_ok(madt, *(uint32_t*)(madt + 4)), "MADT and its checksum");
  if (madt) {
    report(*(uint32_t*)(madt + 36) == APIC_DEFAULT_PHYS_BASE, "MADT local APIC address %#x",
           *(uint32_t*)(madt + 36));
    int cpus = 0, ioapics = 0;
    uint32_t len = *(uint32_t*)(madt + 4);
    for (uint32_t off = 44; off + 2 <= len && madt[off + 1] >= 2; off += madt[off + 1]) {
      if (madt[off] == 0 && (madt[off + 4] & 1)) cpus++;
      if (madt[off] == 9 && (madt[off + 8] & 1)) cpus++;
      if (madt[off] == 1 && *(uint32_t*)(madt + off + 4) == IO_APIC_BASE) ioapics++;
    }
    report(cpus == 1, "MADT: %d enabled processor(s)", cpus);
    report(ioapics == 1, "MADT: I/O APIC at %#x", IO_APIC_BASE);
  }
  report_prefix_pop();
}

static void check_cpu_state(void) {
  report_prefix_push("cpu");
  ulong_t self;
  __asm__ volatile("mov %%gs:0, %0" : "=r"(self));
  report(self == (ulong_t)percpu_area, "GS base is the per-CPU area (%p)", (void*)self);
#ifdef __x86_64__
  report(rdmsr(MSR_GS_BASE) == (ulong_t)percpu_area, "IA32_GS_BASE kept across the reloads");
  report((rdmsr(MSR_EFER) & 0x500) == 0x500, "EFER.LME and LMA");
  report(read_cr4() & 0x20, "CR4.PAE");
#else
  report((read_cr4() & 0x30) == 0x10, "CR4 %#lx: PSE without PAE", (unsigned long)read_cr4());
#endif
  report((read_cr0() & 0x80000001) == 0x80000001, "CR0.PG and PE");
  report(str_() == 0x80, "TR %#x", str_());
  report(read_cs() == 0x08, "CS %#x", read_cs());
  report(!(read_flags() & 0x200), "interrupts still disabled");
  /* The identity map covers MMIO: the I/O APIC answers at its address. */
  uint32_t ver = ioapic_read_reg(1);
  report((ver & 0xFF) == 0x11 || (ver & 0xFF) == 0x20, "I/O APIC version %#x through paging",
         ver & 0xFF);
  /* The exception table works: a #UD is caught and execution goes on. */
  __asm__ volatile(KUT_TRY("ud2")::: "memory");
  report(exception_vector() == UD_VECTOR, "#UD caught through the exception table");
  report_prefix_pop();
}

int main(int argc, char** argv) {
  (void)argc;
  (void)argv;
  check_multiboot();
  check_cpus();
  check_apic();
  check_acpi();
  check_cpu_state();
  return report_summary();
}
