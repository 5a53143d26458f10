// SPDX-License-Identifier: BSL-1.0
// coop::task_stats and coop::cooperator_stats — what a task and a cooperator have run,
// as snapshots readable from any thread — and coop::stall_report, what the stall detector
// reports.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace coop {

/// What one task has run and waited (cooperative_task::stats()).
///
/// The counts are kept while the task runs, from the clock reads the cooperator makes
/// anyway (no clock read per unit): `units` is exact; `busy` is exact for a run of the
/// task followed by a clock read (fairness::time, a lone task, units of a microsecond or
/// more), and otherwise shares the time between two reads among the units run between
/// them at the rate of the last interval.
struct task_stats {
  std::uint64_t units = 0;            ///< units run
  std::chrono::nanoseconds busy{};    ///< time spent in its units
  /// Time runnable while others ran (Seastar's waittime): in the run order, not paused,
  /// not waiting on an operation, not queued, and not running.
  std::chrono::nanoseconds waited{};
};

/// What a cooperator has run, and where its unfinished tasks are (cooperator::stats()).
/// `ticks`, `units` and `busy` grow as each tick ends: a task's completion handler, which
/// may run on another thread while the tick goes on, can see them without its last units.
struct cooperator_stats {
  std::uint64_t ticks = 0;  ///< ticks run (a tick runs units for one slice)
  std::uint64_t units = 0;  ///< units run, by all tasks
  // Unfinished tasks by placement, as of the last change under the cooperator's lock (at
  // the latest the end of the running tick). A task paused from another thread leaves
  // the run order when its turn comes, and counts as runnable until then.
  std::size_t queued = 0;    ///< waiting for admission (cooperator_options::max_active)
  std::size_t runnable = 0;  ///< in the run order
  std::size_t paused = 0;    ///< out of the run order, paused
  std::size_t waiting = 0;   ///< out of the run order, a coroutine awaiting its operation
  std::uint64_t finished = 0;       ///< tasks finished since construction
  std::chrono::nanoseconds busy{};  ///< time in ticks running units
  std::uint64_t stalls = 0;         ///< units reported by the stall detector
  /// A cooperator_pool's member: runnable tasks it took from other members when it had
  /// none (work stealing), and tasks it gave them. Summed over a pool, the two are equal.
  std::uint64_t moved_in = 0;
  std::uint64_t moved_out = 0;  ///< see moved_in
};

/// A unit that has run longer than cooperator_options::stall_threshold, reported while it
/// still runs (cooperator_options::on_stall).
struct stall_report {
  std::string task;                    ///< the stalled task's name (cooperative_task::name())
  std::chrono::nanoseconds running{};  ///< how long the unit had run when reported
  /// The stalled thread's stack, taken during the stall, one frame per line; empty where
  /// the platform cannot take one.
  std::string backtrace;
};

}  // namespace coop
