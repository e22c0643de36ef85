#include "cli_args.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <sstream>

#include "ttvm/emulator/cpu_models.h"

namespace ttvm::cli {

bool parseU64(const std::string& s, uint64_t& out) {
  if (s.empty() || s[0] == '-' || s[0] == '+' || std::isspace(static_cast<unsigned char>(s[0])))
    return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtoull(s.c_str(), &end, 0);
  return errno == 0 && end != s.c_str() && *end == '\0';
}

bool parseSize(const std::string& s, uint64_t& out) {
  // The number, as an integer part and (decimal only) a fraction, parsed
  // exactly: strtod would round 2^64-1 up to 2^64 and overflow the cast.
  size_t pos = 0;
  uint64_t whole = 0;
  uint64_t fracNum = 0, fracDen = 1;
  const bool hex = s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
  if (hex) {
    pos = 2;
    const size_t first = pos;
    for (; pos < s.size() && std::isxdigit(static_cast<unsigned char>(s[pos])); ++pos) {
      const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(s[pos])));
      const uint64_t d =
          c <= '9' ? static_cast<uint64_t>(c - '0') : static_cast<uint64_t>(c - 'a' + 10);
      if (whole > (UINT64_MAX - d) / 16) return false;
      whole = whole * 16 + d;
    }
    if (pos == first) return false;
  } else {
    const size_t first = pos;
    for (; pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos])); ++pos) {
      const uint64_t d = static_cast<uint64_t>(s[pos] - '0');
      if (whole > (UINT64_MAX - d) / 10) return false;
      whole = whole * 10 + d;
    }
    bool digits = pos != first;
    if (pos < s.size() && s[pos] == '.') {
      ++pos;
      for (; pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos])); ++pos) {
        digits = true;
        if (fracDen > UINT64_MAX / 100) {  // beyond 18 digits: only zeros are whole bytes
          if (s[pos] != '0') return false;
          continue;
        }
        fracNum = fracNum * 10 + static_cast<uint64_t>(s[pos] - '0');
        fracDen *= 10;
      }
    }
    if (!digits) return false;
  }
  const std::string suffix = s.substr(pos);
  unsigned shift = 0;
  if (suffix == "K" || suffix == "k" || suffix == "KiB")
    shift = 10;
  else if (suffix == "M" || suffix == "m" || suffix == "MiB")
    shift = 20;
  else if (suffix == "G" || suffix == "g" || suffix == "GiB")
    shift = 30;
  else if (suffix == "T" || suffix == "t" || suffix == "TiB")
    shift = 40;
  else if (!suffix.empty() && suffix != "B")
    return false;
  if (whole > (UINT64_MAX >> shift)) return false;
  // fracNum / fracDen of 2^shift bytes must be a whole number of bytes: in
  // lowest terms the denominator must be a power of two no larger than 2^shift.
  const uint64_t g = std::gcd(fracNum, fracDen);
  const uint64_t num = fracNum / g, den = fracDen / g;
  if ((den & (den - 1)) != 0 || den > (uint64_t{1} << shift)) return false;
  const uint64_t extra = num * ((uint64_t{1} << shift) / den);  // < 2^shift
  const uint64_t base = whole << shift;
  if (base > UINT64_MAX - extra) return false;
  out = base + extra;
  return true;
}

bool parseSeconds(const std::string& s, double max, double& out) {
  if (s.empty() || s[0] == '-' || s[0] == '+' || std::isspace(static_cast<unsigned char>(s[0])))
    return false;
  // Decimal only: strtod would also take "nan", "inf" and hex floats.
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.' && c != 'e' && c != 'E' &&
        c != '-' && c != '+')
      return false;
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(s.c_str(), &end);
  if (errno != 0 || end == s.c_str() || *end != '\0' || !std::isfinite(d) || d < 0 || d > max)
    return false;
  out = d;
  return true;
}

Option flagOption(std::string_view name, bool& out) {
  return Option{name, {}, false, [&out](const std::string&) {
                  out = true;
                  return Status();
                }};
}

Option listOption(std::string_view name, std::vector<std::string>& out) {
  return Option{name, {}, true, [&out](const std::string& v) {
                  out.push_back(v);
                  return Status();
                }};
}

std::optional<CpuEngine> parseEngine(std::string_view text) {
  if (text == "fast") return CpuEngine::kFast;
  if (text == "reference") return CpuEngine::kReference;
  return std::nullopt;
}

Option engineOption(std::string_view name, CpuEngine& out) {
  return Option{name, {}, true, [&out](const std::string& v) -> Status {
                  const std::optional<CpuEngine> e = parseEngine(v);
                  if (!e) return makeError("is not an engine (fast or reference)");
                  out = *e;
                  return Status();
                }};
}

Result<CpuModel> cpuModelOnThisHost(std::string_view name) {
  return cpuModelNamed(name, []() -> Result<std::vector<CpuidLeaf>> {
    const char* file = std::getenv("TTVM_HOST_CPUID");
    if (file == nullptr || *file == '\0') return readHostCpuid();
    std::ifstream in(file, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) return makeError(std::string("TTVM_HOST_CPUID: cannot read '") + file + "'");
    return parseCpuidTable(text.str(), file);
  });
}

Option cpuModelOption(std::string_view name, CpuModel& out) {
  return Option{
      name, {}, true, [&out](const std::string& v) -> Status {
        const bool known = std::any_of(std::begin(kCpuModelChoices), std::end(kCpuModelChoices),
                                       [&](const CpuModelChoice& c) { return v == c.name; });
        if (!known)
          return makeError("is not a CPU model; the models are:" + describeCpuModelChoices());
        Result<CpuModel> m = cpuModelOnThisHost(v);
        if (!m) return makeError("failed: " + m.error().message);
        out = std::move(*m);
        return Status();
      }};
}

Option sizeOption(std::string_view name, uint64_t& out) {
  return Option{name, {}, true, [&out](const std::string& v) -> Status {
                  if (!parseSize(v, out)) return makeError("is not a size (e.g. 512M)");
                  return Status();
                }};
}

Option numberOption(std::string_view name, uint64_t& out, uint64_t max) {
  return Option{name, {}, true, [&out, max](const std::string& v) -> Status {
                  uint64_t n = 0;
                  if (!parseU64(v, n) || n > max)
                    return makeError("is not a number in 0.." + std::to_string(max));
                  out = n;
                  return Status();
                }};
}

Result<TraceArgs> parseTraceArgs(std::span<char* const> args, std::span<const Option> options) {
  TraceArgs out;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string a = args[i];
    if (a == "-h" || a == "--help") {
      out.help = true;
      return out;
    }
    if (a.empty() || a[0] != '-') {
      if (!out.trace.empty())
        return makeError("more than one trace given ('" + out.trace + "', '" + a + "')");
      out.trace = a;
      continue;
    }
    const Option* o = nullptr;
    for (const Option& c : options)
      if (a == c.name || (!c.alias.empty() && a == c.alias)) o = &c;
    if (o == nullptr) return makeError("unknown option '" + a + "'");
    std::string value;
    if (o->hasValue) {
      if (i + 1 >= args.size()) return makeError(a + " needs a value");
      value = args[++i];
    }
    if (Status st = o->take(value); !st.ok())
      return makeError(a + " '" + value + "' " + st.error().message);
  }
  if (out.trace.empty()) return makeError("no TRACE given");
  return out;
}

int usageError(const char* command, const Error& error, const char* help) {
  std::fprintf(stderr, "%s: %s\n\n%s", command, error.message.c_str(), help);
  return kExitTraceUsage;
}

}  // namespace ttvm::cli
