// SPDX-License-Identifier: BSL-1.0
// The cooperator's lock. A resume() from outside a tick takes it once (try_lock, then
// unlock), so its cost is part of every pause+resume pair: std::mutex goes through two
// out-of-line pthread calls that check the mutex kind, this is one compare-and-swap to
// take it and one exchange to give it back, inline. Contended, it sleeps on the word
// (C++20 atomic wait: a futex on Linux), so a thread blocked behind a 4 ms tick does not
// spin. Not re-entrant (the core's lock class handles that).
//
// Sequentially consistent, not just acquire/release: the core's inbox is a store-then-load
// handshake on both sides (the holder unlocks, then looks at the inbox bit; another thread
// sets the bit, then tries the lock), which needs a total order. On x86 these are the same
// instructions.
#pragma once

#include <atomic>
#include <cstdint>

namespace coop::detail {

class core_mutex {
public:
  bool try_lock() noexcept {
    std::uint32_t expected = free;
    return state_.compare_exchange_strong(expected, locked, std::memory_order_seq_cst);
  }
  void lock() noexcept {
    if (try_lock()) return;
    // Mark the lock contended before sleeping, so that its holder's unlock wakes us; keep
    // it marked when we get it (we cannot know whether others sleep too).
    while (state_.exchange(contended, std::memory_order_seq_cst) != free)
      state_.wait(contended, std::memory_order_relaxed);
  }
  void unlock() noexcept {
    if (state_.exchange(free, std::memory_order_seq_cst) == contended) state_.notify_one();
  }

private:
  static constexpr std::uint32_t free = 0;
  static constexpr std::uint32_t locked = 1;
  static constexpr std::uint32_t contended = 2;  // locked, and someone may sleep on it
  std::atomic<std::uint32_t> state_{free};
};

}  // namespace coop::detail
