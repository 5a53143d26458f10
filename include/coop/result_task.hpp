// SPDX-License-Identifier: BSL-1.0
// coop::result_task<T> — a task handle whose when_done carries the task's result (Part 2,
// "Results"; Twisted's whenDone fires with the iterator), and coop::returning(work).
#pragma once

#include <coop/cooperative_task.hpp>
#include <coop/detail/task_result.hpp>
#include <coop/detail/when_done_op.hpp>
#include <coop/step.hpp>
#include <coop/steps.hpp>

#include <boost/asio/async_result.hpp>

#include <exception>
#include <functional>
#include <type_traits>
#include <utility>

namespace coop {

namespace asio = boost::asio;

/// Wraps callable work (a callable returning coop::step): the task's result is the work
/// object itself. When the task finishes — done, failed, stopped or scheduler-stopped —
/// the work object is moved into the completion (the task's when_done waiters get
/// copies); it is never destroyed before that.
///
/// @code
/// coop::coiterate(ex, coop::returning(hasher{file}), [](std::exception_ptr e, hasher h) { ... });
/// @endcode
template <class Work>
auto returning(Work&& work) {
  using W = std::decay_t<Work>;
  static_assert(std::is_invocable_v<W&> && std::is_same_v<std::invoke_result_t<W&>, step>,
                "coop::returning(work): work must be a callable returning coop::step");
  static_assert(std::is_move_constructible_v<W>,
                "coop::returning(work): the work must be move-constructible (it is moved into the "
                "completion)");
  return detail::returning_work<W>{std::forward<Work>(work)};
}

/// A handle to a task with a result: a steps_of<T> coroutine (T: what it co_returns) or
/// returning(work) (T: the work's type). A cooperative_task otherwise; a copy of its base
/// (a slice) keeps Part 1's `void(std::exception_ptr)` when_done.
///
/// @par Thread Safety
/// As cooperative_task: every member may be called from any thread at any time.
template <class T>
class result_task : public cooperative_task {
public:
  /// An empty handle; every operation on it throws (or sets) std::errc::invalid_argument.
  result_task() noexcept = default;

  /// Waits for the task to finish; hides cooperative_task::when_done.
  ///
  /// @par Completion Signature
  /// `void(std::exception_ptr, T)`: the exception as cooperative_task::when_done, and a
  /// copy of the result. steps_of<T>: the co_return value when the task is done, `T{}`
  /// when it failed or stopped. returning(work): the work object on every way of
  /// finishing. Each call is independent and gets its own copy (T must be copyable; with a
  /// move-only T use coiterate, which moves the value).
  ///
  /// @par Per-Operation Cancellation
  /// terminal, partial and total all end only this wait, with
  /// `system_error(asio::error::operation_aborted)` and `T{}`; the task runs on. A work
  /// type without a default constructor gives instead a copy of the work as it stands
  /// when the cancellation is applied (between units).
  template <asio::completion_token_for<void(std::exception_ptr, T)> CompletionToken>
  auto when_done(CompletionToken&& token) {
    static_assert(std::is_copy_constructible_v<T>,
                  "coop::result_task<T>::when_done gives each waiter a copy of T: with a move-only T "
                  "use coiterate(), whose one completion moves the value");
    if (!task_) detail::throw_if(detail::empty_handle());
    return asio::async_initiate<CompletionToken, void(std::exception_ptr, T)>(
        detail::initiate_when_done<T>(core_, task_, result_), token, false);
  }

private:
  friend class cooperator;  // makes handles
  /// Adopts a task reference and its result slot.
  result_task(std::shared_ptr<detail::cooperator_core> core, detail::task_ptr task,
              detail::result_slot<T>* result) noexcept
      : cooperative_task(std::move(core), std::move(task)), result_(result) {}

  detail::result_slot<T>* result_ = nullptr;  // inside the task, which task_ keeps alive
};

}  // namespace coop
