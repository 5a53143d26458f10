// SPDX-License-Identifier: BSL-1.0
// How a cooperator schedules its tasks: round-robin in join order, one unit per task per
// turn, ticks that continue the round, new and resumed tasks at the end of the order,
// other handlers between ticks, nothing queued when nothing is runnable, start/stop,
// the termination predicate and the time slice.
#define BOOST_TEST_MODULE scheduling
#include <boost/test/unit_test.hpp>

#include <coop/cooperator.hpp>   // first coop header: it must compile on its own
#include <coop/coop.hpp>

#include "support/manual_executor.hpp"
#include "support/unit_log.hpp"
#include "support/shake_out.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/core/demangle.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using coop_test::manual_context;
using coop_test::expect;
using coop_test::forever;
using coop_test::log_type;
using coop_test::recorder;

namespace {


// Work that counts its units forever.
auto counter(int& units) {
  return [&units] {
    ++units;
    return coop::step::more;
  };
}

using termination_factory = std::function<std::function<bool()>()>;

// Ends every tick after k units: deterministic ticks, whatever the clock says.
termination_factory after_units(int k) {
  return [k] { return [k, n = 0]() mutable { return ++n >= k; }; };
}

// Never ends a tick: a tick runs until nothing is runnable (finite work only).
termination_factory never_ends() {
  return [] { return [] { return false; }; };
}

// Runs queued functions until none is left; fails (instead of hanging) past `limit`.
std::size_t drain(manual_context& ctx, std::size_t limit = 100000) {
  std::size_t n = 0;
  while (n < limit && ctx.poll_one() != 0) ++n;
  BOOST_TEST_REQUIRE(n < limit, "the executor never ran dry: something re-posts forever");
  return n;
}

struct completion {
  int calls = 0;
  std::exception_ptr error;
};

// Registers a plain callback through when_done; the test checks it ran exactly once.
std::shared_ptr<completion> watch(coop::cooperative_task& task) {
  auto state = std::make_shared<completion>();
  task.when_done([state](std::exception_ptr e) {
    ++state->calls;
    state->error = std::move(e);
  });
  return state;
}

std::string type_of(const std::exception_ptr& p) {
  if (!p) return "<null exception_ptr>";
  try {
    std::rethrow_exception(p);
  } catch (const std::exception& e) {
    return boost::core::demangle(typeid(e).name());
  } catch (...) {
    return "<not a std::exception>";
  }
}

template <class E>
bool holds_exactly(const std::exception_ptr& p) {
  return type_of(p) == boost::core::demangle(typeid(E).name());
}

template <class E, class F>
void check_throws_exactly(F&& f) {
  const std::string expected = boost::core::demangle(typeid(E).name());
  try {
    std::forward<F>(f)();
    BOOST_ERROR("no exception thrown; expected " << expected);
  } catch (const std::exception& e) {
    BOOST_TEST(boost::core::demangle(typeid(e).name()) == expected);
  } catch (...) {
    BOOST_ERROR("a non-std exception thrown; expected " << expected);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(round_robin)

BOOST_AUTO_TEST_CASE(interleaves_in_insertion_order_within_one_tick) {
  manual_context ctx;
  coop::cooperator c(ctx, {.termination = never_ends()});
  log_type log;
  c.cooperate(recorder(log, "A", 3));
  c.cooperate(recorder(log, "B", 3));
  c.cooperate(recorder(log, "C", 3));
  drain(ctx);
  BOOST_TEST(log == expect("A1 B1 C1 A2 B2 C2 A3 B3 C3"), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(one_unit_per_tick_gives_the_same_order) {
  manual_context ctx;
  coop::cooperator c(ctx, {.termination = after_units(1)});
  log_type log;
  c.cooperate(recorder(log, "A", 3));
  c.cooperate(recorder(log, "B", 3));
  c.cooperate(recorder(log, "C", 3));
  // Each strand invocation is one tick; each tick runs exactly one unit, and after the
  // last unit nothing more is queued: 9 units, 9 handlers.
  std::size_t ticks = 0;
  while (ctx.poll_one() != 0) {
    ++ticks;
    BOOST_TEST_REQUIRE(ticks < 100u);
    BOOST_TEST(log.size() == ticks);
  }
  BOOST_TEST(ticks == 9u);
  BOOST_TEST(log == expect("A1 B1 C1 A2 B2 C2 A3 B3 C3"), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_finishing_task_makes_no_one_lose_a_turn) {
  // One unit per task per turn, even when the task before the next one leaves the order.
  {
    manual_context ctx;
    coop::cooperator c(ctx, {.termination = never_ends()});
    log_type log;
    c.cooperate(recorder(log, "A", 1));
    c.cooperate(recorder(log, "B", 3));
    c.cooperate(recorder(log, "C", 2));
    drain(ctx);
    BOOST_TEST(log == expect("A1 B1 C1 B2 C2 B3"), boost::test_tools::per_element());
  }
  {
    manual_context ctx;
    coop::cooperator c(ctx, {.termination = after_units(1)});
    log_type log;
    c.cooperate(recorder(log, "A", 1));
    c.cooperate(recorder(log, "B", 3));
    c.cooperate(recorder(log, "C", 2));
    drain(ctx);
    BOOST_TEST(log == expect("A1 B1 C1 B2 C2 B3"), boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_CASE(pausing_an_earlier_task_makes_no_one_lose_a_turn) {
  manual_context ctx;
  coop::cooperator c(ctx, {.termination = never_ends()});
  log_type log;
  auto a = c.cooperate(recorder(log, "A", 3));
  c.cooperate([&, n = 0]() mutable {
    ++n;
    log.push_back("B" + std::to_string(n));
    if (n == 1) a.pause();   // A is behind the cursor: C must still run in this round
    return n >= 3 ? coop::step::done : coop::step::more;
  });
  c.cooperate(recorder(log, "C", 3));
  drain(ctx);
  BOOST_TEST(log == expect("A1 B1 C1 B2 C2 B3 C3"), boost::test_tools::per_element());
  a.resume();
  drain(ctx);
  BOOST_TEST(log == expect("A1 B1 C1 B2 C2 B3 C3 A2 A3"), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(the_round_continues_across_ticks) {
  // The shake-out build ends every tick after one unit: the same order, a tick each.
  const char* const one_unit_ticks = "| A1 | B1 | C1 | A2 | B2 | C2 | A3 | B3 | C3";
  {
    manual_context ctx;
    log_type log;
    int factory_calls = 0;
    coop::cooperator c(ctx, {.termination = [&] {
                               ++factory_calls;
                               log.push_back("|");
                               return [n = 0]() mutable { return ++n >= 2; };
                             }});
    c.cooperate(recorder(log, "A", 3));
    c.cooperate(recorder(log, "B", 3));
    c.cooperate(recorder(log, "C", 3));
    drain(ctx);
    BOOST_TEST(log == expect(coop_test::shake_out ? one_unit_ticks : "| A1 B1 | C1 A2 | B2 C2 | A3 B3 | C3"),
               boost::test_tools::per_element());
    BOOST_TEST(factory_calls == (coop_test::shake_out ? 9 : 5));
  }
  {
    // A tick of 4 units over 3 tasks: the next tick starts with the task after the last
    // one run, also when the task just run (A3) has finished and left the order.
    manual_context ctx;
    log_type log;
    coop::cooperator c(ctx, {.termination = [&] {
                               log.push_back("|");
                               return [n = 0]() mutable { return ++n >= 4; };
                             }});
    c.cooperate(recorder(log, "A", 3));
    c.cooperate(recorder(log, "B", 3));
    c.cooperate(recorder(log, "C", 3));
    drain(ctx);
    BOOST_TEST(log == expect(coop_test::shake_out ? one_unit_ticks : "| A1 B1 C1 A2 | B2 C2 A3 B3 | C3"),
               boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(joining_the_order)

// A, B, C of 3 units and D of 2 that joins in round 1: D runs after C in the same round.
const log_type joined_in_round_one = expect("A1 B1 C1 D1 A2 B2 C2 D2 A3 B3 C3");

BOOST_AUTO_TEST_CASE(a_task_added_inside_a_unit_runs_at_the_end_of_the_current_round) {
  for (const std::string when : {"A", "B", "C"}) {
    BOOST_TEST_CONTEXT("D added during " << when << "1") {
      manual_context ctx;
      coop::cooperator c(ctx, {.termination = never_ends()});
      log_type log;
      for (const std::string name : {"A", "B", "C"}) {
        c.cooperate([&, name, n = 0]() mutable {
          ++n;
          log.push_back(name + std::to_string(n));
          if (n == 1 && name == when) c.cooperate(recorder(log, "D", 2));
          return n >= 3 ? coop::step::done : coop::step::more;
        });
      }
      drain(ctx);
      BOOST_TEST(log == joined_in_round_one, boost::test_tools::per_element());
    }
  }
}

BOOST_AUTO_TEST_CASE(a_task_added_between_ticks_runs_at_the_end_of_the_current_round) {
  // One unit per tick; D joins after 1, 2 or 3 units of round 1. After C1 the cursor is
  // at the end of the order but the round has not wrapped yet (Twisted's list iterator),
  // so D still runs before A2.
  for (std::size_t before = 1; before <= 3; ++before) {
    BOOST_TEST_CONTEXT("D added after " << before << " unit(s)") {
      manual_context ctx;
      coop::cooperator c(ctx, {.termination = after_units(1)});
      log_type log;
      c.cooperate(recorder(log, "A", 3));
      c.cooperate(recorder(log, "B", 3));
      c.cooperate(recorder(log, "C", 3));
      while (log.size() < before) BOOST_TEST_REQUIRE(ctx.poll_one() == 1u);
      BOOST_TEST_REQUIRE(log.size() == before);
      c.cooperate(recorder(log, "D", 2));
      drain(ctx);
      BOOST_TEST(log == joined_in_round_one, boost::test_tools::per_element());
    }
  }
}

BOOST_AUTO_TEST_CASE(a_task_added_after_the_round_wrapped_waits_for_the_next_end) {
  manual_context ctx;
  coop::cooperator c(ctx, {.termination = after_units(1)});
  log_type log;
  c.cooperate(recorder(log, "A", 3));
  c.cooperate(recorder(log, "B", 3));
  c.cooperate(recorder(log, "C", 3));
  while (log.size() < 4) BOOST_TEST_REQUIRE(ctx.poll_one() == 1u);   // round 2 began: A2
  c.cooperate(recorder(log, "D", 2));
  drain(ctx);
  BOOST_TEST(log == expect("A1 B1 C1 A2 B2 C2 D1 A3 B3 C3 D2"),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_task_added_by_a_lone_tasks_unit_gets_the_next_turn) {
  // Default options (time slice, no predicate): a lone task may be run in a batch of
  // units; a task joining from one of its units must still get the very next turn.
  manual_context ctx;
  coop::cooperator c(ctx);
  log_type log;
  c.cooperate([&, n = 0]() mutable {
    ++n;
    log.push_back("A" + std::to_string(n));
    if (n == 1) c.cooperate(recorder(log, "B", 2));
    return n >= 4 ? coop::step::done : coop::step::more;
  });
  drain(ctx);
  BOOST_TEST(log == expect("A1 B1 A2 B2 A3 A4"), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_lone_task_that_pauses_or_stops_itself_runs_no_further_unit) {
  {
    manual_context ctx;
    coop::cooperator c(ctx);   // default slice: batches of a lone task's units allowed
    std::optional<coop::cooperative_task> self;
    int units = 0;
    self = c.cooperate([&] {
      if (++units == 3) self->pause();
      return units == 6 ? coop::step::done : coop::step::more;
    });
    drain(ctx);
    BOOST_TEST(units == 3);
    BOOST_TEST(ctx.queued() == 0u);
    BOOST_TEST(ctx.outstanding_work() == 0u);
    self->resume();
    drain(ctx);
    BOOST_TEST(units == 6);
  }
  {
    manual_context ctx;
    coop::cooperator c(ctx);
    std::optional<coop::cooperative_task> self;
    int units = 0;
    self = c.cooperate([&] {
      if (++units == 3) self->stop();
      return coop::step::more;
    });
    auto done = watch(*self);
    drain(ctx);
    BOOST_TEST(units == 3);
    BOOST_TEST(done->calls == 1);
    BOOST_TEST(holds_exactly<coop::task_stopped>(done->error), type_of(done->error));
  }
}

BOOST_AUTO_TEST_CASE(a_resumed_task_joins_at_the_end_of_the_order) {
  manual_context ctx;
  coop::cooperator c(ctx, {.termination = after_units(1)});
  log_type log;
  auto a = c.cooperate(recorder(log, "A", 2));
  c.cooperate(recorder(log, "B", 4));
  c.cooperate(recorder(log, "C", 4));
  a.pause();
  while (log.size() < 3) BOOST_TEST_REQUIRE(ctx.poll_one() == 1u);
  BOOST_TEST(log == expect("B1 C1 B2"), boost::test_tools::per_element());
  a.resume();   // joins after C, not back at the front
  drain(ctx);
  BOOST_TEST(log == expect("B1 C1 B2 C2 A1 B3 C3 A2 B4 C4"), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_task_resumed_inside_a_unit_joins_at_the_end_of_the_order) {
  manual_context ctx;
  coop::cooperator c(ctx, {.termination = never_ends()});
  log_type log;
  auto a = c.cooperate(recorder(log, "A", 3));
  c.cooperate([&, n = 0]() mutable {
    ++n;
    log.push_back("B" + std::to_string(n));
    if (n == 1) a.pause();
    if (n == 2) a.resume();   // A rejoins behind C
    return n >= 4 ? coop::step::done : coop::step::more;
  });
  c.cooperate(recorder(log, "C", 4));
  drain(ctx);
  BOOST_TEST(log == expect("A1 B1 C1 B2 C2 A2 B3 C3 A3 B4 C4"), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(executor_interplay)

BOOST_AUTO_TEST_CASE(other_handlers_run_between_ticks_manual) {
  manual_context ctx;
  coop::cooperator c(ctx, {.termination = after_units(1)});
  log_type log;
  c.cooperate([&, n = 0]() mutable {
    ++n;
    log.push_back("A" + std::to_string(n));
    if (n == 1) {
      asio::post(ctx.get_executor(), [&] { log.push_back("executor"); });
      asio::post(c.get_executor(), [&] { log.push_back("strand"); });
    }
    return n >= 3 ? coop::step::done : coop::step::more;
  });
  drain(ctx);
  BOOST_TEST(log == expect("A1 executor strand A2 A3"), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(other_handlers_run_between_ticks_io_context) {
  asio::io_context ioc;
  coop::cooperator c(ioc, {.termination = after_units(1)});
  log_type log;
  c.cooperate([&, n = 0]() mutable {
    ++n;
    log.push_back("A" + std::to_string(n));
    if (n == 1) {
      asio::post(ioc, [&] { log.push_back("executor"); });
      asio::post(c.get_executor(), [&] { log.push_back("strand"); });
    }
    return n >= 3 ? coop::step::done : coop::step::more;
  });
  c.cooperate(recorder(log, "B", 2));
  ioc.run_for(30s);
  BOOST_TEST(ioc.stopped());
  BOOST_TEST(log == expect("A1 executor strand B1 A2 B2 A3"), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(io_ready_during_a_tick_runs_before_the_next_tick) {
  // An io_context queues what its reactor finds ready behind the handlers already queued.
  // A timer that expires during a tick (here: already expired when the unit arms it) must
  // complete before the next tick, not one tick later; the same holds for sockets.
  asio::io_context ioc;
  coop::cooperator c(ioc, {.termination = after_units(1)});
  asio::steady_timer timer(ioc);
  log_type log;
  c.cooperate([&, n = 0]() mutable {
    ++n;
    log.push_back("A" + std::to_string(n));
    if (n == 1) {
      timer.expires_at(asio::steady_timer::clock_type::now() - 1s);
      timer.async_wait([&](boost::system::error_code) { log.push_back("timer"); });
    }
    return n >= 3 ? coop::step::done : coop::step::more;
  });
  ioc.run_for(30s);
  BOOST_TEST(ioc.stopped());
  BOOST_TEST(log == expect("A1 timer A2 A3"), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(nothing_runs_before_the_executor_is_driven) {
  {
    manual_context ctx;
    coop::cooperator c(ctx);
    log_type log;
    auto t = c.cooperate(recorder(log, "A", 2));
    auto done = watch(t);
    BOOST_TEST(log.empty());
    BOOST_TEST(done->calls == 0);
    BOOST_TEST(ctx.queued() >= 1u);   // a tick is scheduled, not run
    BOOST_TEST(log.empty());
    drain(ctx);
    BOOST_TEST(log == expect("A1 A2"), boost::test_tools::per_element());
    BOOST_TEST(done->calls == 1);
    BOOST_TEST(!done->error);
  }
  {
    asio::io_context ioc;
    coop::cooperator c(ioc);
    log_type log;
    c.cooperate(recorder(log, "A", 2));
    c.cooperate(recorder(log, "B", 1));
    BOOST_TEST(log.empty());
    ioc.run_for(30s);
    BOOST_TEST(ioc.stopped());
    BOOST_TEST(log == expect("A1 B1 A2"), boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_CASE(nothing_queued_and_no_work_after_the_last_task_finishes) {
  manual_context ctx;
  coop::cooperator c(ctx, {.termination = after_units(1)});
  log_type log;
  c.cooperate(recorder(log, "A", 2));
  c.cooperate(recorder(log, "B", 3));
  drain(ctx);
  BOOST_TEST(log == expect("A1 B1 A2 B2 B3"), boost::test_tools::per_element());
  BOOST_TEST(ctx.queued() == 0u);
  BOOST_TEST(ctx.outstanding_work() == 0u);
  // Still usable afterwards: a new task schedules a tick again.
  c.cooperate(recorder(log, "C", 1));
  BOOST_TEST(ctx.queued() >= 1u);
  drain(ctx);
  BOOST_TEST(log.back() == "C1");
  BOOST_TEST(ctx.queued() == 0u);
  BOOST_TEST(ctx.outstanding_work() == 0u);
}

BOOST_AUTO_TEST_CASE(nothing_queued_and_no_work_when_all_tasks_are_paused) {
  manual_context ctx;
  coop::cooperator c(ctx, {.termination = after_units(1)});
  log_type log;
  auto a = c.cooperate(recorder(log, "A", 3));
  auto b = c.cooperate(recorder(log, "B", 3));
  BOOST_TEST_REQUIRE(ctx.poll_one() == 1u);
  BOOST_TEST(log == expect("A1"), boost::test_tools::per_element());
  a.pause();
  b.pause();
  // The tick already queued may still run once, finding nothing; it must not re-post.
  BOOST_TEST(drain(ctx) <= 1u);
  BOOST_TEST(log == expect("A1"), boost::test_tools::per_element());
  BOOST_TEST(ctx.queued() == 0u);
  BOOST_TEST(ctx.outstanding_work() == 0u);

  b.resume();
  a.resume();
  drain(ctx);
  BOOST_TEST(log.size() == 6u);
  BOOST_TEST(std::count(log.begin(), log.end(), "A3") == 1);
  BOOST_TEST(std::count(log.begin(), log.end(), "B3") == 1);
  BOOST_TEST(ctx.queued() == 0u);
  BOOST_TEST(ctx.outstanding_work() == 0u);
}

BOOST_AUTO_TEST_CASE(io_context_run_returns_when_the_last_task_finishes) {
  asio::io_context ioc;
  coop::cooperator c(ioc);
  int a = 0;
  int b = 0;
  c.cooperate([&] { return ++a == 1000 ? coop::step::done : coop::step::more; });
  c.cooperate([&] { return ++b == 10 ? coop::step::done : coop::step::more; });
  ioc.run_for(30s);   // returns at once when out of work; 30 s only bounds a failure
  BOOST_TEST(ioc.stopped());
  BOOST_TEST(a == 1000);
  BOOST_TEST(b == 10);
}

BOOST_AUTO_TEST_CASE(io_context_run_returns_when_all_tasks_are_paused) {
  asio::io_context ioc;
  coop::cooperator c(ioc);
  std::optional<coop::cooperative_task> self;
  int units = 0;
  int other = 0;
  self = c.cooperate([&] {
    if (++units == 3) self->pause();
    return coop::step::more;
  });
  auto b = c.cooperate(counter(other));
  b.pause();
  ioc.run_for(30s);
  BOOST_TEST(ioc.stopped());
  BOOST_TEST(units == 3);
  BOOST_TEST(other == 0);
  c.stop();   // ends both paused tasks
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(start_and_stop)

BOOST_AUTO_TEST_CASE(not_started_queues_tasks_until_start) {
  manual_context ctx;
  coop::cooperator c(ctx, {.termination = after_units(1), .started = false});
  BOOST_TEST(!c.running());
  log_type log;
  c.cooperate(recorder(log, "A", 2));
  c.cooperate(recorder(log, "B", 2));
  BOOST_TEST(ctx.queued() == 0u);
  BOOST_TEST(drain(ctx) == 0u);
  BOOST_TEST(log.empty());
  BOOST_TEST(ctx.outstanding_work() == 0u);

  c.start();
  BOOST_TEST(c.running());
  BOOST_TEST(log.empty());   // start() schedules; it does not run units inline
  drain(ctx);
  BOOST_TEST(log == expect("A1 B1 A2 B2"), boost::test_tools::per_element());
  BOOST_TEST(ctx.queued() == 0u);
  BOOST_TEST(ctx.outstanding_work() == 0u);
}

BOOST_AUTO_TEST_CASE(running_in_its_four_states) {
  manual_context ctx;
  coop::cooperator c(ctx, {.termination = {}, .started = false});
  BOOST_TEST(!c.running());
  c.start();
  BOOST_TEST(c.running());
  c.stop();
  BOOST_TEST(!c.running());
  c.start();
  BOOST_TEST(c.running());

  // After stop + start, new tasks run again.
  log_type log;
  auto t = c.cooperate(recorder(log, "A", 2));
  auto done = watch(t);
  drain(ctx);
  BOOST_TEST(log == expect("A1 A2"), boost::test_tools::per_element());
  BOOST_TEST(done->calls == 1);
  BOOST_TEST(!done->error);

  // A cooperator started by default is running at once.
  coop::cooperator d(ctx);
  BOOST_TEST(d.running());
}

BOOST_AUTO_TEST_CASE(start_and_stop_twice_are_harmless) {
  manual_context ctx;
  coop::cooperator c(ctx);
  c.start();
  BOOST_TEST(c.running());
  c.stop();
  c.stop();
  BOOST_TEST(!c.running());
  c.start();
  c.start();
  BOOST_TEST(c.running());
  log_type log;
  c.cooperate(recorder(log, "A", 1));
  drain(ctx);
  BOOST_TEST(log == expect("A1"), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_stopped_cooperator_finishes_new_tasks_with_scheduler_stopped) {
  manual_context ctx;
  coop::cooperator c(ctx);
  c.stop();
  int units = 0;
  auto t = c.cooperate(counter(units));
  // Finished at once: pause() already reports how.
  check_throws_exactly<coop::scheduler_stopped>([&] { t.pause(); });
  check_throws_exactly<coop::scheduler_stopped>([&] { t.stop(); });
  auto done = watch(t);
  BOOST_TEST(done->calls == 0);   // posted, never inline
  drain(ctx);
  BOOST_TEST(units == 0);
  BOOST_TEST(done->calls == 1);
  BOOST_TEST(holds_exactly<coop::scheduler_stopped>(done->error), type_of(done->error));
  BOOST_TEST(ctx.queued() == 0u);
  BOOST_TEST(ctx.outstanding_work() == 0u);

  // start() again: new tasks run.
  c.start();
  log_type log;
  auto u = c.cooperate(recorder(log, "B", 2));
  auto u_done = watch(u);
  drain(ctx);
  BOOST_TEST(log == expect("B1 B2"), boost::test_tools::per_element());
  BOOST_TEST(u_done->calls == 1);
  BOOST_TEST(!u_done->error);
}

BOOST_AUTO_TEST_CASE(a_not_yet_started_cooperator_that_is_stopped_fails_its_queued_tasks) {
  manual_context ctx;
  coop::cooperator c(ctx, {.termination = {}, .started = false});
  int units = 0;
  auto t = c.cooperate(counter(units));
  auto done = watch(t);
  c.stop();
  drain(ctx);
  BOOST_TEST(units == 0);
  BOOST_TEST(done->calls == 1);
  BOOST_TEST(holds_exactly<coop::scheduler_stopped>(done->error), type_of(done->error));
}

BOOST_AUTO_TEST_CASE(stop_from_inside_a_unit_ends_the_tick_and_every_task) {
  manual_context ctx;
  coop::cooperator c(ctx, {.termination = never_ends()});
  log_type log;
  auto a = c.cooperate(recorder(log, "A", forever));
  auto b = c.cooperate([&, n = 0]() mutable {
    ++n;
    log.push_back("B" + std::to_string(n));
    c.stop();
    return coop::step::more;
  });
  auto d = c.cooperate(recorder(log, "C", forever));
  auto a_done = watch(a);
  auto b_done = watch(b);
  auto d_done = watch(d);
  drain(ctx);
  BOOST_TEST(log == expect("A1 B1"), boost::test_tools::per_element());
  BOOST_TEST(!c.running());
  for (const auto& done : {a_done, b_done, d_done}) {
    BOOST_TEST(done->calls == 1);
    BOOST_TEST(holds_exactly<coop::scheduler_stopped>(done->error), type_of(done->error));
  }
  BOOST_TEST(ctx.queued() == 0u);
  BOOST_TEST(ctx.outstanding_work() == 0u);
}

BOOST_AUTO_TEST_CASE(stop_fails_running_and_paused_tasks_with_scheduler_stopped) {
  manual_context ctx;
  coop::cooperator c(ctx, {.termination = after_units(1)});
  log_type log;
  auto a = c.cooperate(recorder(log, "A", forever));
  auto b = c.cooperate(recorder(log, "B", forever));
  auto p = c.cooperate(recorder(log, "P", forever));
  p.pause();
  BOOST_TEST_REQUIRE(ctx.poll_one() == 1u);
  BOOST_TEST(log == expect("A1"), boost::test_tools::per_element());
  auto a_done = watch(a);
  auto b_done = watch(b);
  auto p_done = watch(p);

  c.stop();
  BOOST_TEST(!c.running());
  BOOST_TEST(a_done->calls == 0);   // handlers run after stop() returns, not inside it
  BOOST_TEST(b_done->calls == 0);
  BOOST_TEST(p_done->calls == 0);
  drain(ctx);
  BOOST_TEST(log == expect("A1"), boost::test_tools::per_element());   // no unit after stop
  BOOST_TEST(a_done->calls == 1);
  BOOST_TEST(b_done->calls == 1);
  BOOST_TEST(p_done->calls == 1);
  BOOST_TEST(holds_exactly<coop::scheduler_stopped>(a_done->error), type_of(a_done->error));
  BOOST_TEST(holds_exactly<coop::scheduler_stopped>(b_done->error), type_of(b_done->error));
  BOOST_TEST(holds_exactly<coop::scheduler_stopped>(p_done->error), type_of(p_done->error));
  check_throws_exactly<coop::scheduler_stopped>([&] { a.pause(); });
  check_throws_exactly<coop::scheduler_stopped>([&] { p.stop(); });
  BOOST_CHECK_NO_THROW(p.resume());   // paused, then finished: the matching resume is a no-op
  BOOST_TEST(ctx.queued() == 0u);
  BOOST_TEST(ctx.outstanding_work() == 0u);

  // Restarting does not bring the stopped tasks back.
  c.start();
  drain(ctx);
  BOOST_TEST(log == expect("A1"), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(tick_budget)

BOOST_AUTO_TEST_CASE(default_options) {
  const coop::cooperator_options options{};
  BOOST_TEST((options.slice == std::chrono::milliseconds(1)));
  BOOST_TEST(options.slice.count() == 1'000'000);
  BOOST_TEST(!options.termination);
  BOOST_TEST(options.started);
}

BOOST_AUTO_TEST_CASE(termination_factory_once_per_tick_predicate_after_each_unit) {
  manual_context ctx;
  log_type log;
  int factory_calls = 0;
  int predicate_calls = 0;
  // slice 0 would end every tick after one unit: with a predicate set it is ignored.
  coop::cooperator c(ctx, {.slice = 0ns, .termination = [&] {
                             ++factory_calls;
                             log.push_back("|");
                             return [&, n = 0]() mutable {
                               ++predicate_calls;
                               log.push_back("?");
                               return ++n >= 2;
                             };
                           }});
  c.cooperate(recorder(log, "A", 3));
  c.cooperate(recorder(log, "B", 3));
  BOOST_TEST(factory_calls == 0);   // nothing before the executor runs
  drain(ctx);
  BOOST_TEST(log == expect(coop_test::shake_out ? "| A1 ? | B1 ? | A2 ? | B2 ? | A3 ? | B3 ?"
                                               : "| A1 ? B1 ? | A2 ? B2 ? | A3 ? B3 ?"),
             boost::test_tools::per_element());
  BOOST_TEST(factory_calls == (coop_test::shake_out ? 6 : 3));
  BOOST_TEST(predicate_calls == 6);
}

BOOST_AUTO_TEST_CASE(a_predicate_ending_after_three_units) {
  manual_context ctx;
  coop::cooperator c(ctx, {.slice = 0ns, .termination = after_units(3)});
  int units = 0;
  c.cooperate(counter(units));
  const int per_tick = coop_test::shake_out ? 1 : 3;
  for (int tick = 1; tick <= 5; ++tick) {
    BOOST_TEST_REQUIRE(ctx.poll_one() == 1u);
    BOOST_TEST(units == per_tick * tick);
  }
  c.stop();
  drain(ctx);
  BOOST_TEST(units == 5 * per_tick);
}

BOOST_AUTO_TEST_CASE(the_slice_is_respected_coarsely) {
  // Units of ~50 us with the default 1 ms slice: a tick runs about 20 of them. Each unit
  // posts a marker to the io_context (once per tick); markers run only between ticks, so
  // the marker count seen by a unit identifies its tick. Bounds are generous on purpose.
  asio::io_context ioc;
  coop::cooperator c(ioc);
  constexpr int total = 400;
  int tick = 0;
  bool marker_pending = false;
  std::map<int, int> units_per_tick;
  c.cooperate([&, n = 0]() mutable {
    const auto end = std::chrono::steady_clock::now() + 50us;
    while (std::chrono::steady_clock::now() < end) {
    }
    if (!marker_pending) {
      marker_pending = true;
      asio::post(ioc, [&] {
        ++tick;
        marker_pending = false;
      });
    }
    ++units_per_tick[tick];
    return ++n == total ? coop::step::done : coop::step::more;
  });
  ioc.run_for(60s);
  BOOST_TEST_REQUIRE(ioc.stopped());
  int largest = 0;
  int sum = 0;
  for (const auto& [id, units] : units_per_tick) {
    largest = std::max(largest, units);
    sum += units;
  }
  BOOST_TEST_MESSAGE("ticks: " << units_per_tick.size() << ", largest tick: " << largest
                               << " units");
  BOOST_TEST(sum == total);
  if (coop_test::shake_out)
    BOOST_TEST(largest == 1);          // the shake-out build: one unit per tick
  else
    BOOST_TEST(largest >= 2);          // the slice is not "one unit"
  BOOST_TEST(largest <= total / 2);    // and not "everything"
  BOOST_TEST(units_per_tick.size() >= 2u);
}

namespace {

// A scripted workload for comparing the two tick loops: tasks whose units, drawn from a
// seeded generator, pause, resume or stop other tasks, stop or fail their own task, add
// tasks or finish. The generator is shared, so the same seed gives the same log only if
// the units ran in the same order.
class scripted_workload {
public:
  // `weighted`: tasks get shares other than the default, and units change them.
  scripted_workload(std::uint64_t seed, coop::cooperator& c, bool weighted = false)
      : state_(seed * 2654435761u + 1), c_(c), weighted_(weighted) {}

  // Work of four kinds in runs of 7 tasks (the walk in place runs a run of one type in
  // that type's own code and hands over at a change of type): two callable types and two
  // coroutine task types (a coroutine, and a lambda coroutine kept with its lambda),
  // each logging and acting the same way.
  void add(int units) {
    const int id = static_cast<int>(tasks_.size());
    const coop::task_options options{.shares = weighted_ ? some_shares() : 100u};
    switch (id / 7 % 4) {
      case 0:
        tasks_.push_back(c_.cooperate(
            [this, id, units, n = 0]() mutable {
              ++n;
              return unit(id, n, units);
            },
            options));
        break;
      case 1:
        tasks_.push_back(c_.cooperate(
            [this, id, units, n = std::int64_t{0}]() mutable {
              ++n;
              return unit(id, static_cast<int>(n), units);
            },
            options));
        break;
      case 2:
        tasks_.push_back(c_.cooperate(steps_unit(id, units), options));
        break;
      default:
        tasks_.push_back(c_.cooperate(
            [this, id, units]() -> coop::steps {
              for (int n = 1;; ++n) {
                if (unit(id, n, units) == coop::step::done) co_return;
                co_yield coop::next;
              }
            },
            options));
        break;
    }
  }

  log_type log;

private:
  std::uint32_t draw(std::uint32_t below) {
    state_ = state_ * 6364136223846793005u + 1442695040888963407u;
    return static_cast<std::uint32_t>(state_ >> 33) % below;
  }

  unsigned some_shares() {
    static constexpr unsigned choices[] = {1, 30, 50, 100, 100, 150, 250, 400};
    return choices[draw(8)];
  }

  coop::step unit(int id, int n, int units) {
    log.push_back(std::to_string(id) + "." + std::to_string(n));
    return act(id, n >= units);
  }

  coop::steps steps_unit(int id, int units) {
    for (int n = 1;; ++n) {
      if (unit(id, n, units) == coop::step::done) co_return;
      co_yield coop::next;
    }
  }

  coop::step act(int self, bool last) {
    boost::system::error_code ec;
    coop::cooperative_task& other = tasks_[draw(static_cast<std::uint32_t>(tasks_.size()))];
    switch (draw(40)) {
      case 0: case 1: other.pause(ec); break;
      case 2: case 3: case 4: other.resume(ec); break;
      case 5: other.stop(ec); break;
      case 6: if (tasks_.size() < 300) add(1 + static_cast<int>(draw(30))); break;
      case 7: tasks_[static_cast<std::size_t>(self)].stop(ec); break;
      case 8: throw std::runtime_error("unit failed");
      case 9: case 10:
        if (weighted_) other.set_shares(some_shares());
        break;
      default: break;
    }
    if (ec) log.push_back(ec.message());
    return last ? coop::step::done : coop::step::more;
  }

  std::uint64_t state_;
  coop::cooperator& c_;
  bool weighted_;
  std::vector<coop::cooperative_task> tasks_;
};

log_type run_workload(std::uint64_t seed, coop::cooperator_options options, bool weighted = false) {
  manual_context ctx;
  coop::cooperator c(ctx, std::move(options));
  scripted_workload w(seed, c, weighted);
  for (int i = 0; i < 60; ++i) w.add(20 + i % 25);  // more tasks than the walk prefetches ahead
  drain(ctx, 1000000);
  return std::move(w.log);
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_time_slice_loop_runs_units_in_the_order_of_the_predicate_loop) {
  // The time-slice tick runs the common case in a walk in place (in_place_walk.hpp);
  // the predicate tick, which the model checker covers, goes round next_in_round() for
  // every unit. With a slice no tick reaches, both must run the same units in the same
  // order, whatever the units do to the lists.
  for (std::uint64_t seed = 1; seed <= 150; ++seed) {
    const log_type by_predicate = run_workload(seed, {.termination = never_ends()});
    coop::cooperator_options long_slice;
    long_slice.slice = std::chrono::hours(1);
    const log_type by_slice = run_workload(seed, std::move(long_slice));
    BOOST_TEST_REQUIRE(by_predicate.size() > 400u);
    BOOST_TEST_REQUIRE(by_slice == by_predicate, "seed " << seed << ": the orders differ");
  }
}

BOOST_AUTO_TEST_CASE(with_shares_the_time_slice_loop_runs_units_in_the_order_of_the_predicate_loop) {
  // The same with shares other than the default, which units change: turns of several
  // units (or none), cut short by clock reads in the slice's tick and continued.
  for (std::uint64_t seed = 1; seed <= 150; ++seed) {
    const log_type by_predicate = run_workload(seed, {.termination = never_ends()}, true);
    coop::cooperator_options long_slice;
    long_slice.slice = std::chrono::hours(1);
    const log_type by_slice = run_workload(seed, std::move(long_slice), true);
    BOOST_TEST_REQUIRE(by_predicate.size() > 400u);
    BOOST_TEST_REQUIRE(by_slice == by_predicate, "seed " << seed << ": the orders differ");
  }
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(construction_and_executor)

BOOST_AUTO_TEST_CASE(get_executor_is_the_strand_units_run_on) {
  static_assert(std::is_same_v<coop::cooperator::executor_type,
                               asio::strand<asio::any_io_executor>>);
  static_assert(noexcept(std::declval<const coop::cooperator&>().get_executor()));
  {
    asio::io_context ioc;
    coop::cooperator c(ioc);
    BOOST_TEST(!c.get_executor().running_in_this_thread());
    int units = 0;
    int on_strand = 0;
    c.cooperate([&] {
      ++units;
      if (c.get_executor().running_in_this_thread()) ++on_strand;
      return units == 3 ? coop::step::done : coop::step::more;
    });
    ioc.run_for(30s);
    BOOST_TEST(units == 3);
    BOOST_TEST(on_strand == 3);
    // The strand is over the io_context's executor.
    BOOST_TEST(&asio::query(c.get_executor().get_inner_executor(), asio::execution::context) ==
               static_cast<asio::execution_context*>(&ioc));
  }
  {
    manual_context ctx;
    coop::cooperator c(ctx);
    int on_strand = 0;
    c.cooperate([&] {
      if (c.get_executor().running_in_this_thread()) ++on_strand;
      return coop::step::done;
    });
    drain(ctx);
    BOOST_TEST(on_strand == 1);
  }
}

BOOST_AUTO_TEST_CASE(constructed_from_an_io_context) {
  asio::io_context ioc;
  coop::cooperator c(ioc, {.termination = after_units(1)});
  log_type log;
  c.cooperate(recorder(log, "A", 2));
  c.cooperate(recorder(log, "B", 2));
  ioc.run_for(30s);
  BOOST_TEST(ioc.stopped());
  BOOST_TEST(log == expect("A1 B1 A2 B2"), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(constructed_from_an_executor) {
  {
    asio::io_context ioc;
    coop::cooperator c(asio::any_io_executor(ioc.get_executor()), {.termination = after_units(1)});
    log_type log;
    c.cooperate(recorder(log, "A", 2));
    c.cooperate(recorder(log, "B", 2));
    ioc.run_for(30s);
    BOOST_TEST(ioc.stopped());
    BOOST_TEST(log == expect("A1 B1 A2 B2"), boost::test_tools::per_element());
  }
  {
    // An executor lvalue picks the executor constructor, not the context template.
    asio::io_context ioc;
    auto ex = ioc.get_executor();
    coop::cooperator c(ex);
    log_type log;
    c.cooperate(recorder(log, "A", 2));
    ioc.run_for(30s);
    BOOST_TEST(log == expect("A1 A2"), boost::test_tools::per_element());
  }
  {
    manual_context ctx;
    auto ex = ctx.get_executor();
    coop::cooperator c(ex, {.termination = after_units(1)});
    log_type log;
    c.cooperate(recorder(log, "A", 2));
    c.cooperate(recorder(log, "B", 1));
    BOOST_TEST(log.empty());
    drain(ctx);
    BOOST_TEST(log == expect("A1 B1 A2"), boost::test_tools::per_element());
  }
  {
    manual_context ctx;
    const asio::any_io_executor ex = ctx.get_executor();
    coop::cooperator c(ex);
    log_type log;
    c.cooperate(recorder(log, "A", 1));
    drain(ctx);
    BOOST_TEST(log == expect("A1"), boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(fairness)

BOOST_AUTO_TEST_CASE(equal_tasks_get_equal_units_with_fixed_ticks) {
  manual_context ctx;
  coop::cooperator c(ctx, {.termination = after_units(5)});   // 5 is not a multiple of 3
  int a = 0;
  int b = 0;
  int d = 0;
  c.cooperate(counter(a));
  c.cooperate(counter(b));
  c.cooperate(counter(d));
  for (int tick = 0; tick < 100; ++tick) BOOST_TEST_REQUIRE(ctx.poll_one() == 1u);
  const int total = coop_test::shake_out ? 100 : 500;  // shake-out: one unit per tick
  BOOST_TEST(a + b + d == total);
  BOOST_TEST(std::max({a, b, d}) - std::min({a, b, d}) <= 1);
  c.stop();
  drain(ctx);
  BOOST_TEST(a + b + d == total);
}

BOOST_AUTO_TEST_CASE(equal_tasks_get_equal_units_with_the_time_slice) {
  asio::io_context ioc;
  coop::cooperator c(ioc);
  int a = 0;
  int b = 0;
  int d = 0;
  c.cooperate(counter(a));
  c.cooperate(counter(b));
  c.cooperate(counter(d));
  for (int tick = 0; tick < 20; ++tick) BOOST_TEST_REQUIRE(ioc.run_one() == 1u);
  BOOST_TEST_MESSAGE("units after 20 ticks: " << a << " " << b << " " << d);
  BOOST_TEST(a > 0);
  BOOST_TEST(std::max({a, b, d}) - std::min({a, b, d}) <= 1);
  c.stop();
  ioc.run_for(30s);
  BOOST_TEST(ioc.stopped());
}

BOOST_AUTO_TEST_SUITE_END()
