; Plain ELF32 executable (no multiboot header), entered at its ELF entry in
; 32-bit flat protected mode with paging off. Checks CR0, that .data holds
; its initial value, and that .bss (beyond the file) reads as zero.
; Exit status 0x12 (process status 37) on success, 0x7E (253) otherwise.
%include "common.inc"
BITS 32
section .text
global _start
_start:
    mov eax, cr0
    test eax, 1
    jz fail
    test eax, 0x80000000
    jnz fail
    cmp dword [data_magic], 0xC0FFEE32
    jne fail
    mov edi, bss_start
    mov ecx, 4096 / 4
    xor eax, eax
    repe scasd
    jne fail
    mov dword [bss_start], 1    ; writable
    PRINT 'PASS: loader_elf32'
    EXIT 0x12
fail:
    PRINT 'FAIL: loader_elf32: wrong machine state at entry'
    EXIT STATUS_FAIL

section .data
data_magic: dd 0xC0FFEE32

section .bss
bss_start: resb 4096

section .note.GNU-stack noalloc noexec nowrite progbits
