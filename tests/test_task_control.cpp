// SPDX-License-Identifier: BSL-1.0
// Controlling one task through its cooperative_task handle: pause/resume (counted),
// stop, how a finished task reports itself, failing units, the error_code& forms,
// handle copies and invalid work.
#define BOOST_TEST_MODULE task_control
#include <boost/test/unit_test.hpp>

#include <coop/cooperative_task.hpp>   // first coop header: it must compile on its own
#include <coop/cooperator.hpp>
#include <coop/coop.hpp>

#include "support/manual_executor.hpp"
#include "support/unit_log.hpp"
#include "support/scheduler_under_test.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/core/demangle.hpp>
#include <boost/system/error_code.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <limits>
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
// A cooperator, or a pool of one member built as one (the suite's _on_pool build).
using test_cooperator = coop_test::scheduler_under_test;
using namespace std::chrono_literals;
using coop_test::manual_context;
using coop_test::expect;
using coop_test::forever;
using coop_test::log_type;
using coop_test::recorder;
using coop_test::in_promised_order;

namespace {


long units_of(const log_type& log, char name) {
  return std::count_if(log.begin(), log.end(),
                       [name](const std::string& s) { return !s.empty() && s[0] == name; });
}

using termination_factory = std::function<std::function<bool()>()>;

termination_factory after_units(int k) {
  return [k] { return [k, n = 0]() mutable { return ++n >= k; }; };
}

termination_factory never_ends() {
  return [] { return [] { return false; }; };
}

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

// An exception that remembers where it was constructed, to check that when_done hands
// out the very object the unit threw (not a copy, not a slice).
struct unit_error : std::runtime_error {
  unit_error(int id, const void** where) : std::runtime_error("unit_error"), id(id) {
    *where = this;
  }
  int id;
};

// The four ways a task finishes, each produced on a fresh task of `c`.
enum class finish_kind { done, stopped, failed, scheduler_stopped };

const char* name_of(finish_kind k) {
  switch (k) {
    case finish_kind::done: return "done";
    case finish_kind::stopped: return "stopped";
    case finish_kind::failed: return "failed";
    case finish_kind::scheduler_stopped: return "scheduler_stopped";
  }
  return "?";
}

struct finished_task {
  manual_context ctx;
  std::optional<test_cooperator> c;
  std::optional<coop::cooperative_task> task;
  std::shared_ptr<completion> done;
};

// Builds a task that finished the given way (never paused) and drains its executor.
std::unique_ptr<finished_task> make_finished(finish_kind kind) {
  auto f = std::make_unique<finished_task>();
  f->c.emplace(f->ctx);
  switch (kind) {
    case finish_kind::done:
      f->task = f->c->cooperate([] { return coop::step::done; });
      break;
    case finish_kind::stopped:
      f->task = f->c->cooperate([] { return coop::step::more; });
      f->task->stop();
      break;
    case finish_kind::failed:
      f->task = f->c->cooperate([]() -> coop::step { throw std::logic_error("boom"); });
      break;
    case finish_kind::scheduler_stopped:
      f->task = f->c->cooperate([] { return coop::step::more; });
      f->c->stop();
      break;
  }
  f->done = watch(*f->task);
  drain(f->ctx);
  return f;
}

template <class F>
void for_each_finish(F&& f) {
  for (finish_kind k : {finish_kind::done, finish_kind::stopped, finish_kind::failed,
                        finish_kind::scheduler_stopped}) {
    BOOST_TEST_CONTEXT("task finished: " << name_of(k)) { f(k); }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(pause_and_resume)

BOOST_AUTO_TEST_CASE(pause_stops_units_and_resume_restarts_them) {
  manual_context ctx;
  test_cooperator c(ctx, {.termination = after_units(1)});
  log_type log;
  auto a = c.cooperate(recorder(log, "A", 4));
  auto b = c.cooperate(recorder(log, "B", 6));
  BOOST_TEST_REQUIRE(ctx.poll_one() == 1u);
  BOOST_TEST(log == expect("A1"), boost::test_tools::per_element());
  a.pause();
  // Three of B's units (three ticks on one cooperator; on a pool of two, B has moved and
  // the members' ticks interleave), none of A's.
  for (int i = 0; i < 100 && log.size() < 4; ++i) BOOST_TEST_REQUIRE(ctx.poll_one() == 1u);
  BOOST_TEST(log == expect("A1 B1 B2 B3"), boost::test_tools::per_element());
  a.resume();
  auto a_done = watch(a);
  drain(ctx);
  BOOST_TEST(units_of(log, 'A') == 4);
  BOOST_TEST(units_of(log, 'B') == 6);
  BOOST_TEST(std::count(log.begin(), log.end(), "A4") == 1);
  BOOST_TEST(a_done->calls == 1);
  BOOST_TEST(!a_done->error, type_of(a_done->error));
}

BOOST_AUTO_TEST_CASE(a_task_paused_before_its_first_turn_never_runs_until_resumed) {
  manual_context ctx;
  test_cooperator c(ctx);
  log_type log;
  auto a = c.cooperate(recorder(log, "A", 2));
  a.pause();
  drain(ctx);
  BOOST_TEST(log.empty());
  BOOST_TEST(ctx.queued() == 0u);
  a.resume();
  drain(ctx);
  BOOST_TEST(log == expect("A1 A2"), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(pause_is_counted) {
  manual_context ctx;
  test_cooperator c(ctx);
  log_type log;
  auto a = c.cooperate(recorder(log, "A", 2));
  a.pause();
  a.pause();
  a.resume();
  drain(ctx);
  BOOST_TEST(log.empty());   // one pause still holds it
  a.resume();
  drain(ctx);
  BOOST_TEST(log == expect("A1 A2"), boost::test_tools::per_element());
  check_throws_exactly<coop::not_paused>([&] { a.resume(); });
}

BOOST_AUTO_TEST_CASE(resume_when_not_paused_throws_not_paused) {
  manual_context ctx;
  test_cooperator c(ctx, {.termination = after_units(1)});
  log_type log;
  auto a = c.cooperate(recorder(log, "A", 3));
  check_throws_exactly<coop::not_paused>([&] { a.resume(); });   // live, never paused
  BOOST_TEST_REQUIRE(ctx.poll_one() == 1u);
  a.pause();
  a.resume();
  check_throws_exactly<coop::not_paused>([&] { a.resume(); });   // pauses all matched
  drain(ctx);
  BOOST_TEST(log == expect("A1 A2 A3"), boost::test_tools::per_element());   // unharmed
  check_throws_exactly<coop::not_paused>([&] { a.resume(); });   // finished, never paused
}

BOOST_AUTO_TEST_CASE(resume_on_any_finished_never_paused_task_throws_not_paused) {
  for_each_finish([](finish_kind k) {
    auto f = make_finished(k);
    check_throws_exactly<coop::not_paused>([&] { f->task->resume(); });
  });
}

BOOST_AUTO_TEST_CASE(after_pause_returns_no_new_unit_of_that_task_starts) {
  {
    // B's unit pauses C, whose turn comes next in the same tick.
    manual_context ctx;
    test_cooperator c(ctx, {.termination = never_ends()});
    log_type log;
    std::optional<coop::cooperative_task> task_c;
    c.cooperate(recorder(log, "A", 3));
    c.cooperate([&, n = 0]() mutable {
      ++n;
      log.push_back("B" + std::to_string(n));
      if (n == 1) task_c->pause();
      return n >= 3 ? coop::step::done : coop::step::more;
    });
    task_c = c.cooperate(recorder(log, "C", 3));
    drain(ctx);
    // No unit of C after B1 paused it. On one cooperator that was C's next turn, so C ran
    // none; on a pool of two, C may have moved and run a unit on the other member first.
    const auto paused_at = std::find(log.begin(), log.end(), "B1");
    BOOST_TEST_REQUIRE((paused_at != log.end()));
    BOOST_TEST(std::none_of(paused_at, log.end(), [](const std::string& u) { return u.front() == 'C'; }));
    if (coop_test::one_order_across_tasks())
      BOOST_TEST(log == expect("A1 B1 A2 B2 A3 B3"), boost::test_tools::per_element());
    task_c->resume();
    drain(ctx);
    BOOST_TEST(in_promised_order(log) == in_promised_order(expect("A1 B1 A2 B2 A3 B3 C1 C2 C3")),
               boost::test_tools::per_element());
  }
  {
    // A task that pauses itself runs no further unit, even as the only runnable task in a
    // tick that never ends on its own.
    manual_context ctx;
    test_cooperator c(ctx, {.termination = never_ends()});
    log_type log;
    std::optional<coop::cooperative_task> self;
    self = c.cooperate([&, n = 0]() mutable {
      ++n;
      log.push_back("A" + std::to_string(n));
      if (n == 1) self->pause();
      return n >= 3 ? coop::step::done : coop::step::more;
    });
    drain(ctx);
    BOOST_TEST(log == expect("A1"), boost::test_tools::per_element());
    BOOST_TEST(ctx.queued() == 0u);
    BOOST_TEST(ctx.outstanding_work() == 0u);
    self->resume();
    drain(ctx);
    BOOST_TEST(log == expect("A1 A2 A3"), boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(stopping)

BOOST_AUTO_TEST_CASE(stop_finishes_with_task_stopped) {
  manual_context ctx;
  test_cooperator c(ctx, {.termination = after_units(1)});
  log_type log;
  auto a = c.cooperate(recorder(log, "A", forever));
  auto b = c.cooperate(recorder(log, "B", 3));
  auto a_done = watch(a);
  BOOST_TEST_REQUIRE(ctx.poll_one() == 1u);
  a.stop();
  BOOST_TEST(a_done->calls == 0);   // never inside the call that finished the task
  drain(ctx);
  BOOST_TEST(log == expect("A1 B1 B2 B3"), boost::test_tools::per_element());
  BOOST_TEST(a_done->calls == 1);
  BOOST_TEST(holds_exactly<coop::task_stopped>(a_done->error), type_of(a_done->error));
  BOOST_TEST(c.running());   // stopping a task leaves the cooperator alone
}

BOOST_AUTO_TEST_CASE(pause_and_stop_on_a_finished_task_throw_how_it_finished) {
  for_each_finish([](finish_kind k) {
    auto f = make_finished(k);
    auto& t = *f->task;
    BOOST_TEST(f->done->calls == 1);
    switch (k) {
      case finish_kind::done:
        BOOST_TEST(!f->done->error, type_of(f->done->error));
        check_throws_exactly<coop::task_done>([&] { t.pause(); });
        check_throws_exactly<coop::task_done>([&] { t.stop(); });
        break;
      case finish_kind::stopped:
        BOOST_TEST(holds_exactly<coop::task_stopped>(f->done->error), type_of(f->done->error));
        check_throws_exactly<coop::task_stopped>([&] { t.pause(); });
        check_throws_exactly<coop::task_stopped>([&] { t.stop(); });
        break;
      case finish_kind::failed:
        BOOST_TEST(type_of(f->done->error) == "std::logic_error");
        check_throws_exactly<coop::task_failed>([&] { t.pause(); });
        check_throws_exactly<coop::task_failed>([&] { t.stop(); });
        break;
      case finish_kind::scheduler_stopped:
        BOOST_TEST(holds_exactly<coop::scheduler_stopped>(f->done->error),
                   type_of(f->done->error));
        check_throws_exactly<coop::scheduler_stopped>([&] { t.pause(); });
        check_throws_exactly<coop::scheduler_stopped>([&] { t.stop(); });
        break;
    }
    // Asking again gives the same answer (the state does not decay).
    const std::string first = [&] {
      try {
        t.pause();
      } catch (const std::exception& e) {
        return boost::core::demangle(typeid(e).name());
      }
      return std::string("<nothing>");
    }();
    const std::string second = [&] {
      try {
        t.stop();
      } catch (const std::exception& e) {
        return boost::core::demangle(typeid(e).name());
      }
      return std::string("<nothing>");
    }();
    BOOST_TEST(first == second);
  });
}

BOOST_AUTO_TEST_CASE(stop_while_paused_then_resume_is_a_no_op) {
  manual_context ctx;
  test_cooperator c(ctx, {.termination = after_units(1)});
  log_type log;
  auto a = c.cooperate(recorder(log, "A", forever));
  auto a_done = watch(a);
  BOOST_TEST_REQUIRE(ctx.poll_one() == 1u);
  a.pause();
  a.pause();
  a.stop();
  drain(ctx);
  BOOST_TEST(a_done->calls == 1);
  BOOST_TEST(holds_exactly<coop::task_stopped>(a_done->error), type_of(a_done->error));
  BOOST_CHECK_NO_THROW(a.resume());   // the two pauses are matched without error...
  BOOST_CHECK_NO_THROW(a.resume());
  check_throws_exactly<coop::not_paused>([&] { a.resume(); });   // ...a third is not
  check_throws_exactly<coop::task_stopped>([&] { a.pause(); });
  drain(ctx);
  BOOST_TEST(log == expect("A1"), boost::test_tools::per_element());   // resume ran nothing
  BOOST_TEST(a_done->calls == 1);
  BOOST_TEST(ctx.queued() == 0u);
  BOOST_TEST(ctx.outstanding_work() == 0u);
}

BOOST_AUTO_TEST_CASE(stop_from_inside_the_tasks_own_unit) {
  manual_context ctx;
  test_cooperator c(ctx, {.termination = never_ends()});
  log_type log;
  std::optional<coop::cooperative_task> self;
  bool stop_threw = false;
  self = c.cooperate([&, n = 0]() mutable {
    ++n;
    log.push_back("A" + std::to_string(n));
    if (n == 2) {
      try {
        self->stop();
      } catch (...) {
        stop_threw = true;
      }
    }
    return coop::step::more;
  });
  c.cooperate(recorder(log, "B", 4));
  auto a_done = watch(*self);
  drain(ctx);
  BOOST_TEST(!stop_threw);
  BOOST_TEST(log == expect("A1 B1 A2 B2 B3 B4"), boost::test_tools::per_element());
  BOOST_TEST(a_done->calls == 1);
  BOOST_TEST(holds_exactly<coop::task_stopped>(a_done->error), type_of(a_done->error));
  check_throws_exactly<coop::task_stopped>([&] { self->pause(); });
}

BOOST_AUTO_TEST_CASE(stop_from_inside_another_tasks_unit) {
  manual_context ctx;
  test_cooperator c(ctx, {.termination = never_ends()});
  log_type log;
  std::optional<coop::cooperative_task> b;
  c.cooperate([&, n = 0]() mutable {
    ++n;
    log.push_back("A" + std::to_string(n));
    if (n == 2) b->stop();   // B's turn is next in this round: it must not come
    return n >= 3 ? coop::step::done : coop::step::more;
  });
  b = c.cooperate(recorder(log, "B", 3));
  auto b_done = watch(*b);
  drain(ctx);
  BOOST_TEST(log == expect("A1 B1 A2 A3"), boost::test_tools::per_element());
  BOOST_TEST(holds_exactly<coop::task_stopped>(b_done->error), type_of(b_done->error));
}

BOOST_AUTO_TEST_CASE(the_first_way_of_finishing_wins) {
  {
    // Stops itself, then returns done: stopped, not done.
    manual_context ctx;
    test_cooperator c(ctx);
    std::optional<coop::cooperative_task> self;
    int units = 0;
    self = c.cooperate([&] {
      ++units;
      self->stop();
      return coop::step::done;
    });
    auto done = watch(*self);
    drain(ctx);
    BOOST_TEST(units == 1);
    BOOST_TEST(done->calls == 1);
    BOOST_TEST(holds_exactly<coop::task_stopped>(done->error), type_of(done->error));
    check_throws_exactly<coop::task_stopped>([&] { self->pause(); });
    check_throws_exactly<coop::task_stopped>([&] { self->stop(); });
  }
  {
    // Stops itself, then throws: stopped, and the exception goes nowhere.
    asio::io_context ioc;
    test_cooperator c(ioc);
    std::optional<coop::cooperative_task> self;
    self = c.cooperate([&]() -> coop::step {
      self->stop();
      throw std::logic_error("after stop");
    });
    auto done = watch(*self);
    BOOST_CHECK_NO_THROW(ioc.run_for(30s));
    BOOST_TEST(ioc.stopped());
    BOOST_TEST(done->calls == 1);
    BOOST_TEST(holds_exactly<coop::task_stopped>(done->error), type_of(done->error));
    check_throws_exactly<coop::task_stopped>([&] { self->pause(); });
  }
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(failing_units)

BOOST_AUTO_TEST_CASE(a_throwing_unit_fails_only_its_task) {
  asio::io_context ioc;
  test_cooperator c(ioc, {.termination = after_units(1)});
  log_type log;
  const void* thrown_at = nullptr;
  auto a = c.cooperate([&, n = 0]() mutable -> coop::step {
    ++n;
    log.push_back("A" + std::to_string(n));
    if (n == 2) throw unit_error(42, &thrown_at);
    return coop::step::more;
  });
  auto b = c.cooperate(recorder(log, "B", 4));
  auto d = c.cooperate(recorder(log, "C", 4));
  auto a_done = watch(a);
  auto b_done = watch(b);
  auto d_done = watch(d);
  BOOST_CHECK_NO_THROW(ioc.run_for(30s));   // nothing escapes run()
  BOOST_TEST(ioc.stopped());
  BOOST_TEST(in_promised_order(log) == in_promised_order(expect("A1 B1 C1 A2 B2 C2 B3 C3 B4 C4")),
             boost::test_tools::per_element());

  BOOST_TEST(a_done->calls == 1);
  BOOST_TEST_REQUIRE(static_cast<bool>(a_done->error));
  try {
    std::rethrow_exception(a_done->error);
  } catch (const unit_error& e) {
    BOOST_TEST(e.id == 42);
    BOOST_TEST(static_cast<const void*>(&e) == thrown_at);   // the very object thrown
    BOOST_TEST((typeid(e) == typeid(unit_error)));
  } catch (...) {
    BOOST_ERROR("when_done carried another exception: " << type_of(a_done->error));
  }
  BOOST_TEST(b_done->calls == 1);
  BOOST_TEST(!b_done->error, type_of(b_done->error));
  BOOST_TEST(d_done->calls == 1);
  BOOST_TEST(!d_done->error, type_of(d_done->error));

  check_throws_exactly<coop::task_failed>([&] { a.pause(); });
  check_throws_exactly<coop::task_failed>([&] { a.stop(); });
  check_throws_exactly<coop::not_paused>([&] { a.resume(); });

  // A later when_done gives the same object again.
  auto again = watch(a);
  ioc.restart();
  ioc.run_for(30s);
  BOOST_TEST(again->calls == 1);
  BOOST_TEST((again->error == a_done->error));
}

BOOST_AUTO_TEST_CASE(a_unit_throwing_a_non_std_exception) {
  asio::io_context ioc;
  test_cooperator c(ioc);
  int other = 0;
  auto a = c.cooperate([]() -> coop::step { throw 7; });
  auto b = c.cooperate([&] { return ++other == 5 ? coop::step::done : coop::step::more; });
  auto a_done = watch(a);
  BOOST_CHECK_NO_THROW(ioc.run_for(30s));
  BOOST_TEST(ioc.stopped());
  BOOST_TEST(other == 5);
  BOOST_TEST(a_done->calls == 1);
  BOOST_TEST_REQUIRE(static_cast<bool>(a_done->error));
  try {
    std::rethrow_exception(a_done->error);
  } catch (int value) {
    BOOST_TEST(value == 7);
  } catch (...) {
    BOOST_ERROR("when_done carried another exception: " << type_of(a_done->error));
  }
  check_throws_exactly<coop::task_failed>([&] { a.pause(); });
}

BOOST_AUTO_TEST_CASE(a_throwing_unit_does_not_escape_a_manual_poll) {
  manual_context ctx;
  test_cooperator c(ctx, {.termination = never_ends()});
  log_type log;
  auto a = c.cooperate([&]() -> coop::step {
    log.push_back("A1");
    throw std::runtime_error("unit");
  });
  c.cooperate(recorder(log, "B", 2));
  auto a_done = watch(a);
  BOOST_CHECK_NO_THROW(drain(ctx));
  BOOST_TEST(log == expect("A1 B1 B2"), boost::test_tools::per_element());
  BOOST_TEST(type_of(a_done->error) == "std::runtime_error");
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(error_code_forms)

BOOST_AUTO_TEST_CASE(are_noexcept) {
  using ec_ref = boost::system::error_code&;
  static_assert(noexcept(std::declval<coop::cooperative_task&>().pause(std::declval<ec_ref>())));
  static_assert(noexcept(std::declval<coop::cooperative_task&>().resume(std::declval<ec_ref>())));
  static_assert(noexcept(std::declval<coop::cooperative_task&>().stop(std::declval<ec_ref>())));
  BOOST_TEST(true);
}

BOOST_AUTO_TEST_CASE(clear_ec_on_success_and_set_it_on_failure) {
  manual_context ctx;
  test_cooperator c(ctx, {.termination = after_units(1)});
  log_type log;
  auto a = c.cooperate(recorder(log, "A", forever));
  const boost::system::error_code stale = coop::make_error_code(coop::error::task_failed);
  boost::system::error_code ec;

  ec = stale;
  BOOST_CHECK_NO_THROW(a.resume(ec));
  BOOST_TEST((ec == coop::error::not_paused), ec.message());

  ec = stale;
  BOOST_CHECK_NO_THROW(a.pause(ec));
  BOOST_TEST(!ec, ec.message());
  ec = stale;
  BOOST_CHECK_NO_THROW(a.pause(ec));   // counted
  BOOST_TEST(!ec, ec.message());
  drain(ctx);
  BOOST_TEST(log.empty());
  ec = stale;
  a.resume(ec);
  BOOST_TEST(!ec, ec.message());
  drain(ctx);
  BOOST_TEST(log.empty());   // still one pause
  ec = stale;
  a.resume(ec);
  BOOST_TEST(!ec, ec.message());
  BOOST_TEST_REQUIRE(ctx.poll_one() == 1u);
  BOOST_TEST(log == expect("A1"), boost::test_tools::per_element());
  ec = stale;
  a.resume(ec);
  BOOST_TEST((ec == coop::error::not_paused), ec.message());

  ec = stale;
  BOOST_CHECK_NO_THROW(a.stop(ec));
  BOOST_TEST(!ec, ec.message());
  ec = {};
  BOOST_CHECK_NO_THROW(a.stop(ec));
  BOOST_TEST((ec == coop::error::task_stopped), ec.message());
  ec = {};
  BOOST_CHECK_NO_THROW(a.pause(ec));
  BOOST_TEST((ec == coop::error::task_stopped), ec.message());
  ec = {};
  BOOST_CHECK_NO_THROW(a.resume(ec));
  BOOST_TEST((ec == coop::error::not_paused), ec.message());
  drain(ctx);
  BOOST_TEST(log == expect("A1"), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(report_how_a_finished_task_finished) {
  for_each_finish([](finish_kind k) {
    auto f = make_finished(k);
    auto& t = *f->task;
    coop::error expected{};
    switch (k) {
      case finish_kind::done: expected = coop::error::task_done; break;
      case finish_kind::stopped: expected = coop::error::task_stopped; break;
      case finish_kind::failed: expected = coop::error::task_failed; break;
      case finish_kind::scheduler_stopped: expected = coop::error::scheduler_stopped; break;
    }
    boost::system::error_code ec;
    BOOST_CHECK_NO_THROW(t.pause(ec));
    BOOST_TEST((ec == expected), ec.message());
    ec = {};
    BOOST_CHECK_NO_THROW(t.stop(ec));
    BOOST_TEST((ec == expected), ec.message());
    ec = {};
    BOOST_CHECK_NO_THROW(t.resume(ec));
    BOOST_TEST((ec == coop::error::not_paused), ec.message());
  });
}

BOOST_AUTO_TEST_CASE(resume_of_a_paused_task_that_finished_clears_ec) {
  manual_context ctx;
  test_cooperator c(ctx);
  auto a = c.cooperate([] { return coop::step::more; });
  a.pause();
  c.stop();
  drain(ctx);
  boost::system::error_code ec = coop::make_error_code(coop::error::task_failed);
  a.resume(ec);
  BOOST_TEST(!ec, ec.message());
  a.pause(ec);
  BOOST_TEST((ec == coop::error::scheduler_stopped), ec.message());
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(handles_and_work)

BOOST_AUTO_TEST_CASE(an_empty_std_function_is_rejected_and_changes_nothing) {
  {
    manual_context ctx;
    test_cooperator c(ctx);
    std::function<coop::step()> empty;
    BOOST_CHECK_THROW(c.cooperate(empty), std::invalid_argument);
    BOOST_CHECK_THROW(c.cooperate(std::function<coop::step()>{}), std::invalid_argument);
    BOOST_TEST(ctx.queued() == 0u);   // no tick scheduled for it
    BOOST_TEST(drain(ctx) == 0u);
    BOOST_TEST(ctx.outstanding_work() == 0u);
    BOOST_TEST(c.running());
  }
  {
    manual_context ctx;
    test_cooperator c(ctx, {.termination = after_units(1)});
    log_type log;
    auto a = c.cooperate(recorder(log, "A", 2));
    BOOST_TEST_REQUIRE(ctx.poll_one() == 1u);
    BOOST_CHECK_THROW(c.cooperate(std::function<coop::step()>{}), std::invalid_argument);
    std::function<coop::step()> b_work = recorder(log, "B", 2);
    auto b = c.cooperate(b_work);   // a non-empty std::function is fine
    drain(ctx);
    BOOST_TEST(in_promised_order(log) == in_promised_order(expect("A1 B1 A2 B2")), boost::test_tools::per_element());
    BOOST_TEST(ctx.queued() == 0u);
    BOOST_TEST(ctx.outstanding_work() == 0u);
    BOOST_TEST(c.running());
  }
  {
    // Not started: rejected all the same, and start() then runs only the real tasks.
    manual_context ctx;
    test_cooperator c(ctx, {.termination = {}, .started = false});
    log_type log;
    BOOST_CHECK_THROW(c.cooperate(std::function<coop::step()>{}), std::invalid_argument);
    c.cooperate(recorder(log, "A", 1));
    c.start();
    drain(ctx);
    BOOST_TEST(log == expect("A1"), boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_CASE(copies_of_a_handle_refer_to_the_same_task) {
  static_assert(std::is_copy_constructible_v<coop::cooperative_task>);
  static_assert(std::is_copy_assignable_v<coop::cooperative_task>);
  manual_context ctx;
  test_cooperator c(ctx, {.termination = after_units(1)});
  log_type log;
  auto t = c.cooperate(recorder(log, "A", forever));
  const auto copy = t;
  auto t2 = copy;
  auto other = c.cooperate(recorder(log, "B", 1));
  auto t3 = other;
  t3 = t;   // copy-assigned: now the same task as t

  t2.pause();   // pauses t
  drain(ctx);
  BOOST_TEST(log == expect("B1"), boost::test_tools::per_element());
  t.resume();   // the pause count is shared
  check_throws_exactly<coop::not_paused>([&] { t2.resume(); });
  BOOST_TEST_REQUIRE(ctx.poll_one() == 1u);
  BOOST_TEST(log == expect("B1 A1"), boost::test_tools::per_element());

  t.pause();
  t3.pause();
  t2.resume();
  drain(ctx);
  BOOST_TEST(log == expect("B1 A1"), boost::test_tools::per_element());   // one pause left
  t.resume();
  BOOST_TEST_REQUIRE(ctx.poll_one() == 1u);
  BOOST_TEST(log == expect("B1 A1 A2"), boost::test_tools::per_element());

  auto via_t = watch(t);
  auto via_t3 = watch(t3);
  t2.stop();
  check_throws_exactly<coop::task_stopped>([&] { t.pause(); });
  check_throws_exactly<coop::task_stopped>([&] { t3.stop(); });
  drain(ctx);
  BOOST_TEST(via_t->calls == 1);
  BOOST_TEST(via_t3->calls == 1);
  BOOST_TEST(holds_exactly<coop::task_stopped>(via_t->error), type_of(via_t->error));
  BOOST_TEST(holds_exactly<coop::task_stopped>(via_t3->error), type_of(via_t3->error));
  BOOST_TEST(log == expect("B1 A1 A2"), boost::test_tools::per_element());
  // The other task's handle was overwritten, not the task: B finished normally.
  check_throws_exactly<coop::task_done>([&] { other.pause(); });
}

BOOST_AUTO_TEST_SUITE_END()
