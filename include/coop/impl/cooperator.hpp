// SPDX-License-Identifier: BSL-1.0
#pragma once

#include <coop/detail/make_task.hpp>

namespace coop {
namespace detail {

/// Adds a task and parks a coiterate waiter on it (cancellation stops the task).
class initiate_coiterate {
public:
  explicit initiate_coiterate(std::shared_ptr<cooperator_core> core) noexcept : core_(std::move(core)) {}
  using executor_type = cooperator_core::executor_type;
  executor_type get_executor() const noexcept { return core_->get_executor(); }

  template <class Handler, class Work>
  void operator()(Handler&& handler, Work&& work, task_options options) const {
    auto made = make_task_with_result(std::forward<Work>(work), core_);
    task_ptr task(made.task, false);
    cooperator_core::set_options(*task, std::move(options));
    // The waiter first: if it cannot be allocated, nothing has started.
    using op_type = when_done_op<std::decay_t<Handler>, work_result_t<Work>>;
    op_type* op =
        op_type::create(std::decay_t<Handler>(std::forward<Handler>(handler)), core_, task, true, made.result);
    try {
      core_->add(*task);
    } catch (...) {
      op->destroy();
      throw;
    }
    core_->when_done(*task, *op);
  }

private:
  std::shared_ptr<cooperator_core> core_;
};

}  // namespace detail

template <class Work>
  requires(!detail::result_work<Work>)
cooperative_task cooperator::cooperate(Work&& work) {
  return cooperate(std::forward<Work>(work), task_options{});
}

template <class Work>
  requires(!detail::result_work<Work>)
cooperative_task cooperator::cooperate(Work&& work, task_options options) {
  detail::cooperator_core::check_shares(options.shares);  // before `work` is moved from
  detail::task_ptr task(detail::make_task(std::forward<Work>(work), core_), false);
  detail::cooperator_core::set_options(*task, std::move(options));
  core_->add(*task);
  return cooperative_task(core_, std::move(task));
}

template <detail::result_work Work>
result_task<detail::work_result_t<Work>> cooperator::cooperate(Work&& work) {
  return cooperate(std::forward<Work>(work), task_options{});
}

template <detail::result_work Work>
result_task<detail::work_result_t<Work>> cooperator::cooperate(Work&& work, task_options options) {
  detail::cooperator_core::check_shares(options.shares);
  auto made = detail::make_task_with_result(std::forward<Work>(work), core_);
  detail::task_ptr task(made.task, false);
  detail::cooperator_core::set_options(*task, std::move(options));
  core_->add(*task);
  return result_task<detail::work_result_t<Work>>(core_, std::move(task), made.result);
}

template <class Work, asio::completion_token_for<void(std::exception_ptr)> CompletionToken>
  requires(!detail::result_work<Work>)
auto cooperator::coiterate(Work&& work, CompletionToken&& token) {
  return coiterate(std::forward<Work>(work), task_options{}, std::forward<CompletionToken>(token));
}

template <class Work, asio::completion_token_for<void(std::exception_ptr)> CompletionToken>
  requires(!detail::result_work<Work>)
auto cooperator::coiterate(Work&& work, task_options options, CompletionToken&& token) {
  detail::cooperator_core::check_shares(options.shares);  // at the call, even for a lazy token
  return asio::async_initiate<CompletionToken, void(std::exception_ptr)>(
      detail::initiate_coiterate(core_), token, std::forward<Work>(work), std::move(options));
}

template <detail::result_work Work,
          asio::completion_token_for<void(std::exception_ptr, detail::work_result_t<Work>)> CompletionToken>
auto cooperator::coiterate(Work&& work, CompletionToken&& token) {
  return coiterate(std::forward<Work>(work), task_options{}, std::forward<CompletionToken>(token));
}

template <detail::result_work Work,
          asio::completion_token_for<void(std::exception_ptr, detail::work_result_t<Work>)> CompletionToken>
auto cooperator::coiterate(Work&& work, task_options options, CompletionToken&& token) {
  detail::cooperator_core::check_shares(options.shares);  // at the call, even for a lazy token
  return asio::async_initiate<CompletionToken, void(std::exception_ptr, detail::work_result_t<Work>)>(
      detail::initiate_coiterate(core_), token, std::forward<Work>(work), std::move(options));
}

}  // namespace coop
