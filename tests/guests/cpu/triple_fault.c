/* Triple fault (SDM vol. 3, 6.15 Interrupt 8: "If another exception occurs
 * while attempting to call the double-fault handler, the processor enters
 * shutdown mode"). The guest prints TRIPLE-FAULT-NEXT, loads an empty IDT and
 * executes UD2: #UD -> #GP (vector beyond the IDT limit) -> #DF -> shutdown.
 * The run must end there: QEMU -no-reboot exits with status 0 and logs
 * "Triple fault"; ttvm reports a triple-fault machine event. */
#include "guest.h"

GUEST_NAME("triple_fault");

void guest_main(void) {
  case_begin("before");
  CHECK_EQ(read_cr0() & 0x80000001u, 0x80000001u);
  if (fail_count) guest_finish();
  guest_triple_fault();
}
