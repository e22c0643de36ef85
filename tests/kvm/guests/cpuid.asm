; Answers CPUID questions forever (vcpu_test.cc): reads the leaf from port
; 0x70 and the subleaf from 0x71, executes CPUID and writes EAX, EBX, ECX,
; EDX to port 0x72. Real mode, loaded at 0x1000.
org 0x1000
bits 16
start:
    in eax, 0x70
    mov ebx, eax
    in eax, 0x71
    mov ecx, eax
    mov eax, ebx
    cpuid
    out 0x72, eax
    mov eax, ebx
    out 0x72, eax
    mov eax, ecx
    out 0x72, eax
    mov eax, edx
    out 0x72, eax
    jmp start
