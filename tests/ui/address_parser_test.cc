#include "address_parser_test.h"

#include <QtTest>

#include "ttvm/ui/address_parser.h"

namespace ttvm::ui {

void AddressParserTest::numbers() {
  QCOMPARE(parseAddress(QStringLiteral("0x111208"), nullptr), std::optional<uint64_t>(0x111208));
  QCOMPARE(parseAddress(QStringLiteral(" 111208 "), nullptr), std::optional<uint64_t>(0x111208));
  QCOMPARE(parseAddress(QStringLiteral("0XFFFF800000000000"), nullptr),
           std::optional<uint64_t>(0xFFFF800000000000ull));
}

void AddressParserTest::ranges() {
  auto r = parseRange(QStringLiteral("0x1000:8"), nullptr);
  QVERIFY(r.has_value());
  QCOMPARE(r->address, uint64_t{0x1000});
  QCOMPARE(r->length, uint64_t{8});
  r = parseRange(QStringLiteral("0x1000:0x10"), nullptr);
  QVERIFY(r.has_value());
  QCOMPARE(r->length, uint64_t{16});
  r = parseRange(QStringLiteral("2000"), nullptr);
  QVERIFY(r.has_value());
  QCOMPARE(r->address, uint64_t{0x2000});
  QCOMPARE(r->length, uint64_t{1});
}

void AddressParserTest::rejectsGarbage() {
  QVERIFY(!parseAddress(QStringLiteral(""), nullptr));
  QVERIFY(!parseAddress(QStringLiteral("nosuchsymbol+4"), nullptr));
  QVERIFY(!parseAddress(QStringLiteral("0xZZ"), nullptr));
  QVERIFY(!parseRange(QStringLiteral("0x1000:0"), nullptr));
  QVERIFY(!parseRange(QStringLiteral("0x1000:99999"), nullptr));
  QVERIFY(!parseRange(QStringLiteral("0x1000:x"), nullptr));
}

}  // namespace ttvm::ui
