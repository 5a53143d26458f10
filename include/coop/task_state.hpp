// SPDX-License-Identifier: BSL-1.0
// coop::task_state — where a task is in its life, as cooperative_task::state() reports it.
#pragma once

namespace coop {

/// Where a task is in its life (cooperative_task::state()).
enum class task_state {
  queued,            ///< waiting for admission (cooperator_options::max_active); runs no unit
  runnable,          ///< takes its turns
  paused,            ///< paused by the user; wins over waiting and queued
  waiting,           ///< a coop::steps coroutine waiting on the operation it yielded
  done,              ///< the work completed
  stopped,           ///< stopped by cooperative_task::stop() or a cancelled coiterate
  failed,            ///< a unit threw, or an awaited operation failed
  scheduler_stopped  ///< the cooperator stopped (or its execution context shut down) first
};

/// The state's name as written here ("queued", "runnable", ...).
constexpr const char* to_string(task_state s) noexcept {
  switch (s) {
    case task_state::queued: return "queued";
    case task_state::runnable: return "runnable";
    case task_state::paused: return "paused";
    case task_state::waiting: return "waiting";
    case task_state::done: return "done";
    case task_state::stopped: return "stopped";
    case task_state::failed: return "failed";
    case task_state::scheduler_stopped: return "scheduler_stopped";
  }
  return "unknown";
}

}  // namespace coop
