// The gdb protocol layer without gdb: framing, checksums, escaping, hex
// parsing, register layouts and target descriptions.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ttvm/replayer/gdb_protocol.h"
#include "ttvm/replayer/gdb_registers.h"

namespace ttvm {
namespace {

std::vector<GdbInput> decodeAll(std::string_view bytes, size_t maxPacket = 1u << 20) {
  GdbPacketDecoder d(maxPacket);
  std::vector<GdbInput> out;
  d.feed(bytes, out);
  return out;
}

TEST(GdbProtocol, EncodesWithChecksum) {
  EXPECT_EQ(gdbEncodePacket("OK"), "$OK#9a");
  EXPECT_EQ(gdbEncodePacket(""), "$#00");
  EXPECT_EQ(gdbEncodePacket("T05thread:1;"), "$T05thread:1;#d7");
}

TEST(GdbProtocol, EscapesSpecialBytes) {
  EXPECT_EQ(gdbEscape("a#b$c}d*e"),
            "a}\x03"
            "b}\x04"
            "c}]d}\x0a"
            "e");
  const std::string payload = std::string("x#$}*y") + '\0' + "\xff";
  const std::string framed = gdbEncodePacket(payload);
  // No unescaped '#' or '$' inside the body.
  EXPECT_EQ(framed.find('#', 1), framed.size() - 3);
  EXPECT_EQ(framed.find('$', 1), std::string::npos);
  auto in = decodeAll(framed);
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].kind, GdbInput::Kind::kPacket);
  EXPECT_EQ(in[0].payload, payload);
}

TEST(GdbProtocol, DecodesAcrossChunksAndAcks) {
  GdbPacketDecoder d;
  std::vector<GdbInput> out;
  const std::string stream = "+$qSupported:multiprocess+#c6-\x03$g#67";
  for (char c : stream) d.feed(std::string_view(&c, 1), out);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0].kind, GdbInput::Kind::kAck);
  EXPECT_EQ(out[1].kind, GdbInput::Kind::kPacket);
  EXPECT_EQ(out[1].payload, "qSupported:multiprocess+");
  EXPECT_EQ(out[2].kind, GdbInput::Kind::kNak);
  EXPECT_EQ(out[3].kind, GdbInput::Kind::kInterrupt);
  EXPECT_EQ(out[4].kind, GdbInput::Kind::kPacket);
  EXPECT_EQ(out[4].payload, "g");
}

TEST(GdbProtocol, BadChecksumsAreReported) {
  auto in = decodeAll("$g#68");  // right is 67
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].kind, GdbInput::Kind::kBadChecksum);
  in = decodeAll("$g#zz$g#67");  // non-hex checksum, then a good packet
  ASSERT_EQ(in.size(), 2u);
  EXPECT_EQ(in[0].kind, GdbInput::Kind::kBadChecksum);
  EXPECT_EQ(in[1].kind, GdbInput::Kind::kPacket);
  // Upper-case checksum digits are accepted.
  in = decodeAll(gdbEncodePacket("qC").substr(0, 4) + "B4");
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].kind, GdbInput::Kind::kPacket) << gdbEncodePacket("qC");
}

TEST(GdbProtocol, GarbageOutsidePacketsIsIgnored) {
  auto in = decodeAll("hello\r\n$?#3f");
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].payload, "?");
}

TEST(GdbProtocol, OverlongPacketIsRejected) {
  const std::string big(100, 'A');
  auto in = decodeAll(gdbEncodePacket(big), 64);
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].kind, GdbInput::Kind::kBadChecksum);
}

TEST(GdbProtocol, HexParsing) {
  EXPECT_EQ(gdbParseHexU64("0"), 0u);
  EXPECT_EQ(gdbParseHexU64("ffffffffffffffff"), ~0ull);
  EXPECT_EQ(gdbParseHexU64("DeadBeef"), 0xdeadbeefull);
  EXPECT_FALSE(gdbParseHexU64(""));
  EXPECT_FALSE(gdbParseHexU64("12g4"));
  EXPECT_FALSE(gdbParseHexU64("10000000000000000"));  // 17 digits
  EXPECT_EQ(gdbHexDecode("68656c70"), "help");
  EXPECT_FALSE(gdbHexDecode("686"));
  EXPECT_FALSE(gdbHexDecode("6x"));
  EXPECT_EQ(gdbHexEncode(std::string_view("\x01\xab", 2)), "01ab");
  EXPECT_EQ(gdbHexU64(0), "0");
  EXPECT_EQ(gdbHexU64(0x111208), "111208");
}

size_t layoutBytes(GdbArch a) {
  size_t n = 0;
  for (const GdbRegister& r : gdbRegisters(a)) n += r.bits / 8;
  return n;
}

TEST(GdbRegisters, LayoutsMatchGdbsNumbering) {
  const auto& r64 = gdbRegisters(GdbArch::kX86_64);
  ASSERT_GE(r64.size(), 65u);
  EXPECT_EQ(r64[0].name, "rax");
  EXPECT_EQ(r64[1].name, "rbx");
  EXPECT_EQ(r64[7].name, "rsp");
  EXPECT_EQ(r64[16].name, "rip");
  EXPECT_EQ(r64[17].name, "eflags");
  EXPECT_EQ(r64[18].name, "cs");
  EXPECT_EQ(r64[24].name, "st0");
  EXPECT_EQ(r64[40].name, "xmm0");
  EXPECT_EQ(r64[56].name, "mxcsr");
  EXPECT_EQ(r64[57].name, "fs_base");
  const auto& r32 = gdbRegisters(GdbArch::kI386);
  EXPECT_EQ(r32[0].name, "eax");
  EXPECT_EQ(r32[1].name, "ecx");
  EXPECT_EQ(r32[4].name, "esp");
  EXPECT_EQ(r32[8].name, "eip");
  EXPECT_EQ(r32[16].name, "st0");
  EXPECT_EQ(r32[32].name, "xmm0");
  EXPECT_EQ(r32[40].name, "mxcsr");
  // The system registers, in this order, after everything gdb numbers itself.
  const std::vector<std::string> system = {"cr0",  "cr2",     "cr3",     "cr4",     "cr8",
                                           "efer", "cs_base", "ss_base", "ds_base", "es_base"};
  for (const auto* regs : {&r64, &r32}) {
    ASSERT_GE(regs->size(), system.size());
    for (size_t i = 0; i < system.size(); ++i)
      EXPECT_EQ((*regs)[regs->size() - system.size() + i].name, system[i]);
  }
  // 16*8 + 8 + 4 + 6*4 + 8*10 + 8*4 + 16*16 + 4 + 2*8 + 6*8 + 4*8
  EXPECT_EQ(layoutBytes(GdbArch::kX86_64), 128u + 8 + 4 + 24 + 80 + 32 + 256 + 4 + 16 + 48 + 32);
  EXPECT_EQ(layoutBytes(GdbArch::kI386), 32u + 4 + 4 + 24 + 80 + 32 + 128 + 4 + 8 + 48 + 16);
}

// group="system" on the control registers and every segment base, which
// scripts/ttvm-gdb.py reads back for `info registers system`.
TEST(GdbRegisters, SystemGroupInTheDescription) {
  for (GdbArch a : {GdbArch::kI386, GdbArch::kX86_64}) {
    const std::string& x = gdbTargetXml(a);
    for (const GdbRegister& r : gdbRegisters(a)) {
      const size_t at = x.find("<reg name=\"" + r.name + "\"");
      ASSERT_NE(at, std::string::npos) << r.name;
      const std::string tag = x.substr(at, x.find("/>", at) - at);
      const bool system = r.name.rfind("cr", 0) == 0 || r.name == "efer" ||
                          r.name.find("_base") != std::string::npos;
      EXPECT_EQ(tag.find("group=\"system\"") != std::string::npos, system) << tag;
    }
  }
}

TEST(GdbRegisters, TargetXmlNamesEveryRegister) {
  for (GdbArch a : {GdbArch::kI386, GdbArch::kX86_64}) {
    const std::string& x = gdbTargetXml(a);
    EXPECT_NE(x.find(a == GdbArch::kX86_64 ? "<architecture>i386:x86-64</architecture>"
                                           : "<architecture>i386</architecture>"),
              std::string::npos);
    for (const char* f : {"org.gnu.gdb.i386.core", "org.gnu.gdb.i386.sse", "org.ttvm.sys"})
      EXPECT_NE(x.find(std::string("<feature name=\"") + f + "\">"), std::string::npos) << f;
    // The segments feature only in the 64-bit description (see gdb_registers.cc).
    const bool segments =
        x.find("<feature name=\"org.gnu.gdb.i386.segments\">") != std::string::npos;
    EXPECT_EQ(segments, a == GdbArch::kX86_64);
    const auto& regs = gdbRegisters(a);
    for (size_t i = 0; i < regs.size(); ++i) {
      const std::string tag =
          "<reg name=\"" + regs[i].name + "\" bitsize=\"" + std::to_string(regs[i].bits) + "\"";
      const size_t at = x.find(tag);
      ASSERT_NE(at, std::string::npos) << regs[i].name;
      EXPECT_NE(x.find("regnum=\"" + std::to_string(i) + "\"", at), std::string::npos);
    }
    // Balanced features.
    size_t open = 0, close = 0;
    for (size_t p = x.find("<feature "); p != std::string::npos; p = x.find("<feature ", p + 1))
      ++open;
    for (size_t p = x.find("</feature>"); p != std::string::npos; p = x.find("</feature>", p + 1))
      ++close;
    EXPECT_EQ(open, a == GdbArch::kX86_64 ? 4u : 3u);
    EXPECT_EQ(close, open);
  }
}

