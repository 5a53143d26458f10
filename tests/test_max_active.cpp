// SPDX-License-Identifier: BSL-1.0
// A concurrency limit (cooperator_options::max_active): at most N unfinished tasks are
// admitted, later ones wait in FIFO order in task_state::queued running no unit, every
// task operation works on queued tasks, and none of it loses a when_done.
#define BOOST_TEST_MODULE max_active
#include <boost/test/unit_test.hpp>

#include <coop/coop.hpp>

#include "support/print_task_state.hpp"
#include "support/manual_executor.hpp"
#include "support/unit_log.hpp"

#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using coop_test::manual_context;
using coop_test::expect;
using coop_test::forever;
using coop_test::log_type;
using coop_test::recorder;

namespace {

coop::cooperator_options limited(std::size_t n) {
  coop::cooperator_options options;
  options.termination = [] { return [] { return true; }; };  // one unit per tick
  options.max_active = n;
  return options;
}

struct outcome {
  int calls = 0;
  std::exception_ptr error;
};

std::shared_ptr<outcome> watch(coop::cooperative_task& task) {
  auto o = std::make_shared<outcome>();
  task.when_done([o](std::exception_ptr e) {
    ++o->calls;
    o->error = std::move(e);
  });
  return o;
}

template <class E>
bool holds(const std::exception_ptr& p) {
  try {
    std::rethrow_exception(p);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(later_tasks_wait_in_fifo_order_and_join_the_end_of_the_run_order) {
  manual_context ctx;
  coop::cooperator c(ctx, limited(2));
  log_type log;
  coop::cooperative_task a = c.cooperate(recorder(log, "A", 2));
  coop::cooperative_task b = c.cooperate(recorder(log, "B", 4));
  coop::cooperative_task q1 = c.cooperate(recorder(log, "C", 2));
  coop::cooperative_task q2 = c.cooperate(recorder(log, "D", 2));
  BOOST_TEST(a.state() == coop::task_state::runnable);
  BOOST_TEST(q1.state() == coop::task_state::queued);
  BOOST_TEST(q2.state() == coop::task_state::queued);
  ctx.poll();
  // A finishes with A2: C is admitted at the end of the order, and takes its turn in
  // this round; so does D when C finishes.
  BOOST_TEST(log == expect("A1 B1 A2 B2 C1 B3 C2 D1 B4 D2"), boost::test_tools::per_element());
  BOOST_TEST(q2.state() == coop::task_state::done);
}

BOOST_AUTO_TEST_CASE(a_queued_task_stopped_finishes_without_being_admitted) {
  manual_context ctx;
  coop::cooperator c(ctx, limited(1));
  log_type log;
  coop::cooperative_task a = c.cooperate(recorder(log, "A", 2));
  coop::cooperative_task q = c.cooperate(recorder(log, "Q", 2));
  coop::cooperative_task r = c.cooperate(recorder(log, "R", 1));
  auto qo = watch(q);
  q.stop();
  BOOST_TEST(q.state() == coop::task_state::stopped);
  ctx.poll();
  BOOST_TEST(qo->calls == 1);
  BOOST_TEST(holds<coop::task_stopped>(qo->error));
  BOOST_TEST(log == expect("A1 A2 R1"), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_task_paused_while_queued_is_admitted_paused) {
  manual_context ctx;
  coop::cooperator c(ctx, limited(1));
  log_type log;
  coop::cooperative_task a = c.cooperate(recorder(log, "A", 1));
  coop::cooperative_task q = c.cooperate(recorder(log, "Q", 1));
  coop::cooperative_task r = c.cooperate(recorder(log, "R", 1));
  q.pause();
  BOOST_TEST(q.state() == coop::task_state::paused);  // paused wins over queued
  q.pause();
  q.resume();
  BOOST_TEST(q.state() == coop::task_state::paused);
  ctx.poll();
  // Q was admitted paused when A finished, so R waits behind it, however long.
  BOOST_TEST(log == expect("A1"), boost::test_tools::per_element());
  BOOST_TEST(r.state() == coop::task_state::queued);
  q.resume();
  ctx.poll();
  BOOST_TEST(log == expect("A1 Q1 R1"), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(resumed_while_queued_it_stays_queued) {
  manual_context ctx;
  coop::cooperator c(ctx, limited(1));
  log_type log;
  coop::cooperative_task a = c.cooperate(recorder(log, "A", 2));
  coop::cooperative_task q = c.cooperate(recorder(log, "Q", 1));
  q.pause();
  q.resume();
  BOOST_TEST(q.state() == coop::task_state::queued);
  q.set_shares(300);
  BOOST_TEST(q.shares() == 300u);
  ctx.poll();
  BOOST_TEST(log == expect("A1 A2 Q1"), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(stopping_the_cooperator_finishes_queued_tasks_with_scheduler_stopped) {
  manual_context ctx;
  coop::cooperator c(ctx, limited(1));
  log_type log;
  coop::cooperative_task a = c.cooperate(recorder(log, "A", 5));
  coop::cooperative_task q = c.cooperate(recorder(log, "Q", 5));
  coop::cooperative_task p = c.cooperate(recorder(log, "P", 5));
  p.pause();
  auto qo = watch(q);
  auto po = watch(p);
  c.stop();
  ctx.poll();
  BOOST_TEST(q.state() == coop::task_state::scheduler_stopped);
  BOOST_TEST(p.state() == coop::task_state::scheduler_stopped);
  BOOST_TEST(qo->calls == 1);
  BOOST_TEST(po->calls == 1);
  BOOST_TEST(holds<coop::scheduler_stopped>(qo->error));
  BOOST_TEST(log.empty());
  // Started again: tasks are admitted afresh (the limit counts unfinished tasks).
  c.start();
  coop::cooperative_task b = c.cooperate(recorder(log, "B", 1));
  coop::cooperative_task d = c.cooperate(recorder(log, "D", 1));
  BOOST_TEST(d.state() == coop::task_state::queued);
  ctx.poll();
  BOOST_TEST(log == expect("B1 D1"), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(paused_and_waiting_tasks_count_against_the_limit) {
  asio::io_context io;
  coop::cooperator c(io, {.max_active = 2});
  asio::steady_timer timer(io, 1h);
  bool ran = false;
  coop::cooperative_task waiting = c.cooperate([&]() -> coop::steps { co_yield timer.async_wait(asio::deferred); });
  coop::cooperative_task paused = c.cooperate([] { return coop::step::more; });
  paused.pause();
  coop::cooperative_task q = c.cooperate([&] {
    ran = true;
    return coop::step::done;
  });
  io.poll();
  BOOST_TEST(waiting.state() == coop::task_state::waiting);
  BOOST_TEST(q.state() == coop::task_state::queued);
  BOOST_TEST(!ran);
  paused.stop();  // a slot frees: q is admitted
  io.poll();
  BOOST_TEST(ran);
  BOOST_TEST(q.state() == coop::task_state::done);
  waiting.stop();
  io.run();
}

BOOST_AUTO_TEST_CASE(coiterate_queues_too) {
  manual_context ctx;
  coop::cooperator c(ctx, limited(1));
  log_type log;
  std::exception_ptr first = std::make_exception_ptr(1), second = std::make_exception_ptr(1);
  c.coiterate(recorder(log, "A", 2), [&](std::exception_ptr e) { first = e; });
  c.coiterate(recorder(log, "B", 2), [&](std::exception_ptr e) { second = e; });
  ctx.poll();
  BOOST_TEST(!first);
  BOOST_TEST(!second);
  BOOST_TEST(log == expect("A1 A2 B1 B2"), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(many_queued_tasks_stopped_out_of_order_keep_the_rest_in_order) {
  manual_context ctx;
  coop::cooperator c(ctx, limited(1));
  log_type log;
  coop::cooperative_task first = c.cooperate(recorder(log, "F", 1));
  std::vector<coop::cooperative_task> queued;
  for (int i = 0; i < 100; ++i) queued.push_back(c.cooperate(recorder(log, std::to_string(i) + "_", 1)));
  for (int i = 0; i < 100; ++i)
    if (i % 3 != 0) queued[static_cast<std::size_t>(i)].stop();
  // More added after the holes: the queue closes them without losing the order.
  for (int i = 100; i < 140; ++i) queued.push_back(c.cooperate(recorder(log, std::to_string(i) + "_", 1)));
  ctx.poll();
  log_type expected{"F1"};
  for (int i = 0; i < 140; ++i)
    if (i >= 100 || i % 3 == 0) expected.push_back(std::to_string(i) + "_1");
  BOOST_TEST(log == expected, boost::test_tools::per_element());
}
