// SPDX-License-Identifier: BSL-1.0
// coop::cooperative_task — a handle to one task of a cooperator (Twisted: CooperativeTask).
#pragma once

#include <coop/detail/cooperator_core.hpp>
#include <coop/detail/task_base.hpp>
#include <coop/detail/when_done_op.hpp>
#include <coop/error.hpp>
#include <coop/stats.hpp>
#include <coop/task_state.hpp>

#include <boost/asio/async_result.hpp>

#include <exception>
#include <string>

namespace coop {

namespace asio = boost::asio;

template <class T> class result_task;

/// A cheap, copyable handle to a task; copies refer to the same task. It stays safe to
/// use after the cooperator is gone (the task has then finished with scheduler_stopped).
///
/// @par Thread Safety
/// Every member may be called from any thread at any time, including from inside work
/// units and completion handlers. After pause() or stop() returns, no new unit of the
/// task starts.
class cooperative_task {
public:
  /// An empty handle; every operation on it throws (or sets) std::errc::invalid_argument.
  cooperative_task() noexcept = default;

  /// Waits for the task to finish.
  ///
  /// @par Completion Signature
  /// `void(std::exception_ptr)`: null when the work completed; else the exception a unit
  /// threw, `system_error` of a failed awaited operation, `task_stopped` or
  /// `scheduler_stopped`. A finished task completes at once, posted, never inline. A
  /// handler without an associated executor runs on the cooperator's strand. The pending
  /// wait is outstanding work on the handler's executor.
  ///
  /// @par Per-Operation Cancellation
  /// terminal, partial and total all end only this wait, with
  /// `system_error(asio::error::operation_aborted)`; the task runs on.
  template <asio::completion_token_for<void(std::exception_ptr)> CompletionToken>
  auto when_done(CompletionToken&& token);

  /// Counted: N pauses need N resumes. Throws, when the task has finished, the exception
  /// of how it finished (task_done, task_stopped, task_failed, scheduler_stopped).
  void pause();
  /// Throws not_paused when not paused. Resuming a paused task that finished meanwhile
  /// is a no-op.
  void resume();
  /// Finishes the task with task_stopped; throws like pause() when already finished.
  void stop();

  /// pause() that sets `ec` (a coop::error) instead of throwing, and clears it on success.
  void pause(boost::system::error_code& ec) noexcept;
  /// resume() that sets `ec` (a coop::error) instead of throwing, and clears it on success.
  void resume(boost::system::error_code& ec) noexcept;
  /// stop() that sets `ec` (a coop::error) instead of throwing, and clears it on success.
  void stop(boost::system::error_code& ec) noexcept;

  /// Where the task is in its life: a snapshot, which may be stale by the time it returns
  /// unless the task has finished. Paused wins over waiting and queued.
  task_state state() const;
  /// The name given in task_options, or "task-N" (N: the task's place in the order its
  /// cooperator's tasks were added, from 1).
  std::string name() const;
  /// The task's shares (task_options::shares), as last set.
  unsigned shares() const;
  /// Changes the task's shares, from its next turn on (the next tick at the latest).
  /// Throws std::invalid_argument outside 1..10000, changing nothing. Does nothing once
  /// the task has finished.
  void set_shares(unsigned shares);
  /// What the task has run and waited so far (task_stats): a snapshot, from any thread.
  task_stats stats() const;

  /// Whether the handle refers to a task.
  explicit operator bool() const noexcept { return static_cast<bool>(task_); }
  /// Handles are equal when they refer to the same task, or are both empty.
  friend bool operator==(const cooperative_task&, const cooperative_task&) = default;

private:
  friend class cooperator;  // makes handles
  template <class> friend class result_task;
  /// Adopts a task reference; `core` is the task's cooperator.
  cooperative_task(std::shared_ptr<detail::cooperator_core> core, detail::task_ptr task) noexcept
      : core_(std::move(core)), task_(std::move(task)) {}

  std::shared_ptr<detail::cooperator_core> core_;  // kept here, not in the task: see task_base.hpp
  detail::task_ptr task_;
};

}  // namespace coop

#include <coop/impl/cooperative_task.hpp>
