; Exit-rate guest (vcpu_test.cc): writes the counter 1..ECX to port 0x80,
; one OUT per iteration, then HLT. The test sets ECX. Real mode, at 0x1000.
org 0x1000
bits 16
start:
    xor eax, eax
.loop:
    inc eax
    out 0x80, eax
    cmp eax, ecx
    jne .loop
    hlt
