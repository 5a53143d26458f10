// SPDX-License-Identifier: BSL-1.0
// Callable tasks' blocks: per thread and size, a chunk carved in order (task_arena.hpp).
#include <coop/detail/task_arena.hpp>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <new>
#include <utility>

#if defined(__SANITIZE_ADDRESS__)
#define COOP_DETAIL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COOP_DETAIL_ASAN 1
#endif
#endif
#ifdef COOP_DETAIL_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace coop::detail::task_arena {

namespace {

#ifdef COOP_DETAIL_ASAN
#define COOP_DETAIL_NO_ASAN __attribute__((no_sanitize_address))
#else
#define COOP_DETAIL_NO_ASAN
#endif

// Blocks a freed task leaves are poisoned under AddressSanitizer, as the heap's would be,
// so a use after free is still reported (but for the word that links free blocks).
void poison(const void* p, std::size_t n) noexcept {
#ifdef COOP_DETAIL_ASAN
  ASAN_POISON_MEMORY_REGION(p, n);
#else
  (void)p;
  (void)n;
#endif
}
void unpoison(const void* p, std::size_t n) noexcept {
#ifdef COOP_DETAIL_ASAN
  ASAN_UNPOISON_MEMORY_REGION(p, n);
#else
  (void)p;
  (void)n;
#endif
}

// A free block's first word: the next free block. Read and written while the block is
// poisoned.
struct [[gnu::may_alias]] free_link {
  char* next;
};
COOP_DETAIL_NO_ASAN char* next_free(const char* block) noexcept {
  return reinterpret_cast<const free_link*>(block)->next;
}
COOP_DETAIL_NO_ASAN void set_next_free(char* block, char* next) noexcept {
  reinterpret_cast<free_link*>(block)->next = next;
}

// Chunks are aligned to their size, so a block's chunk is its address rounded down.
constexpr std::size_t chunk_size = 64 * 1024;
constexpr std::size_t sizes = max_block / 8;

// The chunk's word: its blocks freed since a thread last took them (a stack linked through
// the blocks: the top's offset in 8-byte steps, and how many), whether a thread carves from
// it, and whether it is (or is about to be) on its size's list of chunks to carve again.
// Frees push with one compare-and-swap from any thread; the carving thread takes the whole
// stack at once (so no ABA: nothing is popped alone).
namespace word {
constexpr std::uint64_t top_mask = 0xffff;
constexpr unsigned count_shift = 16;
constexpr std::uint64_t count_one = std::uint64_t{1} << count_shift;
constexpr std::uint64_t count_mask = 0xffff * count_one;
constexpr std::uint64_t carving = std::uint64_t{1} << 32;
constexpr std::uint64_t listed = std::uint64_t{1} << 33;
inline std::uint32_t count(std::uint64_t w) noexcept { return static_cast<std::uint32_t>((w & count_mask) >> count_shift); }
}  // namespace word

// The start of a chunk, on a cache line of its own: frees from other threads write the
// word, the carving thread carves the blocks after it.
struct alignas(64) chunk {
  std::atomic<std::uint64_t> state{word::carving};
  std::uint32_t capacity = 0;  // blocks; fixed when the chunk is made
  std::uint32_t block = 0;
  // Guarded by the list's mutex: the links of its size's list, and whether it is on it.
  chunk* prev = nullptr;
  chunk* next = nullptr;
  bool on_list = false;

  char* base() noexcept { return reinterpret_cast<char*>(this); }
  char* top(std::uint64_t w) noexcept { return (w & word::top_mask) ? base() + (w & word::top_mask) * 8 : nullptr; }
  std::uint64_t top_of(const char* block) noexcept { return static_cast<std::uint64_t>(block - base()) / 8; }
};
static_assert(sizeof(chunk) == 64);
static_assert(chunk_size / 8 <= word::top_mask + 1 && chunk_size / 8 <= 0xffff);

std::atomic<std::size_t> live_chunks{0};

// Empty chunks kept for the next chunk any thread needs, up to spare_chunks_kept of them. A chunk
// handed back to the heap is lost to the next burst of tasks: under glibc's defaults a
// 64 KiB block aligned to 64 KiB is over the mmap threshold, so each chunk is a mapping of
// its own, unmapped when freed and faulted in again page by page when made (in a VM, ~10 us
// a page: 16 of them per ~700 tasks). Other heaps give such memory back sooner or later
// too. A spare's blocks stay poisoned; it is linked through its header. Last in, first out:
// the chunk freed last is the likeliest still in the caches.
struct spare_list {
  std::mutex mutex;
  chunk* head = nullptr;
  std::size_t count = 0;
};
spare_list spares;

void delete_chunk(chunk* c) noexcept {
  unpoison(c, chunk_size);
  c->~chunk();
  ::operator delete(static_cast<void*>(c), std::align_val_t{chunk_size});
}

// A chunk whose blocks are all free (and poisoned), held by no thread and no list.
void free_chunk(chunk* c) noexcept {
  live_chunks.fetch_sub(1, std::memory_order_relaxed);
  {
    const std::lock_guard lock(spares.mutex);
    if (spares.count < spare_chunks_kept) {
      c->next = spares.head;
      spares.head = c;
      ++spares.count;
      return;
    }
  }
  delete_chunk(c);
}

// Memory for a new chunk: a spare, else from operator new.
void* chunk_memory() {
  {
    const std::lock_guard lock(spares.mutex);
    if (chunk* c = spares.head) {
      spares.head = c->next;
      --spares.count;
      c->~chunk();
      return c;
    }
  }
  return ::operator new(chunk_size, std::align_val_t{chunk_size});
}

// Chunks no thread carves from with at least half their blocks free, per block size: a
// thread that needs a chunk takes one of these before it makes a new one, so a few
// long-lived tasks do not keep whole chunks to themselves. A listed chunk is freed only
// under the list's mutex, once all its blocks are free and it is on the list.
struct chunk_list {
  std::mutex mutex;
  chunk* head = nullptr;

