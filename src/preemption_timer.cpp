// SPDX-License-Identifier: BSL-1.0
#include "core/core_impl.hpp"
#include "preemption_timer.hpp"

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include <pthread.h>

namespace coop::detail::preemption_timer {
namespace {

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class timer_thread {
public:
  void add(entry& e) {
    std::lock_guard l(mutex_);
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    entries_.push_back(&e);
  }
  void remove(entry& e) noexcept {
    std::lock_guard l(mutex_);
    std::erase(entries_, &e);
  }
  void tick_started() noexcept {
    if (!idle_.load(std::memory_order_seq_cst)) return;
    std::lock_guard l(mutex_);
    cv_.notify_one();
  }

private:
  [[noreturn]] void run() {
    std::unique_lock l(mutex_);
    int quiet_periods = 0;
    for (;;) {
      bool busy = false;
      const std::int64_t now = now_ns();
      // By index: the list may change while the mutex is released for a retry (an entry
      // then skipped or seen twice costs nothing: both checks are idempotent).
      for (std::size_t i = 0; i < entries_.size(); ++i) {
        entry* e = entries_[i];
        const std::int64_t start = e->tick_start_ns.load(std::memory_order_relaxed);
        if (start != 0) {
          busy = true;
          // Under the mutex: the core cannot be destroyed meanwhile. A tick that ended
          // just now and a new one that started may get one spurious early end: harmless.
          if (now - start > e->slice_ns + std::chrono::nanoseconds(period).count()) e->core->preempt();
        }
        if (e->needs_retry.load(std::memory_order_acquire)) {
          busy = true;
          retry(*e->core, l);
        }
      }
      quiet_periods = busy ? 0 : quiet_periods + 1;
      if (quiet_periods > 50) {
        // Nothing ticked for a while: sleep until a tick starts.
        idle_.store(true, std::memory_order_seq_cst);
        cv_.wait(l, [&] { return any_tick_running(); });
        idle_.store(false, std::memory_order_release);
        quiet_periods = 0;
      } else {
        cv_.wait_for(l, period);
      }
    }
  }
  // Posts again what `core` could not post, without our mutex: releasing the core's lock
  // applies what other threads left meanwhile, such as a stop() whose work destructor
  // makes or destroys a cooperator (add()/remove() take our mutex). The core is pinned,
  // so it cannot be freed under the retry; one whose last owner is gone (its destructor
  // waits for our mutex) is skipped.
  static void retry(core_impl& core, std::unique_lock<std::mutex>& l) noexcept {
    std::shared_ptr<core_impl> pinned = core.weak_from_this().lock();
    if (!pinned) return;
    l.unlock();
    pinned->try_retry();  // try_lock only: never waits on a running tick
    pinned.reset();       // may destroy the core, whose destructor takes our mutex
    l.lock();
  }
  bool any_tick_running() const noexcept {
    return std::any_of(entries_.begin(), entries_.end(),
                       [](entry* e) {
          return e->tick_start_ns.load(std::memory_order_seq_cst) != 0 || e->needs_retry.load(std::memory_order_seq_cst);
        });
  }

  friend void prepare_fork() noexcept;
  friend void parent_after_fork() noexcept;
  friend void child_after_fork() noexcept;

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<entry*> entries_;
  std::atomic<bool> idle_{false};
  std::thread thread_;
};

timer_thread& instance();

// fork() from a process with cooperators (a server spawning a helper, a test forking per
// case): the child must not inherit the mutex locked by this thread. The child has no
// timer thread (its cooperators still run; only the backstop preemption and the retry of
// posts that ran out of memory wait for the next lock release instead).
void prepare_fork() noexcept { instance().mutex_.lock(); }
void parent_after_fork() noexcept { instance().mutex_.unlock(); }
void child_after_fork() noexcept {
  timer_thread& t = instance();
  new (&t.cv_) std::condition_variable();  // no one waits on it here
  t.mutex_.unlock();
}

// Never destroyed: the thread runs until the process exits, and cores may tick until then.
timer_thread& instance() {
  static timer_thread* t = [] {
    auto* made = new timer_thread;
    ::pthread_atfork(&prepare_fork, &parent_after_fork, &child_after_fork);
    return made;
  }();
  return *t;
}

// Made while the library loads, for the same reason as the fence registration
// (asymmetric_fence.cpp): a fork() during its first use would leave the child waiting on
// the static's guard.
[[maybe_unused]] timer_thread& made_at_load = instance();

}  // namespace

void add(entry& e) { instance().add(e); }
void remove(entry& e) noexcept { instance().remove(e); }
void tick_started() noexcept { instance().tick_started(); }

}  // namespace coop::detail::preemption_timer
