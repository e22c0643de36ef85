// The ioctl half of the KVM layer (see kvm.h).
#include "ttvm/kvm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <mutex>

#include "ttvm/base/hex.h"
#include "ttvm/kvm/kvm_abi.h"

namespace ttvm::kvm {

namespace {

constexpr int kApiVersion = 12;
constexpr size_t kPage = 4096;

std::string errnoText(int err) {
  return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
}

Error ioctlError(const char* what, int err) {
  return makeError(std::string(what) + " failed: " + errnoText(err));
}

// kvm_cpuid2 and kvm_msrs end in a flexible array that <linux/kvm.h>
// declares through __DECLARE_FLEX_ARRAY, whose empty struct has size 1 in
// C++ (0 in C): in C++ the array starts 4 or 8 bytes late and the ioctl
// numbers, which encode sizeof, are wrong (KVM answers EINVAL). The C layout
// and numbers, spelled out:
struct CpuidHeader {
  uint32_t nent;
  uint32_t padding;
};
struct MsrsHeader {
  uint32_t nmsrs;
  uint32_t pad;
};
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);
constexpr unsigned long kGetCpuid2 = _IOWR(KVMIO, 0x91, CpuidHeader);
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
// struct kvm_xsave likewise (its `extra` tail): 4096 bytes in C.
constexpr unsigned long kGetXsave = _IOR(KVMIO, 0xa4, XsaveRegion);
constexpr unsigned long kSetXsave = _IOW(KVMIO, 0xa5, XsaveRegion);
static_assert(sizeof(XsaveRegion) == 4096);

// A header followed by `n` zeroed entries, as one C-layout block.
template <class Head, class Entry>
class Flexible {
 public:
  explicit Flexible(uint32_t n) : bytes_(sizeof(Head) + n * sizeof(Entry)) {}
  Head* head() { return reinterpret_cast<Head*>(bytes_.data()); }
  Entry* entries() { return reinterpret_cast<Entry*>(bytes_.data() + sizeof(Head)); }

 private:
  std::vector<uint8_t> bytes_;  // operator new's alignment (16) suits both
};
using CpuidBlock = Flexible<CpuidHeader, kvm_cpuid_entry2>;
using MsrBlock = Flexible<MsrsHeader, kvm_msr_entry>;

struct Capability {
  int id;
  const char* name;
};
// What ttvm's KVM code relies on, checked once at open.
constexpr Capability kRequired[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {KVM_CAP_SET_GUEST_DEBUG, "KVM_CAP_SET_GUEST_DEBUG"},
    {KVM_CAP_DEBUGREGS, "KVM_CAP_DEBUGREGS"},
    {KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS"},
};

void noOpHandler(int) {}

}  // namespace

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

// ---- Kvm ---------------------------------------------------------------------

Result<Kvm> Kvm::open(const std::string& path) {
  const std::string fallback = "; use --backend emu to record with ttvm's emulator instead";
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENXIO || err == ENODEV)
      return makeError(path + ": " + errnoText(err) +
                       ": this host has no KVM (the kvm module is not loaded, the CPU lacks "
                       "VMX/SVM, or this is a VM without nested virtualization)" +
                       fallback);
    if (err == EACCES || err == EPERM)
      return makeError(path + ": " + errnoText(err) +
                       ": no permission to use KVM (add the user to the group that owns " + path +
                       ", usually 'kvm')" + fallback);
    return makeError(path + ": cannot open: " + errnoText(err) + fallback);
  }
  Fd kvm(fd);
  const int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
  if (version < 0)
    return makeError(path + ": not a KVM device (KVM_GET_API_VERSION: " + errnoText(errno) + ")" +
                     fallback);
  if (version != kApiVersion)
    return makeError(path + ": KVM API version " + std::to_string(version) + ", ttvm needs " +
                     std::to_string(kApiVersion) + fallback);
  std::string missing;
  for (const Capability& c : kRequired)
    if (::ioctl(fd, KVM_CHECK_EXTENSION, c.id) <= 0)
      missing += (missing.empty() ? "" : ", ") + std::string(c.name);
  if (!missing.empty()) return makeError(path + ": this KVM lacks " + missing + fallback);
  const int mapSize = ::ioctl(fd, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (mapSize < int(sizeof(kvm_run)))
    return makeError(path + ": KVM_GET_VCPU_MMAP_SIZE returned " + std::to_string(mapSize) +
                     (mapSize < 0 ? ": " + errnoText(errno) : std::string()));
  KvmCapabilities caps;
  caps.xsave = ::ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0;
  caps.xcrs = ::ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;
  caps.userSpaceMsr = ::ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_USER_SPACE_MSR) > 0 &&
                      ::ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_MSR_FILTER) > 0;
  caps.tscControl = ::ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_CONTROL) > 0;
  constexpr int kSyncWanted = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS | KVM_SYNC_X86_EVENTS;
  caps.syncRegs =
      (::ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS) & kSyncWanted) == kSyncWanted;
  return Kvm(std::move(kvm), path, size_t(mapSize), caps);
}

