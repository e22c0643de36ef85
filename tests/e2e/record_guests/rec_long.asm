; An ELF64 guest entered directly in long mode by the ELF64 loader: checks
; that it runs in 64-bit mode with paging and that the identity map covers
; high memory (the I/O APIC's version register at 0xFEC00000), then exits
; with value 0x15 through isa-debug-exit.
bits 64
global _start
section .text
_start:
  mov rax, 0x123456789
  shr rax, 32                  ; only a 64-bit register keeps the high bits
  cmp rax, 1
  jne .bad
  mov rax, cr0
  bt rax, 31                   ; paging on
  jnc .bad
  mov rbx, 0xFEC00000
  mov dword [rbx], 1           ; IOREGSEL = version
  mov eax, [rbx + 0x10]
  cmp al, 0x20
  jne .bad
  mov eax, 0x15
  out 0xF4, eax
.bad:
  mov eax, 0x7F
  out 0xF4, eax
  jmp .bad
