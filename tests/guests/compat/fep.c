/* KVM's forced-emulation prefix (ud2; "kvm") where the machine honours it,
 * as KVM does with force_emulation_prefix and as the unit-test kernels then
 * use it (their "is FEP available" probe is a prefixed NOP): the prefixed
 * instruction runs exactly once each time, also when the same prefixed
 * instruction runs again from the decode cache, and a fault in it reports
 * the instruction's own address after the prefix (KVM advances RIP past the
 * prefix before emulating; the kernels' exception tables name that address). */
#include "kut.h"

int main(int argc, char** argv) {
  (void)argc;
  (void)argv;
  uint32_t n = 0;
  __asm__ volatile(KUT_TRY("ud2; .byte 0x6b, 0x76, 0x6d; incl %0") : "+r"(n) : : "memory");
  if (exception_vector() == UD_VECTOR) {
    report(n == 0, "prefix off: #UD at the ud2, the instruction after it not run");
    return report_summary();
  }
  report(n == 1, "prefixed instruction ran once: %u", n);
  n = 0;
  for (int k = 0; k < 4; k++) __asm__ volatile("ud2; .byte 0x6b, 0x76, 0x6d; incl %0" : "+r"(n));
  report(n == 4, "the same prefixed instruction 4 times in a loop: %u", n);
  __asm__ volatile(
      "movl $0, %%gs:4\n\t"
      "ud2; .byte 0x6b, 0x76, 0x6d\n\t"
      "1111: ud2\n\t"
      "1112:\n\t" KUT_EX_ENTRY(1111b, 1112b)::
          : "memory");
  report(exception_vector() == UD_VECTOR,
         "a fault in the prefixed instruction is reported at its own address");
  return report_summary();
}
