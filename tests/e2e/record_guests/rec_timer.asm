; PIT channel 0 in mode 2 at 1 kHz, IRQ 0 through the 8259 (remapped to
; vector 0x20); the guest halts between interrupts (idle skip), reads the TSC
; in each handler and exits with status 0 after 5 ticks whose TSC deltas are
; about 1 ms.
%include "rec.inc"
global _start
section .text
_start:
  mov esp, stack_top
  ; IDT entry 0x20 -> irq0 (32-bit interrupt gate, selector = current CS)
  mov eax, irq0
  mov [idt + 0x20*8], ax
  mov word [idt + 0x20*8 + 2], cs
  mov word [idt + 0x20*8 + 4], 0x8E00
  shr eax, 16
  mov [idt + 0x20*8 + 6], ax
  lidt [idtr]
  ; 8259: master base 0x20, slave 0x28, only IRQ 0 open
  PIC_INIT 0xFE, 0xFF
  ; PIT channel 0, mode 2, 1193 ticks (~1 kHz)
  mov al, 0x34
  out 0x43, al
  mov ax, 1193
  out 0x40, al
  mov al, ah
  out 0x40, al
  rdtsc
  mov [last_tsc], eax
  sti
.idle:
  hlt
  cmp dword [ticks], 5
  jb .idle
  cli
  mov esi, done
  call serial_puts
  cmp dword [bad], 0
  jne .fail
  EXIT 0
.fail:
  EXIT 1

irq0:
  push eax
  push edx
  push ecx
  rdtsc
  mov ecx, eax
  sub eax, [last_tsc]
  mov [last_tsc], ecx
  ; the period is 1193 / 1.193182 MHz = 0.99985 ms = 999847 TSC ticks at 1 GHz
  cmp eax, 990000
  jb .wrong
  cmp eax, 1010000
  jb .ok
.wrong:
  inc dword [bad]
.ok:
  inc dword [ticks]
  mov al, 0x20
  out 0x20, al
  pop ecx
  pop edx
  pop eax
  iret

section .rodata
done: db "5 timer ticks", 10, 0
idtr: dw 256*8 - 1
      dd idt
section .bss
alignb 8
idt: resb 256*8
ticks: resd 1
bad: resd 1
last_tsc: resd 1
  resb 4096
stack_top:
