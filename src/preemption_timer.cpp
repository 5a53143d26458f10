// SPDX-License-Identifier: BSL-1.0
#include "core/core_impl.hpp"
#include "preemption_timer.hpp"

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <thread>
#include <vector>

#include <pthread.h>
#if defined(__linux__)
#include <cerrno>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace coop::detail::preemption_timer {
namespace {

// Asks the scheduler to run this thread in short slices (0.1 ms, the least it grants),
// so that it runs as soon as it wakes: on EEVDF kernels (Linux 6.12 and later) a waking
// thread with a shorter slice preempts the one running, while with the default slice it
// may wait for that one's slice to end. The watchdog shares a CPU with the tick it
// watches (its first wake-up comes from that thread, which puts it there), and a stall
// report or a preemption that waits out a spinning unit's slice comes ~3 ms late. The
// thread runs microseconds at a time, so short slices cost nothing. Earlier kernels
// ignore the request; the nice value is kept.
void ask_for_short_slices() noexcept {
#if defined(__linux__)
  struct slice_request {  // the kernel's struct sched_attr, first version (glibc 2.36 has none)
    std::uint32_t size, sched_policy;
    std::uint64_t sched_flags;
    std::int32_t sched_nice;
    std::uint32_t sched_priority;
    std::uint64_t sched_runtime, sched_deadline, sched_period;
  } attr{};
  errno = 0;
  const int nice = ::getpriority(PRIO_PROCESS, 0);  // this thread's
  if (nice == -1 && errno != 0) return;
  attr.size = sizeof attr;
  attr.sched_policy = SCHED_OTHER;
  attr.sched_nice = nice;
  attr.sched_runtime = 100'000;  // ns: for SCHED_OTHER, the requested slice
  (void)::syscall(SYS_sched_setattr, 0, &attr, 0u);  // a refusal (a sandbox) changes nothing
#endif
}

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
    ask_for_short_slices();
    std::unique_lock l(mutex_);
    int quiet_periods = 0;
    for (;;) {
      bool busy = false;
      auto wait = std::chrono::nanoseconds(period);
      const std::int64_t now = now_ns();
      // By index: the list may change while the mutex is released for a retry or a stall
      // report (an entry then skipped or seen twice costs nothing: both are idempotent).
      for (std::size_t i = 0; i < entries_.size(); ++i) {
        entry* e = entries_[i];
        const std::int64_t start = e->tick_start_ns.load(std::memory_order_relaxed);
        if (start != 0) {
          busy = true;
          // Under the mutex: the core cannot be destroyed meanwhile. A tick that ended
          // just now and a new one that started may get one spurious early end: harmless.
          if (now - start > e->slice_ns + std::chrono::nanoseconds(period).count()) e->core->preempt();
        }
        // Acquire: pairs with the tick's store, after which the core is fully made (its
        // weak_from_this() is read by a report).
        if (e->stall_ns > 0 && e->tick_thread.load(std::memory_order_acquire) != 0) {
          busy = true;
          wait = std::min<std::chrono::nanoseconds>(wait, stall_period);
          if (const auto due = look_for_stall(*e, now)) {
            report(*e->core, *due, l);
          } else if (e->probe_ns > e->reported_probe_ns) {
            wait = std::min<std::chrono::nanoseconds>(
                wait, std::chrono::nanoseconds(std::max<std::int64_t>(0, e->probe_ns + e->stall_ns - now)));
          }
        } else {
          e->probe_ns = 0;  // no tick: nothing to answer
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
        cv_.wait_for(l, wait);
      }
    }
  }
  // The stall detector's look at `e`, whose tick runs: how long the unit has run if it is
  // a stall to report now; otherwise it probes again when the last probe was answered.
  static std::optional<std::int64_t> look_for_stall(entry& e, std::int64_t now) noexcept {
    // A tick begun since the last probe made one at its start. Acquire: pairs with the
    // tick's store, after its first boundary's.
    const std::int64_t started = e.tick_start_ns.load(std::memory_order_acquire);
    if (started > e.probe_ns) {
      e.previous_probe_ns = e.probe_ns;
      e.probe_ns = started;
      e.probe_at_tick_start = true;
    }
    const std::int64_t boundary = e.boundary_ns.load(std::memory_order_relaxed);
    // The tick's own probe is its first boundary: only a later one answers it.
    const bool unanswered = e.probe_at_tick_start ? boundary <= e.probe_ns : boundary < e.probe_ns;
    if (e.probe_ns != 0 && unanswered) {
      // No boundary since the probe: the unit running then runs on. It began after the
      // probe before (answered, or this one would not have been made) and the last
      // boundary: it has run at least since the probe, at most since then.
      if (e.reported_probe_ns == e.probe_ns || now - e.probe_ns < e.stall_ns) return std::nullopt;
      e.reported_probe_ns = e.probe_ns;  // once per unit
      return now - std::max(boundary, e.previous_probe_ns);
    }
    e.previous_probe_ns = e.probe_ns;
    e.probe_ns = now;
    e.probe_at_tick_start = false;
    e.core->probe();
    return std::nullopt;
  }
  // Reports a stall of `core`'s running unit without our mutex (the report waits for the
  // stalled thread's account and calls the user's on_stall, which may make or destroy a
  // cooperator); pinned, as for a retry.
  static void report(core_impl& core, std::int64_t running_ns, std::unique_lock<std::mutex>& l) noexcept {
    std::shared_ptr<core_impl> pinned = core.weak_from_this().lock();
    if (!pinned) return;
    l.unlock();
    pinned->report_stall(std::chrono::nanoseconds(running_ns));
    pinned.reset();
    l.lock();
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
          return e->tick_start_ns.load(std::memory_order_seq_cst) != 0 || e->needs_retry.load(std::memory_order_seq_cst) ||
                 (e->stall_ns > 0 && e->tick_thread.load(std::memory_order_seq_cst) != 0);
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
