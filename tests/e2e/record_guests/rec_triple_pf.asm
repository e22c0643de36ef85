; 32-bit paging with CR0.WP and an empty IDT; pushes onto a read-only page:
; #PF (CR2 = the stack slot) -> #GP (no IDT) -> #DF -> triple fault. The
; page fault changes CR2 on the way: the replay must end in the same state.
%include "rec.inc"
global _start
section .text
_start:
  mov dword [page_dir], 0x00000083      ; 0-4 MiB: 4 MiB page, present, writable
  mov dword [page_dir + 4], 0x00400081  ; 4-8 MiB: 4 MiB page, present, read-only
  mov eax, page_dir
  mov cr3, eax
  mov eax, cr4
  or eax, 0x10                          ; CR4.PSE
  mov cr4, eax
  lidt [null_idt]
  mov eax, cr0
  or eax, 0x80010000                    ; CR0.PG | CR0.WP
  mov cr0, eax
  mov esp, 0x500000
  push eax                              ; supervisor write to a read-only page
  EXIT 0x7F
section .rodata
null_idt: dw 0
          dd 0
section .bss align=4096
page_dir: resb 4096
