/* CPU-bound integer kernels for bench/emu_bench.cc: a checksum, insertion
 * sort and quicksort, an open-addressing hash table and a small bytecode
 * interpreter. Freestanding; no REP string instructions (so that emulator
 * steps equal retired instructions), deterministic, returns a checksum that
 * the benchmark compares between the emulator and Unicorn. */
/* No memset/memcpy calls for the zeroing and fill loops (there is no libc). */
#pragma GCC optimize("no-tree-loop-distribute-patterns")

#include <stdint.h>

#define N_SORT 2048
#define N_HASH 4096
#define N_BYTES 16384

static uint32_t sortbuf[N_SORT];
static uint64_t hkeys[N_HASH];
static uint64_t hvals[N_HASH];
static uint8_t bytes[N_BYTES];
static uint32_t rng_state = 12345;

static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return rng_state;
}

/* Adler-32 and a CRC-32 (bitwise) over a byte buffer. */
static uint32_t checksum(const uint8_t* p, uint32_t n) {
  uint32_t a = 1, b = 0, crc = 0xFFFFFFFFu;
  for (uint32_t i = 0; i < n; ++i) {
    a = (a + p[i]) % 65521u;
    b = (b + a) % 65521u;
  }
  for (uint32_t i = 0; i < n / 8; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ((b << 16) | a) ^ ~crc;
}

static void insertion_sort(uint32_t* a, int n) {
  for (int i = 1; i < n; ++i) {
    uint32_t v = a[i];
    int j = i - 1;
    while (j >= 0 && a[j] > v) {
      a[j + 1] = a[j];
      --j;
    }
    a[j + 1] = v;
  }
}

static void quick_sort(uint32_t* a, int lo, int hi) {
  while (hi - lo > 16) {
    uint32_t p = a[lo + (hi - lo) / 2];
    int i = lo, j = hi;
    while (i <= j) {
      while (a[i] < p) ++i;
      while (a[j] > p) --j;
      if (i <= j) {
        uint32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
        ++i;
        --j;
      }
    }
    if (j - lo < hi - i) {
      quick_sort(a, lo, j);
      lo = i;
    } else {
      quick_sort(a, i, hi);
      hi = j;
    }
  }
  insertion_sort(a + lo, hi - lo + 1);
}

static uint64_t hash64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xFF51AFD7ED558CCDull;
  k ^= k >> 33;
  return k;
}

/* Open addressing with linear probing; key 0 = empty. */
static uint64_t hash_table(int ops) {
  for (int i = 0; i < N_HASH; ++i) hkeys[i] = 0;
  uint64_t sum = 0;
  for (int i = 0; i < ops; ++i) {
    uint64_t key = (rnd() % (N_HASH / 2)) + 1;
    uint32_t h = (uint32_t)hash64(key) & (N_HASH - 1);
    while (hkeys[h] != 0 && hkeys[h] != key) h = (h + 1) & (N_HASH - 1);
    if (hkeys[h] == key) {
      hvals[h] += (uint64_t)i;
      sum += hvals[h];
    } else if (i % 4 != 3) {
      hkeys[h] = key;
      hvals[h] = (uint64_t)i;
    }
  }
  return sum;
}

/* A stack machine: the loop every interpreter has (fetch, switch, dispatch). */
enum { OP_PUSH, OP_ADD, OP_MUL, OP_XOR, OP_DUP, OP_SWAP, OP_DEC, OP_JNZ, OP_POP, OP_HALT };
static const uint8_t program[] = {
    OP_PUSH, 1, OP_PUSH, 200,                               /* acc, counter */
    OP_SWAP, OP_PUSH, 3, OP_MUL, OP_PUSH, 7, OP_ADD,        /* acc = acc*3+7 */
    OP_DUP, OP_PUSH, 0x55, OP_XOR, OP_ADD, OP_SWAP,         /* acc += acc^0x55 */
    OP_DEC, OP_DUP, OP_JNZ, 4, OP_POP, OP_HALT};

static uint64_t interpret(void) {
  uint64_t stack[16];
  int sp = 0;
  unsigned pc = 0;
  for (;;) {
    uint8_t op = program[pc++];
    switch (op) {
      case OP_PUSH: stack[sp++] = program[pc++]; break;
      case OP_ADD: --sp; stack[sp - 1] += stack[sp]; break;
      case OP_MUL: --sp; stack[sp - 1] *= stack[sp]; break;
      case OP_XOR: --sp; stack[sp - 1] ^= stack[sp]; break;
      case OP_DUP: stack[sp] = stack[sp - 1]; ++sp; break;
      case OP_SWAP: { uint64_t t = stack[sp - 1]; stack[sp - 1] = stack[sp - 2]; stack[sp - 2] = t; break; }
      case OP_DEC: stack[sp - 1] -= 1; break;
      case OP_JNZ: { uint8_t t = program[pc++]; if (stack[--sp] != 0) pc = t; break; }
      case OP_POP: --sp; break;
      default: return stack[sp - 1];
    }
  }
}

uint64_t bench_main(uint64_t iterations) {
  uint64_t result = 0;
  for (uint64_t it = 0; it < iterations; ++it) {
    for (int i = 0; i < N_BYTES; ++i) bytes[i] = (uint8_t)rnd();
    result += checksum(bytes, N_BYTES);
    for (int i = 0; i < N_SORT; ++i) sortbuf[i] = rnd();
    quick_sort(sortbuf, 0, N_SORT - 1);
    for (int i = 0; i < 256; ++i) sortbuf[i] = rnd();
    insertion_sort(sortbuf, 256);
    for (int i = 1; i < N_SORT; i += 97) result += sortbuf[i] ^ (uint64_t)i;
    result += hash_table(8192);
    result += interpret();
    result = (result << 7) | (result >> 57);
  }
  return result;
}
