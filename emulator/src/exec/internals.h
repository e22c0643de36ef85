// CpuImpl::Internals: the parts of the CPU that handlers never touch — the
// decode cache, the code-page and dirty-page maps, the debugger's breakpoint
// and watchpoint lists. Shared by the exec/*.cc files that implement CpuImpl.
#pragma once

#include <Zydis/Zydis.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <set>
#include <string>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include "exec/cpu_impl.h"
#include "ttvm/base/assert.h"

namespace ttvm {

struct DecodeCacheEntry {
  // phys | (mode + 1) << 56; 0 once invalidated. Invalidation never touches
  // `instr`, so an Instr being executed stays readable while its page is
  // overwritten.
  uint64_t tag = 0;
  Instr instr;
  // Successor links: "the instruction at CS.base + RIP = `rip` is `to`", valid
  // while CpuImpl::linkEpoch_ equals `epoch` (any TLB flush, mode change,
  // CS load or code invalidation bumps it). They skip the TLB and index
  // lookups for the common next instruction and branch targets.
  struct Link {
    uint64_t rip = ~0ull;
    uint64_t epoch = 0;
    DecodeCacheEntry* to = nullptr;
  };
  Link link[2];
};

// Entries are constructed in place (fetchSlow) into storage that nothing
// else writes, and dropped without destruction (dropDecodedCode).
static_assert(std::is_trivially_destructible_v<DecodeCacheEntry>);
static_assert(alignof(DecodeCacheEntry) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);

// Storage for DecodeCacheEntry objects, allocated but not initialised: the
// pages of a large allocation stay untouched (and, for a fresh mapping,
// unmapped) until an entry there is constructed.
struct DecodePoolFree {
  void operator()(DecodeCacheEntry* p) const noexcept { ::operator delete(p); }
};
using DecodePoolStorage = std::unique_ptr<DecodeCacheEntry[], DecodePoolFree>;

// A fixed-size array of T (zero = nothing recorded) over a fresh anonymous
// mapping: its pages read as zero and cost no memory until written, so a map
// with an entry per RAM page costs what the guest touches, not what it was
// given (a 3 GiB guest's code map is 6 MiB of address space). clear() hands
// the pages back (MADV_DONTNEED) instead of writing zeros over all of them.
template <typename T>
class ZeroPagedArray {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  ZeroPagedArray() = default;
  ~ZeroPagedArray() { release(); }
  ZeroPagedArray(const ZeroPagedArray&) = delete;
  ZeroPagedArray& operator=(const ZeroPagedArray&) = delete;

  // `n` zero entries (none before).
  void reset(size_t n) {
    release();
    if (n == 0) return;
    void* p = mmap(nullptr, n * sizeof(T), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    TTVM_ASSERT(p != MAP_FAILED, "cannot map ", n * sizeof(T), " bytes: ", std::strerror(errno));
    data_ = static_cast<T*>(p);
    size_ = n;
  }
  // Every entry zero again.
  void clear() {
    if (data_ != nullptr) madvise(data_, size_ * sizeof(T), MADV_DONTNEED);
  }
  size_t size() const { return size_; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }

 private:
  void release() {
    if (data_ != nullptr) munmap(data_, size_ * sizeof(T));
    data_ = nullptr;
    size_ = 0;
  }
  T* data_ = nullptr;
  size_t size_ = 0;
};

struct CpuImpl::Internals {
  // Decoded instructions live in a pool filled in decode order, so code that
  // runs sequentially also sits together in the host cache; `index` maps
  // phys & mask to a pool entry (nullptr = none). When the pool is full the
  // whole decode cache is dropped and refilled.
  //
  // The pool's storage (kDecodePoolSize entries, 8 MiB at 128 bytes each) is
  // not initialised: fetchSlow constructs pool[poolUsed] when it takes it.
  // Value-initialising it all cost every Cpu construction milliseconds (the
  // recorder builds a second Cpu per recording, replay several) for entries
  // a short run never reaches.
  std::vector<DecodeCacheEntry*> index;  // 1 << kDecodeCacheBits slots
  DecodePoolStorage pool;
  size_t poolUsed = 0;
  // Per RAM page: a bit per 64-byte chunk that holds (part of) a cached
  // instruction. Writes to a chunk with its bit set drop the cached code there.
  ZeroPagedArray<uint64_t> codeChunks;
  // Dirty-page tracking: `dirty` has a byte per RAM page, 1 once the CPU
  // wrote the page since the last takeDirtyPages; `dirtyPages` lists exactly
  // those pages, in the order first written, so that taking them costs the
  // pages written, not a byte per page of RAM.
  bool dirtyTracking = false;
  ZeroPagedArray<uint8_t> dirty;
  std::vector<uint64_t> dirtyPages;
  void markDirty(uint64_t pfn) {
    if (dirtyTracking && !dirty[pfn]) {
      dirty[pfn] = 1;
      dirtyPages.push_back(pfn);
    }
  }
  // Access tracking (what `ttvm slice` keeps of RAM): `accessed` has a byte
  // per RAM page, 1 once the CPU read, wrote or fetched from it (page-table
  // walks and descriptor loads included); `accessedPages` lists them. A TLB
  // fill counts as an access of its page, so the fast paths need no check:
  // turning tracking on drops the TLB and the decoded code.
  bool accessTracking = false;
  ZeroPagedArray<uint8_t> accessed;
  std::vector<uint64_t> accessedPages;
  void markAccessed(uint64_t pfn) {
    if (accessTracking && !accessed[pfn]) {
      accessed[pfn] = 1;
      accessedPages.push_back(pfn);
    }
  }
  std::vector<DebuggerBreakpoint> breakpoints;
  std::vector<DebuggerWatchpoint> watchpoints;
  bool watchHit = false;
  WatchHit hit;
  std::unordered_set<std::string> unimplementedSeen;
  ZydisDecoder decoders[7];  // per CpuMode
  Instr scratch;             // an instruction that cannot be cached (page-crossing, MMIO)
};

inline constexpr uint64_t kDr6Bs = 1u << 14;
inline constexpr uint64_t kDr6Bd = 1u << 13;

// Decodes the bytes at `bytes` for `mode` into `out` (handler looked up in the
// HandlerTable). Returns false if Zydis rejects them (the caller raises #UD);
// `needMore` is set when the bytes ended before the instruction did.
bool decodeInstr(const ZydisDecoder& dec, CpuMode mode, const uint8_t* bytes, unsigned n,
                 Instr& out, bool& needMore, bool& tooLong);
// The handler of every mnemonic without one: #UD, logged once.
ExecStatus handleUnimplemented(CpuImpl& cpu, const Instr& i);
void initDecoder(ZydisDecoder& dec, CpuMode mode);
// Decoder modes that depend on the CPU model (TZCNT/LZCNT vs REP BSF/BSR).
void configureDecoderForModel(ZydisDecoder& dec, const CpuModel& model);

}  // namespace ttvm
