// SPDX-License-Identifier: BSL-1.0
// A task's handle: pause(), resume() and stop() from any thread (one compare-and-swap on
// the task's control word, then the placement follows, now or through the inbox), and
// when_done's waits and their cancellation.
#include "core_lock.hpp"

#include <thread>

namespace coop::detail {

void core_impl::wait_out_unit(const task_base& t) const noexcept {
  // No units running: a tick starting later fences before its first unit, so it sees the
  // change (the caller's compare-and-swap and this load are sequentially consistent).
  const std::uint32_t epoch = units_epoch_.load(std::memory_order_seq_cst);
  if (!(epoch & 1)) return;
  // A unit of its own task (same thread) is the caller itself: nothing to wait for.
  if (this_thread_holds(this)) return;
  // The tick only has a compiler barrier between publishing a task and reading its
  // control word; make every running thread's stores visible before reading. Should the
  // kernel refuse (a seccomp filter installed after registration), wait for this tick's
  // units to end instead: the next tick fences before its first unit.
  if (asymmetric_fences_ && !heavy_fence()) {
    while (units_epoch_.load(std::memory_order_seq_cst) == epoch) std::this_thread::yield();
    return;
  }
  while (running_task_.load(std::memory_order_seq_cst) == &t) std::this_thread::yield();
}

// Blocking and re-entrant. Used where waiting for a tick to end is right: the tick itself,
// the strand's own handlers, and cooperator start()/stop().

namespace {
boost::system::error_code finished_error(run_state s) noexcept {
  switch (s) {
    case run_state::done: return make_error_code(error::task_done);
    case run_state::stopped: return make_error_code(error::task_stopped);
    case run_state::failed: return make_error_code(error::task_failed);
    case run_state::scheduler_stopped: return make_error_code(error::scheduler_stopped);
    case run_state::active: break;
  }
  return {};
}
}  // namespace

bool core_impl::try_finish(task_base& t, run_state how) noexcept {
  std::uint32_t c = t.control_.load(std::memory_order_relaxed);
  do {
    if (control::state(c) != run_state::active) return false;  // the first way of finishing wins
  } while (!t.control_.compare_exchange_weak(c, control::with_state(c, how), std::memory_order_seq_cst));
  return true;
}

boost::system::error_code core_impl::pause(task_base& t) noexcept {
  std::uint32_t c = t.control_.load(std::memory_order_relaxed);
  do {
    if (control::state(c) != run_state::active) return finished_error(control::state(c));
  } while (!t.control_.compare_exchange_weak(c, c + control::one_pause, std::memory_order_seq_cst));
  // The runner checks control_ before every unit, so no new unit starts from here on.
  // The task leaves the run order lazily: the runner parks it when its turn comes (or a
  // resume moves it to the end first), so a pause costs no lock.
  if (control::pauses(c) == 0) wait_out_unit_anywhere(t);
  return {};
}

boost::system::error_code core_impl::resume(task_base& t) noexcept {
  if (!holds(t)) {
    // A pool moved the task: the member holding it relinks it.
    holder h = holder_of(t);
    if (h.core && h.core != this) return h.core->resume(t);
  }
  const bool held = this_thread_holds(this);
  std::optional<lock> l;
  if (!held && mutex_.try_lock()) {
    l.emplace(*this, std::adopt_lock);
    // Moved between the check above and the lock: ask its member again. Unless that
    // member is gone (the pool was destroyed), which finished the task: then only the
    // pause count is left to change, here.
    if (!holds(t) && holder_of(t).core) {
      l.reset();
      return resume(t);
    }
  }
  const bool locked = held || l;
  // Without the lock (a tick holds it) the requeue bit keeps the runner from running the
  // task where a lazy pause left it; the runner or the inbox moves it to the end.
  std::uint32_t c = t.control_.load(std::memory_order_relaxed);
  bool requeue;
  do {
    if (control::pauses(c) == 0) return make_error_code(error::not_paused);
    // A task that finished while paused stays finished: resuming it is a no-op.
    requeue = control::pauses(c) == 1 && control::state(c) == run_state::active;
  } while (!t.control_.compare_exchange_weak(c, (c - control::one_pause) | (requeue && !locked ? control::requeue : 0),
                                             std::memory_order_acq_rel));
  if (!requeue) return {};
  if (locked) update_placement(t, true);
  else apply_or_queue(request::update_placement, t);
  return {};
}

boost::system::error_code core_impl::stop(task_base& t) noexcept {
  if (!try_finish(t, run_state::stopped)) return finished_error(control::state(t.control_.load(std::memory_order_acquire)));
  wait_out_unit_anywhere(t);
  apply_or_queue(request::update_placement, t);
  return {};
}

void core_impl::when_done(task_base& t, waiter_base& w) noexcept {
  w.id_ = next_waiter_id_.fetch_add(1, std::memory_order_relaxed);
  apply_or_queue(request::park_waiter, t, &w);
}

void core_impl::cancel_waiter(task_base& t, waiter_base& w) noexcept { apply_or_queue(request::cancel_waiter, t, &w); }

void core_impl::cancel_task(task_base& t) noexcept {
  if (try_finish(t, run_state::stopped)) apply_or_queue(request::update_placement, t);
}

}  // namespace coop::detail
