/* int_workload: a CPU-bound integer multiboot guest for comparing ttvm with
 * qemu-system-x86_64 -accel tcg -kernel (bench/qemu_ratio_bench.py, issue 14).
 *
 * Code and data live on separate pages (tests/guests/lib/guest.ld puts .data
 * and .bss on their own pages), so no store lands on a page either emulator
 * has translated code from. Each round runs:
 *   - CRC-32 over 64 KiB with a 256-entry table, and bitwise over 4 KiB;
 *   - a byte-code interpreter with one indirect jump per op (computed goto);
 *   - an open-addressing hash table: inserts and lookups through calls;
 *   - an insertion sort of 512 words.
 * The multiboot command line "rounds=N" sets the number of rounds (default 4;
 * rounds=0 measures start-up and shutdown only). The guest prints one
 * checksum line that must be the same on every emulator. */
#include "guest.h"

GUEST_NAME("int_workload");

extern uint32_t mb_info;

enum { kBufBytes = 64 * 1024, kHashSlots = 8192, kSortWords = 512, kProgOps = 64 };

static uint8_t buf[kBufBytes];
static uint32_t crc_table[256];
static uint64_t hash_keys[kHashSlots];
static uint32_t hash_vals[kHashSlots];
static uint32_t sort_words[kSortWords];
static uint8_t program[kProgOps];
static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t next_random(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static unsigned parse_rounds(void) {
  const uint32_t* mbi = (const uint32_t*)(uintptr_t)mb_info;
  if (mbi == 0 || !(mbi[0] & 4)) return 4;
  const char* s = (const char*)(uintptr_t)mbi[4];
  for (; *s; ++s) {
    if (s[0] == 'r' && s[1] == 'o' && s[2] == 'u' && s[3] == 'n' && s[4] == 'd' && s[5] == 's' &&
        s[6] == '=') {
      unsigned v = 0;
      for (s += 7; *s >= '0' && *s <= '9'; ++s) v = v * 10 + (unsigned)(*s - '0');
      return v;
    }
  }
  return 4;
}

static void crc_init(void) {
  for (uint32_t n = 0; n < 256; ++n) {
    uint32_t c = n;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[n] = c;
  }
}

static uint32_t crc_table_driven(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t k = 0; k < n; ++k) c = crc_table[(c ^ p[k]) & 0xFF] ^ (c >> 8);
  return ~c;
}

static uint32_t crc_bitwise(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t k = 0; k < n; ++k) {
    c ^= p[k];
    for (int b = 0; b < 8; ++b) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
  }
  return ~c;
}

/* Byte code: 0 push-imm (next byte), 1 add, 2 xor, 3 mul3, 4 dup, 5 drop,
 * 6 rotate, 7 jump-if-counter (back to 0 while the counter runs). */
static uint64_t interpret(const uint8_t* code, unsigned iterations) {
  static void* const ops[8] = {&&op_push, &&op_add, &&op_xor, &&op_mul3,
                               &&op_dup,  &&op_drop, &&op_rot, &&op_loop};
  uint64_t stack[16];
  unsigned sp = 0, pc = 0, counter = iterations;
  uint64_t acc = 1;
#define DISPATCH() goto* ops[code[pc++] & 7]
  DISPATCH();
op_push:
  stack[sp++ & 15] = code[pc++];
  DISPATCH();
op_add:
  acc += stack[(sp - 1) & 15];
  DISPATCH();
op_xor:
  acc ^= acc >> 7;
  DISPATCH();
op_mul3:
  acc = acc * 3 + 1;
  DISPATCH();
op_dup:
  stack[sp & 15] = stack[(sp - 1) & 15];
  ++sp;
  DISPATCH();
op_drop:
  if (sp) --sp;
  DISPATCH();
op_rot:
  acc = (acc << 13) | (acc >> 51);
  DISPATCH();
op_loop:
  if (--counter == 0) return acc ^ sp;
  pc = 0;
  DISPATCH();
#undef DISPATCH
}

static void make_program(void) {
  unsigned k = 0;
  while (k < kProgOps - 3) {
    const unsigned op = (unsigned)(next_random() % 7);
    program[k++] = (uint8_t)op;
    if (op == 0) program[k++] = (uint8_t)next_random();
  }
  while (k < kProgOps - 1) program[k++] = 1;
  program[kProgOps - 1] = 7;
}

__attribute__((noinline)) static uint32_t hash_slot(uint64_t key) {
  key ^= key >> 33;
  key *= 0xFF51AFD7ED558CCDull;
  key ^= key >> 33;
  return (uint32_t)key & (kHashSlots - 1);
}

__attribute__((noinline)) static void hash_insert(uint64_t key, uint32_t value) {
  uint32_t s = hash_slot(key);
  while (hash_keys[s] != 0 && hash_keys[s] != key) s = (s + 1) & (kHashSlots - 1);
  hash_keys[s] = key;
  hash_vals[s] = value;
}

__attribute__((noinline)) static uint32_t hash_lookup(uint64_t key) {
  uint32_t s = hash_slot(key);
  while (hash_keys[s] != 0) {
    if (hash_keys[s] == key) return hash_vals[s];
    s = (s + 1) & (kHashSlots - 1);
  }
  return 0;
}

static uint64_t hash_round(void) {
  memset(hash_keys, 0, sizeof hash_keys);
  const uint64_t seed = rng;
  uint64_t r = seed;
  for (uint32_t k = 0; k < kHashSlots / 2; ++k) {
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    hash_insert(r | 1, k);
  }
  uint64_t sum = 0;
  r = seed;
  for (uint32_t k = 0; k < kHashSlots; ++k) {
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    sum += hash_lookup((k & 1) ? (r | 1) ^ 2 : (r | 1));
  }
  return sum;
}

static uint32_t sort_round(void) {
  for (unsigned k = 0; k < kSortWords; ++k) sort_words[k] = (uint32_t)next_random();
  for (unsigned k = 1; k < kSortWords; ++k) {
    const uint32_t v = sort_words[k];
    unsigned j = k;
    while (j > 0 && sort_words[j - 1] > v) {
      sort_words[j] = sort_words[j - 1];
      --j;
    }
    sort_words[j] = v;
  }
  uint32_t h = 0;
  for (unsigned k = 0; k < kSortWords; ++k) h = h * 31 + sort_words[k];
  return h;
}

void guest_main(void) {
  const unsigned rounds = parse_rounds();
  crc_init();
  for (unsigned k = 0; k < kBufBytes; ++k) buf[k] = (uint8_t)next_random();
  make_program();
  uint64_t check = 0;
  for (unsigned round = 0; round < rounds; ++round) {
    buf[round & (kBufBytes - 1)] ^= (uint8_t)round;
    check = check * 33 + crc_table_driven(buf, kBufBytes);
    check = check * 33 + crc_bitwise(buf, 4096);
    check = check * 33 + interpret(program, 20000);
    check = check * 33 + hash_round();
    check = check * 33 + sort_round();
  }
  printf("int_workload: rounds %u checksum %016llx\n", rounds, (unsigned long long)check);
}
