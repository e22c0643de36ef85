#include <cstdio>
#include "commands.h"
namespace ttvm::cli {
int cmdInfo(std::span<char* const>) { std::fprintf(stderr, "ttvm info: not built yet\n"); return 1; }
int cmdRecover(std::span<char* const>) { std::fprintf(stderr, "ttvm recover: not built yet\n"); return 1; }
}
