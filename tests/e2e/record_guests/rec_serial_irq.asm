; Terminal input by interrupt while idling: COM1 with its FIFO on (trigger
; level 1) raises IRQ 4 for each byte received (IER.RDA), the PIT raises
; IRQ 0 at 18.2 Hz, and the guest halts between interrupts. The IRQ 4
; handler reads every byte waiting and mixes the TSC of its arrival into
; EBX; a 'q' ends the run with the number of bytes received as the exit
; value, EBX (the arrival times) and ECX (the ticks seen) in the final state.
%include "rec.inc"
global _start
section .text
_start:
  mov esp, stack_top
  mov eax, irq0
  mov edi, 0x20
  call set_gate
  mov eax, irq4
  mov edi, 0x24
  call set_gate
  lidt [idtr]
  ; 8259: master base 0x20, slave 0x28, IRQ 0 and 4 open
  PIC_INIT 0xEE, 0xFF
  ; PIT channel 0, mode 2, the longest period (65536 ticks, ~55 ms)
  mov al, 0x34
  out 0x43, al
  xor al, al
  out 0x40, al
  out 0x40, al
  ; COM1: 8N1, FIFO on with trigger level 1, DTR RTS OUT2, receive interrupt
  mov dx, 0x3FB
  mov al, 0x03
  out dx, al
  mov dx, 0x3FA
  mov al, 0x07
  out dx, al
  mov dx, 0x3FC
  mov al, 0x0B
  out dx, al
  mov dx, 0x3F9
  mov al, 0x01
  out dx, al
  xor ebx, ebx
  sti
.idle:
  hlt
  cmp byte [quit], 0
  je .idle
  cli
  mov ebx, [arrivals]
  mov ecx, [ticks]
  mov eax, [count]
  out 0xF4, eax
.spin:
  jmp .spin

; IDT entry EDI -> EAX (32-bit interrupt gate, selector = current CS).
set_gate:
  mov [idt + edi*8], ax
  mov word [idt + edi*8 + 2], cs
  mov word [idt + edi*8 + 4], 0x8E00
  shr eax, 16
  mov [idt + edi*8 + 6], ax
  ret

irq0:
  push eax
  inc dword [ticks]
  mov al, 0x20
  out 0x20, al
  pop eax
  iret

irq4:
  pushad
.more:
  mov dx, 0x3FD
  in al, dx
  test al, 0x01
  jz .done
  mov dx, 0x3F8
  in al, dx
  mov bl, al
  rdtsc
  xor eax, [arrivals]
  rol eax, 5
  mov [arrivals], eax
  inc dword [count]
  cmp bl, 'q'
  jne .more
  mov byte [quit], 1
  jmp .more
.done:
  mov al, 0x20
  out 0x20, al
  popad
  iret

section .data
idtr:
  dw 256*8 - 1
  dd idt
ticks: dd 0
count: dd 0
arrivals: dd 0
quit: db 0
section .bss
alignb 8
idt: resb 256*8
  resb 4096
stack_top:
