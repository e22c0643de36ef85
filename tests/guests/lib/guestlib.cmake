# ttvm_test_guest(<name> SOURCES <files> [BITS 32|64] [TRIPLE_FAULT]
#                 [EXPECT panic|reset] [QEMU_KNOWN_FAIL <case>...]
#                 [QEMU_ARGS <arg>...] [TTVM_ARGS <arg>...] [QEMU_ONLY])
# Builds a self-checking test guest linked with the guest library (lib/) and
# registers two CTest tests:
#   guest.qemu.<name>  (label qemu): the guest under qemu-system-x86_64 -accel tcg
#   guest.ttvm.<name>  (label ttvm): the guest under `ttvm record --no-trace`
# TRIPLE_FAULT: the guest ends the run on purpose by a triple fault.
# QEMU_KNOWN_FAIL: cases (the guest's case names) that QEMU's TCG gets wrong;
# the qemu test then requires exactly those cases to fail (see run_guest.py).
# QEMU_ONLY: no ttvm test (a second QEMU configuration, e.g. another -cpu, of a
# guest that ttvm already runs).
# EXPECT panic|reset: the guest ends the run on purpose through pvpanic or a
# machine reset, printing PANIC-NEXT / RESET-NEXT first.
# QEMU_ARGS: extra qemu-system-x86_64 arguments (devices the guest needs that
# ttvm always has, e.g. -device pc-testdev, or a CPU model).
# TTVM_ARGS: extra `ttvm record` arguments (e.g. --append, --initrd).
# STDIN <text>: bytes fed to the runner's stdin, i.e. the guest's COM1 input
# (backslash escapes decoded by run_guest.py), typed through a pseudo-terminal
# once the serial output contains STDIN_PROMPT <text>.
# No include guard: find_package() results are directory-scoped, so every
# guest folder that includes this file must run it in its own scope.
find_package(Python3 COMPONENTS Interpreter REQUIRED)
find_program(QEMU_SYSTEM_X86_64 qemu-system-x86_64)

function(ttvm_test_guest name)
  cmake_parse_arguments(ARG "TRIPLE_FAULT;QEMU_ONLY" "BITS;TIMEOUT;EXPECT;STDIN;STDIN_PROMPT" "SOURCES;QEMU_KNOWN_FAIL;QEMU_ARGS;TTVM_ARGS" ${ARGN})
  if(NOT ARG_BITS)
    set(ARG_BITS 64)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 60)
  endif()
  set(TTVM_GUESTLIB_DIR ${CMAKE_CURRENT_FUNCTION_LIST_DIR})
  set(target guest_${name})
  ttvm_guest(${target} OUTPUT ${name}.elf BITS ${ARG_BITS}
             SOURCES ${TTVM_GUESTLIB_DIR}/entry.asm ${TTVM_GUESTLIB_DIR}/guest.c ${ARG_SOURCES}
             LINKER_SCRIPT ${TTVM_GUESTLIB_DIR}/guest.ld
             INCLUDES ${TTVM_GUESTLIB_DIR})
  set(file ${CMAKE_CURRENT_BINARY_DIR}/${name}.elf)
  set(expect "")
  if(ARG_TRIPLE_FAULT)
    set(expect --expect triple-fault)
  endif()
  if(ARG_EXPECT)
    set(expect --expect ${ARG_EXPECT})
  endif()
  set(qemu_args "")
  foreach(a ${ARG_QEMU_ARGS})
    list(APPEND qemu_args --qemu-arg=${a})
  endforeach()
  set(stdin_arg "")
  if(DEFINED ARG_STDIN)
    set(stdin_arg "--stdin=${ARG_STDIN}")
    if(DEFINED ARG_STDIN_PROMPT)
      list(APPEND stdin_arg "--stdin-prompt=${ARG_STDIN_PROMPT}")
    endif()
  endif()
  set(ttvm_args "")
  foreach(a ${ARG_TTVM_ARGS})
    list(APPEND ttvm_args --ttvm-arg=${a})
  endforeach()
  set(known "")
  foreach(c ${ARG_QEMU_KNOWN_FAIL})
    list(APPEND known --known-fail ${c})
  endforeach()
  set(harness ${Python3_EXECUTABLE} ${TTVM_GUESTLIB_DIR}/../run_guest.py)
  if(QEMU_SYSTEM_X86_64)
    add_test(NAME guest.qemu.${name}
             COMMAND ${harness} --runner qemu --qemu ${QEMU_SYSTEM_X86_64} ${expect} ${known} ${qemu_args} ${stdin_arg}
                     --timeout ${ARG_TIMEOUT} ${file})
    set_tests_properties(guest.qemu.${name} PROPERTIES LABELS "qemu;guest")
  endif()
  if(TARGET ttvm AND NOT ARG_QEMU_ONLY)
    add_test(NAME guest.ttvm.${name}
             COMMAND ${harness} --runner ttvm --ttvm $<TARGET_FILE:ttvm> ${expect} ${ttvm_args} ${stdin_arg}
                     --timeout ${ARG_TIMEOUT} ${file})
    set_tests_properties(guest.ttvm.${name} PROPERTIES LABELS "ttvm;guest")
  endif()
endfunction()
