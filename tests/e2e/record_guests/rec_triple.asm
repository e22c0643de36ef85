; Loads an empty IDT and raises #UD: #UD -> #GP -> #DF -> triple fault.
%include "rec.inc"
global _start
section .text
_start:
  lidt [null_idt]
  ud2
section .rodata
null_idt: dw 0
          dd 0
