// SPDX-License-Identifier: BSL-1.0
// What a task and a cooperator report (task_stats, cooperator_stats): the snapshots,
// readable from any thread without the lock, and the bookkeeping behind them that is not
// the tick's (busy_meter.hpp) or a task's waits (wait_marks.hpp).
#include "core_lock.hpp"
#include "wait_marks.hpp"

#include "../stall_capture.hpp"

#include <cstdio>

namespace coop::detail {

namespace {
std::int64_t measure_clock_read() noexcept {
  // The least of a few back-to-back reads: what a read costs when nothing interrupts it.
  using clock = std::chrono::steady_clock;
  std::int64_t least = 100;  // a bound: a VM that traps each read must not eat the units' time
  auto last = clock::now();
  for (int i = 0; i < 64; ++i) {
    const auto now = clock::now();
    least = std::min<std::int64_t>(least, (now - last).count());
    last = now;
  }
  return least;
}
const std::int64_t clock_read_cost = measure_clock_read();
}  // namespace

std::int64_t clock_read_ns() noexcept { return clock_read_cost; }

task_stats cooperator_core::stats(const task_base& t) noexcept {
  const auto now = std::chrono::steady_clock::now();
  task_stats s;
  s.units = t.units_.load(std::memory_order_relaxed);
  s.busy = std::chrono::nanoseconds(wait_marks::busy_ns(t));
  s.waited = std::chrono::nanoseconds(wait_marks::waited(t, now));
  return s;
}

cooperator_stats core_impl::stats() const noexcept {
  cooperator_stats s;
  s.ticks = ticks_.load(std::memory_order_relaxed);
  s.units = units_run_.load(std::memory_order_relaxed);
  s.queued = queued_count_.load(std::memory_order_relaxed);
  s.runnable = runnable_count_.load(std::memory_order_relaxed);
  s.paused = paused_count_.load(std::memory_order_relaxed);
  s.waiting = waiting_count_.load(std::memory_order_relaxed);
  s.finished = finished_.load(std::memory_order_relaxed);
  s.busy = std::chrono::nanoseconds(busy_ns_.load(std::memory_order_relaxed));
  s.stalls = stalls_.load(std::memory_order_relaxed);
  s.moved_in = moved_in_.load(std::memory_order_relaxed);
  s.moved_out = moved_out_.load(std::memory_order_relaxed);
  return s;
}

void core_impl::publish_counts() noexcept {
  runnable_count_.store(policy_.size(), std::memory_order_relaxed);
  paused_count_.store(parked_.size() - waiting_parked_, std::memory_order_relaxed);
  waiting_count_.store(waiting_parked_, std::memory_order_relaxed);
  queued_count_.store(queued_.size(), std::memory_order_relaxed);
}

std::chrono::steady_clock::time_point core_impl::wait_clock() noexcept {
  // No clock read of its own but when the run order is empty (idle: a tick is about to be
  // posted, which costs far more). Within a tick, its last read, a few microseconds old;
  // between ticks, the last tick's end, or the time the first task joined.
  if (in_tick_) return meter_.last_read();
  if (policy_.empty()) last_stamp_ = std::chrono::steady_clock::now();
  return last_stamp_;
}

void core_impl::leave_run_order(task_base& t) noexcept {
  const auto now = wait_clock();  // before it leaves: the run order empty means idle
  policy_.leave(t);
  wait_marks::leave(t, now);
}

void core_impl::report_stall(std::chrono::nanoseconds running) noexcept {
  try {
    // The thread answers within microseconds unless it cannot take signals now.
    const long thread = timer_entry_.tick_thread.load(std::memory_order_relaxed);
    stall_capture::account account = stall_capture::take(thread, running_task_, std::chrono::milliseconds(20));
    stall_report report{std::move(account.task), running, std::move(account.backtrace)};
    add_relaxed(stalls_, std::uint64_t{1});  // only this (the watchdog) thread writes it
    if (on_stall_) {
      on_stall_(report);
    } else {
      std::fprintf(stderr, "coop: stall: a unit of %s has run for %.1f ms (stall threshold %.1f ms)\n",
                   report.task.empty() ? "a task" : ("\"" + report.task + "\"").c_str(),
                   static_cast<double>(running.count()) / 1e6, static_cast<double>(timer_entry_.stall_ns) / 1e6);
    }
  } catch (...) {
    // Out of memory, or on_stall threw: nothing may escape into the watchdog thread.
  }
}

void core_impl::count_tick() noexcept {
  if (meter_.unread()) meter_.read(std::chrono::steady_clock::now());
  last_stamp_ = meter_.last_read();
  add_relaxed(ticks_, std::uint64_t{1});
  add_relaxed(units_run_, meter_.take_units());
  add_relaxed(busy_ns_, static_cast<std::uint64_t>(meter_.take_busy()));
}

}  // namespace coop::detail
