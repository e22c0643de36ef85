; ELF64 executable, entered at its ELF entry in 64-bit long mode with the
; first 4 GiB identity-mapped. Checks EFER.LMA and CR0.PG, .data and .bss,
; and the identity map at both ends: a read of the local APIC's version
; register at 0xFEE00030 (near the top of the 4 GiB).
; Exit status 0x13 (process status 39) on success, 0x7E (253) otherwise.
%include "common.inc"
BITS 64
section .text
global _start
_start:
    mov ecx, 0xC0000080         ; EFER
    rdmsr
    test eax, 1 << 10           ; LMA
    jz fail
    mov rax, cr0
    test eax, 0x80000000
    jz fail
    mov eax, [rel data_magic]
    cmp eax, 0x40FFEE64
    jne fail
    lea rdi, [rel bss_start]
    mov ecx, 4096 / 8
    xor eax, eax
    repe scasq
    jne fail
    mov esi, 0xFEE00030         ; APIC version: 0x1X in the low byte
    mov eax, [rsi]
    and eax, 0xF0
    cmp eax, 0x10
    jne fail
    PRINT 'PASS: loader_elf64'
    EXIT 0x13
fail:
    PRINT 'FAIL: loader_elf64: wrong machine state at entry'
    EXIT STATUS_FAIL

section .data
data_magic: dd 0x40FFEE64

section .bss
bss_start: resb 4096

section .note.GNU-stack noalloc noexec nowrite progbits
