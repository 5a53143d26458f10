// SPDX-License-Identifier: BSL-1.0
// coop::cooperator_options — how a cooperator slices its ticks.
#pragma once

#include <chrono>
#include <functional>

namespace coop {

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
};

}  // namespace coop
