#include "replay_options.h"

#include <cstdio>

#include "ttvm/replayer/kvm_steps.h"

namespace ttvm::cli {

Result<ReplayArgs> parseReplayArgs(std::span<char* const> args, std::vector<Option> own) {
  ReplayArgs out;
  own.push_back(sizeOption("--checkpoint-mem", out.replay.checkpointMem));
  own.push_back(listOption("--symbols", out.replay.symbolFiles));
  own.push_back(engineOption("--engine", out.replay.engine));
  auto parsed = parseTraceArgs(args, own);
  if (!parsed.ok()) return parsed.error();
  out.help = parsed->help;
  out.replay.trace = parsed->trace;
  return out;
}

void printTraceNotes(const TraceReader& reader, const char* command) {
  if (std::string note = reader.newerFormatNote(); !note.empty())
    std::fprintf(stderr, "%s: note: %s\n", command, note.c_str());
  if (reader.header().slice)
    std::fprintf(stderr, "%s: note: %s is %s\n", command, reader.path().c_str(),
                 describeSlice(*reader.header().slice).c_str());
}

Result<OpenReplay> openReplay(const ReplayOptions& options, const char* command) {
  std::string kvmNote;
  auto reader = openForReplay(options.trace, &kvmNote);
  if (!reader.ok()) return reader.error();
  if (!kvmNote.empty()) std::fprintf(stderr, "%s: note: %s\n", command, kvmNote.c_str());
  OpenReplay out;
  out.reader = std::make_unique<TraceReader>(std::move(reader).value());
  if (out.reader->recovered())
    std::fprintf(stderr, "%s: note: %s\n", command, out.reader->recoveryNote().c_str());
  printTraceNotes(*out.reader, command);
  TimelineOptions to;
  to.checkpointMemBytes = options.checkpointMem;
  to.engine = options.engine;
  auto timeline = Timeline::open(*out.reader, to);
  if (!timeline.ok()) return timeline.error();
  out.timeline = std::move(timeline).value();
  out.timeline->setEngineFallbackHandler([command](const EngineFallback& f) {
    std::fprintf(stderr,
                 "%s: %s%s: the replay goes on with the reference engine (`--engine reference` "
                 "runs it from the start)\n",
                 command, f.describe().c_str(), command);
  });
  for (const std::string& f : options.symbolFiles)
    if (Status st = out.timeline->addSymbolFile(f); !st.ok())
      return makeError("--symbols " + st.error().message);
  return out;
}

}  // namespace ttvm::cli
