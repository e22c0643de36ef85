# The messages of a ttvm trace file (`.ttvm`), format version 1.6 (1.0 lacks
# the trace identity and sequence numbers: fields @8.. of Header and the
# fields marked 1.1 below; each later minor lacks the fields marked with the
# versions after it).
#
# A trace is a preamble, a sequence of checksummed frames and a trailer; the
# framing is described in formats/include/ttvm/formats/trace_writer.h and
# docs/trace-format.md. The payload of the HEAD, INIT, SNAP, CHNK and FOOT
# frames is one message of this schema (standard capnp serialization, then
# LZ4). RAM pages never travel in these messages: they follow INIT and SNAP as
# raw PAGE frames.
#
# Evolution: Cap'n Proto's rules. Add fields at the end with new ordinals;
# never renumber, retype or reuse one. Adding fields bumps the minor version
# and adds a golden trace under tests/data; anything else bumps the major.
#
# Integers are little-endian. Steps are the emulator's step count (one per
# retired instruction and per REP iteration) in emulator traces and the exit
# sequence number in KVM traces (Header.backend says which).

@0xd3a1c7e5b2f40917;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ttvm::schema");

# ---------------------------------------------------------------- header --

enum Backend {
  emulator @0;   # events carry step counts
  kvm @1;        # events carry exit sequence numbers
}

enum ImageFormat {
  flat @0;
  elf32 @1;
  elf64 @2;
  multiboot @3;
  bootSector @4;
  linux @5;
}

enum SymbolKind {
  other @0;
  function @1;
  object @2;
}

struct Symbol {
  name @0 :Text;
  address @1 :UInt64;   # guest virtual address
  size @2 :UInt64;      # bytes; 0 when unknown
  kind @3 :SymbolKind;
}

struct GuestImage {
  name @0 :Text;            # file name as given, no directories
  format @1 :ImageFormat;
  loadAddress @2 :UInt64;   # guest-physical address of the first loaded byte
  entry @3 :UInt64;         # first RIP
  bytes @4 :Data;           # the image file itself (the trace is self-contained)
  symbols @5 :List(Symbol); # sorted by address when taken from ELF
}

struct MachineConfig {
  ramBytes @0 :UInt64;          # guest RAM in bytes, a multiple of 4096
  devices @1 :List(Text);       # device descriptions, e.g. "serial@0x3f8"
  startClockUnixNs @2 :Int64;   # guest wall clock (RTC) at step 0, ns since 1970
  tscHz @3 :UInt64;             # virtual TSC frequency in Hz
  cmdline @4 :Text;             # kernel command line; may be empty
}

enum CpuVendor {
  intel @0;
  amd @1;
}

struct CpuidLeaf {
  leaf @0 :UInt32;
  subleaf @1 :UInt32;
  subleafSignificant @2 :Bool;  # ECX selects among entries of this leaf
  eax @3 :UInt32;
  ebx @4 :UInt32;
  ecx @5 :UInt32;
  edx @6 :UInt32;
}

struct CpuModel {
  name @0 :Text;
  vendor @1 :CpuVendor;
  cpuid @2 :List(CpuidLeaf);     # exact entries the CPU answers CPUID with
  tscFrequencyHz @3 :UInt64;     # nominal TSC frequency, Hz
  pushSegmentZeroExtends @4 :Bool;  # PUSH Sreg, 32/64-bit operand: the zero-extended
                                    # selector (AMD), else 16 bits written (Intel)  [since 1.5]
  sysretSkipsRipCheckAndSsCache @5 :Bool;  # SYSRET as the AMD APM defines it: RCX not
                                    # checked (a non-canonical one faults on the fetch, at
                                    # CPL 3), SS's base, limit and attributes kept, valid
                                    # outside 64-bit mode; else the SDM's (Intel)  [since 1.6]
}

struct MsrValue {
  index @0 :UInt32;
  value @1 :UInt64;
}

