// HandlerTable (exec/handler_table.h): each mnemonic's handler, vector
// handler and operand-form picker are registered once; a second registration
// is a bug in ttvm and asserts at once, naming the mnemonic and both groups,
// instead of silently replacing the first.
#include "exec/handler_table.h"

#include <gtest/gtest.h>

#include <memory>

namespace ttvm {
namespace {

ExecStatus first(CpuImpl&, const Instr&) {
  return ExecStatus::kNext;
}
ExecStatus second(CpuImpl&, const Instr&) {
  return ExecStatus::kJumped;
}
Handler pickSecond(const Instr&) {
  return &second;
}

template <typename T>
struct Sized {
  static ExecStatus run(CpuImpl&, const Instr&) { return ExecStatus::kNext; }
};

// The tables are ~140 KB: on the heap, one fresh table per test (the CPU's
// own table, HandlerTable::instance(), is built once and immutable).
std::unique_ptr<HandlerTable> freshTable() {
  return std::make_unique<HandlerTable>();
}

TEST(HandlerTable, HandlerVectorAndPickerOfOneMnemonicAreSeparateRegistrations) {
  auto t = freshTable();
  t->registerGroup("moves", [](HandlerTable& g) {
    g.set(ZYDIS_MNEMONIC_MOVSD, &first);
    g.setVector(ZYDIS_MNEMONIC_MOVSD, &second);
    g.setPicker(ZYDIS_MNEMONIC_MOVSD, &pickSecond);
    g.setSized(ZYDIS_MNEMONIC_BSWAP, nullptr, &first, &second, &second);
  });
  EXPECT_EQ(t->lookup(ZYDIS_MNEMONIC_MOVSD, 4), &first);
  EXPECT_EQ(t->lookupVector(ZYDIS_MNEMONIC_MOVSD), &second);
  EXPECT_EQ(t->picker(ZYDIS_MNEMONIC_MOVSD), &pickSecond);
  EXPECT_EQ(t->lookup(ZYDIS_MNEMONIC_BSWAP, 1), nullptr);
  EXPECT_EQ(t->lookup(ZYDIS_MNEMONIC_BSWAP, 2), &first);
  EXPECT_EQ(t->lookup(ZYDIS_MNEMONIC_BSWAP, 8), &second);
}

TEST(HandlerTableDeathTest, SecondHandlerAssertsNamingTheMnemonicAndBothGroups) {
  auto t = freshTable();
  t->registerGroup("data", [](HandlerTable& g) { g.set(ZYDIS_MNEMONIC_BSWAP, &first); });
  EXPECT_DEATH(t->registerGroup("alu/bits",
                                [](HandlerTable& g) {
                                  g.setSized(ZYDIS_MNEMONIC_BSWAP, nullptr, &second, &second,
                                             &second);
                                }),
               "bswap: handler registered twice, by data and again by alu/bits");
  // Every way of registering a handler claims the mnemonic.
  t->registerGroup("alu", [](HandlerTable& g) { g.setTemplate<Sized>(ZYDIS_MNEMONIC_ADD); });
  EXPECT_DEATH(t->registerGroup("late", [](HandlerTable& g) { g.set(ZYDIS_MNEMONIC_ADD, &first); }),
               "add: handler registered twice, by alu and again by late");
}

TEST(HandlerTableDeathTest, SecondVectorHandlerOrPickerAsserts) {
  auto t = freshTable();
  t->registerGroup("fpu/sse", [](HandlerTable& g) {
    g.setVector(ZYDIS_MNEMONIC_CMPSD, &first);
    g.setPicker(ZYDIS_MNEMONIC_MOV, &pickSecond);
  });
  EXPECT_DEATH(t->registerGroup(
                   "string", [](HandlerTable& g) { g.setVector(ZYDIS_MNEMONIC_CMPSD, &second); }),
               "cmpsd: vector handler registered twice, by fpu/sse and again by string");
  EXPECT_DEATH(t->registerGroup(
                   "data", [](HandlerTable& g) { g.setPicker(ZYDIS_MNEMONIC_MOV, &pickSecond); }),
               "mov: operand-form picker registered twice, by fpu/sse and again by data");
}

// The real groups go through the same check: registering one twice into a
// fresh table asserts on its first mnemonic (MOV for the data group).
TEST(HandlerTableDeathTest, ARealGroupRegisteredTwiceAsserts) {
  auto t = freshTable();
  t->registerGroup("data", registerDataHandlers);
  EXPECT_DEATH(t->registerGroup("data again", registerDataHandlers),
               "mov: handler registered twice, by data and again by data again");
}

}  // namespace
}  // namespace ttvm
