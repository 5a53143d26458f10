// SPDX-License-Identifier: BSL-1.0
// The scheduling policy: which runnable task takes the next turn, and how a turn may run
// more than one unit. The tick asks only this class which task runs next, and placement
// tells only this class when a task becomes runnable or stops being runnable; a policy
// with shares or fairness by time replaces this class and touches neither.
//
// This one is Twisted's Cooperator: round-robin in join order, one unit per turn; with
// shares or fairness by time, the tick makes a turn longer or shorter (tick.cpp) and this
// class holds a task whose turn continues. A task
// that joins while a round is under way takes its turn in that round (Twisted's list
// iterator). Two shortcuts keep a unit cheap and change nothing observable: a lone task
// runs a batch of units in one turn (no virtual call per unit), and the tasks in place
// after the current one may take their turns in their own type's code (in_place_walk.hpp).
#pragma once

#include "run_ring.hpp"

#include <coop/detail/in_place_walk.hpp>
#include <coop/detail/task_base.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace coop::detail {

class round_robin {
public:
  bool empty() const noexcept { return ring_.empty(); }
  std::size_t size() const noexcept { return ring_.size(); }
  /// Room for `tasks` runnable tasks, so join() never allocates. Throws when out of
  /// memory, with nothing changed.
  void reserve(std::size_t tasks) { ring_.reserve(tasks); }

  /// `t` becomes runnable: it joins at the end of the order. `this_round` false (the task
  /// whose unit is running or has just ended): it lets every other task have its turn
  /// before its next one, even when the round is at its end.
  void join(task_base& t, bool this_round) noexcept {
    t.rejoined_ = true;  // the next weighted turn drops its credit (tick.cpp)
    ring_.push_back(t, this_round);
  }
  /// `t` stops being runnable (paused, awaiting an operation, finished, resumed to the end).
  void leave(task_base& t) noexcept {
    if (held_ == &t) held_ = nullptr;
    ring_.unlink(t);
  }
  /// Some runnable task, for stopping them all; null when none.
  task_base* any() noexcept { return ring_.any(); }
  /// Offers the runnable tasks, from the back of the ring, to `take(task)` until it has
  /// taken `count`; a task it takes, it must leave() (a pool moves it to another member).
  /// Not during a tick's units.
  template <class Take> void give_from_end(std::size_t count, Take&& take) noexcept { ring_.offer_from_end(count, take); }

  /// The task whose turn comes next; null when none is runnable.
  task_base* next() noexcept { return ring_.next_in_round(); }
  /// The task just returned by next() is the only runnable one: its turn may run many
  /// units, until anything changes.
  bool lone() const noexcept { return ring_.single(); }
  /// Lets the tasks after the one just returned by next() take their turns in place, at
  /// most `units` of them, through `w` (in_place_walk.hpp), until end_walk(); false when
  /// they cannot (then the tick asks next() for each).
  bool start_walk(in_place_walk& w, std::uint32_t units) noexcept { return ring_.start_walk(w, units); }
  void end_walk() noexcept { ring_.end_walk(); }

  // Weighted turns (shares, fairness by time) may run several units, and a turn may be cut
  // short (the tick's slice or predicate ends, a clock read is due): the task just
  // returned by next() is held, and continues its turn before anyone else's.
  /// `t`, just returned by next(), has more of its turn to run.
  void hold(task_base& t) noexcept { held_ = &t; }
  /// The task whose turn continues, if any (the hold ends); else null.
  task_base* take_held() noexcept { return std::exchange(held_, nullptr); }

private:
  run_ring ring_;
  task_base* held_ = nullptr;
};

}  // namespace coop::detail