struct Header {
  ttvmVersion @0 :Text;           # version of the ttvm that recorded
  host @1 :Text;                  # host description (kernel, CPU)
  backend @2 :Backend;
  createdUnixNs @3 :Int64;        # wall time when recording started, ns since 1970
  machine @4 :MachineConfig;
  cpuModel @5 :CpuModel;
  modelMsrs @6 :List(MsrValue);   # MSRs the CPU model reports (not CPU-owned ones)
  images @7 :List(GuestImage);
  # 1.1: the trace's identity, 128 random bits drawn when the recording
  # starts. Every INIT, SNAP, CHNK and FOOT message repeats it, so frames of
  # another trace spliced in are refused. 0 in 1.0 traces (nothing checked).
  traceIdLo @8 :UInt64;
  traceIdHi @9 :UInt64;
  # 1.1: the minor version in the preamble, repeated under the header's
  # checksum (a changed preamble byte is noticed).
  formatMinor @10 :UInt16;
  # 1.2: Devices (names as in Machine's device state, e.g. "ide0") that
  # a replay runs itself: the trace holds none of their port reads or
  # writes, only what they cannot compute (disk sectors, as diskSector
  # events); their interrupts are recorded as always. Empty (every 1.0
  # and 1.1 trace): every device access is in the trace.
  replayedDevices @11 :List(Text);
  # 1.4: set when this trace is a slice of another (`ttvm slice`); null
  # otherwise. A slice keeps its source's step numbers: its initial state
  # (INIT) is the source's machine at step `fromStep` (CpuState.steps ==
  # fromStep) and its events are the source's from there.
  slice @12 :SliceOrigin;
  # 1.5: guest-physical page numbers a KVM recording kept out of KVM's
  # memory because their bytes hold RDTSC or RDTSCP (`ttvm record
  # --kvm-trap-tsc`): KVM cannot run code there, so ttvm's emulator ran
  # every instruction fetched from them, and each TSC value one of those
  # instructions read is an rdtsc event. Empty otherwise (and in older
  # traces): a KVM trace then holds no RDTSC value.
  emulatedPages @13 :List(UInt64);
}

# 1.4: where a slice comes from.
struct SliceOrigin {
  sourceTraceIdLo @0 :UInt64;   # the source's Header.traceId (0 for a 1.0 source)
  sourceTraceIdHi @1 :UInt64;
  fromStep @2 :UInt64;          # the source's step of this trace's initial state
  toStep @3 :UInt64;            # the source's step where this trace ends
  sourceEndStep @4 :UInt64;     # the step where the source's run ended
  sourceBytes @5 :UInt64;       # the source file's size in bytes
  sourceName @6 :Text;          # the source's file name, no directories
  # True when INIT holds only the RAM pages the CPU accesses over
  # [fromStep, toStep) (and those its state at fromStep points at); every
  # other page reads as zero in this trace although the source's run had
  # other bytes there. False: INIT holds the whole RAM (every non-zero page).
  partialRam @7 :Bool;
}

# ------------------------------------------------------------- CPU state --
# Mirrors ttvm::CpuState (emulator/include/ttvm/emulator/cpu_state.h) field
# for field; every field round-trips.

struct Segment {
  selector @0 :UInt16;
  base @1 :UInt64;        # linear base of the hidden descriptor cache
  limit @2 :UInt32;       # byte-granular limit (already scaled by G)
  attributes @3 :UInt32;  # VMX access-rights layout (type, S, DPL, P, AVL, L, D/B, G, unusable)
}

struct TableRegister {
  base @0 :UInt64;   # linear base
  limit @1 :UInt16;  # byte limit
}

struct Float80 {
  significand @0 :UInt64;
  signExponent @1 :UInt16;
}

struct Vec128 {
  lo @0 :UInt64;   # bits 0-63
  hi @1 :UInt64;   # bits 64-127
}

struct FpuState {
  fcw @0 :UInt16;
  fsw @1 :UInt16;         # TOP in bits 11-13
  ftw @2 :UInt8;          # abridged (FXSAVE) tag word
  fop @3 :UInt16;
  fip @4 :UInt64;
  fdp @5 :UInt64;
  fcs @6 :UInt16;
  fds @7 :UInt16;
  st @8 :List(Float80);   # exactly 8: physical registers R0..R7
  xmm @9 :List(Vec128);   # exactly 16
  mxcsr @10 :UInt32;
}

