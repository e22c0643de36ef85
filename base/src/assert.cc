#include "ttvm/base/assert.h"

#include <cstdio>
#include <cstdlib>

namespace ttvm {

namespace {
thread_local std::string tAssertContext;
}

void setAssertContext(std::string context) {
  tAssertContext = std::move(context);
}

void assertionFailed(const char* file, int line, const char* expr, const std::string& message) {
  std::fprintf(stderr, "ttvm: internal error at %s:%d: %s", file, line, expr);
  if (!message.empty()) std::fprintf(stderr, ": %s", message.c_str());
  if (!tAssertContext.empty()) std::fprintf(stderr, " [%s]", tAssertContext.c_str());
  std::fprintf(stderr, "\n");
  std::fflush(stderr);
  std::abort();
}

}  // namespace ttvm
