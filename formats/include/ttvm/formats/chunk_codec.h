// EventChunkCodec: a batch of events <-> the raw (uncompressed) payload of a
// CHNK frame, an EventChunk message of trace.capnp stored by column. The
// writer and reader use it; it is public so that tests, the fuzz target and
// the benchmark can exercise the codec without files.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "ttvm/base/result.h"
#include "ttvm/formats/trace_types.h"

namespace ttvm {

// Empty when `e` is well-formed: a valid kind, a size the kind allows, a
// value that fits that size, and zero in every field the kind does not use
// (so that it round-trips exactly). Otherwise what is wrong.
std::string checkEvent(const TraceEvent& e);

class EventChunkCodec {
 public:
  // Encodes `events` (at least one, steps non-decreasing, each well-formed:
  // asserted, a violation is a recorder bug) into `out`.
  // `sectors` holds the bytes of the kDiskSector events: event e's 512 bytes
  // are sectors[e.count * 512, +512) (asserted to be there).
  void encode(std::span<const TraceEvent> events, std::vector<uint8_t>& out);
  void encode(std::span<const TraceEvent> events, std::span<const uint8_t> sectors,
              std::vector<uint8_t>& out);
  // The same bytes, handed to `sink` without a copy: they live in the
  // codec's message buffer and are valid during the call only.
  void encode(std::span<const TraceEvent> events,
              const std::function<void(std::span<const uint8_t>)>& sink);
  void encode(std::span<const TraceEvent> events, std::span<const uint8_t> sectors,
              const std::function<void(std::span<const uint8_t>)>& sink);

  // The trace id and sequence number the next encode() writes (format 1.1).
  void setIdentity(const ChunkIdentity& identity) { identity_ = identity; }
  // Decodes a raw payload into `out` (replacing its contents) and, when
  // asked, the chunk's identity (empty in 1.0 chunks). The kDiskSector
  // events' bytes go to `sectors` (replaced; skipped when null) in event
  // order, and each such event's count is its index there. Errors are
  // prefixed with `where` (e.g. "t.ttvm: CHNK frame at byte 4096").
  static Status decode(std::span<const uint8_t> raw, const std::string& where,
                       std::vector<TraceEvent>& out, ChunkIdentity* identity = nullptr,
                       std::vector<uint8_t>* sectors = nullptr);
  // Only the identity, without decoding the events (the reader's scan).
  static Result<ChunkIdentity> identity(std::span<const uint8_t> raw, const std::string& where);

  // The size of the same message in Cap'n Proto's packed encoding (for the
  // benchmark's comparison with LZ4).
  static Result<size_t> packedSize(std::span<const uint8_t> raw);

 private:
  // The message is built in place: a first pass sizes the columns, the
  // message's one segment is allocated in `message_` (zero while unused:
  // Cap'n Proto zeroes it again when the builder goes), a second pass
  // writes each event's fields straight into the column lists. message_[0]
  // is the serialized form's segment table.
  std::vector<uint64_t> message_;
  ChunkIdentity identity_;
};

}  // namespace ttvm
