// SPDX-License-Identifier: BSL-1.0
// The core's re-entrant lock: which cores this thread holds, and the scoped lock that
// takes the core's mutex and, as it lets go, applies what other threads left in the
// inbox meanwhile (core_lock.cpp).
#pragma once

#include "core_impl.hpp"

#include <mutex>

namespace coop::detail {

/// A core whose lock this thread holds; a stack of them, innermost first, lives on the
/// holders' stacks.
struct held_lock {
  const core_impl* core;
  held_lock* outer;
};

/// Whether this thread holds `core`'s lock: a call made from inside a unit, a work
/// destructor or any other code run under the lock must not lock again.
bool this_thread_holds(const core_impl* core) noexcept;
/// `node` (on the caller's stack) becomes this thread's innermost held lock, until
/// pop_held(node).
void push_held(held_lock& node) noexcept;
void pop_held(const held_lock& node) noexcept;

// Blocking and re-entrant. Used where waiting for a tick to end is right: the tick itself,
// the strand's own handlers, and cooperator start()/stop().
class core_impl::lock {
public:
  explicit lock(core_impl& core) noexcept : core_(core), owns_(!this_thread_holds(&core)) {
    if (owns_) {
      core_.mutex_.lock();
      enter();
    }
  }
  /// Adopts a mutex this thread has just locked.
  lock(core_impl& core, std::adopt_lock_t) noexcept : core_(core), owns_(true) { enter(); }
  ~lock() {
    if (owns_) {
      // Still the holder: code these run may re-enter.
      if (core_.inbox_waiting()) core_.drain_inbox();
      if (core_.needs_retry_.load(std::memory_order_relaxed)) core_.retry();
      core_.publish_counts();
      pop_held(node_);
      core_.mutex_.unlock();
      if (core_.inbox_waiting()) core_.after_unlock();
    }
  }
  lock(const lock&) = delete;
  lock& operator=(const lock&) = delete;

private:
  void enter() noexcept {
    node_.core = &core_;
    push_held(node_);
  }
  core_impl& core_;
  bool owns_;
  held_lock node_{};
};

}  // namespace coop::detail
