#include "disk_options.h"

#include "cli_args.h"
#include "ttvm/machine/disk_image.h"
#include "ttvm/machine/machine.h"

namespace ttvm::cli {
using ttvm::machine::DiskImage;
using ttvm::machine::Machine;

Result<DiskSpec> parseDriveOption(const std::string& value) {
  DiskSpec spec;
  size_t pos = 0;
  while (pos <= value.size()) {
    const size_t comma = value.find(',', pos);
    const std::string item =
        value.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? value.size() + 1 : comma + 1;
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq);
    const std::string val = eq == std::string::npos ? std::string() : item.substr(eq + 1);
    if (key == "file" && !val.empty()) {
      spec.path = val;
    } else if (key == "format") {
      if (val != "raw")
        return makeError("--drive format=" + val + ": ttvm reads raw images only (format=raw)");
    } else if (key == "if") {
      if (val != "ide")
        return makeError("--drive if=" + val + ": ttvm has IDE disks only (if=ide)");
    } else if (key == "media") {
      if (val != "disk") return makeError("--drive media=" + val + ": only media=disk");
    } else if (key == "index") {
      uint64_t n = 0;
      if (!parseU64(val, n) || n >= Machine::kDiskSlots)
        return makeError("--drive index=" + val + ": an IDE slot from 0 to 3");
      spec.index = static_cast<unsigned>(n);
    } else {
      return makeError("--drive: '" + item +
                       "' is not understood (use file=FILE[,format=raw][,if=ide][,index=N])");
    }
  }
  if (spec.path.empty()) return makeError("--drive '" + value + "' has no file=FILE");
  return spec;
}

Status attachDisks(Machine& machine, const std::vector<DiskSpec>& specs) {
  if (specs.size() > Machine::kDiskSlots)
    return makeError(std::to_string(specs.size()) + " disks given; ttvm's IDE controller takes " +
                     std::to_string(Machine::kDiskSlots) +
                     " (primary and secondary channel, master and slave): " + specs.back().path +
                     " has no place");
  std::vector<const DiskSpec*> order(Machine::kDiskSlots, nullptr);
  for (const DiskSpec& s : specs) {
    if (!s.index) continue;
    if (order[*s.index] != nullptr)
      return makeError("IDE slot " + std::to_string(*s.index) + " given twice (" +
                       order[*s.index]->path + " and " + s.path + ")");
    order[*s.index] = &s;
  }
  unsigned next = 0;
  for (const DiskSpec& s : specs) {
    if (s.index) continue;
    while (order[next] != nullptr) ++next;
    order[next] = &s;
  }
  for (unsigned slot = 0; slot < Machine::kDiskSlots; ++slot) {
    if (order[slot] == nullptr) continue;
    auto disk = DiskImage::open(order[slot]->path);
    if (!disk) return disk.error();
    TTVM_TRY(machine.attachDisk(slot, std::move(*disk)));
  }
  return {};
}

}  // namespace ttvm::cli
