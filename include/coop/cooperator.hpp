// SPDX-License-Identifier: BSL-1.0
// coop::cooperator — runs many long jobs one small unit at a time, round-robin, in time
// slices on a strand, so the executor keeps serving I/O between slices (Twisted:
// Cooperator).
#pragma once

#include <coop/cooperative_task.hpp>
#include <coop/cooperator_options.hpp>
#include <coop/detail/cooperator_core.hpp>
#include <coop/detail/make_task.hpp>
#include <coop/result_task.hpp>
#include <coop/task_options.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/strand.hpp>

#include <exception>
#include <memory>
#include <type_traits>

namespace coop {

namespace asio = boost::asio;

namespace detail {
class pool_members;
}  // namespace detail

/// @par Thread Safety
/// Every member but the destructor may be called from any thread at any time, including
/// from inside work units and completion handlers. Units of one cooperator never run
/// concurrently.
class cooperator {
public:
  /// The strand the units and the ticks run on.
  using executor_type = asio::strand<asio::any_io_executor>;

  /// A cooperator whose ticks run on a new strand of `ex`; started unless
  /// `options.started` is false.
  explicit cooperator(const asio::any_io_executor& ex, cooperator_options options = {});

  /// From an execution context (io_context, thread_pool, ...): uses its executor.
  template <class ExecutionContext>
    requires std::is_convertible_v<ExecutionContext&, asio::execution_context&>
  explicit cooperator(ExecutionContext& ctx, cooperator_options options = {})
      : cooperator(asio::any_io_executor(ctx.get_executor()), std::move(options)) {}

  cooperator(const cooperator&) = delete;
  cooperator& operator=(const cooperator&) = delete;

  /// Does what stop() does. Must not be called from inside one of its own units.
  ~cooperator();

  /// The strand on which all work units run.
  executor_type get_executor() const noexcept { return core_->get_executor(); }

  /// Adds a task. `work` is a callable returning coop::step, a coop::steps coroutine, or
  /// a callable returning coop::steps (called once, kept alive with the coroutine).
  /// Throws std::invalid_argument for an empty std::function or null function pointer,
  /// std::bad_alloc when out of memory, with nothing changed either way. Called from
  /// another thread while a tick runs, it waits for the unit running then to end (the
  /// tick's thread admits the task). On a stopped cooperator the task finishes at once
  /// with scheduler_stopped.
  template <class Work>
    requires(!detail::result_work<Work>)
  cooperative_task cooperate(Work&& work);

  /// cooperate(work) with a name and shares. Also throws std::invalid_argument for shares
  /// outside 1..10000, with nothing changed (`work` not moved from).
  template <class Work>
    requires(!detail::result_work<Work>)
  cooperative_task cooperate(Work&& work, task_options options);

  /// Adds a task with a result: a steps_of<T> coroutine (or a callable returning one)
  /// gives result_task<T>, returning(work) gives result_task<Work>.
  template <detail::result_work Work>
  result_task<detail::work_result_t<Work>> cooperate(Work&& work);

  /// cooperate(work) for work with a result, with a name and shares.
  template <detail::result_work Work>
  result_task<detail::work_result_t<Work>> cooperate(Work&& work, task_options options);

  /// cooperate(work) + when_done(token). With a lazy token the task starts when the
  /// operation is launched.
  ///
  /// @par Completion Signature
  /// `void(std::exception_ptr)`, as cooperative_task::when_done.
  ///
  /// @par Per-Operation Cancellation
  /// terminal and partial stop the task (it completes with task_stopped); total is
  /// ignored, since stopping is a side effect.
  template <class Work, asio::completion_token_for<void(std::exception_ptr)> CompletionToken>
    requires(!detail::result_work<Work>)
  auto coiterate(Work&& work, CompletionToken&& token);

  /// coiterate(work, token) with a name and shares; throws std::invalid_argument for
  /// shares outside 1..10000 before initiating anything. Completion signature and
  /// cancellation as coiterate(work, token).
  template <class Work, asio::completion_token_for<void(std::exception_ptr)> CompletionToken>
    requires(!detail::result_work<Work>)
  auto coiterate(Work&& work, task_options options, CompletionToken&& token);

  /// coiterate for work with a result (steps_of<T>, returning(work)).
  ///
  /// @par Completion Signature
  /// `void(std::exception_ptr, T)`: the value is moved into the one completion, so a
  /// move-only T works; steps_of<T> gives T{} unless the task is done, returning(work)
  /// always gives the work.
  ///
  /// @par Per-Operation Cancellation
  /// As the other coiterate: terminal and partial stop the task; total is ignored.
  template <detail::result_work Work,
            asio::completion_token_for<void(std::exception_ptr, detail::work_result_t<Work>)> CompletionToken>
  auto coiterate(Work&& work, CompletionToken&& token);

  /// coiterate for work with a result, with a name and shares. Completion signature
  /// (`void(std::exception_ptr, T)`) and cancellation as coiterate(work, token).
  template <detail::result_work Work,
            asio::completion_token_for<void(std::exception_ptr, detail::work_result_t<Work>)> CompletionToken>
  auto coiterate(Work&& work, task_options options, CompletionToken&& token);

  /// Runs queued tasks (a cooperator made with started=false, or one stopped).
  void start();
  /// Finishes every unfinished task — running, paused or waiting — with
  /// scheduler_stopped; tasks added afterwards finish at once, until start().
  void stop();
  /// Started and not stopped.
  bool running() const noexcept { return core_->running(); }
  /// What the cooperator has run, and where its unfinished tasks are (cooperator_stats):
  /// a snapshot, from any thread, without waiting for a running tick.
  cooperator_stats stats() const { return core_->stats(); }

private:
  friend class detail::pool_members;  // sets up a pool's members

  std::shared_ptr<detail::cooperator_core> core_;
};

}  // namespace coop

#include <coop/impl/cooperator.hpp>
