; Prints a line, then jumps to 0xF0000000, above RAM where nothing is mapped:
; KVM cannot fetch the next instruction there (no memory slot: its emulator
; gets an MMIO address for code) and reports an internal error, which the
; KVM backend's recording must end with, the trace finalized
; (tests/kvm/record_kvm.sh).
%include "rec.inc"
global _start
section .text
_start:
  mov esp, stack_top
  mov esi, hello
  call serial_puts
  mov eax, 0xF0000000
  jmp eax
section .rodata
hello: db "jumping into the MMIO hole", 10, 0
section .bss
  resb 4096
stack_top:
