// An argument vector for the command-line parsers' tests: owns its strings
// and hands out the char* span the subcommands receive (args[0] = the name).
#pragma once

#include <initializer_list>
#include <span>
#include <string>
#include <vector>

namespace ttvm::cli {

class Argv {
 public:
  Argv(std::initializer_list<const char*> args) : strings_(args.begin(), args.end()) {
    for (std::string& s : strings_) pointers_.push_back(s.data());
  }
  // The pointers point into strings_: not copyable.
  Argv(const Argv&) = delete;
  Argv& operator=(const Argv&) = delete;
  std::span<char* const> span() const { return pointers_; }

 private:
  std::vector<std::string> strings_;
  std::vector<char*> pointers_;
};

}  // namespace ttvm::cli
