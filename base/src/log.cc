#include "ttvm/base/log.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

namespace ttvm {

namespace {

struct LogConfig {
  std::mutex mutex;
  LogLevel defaultLevel = LogLevel::kWarn;
  std::map<std::string, LogLevel, std::less<>> modules;
  bool loaded = false;
};

LogConfig& config() {
  static LogConfig c;
  return c;
}

bool parseLevel(std::string_view s, LogLevel* out) {
  static const std::pair<std::string_view, LogLevel> kNames[] = {
      {"error", LogLevel::kError}, {"warn", LogLevel::kWarn},   {"info", LogLevel::kInfo},
      {"debug", LogLevel::kDebug}, {"trace", LogLevel::kTrace},
  };
  for (const auto& [name, level] : kNames) {
    if (s == name) {
      *out = level;
      return true;
    }
  }
  return false;
}

void applySpecLocked(LogConfig& c, std::string_view spec) {
  c.modules.clear();
  while (!spec.empty()) {
    size_t comma = spec.find(',');
    std::string_view item = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    size_t eq = item.find('=');
    LogLevel level;
    if (eq == std::string_view::npos) {
      if (parseLevel(item, &level)) c.defaultLevel = level;
    } else if (parseLevel(item.substr(eq + 1), &level)) {
      c.modules[std::string(item.substr(0, eq))] = level;
    }
  }
  c.loaded = true;
}

void loadLocked(LogConfig& c) {
  if (c.loaded) return;
  const char* env = std::getenv("TTVM_LOG");
  applySpecLocked(c, env ? env : "");
}

}  // namespace

bool logEnabled(std::string_view module, LogLevel level) {
  LogConfig& c = config();
  std::lock_guard lock(c.mutex);
  loadLocked(c);
  auto it = c.modules.find(module);
  LogLevel limit = it == c.modules.end() ? c.defaultLevel : it->second;
  return static_cast<int>(level) <= static_cast<int>(limit);
}

void logWrite(std::string_view module, LogLevel level, const std::string& message) {
  static const char* kNames[] = {"error", "warn", "info", "debug", "trace"};
  std::fprintf(stderr, "ttvm[%.*s] %s: %s\n", static_cast<int>(module.size()), module.data(),
               kNames[static_cast<int>(level)], message.c_str());
}

void setLogSpec(std::string_view spec) {
  LogConfig& c = config();
  std::lock_guard lock(c.mutex);
  applySpecLocked(c, spec);
}

}  // namespace ttvm
