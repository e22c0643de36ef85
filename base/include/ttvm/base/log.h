// Logging: one macro with per-module levels, set from the TTVM_LOG
// environment variable, e.g. TTVM_LOG=warn,emulator=debug,recorder=info.
// Log decisions, not every instruction. Messages go to stderr.
#pragma once

#include <sstream>
#include <string_view>

namespace ttvm {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3, kTrace = 4 };

// Whether messages of `level` from `module` are printed.
bool logEnabled(std::string_view module, LogLevel level);
void logWrite(std::string_view module, LogLevel level, const std::string& message);
// Overrides the levels from TTVM_LOG (used by -v flags and tests).
void setLogSpec(std::string_view spec);

}  // namespace ttvm

#define TTVM_LOG(module, level, ...)                                          \
  do {                                                                        \
    if (::ttvm::logEnabled(module, ::ttvm::LogLevel::level)) {                \
      std::ostringstream ttvm_log_out_;                                       \
      ttvm_log_out_ << __VA_ARGS__;                                           \
      ::ttvm::logWrite(module, ::ttvm::LogLevel::level, ttvm_log_out_.str()); \
    }                                                                         \
  } while (0)
