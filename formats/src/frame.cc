#include "frame.h"

#include <fcntl.h>
#include <lz4.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "crc32c.h"

namespace ttvm::formats {

std::string tagName(uint32_t tag) {
  std::string s;
  for (int i = 0; i < 4; ++i) {
    char c = static_cast<char>(tag >> (8 * i));
    if (c < 0x20 || c > 0x7e) return hex(tag);
    s += c;
  }
  return s;
}

bool isKnownTag(uint32_t tag) {
  return tag == kTagHead || tag == kTagInit || tag == kTagPage || tag == kTagSnap ||
         tag == kTagChunk || tag == kTagFoot;
}

uint64_t maxRawBytes(uint32_t tag) {
  if (tag == kTagChunk) return 64ull << 20;  // the writer makes a few hundred KiB
  if (tag == kTagPage) return uint64_t{kMaxPagesPerFrame} * (8 + 4096);
  if (tag == kTagInit || tag == kTagSnap) return 64ull << 20;  // CPU state + device state
  return 1ull << 31;  // HEAD (holds guest images) and FOOT (chunk index)
}

void encodePreamble(uint8_t out[kPreambleBytes]) {
  std::memcpy(out, kPreambleMagic, 8);
  putU16(out + 8, kTraceFormatMajor);
  putU16(out + 10, kTraceFormatMinor);
  putU32(out + 12, 0);
}

void encodeTrailer(uint64_t footerOffset, uint8_t out[kTrailerBytes]) {
  putU64(out, footerOffset);
  putU32(out + 8, crc32c(0, out, 8));
  putU32(out + 12, 0);
  std::memcpy(out + 16, kTrailerMagic, 8);
}

namespace {

// Writes the frame into `h`, which has room for the header and
// LZ4_compressBound(raw.size()) payload bytes; returns the frame's length.
size_t writeFrame(uint32_t tag, std::span<const uint8_t> raw, uint64_t firstStep, uint64_t lastStep,
                  uint32_t count, int lz4Acceleration, int bound, uint8_t* h) {
  uint8_t* payload = h + kFrameHeaderBytes;
  int stored = 0;
  uint32_t codec = kCodecLz4;
  if (!raw.empty())
    stored = LZ4_compress_fast(reinterpret_cast<const char*>(raw.data()),
                               reinterpret_cast<char*>(payload), static_cast<int>(raw.size()),
                               bound, lz4Acceleration);
  if (stored <= 0 || static_cast<size_t>(stored) >= raw.size()) {
    codec = kCodecStored;
    stored = static_cast<int>(raw.size());
    if (!raw.empty()) std::memcpy(payload, raw.data(), raw.size());
  }
  putU32(h, tag);
  putU32(h + 4, codec);
  putU32(h + 8, static_cast<uint32_t>(stored));
  putU32(h + 12, static_cast<uint32_t>(raw.size()));
  putU64(h + 16, firstStep);
  putU64(h + 24, lastStep);
  putU32(h + 32, count);
  uint32_t crc = crc32c(0, h, 36);
  crc = crc32c(crc, payload, static_cast<size_t>(stored));
  putU32(h + 36, crc);
  return kFrameHeaderBytes + static_cast<size_t>(stored);
}

}  // namespace

void appendFrame(uint32_t tag, std::span<const uint8_t> raw, uint64_t firstStep, uint64_t lastStep,
                 uint32_t count, int lz4Acceleration, std::vector<uint8_t>& out) {
  TTVM_ASSERT(raw.size() <= maxRawBytes(tag), "frame ", tagName(tag), " too large: ", raw.size());
  const size_t start = out.size();
  const int bound = LZ4_compressBound(static_cast<int>(raw.size()));
  out.resize(start + kFrameHeaderBytes + static_cast<size_t>(bound));
  const size_t n =
      writeFrame(tag, raw, firstStep, lastStep, count, lz4Acceleration, bound, out.data() + start);
  out.resize(start + n);
}

size_t encodeFrame(uint32_t tag, std::span<const uint8_t> raw, uint64_t firstStep,
                   uint64_t lastStep, uint32_t count, int lz4Acceleration,
                   std::vector<uint8_t>& buffer) {
  TTVM_ASSERT(raw.size() <= maxRawBytes(tag), "frame ", tagName(tag), " too large: ", raw.size());
  const int bound = LZ4_compressBound(static_cast<int>(raw.size()));
  const size_t need = kFrameHeaderBytes + static_cast<size_t>(bound);
  if (buffer.size() < need) buffer.resize(need);
  return writeFrame(tag, raw, firstStep, lastStep, count, lz4Acceleration, bound, buffer.data());
}

Error InputFile::errorAt(uint64_t offset, std::string_view what) const {
  return makeError(path_ + ": byte " + std::to_string(offset) + ": " + std::string(what));
}

Status InputFile::readExact(uint64_t offset, void* out, size_t n, std::string_view what) const {
  if (offset > size_ || n > size_ - offset)
    return errorAt(offset, "expected " + std::string(what) + " (" + std::to_string(n) +
                               " bytes), but the file ends at byte " + std::to_string(size_));
  auto* p = static_cast<uint8_t*>(out);
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd_, p + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errorAt(offset + done, std::string("read failed: ") + std::strerror(errno));
    if (r == 0)
      return errorAt(offset + done, "unexpected end of file while reading " + std::string(what));
    done += static_cast<size_t>(r);
  }
  return {};
}

Result<FrameHeader> InputFile::readFrameHeader(uint64_t offset) const {
  uint8_t b[kFrameHeaderBytes];
  TTVM_TRY(readExact(offset, b, sizeof b, "a frame header"));
  FrameHeader h;
  h.tag = getU32(b);
  h.codec = getU32(b + 4);
  h.storedBytes = getU32(b + 8);
  h.rawBytes = getU32(b + 12);
  h.firstStep = getU64(b + 16);
  h.lastStep = getU64(b + 24);
  h.count = getU32(b + 32);
  h.crc = getU32(b + 36);
  if (!isKnownTag(h.tag))
    return errorAt(
        offset, "expected a frame tag (HEAD, INIT, PAGE, SNAP, CHNK or FOOT), found " + hex(h.tag));
  const std::string name = tagName(h.tag) + " frame";
  if (h.codec != kCodecStored && h.codec != kCodecLz4)
    return errorAt(offset + 4, name + ": expected codec 0 (stored) or 1 (LZ4), found " +
                                   std::to_string(h.codec));
  const uint64_t payloadAt = offset + kFrameHeaderBytes;
  if (h.storedBytes > size_ - payloadAt)
    return errorAt(offset + 8, name + ": payload of " + std::to_string(h.storedBytes) +
                                   " bytes runs past the end of the file (" +
                                   std::to_string(size_) + " bytes)");
  if (h.rawBytes > maxRawBytes(h.tag))
    return errorAt(offset + 12, name + ": raw size " + std::to_string(h.rawBytes) +
                                    " exceeds the limit of " + std::to_string(maxRawBytes(h.tag)));
  if (h.codec == kCodecStored && h.rawBytes != h.storedBytes)
    return errorAt(offset + 12, name + ": stored payload must have raw size == stored size (" +
                                    std::to_string(h.storedBytes) + "), found " +
                                    std::to_string(h.rawBytes));
  // LZ4 expands by at most ~255x; anything claiming more is not LZ4 output.
  if (h.codec == kCodecLz4 && h.rawBytes > uint64_t{h.storedBytes} * 255 + 64)
    return errorAt(offset + 12, name + ": raw size " + std::to_string(h.rawBytes) +
                                    " is impossible for " + std::to_string(h.storedBytes) +
                                    " bytes of LZ4 data");
  return h;
}

Result<FrameHeader> InputFile::readFrame(uint64_t offset, uint32_t expectedTag,
                                         RawPayload& out) const {
  auto hr = readFrameHeader(offset);
  if (!hr.ok()) return hr.error();
  FrameHeader h = *hr;
  if (expectedTag != 0 && h.tag != expectedTag)
    return errorAt(offset,
                   "expected a " + tagName(expectedTag) + " frame, found " + tagName(h.tag));
  // Read header bytes again with the payload so the checksum covers both.
  std::vector<uint8_t>& buf = out.frame;
  const size_t frameBytes = kFrameHeaderBytes + h.storedBytes;
  if (buf.size() < frameBytes) buf.resize(frameBytes);
  TTVM_TRY(readExact(offset, buf.data(), frameBytes, tagName(h.tag) + " frame"));
  uint32_t crc = crc32c(0, buf.data(), 36);
  crc = crc32c(crc, buf.data() + kFrameHeaderBytes, h.storedBytes);
#ifndef TTVM_FUZZING_SKIP_CHECKSUMS  // the fuzz build lets mutated payloads reach the decoders
  if (crc != h.crc)
    return errorAt(offset + 36, tagName(h.tag) + " frame: checksum mismatch (stored " + hex(h.crc) +
                                    ", computed " + hex(crc) + ")");
#endif
  out.bytes = h.rawBytes;
  const size_t words = (h.rawBytes + 7) / 8;
  if (out.capacityWords < words) {
    out.words.reset(new uint64_t[words]);  // default-initialized: not touched yet
    out.capacityWords = words;
  }
  if (words) out.words[words - 1] = 0;  // no stale bytes in the padding
  auto* dst = reinterpret_cast<char*>(out.words.get());
  const auto* src = reinterpret_cast<const char*>(buf.data() + kFrameHeaderBytes);
  if (h.codec == kCodecStored) {
    if (h.rawBytes) std::memcpy(dst, src, h.rawBytes);
  } else {
    int n = LZ4_decompress_safe(src, dst, static_cast<int>(h.storedBytes),
                                static_cast<int>(h.rawBytes));
    if (n < 0 || static_cast<uint32_t>(n) != h.rawBytes)
      return errorAt(offset + kFrameHeaderBytes,
                     tagName(h.tag) + " frame: LZ4 data does not decompress to the expected " +
                         std::to_string(h.rawBytes) + " bytes");
  }
  return h;
}

Result<InputFile> openInputFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return makeError(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return makeError(path + ": not a regular file");
  }
  return InputFile(fd, path, static_cast<uint64_t>(st.st_size));
}

}  // namespace ttvm::formats
