// `ttvm record`'s disk options: `--disk FILE` (repeatable, IDE order) and
// QEMU's spelling `--drive file=FILE[,format=raw][,if=ide][,index=N][,media=disk]`.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ttvm/base/result.h"

namespace ttvm {
namespace machine {
class Machine;
}  // namespace machine
}  // namespace ttvm

namespace ttvm::cli {

struct DiskSpec {
  std::string path;
  std::optional<unsigned> index;  // IDE slot (0 primary master ... 3 secondary slave)
};

// Parses the value of --drive. Refuses other formats than raw, other
// interfaces than ide, other media than disk, and unknown keys.
Result<DiskSpec> parseDriveOption(const std::string& value);

// Opens every disk and attaches it: a spec with an index takes that slot,
// the others take the free slots in order. Errors name the file (missing,
// a directory, a size that is not whole sectors) or the slot (taken, or more
// than four disks).
Status attachDisks(machine::Machine& m, const std::vector<DiskSpec>& specs);

}  // namespace ttvm::cli