  void link(chunk* c) noexcept {
    c->prev = nullptr;
    c->next = head;
    if (head) head->prev = c;
    head = c;
    c->on_list = true;
  }
  void unlink(chunk* c) noexcept {
    (c->prev ? c->prev->next : head) = c->next;
    if (c->next) c->next->prev = c->prev;
    c->on_list = false;
  }
};
chunk_list lists[sizes];
chunk_list& list_of(const chunk* c) noexcept { return lists[c->block / 8 - 1]; }

// Whether the word says that every block is free and nothing holds the chunk.
bool all_free(std::uint64_t w, std::uint32_t capacity) noexcept {
  return !(w & (word::carving | word::listed)) && word::count(w) == capacity;
}

// The last free block of a listed chunk (its word `old`) comes back: under the list's
// mutex, so that whoever frees the chunk knows whether it is on the list (a thread taking
// it off needs the mutex too). Returns false if the word changed meanwhile.
bool push_last_of_listed(chunk* c, char* block) noexcept {
  chunk_list& list = list_of(c);
  const std::lock_guard lock(list.mutex);
  std::uint64_t old = c->state.load(std::memory_order_acquire);
  if (!(old & word::listed) || word::count(old) + 1 != c->capacity) return false;
  if (c->on_list) {
    list.unlink(c);
    free_chunk(c);
    return true;
  }
  // Listed by a free that has not put it on the list yet (it frees the chunk when it
  // sees every block free), or taken off the list by a thread about to carve from it,
  // whose exchange may come first (then this is a plain push: start again).
  set_next_free(block, c->top(old));
  const std::uint64_t next = ((old + word::count_one) & ~word::top_mask) | c->top_of(block);
  return c->state.compare_exchange_strong(old, next, std::memory_order_acq_rel, std::memory_order_acquire);
}

// Pushes the blocks first..last (linked, `n` of them) onto the chunk's stack; `let_go`: and
// the carving thread lets go. The chunk is freed if that leaves every block free, and
// listed if it leaves half of them free.
void push(chunk* c, char* first, char* last, std::uint32_t n, bool let_go) noexcept {
  // Nothing of the chunk is read after the exchange below unless this push listed it:
  // once its blocks are back, another free may free the chunk.
  const std::uint32_t capacity = c->capacity;
  std::uint64_t old = c->state.load(std::memory_order_acquire), next;
  bool list_it;
  for (;;) {
    if ((old & word::listed) && word::count(old) + n == capacity) {
      // Only a free pushes onto a listed chunk (no thread carves it): one block.
      if (push_last_of_listed(c, first)) return;
      old = c->state.load(std::memory_order_acquire);
      continue;
    }
    if (last) set_next_free(last, c->top(old));
    next = old + n * word::count_one;
    if (first) next = (next & ~word::top_mask) | c->top_of(first);
    if (let_go) next &= ~word::carving;
    list_it = !(next & (word::carving | word::listed)) && word::count(next) * 2 >= capacity &&
              word::count(next) != capacity;
    if (list_it) next |= word::listed;
    if (c->state.compare_exchange_weak(old, next, std::memory_order_acq_rel, std::memory_order_acquire)) break;
  }
  if (all_free(next, capacity)) return free_chunk(c);
  if (list_it) {
    chunk_list& list = list_of(c);
    const std::lock_guard lock(list.mutex);
    // Its last block may have come back since: that free found it off the list.
    if (word::count(c->state.load(std::memory_order_acquire)) == c->capacity) return free_chunk(c);
    list.link(c);
  }
}

// The calling thread's chunk of each block size: its free blocks (taken from the chunk's
// stack) and where the next block is carved. Constant initialized and trivially
// destructible, so reading it needs no guard; the exit guard below lets go of the chunks
// when the thread ends.
struct carving {
  chunk* current = nullptr;
  char* free = nullptr;  // this thread's list of the chunk's free blocks
  std::uint32_t free_count = 0;
  std::uint32_t block = 0;
  char* next = nullptr;  // carving
  char* end = nullptr;
};
thread_local constinit carving carvings[sizes] = {};
thread_local constinit bool thread_gone = false;

void let_go(carving& k) noexcept {
  chunk* c = k.current;
  if (!c) return;
  // The blocks never carved join the free ones.
  char* last = nullptr;
  for (char* p = k.free; p; p = next_free(p)) last = p;
  char* first = k.free;
  std::uint32_t n = k.free_count;
  for (char* p = k.next; p != k.end; p += k.block, ++n) {
    set_next_free(p, nullptr);
    if (last) set_next_free(last, p);
    else first = p;
    last = p;
  }
  k = carving{};
  push(c, first, last, n, true);
}

struct exit_guard {
  bool armed = false;
  ~exit_guard() {
    release_thread_chunks();
    thread_gone = true;
  }
};
thread_local exit_guard guard;

// Makes `c` the thread's chunk, taking the blocks freed in it; returns one of them, or
// null (none yet freed).
char* take_blocks(carving& k, chunk* c, std::size_t block) noexcept {
  std::uint64_t old = c->state.load(std::memory_order_relaxed);
  while (!c->state.compare_exchange_weak(old, word::carving, std::memory_order_acquire, std::memory_order_relaxed)) {
  }
  k.current = c;
  k.block = static_cast<std::uint32_t>(block);
  char* p = c->top(old);
  if (!p) return nullptr;
  k.free = next_free(p);
  k.free_count = word::count(old) - 1;
  unpoison(p, block);
  return p;
}

// This thread has no free block and nothing left to carve: it takes what other threads
// freed meanwhile, or (the chunk is full) lets go of it and takes a listed chunk or makes
// a new one.
[[gnu::noinline]] void* refill(carving& k, std::size_t block) {
  if (chunk* c = k.current) {
    if (word::count(c->state.load(std::memory_order_relaxed)) != 0) return take_blocks(k, c, block);
    let_go(k);  // every block is in use (or was a moment ago)
  }
  if (!thread_gone) {
    chunk_list& list = lists[block / 8 - 1];
    std::unique_lock lock(list.mutex);
    if (chunk* c = list.head) {
      list.unlink(c);
      lock.unlock();
      if (char* p = take_blocks(k, c, block)) {
        guard.armed = true;
        return p;
      }
      let_go(k);  // cannot happen: a listed chunk has half its blocks free
    }
  }
  void* memory = chunk_memory();
  live_chunks.fetch_add(1, std::memory_order_relaxed);
  auto* c = ::new (memory) chunk;
  char* first = c->base() + sizeof(chunk);
  c->block = static_cast<std::uint32_t>(block);
  c->capacity = static_cast<std::uint32_t>((chunk_size - sizeof(chunk)) / block);
  poison(first, chunk_size - sizeof(chunk));
  unpoison(first, block);
  k.current = c;
  k.block = static_cast<std::uint32_t>(block);
  k.next = first + block;
  k.end = first + c->capacity * block;
  if (thread_gone) {
    // A task made while this thread's thread-local objects are being destroyed: its
    // chunk is let go of at once (rare enough not to matter).
    let_go(k);
  } else {
    guard.armed = true;  // makes sure the guard is constructed, so it runs at thread exit
  }
  return first;
}

}  // namespace

void* allocate(std::size_t block) {
  carving& k = carvings[block / 8 - 1];
  if (char* p = k.free) {
    k.free = next_free(p);
    --k.free_count;
    unpoison(p, block);
    return p;
  }
  if (char* p = k.next; p != k.end) [[likely]] {
    k.next = p + block;
    unpoison(p, block);
    return p;
  }
  return refill(k, block);
}

void deallocate(void* p, std::size_t block) noexcept {
  char* b = static_cast<char*>(p);
  poison(b, block);
  auto* c = reinterpret_cast<chunk*>(reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{chunk_size - 1});
  push(c, b, b, 1, false);
}

void release_thread_chunks() noexcept {
  for (auto& k : carvings) let_go(k);
}

void release_spare_chunks() noexcept {
  chunk* c;
  {
    const std::lock_guard lock(spares.mutex);
    c = std::exchange(spares.head, nullptr);
    spares.count = 0;
  }
  while (c) delete_chunk(std::exchange(c, c->next));
}

std::size_t chunks_live() noexcept { return live_chunks.load(std::memory_order_relaxed); }

std::size_t chunks_spare() noexcept {
  const std::lock_guard lock(spares.mutex);
  return spares.count;
}

}  // namespace coop::detail::task_arena
