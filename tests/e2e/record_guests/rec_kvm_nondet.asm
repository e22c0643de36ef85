; The inputs KVM lets a guest read without an exit (docs/kvm-recording.md,
; "What KVM does not trap"): prints which of them CPUID shows, then reads one
; command byte from COM1 (`ttvm record --serial-input`) and executes it:
;   r  RDRAND       prints "rdrand cf=N"
;   t  RDTSC        prints "rdtsc"
;   p  RDTSCP       prints "rdtscp"
;   d  RDPID        prints "rdpid"
;   m  RDMSR 0x8B   prints "ucode 0xHHHHHHHH" (the microcode revision, EDX)
;   x  x2APIC       enables it (WRMSR IA32_APIC_BASE) and prints "x2apic version
;                   0xHHHHHHHH" (RDMSR 0x803, the local APIC's version register)
;   n  nothing
; then "done" and exits with status 1 (isa-debug-exit 0). An instruction
; that raises #UD prints "#UD" and exits with status 3.
%include "rec.inc"
global _start
section .text
_start:
  mov esp, stack_top
  ; #UD (vector 6) handler in a 32-bit interrupt gate of the current CS.
  mov eax, ud_handler
  mov [idt + 6 * 8], ax
  mov [idt + 6 * 8 + 2], cs
  mov word [idt + 6 * 8 + 4], 0x8E00
  shr eax, 16
  mov [idt + 6 * 8 + 6], ax
  lidt [idtr]
  mov dx, 0x3FC               ; MCR: DTR and RTS, so the line input is sent
  mov al, 3
  out dx, al
  mov eax, 1
  xor ecx, ecx
  cpuid
  mov [ecx1], ecx
  mov [edx1], edx
  mov eax, 7
  xor ecx, ecx
  cpuid
  mov [ebx7], ebx
  mov [ecx7], ecx
  mov eax, 0x80000001
  xor ecx, ecx
  cpuid
  mov [edx81], edx
  mov esi, s_tsc
  call serial_puts
  bt dword [edx1], 4
  call put_cf
  mov esi, s_rdtscp
  call serial_puts
  bt dword [edx81], 27
  call put_cf
  mov esi, s_rdrand
  call serial_puts
  bt dword [ecx1], 30
  call put_cf
  mov esi, s_rdseed
  call serial_puts
  bt dword [ebx7], 18
  call put_cf
  mov esi, s_rdpid
  call serial_puts
  bt dword [ecx7], 22
  call put_cf
  mov esi, s_nl
  call serial_puts
.wait:
  mov dx, 0x3FD
  in al, dx
  test al, 1
  jz .wait
  mov dx, 0x3F8
  in al, dx
  cmp al, 'r'
  je .rdrand
  cmp al, 't'
  je .rdtsc
  cmp al, 'p'
  je .rdtscp
  cmp al, 'd'
  je .rdpid
  cmp al, 'm'
  je .ucode
  cmp al, 'x'
  je .x2apic
  jmp .done
.rdrand:
  rdrand eax
  pushfd                      ; CF: whether it returned a value
  mov esi, s_cf
  call serial_puts
  popfd
  call put_cf
  mov esi, s_nl
  call serial_puts
  jmp .done
.rdtsc:
  rdtsc
  mov esi, s_did_rdtsc
  call serial_puts
  jmp .done
.rdtscp:
  rdtscp
  mov esi, s_did_rdtscp
  call serial_puts
  jmp .done
.rdpid:
  db 0xF3, 0x0F, 0xC7, 0xF8   ; rdpid eax
  mov esi, s_did_rdpid
  call serial_puts
  jmp .done
.ucode:
  xor eax, eax
  xor edx, edx
  mov ecx, 0x8B
  wrmsr                       ; 0 asks for a fresh signature (SDM)
  mov eax, 1
  cpuid
  mov ecx, 0x8B
  rdmsr
  mov esi, s_ucode
  call serial_puts
  mov eax, edx
  call put_hex
  mov esi, s_nl
  call serial_puts
  jmp .done
.x2apic:
  mov ecx, 0x1B
  rdmsr
  or eax, 0xC00               ; EN | EXTD
  wrmsr
  mov ecx, 0x803
  rdmsr
  mov esi, s_x2apic
  call serial_puts
  call put_hex
  mov esi, s_nl
  call serial_puts
.done:
  mov esi, s_done
  call serial_puts
  EXIT 0

ud_handler:
  mov esi, s_ud
  call serial_puts
  EXIT 1

; Prints '1' if CF is set, else '0'.
put_cf:
  setc al
  add al, '0'
  mov [one], al
  mov esi, one
  jmp serial_puts

; Prints EAX as 0x and eight hex digits.
put_hex:
  mov edi, hexbuf + 2
  mov ecx, 8
.digit:
  rol eax, 4
  mov bl, al
  and bl, 0xF
  add bl, '0'
  cmp bl, '9'
  jbe .store
  add bl, 'a' - '9' - 1
.store:
  mov [edi], bl
  inc edi
  loop .digit
  mov esi, hexbuf
  jmp serial_puts

section .data
idtr:
  dw 256 * 8 - 1
  dd idt
hexbuf: db "0x00000000", 0
one: db "0", 0
s_tsc: db "cpuid tsc=", 0
s_rdtscp: db " rdtscp=", 0
s_rdrand: db " rdrand=", 0
s_rdseed: db " rdseed=", 0
s_rdpid: db " rdpid=", 0
s_nl: db 10, 0
s_cf: db "rdrand cf=", 0
s_did_rdtsc: db "rdtsc", 10, 0
s_did_rdtscp: db "rdtscp", 10, 0
s_did_rdpid: db "rdpid", 10, 0
s_ucode: db "ucode ", 0
s_x2apic: db "x2apic version ", 0
s_done: db "done", 10, 0
s_ud: db "#UD", 10, 0
section .bss
alignb 8
idt: resb 256 * 8
ecx1: resd 1
edx1: resd 1
ebx7: resd 1
ecx7: resd 1
edx81: resd 1
  resb 4096
stack_top:
