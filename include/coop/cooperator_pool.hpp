// SPDX-License-Identifier: BSL-1.0
// coop::cooperator_pool — one task set run by several cooperators, each on its own strand
// of one executor, so that a context run by N threads runs up to N units at once.
#pragma once

#include <coop/cooperative_task.hpp>
#include <coop/cooperator.hpp>
#include <coop/cooperator_options.hpp>
#include <coop/detail/pool_members.hpp>
#include <coop/result_task.hpp>
#include <coop/stats.hpp>
#include <coop/task_options.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution_context.hpp>

#include <cstddef>
#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

namespace coop {

namespace asio = boost::asio;

/// Several cooperators ("members") sharing one task set: a new task joins the member with
/// the fewest unfinished tasks. When a member's tick ends with runnable tasks to spare and
/// another member has none, half of the spare ones move there (work stealing); a task
/// moves only between its turns, with its pause count, shares, stats and waiters, and its
/// handle reaches it wherever it is. Each member runs its ticks on its own
/// strand of the pool's executor, so with the context run by `size` threads up to `size`
/// units run at once; order is Twisted's within a member, not across members. Tasks are
/// numbered per pool ("task-1", "task-2", ... in the order they were added). Every rule of
/// cooperative_task holds for a pool's tasks; a when_done handler without an associated
/// executor runs on the strand of the member the task finished on.
///
/// @par Thread Safety
/// Every member function but the destructor may be called from any thread at any time,
/// including from inside work units and completion handlers.
class cooperator_pool {
public:
  /// `size` members on their own strands of `ex`, each with `options` (started unless
  /// `options.started` is false), but `max_active`, which applies to the pool as a whole:
  /// at most that many unfinished tasks admitted on all members together, later ones
  /// queued on their member and admitted in the order they were added, whichever member
  /// frees a place. Throws std::invalid_argument for `size` 0.
  cooperator_pool(const asio::any_io_executor& ex, std::size_t size, cooperator_options options = {})
      : members_(std::make_shared<detail::pool_members>(ex, size, std::move(options))) {}

  /// From an execution context (io_context, thread_pool, ...): uses its executor.
  template <class ExecutionContext>
    requires std::is_convertible_v<ExecutionContext&, asio::execution_context&>
  cooperator_pool(ExecutionContext& ctx, std::size_t size, cooperator_options options = {})
      : cooperator_pool(asio::any_io_executor(ctx.get_executor()), size, std::move(options)) {}

  cooperator_pool(const cooperator_pool&) = delete;
  cooperator_pool& operator=(const cooperator_pool&) = delete;

  /// Does what stop() does. Must not be called from inside one of its own units.
  ~cooperator_pool() { members_->stop(); }

  /// The number of members.
  std::size_t size() const noexcept { return members_->size(); }

  // Overloads rather than a default argument for the options: GCC 12 relocates a default
  // argument's temporary bitwise when the call is made inside a coroutine, which breaks
  // the std::string in task_options.

  /// Adds a task to the member with the fewest unfinished tasks; as cooperator::cooperate.
  template <class Work>
    requires(!detail::result_work<Work>)
  cooperative_task cooperate(Work&& work) {
    return cooperate(std::forward<Work>(work), task_options{});
  }

  /// cooperate(work) with a name and shares; throws std::invalid_argument for shares
  /// outside 1..10000 with nothing changed.
  template <class Work>
    requires(!detail::result_work<Work>)
  cooperative_task cooperate(Work&& work, task_options options) {
    detail::cooperator_core::check_shares(options.shares);  // before `work` is moved from
    return members_->add([&](cooperator& c) { return c.cooperate(std::forward<Work>(work), std::move(options)); });
  }

  /// Adds a task with a result (steps_of<T>, returning(work)); as cooperator::cooperate.
  template <detail::result_work Work>
  result_task<detail::work_result_t<Work>> cooperate(Work&& work) {
    return cooperate(std::forward<Work>(work), task_options{});
  }

  /// cooperate(work) for work with a result, with a name and shares.
  template <detail::result_work Work>
  result_task<detail::work_result_t<Work>> cooperate(Work&& work, task_options options) {
    detail::cooperator_core::check_shares(options.shares);
    return members_->add([&](cooperator& c) { return c.cooperate(std::forward<Work>(work), std::move(options)); });
  }

