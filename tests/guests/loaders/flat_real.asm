; Flat real-mode binary for `ttvm record --mode real --load-addr A --entry A`
; (any A below 1 MiB, e.g. 0x7C00 or 0x8000). Position independent. Checks
; that CR0.PE is clear, then exits with status 0x14 (process status 41);
; 0x7E (253) otherwise.
%include "common.inc"
BITS 16
start:
    smsw ax
    test al, 1
    jnz fail
    PRINT 'PASS: loader_flat_real'
    EXIT 0x14
fail:
    PRINT 'FAIL: loader_flat_real: wrong machine state at entry'
    EXIT STATUS_FAIL
