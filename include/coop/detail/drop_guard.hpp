// SPDX-License-Identifier: BSL-1.0
// Tells a poster that Asio dropped its handler. When a post runs out of memory, Asio has
// already moved the handler into its own wrapper: it destroys it and throws. Only the
// handler's destructor sees it go, so a handler whose loss matters reports itself to the
// guard of the post in progress on its thread, and the poster keeps what it carried.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

namespace coop::detail {

class drop_guard {
public:
  /// Watches, for the guard's lifetime, for the handler known by `handler_id` and `tag`.
  explicit drop_guard(const void* handler_id, std::uint64_t tag = 0) noexcept
      : id_(handler_id), tag_(tag), outer_(innermost_) {
    innermost_ = this;
  }
  ~drop_guard() { innermost_ = outer_; }
  drop_guard(const drop_guard&) = delete;
  drop_guard& operator=(const drop_guard&) = delete;

  bool dropped() const noexcept { return dropped_; }

  /// Called by a handler destroyed without having run: true when a post in progress on
  /// this thread dropped it (its poster takes over); false when its queue was destroyed
  /// (the execution context shut down).
  static bool report_drop(const void* handler_id, std::uint64_t tag = 0) noexcept {
    if (drop_guard* g = find(handler_id, tag)) {
      g->dropped_ = true;
      return true;
    }
    return false;
  }

  /// Called first thing by a handler that runs (inline, inside the post that guards it):
  /// it was not dropped, and whatever it goes on to do — run user code, free what the id
  /// points to, make another handler with the same id — must not be taken for its drop.
  static void report_run(const void* handler_id, std::uint64_t tag = 0) noexcept {
    if (drop_guard* g = find(handler_id, tag)) g->id_ = nullptr;
  }

  /// Destroys `f` unrun as a context's shutdown destroys its queue: a handler inside
  /// reports no drop to a post in progress on this thread, whose poster would otherwise
  /// keep it and send it again, forever.
  template <class F> static void destroy_unrun(F&& f) noexcept {
    drop_guard* const outer = std::exchange(innermost_, nullptr);
    { [[maybe_unused]] std::decay_t<F> gone(std::forward<F>(f)); }
    innermost_ = outer;
  }

private:
  static drop_guard* find(const void* handler_id, std::uint64_t tag) noexcept {
    for (drop_guard* g = innermost_; g; g = g->outer_)
      if (g->id_ == handler_id && g->tag_ == tag) return g;
    return nullptr;
  }

  const void* id_;
  std::uint64_t tag_;
  drop_guard* outer_;
  bool dropped_ = false;
  static inline thread_local drop_guard* innermost_ = nullptr;
};

}  // namespace coop::detail
