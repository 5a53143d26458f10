// SPDX-License-Identifier: BSL-1.0
// coop::cooperator_options — how a cooperator slices its ticks and shares them out.
#pragma once

#include <coop/stats.hpp>

#include <chrono>
#include <cstddef>
#include <functional>

namespace coop {

/// What a cooperator shares out among its runnable tasks, in proportion to their shares
/// (task_options::shares).
enum class fairness {
  /// Units, Twisted's way: round-robin in join order, a task running shares/100 units
  /// per turn on average; at the default 100 shares, one unit per turn.
  units,
  /// Busy time, whatever the units cost: each turn gives a task a time budget
  /// proportional to its shares and charges it the time its units took, so a task whose
  /// units take 100 us gets the same time as one whose units take 1 us.
  time
};

/// How a cooperator slices its ticks; usable with designated initializers
/// (`coop::cooperator c(io, {.slice = 500us});`).
struct cooperator_options {
  /// Time budget of one tick. The clock is read every few units, adaptively, so that a
  /// tick overshoots its slice by at most a few microseconds plus one unit.
  std::chrono::nanoseconds slice = std::chrono::milliseconds(1);
  /// Twisted's terminationPredicateFactory. When set, `slice` is ignored: the factory is
  /// called at the start of each tick and the predicate is asked after every unit; true
  /// ends the tick. A factory or predicate that throws ends the tick.
  std::function<std::function<bool()>()> termination = {};
  /// false: tasks queue until start().
  bool started = true;
  /// Units (Twisted) or time: what the runnable tasks get in proportion to their shares.
  coop::fairness fairness = fairness::units;
  /// At most this many unfinished tasks are admitted at once (runnable, paused and
  /// waiting ones count); 0: no limit. Later tasks wait in the order they were added, in
  /// task_state::queued, running no unit; every task operation works on them. When an
  /// admitted task finishes, the oldest queued one is admitted (paused if it was paused
  /// while queued) and joins the end of the run order.
  std::size_t max_active = 0;
  /// The stall detector: a unit that has run longer than this is reported through
  /// on_stall, once, while it still runs, at most about 1 ms late; a unit that never
  /// returns too. 0: no detector.
  std::chrono::nanoseconds stall_threshold{0};
  /// Called with each stall_report, on the library's own watchdog thread: it must be
  /// thread-safe and quick (it delays the detection of other stalls and the preemption of
  /// long ticks). Empty: one line to stderr.
  std::function<void(const stall_report&)> on_stall = {};
  /// After a tick that leaves tasks runnable, the thread yields the CPU to the OS
  /// (std::this_thread::yield(), outside the cooperator's lock). A thread that never
  /// enters the kernel can keep a thread the OS woke meanwhile waiting for the kernel's
  /// next timer tick (Linux: up to 4 ms at HZ=250), be it another of the process's I/O
  /// threads or a process beside it; with the yield it waits at most a slice. It returns
  /// at once when no other thread waits for the CPU (about 1 us per tick). false: never.
  bool yield_cpu = true;
};

}  // namespace coop