struct MsrState {
  efer @0 :UInt64;
  star @1 :UInt64;
  lstar @2 :UInt64;
  cstar @3 :UInt64;
  sfmask @4 :UInt64;
  kernelGsBase @5 :UInt64;
  sysenterCs @6 :UInt64;
  sysenterEsp @7 :UInt64;
  sysenterEip @8 :UInt64;
  pat @9 :UInt64;
  apicBase @10 :UInt64;
  tscAux @11 :UInt64;
  miscEnable @12 :UInt64;
  tscAdjust @13 :UInt64;
}

enum InterruptShadow {
  none @0;
  sti @1;     # after STI that set IF
  movSs @2;   # after MOV SS / POP SS
}

struct PendingEvents {
  shadow @0 :InterruptShadow;
  pendingDr6 @1 :UInt64;   # DR6 bits of a #DB deferred by a MOV SS shadow; 0 when none
  nmiBlocked @2 :Bool;
  halted @3 :Bool;
}

struct CpuState {
  gpr @0 :List(UInt64);     # exactly 16: RAX RCX RDX RBX RSP RBP RSI RDI R8-R15
  rip @1 :UInt64;
  rflags @2 :UInt64;
  seg @3 :List(Segment);    # exactly 6: ES CS SS DS FS GS
  gdtr @4 :TableRegister;
  idtr @5 :TableRegister;
  ldtr @6 :Segment;
  tr @7 :Segment;
  cr0 @8 :UInt64;
  cr2 @9 :UInt64;
  cr3 @10 :UInt64;
  cr4 @11 :UInt64;
  cr8 @12 :UInt64;          # task priority, bits 0-3
  xcr0 @13 :UInt64;
  dr @14 :List(UInt64);     # exactly 4: DR0-DR3
  dr6 @15 :UInt64;
  dr7 @16 :UInt64;
  msr @17 :MsrState;
  fpu @18 :FpuState;
  pending @19 :PendingEvents;
  steps @20 :UInt64;        # position in time (steps since the start of the run)
}

# ---------------------------------------------------- state and snapshots --

# The payload of INIT (initial state, step 0) and SNAP (a snapshot) frames.
# The RAM follows as `pageFrames` PAGE frames holding `pageCount` pages in
# total, in strictly increasing page-number order; pages not listed are zero.
struct MachineState {
  step @0 :UInt64;          # 0 for INIT; the snapshot's step for SNAP
  cpu @1 :CpuState;
  deviceState @2 :Data;     # opaque, owned and versioned by the recorder
  pageCount @3 :UInt64;
  pageFrames @4 :UInt32;
  traceIdLo @5 :UInt64;     # 1.1: Header.traceId
  traceIdHi @6 :UInt64;
  sequence @7 :UInt64;      # 1.1: 0 for INIT, k for the k-th snapshot (from 1)
  pagesCrc @8 :UInt32;      # 1.1: CRC32C of the PAGE frames' raw payloads, in order
}

# ---------------------------------------------------------------- events --

