; Prints what the CPU model tells the guest, one line per leaf, then exits 0:
;   "cpuid LEAF EAX EBX ECX EDX" (hex) for leaves 0, 1, 7, 0x80000000-4,
;   "lzcnt 1 -> N" for F3 0F BD (LZCNT where the model has ABM, else REP BSR:
;   0x1f or 0), and "rdtscp #UD" or "rdtscp ok" (#UD where the model lacks it).
; It ends with EBP = a rotate-xor sum of every CPUID word, ESI = the LZCNT
; result and EDI = 1 after an RDTSCP #UD, so the final state depends on every
; answer the model gave.
; Used by the cross-model tests (tests/e2e/cpu_model_e2e_test.cc).
%include "rec.inc"
global _start
section .text
_start:
  mov esp, stack_top
  IDT_GATE idt, 6, ud_handler   ; #UD
  lidt [idt_desc]
  mov edi, leaves
.leaf:
  mov eax, [edi]
  cmp eax, 0xFFFFFFFF
  je .lzcnt
  push edi
  mov esi, s_cpuid
  call serial_puts
  call print_hex
  xor ecx, ecx
  cpuid
  rol dword [sum], 5
  xor [sum], eax
  rol dword [sum], 5
  xor [sum], ebx
  rol dword [sum], 5
  xor [sum], ecx
  rol dword [sum], 5
  xor [sum], edx
  push edx
  push ecx
  push ebx
  call print_sp_hex
  pop eax
  call print_sp_hex
  pop eax
  call print_sp_hex
  pop eax
  call print_sp_hex
  mov esi, s_nl
  call serial_puts
  pop edi
  add edi, 4
  jmp .leaf
.lzcnt:
  mov esi, s_lzcnt
  call serial_puts
  mov ebx, 1
  xor eax, eax
  lzcnt eax, ebx
  mov [lz], eax
  call print_hex
  mov esi, s_nl
  call serial_puts
  rdtscp                      ; #UD jumps to ud_handler
  mov esi, s_rdtscp_ok
  call serial_puts
  xor edi, edi
  jmp finish
ud_handler:
  mov esi, s_rdtscp_ud
  call serial_puts
  mov edi, 1
finish:
  mov ebp, [sum]
  mov esi, [lz]
  EXIT 0

; Prints " " then EAX as 8 hex digits (clobbers nothing).
print_sp_hex:
  push esi
  mov esi, s_sp
  call serial_puts
  pop esi
DEFINE_PRINT_HEX

section .rodata
leaves: dd 0, 1, 7, 0x80000000, 0x80000001, 0x80000002, 0x80000003, 0x80000004, 0xFFFFFFFF
s_cpuid: db "cpuid ", 0
s_sp: db " ", 0
s_nl: db 10, 0
s_lzcnt: db "lzcnt 1 -> ", 0
s_rdtscp_ok: db "rdtscp ok", 10, 0
s_rdtscp_ud: db "rdtscp #UD", 10, 0
align 8
idt_desc:
  dw 8 * 7 - 1
  dd idt
section .bss
alignb 8
idt: resq 7
sum: resd 1
lz: resd 1
  resb 4096
stack_top:
