#include "random_guest.h"

#include <cstring>
#include <random>

#include "ttvm/machine/firmware.h"

namespace ttvm::testing {
using ttvm::machine::LoadedGuest;
using ttvm::machine::Machine;
namespace firmware = ttvm::machine::firmware;
using ttvm::machine::longModeState;
using ttvm::machine::protectedModeState;
namespace {

// Guest-physical layout (identity-mapped when paging is on).
constexpr uint64_t kCodeAt = 0x10000;
constexpr uint64_t kHandlersAt = 0x18000;  // one 64-byte stub per handler kind
constexpr uint64_t kTablesAt = 0x20000;    // page tables
constexpr uint64_t kIdtAt = 0x30000;
constexpr uint64_t kStackTop = 0x48000;
constexpr uint64_t kDataAt = 0x50000;
constexpr uint64_t kReadOnlyPage = 0x60000;
constexpr uint64_t kAbsentPage = 0x70000;
constexpr uint8_t kIntVector = 0x41;
constexpr unsigned kIdtVectors = kIntVector + 1;

enum class Handler : uint8_t {
  kExit,       // OUT to isa-debug-exit
  kPanic,      // pvpanic
  kReset,      // 0xCF9
  kShutdown,   // "Shutdown" to port 0x8900
  kHang,       // CLI; HLT
  kIdle,       // STI; HLT (nothing will come)
  kFault,      // UD2 again
  kIret,       // back to the faulting instruction (until the step limit)
  kStackOnRo,  // ESP onto the read-only page, PUSH
  kCount
};

struct Code {
  std::vector<uint8_t> b;
  void bytes(std::initializer_list<uint8_t> l) { b.insert(b.end(), l); }
  void u16(uint16_t v) { bytes({uint8_t(v), uint8_t(v >> 8)}); }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(uint8_t(v >> (8 * i)));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back(uint8_t(v >> (8 * i)));
  }
  void exitWith(uint8_t value) {  // mov eax, value; out 0xF4, eax; jmp $
    bytes({0xB8});
    u32(value);
    bytes({0xE7, 0xF4, 0xEB, 0xFE});
  }
};

void put64(std::span<uint8_t> ram, uint64_t at, uint64_t v) {
  std::memcpy(ram.data() + at, &v, 8);
}
void put32(std::span<uint8_t> ram, uint64_t at, uint32_t v) {
  std::memcpy(ram.data() + at, &v, 4);
}

Code handlerStub(Handler h, bool longMode) {
  Code c;
  switch (h) {
    case Handler::kExit: c.exitWith(0x11); break;
    case Handler::kPanic: c.bytes({0x66, 0xBA, 0x05, 0x05, 0xB0, 0x01, 0xEE, 0xF4}); break;
    case Handler::kReset:
      c.bytes({0x66, 0xBA, 0xF9, 0x0C, 0xB0, 0x02, 0xEE, 0xB0, 0x06, 0xEE, 0xFA, 0xF4});
      break;
    case Handler::kShutdown:
      c.bytes({0x66, 0xBA, 0x00, 0x89});  // mov dx, 0x8900
      for (char ch : std::string("Shutdown")) c.bytes({0xB0, uint8_t(ch), 0xEE});
      c.bytes({0xFA, 0xF4});
      break;
    case Handler::kHang: c.bytes({0xFA, 0xF4}); break;
    case Handler::kIdle: c.bytes({0xFB, 0xF4, 0xEB, 0xFC}); break;
    case Handler::kFault: c.bytes({0x0F, 0x0B}); break;
    case Handler::kIret:
      if (longMode) c.bytes({0x48});
      c.bytes({0xCF});
      break;
    case Handler::kStackOnRo:
      c.bytes({0xBC});  // mov esp, top of the read-only page (zero-extends into RSP)
      c.u32(static_cast<uint32_t>(kReadOnlyPage + 0x1000));
      c.bytes({0x50, 0xEB, 0xFE});
      break;
    case Handler::kCount: break;
  }
  return c;
}

// A few instructions valid in both modes that change registers and memory
// and ask the machine for input.
void randomPrelude(Code& c, std::mt19937_64& rng) {
  const int n = static_cast<int>(rng() % 12);
  for (int k = 0; k < n; ++k) {
    static constexpr uint8_t kRegs[] = {0, 1, 2, 3, 5, 6, 7};  // not ESP
    const uint8_t dst = kRegs[rng() % 7], src = kRegs[rng() % 7];
    switch (rng() % 8) {
      case 0:
        c.bytes({uint8_t(0xB8 + dst)});
        c.u32(static_cast<uint32_t>(rng()));
        break;
      case 1: {
        static constexpr uint8_t kOps[] = {0x01, 0x29, 0x31, 0x21, 0x09};
        c.bytes({kOps[rng() % 5], uint8_t(0xC0 | src << 3 | dst)});
        break;
      }
      case 2: c.bytes({uint8_t(0x50 + src), uint8_t(0x58 + dst)}); break;
      case 3:  // mov [kDataAt + 4k], src (SIB, no base: absolute in both modes)
        c.bytes({0x89, uint8_t(0x04 | src << 3), 0x25});
        c.u32(static_cast<uint32_t>(kDataAt + 4 * (rng() % 64)));
        break;
      case 4: c.bytes({0x0F, 0x31}); break;                        // rdtsc
      case 5: c.bytes({0xE4, 0x61}); break;                        // in al, 0x61
      case 6: c.bytes({0x31, 0xC0, 0x0F, 0xA2}); break;            // xor eax, eax; cpuid
      case 7: c.bytes({0xB0, uint8_t(rng()), 0xE6, 0x80}); break;  // out 0x80, al
    }
  }
}

// The planned fault's instructions; false when it does not apply to the mode.
bool emitFault(Code& c, PlannedFault f, bool longMode, bool paging) {
  switch (f) {
    case PlannedFault::kDivideError: c.bytes({0x31, 0xD2, 0x31, 0xC9, 0xF7, 0xF1}); return true;
    case PlannedFault::kInvalidOpcode: c.bytes({0x0F, 0x0B}); return true;
    case PlannedFault::kBreakpoint: c.bytes({0xCC}); return true;
    case PlannedFault::kIntNotPresent: c.bytes({0xCD, kIntVector}); return true;
    case PlannedFault::kBadSelector:
      c.bytes({0x66, 0xB8, 0x33, 0x00, 0x8E, 0xD8});  // mov ax, 0x33; mov ds, ax
      return true;
    case PlannedFault::kNonCanonical:
      if (!longMode) return false;
      c.bytes({0x48, 0xB8});
      c.u64(0x8000000000000000ull);
      c.bytes({0x48, 0x8B, 0x00});
      return true;
    case PlannedFault::kPageNotPresent:
      if (!paging) return false;
      c.bytes({0x8B, 0x04, 0x25});
      c.u32(static_cast<uint32_t>(kAbsentPage + 0x10));
      return true;
    case PlannedFault::kWriteReadOnly:
      if (!paging) return false;
      c.bytes({0x89, 0x04, 0x25});
      c.u32(static_cast<uint32_t>(kReadOnlyPage + 0x20));
      return true;
    case PlannedFault::kStackReadOnly:
      if (!paging) return false;
      c.bytes({0xBC});
      c.u32(static_cast<uint32_t>(kReadOnlyPage + 0x1000));
      c.bytes({0x50});
      return true;
    case PlannedFault::kStackNonCanonical:
      if (!longMode) return false;
      c.bytes({0x48, 0xBC});
      c.u64(0x8000000000000010ull);
      c.bytes({0x50});
      return true;
    case PlannedFault::kSingleStep:
      // pushf; or dword [esp], TF; popf; nop
      c.bytes({0x9C, 0x81, 0x0C, 0x24, 0x00, 0x01, 0x00, 0x00, 0x9D, 0x90});
      return true;
    case PlannedFault::kIcebp: c.bytes({0xF1}); return true;
    case PlannedFault::kDeviceNotAvailable:
      // mov eax, cr0; or eax, CR0.TS; mov cr0, eax; fninit
      c.bytes({0x0F, 0x20, 0xC0, 0x83, 0xC8, 0x08, 0x0F, 0x22, 0xC0, 0xDB, 0xE3});
      return true;
    case PlannedFault::kOverflow:
      if (longMode) return false;
      c.bytes({0xB0, 0x7F, 0x04, 0x01, 0xCE});  // mov al, 0x7f; add al, 1; into
      return true;
    case PlannedFault::kCount: break;
  }
  return false;
}

}  // namespace

const char* plannedFaultName(PlannedFault f) {
  static const char* kNames[] = {"#DE",     "#UD",          "int3",       "int-absent",
                                 "#GP-sel", "#GP-noncanon", "#PF-absent", "#PF-write-ro",
                                 "push-ro", "#SS-noncanon", "#DB-tf",     "int1",
                                 "#NM",     "into"};
  static_assert(sizeof kNames / sizeof kNames[0] == size_t(PlannedFault::kCount));
  return kNames[static_cast<size_t>(f)];
}

Result<LoadedGuest> buildRandomGuest(Machine& machine, uint64_t seed, RandomGuest& out) {
  std::span<uint8_t> ram = machine.ram();
  if (ram.size() != kRandomGuestRam) return makeError("random guests need 2 MiB of RAM");
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 1);
  out = RandomGuest{};
  out.seed = seed;
  out.longMode = rng() % 3 == 0;
  out.paging = out.longMode || rng() % 2 == 0;
  const bool writeProtect = rng() % 4 != 0;
  for (;;) {  // a fault that applies to the mode
    out.fault = static_cast<PlannedFault>(rng() % static_cast<uint64_t>(PlannedFault::kCount));
    Code probe;
    if (emitFault(probe, out.fault, out.longMode, out.paging)) break;
  }
  const uint64_t idtKind = rng() % 3;
  out.idt = idtKind == 0 ? "none" : idtKind == 1 ? "partial" : "full";
  const bool stackOnRo = out.paging && rng() % 5 == 0;  // the delivery itself faults

  // Handler stubs.
  for (unsigned h = 0; h < unsigned(Handler::kCount); ++h) {
    Code stub = handlerStub(static_cast<Handler>(h), out.longMode);
    std::memcpy(ram.data() + kHandlersAt + 64 * h, stub.b.data(), stub.b.size());
  }
  // The IDT: every vector 0-31 and kIntVector, each present with a random
  // handler (full), present or not present or beyond the limit (partial).
  const unsigned gateBytes = out.longMode ? 16 : 8;
  unsigned limitVectors = kIdtVectors;
  if (idtKind == 1 && rng() % 3 == 0) limitVectors = 1 + static_cast<unsigned>(rng() % 32);
  for (unsigned v = 0; v < kIdtVectors && idtKind != 0; ++v) {
    const uint64_t handler = kHandlersAt + 64 * (rng() % uint64_t(Handler::kCount));
    const bool present = idtKind == 2 || rng() % 3 != 0;
    const uint64_t at = kIdtAt + uint64_t{v} * gateBytes;
    const uint16_t sel = out.longMode ? firmware::kCode64Selector : firmware::kCode32Selector;
    const uint64_t lo = (handler & 0xFFFF) | uint64_t{sel} << 16 |
                        uint64_t{present ? 0x8Eu : 0x0Eu} << 40 | ((handler >> 16) & 0xFFFF) << 48;
    put64(ram, at, lo);
    if (out.longMode) put64(ram, at + 8, handler >> 32);
  }

  // Page tables: identity over the 2 MiB with 4 KiB pages; one read-only
  // page and one absent page.
  uint64_t cr3 = 0;
  if (out.paging) {
    const uint64_t pt = out.longMode ? kTablesAt + 0x3000 : kTablesAt + 0x1000;
    for (uint64_t p = 0; p < kRandomGuestRam / 4096; ++p) {
      uint64_t e = p * 4096 | 0x3;
      if (p * 4096 == kReadOnlyPage) e = p * 4096 | 0x1;
      if (p * 4096 == kAbsentPage) e = 0;
      if (out.longMode)
        put64(ram, pt + 8 * p, e);
      else
        put32(ram, pt + 4 * p, static_cast<uint32_t>(e));
    }
    if (out.longMode) {
      put64(ram, kTablesAt, (kTablesAt + 0x1000) | 0x3);
      put64(ram, kTablesAt + 0x1000, (kTablesAt + 0x2000) | 0x3);
      put64(ram, kTablesAt + 0x2000, pt | 0x3);
    } else {
      put32(ram, kTablesAt, static_cast<uint32_t>(pt | 0x3));
    }
    cr3 = kTablesAt;
  }

  // The program: prelude, maybe the stack moved onto the read-only page,
  // the fault, then an exit in case it did not fault.
  Code c;
  randomPrelude(c, rng);
  if (stackOnRo) {
    c.bytes({0xBC});
    c.u32(static_cast<uint32_t>(kReadOnlyPage + 0x800));
  }
  if (!emitFault(c, out.fault, out.longMode, out.paging))
    return makeError("seed " + std::to_string(seed) + ": fault does not apply");
  c.exitWith(0x22);
  std::memcpy(ram.data() + kCodeAt, c.b.data(), c.b.size());

  LoadedGuest g;
  g.cpu = out.longMode ? longModeState(kCodeAt, cr3, kStackTop) : protectedModeState(kCodeAt);
  g.cpu.reg(Gpr::kRsp) = kStackTop;
  if (out.paging && !out.longMode) {
    g.cpu.cr3 = cr3;
    g.cpu.cr0 |= cr0::kPG;
  }
  if (writeProtect)
    g.cpu.cr0 |= cr0::kWP;
  else
    g.cpu.cr0 &= ~uint64_t{cr0::kWP};
  g.cpu.idtr = {idtKind == 0 ? 0 : kIdtAt,
                static_cast<uint16_t>(idtKind == 0 ? 0 : limitVectors * gateBytes - 1)};
  GuestImage image;
  image.name = "random-" + std::to_string(seed);
  image.format = ImageFormat::kFlat;
  image.loadAddress = kCodeAt;
  image.entry = kCodeAt;
  image.bytes = c.b;
  g.images.push_back(std::move(image));
  out.description = "seed " + std::to_string(seed) + ": " + (out.longMode ? "64-bit" : "32-bit") +
                    (out.paging ? ", paging" : "") +
                    (out.paging ? (writeProtect ? " WP" : " no-WP") : "") + ", IDT " + out.idt +
                    (stackOnRo ? ", stack on a read-only page" : "") + ", " +
                    plannedFaultName(out.fault);
  g.description = out.description;
  return g;
}

}  // namespace ttvm::testing
