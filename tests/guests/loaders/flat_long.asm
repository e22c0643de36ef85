; Flat 64-bit binary for `ttvm record --mode long --load-addr A --entry A`
; (e.g. A = 0x100000), entered in long mode with the first 4 GiB
; identity-mapped. Position independent. Checks EFER.LMA, CR0.PG and CR4.PAE
; and a 64-bit operation, then exits with status 0x16 (process status 45);
; 0x7E (253) otherwise.
%include "common.inc"
BITS 64
start:
    mov ecx, 0xC0000080
    rdmsr
    test eax, 1 << 10
    jz fail
    mov rax, cr4
    test eax, 1 << 5
    jz fail
    mov rax, 0x123456789
    shr rax, 32                 ; only a 64-bit register keeps the high half
    cmp eax, 1
    jne fail
    PRINT 'PASS: loader_flat_long'
    EXIT 0x16
fail:
    PRINT 'FAIL: loader_flat_long: wrong machine state at entry'
    EXIT STATUS_FAIL
