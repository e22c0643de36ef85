; Masks every 8259 line, enables interrupts and halts: timers keep firing but
; nothing reaches the CPU (the recorder's idle watchdog ends it as a hang).
%include "rec.inc"
global _start
section .text
_start:
  mov al, 0xFF
  out 0x21, al
  out 0xA1, al
  sti
.idle:
  hlt
  jmp .idle
