; Flat 32-bit binary for `ttvm record --mode prot --load-addr A --entry A`
; (e.g. A = 0x100000). Position independent. Checks CR0.PE set and PG clear,
; then exits with status 0x15 (process status 43); 0x7E (253) otherwise.
%include "common.inc"
BITS 32
start:
    mov eax, cr0
    test eax, 1
    jz fail
    test eax, 0x80000000
    jnz fail
    PRINT 'PASS: loader_flat_prot'
    EXIT 0x15
fail:
    PRINT 'FAIL: loader_flat_prot: wrong machine state at entry'
    EXIT STATUS_FAIL
