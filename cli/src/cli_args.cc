#include "cli_args.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "ttvm/replayer/timeline.h"

namespace ttvm::cli {

bool parseU64(const std::string& s, uint64_t& out) {
  if (s.empty() || s[0] == '-') return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtoull(s.c_str(), &end, 0);
  return errno == 0 && end != nullptr && *end == '\0';
}

bool parseSize(const std::string& s, uint64_t& out) {
  if (s.empty() || s[0] == '-') return false;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || end == s.c_str() || v < 0) return false;
  const std::string suffix(end);
  uint64_t mul = 1;
  if (suffix == "K" || suffix == "k" || suffix == "KiB")
    mul = 1ull << 10;
  else if (suffix == "M" || suffix == "m" || suffix == "MiB")
    mul = 1ull << 20;
  else if (suffix == "G" || suffix == "g" || suffix == "GiB")
    mul = 1ull << 30;
  else if (!suffix.empty() && suffix != "B")
    return false;
  out = static_cast<uint64_t>(v * static_cast<double>(mul));
  return true;
}

bool loadSymbolFiles(Timeline& timeline, const std::vector<std::string>& files,
                     const char* command) {
  for (const std::string& f : files) {
    Status st = timeline.addSymbolFile(f);
    if (!st.ok()) {
      std::fprintf(stderr, "%s: --symbols %s\n", command, st.error().message.c_str());
      return false;
    }
  }
  return true;
}

}  // namespace ttvm::cli
