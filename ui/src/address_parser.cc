#include "ttvm/ui/address_parser.h"

#include <QRegularExpression>

namespace ttvm::ui {

namespace {

// "0x1f" hex, "1f" hex (addresses are hex by convention); `decimalDefault`
// reads unprefixed digits as decimal (offsets and lengths).
std::optional<uint64_t> parseNumber(const QString& t, bool decimalDefault) {
  bool ok = false;
  uint64_t v = 0;
  if (t.startsWith(QStringLiteral("0x"), Qt::CaseInsensitive))
    v = t.mid(2).toULongLong(&ok, 16);
  else
    v = t.toULongLong(&ok, decimalDefault ? 10 : 16);
  if (!ok) return std::nullopt;
  return v;
}

}  // namespace

std::optional<uint64_t> parseAddress(const QString& text, const GuestSymbols* symbols) {
  const QString t = text.trimmed();
  if (t.isEmpty()) return std::nullopt;
  static const QRegularExpression kSymbol(
      QStringLiteral("^([A-Za-z_.$][A-Za-z0-9_.$]*)\\s*(?:([+-])\\s*(\\w+))?$"));
  // A symbol wins over a hex number that looks like a name ("add", "beef").
  const QRegularExpressionMatch m = kSymbol.match(t);
  if (m.hasMatch() && symbols != nullptr) {
    if (auto base = symbols->find(m.captured(1).toStdString())) {
      if (m.captured(2).isEmpty()) return *base;
      auto off = parseNumber(m.captured(3), true);
      if (!off) return std::nullopt;
      return m.captured(2) == QLatin1String("+") ? *base + *off : *base - *off;
    }
  }
  return parseNumber(t, false);
}

std::optional<AddressRange> parseRange(const QString& text, const GuestSymbols* symbols) {
  const QString t = text.trimmed();
  const int colon = t.lastIndexOf(QLatin1Char(':'));
  AddressRange r;
  auto addr = parseAddress(colon < 0 ? t : t.left(colon), symbols);
  if (!addr) return std::nullopt;
  r.address = *addr;
  r.length = 1;
  if (colon >= 0) {
    auto len = parseNumber(t.mid(colon + 1).trimmed(), true);
    if (!len || *len == 0 || *len > 4096) return std::nullopt;
    r.length = *len;
  }
  return r;
}

}  // namespace ttvm::ui