  /// cooperate(work) + when_done(token), as cooperator::coiterate; the member is chosen
  /// when the operation is launched.
  ///
  /// @par Completion Signature
  /// `void(std::exception_ptr)`, as cooperative_task::when_done.
  ///
  /// @par Per-Operation Cancellation
  /// terminal and partial stop the task (it completes with task_stopped); total is ignored.
  template <class Work, asio::completion_token_for<void(std::exception_ptr)> CompletionToken>
    requires(!detail::result_work<Work>)
  auto coiterate(Work&& work, CompletionToken&& token) {
    return coiterate(std::forward<Work>(work), task_options{}, std::forward<CompletionToken>(token));
  }

  /// coiterate(work, token) with a name and shares; throws std::invalid_argument for
  /// shares outside 1..10000 before initiating anything. Completion signature and
  /// cancellation as coiterate(work, token).
  template <class Work, asio::completion_token_for<void(std::exception_ptr)> CompletionToken>
    requires(!detail::result_work<Work>)
  auto coiterate(Work&& work, task_options options, CompletionToken&& token) {
    detail::cooperator_core::check_shares(options.shares);  // at the call, even for a lazy token
    return asio::async_initiate<CompletionToken, void(std::exception_ptr)>(
        initiate_coiterate{members_}, token, std::forward<Work>(work), std::move(options));
  }

  /// coiterate for work with a result, as cooperator::coiterate.
  ///
  /// @par Completion Signature
  /// `void(std::exception_ptr, T)`, the value moved into the one completion.
  ///
  /// @par Per-Operation Cancellation
  /// terminal and partial stop the task; total is ignored.
  template <detail::result_work Work,
            asio::completion_token_for<void(std::exception_ptr, detail::work_result_t<Work>)> CompletionToken>
  auto coiterate(Work&& work, CompletionToken&& token) {
    return coiterate(std::forward<Work>(work), task_options{}, std::forward<CompletionToken>(token));
  }

  /// coiterate for work with a result, with a name and shares. Completion signature
  /// (`void(std::exception_ptr, T)`) and cancellation as coiterate(work, token).
  template <detail::result_work Work,
            asio::completion_token_for<void(std::exception_ptr, detail::work_result_t<Work>)> CompletionToken>
  auto coiterate(Work&& work, task_options options, CompletionToken&& token) {
    detail::cooperator_core::check_shares(options.shares);
    return asio::async_initiate<CompletionToken, void(std::exception_ptr, detail::work_result_t<Work>)>(
        initiate_coiterate{members_}, token, std::forward<Work>(work), std::move(options));
  }

  /// Starts every member (cooperator::start).
  void start() { members_->start(); }
  /// Stops every member (cooperator::stop): every unfinished task finishes with
  /// scheduler_stopped; tasks added afterwards finish at once, until start().
  void stop() { members_->stop(); }
  /// Started and not stopped.
  bool running() const noexcept { return members_->member(0).running(); }
  /// The members' stats, summed (cooperator_stats); a snapshot, from any thread.
  cooperator_stats stats() const { return members_->stats(); }
  /// One member's stats, `member` < size().
  cooperator_stats member_stats(std::size_t member) const { return members_->member(member).stats(); }
  /// The strand on which one member runs its units, `member` < size().
  cooperator::executor_type member_executor(std::size_t member) const noexcept {
    return members_->member(member).get_executor();
  }

protected:
  /// The members themselves, for what extends the pool (tests pin placement with it).
  detail::pool_members& members() noexcept { return *members_; }

private:
  struct initiate_coiterate {
    std::shared_ptr<detail::pool_members> members;
    // Tokens that complete somewhere of their own (use_promise) default to the pool's
    // executor, not to the system executor's threads. The member is not chosen yet.
    using executor_type = asio::any_io_executor;
    executor_type get_executor() const noexcept { return members->executor(); }
    template <class Handler, class Work>
    void operator()(Handler&& handler, Work&& work, task_options options) const {
      // The handler itself is the member's completion token: it keeps its associated
      // executor, allocator and cancellation slot.
      members->add([&](cooperator& c) {
        c.coiterate(std::forward<Work>(work), std::move(options), std::forward<Handler>(handler));
      });
    }
  };

  std::shared_ptr<detail::pool_members> members_;
};

}  // namespace coop
