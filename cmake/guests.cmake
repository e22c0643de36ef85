# Guest programs: small multiboot kernels and flat binaries built with nasm
# and the host gcc in freestanding mode. They run under ttvm (and, as a
# reference, under QEMU) and report through the isa-debug-exit port.
find_program(NASM_EXECUTABLE nasm REQUIRED)

# ttvm_guest(<target> OUTPUT <file> SOURCES <.asm/.c files> [BITS 32|64]
#            [LINKER_SCRIPT <file>] [INCLUDES <dirs>] [FLAT])
# Builds <target> producing ${CMAKE_CURRENT_BINARY_DIR}/<file>.
#  - .asm files are assembled with nasm (-f elf32 / -f elf64).
#  - .c files are compiled with gcc -ffreestanding -fno-pic -nostdlib -m32/-m64
#    -mno-red-zone -mgeneral-regs-only -O2.
#  - Objects are linked with ld and the linker script; BITS 64 kernels are
#    converted to elf32-i386 so that QEMU's -kernel (multiboot v1) loads them.
#  - FLAT produces a raw binary with objcopy -O binary instead of an ELF.
function(ttvm_guest target)
  cmake_parse_arguments(ARG "FLAT" "OUTPUT;BITS;LINKER_SCRIPT" "SOURCES;INCLUDES" ${ARGN})
  if(NOT ARG_BITS)
    set(ARG_BITS 32)
  endif()
  set(objs "")
  set(incflags "")
  foreach(dir ${ARG_INCLUDES})
    list(APPEND incflags -I${dir})
  endforeach()
  foreach(src ${ARG_SOURCES})
    get_filename_component(abs ${src} ABSOLUTE)
    get_filename_component(base ${src} NAME)
    set(obj ${CMAKE_CURRENT_BINARY_DIR}/${target}.objs/${base}.o)
    if(src MATCHES "\\.asm$")
      add_custom_command(OUTPUT ${obj}
        COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/${target}.objs
        COMMAND ${NASM_EXECUTABLE} -f elf${ARG_BITS} ${incflags} -I${CMAKE_CURRENT_SOURCE_DIR}/ -o ${obj} ${abs}
        DEPENDS ${abs} IMPLICIT_DEPENDS C ${abs} VERBATIM)
    else()
      add_custom_command(OUTPUT ${obj}
        COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/${target}.objs
        COMMAND gcc -m${ARG_BITS} -std=gnu11 -ffreestanding -fno-pic -fno-pie -fno-stack-protector
                -fno-asynchronous-unwind-tables -nostdlib -mno-red-zone -mgeneral-regs-only
                -O2 -g -Wall -Wextra -Werror ${incflags} -c ${abs} -o ${obj}
        DEPENDS ${abs} IMPLICIT_DEPENDS C ${abs} VERBATIM)
    endif()
    list(APPEND objs ${obj})
  endforeach()
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${ARG_OUTPUT})
  set(linkfmt elf_i386)
  if(ARG_BITS EQUAL 64)
    set(linkfmt elf_x86_64)
  endif()
  set(post "")
  if(ARG_FLAT)
    set(post COMMAND objcopy -O binary ${out}.elf ${out})
  elseif(ARG_BITS EQUAL 64)
    set(post COMMAND objcopy -O elf32-i386 ${out}.elf ${out})
  else()
    set(post COMMAND ${CMAKE_COMMAND} -E copy ${out}.elf ${out})
  endif()
  add_custom_command(OUTPUT ${out}
    COMMAND ld -m ${linkfmt} -nostdlib -z max-page-size=0x1000 -T ${ARG_LINKER_SCRIPT} -o ${out}.elf ${objs}
    ${post}
    DEPENDS ${objs} ${ARG_LINKER_SCRIPT} VERBATIM)
  add_custom_target(${target} ALL DEPENDS ${out})
  set_target_properties(${target} PROPERTIES TTVM_GUEST_FILE ${out})
endfunction()
