// SPDX-License-Identifier: BSL-1.0
// What a suite written for coop::cooperator runs on: the cooperator itself, or, built with
// COOP_TEST_ON_POOL, a cooperator_pool of one member dressed as one (same constructors,
// get_executor() is the member's strand). Every rule of the task API must hold for a
// pool's tasks, so the same suites must pass on both.
#pragma once

#include <coop/cooperator.hpp>
#include <coop/cooperator_pool.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>

#include <type_traits>
#include <utility>

namespace coop_test {

#ifdef COOP_TEST_ON_POOL
class pool_of_one : public coop::cooperator_pool {
public:
  using executor_type = coop::cooperator::executor_type;
  explicit pool_of_one(const boost::asio::any_io_executor& ex, coop::cooperator_options options = {})
      : cooperator_pool(ex, 1, std::move(options)) {}
  template <class ExecutionContext>
    requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
  explicit pool_of_one(ExecutionContext& ctx, coop::cooperator_options options = {})
      : cooperator_pool(ctx, 1, std::move(options)) {}
  executor_type get_executor() const noexcept { return member_executor(0); }
};
using scheduler_under_test = pool_of_one;
#else
using scheduler_under_test = coop::cooperator;
#endif

}  // namespace coop_test