int Kvm::checkExtension(int capability) const {
  const int r = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability);
  return r < 0 ? 0 : r;
}

Result<std::vector<CpuidLeaf>> Kvm::supportedCpuid() const {
  // KVM says E2BIG while the array is too small.
  for (uint32_t n = 64; n <= 4096; n *= 2) {
    CpuidBlock c(n);
    c.head()->nent = n;
    if (::ioctl(fd_.get(), kGetSupportedCpuid, c.head()) == 0)
      return fromKvmCpuid(std::span<const kvm_cpuid_entry2>(c.entries(), c.head()->nent));
    if (errno != E2BIG) return ioctlError("KVM_GET_SUPPORTED_CPUID", errno);
  }
  return makeError("KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

Result<Vm> Kvm::createVm() const {
  int fd;
  do {
    fd = ::ioctl(fd_.get(), KVM_CREATE_VM, 0);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ioctlError("KVM_CREATE_VM", errno);
  Fd vm(fd);
  // Intel VMX needs three pages for real-mode emulation; the address is
  // QEMU's, just under the BIOS at 4 GiB. AMD ignores it.
  if (::ioctl(fd, KVM_SET_TSS_ADDR, 0xFFFBD000ul) < 0) return ioctlError("KVM_SET_TSS_ADDR", errno);
  return Vm(std::move(vm), runMapSize_, caps_);
}

Status Kvm::checkGuestCpuid() const {
  const std::string fallback = "; use --backend emu to record with ttvm's emulator instead";
  void* p = ::mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return makeError("mmap of the self-check page failed: " + errnoText(errno));
  std::unique_ptr<void, void (*)(void*)> page(p, [](void* q) { ::munmap(q, kPage); });
  auto* ram = static_cast<uint8_t*>(p);
  std::memcpy(ram, kSelfCheckCode, sizeof kSelfCheckCode);
  Result<Vm> vm = createVm();
  if (!vm) return vm.error();
  TTVM_TRY(vm->setMemory(0, 0, {ram, kPage}));
  Result<Vcpu> vcpu = vm->createVcpu(0);
  if (!vcpu) return vcpu.error();
  // A vendor string no CPU has, and leaf 1 with no features but the FPU and
  // the APIC (which KVM mirrors from IA32_APIC_BASE.EN, enabled at reset).
  CpuModel probe;
  probe.name = "ttvm CPUID self-check";
  const char vendor[] = "ttvmCPUIDchk";
  uint32_t words[3];
  std::memcpy(words, vendor, 12);
  constexpr uint32_t kEdx1 = (1u << 0) | (1u << 9);
  probe.cpuid.push_back(CpuidLeaf{0, 0, false, 1, words[0], words[2], words[1]});
  probe.cpuid.push_back(CpuidLeaf{1, 0, false, 0x000306A9, 0, 0, kEdx1});
  TTVM_TRY(vcpu->setCpuid(probe));
  CpuState s = resetState();
  for (SegmentRegister& r : s.seg) r = {0, 0, 0xFFFF, 0x93};
  s.segment(SegReg::kCs) = {0, 0, 0xFFFF, 0x9B};
  s.rip = 0;
  TTVM_TRY(vcpu->setState(s));
  uint32_t seen[5];
  for (uint32_t& v : seen) {
    Result<VcpuExit> e = vcpu->run();
    if (!e) return e.error();
    if (e->kind != ExitKind::kIo || e->io.in || e->io.port != kSelfCheckPort || e->io.size != 4)
      return makeError(path_ + ": the CPUID self-check guest stopped with " + describe(*e) +
                       " instead of writing what CPUID returned" + fallback);
    std::memcpy(&v, e->io.data.data(), 4);
  }
  const std::string seenVendor(reinterpret_cast<const char*>(seen), 12);
  const std::string notApplied = path_ + ": KVM did not apply KVM_SET_CPUID2: the guest saw ";
  const std::string why =
      ": guests would see the host's CPU, not ttvm's model, and a recording could not replay "
      "(a paravirtualized or incomplete KVM)" +
      fallback;
  if (seenVendor != std::string(vendor, 12))
    return makeError(notApplied + "vendor '" + seenVendor + "' instead of '" +
                     std::string(vendor, 12) + "'" + why);
  if (seen[3] != 0 || seen[4] != kEdx1)
    return makeError(notApplied + "CPUID.1 ECX " + hex(seen[3]) + " EDX " + hex(seen[4]) +
                     " instead of ECX 0 EDX " + hex(kEdx1) + why);
  Result<VcpuExit> h = vcpu->run();
  if (!h) return h.error();
  if (h->kind != ExitKind::kHlt)
    return makeError(path_ + ": the CPUID self-check guest did not halt: " + describe(*h) +
                     fallback);
  return {};
}

// ---- Vm ----------------------------------------------------------------------

Status Vm::setMemory(uint32_t slot, uint64_t guestPhys, std::span<uint8_t> host, bool logDirty) {
  const auto hostAddr = reinterpret_cast<uint64_t>(host.data());
  if (hostAddr % kPage != 0 || host.size() % kPage != 0 || guestPhys % kPage != 0 || host.empty())
    return makeError("memory slot " + std::to_string(slot) + ": guest " + hex(guestPhys) +
                     ", host " + hex(hostAddr) + ", " + hex(host.size()) +
                     " bytes: all three must be multiples of 4096 (and the size non-zero)");
  kvm_userspace_memory_region r{};
  r.slot = slot;
  r.guest_phys_addr = guestPhys;
  r.memory_size = host.size();
  r.userspace_addr = hostAddr;
  r.flags = logDirty ? KVM_MEM_LOG_DIRTY_PAGES : 0;
  if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &r) < 0)
    return makeError("KVM_SET_USER_MEMORY_REGION (slot " + std::to_string(slot) + ", guest " +
                     hex(guestPhys) + ", " + hex(host.size()) +
                     " bytes) failed: " + errnoText(errno));
  return {};
}

Status Vm::takeDirtyLog(uint32_t slot, std::span<uint64_t> bitmap) {
  kvm_dirty_log d{};
  d.slot = slot;
  d.dirty_bitmap = bitmap.data();
  if (::ioctl(fd_.get(), KVM_GET_DIRTY_LOG, &d) < 0)
    return makeError("KVM_GET_DIRTY_LOG (slot " + std::to_string(slot) +
                     ") failed: " + errnoText(errno));
  return {};
}

static_assert(InternalErrorExit::kEmulation == KVM_INTERNAL_ERROR_EMULATION);

Status Vm::exitOnEmulationFailure() {
  kvm_enable_cap cap{};
  cap.cap = KVM_CAP_EXIT_ON_EMULATION_FAILURE;
  cap.args[0] = 1;
  if (::ioctl(fd_.get(), KVM_ENABLE_CAP, &cap) < 0)
    return ioctlError("KVM_ENABLE_CAP (KVM_CAP_EXIT_ON_EMULATION_FAILURE, Linux 5.14+)", errno);
  return {};
}

Status Vm::msrsToUserSpace() {
  if (!caps_.userSpaceMsr)
    return makeError(
        "this KVM cannot send MSR accesses to user space (KVM_CAP_X86_USER_SPACE_MSR and "
        "KVM_CAP_X86_MSR_FILTER, Linux 5.10+)");
  kvm_enable_cap cap{};
  cap.cap = KVM_CAP_X86_USER_SPACE_MSR;
  cap.args[0] =
      KVM_MSR_EXIT_REASON_INVAL | KVM_MSR_EXIT_REASON_UNKNOWN | KVM_MSR_EXIT_REASON_FILTER;
  if (::ioctl(fd_.get(), KVM_ENABLE_CAP, &cap) < 0)
    return ioctlError("KVM_ENABLE_CAP (KVM_CAP_X86_USER_SPACE_MSR)", errno);
  const KvmMsrFilter filter(inKernelMsrs());
  if (::ioctl(fd_.get(), KVM_X86_SET_MSR_FILTER, &filter.get()) < 0)
    return ioctlError("KVM_X86_SET_MSR_FILTER", errno);
  return {};
}

Result<Vcpu> Vm::createVcpu(uint32_t id) {
  const int fd = ::ioctl(fd_.get(), KVM_CREATE_VCPU, id);
  if (fd < 0) return ioctlError("KVM_CREATE_VCPU", errno);
  Fd vcpu(fd);
  void* map = ::mmap(nullptr, runMapSize_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return makeError("mmap of the vCPU's kvm_run failed: " + errnoText(errno));
  // Every KVM_RUN from now on leaves regs, sregs and events in kvm_run.
  if (caps_.syncRegs)
    static_cast<kvm_run*>(map)->kvm_valid_regs =
        KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS | KVM_SYNC_X86_EVENTS;
  return Vcpu(std::move(vcpu), static_cast<kvm_run*>(map), runMapSize_, caps_);
}

Status probeGuestBranchCounter() {
  perf_event_attr a{};
  a.size = sizeof a;
  a.type = PERF_TYPE_HARDWARE;
  a.config = PERF_COUNT_HW_BRANCH_INSTRUCTIONS;
  a.exclude_host = 1;
  a.exclude_kernel = 0;
  a.disabled = 1;
  const long fd = ::syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
  if (fd < 0)
    return makeError("perf_event_open of a guest-only retired-branch counter failed: " +
                     errnoText(errno));
  ::close(int(fd));
  return {};
}

// ---- Vcpu --------------------------------------------------------------------

Vcpu::Vcpu(Vcpu&& o) noexcept
    : fd_(std::move(o.fd_)),
      run_(o.run_),
      mapSize_(o.mapSize_),
      caps_(o.caps_),
      halted_(o.halted_),
      singleStep_(o.singleStep_),
      kicksMasked_(o.kicksMasked_),
      completionPending_(o.completionPending_),
      stepRip_(o.stepRip_),
      synced_(o.synced_),
      last_(std::move(o.last_)),
      known_(o.known_),
      stats_(std::move(o.stats_)) {
  o.run_ = nullptr;
  TTVM_ASSERT(!o.kickReady_.load(), "a Vcpu moved after prepareKick()");
}

Vcpu::~Vcpu() {
  if (run_ != nullptr) ::munmap(run_, mapSize_);
}

int Vcpu::call(unsigned long request, const char* name, unsigned long arg) const {
  timespec t0{}, t1{};
  clock_gettime(CLOCK_MONOTONIC, &t0);
  const int rc = ::ioctl(fd_.get(), request, arg);
  const int err = errno;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  IoctlStat* st = nullptr;
  for (IoctlStat& s : stats_)
    if (s.name == name) st = &s;
  if (st == nullptr) st = &stats_.emplace_back(IoctlStat{name, 0, 0});
  ++st->calls;
  st->ns += uint64_t((t1.tv_sec - t0.tv_sec) * 1'000'000'000ll + (t1.tv_nsec - t0.tv_nsec));
  errno = err;
  return rc;
}

Status Vcpu::setCpuid(const CpuModel& model) {
  const std::vector<kvm_cpuid_entry2> entries = toKvmCpuid(model);
  CpuidBlock c(uint32_t(entries.size()));
  c.head()->nent = uint32_t(entries.size());
  std::copy(entries.begin(), entries.end(), c.entries());
  if (call(kSetCpuid2, "KVM_SET_CPUID2", c.head()) < 0)
    return makeError("KVM_SET_CPUID2 with the " + std::to_string(entries.size()) +
                     " leaves of CPU model '" + model.name + "' failed: " + errnoText(errno));
  return {};
}

Result<std::vector<CpuidLeaf>> Vcpu::cpuid() const {
  // Kernels differ in whether they write the number of entries back (6.1
  // does so neither on success nor on E2BIG), so the array is pre-filled
  // with entries KVM never produces and its answer is where they start.
  for (uint32_t n = 16; n <= 4096; n *= 2) {
    CpuidBlock c(n);
    c.head()->nent = n;
    kvm_cpuid_entry2 unused{};
    unused.function = 0xFFFFFFFF;
    unused.flags = 0xFFFFFFFF;
    std::fill(c.entries(), c.entries() + n, unused);
    if (call(kGetCpuid2, "KVM_GET_CPUID2", c.head()) == 0) {
      uint32_t count = std::min(c.head()->nent, n);
      while (count > 0 && c.entries()[count - 1].function == unused.function &&
             c.entries()[count - 1].flags == unused.flags)
        --count;
      return fromKvmCpuid(std::span<const kvm_cpuid_entry2>(c.entries(), count));
    }
    if (errno != E2BIG) return ioctlError("KVM_GET_CPUID2", errno);
  }
  return makeError("KVM_GET_CPUID2: more than 4096 entries");
}

Status Vcpu::setState(const CpuState& s) {
  Result<KvmCpuState> k = toKvm(s);
  if (!k) return k.error();
  changed();
  // SREGS first: KVM checks REGS' RFLAGS and the MSRs against the mode.
  if (call(KVM_SET_SREGS, "KVM_SET_SREGS", &k->sregs) < 0)
    return makeError("KVM_SET_SREGS failed: " + errnoText(errno) + " (cr0 " + hex(s.cr0) +
                     ", cr4 " + hex(s.cr4) + ", efer " + hex(s.msr.efer) + ", apic base " +
                     hex(s.msr.apicBase) + ")");
  if (call(KVM_SET_REGS, "KVM_SET_REGS", &k->regs) < 0) return ioctlError("KVM_SET_REGS", errno);
  if (caps_.xsave) {
    const XsaveRegion x = toXsaveRegion(k->fpu);
    if (call(kSetXsave, "KVM_SET_XSAVE", x.data()) < 0)
      return makeError("KVM_SET_XSAVE failed: " + errnoText(errno) + " (mxcsr " + hex(s.fpu.mxcsr) +
                       ")");
  } else if (call(KVM_SET_FPU, "KVM_SET_FPU", &k->fpu) < 0) {  // MXCSR is lost here
    return ioctlError("KVM_SET_FPU", errno);
  }
  if (call(KVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS", &k->debugregs) < 0)
    return makeError("KVM_SET_DEBUGREGS failed: " + errnoText(errno) + " (dr6 " + hex(s.dr6) +
                     ", dr7 " + hex(s.dr7) + ")");
  // KVM_CAP_XCRS exists where the host has XSAVE; without it XCR0 is 1.
  if (caps_.xcrs && call(KVM_SET_XCRS, "KVM_SET_XCRS", &k->xcrs) < 0)
    return makeError("KVM_SET_XCRS failed: " + errnoText(errno) + " (xcr0 " + hex(s.xcr0) + ")");
  MsrBlock msrs(uint32_t(k->msrs.size()));
  msrs.head()->nmsrs = uint32_t(k->msrs.size());
  std::copy(k->msrs.begin(), k->msrs.end(), msrs.entries());
  const int set = call(kSetMsrs, "KVM_SET_MSRS", msrs.head());
  if (set < 0) return ioctlError("KVM_SET_MSRS", errno);
  if (size_t(set) != k->msrs.size())  // KVM stops at the first MSR it refuses
    return makeError(std::string("KVM_SET_MSRS refused ") + kOwnedMsrs[size_t(set)].name + " (" +
                     hex(kOwnedMsrs[size_t(set)].index) + ") = " + hex(k->msrs[size_t(set)].data));
  if (call(KVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS", &k->events) < 0)
    return ioctlError("KVM_SET_VCPU_EVENTS", errno);
  // Without an in-kernel LAPIC, KVM_RUN loads CR8 from kvm_run at entry.
  run_->cr8 = s.cr8;
  halted_ = k->halted;
  last_ = std::move(*k);
  known_ = true;
  return {};
}

Result<CpuState> Vcpu::state() const {
  return state(state_part::kAll);
}

Result<CpuState> Vcpu::state(StateParts parts) const {
  if (!known_) parts = state_part::kAll;
  KvmCpuState& k = last_;
  if (synced_) {
    k.regs = run_->s.regs.regs;
    k.sregs = run_->s.regs.sregs;
    k.events = run_->s.regs.events;
  } else {
    if (call(KVM_GET_REGS, "KVM_GET_REGS", &k.regs) < 0) return ioctlError("KVM_GET_REGS", errno);
    if (call(KVM_GET_SREGS, "KVM_GET_SREGS", &k.sregs) < 0)
      return ioctlError("KVM_GET_SREGS", errno);
    if (call(KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS", &k.events) < 0)
      return ioctlError("KVM_GET_VCPU_EVENTS", errno);
  }
  if (parts & state_part::kFpu) {
    if (caps_.xsave) {
      XsaveRegion x{};
      if (call(kGetXsave, "KVM_GET_XSAVE", x.data()) < 0) return ioctlError("KVM_GET_XSAVE", errno);
      k.fpu = fromXsaveRegion(x);
    } else if (call(KVM_GET_FPU, "KVM_GET_FPU", &k.fpu) < 0) {
      return ioctlError("KVM_GET_FPU", errno);
    }
  }
  if ((parts & state_part::kDebugRegs) &&
      call(KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS", &k.debugregs) < 0)
    return ioctlError("KVM_GET_DEBUGREGS", errno);
  if ((parts & state_part::kXcr0) && caps_.xcrs && call(KVM_GET_XCRS, "KVM_GET_XCRS", &k.xcrs) < 0)
    return ioctlError("KVM_GET_XCRS", errno);
  if (parts & state_part::kMsrs) {
    MsrBlock msrs(uint32_t(kOwnedMsrs.size()));
    msrs.head()->nmsrs = uint32_t(kOwnedMsrs.size());
    for (size_t i = 0; i < kOwnedMsrs.size(); ++i) msrs.entries()[i].index = kOwnedMsrs[i].index;
    const int got = call(kGetMsrs, "KVM_GET_MSRS", msrs.head());
    if (got < 0) return ioctlError("KVM_GET_MSRS", errno);
    if (size_t(got) != kOwnedMsrs.size())
      return makeError(std::string("KVM_GET_MSRS cannot read ") + kOwnedMsrs[size_t(got)].name +
                       " (" + hex(kOwnedMsrs[size_t(got)].index) + ")");
    k.msrs.assign(msrs.entries(), msrs.entries() + kOwnedMsrs.size());
  }
  known_ = true;
  k.halted = halted_;
  return fromKvm(k);
}

Status Vcpu::armSingleStep(bool on) {
  kvm_guest_debug d{};
  d.control = on ? (KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP) : 0;
  changed();
  if (call(KVM_SET_GUEST_DEBUG, "KVM_SET_GUEST_DEBUG", &d) < 0)
    return ioctlError(
        on ? "KVM_SET_GUEST_DEBUG (single-step on)" : "KVM_SET_GUEST_DEBUG (single-step off)",
        errno);
  return {};
}

Result<uint64_t> Vcpu::rip() const {
  if (synced_) return uint64_t(run_->s.regs.regs.rip);
  kvm_regs regs{};
  if (call(KVM_GET_REGS, "KVM_GET_REGS", &regs) < 0) return ioctlError("KVM_GET_REGS", errno);
  return uint64_t(regs.rip);
}

Result<Vcpu::RipFlags> Vcpu::ripAndFlags() const {
  kvm_regs regs{};
  if (call(KVM_GET_REGS, "KVM_GET_REGS", &regs) < 0) return ioctlError("KVM_GET_REGS", errno);
  return RipFlags{regs.rip, regs.rflags};
}

Status Vcpu::queueSingleStepTrap() {
  return queueDebugTrap(1u << 14, false);  // BS; B0-B3 cleared
}

Status Vcpu::queueBreakpointTrap(uint64_t hits) {
  return queueDebugTrap(hits & 0xF, true);
}

Status Vcpu::queueDebugTrap(uint64_t dr6Bits, bool joinQueued) {
  changed();
  kvm_vcpu_events ev{};
  if (call(KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS", &ev) < 0)
    return ioctlError("KVM_GET_VCPU_EVENTS", errno);
  const bool queued = (ev.exception.injected || ev.exception.pending) && ev.exception.nr == 1;
  if (queued && !joinQueued) return {};
  kvm_debugregs dbg{};
  if (call(KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS", &dbg) < 0)
    return ioctlError("KVM_GET_DEBUGREGS", errno);
  // A new trap reports its own B0-B3; one joining KVM's adds its bits.
  dbg.dr6 = queued ? dbg.dr6 | dr6Bits : (dbg.dr6 & ~0xFull) | dr6Bits;
  if (call(KVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS", &dbg) < 0)
    return ioctlError("KVM_SET_DEBUGREGS", errno);
  if (queued) return {};
  ev.exception.injected = 1;
  ev.exception.pending = 0;
  ev.exception.nr = 1;
  ev.exception.has_error_code = 0;
  ev.exception.error_code = 0;
  ev.exception_has_payload = 0;
  ev.flags &= ~KVM_VCPUEVENT_VALID_PAYLOAD;
  if (call(KVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS", &ev) < 0)
    return ioctlError("KVM_SET_VCPU_EVENTS (a #DB trap)", errno);
  return {};
}

Status Vcpu::setSingleStep(bool on) {
  if (on == singleStep_) return {};
  TTVM_TRY(armSingleStep(on));
  singleStep_ = on;
  completionPending_ = false;
  if (on) {
    Result<uint64_t> r = rip();
    if (!r) return r.error();
    stepRip_ = *r;
  }
  return {};
}

Result<VcpuExit> Vcpu::enter() {
  const int rc = call(KVM_RUN, "KVM_RUN", 0);
  synced_ = caps_.syncRegs;  // KVM stores them on every return, EINTR included
  if (rc < 0) {
    const int err = errno;
    if (err == EINTR) {
      __atomic_store_n(&run_->immediate_exit, 0, __ATOMIC_SEQ_CST);
      if (kicksMasked_) {
        // Blocked outside KVM_RUN, the kick is still pending: take it, or
        // every later KVM_RUN would return at once (as QEMU eats SIG_IPI).
        sigset_t kick;
        sigemptyset(&kick);
        sigaddset(&kick, kickSignal());
        const timespec zero{};
        while (sigtimedwait(&kick, nullptr, &zero) > 0) {
        }
      }
      VcpuExit e;
      e.kind = ExitKind::kInterrupted;
      e.rawReason = KVM_EXIT_INTR;
      return e;
    }
    return ioctlError("KVM_RUN", err);
  }
  return noteExit(decodeExit(*run_, mapSize_));
}

VcpuExit Vcpu::noteExit(VcpuExit e) {
  if (e.kind == ExitKind::kHlt) halted_ = true;
  if (singleStep_) {
    if (e.kind == ExitKind::kDebug) stepRip_ = e.debug.pc;
    completionPending_ =
        e.kind == ExitKind::kIo || e.kind == ExitKind::kMmio || e.kind == ExitKind::kMsr;
  }
  return e;
}

Result<VcpuExit> Vcpu::run() {
  TTVM_ASSERT(!halted_, "Vcpu::run() on a halted vCPU: deliver an interrupt (setState) first");
  if (!singleStep_) return enter();
  if (completionPending_) {
    // Let KVM finish the instruction that exited without entering the
    // guest: KVM_RUN completes pending I/O before it looks at immediate_exit.
    completionPending_ = false;
    __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_SEQ_CST);
    const int rc = call(KVM_RUN, "KVM_RUN", 0);
    const int err = errno;
    synced_ = caps_.syncRegs;
    __atomic_store_n(&run_->immediate_exit, 0, __ATOMIC_SEQ_CST);
    if (rc == 0) return noteExit(decodeExit(*run_, mapSize_));  // its trap, or the next I/O
    if (err != EINTR) return ioctlError("KVM_RUN (completing an exit)", err);
    Result<uint64_t> now = rip();
    if (!now) return now.error();
    if (*now != stepRip_) {
      // The instruction retired and KVM reported no trap (an MMIO write).
      TTVM_TRY(armSingleStep(true));
      stepRip_ = *now;
      kvm_debugregs dbg{};
      if (call(KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS", &dbg) < 0)
        return ioctlError("KVM_GET_DEBUGREGS", errno);
      VcpuExit e;
      e.kind = ExitKind::kDebug;
      e.rawReason = KVM_EXIT_DEBUG;
      e.debug.exception = 1;
      e.debug.pc = *now;
      e.debug.dr6 = 0xFFFF0FF0 | (1u << 14);  // DR6.BS over the fixed-1 bits
      e.debug.dr7 = dbg.dr7;
      e.debug.repaired = true;
      return e;
    }
    // Still at a REP string instruction with iterations (or its final
    // zero-count pass) to go: enter, stepping armed.
  }
  // KVM sets TF only while RIP is where stepping was armed, so an
  // instruction its emulator completed leaves the guest running free: arm
  // again at every entry (see setSingleStep).
  TTVM_TRY(armSingleStep(true));
  return enter();
}

int Vcpu::kickSignal() {
  static const int sig = [] {
    const int s = SIGRTMIN + 3;
    struct sigaction sa {};
    sa.sa_handler = noOpHandler;  // no SA_RESTART: KVM_RUN returns EINTR
    sigemptyset(&sa.sa_mask);
    sigaction(s, &sa, nullptr);
    return s;
  }();
  return sig;
}

Status Vcpu::kickOnlyInRun() {
  const int sig = kickSignal();
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, sig);
  sigset_t old;
  if (pthread_sigmask(SIG_BLOCK, &block, &old) != 0)
    return makeError("cannot block the kick signal: pthread_sigmask failed");
  // The mask inside KVM_RUN: the thread's own, with the kick signal open.
  // The kernel's sigset is 8 bytes (glibc's sigset_t is larger).
  sigdelset(&old, sig);
  struct {
    uint32_t len;
    uint8_t sigset[8];
  } mask{};
  mask.len = 8;
  std::memcpy(mask.sigset, &old, 8);
  constexpr unsigned long kSetSignalMask = _IOW(KVMIO, 0x8b, uint32_t);
  if (call(kSetSignalMask, "KVM_SET_SIGNAL_MASK", &mask) < 0)
    return ioctlError("KVM_SET_SIGNAL_MASK", errno);
  kicksMasked_ = true;
  return {};
}

Result<bool> Vcpu::eventQueued() const {
  auto q = queuedEvents();
  if (!q) return q.error();
  return q->interrupt || q->nmi;
}

Result<Vcpu::QueuedEvents> Vcpu::queuedEvents() const {
  kvm_vcpu_events ev{};
  if (call(KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS", &ev) < 0)
    return ioctlError("KVM_GET_VCPU_EVENTS", errno);
  return QueuedEvents{ev.interrupt.injected != 0, ev.nmi.injected != 0 || ev.nmi.pending != 0};
}

bool Vcpu::readyForInterrupt() const {
  return run_->ready_for_interrupt_injection != 0 && run_->if_flag != 0;
}

Status Vcpu::injectInterrupt(uint8_t vector) {
  kvm_interrupt irq{};
  irq.irq = vector;
  changed();
  if (call(KVM_INTERRUPT, "KVM_INTERRUPT", &irq) < 0)
    return makeError("KVM_INTERRUPT of vector " + hex(vector) + " failed: " + errnoText(errno));
  halted_ = false;
  return {};
}

Status Vcpu::injectNmi() {
  changed();
  if (call(KVM_NMI, "KVM_NMI", 0) < 0) return ioctlError("KVM_NMI", errno);
  halted_ = false;
  return {};
}

void Vcpu::requestInterruptWindow(bool on) {
  run_->request_interrupt_window = on ? 1 : 0;
}

uint64_t Vcpu::exitCr8() const {
  return run_->cr8;
}

void Vcpu::setEntryCr8(uint64_t cr8) {
  run_->cr8 = cr8;
}

uint64_t Vcpu::exitApicBase() const {
  return run_->apic_base;
}

Result<std::optional<VcpuExit>> Vcpu::completeExit() {
  // This is the completion run() would otherwise make at the next entry.
  completionPending_ = false;
  __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_SEQ_CST);
  const int rc = call(KVM_RUN, "KVM_RUN", 0);
  const int err = errno;
  synced_ = caps_.syncRegs;
  __atomic_store_n(&run_->immediate_exit, 0, __ATOMIC_SEQ_CST);
  if (rc == 0) return std::optional<VcpuExit>(noteExit(decodeExit(*run_, mapSize_)));
  if (err != EINTR) return ioctlError("KVM_RUN (completing an exit)", err);
  return std::optional<VcpuExit>();
}

void Vcpu::answerMsr(std::optional<uint64_t> value) {
  answerMsrExit(*run_, value);
}

Status Vcpu::setTscKhz(uint32_t khz) {
  if (call(KVM_SET_TSC_KHZ, "KVM_SET_TSC_KHZ", static_cast<unsigned long>(khz)) < 0)
    return makeError("KVM_SET_TSC_KHZ " + std::to_string(khz) + " failed: " + errnoText(errno));
  return {};
}

Result<uint32_t> Vcpu::tscKhz() const {
  const int khz = call(KVM_GET_TSC_KHZ, "KVM_GET_TSC_KHZ", 0);
  if (khz < 0) return ioctlError("KVM_GET_TSC_KHZ", errno);
  return uint32_t(khz);
}

Result<uint64_t> Vcpu::guestTsc() const {
  MsrBlock m(1);
  m.head()->nmsrs = 1;
  m.entries()[0].index = 0x10;
  if (call(kGetMsrs, "KVM_GET_MSRS", m.head()) != 1)
    return ioctlError("KVM_GET_MSRS (IA32_TSC)", errno);
  return uint64_t(m.entries()[0].data);
}

Status Vcpu::setGuestTsc(uint64_t value) {
  MsrBlock m(1);
  m.head()->nmsrs = 1;
  m.entries()[0].index = 0x10;
  m.entries()[0].data = value;
  changed();
  if (call(kSetMsrs, "KVM_SET_MSRS", m.head()) != 1)
    return ioctlError("KVM_SET_MSRS (IA32_TSC)", errno);
  return {};
}

void Vcpu::prepareKick() {
  kickSignal();
  thread_ = pthread_self();
  kickReady_.store(true);
}

void Vcpu::kick() {
  TTVM_ASSERT(kickReady_.load(), "Vcpu::kick() before prepareKick() on the vCPU thread");
  __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_SEQ_CST);
  pthread_kill(thread_, kickSignal());
}

}  // namespace ttvm::kvm
