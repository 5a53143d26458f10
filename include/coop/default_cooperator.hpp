// SPDX-License-Identifier: BSL-1.0
// One cooperator per execution context (Twisted's module-level cooperate/coiterate).
#pragma once

#include <coop/cooperator.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>

#include <exception>
#include <type_traits>

namespace coop {

/// The default cooperator of `ex`'s execution context, created on first use on that
/// executor. It lives as a service of the context: when the context shuts down its tasks
/// finish with scheduler_stopped and handlers still queued are destroyed, not invoked.
///
/// @par Thread Safety
/// Any thread, any time: first uses racing on several threads make one cooperator, on a
/// strand of the executor of the call that made it; the functions below call it each time.
cooperator& default_cooperator(const asio::any_io_executor& ex);

/// The default cooperator of an execution context (io_context, thread_pool, ...).
template <class ExecutionContext>
  requires std::is_convertible_v<ExecutionContext&, asio::execution_context&> &&
           requires(ExecutionContext& c) { c.get_executor(); }
cooperator& default_cooperator(ExecutionContext& ctx) {
  return default_cooperator(asio::any_io_executor(ctx.get_executor()));
}

/// default_cooperator(ex).cooperate(work).
template <class Work>
  requires(!detail::result_work<Work>)
cooperative_task cooperate(const asio::any_io_executor& ex, Work&& work) {
  return default_cooperator(ex).cooperate(std::forward<Work>(work));
}

/// default_cooperator(ex).cooperate(work) for work with a result: result_task<T>.
template <detail::result_work Work>
result_task<detail::work_result_t<Work>> cooperate(const asio::any_io_executor& ex, Work&& work) {
  return default_cooperator(ex).cooperate(std::forward<Work>(work));
}

/// default_cooperator(ex).cooperate(work, options).
template <class Work>
  requires(!detail::result_work<Work>)
cooperative_task cooperate(const asio::any_io_executor& ex, Work&& work, task_options options) {
  return default_cooperator(ex).cooperate(std::forward<Work>(work), std::move(options));
}

/// default_cooperator(ex).cooperate(work, options) for work with a result.
template <detail::result_work Work>
result_task<detail::work_result_t<Work>> cooperate(const asio::any_io_executor& ex, Work&& work,
                                                   task_options options) {
  return default_cooperator(ex).cooperate(std::forward<Work>(work), std::move(options));
}

/// default_cooperator(ex).coiterate(work, token): completes with
/// `void(std::exception_ptr)`; terminal and partial cancellation stop the task, total is
/// ignored (cooperator::coiterate).
template <class Work, asio::completion_token_for<void(std::exception_ptr)> CompletionToken>
  requires(!detail::result_work<Work>)
auto coiterate(const asio::any_io_executor& ex, Work&& work, CompletionToken&& token) {
  return default_cooperator(ex).coiterate(std::forward<Work>(work), std::forward<CompletionToken>(token));
}

/// default_cooperator(ex).coiterate(work, token) for work with a result: completes with
/// `void(std::exception_ptr, T)`; cancellation as the other coiterate.
template <detail::result_work Work,
          asio::completion_token_for<void(std::exception_ptr, detail::work_result_t<Work>)> CompletionToken>
auto coiterate(const asio::any_io_executor& ex, Work&& work, CompletionToken&& token) {
  return default_cooperator(ex).coiterate(std::forward<Work>(work), std::forward<CompletionToken>(token));
}

/// default_cooperator(ex).coiterate(work, options, token); completion and cancellation
/// as coiterate(ex, work, token).
template <class Work, asio::completion_token_for<void(std::exception_ptr)> CompletionToken>
  requires(!detail::result_work<Work>)
auto coiterate(const asio::any_io_executor& ex, Work&& work, task_options options, CompletionToken&& token) {
  return default_cooperator(ex).coiterate(std::forward<Work>(work), std::move(options),
                                          std::forward<CompletionToken>(token));
}

/// default_cooperator(ex).coiterate(work, options, token) for work with a result;
/// completion (`void(std::exception_ptr, T)`) and cancellation as coiterate(ex, work, token).
template <detail::result_work Work,
          asio::completion_token_for<void(std::exception_ptr, detail::work_result_t<Work>)> CompletionToken>
auto coiterate(const asio::any_io_executor& ex, Work&& work, task_options options, CompletionToken&& token) {
  return default_cooperator(ex).coiterate(std::forward<Work>(work), std::move(options),
                                          std::forward<CompletionToken>(token));
}

}  // namespace coop
