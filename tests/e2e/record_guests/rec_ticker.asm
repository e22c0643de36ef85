; A guest that keeps printing: the PIT raises IRQ 0 every ~55 ms, the guest
; halts between ticks and prints "tick N" (N in hex, counting from 1) on
; COM1 every 4th tick, and exits 0 after line 1024 (about 225 s of virtual
; time, a fraction of a second without --realtime). With --realtime its
; output arrives at wall-clock pace, for the tests that follow a trace
; while it is recorded (ttvm-ui's follow mode), which end it by --timeout.
%include "rec.inc"
global _start
section .text
_start:
  mov esp, stack_top
  IDT_GATE idt, 0x20, irq0
  lidt [idtr]
  PIC_INIT 0xFE, 0xFF
  ; PIT channel 0, mode 2, the longest period (65536 ticks, ~55 ms)
  mov al, 0x34
  out 0x43, al
  xor al, al
  out 0x40, al
  out 0x40, al
  xor ebx, ebx                ; lines printed
  sti
.idle:
  hlt
  mov eax, [ticks]
  shr eax, 2
  cmp eax, ebx
  jbe .idle
  inc ebx
  mov esi, s_tick
  call serial_puts
  mov eax, ebx
  call print_hex
  mov esi, s_nl
  call serial_puts
  cmp ebx, 1024
  jb .idle
  EXIT 0

DEFINE_PRINT_HEX

irq0:
  push eax
  inc dword [ticks]
  mov al, 0x20
  out 0x20, al
  pop eax
  iret

section .rodata
s_tick: db "tick ", 0
s_nl: db 10, 0
section .data
idtr:
  dw 256*8 - 1
  dd idt
ticks: dd 0
section .bss
alignb 8
idt: resb 256*8
  resb 4096
stack_top:
