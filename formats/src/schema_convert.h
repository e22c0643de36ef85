// Conversions between the public value types (trace_types.h) and the Cap'n
// Proto messages of trace.capnp. Readers check every list length; a message
// that does not fit a value type is an error naming `where`.
#pragma once

#include <capnp/message.h>

#include <span>
#include <string>
#include <vector>

#include "trace.capnp.h"
#include "ttvm/base/result.h"
#include "ttvm/formats/trace_types.h"

namespace ttvm::formats {

void toCapnp(const TraceHeader& h, schema::Header::Builder b);
Status fromCapnp(schema::Header::Reader r, TraceHeader& out, const std::string& where);

void toCapnp(const CpuState& s, schema::CpuState::Builder b);
Status fromCapnp(schema::CpuState::Reader r, CpuState& out, const std::string& where);

void toCapnp(const TraceEnd& e, schema::End::Builder b);
Status fromCapnp(schema::End::Reader r, TraceEnd& out, const std::string& where);

// Serializes a message in the standard stream framing (segment table + segments).
void serializeMessage(capnp::MessageBuilder& message, std::vector<uint8_t>& out);

// ReaderOptions for a message of `bytes` bytes: each word may be visited at
// most twice (no amplification through shared pointers) and nesting is shallow.
capnp::ReaderOptions readerOptionsFor(size_t bytes);

// Runs `fn` and turns a Cap'n Proto exception (a malformed message) into an
// error naming `where`.
template <typename Fn>
Status guardCapnp(const std::string& where, Fn&& fn) {
  try {
    return fn();
  } catch (const kj::Exception& e) {
    return makeError(where + ": malformed message: " + std::string(e.getDescription().cStr()));
  }
}

}  // namespace ttvm::formats

namespace ttvm::formats {

// Appends a FOOT frame for this index and end of run to `out`.
void appendFooterFrame(uint64_t headerOffset, uint64_t initOffset,
                       const std::vector<ChunkInfo>& chunks,
                       const std::vector<SnapshotInfo>& snapshots, const TraceEnd& end,
                       const TraceId& traceId, std::vector<uint8_t>& out);

// Appends an INIT or SNAP frame and the PAGE frames of `ram` to `out`; the
// state message carries the trace's id, its sequence number (0 INIT, k for
// the k-th snapshot) and the CRC32C of its PAGE frames' raw payloads.
// Errors when the page list is malformed (numbers not increasing, sizes).
Status appendMachineStateFrames(uint32_t tag, uint64_t step, const CpuState& cpu,
                                const RamPages& ram, const std::vector<uint8_t>& deviceState,
                                const TraceId& traceId, uint64_t sequence, int lz4Acceleration,
                                std::vector<uint8_t>& out);

// Writes all of `data` to `fd`; the error names `path`.
Status writeAll(int fd, const std::string& path, std::span<const uint8_t> data);

}  // namespace ttvm::formats
