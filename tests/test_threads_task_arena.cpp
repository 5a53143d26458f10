// SPDX-License-Identifier: BSL-1.0
// The task arena: callable tasks packed per thread and size, apart from other allocations;
// blocks freed on any thread; a chunk is freed with its last block (kept empty for reuse, a
// bounded number of them), and a thread's partly carved chunks when the thread ends. Run under ThreadSanitizer (the
// frees from other threads) and AddressSanitizer (freed blocks are poisoned).
#define BOOST_TEST_MODULE task_arena
#include <boost/test/unit_test.hpp>

#include <coop/coop.hpp>
#include <coop/detail/task_arena.hpp>

#include "support/manual_executor.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define COOP_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COOP_TEST_ASAN 1
#endif
#endif
#ifdef COOP_TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace arena = coop::detail::task_arena;
using coop_test::manual_context;

namespace {

std::uintptr_t address(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

// Each test starts and ends with no chunk held by this thread.
struct no_chunks_held {
  no_chunks_held() { arena::release_thread_chunks(); }
  ~no_chunks_held() { arena::release_thread_chunks(); }
};

// Two threads (sides 0 and 1) each carve `blocks` blocks, the i-th of size_of(i, side)
// bytes, fill each with their side's mark and hand it to the other, which checks the mark
// and frees it, while both go on carving. Returns how many blocks had lost their mark.
template <class SizeOf> int trade_blocks(int blocks, SizeOf size_of) {
  struct mailbox {
    std::vector<std::atomic<void*>> slots;             // null until the block is handed over
    std::vector<std::size_t> size;                     // written before its slot
    explicit mailbox(int n) : slots(static_cast<std::size_t>(n)), size(static_cast<std::size_t>(n)) {}
  };
  std::atomic<int> bad{0};
  auto run = [&](mailbox& out, mailbox& in, int side) {
    const auto mark = static_cast<unsigned char>(0xa0 + side), theirs = static_cast<unsigned char>(0xa1 - side);
    std::size_t freed = 0;
    const auto take = [&] {
      void* p = in.slots[freed].load(std::memory_order_acquire);
      if (!p) return;
      const auto* bytes = static_cast<const unsigned char*>(p);
      const std::size_t n = in.size[freed];
      if (std::any_of(bytes, bytes + n, [&](unsigned char b) { return b != theirs; })) bad.fetch_add(1);
      arena::deallocate(p, n);
      ++freed;
    };
    for (int i = 0; i < blocks; ++i) {
      const std::size_t n = size_of(i, side);
      void* p = arena::allocate(n);
      std::fill_n(static_cast<unsigned char*>(p), n, mark);
      out.size[static_cast<std::size_t>(i)] = n;
      out.slots[static_cast<std::size_t>(i)].store(p, std::memory_order_release);
      take();
    }
    while (freed < static_cast<std::size_t>(blocks)) take();
  };
  auto to_1 = std::make_unique<mailbox>(blocks), to_0 = std::make_unique<mailbox>(blocks);
  std::thread a([&] { run(*to_1, *to_0, 0); });
  std::thread b([&] { run(*to_0, *to_1, 1); });
  a.join();
  b.join();
  return bad.load();
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(task_arena, no_chunks_held)

BOOST_AUTO_TEST_CASE(block_sizes) {
  BOOST_TEST(arena::block_for(88, 8) == 88u);
  BOOST_TEST(arena::block_for(81, 8) == 88u);
  BOOST_TEST(arena::block_for(88, 16) == 96u);  // 16-aligned blocks for 16-aligned types
  BOOST_TEST(arena::block_for(256, 8) == 256u);
  BOOST_TEST(arena::block_for(257, 8) == 0u);   // too large: the heap's
  BOOST_TEST(arena::block_for(64, 32) == 0u);   // over-aligned: the heap's
}

BOOST_AUTO_TEST_CASE(blocks_of_one_size_come_packed_in_order) {
  const std::size_t before = arena::chunks_live();
  std::vector<void*> blocks;
  for (int i = 0; i < 100; ++i) blocks.push_back(arena::allocate(88));
  BOOST_TEST(arena::chunks_live() == before + 1);  // 100 blocks of 88 bytes: one chunk
  for (std::size_t i = 1; i < blocks.size(); ++i) BOOST_TEST(address(blocks[i]) - address(blocks[i - 1]) == 88u);
  BOOST_TEST(address(blocks[0]) % 8 == 0u);
  // Another size has its own chunk: it does not come between.
  void* other = arena::allocate(96);
  BOOST_TEST(address(other) % 16 == 0u);
  void* next = arena::allocate(88);
  BOOST_TEST(address(next) - address(blocks.back()) == 88u);
  arena::deallocate(next, 88);
  arena::deallocate(other, 96);
  for (void* b : blocks) arena::deallocate(b, 88);
  // The thread still carves from its chunks; letting go frees them (all blocks are free).
  BOOST_TEST(arena::chunks_live() == before + 2);
  arena::release_thread_chunks();
  BOOST_TEST(arena::chunks_live() == before);
}

BOOST_AUTO_TEST_CASE(a_chunk_goes_with_its_last_block) {
  const std::size_t before = arena::chunks_live();
  void* a = arena::allocate(128);
  void* b = arena::allocate(128);
  arena::release_thread_chunks();  // the thread lets go; two blocks still live
  BOOST_TEST(arena::chunks_live() == before + 1);
  arena::deallocate(a, 128);
  BOOST_TEST(arena::chunks_live() == before + 1);
  arena::deallocate(b, 128);
  BOOST_TEST(arena::chunks_live() == before);
}

BOOST_AUTO_TEST_CASE(an_empty_chunk_is_kept_for_the_next_one) {
  // Under glibc's defaults a chunk handed back to the heap is unmapped, and the next one
  // faults its pages in afresh: an empty chunk is kept, and serves any block size next.
  arena::release_spare_chunks();
  const std::size_t before = arena::chunks_live();
  void* a = arena::allocate(128);
  arena::release_thread_chunks();
  arena::deallocate(a, 128);
  BOOST_TEST(arena::chunks_live() == before);
  BOOST_TEST(arena::chunks_spare() == 1u);
#ifdef COOP_TEST_ASAN
  BOOST_TEST(__asan_region_is_poisoned(a, 128) == a);  // its blocks stay poisoned
#endif
  void* b = arena::allocate(64);
  BOOST_TEST(address(b) / (64 * 1024) == address(a) / (64 * 1024));
  BOOST_TEST(arena::chunks_spare() == 0u);
  BOOST_TEST(arena::chunks_live() == before + 1);
  arena::deallocate(b, 64);
  arena::release_thread_chunks();
  BOOST_TEST(arena::chunks_live() == before);
  arena::release_spare_chunks();
  BOOST_TEST(arena::chunks_spare() == 0u);
}

BOOST_AUTO_TEST_CASE(the_spare_chunks_kept_are_bounded) {
  arena::release_spare_chunks();
  const std::size_t before = arena::chunks_live();
  const std::size_t chunks = arena::spare_chunks_kept + 8;
  std::vector<void*> blocks;
  for (std::size_t i = 0; i < chunks * 255; ++i) blocks.push_back(arena::allocate(256));  // 255 a chunk
  BOOST_TEST(arena::chunks_live() == before + chunks);
  std::thread([&] {
    for (void* b : blocks) arena::deallocate(b, 256);
  }).join();
  arena::release_thread_chunks();
  BOOST_TEST(arena::chunks_live() == before);
  BOOST_TEST(arena::chunks_spare() == arena::spare_chunks_kept);
  arena::release_spare_chunks();
  BOOST_TEST(arena::chunks_spare() == 0u);
}

BOOST_AUTO_TEST_CASE(a_full_chunk_is_followed_by_a_new_one) {
  const std::size_t before = arena::chunks_live();
  // 64 KiB chunks of 256-byte blocks: 255 blocks each (the chunk's count takes a line).
  std::vector<void*> blocks;
  for (int i = 0; i < 600; ++i) blocks.push_back(arena::allocate(256));
  BOOST_TEST(arena::chunks_live() == before + 3);
  for (void* b : blocks) arena::deallocate(b, 256);
  BOOST_TEST(arena::chunks_live() == before + 1);  // the full ones went with their blocks
  arena::release_thread_chunks();
  BOOST_TEST(arena::chunks_live() == before);
}

BOOST_AUTO_TEST_CASE(freed_blocks_are_carved_again) {
  // A chunk whose blocks are freed (here on another thread) gives them out again before
  // the thread needs a new chunk: one long-lived block does not keep 64 KiB to itself.
  const std::size_t before = arena::chunks_live();
  std::vector<void*> blocks;
  for (int i = 0; i < 255; ++i) blocks.push_back(arena::allocate(256));  // a chunk's worth
  BOOST_TEST(arena::chunks_live() == before + 1);
  void* kept = blocks[100];
  std::thread([&] {
    for (void* b : blocks)
      if (b != kept) arena::deallocate(b, 256);
  }).join();
  std::vector<void*> again;
  for (int i = 0; i < 254; ++i) again.push_back(arena::allocate(256));
  BOOST_TEST(arena::chunks_live() == before + 1);
  for (void* b : again) BOOST_TEST((b != kept && address(b) / (64 * 1024) == address(kept) / (64 * 1024)));
  for (void* b : again) arena::deallocate(b, 256);
  arena::deallocate(kept, 256);
  arena::release_thread_chunks();
  BOOST_TEST(arena::chunks_live() == before);
}

BOOST_AUTO_TEST_CASE(a_half_free_chunk_is_taken_before_a_new_one) {
  const std::size_t before = arena::chunks_live();
  std::vector<void*> first_chunk;
  for (int i = 0; i < 255; ++i) first_chunk.push_back(arena::allocate(256));  // full
  void* in_second = arena::allocate(256);                                     // a new chunk
  BOOST_TEST(arena::chunks_live() == before + 2);
  // 200 of the first chunk's blocks freed on another thread: it is listed for carving.
  std::thread([&] {
    for (int i = 0; i < 200; ++i) arena::deallocate(first_chunk[i], 256);
  }).join();
  std::vector<void*> more;
  for (int i = 0; i < 254; ++i) more.push_back(arena::allocate(256));  // the second is full
  void* next = arena::allocate(256);
  BOOST_TEST(arena::chunks_live() == before + 2);  // no third chunk: the first is carved again
  BOOST_TEST(address(next) / (64 * 1024) == address(first_chunk[0]) / (64 * 1024));
  arena::deallocate(next, 256);
  for (void* b : more) arena::deallocate(b, 256);
  arena::deallocate(in_second, 256);
  for (int i = 200; i < 255; ++i) arena::deallocate(first_chunk[i], 256);
  arena::release_thread_chunks();
  BOOST_TEST(arena::chunks_live() == before);
}

BOOST_AUTO_TEST_CASE(bursts_that_leave_one_survivor_each_do_not_pile_up_chunks) {
  // Each burst fills a chunk; all its blocks but one are freed. Memory stays what the
  // blocks alive at once need: the half-free chunks are carved again.
  const std::size_t before = arena::chunks_live();
  std::vector<void*> survivors;
  for (int burst = 0; burst < 20; ++burst) {
    std::vector<void*> blocks;
    for (int i = 0; i < 255; ++i) blocks.push_back(arena::allocate(256));
    survivors.push_back(blocks[static_cast<std::size_t>(burst) * 7 % 255]);
    for (void* b : blocks)
      if (b != survivors.back()) arena::deallocate(b, 256);
  }
  BOOST_TEST(arena::chunks_live() <= before + 2);
  for (void* b : survivors) arena::deallocate(b, 256);
  arena::release_thread_chunks();
  BOOST_TEST(arena::chunks_live() == before);
}

BOOST_AUTO_TEST_CASE(blocks_freed_on_other_threads) {
  const std::size_t before = arena::chunks_live();
  constexpr int per_thread = 2000;
  std::vector<void*> mine(per_thread), theirs(per_thread);
  for (auto& p : mine) p = arena::allocate(64);
  // Another thread carves its own blocks and frees half of this thread's meanwhile; this
  // thread frees the other thread's blocks after it has ended (its chunks let go at exit).
  std::thread other([&] {
    for (auto& p : theirs) p = arena::allocate(64);
    for (int i = 0; i < per_thread; i += 2) arena::deallocate(mine[i], 64);
  });
  for (int i = 1; i < per_thread; i += 2) arena::deallocate(mine[i], 64);
  other.join();
  for (void* p : theirs) arena::deallocate(p, 64);
  arena::release_thread_chunks();
  BOOST_TEST(arena::chunks_live() == before);
}

BOOST_AUTO_TEST_CASE(frees_race_with_carving) {
  // Two threads each carve blocks and hand every block to the other to free, while both
  // go on carving: the chunk words are written from both sides at once, chunks left full
  // are listed as the other side frees them and carved again by either. Several rounds.
  const std::size_t before = arena::chunks_live();
  for (int round = 0; round < 5; ++round) {
    BOOST_TEST(trade_blocks(20000, [](int, int) { return std::size_t{72}; }) == 0);
    BOOST_TEST(arena::chunks_live() == before);  // both threads ended: their chunks went
  }
}

BOOST_AUTO_TEST_CASE(empty_chunks_pass_between_threads_and_sizes) {
  // As above with three block sizes: a chunk emptied by one thread's frees becomes a spare
  // and is carved next for any size by either thread. Each block carries its maker's mark
  // until it is freed: blocks of two chunk lives never overlap.
  arena::release_spare_chunks();
  const std::size_t before = arena::chunks_live();
  constexpr std::size_t sizes[] = {64, 136, 256};
  for (int round = 0; round < 4; ++round) {
    // Runs of one size, so that chunks fill.
    BOOST_TEST(trade_blocks(30000, [&](int i, int side) { return sizes[(i / 97 + side) % 3]; }) == 0);
    BOOST_TEST(arena::chunks_live() == before);
    BOOST_TEST(arena::chunks_spare() > 0u);  // the chunks went to the spares, and came back
  }
  arena::release_spare_chunks();
}

#ifdef COOP_TEST_ASAN
BOOST_AUTO_TEST_CASE(freed_blocks_are_poisoned) {
  void* a = arena::allocate(88);
  void* b = arena::allocate(88);
  BOOST_TEST(!__asan_region_is_poisoned(a, 88));
  BOOST_TEST(__asan_address_is_poisoned(static_cast<char*>(b) + 88));  // not carved yet
  arena::deallocate(a, 88);
  BOOST_TEST(__asan_address_is_poisoned(a));
  BOOST_TEST(!__asan_region_is_poisoned(b, 88));
  arena::deallocate(b, 88);
}
#endif

// What users see: tasks made one after another sit one after another, whatever else is
// allocated between them (here each task's when_done operation).
BOOST_AUTO_TEST_CASE(tasks_are_packed_apart_from_their_waits) {
  manual_context ctx;
  coop::cooperator c(ctx);
  struct work {
    std::vector<std::uintptr_t>* seen;
    coop::step operator()() {
      seen->push_back(address(this));
      return coop::step::done;
    }
  };
  std::vector<std::uintptr_t> seen;
  seen.reserve(64);
  int done = 0;
  for (int i = 0; i < 64; ++i) c.cooperate(work{&seen}).when_done([&](std::exception_ptr) { ++done; });
  ctx.poll();
  BOOST_TEST(done == 64);
  BOOST_REQUIRE(seen.size() == 64u);
  // The work lives at the same offset in each task: one step between neighbours, the
  // task's size, except where a new chunk began.
  using task = coop::detail::callable_task<work>;
  const std::uintptr_t step = arena::block_for(sizeof(task), alignof(task));
  BOOST_TEST(step != 0u);
  std::sort(seen.begin(), seen.end());
  int packed = 0;
  for (std::size_t i = 1; i < seen.size(); ++i) packed += seen[i] - seen[i - 1] == step;
  BOOST_TEST(packed >= 62);
}

BOOST_AUTO_TEST_SUITE_END()
