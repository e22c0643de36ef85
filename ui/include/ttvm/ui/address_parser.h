// Parses the addresses a user types: "0x111208", "111208" (hex), "arena",
// "arena+0x2fa8", "key_dup+84" (decimal offset), and "ADDR:LEN" ranges.
#pragma once

#include <QString>
#include <cstdint>
#include <optional>

#include "ttvm/replayer/guest_symbols.h"

namespace ttvm::ui {

// nullopt when `text` is neither a number nor a known symbol (+offset).
std::optional<uint64_t> parseAddress(const QString& text, const GuestSymbols* symbols);

struct AddressRange {
  uint64_t address = 0;
  uint64_t length = 0;
};
// "ADDR:LEN" (LEN decimal or 0x-hex, 1..4096) or "ADDR" (length 1);
// nullopt when malformed.
std::optional<AddressRange> parseRange(const QString& text, const GuestSymbols* symbols);

}  // namespace ttvm::ui
