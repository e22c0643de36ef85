// ttvm info trace.ttvm [--json]: what a trace holds (header, machine, guest
// images, events by kind, steps covered, end of run, sizes).
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "cli_args.h"
#include "commands.h"
#include "ttvm/formats/trace_reader.h"

namespace ttvm::cli {
namespace {

std::string jsonString(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string_view backendName(Backend b) {
  return b == Backend::kKvm ? "kvm" : "emulator";
}

std::string_view imageFormatName(ImageFormat f) {
  switch (f) {
    case ImageFormat::kFlat: return "flat";
    case ImageFormat::kElf32: return "elf32";
    case ImageFormat::kElf64: return "elf64";
    case ImageFormat::kMultiboot: return "multiboot";
    case ImageFormat::kBootSector: return "boot-sector";
    case ImageFormat::kLinux: return "linux-bzimage";
  }
  return "unknown";
}

struct EventStats {
  uint64_t byKind[kNumEventKinds] = {};
  uint64_t total = 0;
  uint64_t firstStep = 0;
  uint64_t lastStep = 0;
  std::string error;  // the first chunk that could not be read
};

EventStats countEvents(const TraceReader& r) {
  EventStats s;
  std::vector<TraceEvent> events;
  for (size_t i = 0; i < r.chunkCount(); ++i) {
    Status st = r.readChunkInto(i, events);
    if (!st.ok()) {
      s.error = st.error().message;
      break;
    }
    for (const TraceEvent& e : events) ++s.byKind[static_cast<uint8_t>(e.kind)];
    if (s.total == 0) s.firstStep = events.front().step;
    s.lastStep = events.back().step;
    s.total += events.size();
  }
  return s;
}

const char* kInfoHelp =
    "usage: ttvm info [--json] <trace.ttvm>\n\n"
    "Describes a trace: header, machine, guest images, events by kind, steps\n"
    "covered, how the run ended, file size and compression ratio. Every frame's\n"
    "checksum is verified first (snapshots included).\n"
    "  --json   print one JSON object instead of text\n\n"
    "Exit status: 0 a complete trace, every frame checked; 1 unreadable or damaged\n"
    "(the error names the byte offset); 2 bad arguments; 3 no footer: the\n"
    "readable prefix is described (`ttvm recover` completes it).\n";

void printText(const TraceReader& r, const EventStats& ev) {
  const TraceHeader& h = r.header();
  std::printf("trace      %s\n", r.path().c_str());
  std::printf("format     %u.%u, written by ttvm %s\n", h.formatMajor, h.formatMinor,
              h.ttvmVersion.c_str());
  if (h.slice)
    std::printf("slice      %s; source trace id %016" PRIx64 "%016" PRIx64 ", %" PRIu64 " bytes\n",
                describeSlice(*h.slice).c_str(), h.slice->sourceTraceId.hi,
                h.slice->sourceTraceId.lo, h.slice->sourceBytes);
  std::printf("recorded   %s on %s, backend %.*s\n", utcTimeText(h.createdUnixNs).c_str(),
              h.host.c_str(), static_cast<int>(backendName(h.backend).size()),
              backendName(h.backend).data());
  std::printf("machine    RAM %" PRIu64 " MiB, TSC %.3f GHz, clock starts %s\n",
              h.machine.ramBytes >> 20, static_cast<double>(h.machine.tscHz) / 1e9,
              utcTimeText(h.machine.startClockUnixNs).c_str());
  std::string devices;
  for (const std::string& d : h.machine.devices) devices += (devices.empty() ? "" : ", ") + d;
  std::printf("devices    %s\n", devices.empty() ? "(none)" : devices.c_str());
  if (!h.replayedDevices.empty()) {
    std::string replayed;
    for (const std::string& d : h.replayedDevices) replayed += (replayed.empty() ? "" : ", ") + d;
    // A list that starts with the clock is the whole machine (format 1.3).
    if (h.replayedDevices.front() == "clock")
      std::printf("replayed   the whole machine: %s (the trace holds only outside input)\n",
                  replayed.c_str());
    else
      std::printf("replayed   %s (replay runs them; their port accesses are not in the trace)\n",
                  replayed.c_str());
  }
  if (!h.emulatedPages.empty())
    std::printf(
        "emulated   %zu pages run by ttvm's emulator under KVM (they hold RDTSC/RDTSCP, "
        "whose values are in the trace), first 0x%" PRIx64 "\n",
        h.emulatedPages.size(), h.emulatedPages.front() * kPageSize);
  if (!h.machine.cmdline.empty()) std::printf("cmdline    %s\n", h.machine.cmdline.c_str());
  std::printf("cpu model  %s (%s), %zu CPUID leaves, %zu model MSRs\n", h.cpuModel.name.c_str(),
              h.cpuModel.vendor == CpuVendor::kAmd ? "AMD" : "Intel", h.cpuModel.cpuid.size(),
              h.modelMsrs.size());
  // Where the vendors differ, what the CPU that ran the guest did (a KVM
  // recording on an AMD host shows an Intel model but ran on AMD).
  if (h.cpuModel.pushSegmentZeroExtends || h.cpuModel.sysretSkipsRipCheckAndSsCache)
    std::printf("  behaves as AMD:%s%s\n",
                h.cpuModel.pushSegmentZeroExtends ? " PUSH Sreg zero-extends;" : "",
                h.cpuModel.sysretSkipsRipCheckAndSsCache
                    ? " SYSRET as the APM (no RCX check, SS's hidden parts kept);"
                    : "");
  std::printf("images     %zu\n", h.images.size());
  for (const GuestImage& g : h.images)
    std::printf("  %-20s %-11.*s load 0x%" PRIx64 " entry 0x%" PRIx64 ", %zu bytes, %zu symbols\n",
                g.name.c_str(), static_cast<int>(imageFormatName(g.format).size()),
                imageFormatName(g.format).data(), g.loadAddress, g.entry, g.bytes.size(),
                g.symbols.size());
  const char* unit = h.backend == Backend::kKvm ? "exits" : "steps";
  if (ev.total)
    std::printf("events     %" PRIu64 " in %zu chunks, %s %" PRIu64 "..%" PRIu64 "\n", ev.total,
                r.chunkCount(), unit, ev.firstStep, ev.lastStep);
  else
    std::printf("events     none\n");
  for (int k = 1; k < kNumEventKinds; ++k)
    if (ev.byKind[k]) {
      const auto name = eventKindName(static_cast<EventKind>(k));
      std::printf("  %-16.*s %" PRIu64 "\n", static_cast<int>(name.size()), name.data(),
                  ev.byKind[k]);
    }
  std::printf("snapshots  %zu", r.snapshots().size());
  for (size_t i = 0; i < r.snapshots().size() && i < 8; ++i)
    std::printf("%s%" PRIu64, i ? ", " : " at ", r.snapshots()[i].step);
  std::printf("%s\n", r.snapshots().size() > 8 ? ", ..." : "");
  if (r.end()) {
    const TraceEnd& e = *r.end();
    const auto reason = endReasonName(e.reason);
    std::printf("end        %.*s", static_cast<int>(reason.size()), reason.data());
    if (e.reason == EndReason::kExitDevice) std::printf(" (status %u)", e.exitStatus);
    std::printf(" after %" PRIu64 " %s, final rip 0x%" PRIx64 ", digest 0x%016" PRIx64 "\n",
                e.steps, unit, e.finalCpu.rip, e.finalDigest);
    if (!e.message.empty()) std::printf("           %s\n", e.message.c_str());
  } else {
    std::printf("end        unknown: the trace has no footer (see 'ttvm recover')\n");
  }
  const uint64_t raw = r.rawEventBytes();
  const uint64_t comp = r.compressedEventBytes();
  std::printf("size       %" PRIu64 " bytes; events %" PRIu64 " bytes compressed, %" PRIu64
              " raw (%.1f:1), %.2f bytes/event\n",
              r.fileBytes(), comp, raw, comp ? static_cast<double>(raw) / comp : 0.0,
              ev.total ? static_cast<double>(comp) / ev.total : 0.0);
}

void printJson(const TraceReader& r, const EventStats& ev) {
  const TraceHeader& h = r.header();
  std::printf("{\n  \"path\": %s,\n", jsonString(r.path()).c_str());
  std::printf("  \"format\": \"%u.%u\",\n  \"ttvmVersion\": %s,\n  \"host\": %s,\n", h.formatMajor,
              h.formatMinor, jsonString(h.ttvmVersion).c_str(), jsonString(h.host).c_str());
  std::printf("  \"backend\": \"%.*s\",\n  \"createdUnixNs\": %" PRId64 ",\n",
              static_cast<int>(backendName(h.backend).size()), backendName(h.backend).data(),
              h.createdUnixNs);
  std::printf("  \"machine\": {\"ramBytes\": %" PRIu64 ", \"tscHz\": %" PRIu64
              ", \"startClockUnixNs\": %" PRId64 ", \"cmdline\": %s, \"devices\": [",
              h.machine.ramBytes, h.machine.tscHz, h.machine.startClockUnixNs,
              jsonString(h.machine.cmdline).c_str());
  for (size_t i = 0; i < h.machine.devices.size(); ++i)
    std::printf("%s%s", i ? ", " : "", jsonString(h.machine.devices[i]).c_str());
  std::printf("], \"replayedDevices\": [");
  for (size_t i = 0; i < h.replayedDevices.size(); ++i)
    std::printf("%s%s", i ? ", " : "", jsonString(h.replayedDevices[i]).c_str());
  std::printf("], \"emulatedPages\": [");
  for (size_t i = 0; i < h.emulatedPages.size(); ++i)
    std::printf("%s%" PRIu64, i ? ", " : "", h.emulatedPages[i]);
  std::printf(
      "]},\n  \"cpuModel\": {\"name\": %s, \"vendor\": \"%s\", \"cpuidLeaves\": %zu, "
      "\"modelMsrs\": %zu, \"pushSegmentZeroExtends\": %s, "
      "\"sysretSkipsRipCheckAndSsCache\": %s},\n",
      jsonString(h.cpuModel.name).c_str(), h.cpuModel.vendor == CpuVendor::kAmd ? "amd" : "intel",
      h.cpuModel.cpuid.size(), h.modelMsrs.size(),
      h.cpuModel.pushSegmentZeroExtends ? "true" : "false",
      h.cpuModel.sysretSkipsRipCheckAndSsCache ? "true" : "false");
  if (h.slice)
    std::printf(
        "  \"slice\": {\"source\": %s, \"sourceTraceId\": \"%016" PRIx64 "%016" PRIx64
        "\", \"fromStep\": %" PRIu64 ", \"toStep\": %" PRIu64 ", \"sourceEndStep\": %" PRIu64
        ", \"sourceBytes\": %" PRIu64 ", \"partialRam\": %s},\n",
        jsonString(h.slice->sourceName).c_str(), h.slice->sourceTraceId.hi,
        h.slice->sourceTraceId.lo, h.slice->fromStep, h.slice->toStep, h.slice->sourceEndStep,
        h.slice->sourceBytes, h.slice->partialRam ? "true" : "false");
  std::printf("  \"images\": [");
  for (size_t i = 0; i < h.images.size(); ++i) {
    const GuestImage& g = h.images[i];
    std::printf("%s\n    {\"name\": %s, \"format\": \"%.*s\", \"loadAddress\": %" PRIu64
                ", \"entry\": %" PRIu64 ", \"bytes\": %zu, \"symbols\": %zu}",
                i ? "," : "", jsonString(g.name).c_str(),
                static_cast<int>(imageFormatName(g.format).size()),
                imageFormatName(g.format).data(), g.loadAddress, g.entry, g.bytes.size(),
                g.symbols.size());
  }
  std::printf("],\n  \"events\": {\"total\": %" PRIu64 ", \"chunks\": %zu, \"firstStep\": %" PRIu64
              ", \"lastStep\": %" PRIu64 ", \"byKind\": {",
              ev.total, r.chunkCount(), ev.firstStep, ev.lastStep);
  bool first = true;
  for (int k = 1; k < kNumEventKinds; ++k)
    if (ev.byKind[k]) {
      const auto name = eventKindName(static_cast<EventKind>(k));
      std::printf("%s\"%.*s\": %" PRIu64, first ? "" : ", ", static_cast<int>(name.size()),
                  name.data(), ev.byKind[k]);
      first = false;
    }
  std::printf("}},\n  \"snapshots\": [");
  for (size_t i = 0; i < r.snapshots().size(); ++i)
    std::printf("%s%" PRIu64, i ? ", " : "", r.snapshots()[i].step);
  std::printf("],\n");
  if (r.end()) {
    const TraceEnd& e = *r.end();
    const auto reason = endReasonName(e.reason);
    std::printf("  \"end\": {\"reason\": \"%.*s\", \"exitStatus\": %u, \"steps\": %" PRIu64
                ", \"finalRip\": %" PRIu64 ", \"finalDigest\": \"0x%016" PRIx64
                "\", \"message\": %s},\n",
                static_cast<int>(reason.size()), reason.data(), e.exitStatus, e.steps,
                e.finalCpu.rip, e.finalDigest, jsonString(e.message).c_str());
  } else {
    std::printf("  \"end\": null,\n");
  }
  std::printf("  \"recovered\": %s,\n  \"recoveryNote\": %s,\n", r.recovered() ? "true" : "false",
              jsonString(r.recoveryNote()).c_str());
  const uint64_t raw = r.rawEventBytes();
  const uint64_t comp = r.compressedEventBytes();
  std::printf("  \"size\": {\"fileBytes\": %" PRIu64 ", \"compressedEventBytes\": %" PRIu64
              ", \"rawEventBytes\": %" PRIu64
              ", \"compressionRatio\": %.3f, \"bytesPerEvent\": "
              "%.3f},\n",
              r.fileBytes(), comp, raw, comp ? static_cast<double>(raw) / comp : 0.0,
              ev.total ? static_cast<double>(comp) / ev.total : 0.0);
  std::printf("  \"error\": %s\n}\n", ev.error.empty() ? "null" : jsonString(ev.error).c_str());
}

}  // namespace

int cmdInfo(std::span<char* const> args) {
  bool json = false;
  const Option options[] = {flagOption("--json", json)};
  auto parsed = parseTraceArgs(args, options);
  if (auto status = earlyExit(parsed, "ttvm info", kInfoHelp)) return *status;
  const std::string& path = parsed->trace;
  auto r = TraceReader::open(path);
  if (!r.ok()) {
    std::fprintf(stderr, "ttvm info: %s\n", r.error().message.c_str());
    return 1;
  }
  // Every frame, snapshots included: a damaged file is refused, not described.
  if (Status frames = r->checkAllFrames(); !frames.ok()) {
    std::fprintf(stderr, "ttvm info: damaged trace: %s\n", frames.error().message.c_str());
    return 1;
  }
  if (r->recovered()) std::fprintf(stderr, "ttvm info: note: %s\n", r->recoveryNote().c_str());
  if (std::string note = r->newerFormatNote(); !note.empty())
    std::fprintf(stderr, "ttvm info: note: %s\n", note.c_str());
  const EventStats ev = countEvents(*r);
  if (json)
    printJson(*r, ev);
  else
    printText(*r, ev);
  if (!ev.error.empty()) {
    std::fprintf(stderr, "ttvm info: %s\n", ev.error.c_str());
    return 1;
  }
  return r->recovered() ? 3 : 0;
}

}  // namespace ttvm::cli
