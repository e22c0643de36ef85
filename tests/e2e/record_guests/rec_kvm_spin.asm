; A guest that waits for timer ticks by spinning on memory, for the KVM
; backend's stop points (tests/kvm/record_kvm.sh). The PIT (channel 0, mode
; 2, ~1 kHz) raises IRQ 0 through the 8259 to vector 0x20; the guest spins
; on `cmp dword [ticks], 5; jb` with IF=1 and makes no exit while it waits,
; so under KVM each tick must be injected at a point where the recorder
; kicked the vCPU out. The state there repeats (the same registers and
; memory at every turn of the loop). After 5 ticks it prints a line and
; exits with status 0.
%include "rec.inc"
global _start
section .text
_start:
  mov esp, stack_top
  mov eax, irq0
  mov [idt + 0x20*8], ax
  mov word [idt + 0x20*8 + 2], cs
  mov word [idt + 0x20*8 + 4], 0x8E00
  shr eax, 16
  mov [idt + 0x20*8 + 6], ax
  lidt [idtr]
  PIC_INIT 0xFE, 0xFF
  mov al, 0x34
  out 0x43, al
  mov ax, 1193
  out 0x40, al
  mov al, ah
  out 0x40, al
  sti
.spin:
  cmp dword [ticks], 5
  jb .spin
  cli
  mov esi, done
  call serial_puts
  EXIT 0

irq0:
  push eax
  inc dword [ticks]
  mov al, 0x20
  out 0x20, al
  pop eax
  iret

section .rodata
done: db "5 ticks while spinning", 10, 0
idtr: dw 256*8 - 1
      dd idt
section .bss
alignb 8
idt: resb 256*8
ticks: resd 1
  resb 4096
stack_top:
