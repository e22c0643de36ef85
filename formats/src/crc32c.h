// CRC32C (Castagnoli), the checksum of every trace frame. Uses the SSE4.2
// CRC32 instruction when the host has it and a table otherwise; both give
// the same value (tested).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ttvm::formats {

// Continues a CRC32C over `size` bytes: crc32c(crc32c(0, a), b) == crc32c(0, a+b).
uint32_t crc32c(uint32_t crc, const void* data, size_t size);
// The table-driven implementation (for tests).
uint32_t crc32cPortable(uint32_t crc, const void* data, size_t size);

}  // namespace ttvm::formats
