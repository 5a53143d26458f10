// SPDX-License-Identifier: BSL-1.0
// cooperator::coiterate = cooperate + when_done, with every kind of token, lazy launch,
// and per-operation cancellation that stops the task (terminal, partial) or is ignored
// (total).
#define BOOST_TEST_MODULE coiterate
#include <boost/test/unit_test.hpp>

#include <coop/coop.hpp>

#include "support/exception_kind.hpp"
#include "support/io_context_drive.hpp"
#include "support/once_handler.hpp"
#include "support/one_unit_per_tick.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/promise.hpp>
#include <boost/asio/experimental/use_promise.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/core/demangle.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <utility>

namespace asio = boost::asio;

namespace {

using coop_test::calls_on_moved_from;
using coop_test::once_handler;
using coop_test::one_unit_per_tick;
using coop_test::record;

// "null", the exact dynamic type of a std::exception, or "non-std exception".
using coop_test::kind;

struct unit_error : std::runtime_error {
  explicit unit_error(int i) : std::runtime_error("unit_error"), id(i) {}
  int id;
};

int unit_error_id(const std::exception_ptr& ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const unit_error& e) {
    return e.id;
  } catch (...) {
    return -1;
  }
}

// Work that completes with its n-th unit, counting units into `count`.
auto counted(int& count, int n) {
  return [&count, n] { return ++count < n ? coop::step::more : coop::step::done; };
}

// Work that never completes by itself; appends `name` to `trace` at every unit if given.
auto forever(int& count, std::string* trace = nullptr, char name = '?') {
  return [&count, trace, name] {
    ++count;
    if (trace) *trace += name;
    return coop::step::more;
  };
}

using coop_test::drain;       // support/io_context_drive.hpp
using coop_test::poll_until;

}  // namespace

// ---------------------------------------------------------------------------------------
// Tokens

BOOST_AUTO_TEST_CASE(callback_done) {
  asio::io_context io;
  coop::cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto rec = std::make_shared<record>();
  coop.coiterate(counted(units, 3), once_handler(rec));
  BOOST_TEST(units == 0);          // nothing runs inside coiterate
  BOOST_TEST(rec->calls == 0);
  drain(io);
  BOOST_TEST(units == 3);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == "null");
  BOOST_TEST(io.stopped());
}

BOOST_AUTO_TEST_CASE(callback_failed) {
  asio::io_context io;
  coop::cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto rec = std::make_shared<record>();
  coop.coiterate(
      [&]() -> coop::step {
        if (++units == 2) throw unit_error(9);
        return coop::step::more;
      },
      once_handler(rec));
  drain(io);
  BOOST_TEST(units == 2);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == kind<unit_error>());
  BOOST_TEST(unit_error_id(rec->result) == 9);
}

BOOST_AUTO_TEST_CASE(coiterate_joins_the_round_robin_like_cooperate) {
  asio::io_context io;
  coop::cooperator coop(io, one_unit_per_tick());
  std::string trace;
  int a_units = 0, b_units = 0;
  auto a = coop.cooperate(forever(a_units, &trace, 'a'));
  auto rec = std::make_shared<record>();
  coop.coiterate(
      [&] {
        trace += 'b';
        return ++b_units < 3 ? coop::step::more : coop::step::done;
      },
      once_handler(rec));
  BOOST_TEST(poll_until(io, [&] { return rec->calls == 1; }));
  a.stop();
  drain(io);
  BOOST_TEST(trace.substr(0, 6) == "ababab");
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == "null");
}

BOOST_AUTO_TEST_CASE(use_future_done_and_failed) {
  asio::io_context io;
  coop::cooperator coop(io, one_unit_per_tick());
  int units = 0;
  std::future<void> good = coop.coiterate(counted(units, 4), asio::use_future);
  std::future<void> bad = coop.coiterate([]() -> coop::step { throw unit_error(5); }, asio::use_future);
  BOOST_TEST((good.wait_for(std::chrono::seconds(0)) == std::future_status::timeout));
  drain(io);
  // use_future's handler runs on the system executor, not on io: wait for it there.
  BOOST_REQUIRE((good.wait_for(std::chrono::seconds(60)) == std::future_status::ready));
  BOOST_REQUIRE((bad.wait_for(std::chrono::seconds(60)) == std::future_status::ready));
  BOOST_CHECK_NO_THROW(good.get());
  BOOST_TEST(units == 4);
  int id = -1;
  try {
    bad.get();
  } catch (const unit_error& e) {
    id = e.id;
  } catch (...) {
  }
  BOOST_TEST(id == 5);
}

