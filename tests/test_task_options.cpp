// SPDX-License-Identifier: BSL-1.0
// Task options and what a handle reports (the README and the API reference): task_options' name and shares on
// every cooperate/coiterate overload (cooperator and default cooperator), the "task-N"
// names, shares() and set_shares() with their validation, and state() through a task's
// whole life.
#define BOOST_TEST_MODULE task_options
#include <boost/test/unit_test.hpp>

#include <coop/task_options.hpp>  // first coop header: it must compile on its own
#include <coop/coop.hpp>

#include "support/manual_executor.hpp"
#include "support/print_task_state.hpp"
#include "support/one_unit_per_tick.hpp"

#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using coop_test::manual_context;

namespace {

auto forever() {
  return [] { return coop::step::more; };
}

auto units(int n) {
  return [n]() mutable { return --n > 0 ? coop::step::more : coop::step::done; };
}

coop::steps_of<int> answer() {
  co_yield coop::next;
  co_return 42;
}

// Work that remembers whether it was moved from (a rejected cooperate must not take it).
struct precious {
  std::unique_ptr<int> payload = std::make_unique<int>(7);
  coop::step operator()() { return coop::step::done; }
};

bool is_invalid_argument(const boost::system::system_error& e) {
  return e.code() == boost::system::errc::invalid_argument;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(names)

BOOST_AUTO_TEST_CASE(unnamed_tasks_are_numbered_per_cooperator_in_the_order_they_were_added) {
  manual_context ctx;
  coop::cooperator a(ctx), b(ctx);
  coop::cooperative_task a1 = a.cooperate(forever());
  coop::cooperative_task b1 = b.cooperate(forever());
  coop::cooperative_task a2 = a.cooperate(forever(), {.name = "named"});
  coop::cooperative_task a3 = a.cooperate(forever(), {});
  BOOST_TEST(a1.name() == "task-1");
  BOOST_TEST(b1.name() == "task-1");
  BOOST_TEST(a2.name() == "named");
  BOOST_TEST(a3.name() == "task-3");  // a named task takes a number too
  a.stop();
  BOOST_TEST(a1.name() == "task-1");  // kept after the task finished
}

BOOST_AUTO_TEST_CASE(every_overload_takes_options) {
  asio::io_context io;
  coop::cooperator c(io);
  std::exception_ptr plain_result = std::make_exception_ptr(1);
  int result_value = 0;
  coop::result_task<int> r = c.cooperate(answer(), {.name = "result", .shares = 300});
  c.coiterate(units(2), {.name = "co", .shares = 50}, [&](std::exception_ptr e) { plain_result = e; });
  c.coiterate(answer(), {.name = "co-result"}, [&](std::exception_ptr, int v) { result_value = v; });
  coop::cooperative_task d = coop::cooperate(io.get_executor(), units(1), {.name = "default", .shares = 7});
  coop::result_task<int> dr = coop::cooperate(io.get_executor(), answer(), {.shares = 9});
  std::exception_ptr default_plain = std::make_exception_ptr(1);
  int default_value = 0;
  coop::coiterate(io.get_executor(), units(1), {.name = "dco"}, [&](std::exception_ptr e) { default_plain = e; });
  coop::coiterate(io.get_executor(), answer(), {.shares = 10000},
                  [&](std::exception_ptr, int v) { default_value = v; });
  BOOST_TEST(r.name() == "result");
  BOOST_TEST(r.shares() == 300u);
  BOOST_TEST(d.name() == "default");
  BOOST_TEST(d.shares() == 7u);
  BOOST_TEST(dr.shares() == 9u);
  BOOST_TEST(dr.name() == "task-2");  // the default cooperator numbers its own tasks
  io.run();
  BOOST_TEST(!plain_result);
  BOOST_TEST(result_value == 42);
  BOOST_TEST(!default_plain);
  BOOST_TEST(default_value == 42);
  BOOST_TEST(r.state() == coop::task_state::done);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(shares)

BOOST_AUTO_TEST_CASE(default_shares_are_100_and_set_shares_changes_them) {
  manual_context ctx;
  coop::cooperator c(ctx);
  coop::cooperative_task t = c.cooperate(forever());
  BOOST_TEST(t.shares() == 100u);
  t.set_shares(1);
  BOOST_TEST(t.shares() == 1u);
  t.set_shares(10000);
  BOOST_TEST(t.shares() == 10000u);
  t.set_shares(100);
  BOOST_TEST(t.shares() == 100u);
}

BOOST_AUTO_TEST_CASE(shares_out_of_range_throw_invalid_argument_and_change_nothing) {
  manual_context ctx;
  coop::cooperator c(ctx, coop_test::one_unit_per_tick());
  precious work;
  BOOST_CHECK_THROW(c.cooperate(std::move(work), {.shares = 0}), std::invalid_argument);
  BOOST_CHECK_THROW(c.cooperate(std::move(work), {.shares = 10001}), std::invalid_argument);
  BOOST_CHECK_THROW(c.cooperate(answer(), {.shares = 0}), std::invalid_argument);
  bool called = false;
  BOOST_CHECK_THROW(c.coiterate(std::move(work), {.shares = 0}, [&](std::exception_ptr) { called = true; }),
                    std::invalid_argument);
  // Even a lazy token throws at the call, before anything is launched.
  BOOST_CHECK_THROW((void)c.coiterate(std::move(work), {.shares = 20000}, asio::deferred), std::invalid_argument);
  BOOST_CHECK_THROW(coop::cooperate(ctx.get_executor(), std::move(work), {.shares = 0}), std::invalid_argument);
  BOOST_TEST(work.payload != nullptr);  // not moved from
  BOOST_TEST(ctx.poll() == 0u);         // nothing was added, nothing queued
  BOOST_TEST(!called);

  coop::cooperative_task t = c.cooperate(forever(), {.name = "t", .shares = 200});
  BOOST_CHECK_THROW(t.set_shares(0), std::invalid_argument);
  BOOST_CHECK_THROW(t.set_shares(10001), std::invalid_argument);
  BOOST_TEST(t.shares() == 200u);
  // The rejected calls took no number: "t" was task 1.
  BOOST_TEST(c.cooperate(forever()).name() == "task-2");
}

BOOST_AUTO_TEST_CASE(set_shares_on_a_finished_task_does_nothing) {
  manual_context ctx;
  coop::cooperator c(ctx);
  coop::cooperative_task t = c.cooperate(forever(), {.shares = 300});
  t.stop();
  t.set_shares(500);
  BOOST_TEST(t.shares() == 300u);
  BOOST_CHECK_THROW(t.set_shares(0), std::invalid_argument);  // still validated
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(state)

BOOST_AUTO_TEST_CASE(runnable_paused_and_the_ways_of_finishing) {
  manual_context ctx;
  coop::cooperator c(ctx, coop_test::one_unit_per_tick());
  coop::cooperative_task t = c.cooperate(forever());
  BOOST_TEST(t.state() == coop::task_state::runnable);
  t.pause();
  BOOST_TEST(t.state() == coop::task_state::paused);
  t.pause();
  t.resume();
  BOOST_TEST(t.state() == coop::task_state::paused);
  t.resume();
  BOOST_TEST(t.state() == coop::task_state::runnable);
  t.stop();
  BOOST_TEST(t.state() == coop::task_state::stopped);

  coop::cooperative_task done = c.cooperate(units(1));
  coop::cooperative_task failed = c.cooperate([]() -> coop::step { throw std::runtime_error("x"); });
  coop::cooperative_task stopped_by_scheduler = c.cooperate(forever());
  ctx.poll_one();
  ctx.poll_one();
  BOOST_TEST(done.state() == coop::task_state::done);
  BOOST_TEST(failed.state() == coop::task_state::failed);
  c.stop();
  BOOST_TEST(stopped_by_scheduler.state() == coop::task_state::scheduler_stopped);
  // A paused task that finishes reports how it finished.
  c.start();
  coop::cooperative_task p = c.cooperate(forever());
  p.pause();
  c.stop();
  BOOST_TEST(p.state() == coop::task_state::scheduler_stopped);
}

namespace {
coop::steps waits_on(asio::steady_timer& timer) {
  co_yield timer.async_wait(asio::deferred);
}
}  // namespace

BOOST_AUTO_TEST_CASE(waiting_on_an_operation_and_paused_wins_over_waiting) {
  asio::io_context io;
  coop::cooperator c(io);
  asio::steady_timer timer(io, 1h);
  coop::cooperative_task t = c.cooperate(waits_on(timer));
  BOOST_TEST(t.state() == coop::task_state::runnable);
  io.poll();
  BOOST_TEST(t.state() == coop::task_state::waiting);
  t.pause();
  BOOST_TEST(t.state() == coop::task_state::paused);
  t.resume();
  BOOST_TEST(t.state() == coop::task_state::waiting);
  timer.expires_at(std::chrono::steady_clock::time_point::min());  // completes it (cancelled)
  io.run();
  BOOST_TEST(t.state() == coop::task_state::failed);
}

BOOST_AUTO_TEST_CASE(an_empty_handle_throws_invalid_argument) {
  coop::cooperative_task empty;
  BOOST_CHECK_EXCEPTION(empty.state(), boost::system::system_error, is_invalid_argument);
  BOOST_CHECK_EXCEPTION(empty.name(), boost::system::system_error, is_invalid_argument);
  BOOST_CHECK_EXCEPTION(empty.shares(), boost::system::system_error, is_invalid_argument);
  BOOST_CHECK_EXCEPTION(empty.set_shares(100), boost::system::system_error, is_invalid_argument);
}

BOOST_AUTO_TEST_SUITE_END()
