// SPDX-License-Identifier: BSL-1.0
// coop::task_options — a task's name and shares, given when it is added.
#pragma once

#include <string>

namespace coop {

/// A task's name and shares, given to cooperate() or coiterate(); usable with designated
/// initializers (`c.cooperate(work, {.name = "checksum", .shares = 400})`).
struct task_options {
  /// Shown by cooperative_task::name(). Empty: "task-N", N counting from 1 per
  /// cooperator in the order tasks were added.
  std::string name{};  // an initializer: leaving it out of a designated initializer must not warn
  /// The task's share of the cooperator relative to the others, 1..10000; outside that,
  /// cooperate()/coiterate() throw std::invalid_argument and add nothing. With
  /// fairness::units a task runs shares/100 units per turn on average (100: one unit per
  /// turn, Twisted's order); with fairness::time its share of the busy time is
  /// proportional to its shares.
  unsigned shares = 100;
};

}  // namespace coop