BOOST_AUTO_TEST_CASE(deferred_does_not_start_the_task_until_launched) {
  asio::io_context io;
  coop::cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto op = coop.coiterate(counted(units, 3), asio::deferred);
  drain(io);
  BOOST_TEST(units == 0);
  BOOST_TEST(io.stopped());      // no task, no tick, no wait: nothing queued or held

  auto rec = std::make_shared<record>();
  std::move(op)(once_handler(rec));
  BOOST_TEST(units == 0);        // launching does not run a unit inline either
  BOOST_TEST(rec->calls == 0);
  drain(io);
  BOOST_TEST(units == 3);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == "null");
}

BOOST_AUTO_TEST_CASE(deferred_never_launched_never_runs) {
  asio::io_context io;
  coop::cooperator coop(io, one_unit_per_tick());
  int units = 0;
  {
    auto op = coop.coiterate(counted(units, 3), asio::deferred);
    (void)op;
  }
  drain(io);
  BOOST_TEST(units == 0);
  BOOST_TEST(io.stopped());
}

BOOST_AUTO_TEST_CASE(deferred_launched_after_cooperator_stop_is_scheduler_stopped) {
  asio::io_context io;
  coop::cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto op = coop.coiterate(counted(units, 3), asio::deferred);
  coop.stop();
  auto rec = std::make_shared<record>();
  std::move(op)(once_handler(rec));
  BOOST_TEST(rec->calls == 0);
  drain(io);
  BOOST_TEST(units == 0);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == kind<coop::scheduler_stopped>());
}

BOOST_AUTO_TEST_CASE(use_promise_done) {
  asio::io_context io;
  coop::cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto promise = coop.coiterate(counted(units, 3), asio::experimental::use_promise);
  BOOST_TEST(!promise.completed());
  // A promise whose handler was lost never completes; waiting on it would abort.
  BOOST_REQUIRE(poll_until(io, [&] { return promise.completed(); }));
  BOOST_TEST(units == 3);
  auto rec = std::make_shared<record>();
  promise(asio::bind_executor(io, once_handler(rec)));
  drain(io);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == "null");
}

BOOST_AUTO_TEST_CASE(use_awaitable_done_and_failed) {
  asio::io_context io;
  coop::cooperator coop(io, one_unit_per_tick());
  int units = 0;
  std::string good = "not run", bad = "not run";
  int spawned = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        try {
          co_await coop.coiterate(counted(units, 3), asio::use_awaitable);
          good = "done";
        } catch (...) {
          good = kind(std::current_exception());
        }
        try {
          co_await coop.coiterate([]() -> coop::step { throw unit_error(2); }, asio::use_awaitable);
          bad = "done";
        } catch (const unit_error& e) {
          bad = "unit_error " + std::to_string(e.id);
        } catch (...) {
          bad = kind(std::current_exception());
        }
      },
      [&](std::exception_ptr e) {
        BOOST_TEST(kind(e) == "null");
        ++spawned;
      });
  drain(io);
  BOOST_TEST(units == 3);
  BOOST_TEST(good == "done");
  BOOST_TEST(bad == "unit_error 2");
  BOOST_TEST(spawned == 1);
}

BOOST_AUTO_TEST_CASE(use_awaitable_cancelled_coroutine_stops_the_task) {
  // Terminal cancellation of the spawned coroutine reaches the awaited coiterate, which
  // stops its task.
  asio::io_context io;
  coop::cooperator coop(io, one_unit_per_tick());
  int units = 0, units_at_outcome = -1;
  std::string outcome = "not run";
  asio::cancellation_signal signal;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        try {
          co_await coop.coiterate(forever(units), asio::use_awaitable);
          outcome = "done";
        } catch (...) {
          outcome = kind(std::current_exception());
        }
        units_at_outcome = units;
      },
      asio::bind_cancellation_slot(signal.slot(), [](std::exception_ptr) {}));
  BOOST_TEST(poll_until(io, [&] { return units >= 2; }));
  // co_spawn forwards the cancellation through a post to the coroutine's executor, so
  // one more tick may run before it reaches coiterate.
  signal.emit(asio::cancellation_type::terminal);
  const int units_at_cancel = units;
  drain(io);
  BOOST_TEST(units <= units_at_cancel + 1);
  BOOST_TEST(units == units_at_outcome);
  BOOST_TEST(outcome == kind<coop::task_stopped>());
  BOOST_TEST(io.stopped());
}

// ---------------------------------------------------------------------------------------
// Per-operation cancellation

