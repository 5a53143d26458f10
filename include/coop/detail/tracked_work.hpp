// SPDX-License-Identifier: BSL-1.0
// Outstanding work on a handler's executor, for both executor models Asio's own
// operations accept: a standard executor is preferred with outstanding_work.tracked; a
// Networking TS executor (the legacy io_context::strand, asio::executor) has no such
// property and counts work through on_work_started/on_work_finished, which
// executor_work_guard calls.
#pragma once

#include <boost/asio/execution/executor.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/is_executor.hpp>
#include <boost/asio/prefer.hpp>

#include <type_traits>
#include <utility>

namespace coop::detail {

namespace asio = boost::asio;

template <class Executor> class tracked_work;

template <class Executor>
  requires asio::execution::is_executor<Executor>::value
class tracked_work<Executor> {
public:
  using executor_type = std::decay_t<decltype(asio::prefer(std::declval<const Executor&>(),
                                                           asio::execution::outstanding_work.tracked))>;
  explicit tracked_work(const Executor& ex) : executor_(asio::prefer(ex, asio::execution::outstanding_work.tracked)) {}
  const executor_type& executor() const noexcept { return executor_; }

private:
  executor_type executor_;
};

template <class Executor>
  requires(!asio::execution::is_executor<Executor>::value && asio::is_executor<Executor>::value)
class tracked_work<Executor> {
public:
  using executor_type = Executor;
  explicit tracked_work(const Executor& ex) : guard_(ex) {}
  executor_type executor() const noexcept { return guard_.get_executor(); }

private:
  asio::executor_work_guard<Executor> guard_;
};

}  // namespace coop::detail