TEST(GdbRegisters, ValuesAreLittleEndianAndSized) {
  CpuState s;
  s.reg(Gpr::kRax) = 0x1122334455667788ull;
  s.reg(Gpr::kRbx) = 0xAABBCCDDull;
  s.rip = 0xFFFFFFFF80001234ull;
  s.cr3 = 0x1000;
  s.segment(SegReg::kFs).base = 0x7000;
  s.segment(SegReg::kSs).base = 0x12345678;
  s.msr.efer = efer::kLME | efer::kLMA;
  auto bytesOf = [&](GdbArch a, const std::string& name) {
    const auto& regs = gdbRegisters(a);
    for (size_t i = 0; i < regs.size(); ++i)
      if (regs[i].name == name) return gdbRegisterBytes(a, s, i);
    return std::string("missing");
  };
  EXPECT_EQ(bytesOf(GdbArch::kX86_64, "rax"), std::string("\x88\x77\x66\x55\x44\x33\x22\x11", 8));
  EXPECT_EQ(bytesOf(GdbArch::kX86_64, "rbx"), std::string("\xdd\xcc\xbb\xaa\0\0\0\0", 8));
  EXPECT_EQ(bytesOf(GdbArch::kI386, "eax"), std::string("\x88\x77\x66\x55", 4));
  EXPECT_EQ(bytesOf(GdbArch::kI386, "eip"), std::string("\x34\x12\x00\x80", 4));
  EXPECT_EQ(bytesOf(GdbArch::kX86_64, "cr3"), std::string("\0\x10\0\0\0\0\0\0", 8));
  EXPECT_EQ(bytesOf(GdbArch::kX86_64, "fs_base"), std::string("\0\x70\0\0\0\0\0\0", 8));
  EXPECT_EQ(bytesOf(GdbArch::kX86_64, "efer"), std::string("\0\x05\0\0\0\0\0\0", 8));
  EXPECT_EQ(bytesOf(GdbArch::kX86_64, "ss_base"), std::string("\x78\x56\x34\x12\0\0\0\0", 8));
  EXPECT_EQ(bytesOf(GdbArch::kI386, "ss_base"), std::string("\x78\x56\x34\x12", 4));
  EXPECT_EQ(bytesOf(GdbArch::kX86_64, "cs_base"), std::string(8, '\0'));
  EXPECT_EQ(bytesOf(GdbArch::kX86_64, "st0").size(), 10u);
  EXPECT_EQ(bytesOf(GdbArch::kX86_64, "xmm15").size(), 16u);
  EXPECT_TRUE(gdbRegisterBytes(GdbArch::kI386, s, 1000).empty());
}

TEST(GdbRegisters, StRegistersFollowTop) {
  CpuState s;
  s.fpu.fsw = 6 << 11;                                   // TOP = 6
  s.fpu.st[6] = Float80{0x8000000000000000ull, 0x3FFF};  // 1.0 in R6 = ST(0)
  s.fpu.st[7] = Float80{0, 0};                           // +0 in R7 = ST(1)
  s.fpu.ftw = (1u << 6) | (1u << 7);
  const auto& regs = gdbRegisters(GdbArch::kX86_64);
  EXPECT_EQ(regs[24].name, "st0");
  EXPECT_EQ(gdbRegisterBytes(GdbArch::kX86_64, s, 24),
            std::string("\0\0\0\0\0\0\0\x80\xff\x3f", 10));
  // Full tag word: R6 valid (00), R7 zero (01), the rest empty (11).
  EXPECT_EQ(gdbFullTagWord(s.fpu), 0x4FFF);
}

}  // namespace
}  // namespace ttvm
