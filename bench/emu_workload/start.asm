; Entry of the emulator benchmark workload (64-bit, flat binary at 0x100000).
; The host sets RSP and RDI (iterations); the result lands in RAX and the
; workload halts at kHaltOffset = 5 bytes in (emu_bench.cc relies on it).
bits 64
section .note.GNU-stack noalloc noexec nowrite progbits
section .text.start
global _start
extern bench_main
_start:
    call bench_main      ; e8 rel32: 5 bytes
    hlt                  ; offset 5
    jmp _start + 5
