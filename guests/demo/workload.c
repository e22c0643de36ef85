// The demo kernel's workload: a tiny slab allocator and a chained hash table
// of string keys, exercised in three phases (insert, expire, alias + verify).
//
// It contains a real use-after-free; see README.md. The workload never looks
// at the timer, so it crashes at the same instruction on every run.
#include "demo.h"

// ---------------------------------------------------------------------------
// Allocator: 32-byte chunks carved from a static arena by a bump pointer and
// recycled through a LIFO free list whose link lives in a free chunk's first
// eight bytes.
enum { kChunkSize = 32, kArenaSize = 256 * 1024 };

struct FreeChunk {
  struct FreeChunk* next;
};

static uint8_t arena[kArenaSize] __attribute__((aligned(kChunkSize)));
static size_t arena_used;
static struct FreeChunk* free_list;
static unsigned chunks_live;

static void* kmalloc(size_t size) {
  if (size > kChunkSize) panic("kmalloc(%lu): larger than a chunk", size);
  chunks_live++;
  if (free_list) {
    struct FreeChunk* chunk = free_list;
    free_list = chunk->next;
    return chunk;
  }
  if (arena_used + kChunkSize > kArenaSize) panic("kmalloc: arena exhausted");
  void* chunk = &arena[arena_used];
  arena_used += kChunkSize;
  return chunk;
}

static void kfree(void* p) {
  struct FreeChunk* chunk = p;
  chunk->next = free_list;
  free_list = chunk;
  chunks_live--;
}

// ---------------------------------------------------------------------------
// Strings.
static size_t str_len(const char* s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

static bool str_eq(const char* a, const char* b) {
  while (*a && *a == *b) {
    a++;
    b++;
  }
  return *a == *b;
}

// Returns a heap copy of `key`, terminating NUL included.
static __attribute__((noinline)) char* key_dup(const char* key) {
  size_t n = str_len(key) + 1;
  char* copy = kmalloc(n);
  for (size_t i = 0; i < n; i++) copy[i] = key[i];  // KEY_DUP_STORE
  return copy;
}

// Formats prefix + four decimal digits of `number` + suffix into `out`.
static void make_key(char* out, const char* prefix, unsigned number, const char* suffix) {
  while (*prefix) *out++ = *prefix++;
  for (unsigned div = 1000; div; div /= 10) *out++ = (char)('0' + number / div % 10);
  while (*suffix) *out++ = *suffix++;
  *out = '\0';
}

// ---------------------------------------------------------------------------
// The hash table: FNV-1a, 64 buckets, new entries at the head of a chain.
struct Entry {
  uint32_t hash;
  uint32_t value;
  struct Entry* next;
  const char* key;  // owned: allocated by key_dup
};

enum { kBuckets = 64 };

static struct Entry* buckets[kBuckets];
static unsigned entry_count;

static uint32_t hash_key(const char* key) {
  uint32_t h = 2166136261u;
  while (*key) h = (h ^ (uint8_t)*key++) * 16777619u;
  return h;
}

static __attribute__((noinline)) struct Entry* table_find(const char* key) {
  uint32_t h = hash_key(key);
  for (struct Entry* e = buckets[h % kBuckets]; e; e = e->next) {  // TABLE_FIND_WALK
    if (e->hash == h && str_eq(e->key, key)) return e;
  }
  return NULL;
}

static __attribute__((noinline)) void table_insert(const char* key, uint32_t value) {
  struct Entry* existing = table_find(key);
  if (existing) {
    existing->value = value;
    return;
  }
  char* copy = key_dup(key);
  struct Entry* e = kmalloc(sizeof *e);
  uint32_t h = hash_key(key);
  e->hash = h;
  e->value = value;
  e->key = copy;
  e->next = buckets[h % kBuckets];
  buckets[h % kBuckets] = e;
  entry_count++;
}

// Removes (and frees) every entry for which `expired` returns true.
//
// THE BUG: `prev` advances to the entry just freed. When two neighbours in a
// chain both expire, the second is unlinked through the first (already freed)
// entry, so the live predecessor keeps pointing at the freed second entry.
static __attribute__((noinline)) unsigned table_prune(bool (*expired)(const struct Entry*)) {
  unsigned removed = 0;
  for (unsigned b = 0; b < kBuckets; b++) {
    struct Entry* prev = NULL;
    for (struct Entry* e = buckets[b]; e;) {
      struct Entry* next = e->next;
      if (expired(e)) {
        if (prev)
          prev->next = next;  // TABLE_PRUNE_UNLINK
        else
          buckets[b] = next;
        kfree((void*)e->key);
        kfree(e);
        entry_count--;
        removed++;
      }
      prev = e;  // TABLE_PRUNE_BUG: must only advance past entries that stay
      e = next;
    }
  }
  return removed;
}

// ---------------------------------------------------------------------------
enum { kKeys = 640, kExpireEvery = 10, kAliasRounds = 256 };

static bool every_tenth(const struct Entry* e) {
  return e->value % kExpireEvery == 0;
}

// Checks that exactly the keys that were not expired are still present.
static __attribute__((noinline)) unsigned verify_keys(void) {
  char key[16];
  unsigned found = 0;
  for (unsigned i = 0; i < kKeys; i++) {
    make_key(key, "key-", i, "");
    struct Entry* e = table_find(key);
    bool want = i % kExpireEvery != 0;
    if ((e != NULL) != want || (e && e->value != i))
      panic("verify: %s %s", key, want ? "missing or wrong" : "still present");
    found += e != NULL;
  }
  return found;
}

void workload_run(void) {
  char key[24];
  // Phase 1: a table of 640 keys.
  for (unsigned i = 0; i < kKeys; i++) {
    make_key(key, "key-", i, "");
    table_insert(key, i);
    if ((i + 1) % 128 == 0)
      kprintf("inserted %u keys, %u chunks in use, ticks=%lu\n", i + 1, chunks_live, timer_ticks());
  }
  // Phase 2: expire every tenth key.
  unsigned removed = table_prune(every_tenth);
  kprintf("expired %u keys, %u left, %u chunks in use, ticks=%lu\n", removed, entry_count,
          chunks_live, timer_ticks());
  // Phase 3: add aliases (their keys reuse the freed chunks) and check the
  // original keys after each one.
  for (unsigned round = 1; round <= kAliasRounds; round++) {
    make_key(key, "id-", round, ":lookup");
    table_insert(key, 10000 + round);
    unsigned found = verify_keys();
    if (round % 4 == 0)
      kprintf("alias round %u: %u aliases, %u keys verified, ticks=%lu\n", round, round, found,
              timer_ticks());
  }
}
