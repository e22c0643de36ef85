// Assertions for bugs in ttvm itself. They stay on in release builds and print
// the values involved, plus the guest position when a context is registered
// (see setAssertContext). A guest event is never an assertion: the CPU returns
// it as a value.
#pragma once

#include <sstream>
#include <string>

namespace ttvm {

// Called with a formatted message; prints it with the assert context and aborts.
[[noreturn]] void assertionFailed(const char* file, int line, const char* expr,
                                  const std::string& message);

// A thread-local description of "where the guest is" (e.g. "step 1234, rip
// 0x1000") that assertion messages include. Owners set and clear it.
void setAssertContext(std::string context);

namespace detail {
template <typename... Args>
std::string formatValues(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
}  // namespace detail

}  // namespace ttvm

#define TTVM_ASSERT(cond, ...)                                                              \
  do {                                                                                      \
    if (__builtin_expect(!(cond), 0))                                                       \
      ::ttvm::assertionFailed(__FILE__, __LINE__, #cond,                                    \
                              ::ttvm::detail::formatValues("" __VA_OPT__(, ) __VA_ARGS__)); \
  } while (0)

// Compares two values and prints both when they differ.
#define TTVM_ASSERT_EQ(a, b)                                                        \
  do {                                                                              \
    const auto& ttvm_a_ = (a);                                                      \
    const auto& ttvm_b_ = (b);                                                      \
    if (__builtin_expect(!(ttvm_a_ == ttvm_b_), 0))                                 \
      ::ttvm::assertionFailed(                                                      \
          __FILE__, __LINE__, #a " == " #b,                                         \
          ::ttvm::detail::formatValues(#a " = ", ttvm_a_, ", " #b " = ", ttvm_b_)); \
  } while (0)

#define TTVM_UNREACHABLE(...)                                \
  ::ttvm::assertionFailed(__FILE__, __LINE__, "unreachable", \
                          ::ttvm::detail::formatValues("" __VA_OPT__(, ) __VA_ARGS__))
