// Framing of a trace file: preamble, frame headers, trailer, and the
// checked reading of one frame (bounds, caps, checksum, decompression).
// The layout is documented in trace_writer.h and docs/trace-format.md.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ttvm/base/hex.h"
#include "ttvm/base/result.h"
#include "ttvm/formats/trace_types.h"

namespace ttvm::formats {

inline constexpr uint8_t kPreambleMagic[8] = {0x89, 'T', 'T', 'V', 'M', '\r', '\n', 0x1A};
inline constexpr uint8_t kTrailerMagic[8] = {'T', 'T', 'V', 'M', 'E', 'N', 'D', 0};
inline constexpr uint64_t kPreambleBytes = 16;
inline constexpr uint64_t kFrameHeaderBytes = 40;
inline constexpr uint64_t kTrailerBytes = 24;

constexpr uint32_t fourcc(const char (&s)[5]) {
  return uint32_t(uint8_t(s[0])) | uint32_t(uint8_t(s[1])) << 8 | uint32_t(uint8_t(s[2])) << 16 |
         uint32_t(uint8_t(s[3])) << 24;
}
inline constexpr uint32_t kTagHead = fourcc("HEAD");
inline constexpr uint32_t kTagInit = fourcc("INIT");
inline constexpr uint32_t kTagPage = fourcc("PAGE");
inline constexpr uint32_t kTagSnap = fourcc("SNAP");
inline constexpr uint32_t kTagChunk = fourcc("CHNK");
inline constexpr uint32_t kTagFoot = fourcc("FOOT");

inline constexpr uint32_t kCodecStored = 0;
inline constexpr uint32_t kCodecLz4 = 1;

// RAM pages per PAGE frame written (1 MiB of page data); readers accept up to kMaxPagesPerFrame.
inline constexpr uint32_t kPagesPerFrame = 256;
inline constexpr uint32_t kMaxPagesPerFrame = 4096;

struct FrameHeader {
  uint32_t tag = 0;
  uint32_t codec = 0;
  uint32_t storedBytes = 0;  // payload bytes in the file
  uint32_t rawBytes = 0;     // payload bytes after decompression
  uint64_t firstStep = 0;
  uint64_t lastStep = 0;
  uint32_t count = 0;
  uint32_t crc = 0;  // CRC32C of header bytes [0, 36) then the payload
};

std::string tagName(uint32_t tag);
bool isKnownTag(uint32_t tag);
// Largest raw payload accepted for a frame of `tag` (a cap against hostile sizes).
uint64_t maxRawBytes(uint32_t tag);

void encodePreamble(uint8_t out[kPreambleBytes]);
void encodeTrailer(uint64_t footerOffset, uint8_t out[kTrailerBytes]);

// Appends a complete frame (header + payload, LZ4-compressed when that is
// smaller) to `out`.
void appendFrame(uint32_t tag, std::span<const uint8_t> raw, uint64_t firstStep, uint64_t lastStep,
                 uint32_t count, int lz4Acceleration, std::vector<uint8_t>& out);
// The same frame written at the start of `buffer`, which only grows (a
// buffer reused across frames is not zero-filled again); returns its length.
size_t encodeFrame(uint32_t tag, std::span<const uint8_t> raw, uint64_t firstStep,
                   uint64_t lastStep, uint32_t count, int lz4Acceleration,
                   std::vector<uint8_t>& buffer);

// A payload after decompression, 8-byte aligned (Cap'n Proto reads words).
// The buffers only grow, so a payload reused across frames stops allocating.
// The decompression buffer is not zero-filled: a hostile raw size (at most
// 255x the stored size) costs address space, not memory, until LZ4 fails.
struct RawPayload {
  std::unique_ptr<uint64_t[]> words;  // capacityWords words; `bytes` of them valid
  size_t capacityWords = 0;
  size_t bytes = 0;
  std::vector<uint8_t> frame;  // the frame as stored (header + payload)
  uint64_t* data() const { return words.get(); }
  std::span<const uint8_t> span() const {
    return {reinterpret_cast<const uint8_t*>(words.get()), bytes};
  }
};

// An open file read with pread; errors name the path and offset.
class InputFile {
 public:
  InputFile() = default;
  InputFile(int fd, std::string path, uint64_t size)
      : fd_(fd), path_(std::move(path)), size_(size) {}
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }

  // Reads exactly `n` bytes at `offset`; an error names what was expected.
  Status readExact(uint64_t offset, void* out, size_t n, std::string_view what) const;
  // "<path>: byte <offset>: <what>"
  Error errorAt(uint64_t offset, std::string_view what) const;

  // Reads the frame header at `offset` and checks it against the file size
  // and the caps (not the checksum: that needs the payload).
  Result<FrameHeader> readFrameHeader(uint64_t offset) const;
  // Reads the whole frame at `offset`, expecting `tag` (0 = any known tag),
  // verifies its checksum and decompresses its payload into `out`.
  Result<FrameHeader> readFrame(uint64_t offset, uint32_t expectedTag, RawPayload& out) const;

 private:
  int fd_ = -1;
  std::string path_;
  uint64_t size_ = 0;
};

// Opens `path` for reading; the caller closes fd().
Result<InputFile> openInputFile(const std::string& path);

inline void putU16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
}
inline void putU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}
inline void putU64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = uint8_t(v >> (8 * i));
}
inline uint16_t getU16(const uint8_t* p) {
  return uint16_t(p[0] | p[1] << 8);
}
inline uint32_t getU32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
inline uint64_t getU64(const uint8_t* p) {
  return uint64_t(getU32(p)) | uint64_t(getU32(p + 4)) << 32;
}

}  // namespace ttvm::formats