namespace {

void check_cancellation_stops_the_task(asio::cancellation_type type) {
  asio::io_context io;
  coop::cooperator coop(io, one_unit_per_tick());
  int units = 0, other_units = 0;
  auto other = coop.cooperate(forever(other_units));
  asio::cancellation_signal signal;
  auto rec = std::make_shared<record>();
  coop.coiterate(forever(units), asio::bind_cancellation_slot(signal.slot(), once_handler(rec)));
  BOOST_TEST(poll_until(io, [&] { return units == 2; }));
  signal.emit(type);
  BOOST_TEST(rec->calls == 0);         // not completed inside emit()
  const int units_at_cancel = units;
  BOOST_TEST(poll_until(io, [&] { return rec->calls == 1 && other_units >= units_at_cancel + 3; }));
  BOOST_TEST(units == units_at_cancel);   // no unit after the cancellation
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == kind<coop::task_stopped>());
  other.stop();
  drain(io);
  BOOST_TEST(units == units_at_cancel);
  BOOST_TEST(io.stopped());
  CHECK_ONCE(rec);
}

}  // namespace

BOOST_AUTO_TEST_CASE(terminal_cancellation_stops_the_task) {
  check_cancellation_stops_the_task(asio::cancellation_type::terminal);
}

BOOST_AUTO_TEST_CASE(partial_cancellation_stops_the_task) {
  check_cancellation_stops_the_task(asio::cancellation_type::partial);
}

BOOST_AUTO_TEST_CASE(total_cancellation_is_ignored) {
  asio::io_context io;
  coop::cooperator coop(io, one_unit_per_tick());
  int units = 0;
  asio::cancellation_signal signal;
  auto rec = std::make_shared<record>();
  coop.coiterate(counted(units, 6), asio::bind_cancellation_slot(signal.slot(), once_handler(rec)));
  BOOST_TEST(poll_until(io, [&] { return units == 2; }));
  signal.emit(asio::cancellation_type::total);
  drain(io);
  BOOST_TEST(units == 6);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == "null");
}

BOOST_AUTO_TEST_CASE(total_then_terminal_cancellation_stops_the_task) {
  // Ignoring a total cancellation leaves the slot armed for a later terminal one.
  asio::io_context io;
  coop::cooperator coop(io, one_unit_per_tick());
  int units = 0;
  asio::cancellation_signal signal;
  auto rec = std::make_shared<record>();
  coop.coiterate(forever(units), asio::bind_cancellation_slot(signal.slot(), once_handler(rec)));
  BOOST_TEST(poll_until(io, [&] { return units == 2; }));
  signal.emit(asio::cancellation_type::total);
  BOOST_TEST(poll_until(io, [&] { return units == 4; }));
  BOOST_TEST(rec->calls == 0);
  signal.emit(asio::cancellation_type::terminal);
  drain(io);
  BOOST_TEST(units == 4);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == kind<coop::task_stopped>());
}

BOOST_AUTO_TEST_CASE(cancellation_of_a_deferred_coiterate_bound_at_launch) {
  asio::io_context io;
  coop::cooperator coop(io, one_unit_per_tick());
  int units = 0;
  asio::cancellation_signal signal;
  auto op = coop.coiterate(forever(units), asio::deferred);
  auto rec = std::make_shared<record>();
  std::move(op)(asio::bind_cancellation_slot(signal.slot(), once_handler(rec)));
  BOOST_TEST(poll_until(io, [&] { return units == 1; }));
  signal.emit(asio::cancellation_type::terminal);
  drain(io);
  BOOST_TEST(units == 1);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == kind<coop::task_stopped>());
}

BOOST_AUTO_TEST_CASE(cancellation_after_completion_is_harmless) {
  asio::io_context io;
  coop::cooperator coop(io, one_unit_per_tick());
  int units = 0;
  asio::cancellation_signal signal;
  auto rec = std::make_shared<record>();
  coop.coiterate(counted(units, 2), asio::bind_cancellation_slot(signal.slot(), once_handler(rec)));
  drain(io);
  CHECK_ONCE(rec);
  signal.emit(asio::cancellation_type::terminal);
  signal.emit(asio::cancellation_type::partial);
  drain(io);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == "null");
}

BOOST_AUTO_TEST_CASE(cancellation_after_cooperator_stop_is_harmless) {
  asio::io_context io;
  coop::cooperator coop(io, one_unit_per_tick());
  int units = 0;
  asio::cancellation_signal signal;
  auto rec = std::make_shared<record>();
  coop.coiterate(forever(units), asio::bind_cancellation_slot(signal.slot(), once_handler(rec)));
  BOOST_TEST(poll_until(io, [&] { return units == 1; }));
  coop.stop();
  signal.emit(asio::cancellation_type::terminal);
  drain(io);
  BOOST_TEST(units == 1);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == kind<coop::scheduler_stopped>());
}
