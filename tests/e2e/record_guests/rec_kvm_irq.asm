; Interrupts at I/O exits and at interrupt windows, and string I/O, for the
; KVM backend (tests/kvm/record_kvm.sh) and the emulator alike. The PIT
; (channel 0, mode 2, count 2: a tick every ~1.7 us of virtual time) raises
; IRQ 0 through the 8259 to vector 0x20 while the guest loops over
;  - with IF=0: REP INSB of 16 bytes from pc-testdev's latch (KVM batches
;    them into one exit) and a port write, then STI and a NOP (a tick that
;    fell due meanwhile waits for the window after the NOP);
;  - with IF=1: a port write and a port read (a tick is taken right after
;    the access that made it due).
; After 10 ticks it checks the bytes read and prints a line; exit status 0
; (1 if a byte was wrong).
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
  mov dx, 0xE0
  mov eax, 0x5A
  out dx, eax                 ; the latch's first byte: what INSB reads
  mov al, 0x34
  out 0x43, al
  mov al, 2
  out 0x40, al
  xor al, al
  out 0x40, al
  sti
.loop:
  cli
  mov edi, buf
  mov ecx, 16
  rep insb
  out 0x80, al
  sti
  nop
  out 0x80, al
  in al, dx
  cmp dword [ticks], 10
  jb .loop
  cli
  mov ecx, 16
  mov esi, buf
.check:
  cmp byte [esi], 0x5A
  jne .fail
  inc esi
  loop .check
  mov esi, done
  call serial_puts
  EXIT 0
.fail:
  EXIT 1

irq0:
  push eax
  inc dword [ticks]
  mov al, 0x20
  out 0x20, al
  pop eax
  iret

section .rodata
done: db "10 ticks, string input ok", 10, 0
idtr: dw 256*8 - 1
      dd idt
section .bss
alignb 8
idt: resb 256*8
ticks: resd 1
buf: resb 16
  resb 4096
stack_top:
