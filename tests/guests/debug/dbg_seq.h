/* Helpers for the 64-bit debug guests: asm fragments that turn TF on and off,
 * and the expected-trap shorthands. Sequences are top-level asm functions, so
 * each label exists exactly once. */
#ifndef TTVM_DBG_SEQ_H
#define TTVM_DBG_SEQ_H
#include "guest.h"

#define L(x) extern char x[]
/* POPF that sets TF: no trap after it (SDM vol. 3, 2.3, TF). */
#define TF_ON "pushfq\n orq $0x100, (%rsp)\n popfq\n"
/* Three stepped instructions that clear TF: traps at p_t1, p_t2, and (POPF
 * cleared TF, but it was set before) p_end. */
#define TF_OFF(p) p "_t0: pushfq\n" p "_t1: andq $~0x100, (%rsp)\n" p "_t2: popfq\n" p "_end:\n"
#define TAIL_LABELS(p) \
  L(p##_t0);           \
  L(p##_t1);           \
  L(p##_t2);           \
  L(p##_end)

#define DB(rip_) \
  { 1, (ureg)(rip_), DR6_BS, FL_TF, 0, 0, 0 }
#define DB_RCX(rip_, rcx_) \
  { 1, (ureg)(rip_), DR6_BS, FL_TF, 0, 1, (ureg)(rcx_) }
#define DB_TF_OFF(rip_) \
  { 1, (ureg)(rip_), DR6_BS, 0, FL_TF, 0, 0 }
#define DB_TAIL(p) DB(p##_t1), DB(p##_t2), DB_TF_OFF(p##_end)

static inline void run_seq(void (*fn)(void)) {
  write_dr6(DR6_INIT);
  trap_log_clear();
  fn();
}
#define RUN(sym) run_seq((void (*)(void))sym)
#endif
