// SPDX-License-Identifier: BSL-1.0
// What a suite written for coop::cooperator runs on: the cooperator itself, or, built with
// COOP_TEST_ON_POOL, a cooperator_pool dressed as one (same constructors, get_executor()
// is member 0's strand). Every rule of the task API must hold for a pool's tasks, so the
// same suites must pass on both.
#pragma once

#include <coop/cooperator.hpp>
#include <coop/cooperator_pool.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <type_traits>
#include <utility>

namespace coop_test {

#ifdef COOP_TEST_ON_POOL
// The pool's size comes from COOP_TEST_POOL_SIZE (1 unless set), so one build runs the
// suite on a pool of one and of two. With two, every task starts on member 0, whose
// strand get_executor() is, and member 1 gets tasks only by taking them: the suite's
// tasks move between members as it runs.
inline std::size_t pool_size_under_test() {
  const char* size = std::getenv("COOP_TEST_POOL_SIZE");
  return size != nullptr && std::string_view(size) == "2" ? 2 : 1;
}

// Tasks moved in all of a run's pools: a run on a pool of two that moved none would not
// test what it is for (checked as the test module ends, in moves_were_tested).
inline std::uint64_t& tasks_moved_under_test() {
  static std::uint64_t moved = 0;
  return moved;
}

class pool_under_test : public coop::cooperator_pool {
public:
  using executor_type = coop::cooperator::executor_type;
  explicit pool_under_test(const boost::asio::any_io_executor& ex, coop::cooperator_options options = {})
      : cooperator_pool(ex, pool_size_under_test(), std::move(options)) {
    members().place_all_on(0);
  }
  template <class ExecutionContext>
    requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
  explicit pool_under_test(ExecutionContext& ctx, coop::cooperator_options options = {})
      : cooperator_pool(ctx, pool_size_under_test(), std::move(options)) {
    members().place_all_on(0);
  }
  ~pool_under_test() { tasks_moved_under_test() += stats().moved_in; }
  executor_type get_executor() const noexcept { return member_executor(0); }
};
using scheduler_under_test = pool_under_test;

struct moves_were_tested {
  void teardown() {
    BOOST_TEST_MESSAGE("tasks moved between the pool's members: " << tasks_moved_under_test());
    if (pool_size_under_test() == 2) BOOST_TEST(tasks_moved_under_test() > 0u);
  }
};
BOOST_TEST_GLOBAL_FIXTURE(moves_were_tested);
inline bool one_order_across_tasks() { return pool_size_under_test() == 1; }
#else
using scheduler_under_test = coop::cooperator;
inline bool one_order_across_tasks() { return true; }
#endif

/// A log of units (entries that start with their task's letter: "A1", "b2:5") as it is
/// compared: whole where one member runs every task, in one order; by task on a pool of
/// two, whose members each keep Twisted's order among their own tasks but not one across
/// members, so only each task's own order is promised.
template <class Log> Log in_promised_order(Log log) {
  if (!one_order_across_tasks())
    std::stable_sort(log.begin(), log.end(), [](const auto& x, const auto& y) { return x.front() < y.front(); });
  return log;
}

}  // namespace coop_test
