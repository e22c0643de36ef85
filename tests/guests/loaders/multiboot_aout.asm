; Multiboot v1 kernel in the a.out-kludge format (header flag bit 16): a flat
; file whose header gives the load addresses, as QEMU's -kernel and
; `ttvm record` accept. Loaded at 1 MiB; entered in 32-bit protected mode
; with EAX = 0x2BADB002 and EBX -> multiboot info. Checks the magic, that the
; info has memory sizes, and that the loader zeroed [load_end, bss_end).
; Exit status 0x11 (process status 35) on success, 0x7E (253) otherwise.
%include "common.inc"
BITS 32
LOAD_ADDR equ 0x100000
MB_MAGIC equ 0x1BADB002
MB_FLAGS equ 0x00010002         ; bit 16: address fields valid; bit 1: memory info
BSS_SIZE equ 0x2000
ORG LOAD_ADDR

header:
    dd MB_MAGIC
    dd MB_FLAGS
    dd -(MB_MAGIC + MB_FLAGS)
    dd header                   ; header_addr
    dd LOAD_ADDR                ; load_addr
    dd load_end                 ; load_end_addr
    dd bss_end                  ; bss_end_addr
    dd entry                    ; entry_addr

entry:
    cmp eax, 0x2BADB002
    jne fail
    test dword [ebx], 1         ; flags bit 0: mem_lower/mem_upper valid
    jz fail
    cmp dword [ebx + 8], 1024   ; mem_upper >= 1 MiB
    jb fail
    mov edi, load_end           ; the bss must read as zero
    mov ecx, BSS_SIZE / 4
    xor eax, eax
    repe scasd
    jne fail
    mov eax, cr0
    test eax, 1                 ; protected mode, paging off
    jz fail
    test eax, 0x80000000
    jnz fail
    PRINT 'PASS: loader_multiboot_aout'
    EXIT 0x11
fail:
    PRINT 'FAIL: loader_multiboot_aout: wrong machine state at entry'
    EXIT STATUS_FAIL

align 4
load_end:
bss_end equ load_end + BSS_SIZE
