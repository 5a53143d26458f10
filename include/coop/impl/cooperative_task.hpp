// SPDX-License-Identifier: BSL-1.0
#pragma once

#include <coop/detail/when_done_op.hpp>

#include <boost/system/errc.hpp>
#include <boost/system/system_error.hpp>

namespace coop {
namespace detail {

/// Parks a when_done_op on a task; `stops_task` makes its cancellation stop the task.
/// `Value` non-void: the op carries the task's result, kept in `result`.
template <class Value = void>
class initiate_when_done {
public:
  initiate_when_done(std::shared_ptr<cooperator_core> core, task_ptr task,
                     result_slot<Value>* result = nullptr) noexcept
      : core_(std::move(core)), task_(std::move(task)), result_(result) {}
  using executor_type = cooperator_core::executor_type;
  executor_type get_executor() const noexcept { return core_->get_executor(); }

  // Invoked as an rvalue (async_initiate, once), the initiation hands its references to
  // the operation instead of copying them: two reference counts fewer per wait.
  template <class Handler>
  void operator()(Handler&& handler, bool stops_task) && {
    cooperator_core& core = *core_;
    task_base& task = *task_;
    // A decayed copy: some tokens (use_promise) pass an lvalue handler they still use.
    auto* op = when_done_op<std::decay_t<Handler>, Value>::create(
        std::decay_t<Handler>(std::forward<Handler>(handler)), std::move(core_), std::move(task_), stops_task, result_);
    core.when_done(task, *op);
  }
  // Tokens that keep the initiation to launch later, or again (deferred), invoke an lvalue.
  template <class Handler>
  void operator()(Handler&& handler, bool stops_task) const& {
    initiate_when_done(*this)(std::forward<Handler>(handler), stops_task);
  }

private:
  std::shared_ptr<cooperator_core> core_;
  task_ptr task_;
  result_slot<Value>* result_;
};

inline void throw_if(const boost::system::error_code& ec) {
  if (!ec) return;
  if (ec.category() == error_category()) throw_error(static_cast<error>(ec.value()));
  throw boost::system::system_error(ec);
}

inline boost::system::error_code empty_handle() noexcept {
  return make_error_code(boost::system::errc::invalid_argument);
}

}  // namespace detail

template <asio::completion_token_for<void(std::exception_ptr)> CompletionToken>
auto cooperative_task::when_done(CompletionToken&& token) {
  if (!task_) detail::throw_if(detail::empty_handle());
  return asio::async_initiate<CompletionToken, void(std::exception_ptr)>(
      detail::initiate_when_done<>(core_, task_), token, false);
}

inline void cooperative_task::pause(boost::system::error_code& ec) noexcept {
  ec = task_ ? core_->pause(*task_) : detail::empty_handle();
}
inline void cooperative_task::resume(boost::system::error_code& ec) noexcept {
  ec = task_ ? core_->resume(*task_) : detail::empty_handle();
}
inline void cooperative_task::stop(boost::system::error_code& ec) noexcept {
  ec = task_ ? core_->stop(*task_) : detail::empty_handle();
}
inline task_state cooperative_task::state() const {
  if (!task_) detail::throw_if(detail::empty_handle());
  return detail::cooperator_core::state(*task_);
}
inline std::string cooperative_task::name() const {
  if (!task_) detail::throw_if(detail::empty_handle());
  return detail::cooperator_core::name(*task_);
}
inline unsigned cooperative_task::shares() const {
  if (!task_) detail::throw_if(detail::empty_handle());
  return detail::cooperator_core::shares(*task_);
}
inline task_stats cooperative_task::stats() const {
  if (!task_) detail::throw_if(detail::empty_handle());
  return detail::cooperator_core::stats(*task_);
}
inline void cooperative_task::set_shares(unsigned shares) {
  if (!task_) detail::throw_if(detail::empty_handle());
  core_->set_shares(*task_, shares);
}

inline void cooperative_task::pause() {
  boost::system::error_code ec;
  pause(ec);
  detail::throw_if(ec);
}
inline void cooperative_task::resume() {
  boost::system::error_code ec;
  resume(ec);
  detail::throw_if(ec);
}
inline void cooperative_task::stop() {
  boost::system::error_code ec;
  stop(ec);
  detail::throw_if(ec);
}

}  // namespace coop