# The payload of a CHNK frame: `eventCount` events in step order, stored by
# column. Every column is a little-endian array in a Data blob (read without
# per-element pointers, which keeps decoding fast and lets LZ4 find the
# repetitions of each column). Event i has kind kind[i] (the numbers of
# ttvm::EventKind) and step = firstStep + stepDelta[0] + ... + stepDelta[i];
# stepDelta[0] is 0. A delta of 0xFFFFFFFF means "the next entry of bigStep".
# Each kind then takes its operands, in event order, from the columns below:
#
#   kind             columns consumed
#   portIn/portOut   port, size (1|2|4), value by size, count
#   mmioRead/Write   address, size (1|2|4|8), value by size
#   interrupt        value8 (vector)
#   nmi, interruptWindow, hlt, endOfRun   nothing
#   rdtsc            tsc (value minus the previous rdtsc value of this chunk,
#                    mod 2^64; the first is relative to 0)
#   rdrand           size (2|4|8), flags (bit 0: had entropy), value by size
#   msrRead          msr, value64
#   msrWrite         msr, flags (bit 0: accepted), value64
#   debugExit        value32 (status)
#   stateDigest      digest
#   diskSector       value8 (disk slot: 0 primary master, 1 primary slave,
#                    2 secondary master, 3 secondary slave), address (LBA),
#                    sector (512 bytes)   [since 1.2]
#   serialInput      flags (bit 0: from the line, in a UART access; else from
#                    the terminal, between instructions), value8 (the byte)
#                                                           [since 1.3]
#   idle             value64 (virtual ns after the halted CPU's time skip)
#                                                           [since 1.3]
#   deviceDigest     digest (the machine's device-state digest)  [since 1.3]
#   dirtyPages       address (first guest-physical page number), count
#                    (pages in the run)                         [since 1.5]
#   stopPoint        address (RIP), count (quick key), digest (the stop
#                    fingerprint)                               [since 1.5]
#
# "value by size" is value8, value16, value32 or value64. Every column is
# consumed exactly; a column with bytes left over is an error.
struct EventChunk {
  firstStep @0 :UInt64;
  eventCount @1 :UInt32;
  kind @2 :Data;        # UInt8 per event
  stepDelta @3 :Data;   # UInt32 per event
  bigStep @4 :Data;     # UInt64 per escaped delta
  port @5 :Data;        # UInt16
  size @6 :Data;        # UInt8, bytes
  count @7 :Data;       # UInt32, items moved by a port event (1 unless string I/O); pages of a dirtyPages run, a stopPoint's quick key (1.5)
  address @8 :Data;     # UInt64, guest-physical
  msr @9 :Data;         # UInt32, MSR index
  flags @10 :Data;      # UInt8
  value8 @11 :Data;     # UInt8
  value16 @12 :Data;    # UInt16
  value32 @13 :Data;    # UInt32
  value64 @14 :Data;    # UInt64
  tsc @15 :Data;        # UInt64 deltas
  digest @16 :Data;     # UInt64, ttvm::stateDigest values
  traceIdLo @17 :UInt64;  # 1.1: Header.traceId
  traceIdHi @18 :UInt64;
  sequence @19 :UInt64;   # 1.1: this chunk's index among the trace's chunks (from 0)
  sector @20 :Data;     # 512 bytes per diskSector event: the sector as the image held it (1.2)
}

# ---------------------------------------------------------------- footer --

enum EndReason {
  exitDevice @0;     # the guest wrote the exit device (exitStatus)
  shutdown @1;
  tripleFault @2;
  panic @3;
  reset @4;
  hang @5;           # hang watchdog
  maxSteps @6;
  timeout @7;
  interrupted @8;    # Ctrl-C / SIGTERM, or a recovered trace
  internalError @9;
}

struct RecentInstruction {
  rip @0 :UInt64;    # linear address
  bytes @1 :Data;    # 1..15 bytes
}

struct End {
  reason @0 :EndReason;
  exitStatus @1 :UInt32;      # exitDevice: the value written; else 0
  message @2 :Text;
  finalCpu @3 :CpuState;
  finalDigest @4 :UInt64;     # stateDigest(finalCpu)
  steps @5 :UInt64;           # total steps (emulator) or exits (KVM)
  lastInstructions @6 :List(RecentInstruction);  # oldest first
}

struct ChunkRef {
  offset @0 :UInt64;            # file offset of the CHNK frame
  compressedBytes @1 :UInt32;
  rawBytes @2 :UInt32;
  eventCount @3 :UInt32;
  firstStep @4 :UInt64;
  lastStep @5 :UInt64;
}

struct SnapshotRef {
  offset @0 :UInt64;   # file offset of the SNAP frame
  step @1 :UInt64;
}

# The payload of the FOOT frame; the trailer points at it.
struct Footer {
  headerOffset @0 :UInt64;   # file offset of the HEAD frame (16)
  initOffset @1 :UInt64;     # file offset of the INIT frame
  chunks @2 :List(ChunkRef); # in file and step order
  snapshots @3 :List(SnapshotRef);
  end @4 :End;
  traceIdLo @5 :UInt64;   # 1.1: Header.traceId
  traceIdHi @6 :UInt64;
}
