; A guest that computes between timer ticks in a loop whose registers repeat
; (it changes only memory), for the KVM backend's stop points
; (tests/kvm/record_kvm.sh). Paging is on with 4 KiB pages whose entries
; start with the accessed and dirty bits clear, so the CPU's page walks set
; them while it runs; each turn of the loop has a CLI/STI section, so ticks
; also fall due while IF=0 and are taken at the STI's interrupt window. The
; PIT (channel 0, mode 2, ~1 kHz) raises IRQ 0 through the 8259. The loop
; makes no exit, so under KVM each tick is injected at a stop point (the
; counters' pages tell each turn from the others) or the window after it.
; After 5 ticks it checks the counters and prints a line; exit status 0.
%include "rec.inc"
global _start
section .text
_start:
  mov esp, stack_top
  ; Identity-map the first 4 MiB with 4 KiB pages: present, writable, A=D=0.
  mov edi, page_table
  mov eax, 0x003
  mov ecx, 1024
.pte:
  stosd
  add eax, 0x1000
  loop .pte
  mov eax, page_table
  or eax, 0x003
  mov [page_dir], eax
  mov eax, page_dir
  mov cr3, eax
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax
  jmp .paged
.paged:
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
.compute:
  inc dword [count_a]
  cli
  inc dword [count_b]
  add dword [count_c], 3
  sti
  inc dword [count_d]
  cmp dword [ticks], 5
  jb .compute
  cli
  ; Every turn ran whole: b = a, c = 3a, d = a.
  mov eax, [count_a]
  cmp eax, [count_b]
  jne .bad
  cmp eax, [count_d]
  jne .bad
  imul eax, 3
  cmp eax, [count_c]
  jne .bad
  mov esi, done
  call serial_puts
  EXIT 0
.bad:
  mov esi, bad
  call serial_puts
  EXIT 1

irq0:
  push eax
  inc dword [ticks]
  mov al, 0x20
  out 0x20, al
  pop eax
  iret

section .rodata
done: db "5 ticks while computing", 10, 0
bad: db "counters disagree", 10, 0
idtr: dw 256*8 - 1
      dd idt
section .bss
alignb 4096
page_dir: resb 4096
page_table: resb 4096
idt: resb 256*8
ticks: resd 1
alignb 4096
count_a: resd 1
alignb 4096
count_b: resd 1
alignb 4096
count_c: resd 1
alignb 4096
count_d: resd 1
alignb 4096
  resb 4096
stack_top:
