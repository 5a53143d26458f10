// SPDX-License-Identifier: BSL-1.0
// Busy time from the clock reads the tick makes anyway (task_stats, cooperator_stats):
// no clock read per unit. Each run of a task is charged, as it ends, the rate per unit of
// the last interval between two reads; when a read follows a single run of one task, that
// task is charged exactly the time since the read before (its on-the-fly charge undone).
// So a task whose runs each end at a read (fairness::time, a lone task, units long enough
// that the clock is read after each) has exact busy time, and trivial units sharing an
// interval share its time evenly.
#pragma once

#include <coop/detail/task_base.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <utility>

namespace coop::detail {

/// What one read of the steady clock costs (ns), measured once.
std::int64_t clock_read_ns() noexcept;

class busy_meter {
public:
  /// What each unit is charged now, in 1/256 ns (busy_scale).
  std::uint64_t rate() const noexcept { return rate_; }

  /// A run of `n` units of `t` has ended; `t` is still alive.
  void ran(task_base& t, std::uint32_t n) noexcept {
    const std::uint64_t cost = rate_ * n;
    t.count_units(n, cost);
    single_ = runs_ == 0 ? &t : nullptr;
    charged_ = cost;
    ++runs_;
    units_ += n;
    // A task that finished during the run (it stopped itself) may be freed before the
    // next read: if the run is the only one since the last read, it is charged now.
    if (t.retired_) retiring(t, 0);  // its waits completed as it retired
  }
  /// `n` units of several tasks ran in place (in_place_walk.hpp), each charged rate().
  void walked(std::uint32_t n) noexcept {
    single_ = nullptr;
    runs_ += 2;
    units_ += n;
  }
  /// `t` finishes (and may be freed soon), the cooperator still holding its reference and
  /// `waits` when_done operations about to complete holding one each: if its run is the one
  /// since the last read, it is charged that run's time now (a read), as no later read may
  /// reach it. Unless those are all its references: no handle is left to ask for its stats,
  /// and a read would cost each finishing task (one-unit tasks, say) a clock read for
  /// nothing. The interval's time still counts in the cooperator's at the next read.
  void retiring(const task_base& t, std::uint32_t waits) noexcept {
    if (single_ != &t) return;
    if (t.references() == 1 + waits) single_ = nullptr;
    else read(std::chrono::steady_clock::now());
  }

  /// Where each read's time goes, for the stall detector (every read is at a unit boundary).
  void publish_to(std::atomic<std::int64_t>& boundary) noexcept { boundary_ = &boundary; }

  /// A clock read at `now`: the time since the last read covers the runs since.
  void read(std::chrono::steady_clock::time_point now) noexcept {
    publish(now);
    const std::int64_t elapsed = std::max<std::int64_t>(0, (now - last_).count());
    last_ = now;
    tick_busy_ += elapsed;
    // The read itself is the tick's time, not the units'.
    const std::uint64_t scaled =
        static_cast<std::uint64_t>(std::max<std::int64_t>(0, elapsed - clock_read_ns())) * busy_scale;
    if (single_) {
      // One run since the last read: it took all of the interval. Unsigned wrap-around
      // makes the subtraction of the on-the-fly charge exact either way.
      single_->busy_.store(single_->busy_.load(std::memory_order_relaxed) + scaled - charged_,
                           std::memory_order_relaxed);
    }
    if (units_ != 0) rate_ = scaled / units_;
    tick_units_ += units_;
    single_ = nullptr;
    runs_ = 0;
    units_ = 0;
  }
  /// The start of a tick's units: the first read.
  void start(std::chrono::steady_clock::time_point now) noexcept {
    publish(now);
    last_ = now;
    single_ = nullptr;
    runs_ = 0;
    units_ = 0;
  }
  /// The last clock read (the time the run order's waits are measured from).
  std::chrono::steady_clock::time_point last_read() const noexcept { return last_; }
  /// Whether units ran since the last read.
  bool unread() const noexcept { return runs_ != 0; }

  /// What the tick ran: units, and ns read. Resets both.
  std::uint64_t take_units() noexcept { return std::exchange(tick_units_, 0); }
  std::int64_t take_busy() noexcept { return std::exchange(tick_busy_, 0); }

private:
  void publish(std::chrono::steady_clock::time_point now) noexcept {
    if (boundary_) boundary_->store(now.time_since_epoch().count(), std::memory_order_relaxed);
  }

  std::atomic<std::int64_t>* boundary_ = nullptr;
  std::uint64_t rate_ = 0;
  std::chrono::steady_clock::time_point last_{};
  task_base* single_ = nullptr;  // the one run since the last read, if one
  std::uint64_t charged_ = 0;    // what single_'s run was charged as it ended
  std::uint32_t runs_ = 0;
  std::uint64_t units_ = 0;  // since the last read
  std::uint64_t tick_units_ = 0;
  std::int64_t tick_busy_ = 0;
};

}  // namespace coop::detail
