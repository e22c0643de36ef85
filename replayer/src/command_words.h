// Parsing the text commands that the gdb stub's `monitor` and the DAP
// server's Debug Console share: words and plain numbers.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

namespace ttvm {

// A number (decimal, 0x hex, C notation); nullopt for anything else.
inline std::optional<uint64_t> parseNumber(const std::string& s) {
  if (s.empty() || s[0] == '-') return std::nullopt;
  char* end = nullptr;
  const uint64_t v = std::strtoull(s.c_str(), &end, 0);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return v;
}

// The words of `s`, separated by runs of spaces.
inline std::vector<std::string> splitWords(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

}  // namespace ttvm
