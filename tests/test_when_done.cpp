// SPDX-License-Identifier: BSL-1.0
// cooperative_task::when_done: completion with every kind of token, the result it carries,
// where and when its handler runs, outstanding work, and per-operation cancellation.
#define BOOST_TEST_MODULE when_done
#include <boost/test/unit_test.hpp>

#include <coop/coop.hpp>

#include "support/exception_kind.hpp"
#include "support/io_context_drive.hpp"
#include "support/manual_executor.hpp"
#include "support/once_handler.hpp"
#include "support/one_unit_per_tick.hpp"
#include "support/scheduler_under_test.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/promise.hpp>
#include <boost/asio/experimental/use_promise.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/core/demangle.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

namespace asio = boost::asio;
// A cooperator, or a pool of one member built as one (the suite's _on_pool build).
using test_cooperator = coop_test::scheduler_under_test;

namespace {

using coop_test::calls_on_moved_from;
using coop_test::once_handler;
using coop_test::one_unit_per_tick;
using coop_test::record;

// ---------------------------------------------------------------------------------------
// Helpers

// What an exception_ptr holds, as a readable name: "null", the exact dynamic type of a
// std::exception, or "non-std exception". Comparing names gives exact-type assertions
// with useful failure messages.
using coop_test::kind;

using coop_test::is_operation_aborted;

// The exception a failing unit throws; `id` tells one throw from another.
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

// Work that never completes by itself.
auto forever(int& count) {
  return [&count] {
    ++count;
    return coop::step::more;
  };
}

using coop_test::drain;       // support/io_context_drive.hpp
using coop_test::poll_until;
template <class Predicate> bool poll_until(coop_test::manual_context& ctx, Predicate done) {
  for (int i = 0; i < 100000 && !done(); ++i)
    if (ctx.poll_one() == 0) break;
  return done();
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Tokens

BOOST_AUTO_TEST_CASE(callback_completes_with_null_when_work_is_done) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto task = coop.cooperate(counted(units, 3));
  auto rec = std::make_shared<record>();
  task.when_done(once_handler(rec));
  BOOST_TEST(rec->calls == 0);
  drain(io);
  BOOST_TEST(units == 3);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == "null");
}

BOOST_AUTO_TEST_CASE(use_future_done_and_failed) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto good = coop.cooperate(counted(units, 2));
  auto bad = coop.cooperate([] () -> coop::step { throw unit_error(7); });
  std::future<void> good_future = good.when_done(asio::use_future);
  std::future<void> bad_future = bad.when_done(asio::use_future);
  BOOST_TEST((good_future.wait_for(std::chrono::seconds(0)) == std::future_status::timeout));
  drain(io);
  // use_future's handler runs on the system executor, not on io: wait for it there.
  BOOST_REQUIRE((good_future.wait_for(std::chrono::seconds(60)) == std::future_status::ready));
  BOOST_REQUIRE((bad_future.wait_for(std::chrono::seconds(60)) == std::future_status::ready));
  BOOST_CHECK_NO_THROW(good_future.get());
  int id = -1;
  try {
    bad_future.get();
  } catch (const unit_error& e) {
    id = e.id;
  } catch (...) {
  }
  BOOST_TEST(id == 7);
}

BOOST_AUTO_TEST_CASE(use_awaitable_in_a_coroutine) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto good = coop.cooperate(counted(units, 4));
  auto stopped = coop.cooperate([] { return coop::step::more; });
  std::string good_result = "not run", stopped_result = "not run";
  int spawned_done = 0;

  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        try {
          co_await good.when_done(asio::use_awaitable);
          good_result = "done";
        } catch (...) {
          good_result = kind(std::current_exception());
        }
        try {
          co_await stopped.when_done(asio::use_awaitable);
          stopped_result = "done";
        } catch (...) {
          stopped_result = kind(std::current_exception());
        }
      },
      [&](std::exception_ptr e) {
        BOOST_TEST(kind(e) == "null");
        ++spawned_done;
      });
  BOOST_TEST(poll_until(io, [&] { return good_result != "not run"; }));
  BOOST_TEST(good_result == "done");
  BOOST_TEST(units == 4);
  BOOST_TEST(stopped_result == "not run");
  stopped.stop();
  drain(io);
  BOOST_TEST(stopped_result == kind<coop::task_stopped>());
  BOOST_TEST(spawned_done == 1);
}

BOOST_AUTO_TEST_CASE(deferred_is_lazy_and_completes_when_launched) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto task = coop.cooperate(counted(units, 3));
  task.pause();
  drain(io);
  BOOST_TEST(io.stopped());   // paused, no waiter: nothing holds the io_context

  auto op = task.when_done(asio::deferred);
  drain(io);
  BOOST_TEST(io.stopped());   // not launched: no wait registered, no work held

  auto rec = std::make_shared<record>();
  std::move(op)(once_handler(rec));
  drain(io);
  BOOST_TEST(!io.stopped());  // launched: the pending wait holds work
  BOOST_TEST(rec->calls == 0);

  task.resume();
  drain(io);
  BOOST_TEST(units == 3);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == "null");
  BOOST_TEST(io.stopped());
}

BOOST_AUTO_TEST_CASE(deferred_launched_after_completion_gets_the_stored_result) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  auto task = coop.cooperate([] { return coop::step::more; });
  auto op = task.when_done(asio::deferred);
  task.stop();
  drain(io);
  auto rec = std::make_shared<record>();
  std::move(op)(once_handler(rec));
  BOOST_TEST(rec->calls == 0);   // posted, not inline
  drain(io);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == kind<coop::task_stopped>());
}

BOOST_AUTO_TEST_CASE(detached_completes_and_releases_work) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int good_units = 0;
  auto good = coop.cooperate(counted(good_units, 3));
  auto bad = coop.cooperate([] () -> coop::step { throw unit_error(1); });
  auto paused = coop.cooperate([] { return coop::step::more; });
  paused.pause();
  good.when_done(asio::detached);
  bad.when_done(asio::detached);
  paused.when_done(asio::detached);
  BOOST_CHECK_NO_THROW(drain(io));   // the failure does not escape run()/poll()
  BOOST_TEST(good_units == 3);
  BOOST_TEST(!io.stopped());         // the detached wait on the paused task holds work
  paused.stop();
  drain(io);
  BOOST_TEST(io.stopped());
  BOOST_CHECK_THROW(good.pause(), coop::task_done);
  BOOST_CHECK_THROW(bad.pause(), coop::task_failed);
}

BOOST_AUTO_TEST_CASE(use_promise_done_and_stopped) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto good = coop.cooperate(counted(units, 2));
  auto other = coop.cooperate([] { return coop::step::more; });
  auto good_promise = good.when_done(asio::experimental::use_promise);
  auto other_promise = other.when_done(asio::experimental::use_promise);
  BOOST_TEST(!good_promise.completed());
  // A promise whose handler was lost never completes; waiting on it would abort.
  BOOST_REQUIRE(poll_until(io, [&] { return good_promise.completed(); }));
  BOOST_TEST(units == 2);
  BOOST_TEST(!other_promise.completed());
  other.stop();
  BOOST_REQUIRE(poll_until(io, [&] { return other_promise.completed(); }));

  auto good_rec = std::make_shared<record>();
  auto other_rec = std::make_shared<record>();
  good_promise(asio::bind_executor(io, once_handler(good_rec)));
  other_promise(asio::bind_executor(io, once_handler(other_rec)));
  drain(io);
  CHECK_ONCE(good_rec);
  CHECK_ONCE(other_rec);
  BOOST_TEST(kind(good_rec->result) == "null");
  BOOST_TEST(kind(other_rec->result) == kind<coop::task_stopped>());
}

// ---------------------------------------------------------------------------------------
// The result

BOOST_AUTO_TEST_CASE(result_is_null_on_done) {
  coop_test::manual_context ctx;
  test_cooperator coop(ctx.get_executor(), one_unit_per_tick());
  int units = 0;
  auto task = coop.cooperate(counted(units, 1));
  auto rec = std::make_shared<record>();
  task.when_done(once_handler(rec));
  ctx.poll();
  BOOST_TEST(units == 1);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == "null");
}

BOOST_AUTO_TEST_CASE(result_is_the_units_own_exception) {
  coop_test::manual_context ctx;
  test_cooperator coop(ctx.get_executor(), one_unit_per_tick());
  // The unit rethrows this very exception object; when_done must hand back the same one,
  // not a copy, a slice or a wrapper (e.g. not task_failed).
  const std::exception_ptr thrown = std::make_exception_ptr(unit_error(42));
  int units = 0;
  auto task = coop.cooperate([&]() -> coop::step {
    if (++units == 2) std::rethrow_exception(thrown);
    return coop::step::more;
  });
  auto rec = std::make_shared<record>();
  task.when_done(once_handler(rec));
  ctx.poll();
  BOOST_TEST(units == 2);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == kind<unit_error>());
  BOOST_TEST(unit_error_id(rec->result) == 42);
  BOOST_TEST((rec->result == thrown));
  BOOST_CHECK_THROW(task.pause(), coop::task_failed);
}

BOOST_AUTO_TEST_CASE(result_is_task_stopped_on_stop) {
  coop_test::manual_context ctx;
  test_cooperator coop(ctx.get_executor(), one_unit_per_tick());
  int units = 0;
  auto task = coop.cooperate(forever(units));
  auto rec = std::make_shared<record>();
  task.when_done(once_handler(rec));
  ctx.poll_one();
  task.stop();
  ctx.poll();
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == kind<coop::task_stopped>());
}

BOOST_AUTO_TEST_CASE(result_is_scheduler_stopped_on_cooperator_stop) {
  coop_test::manual_context ctx;
  test_cooperator coop(ctx.get_executor(), one_unit_per_tick());
  int running_units = 0, paused_units = 0;
  auto running = coop.cooperate(forever(running_units));
  auto paused = coop.cooperate(forever(paused_units));
  paused.pause();
  auto running_rec = std::make_shared<record>();
  auto paused_rec = std::make_shared<record>();
  running.when_done(once_handler(running_rec));
  paused.when_done(once_handler(paused_rec));
  ctx.poll_one();
  coop.stop();
  BOOST_TEST(!coop.running());
  const int units_at_stop = running_units;
  ctx.poll();
  BOOST_TEST(running_units == units_at_stop);
  BOOST_TEST(paused_units == 0);
  CHECK_ONCE(running_rec);
  CHECK_ONCE(paused_rec);
  BOOST_TEST(kind(running_rec->result) == kind<coop::scheduler_stopped>());
  BOOST_TEST(kind(paused_rec->result) == kind<coop::scheduler_stopped>());
}

// ---------------------------------------------------------------------------------------
// Several waiters, independent calls

BOOST_AUTO_TEST_CASE(several_waiters_each_complete_exactly_once) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto task = coop.cooperate(counted(units, 5));
  std::shared_ptr<record> recs[4];
  for (auto& r : recs) {
    r = std::make_shared<record>();
    task.when_done(once_handler(r));
  }
  drain(io);
  BOOST_TEST(units == 5);
  for (auto& r : recs) {
    CHECK_ONCE(r);
    BOOST_TEST(kind(r->result) == "null");
  }
}

BOOST_AUTO_TEST_CASE(every_call_is_a_new_operation) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto task = coop.cooperate(counted(units, 3));
  auto before = std::make_shared<record>();
  task.when_done(once_handler(before));
  BOOST_TEST(poll_until(io, [&] { return units == 1; }));
  auto during = std::make_shared<record>();
  task.when_done(once_handler(during));
  drain(io);
  CHECK_ONCE(before);
  CHECK_ONCE(during);
  // Calls after completion are new operations: they do not re-run the earlier ones.
  auto after1 = std::make_shared<record>();
  auto after2 = std::make_shared<record>();
  task.when_done(once_handler(after1));
  drain(io);
  task.when_done(once_handler(after2));
  drain(io);
  CHECK_ONCE(before);
  CHECK_ONCE(during);
  CHECK_ONCE(after1);
  CHECK_ONCE(after2);
  for (auto* r : {&before, &during, &after1, &after2}) BOOST_TEST(kind((*r)->result) == "null");
  // A copy of the handle sees the same task.
  auto copy = task;
  auto via_copy = std::make_shared<record>();
  copy.when_done(once_handler(via_copy));
  drain(io);
  CHECK_ONCE(via_copy);
  BOOST_TEST(kind(via_copy->result) == "null");
}

// ---------------------------------------------------------------------------------------
// When and where handlers run

BOOST_AUTO_TEST_CASE(when_done_on_a_finished_task_is_posted_not_inline) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto done_task = coop.cooperate(counted(units, 1));
  auto failed_task = coop.cooperate([]() -> coop::step { throw unit_error(3); });
  auto stopped_task = coop.cooperate(forever(units));
  stopped_task.stop();
  drain(io);

  auto done_rec = std::make_shared<record>();
  auto failed_rec = std::make_shared<record>();
  auto stopped_rec = std::make_shared<record>();
  done_task.when_done(once_handler(done_rec));
  BOOST_TEST(done_rec->calls == 0);
  failed_task.when_done(once_handler(failed_rec));
  BOOST_TEST(failed_rec->calls == 0);
  stopped_task.when_done(once_handler(stopped_rec));
  BOOST_TEST(stopped_rec->calls == 0);
  drain(io);
  CHECK_ONCE(done_rec);
  CHECK_ONCE(failed_rec);
  CHECK_ONCE(stopped_rec);
  BOOST_TEST(kind(done_rec->result) == "null");
  BOOST_TEST(unit_error_id(failed_rec->result) == 3);
  BOOST_TEST(kind(stopped_rec->result) == kind<coop::task_stopped>());
}

BOOST_AUTO_TEST_CASE(when_done_on_a_finished_task_from_inside_the_strand_is_posted) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto finished = coop.cooperate(counted(units, 1));
  drain(io);
  auto rec = std::make_shared<record>();
  int calls_seen_inside = -1;
  // From a unit of another task, on the cooperator's strand: dispatch would run inline.
  auto other = coop.cooperate([&] {
    finished.when_done(once_handler(rec));
    calls_seen_inside = rec->calls;
    return coop::step::done;
  });
  drain(io);
  BOOST_TEST(calls_seen_inside == 0);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == "null");
}

BOOST_AUTO_TEST_CASE(stop_from_outside_does_not_run_handlers_inside) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto task = coop.cooperate(forever(units));
  auto rec = std::make_shared<record>();
  task.when_done(once_handler(rec));
  BOOST_TEST(poll_until(io, [&] { return units == 1; }));
  task.stop();
  BOOST_TEST(rec->calls == 0);
  drain(io);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == kind<coop::task_stopped>());
}

// A completion handler's exception escapes run(), as any Asio handler's does, also when the
// completion enters the cooperator's strand from outside it (here: stop() from the test's
// thread); the cooperator is not disturbed. On an io_context the exception is caught and
// rethrown by run(); the manual executor lets it through the dispatch into the strand.
template <class Context, class PollOne>
void handler_exception_escapes(Context& ctx, PollOne poll_one) {
  test_cooperator coop(ctx, one_unit_per_tick());
  int units = 0, other_units = 0;
  auto task = coop.cooperate(forever(units));
  auto other = coop.cooperate(counted(other_units, 3));
  int calls = 0;
  task.when_done([&calls](std::exception_ptr) {
    ++calls;
    throw std::logic_error("from the handler");
  });
  BOOST_TEST(poll_until(ctx, [&] { return units == 1; }));
  task.stop();
  int escaped = 0;
  for (int i = 0; i < 1000; ++i) {
    try {
      if (poll_one() == 0) break;
    } catch (const std::logic_error&) {
      ++escaped;
    }
  }
  BOOST_TEST(escaped == 1);
  BOOST_TEST(calls == 1);
  BOOST_TEST(units == 1);
  BOOST_TEST(other_units == 3);
  auto rec = std::make_shared<record>();
  other.when_done(once_handler(rec));
  for (int i = 0; i < 1000 && poll_one(); ++i) {
  }
  CHECK_ONCE(rec);
}

BOOST_AUTO_TEST_CASE(handler_exception_escapes_run_and_the_cooperator_goes_on) {
  {
    asio::io_context io;
    handler_exception_escapes(io, [&io] {
      io.restart();
      return io.poll_one();
    });
  }
  coop_test::manual_context ctx;
  handler_exception_escapes(ctx, [&ctx] { return ctx.poll_one(); });
}

// A tick's completions run after it, one after another, in the order the tasks finished;
// a handler that throws leaves run() as from any handler, and the others still run.
BOOST_AUTO_TEST_CASE(a_ticks_completions_run_in_order_and_outlive_a_throwing_handler) {
  asio::io_context io;
  test_cooperator coop(io);
  std::vector<int> order;
  std::vector<coop::cooperative_task> tasks;
  for (int i = 0; i < 4; ++i) {
    tasks.push_back(coop.cooperate([] { return coop::step::done; }));
    tasks.back().when_done([&order, i](std::exception_ptr ep) {
      BOOST_TEST(!ep);
      order.push_back(i);
      if (i == 1) throw std::runtime_error("from a handler");
    });
  }
  int escaped = 0;
  for (int attempt = 0; attempt < 10; ++attempt) {
    try {
      io.restart();
      io.run();
      break;
    } catch (const std::runtime_error&) {
      ++escaped;
    }
  }
  BOOST_TEST(escaped == 1);
  if (coop_test::one_order_across_tasks()) {
    BOOST_TEST(order == (std::vector<int>{0, 1, 2, 3}));
  } else {
    std::sort(order.begin(), order.end());  // a pool orders tasks only within a member
    BOOST_TEST(order == (std::vector<int>{0, 1, 2, 3}));
  }
}

// Completions still queued on the strand when the execution context goes are destroyed
// with it, never run, and nothing leaks.
BOOST_AUTO_TEST_CASE(completions_queued_when_the_context_goes_are_destroyed_unrun) {
  auto first = std::make_shared<record>();
  auto second = std::make_shared<record>();
  {
    asio::io_context io;
    test_cooperator coop(io);
    int units = 0;
    auto a = coop.cooperate([&units] {
      ++units;
      return coop::step::done;
    });
    auto b = coop.cooperate([&units] {
      ++units;
      return coop::step::done;
    });
    a.when_done(once_handler(first));
    b.when_done(once_handler(second));
    for (int i = 0; i < 1000 && units < 2; ++i) io.poll_one();
    BOOST_TEST(units == 2);
  }
  // The last task's completion was queued when the context went; the first's, in a build
  // that runs one unit per tick, may have run before.
  BOOST_TEST(first->calls + first->dropped == 1);
  BOOST_TEST(second->calls + second->dropped == 1);
  BOOST_TEST(first->dropped + second->dropped >= 1);
  BOOST_TEST(first.use_count() == 1);
  BOOST_TEST(second.use_count() == 1);
}

BOOST_AUTO_TEST_CASE(stop_from_inside_a_unit_does_not_run_handlers_inside) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  std::optional<coop::cooperative_task> self_holder;
  auto self_rec = std::make_shared<record>();
  auto victim_rec = std::make_shared<record>();
  int victim_units = 0;
  int seen_self = -1, seen_victim = -1;
  bool stop_threw = false;
  auto victim = coop.cooperate(forever(victim_units));
  victim.pause();
  auto self = coop.cooperate([&] {
    victim.stop();            // another task, from the strand
    self_holder->stop();      // this very task, from its own unit
    try {
      self_holder->stop();    // already finished: throws task_stopped
    } catch (const coop::task_stopped&) {
      stop_threw = true;
    }
    seen_victim = victim_rec->calls;
    seen_self = self_rec->calls;
    return coop::step::done;  // the first way of finishing wins: stays task_stopped
  });
  self_holder.emplace(self);
  self.when_done(once_handler(self_rec));
  victim.when_done(once_handler(victim_rec));
  drain(io);
  BOOST_TEST(seen_self == 0);
  BOOST_TEST(seen_victim == 0);
  BOOST_TEST(stop_threw);
  BOOST_TEST(victim_units == 0);
  CHECK_ONCE(self_rec);
  CHECK_ONCE(victim_rec);
  BOOST_TEST(kind(self_rec->result) == kind<coop::task_stopped>());
  BOOST_TEST(kind(victim_rec->result) == kind<coop::task_stopped>());
}

BOOST_AUTO_TEST_CASE(cooperator_stop_does_not_run_handlers_inside) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto a = coop.cooperate(forever(units));
  auto b = coop.cooperate(forever(units));
  auto ra = std::make_shared<record>();
  auto rb = std::make_shared<record>();
  a.when_done(once_handler(ra));
  b.when_done(once_handler(rb));
  BOOST_TEST(poll_until(io, [&] { return units >= 2; }));
  coop.stop();
  BOOST_TEST(ra->calls == 0);
  BOOST_TEST(rb->calls == 0);
  drain(io);
  CHECK_ONCE(ra);
  CHECK_ONCE(rb);
  BOOST_TEST(kind(ra->result) == kind<coop::scheduler_stopped>());
  BOOST_TEST(kind(rb->result) == kind<coop::scheduler_stopped>());
}

BOOST_AUTO_TEST_CASE(handler_without_executor_runs_on_the_cooperators_strand) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto task = coop.cooperate(counted(units, 2));
  auto rec = std::make_shared<record>();
  int on_strand = 0, called = 0;
  task.when_done(once_handler(rec, [&](std::exception_ptr) {
    ++called;
    on_strand += coop.get_executor().running_in_this_thread() ? 1 : 0;
  }));
  drain(io);
  // And for a task already finished (the posted path).
  auto late = std::make_shared<record>();
  task.when_done(once_handler(late, [&](std::exception_ptr) {
    ++called;
    on_strand += coop.get_executor().running_in_this_thread() ? 1 : 0;
  }));
  drain(io);
  CHECK_ONCE(rec);
  CHECK_ONCE(late);
  BOOST_TEST(called == 2);
  BOOST_TEST(on_strand == 2);
}

BOOST_AUTO_TEST_CASE(handler_bound_to_another_strand_runs_there) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  auto other = asio::make_strand(io);
  int units = 0;
  auto task = coop.cooperate(counted(units, 2));
  auto rec = std::make_shared<record>();
  bool on_other = false, on_coop = true;
  task.when_done(asio::bind_executor(other, once_handler(rec, [&](std::exception_ptr) {
    on_other = other.running_in_this_thread();
    on_coop = coop.get_executor().running_in_this_thread();
  })));
  drain(io);
  CHECK_ONCE(rec);
  BOOST_TEST(on_other);
  BOOST_TEST(!on_coop);
}

BOOST_AUTO_TEST_CASE(handler_bound_to_another_io_context_runs_only_there) {
  asio::io_context io, other;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto running = coop.cooperate(counted(units, 2));
  auto stopped = coop.cooperate(forever(units));
  auto running_rec = std::make_shared<record>();
  auto stopped_rec = std::make_shared<record>();
  bool running_in_other = false, stopped_in_other = false;
  running.when_done(asio::bind_executor(other, once_handler(running_rec, [&](std::exception_ptr) {
    running_in_other = other.get_executor().running_in_this_thread();
  })));
  stopped.when_done(asio::bind_executor(other, once_handler(stopped_rec, [&](std::exception_ptr) {
    stopped_in_other = other.get_executor().running_in_this_thread();
  })));
  BOOST_TEST(poll_until(io, [&] { return units >= 3; }));
  stopped.stop();
  drain(io);
  BOOST_TEST(running_rec->calls == 0);   // io ran, but the handlers belong to `other`
  BOOST_TEST(stopped_rec->calls == 0);
  other.poll();
  CHECK_ONCE(running_rec);
  CHECK_ONCE(stopped_rec);
  BOOST_TEST(running_in_other);
  BOOST_TEST(stopped_in_other);
  BOOST_TEST(kind(running_rec->result) == "null");
  BOOST_TEST(kind(stopped_rec->result) == kind<coop::task_stopped>());
}

// ---------------------------------------------------------------------------------------
// Outstanding work

BOOST_AUTO_TEST_CASE(pending_wait_is_outstanding_work_on_io_context) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto task = coop.cooperate(forever(units));
  task.pause();
  drain(io);
  BOOST_TEST(io.stopped());    // control: a paused task alone holds nothing
  BOOST_TEST(units == 0);

  auto rec = std::make_shared<record>();
  task.when_done(once_handler(rec));
  drain(io);
  BOOST_TEST(!io.stopped());   // the wait holds work: run() would not return
  BOOST_TEST(rec->calls == 0);

  task.stop();
  drain(io);
  CHECK_ONCE(rec);
  BOOST_TEST(io.stopped());    // released after completion
}

BOOST_AUTO_TEST_CASE(run_does_not_return_while_a_wait_is_pending) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto task = coop.cooperate(forever(units));
  task.pause();
  auto rec = std::make_shared<record>();
  task.when_done(once_handler(rec));
  std::atomic<bool> returned{false};
  auto runner = std::async(std::launch::async, [&] {
    io.run();
    returned = true;
  });
  // run() must still be blocked on the pending wait; an absence, so a short look will do.
  BOOST_TEST((runner.wait_for(std::chrono::milliseconds(100)) == std::future_status::timeout));
  BOOST_TEST(!returned.load());
  task.stop();   // from a foreign thread
  if (runner.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    io.stop();
    runner.wait();
    BOOST_FAIL("io_context::run() did not return after the pending wait completed");
  }
  runner.get();
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == kind<coop::task_stopped>());
  BOOST_TEST(units == 0);
}

BOOST_AUTO_TEST_CASE(pending_wait_is_outstanding_work_on_manual_context) {
  coop_test::manual_context ctx;
  test_cooperator coop(ctx.get_executor(), one_unit_per_tick());
  int units = 0;
  auto task = coop.cooperate(forever(units));
  task.pause();
  ctx.poll();
  BOOST_TEST(ctx.outstanding_work() == 0u);
  auto rec = std::make_shared<record>();
  task.when_done(once_handler(rec));
  BOOST_TEST(ctx.outstanding_work() > 0u);
  ctx.poll();
  BOOST_TEST(ctx.outstanding_work() > 0u);
  task.resume();
  BOOST_TEST(poll_until(ctx, [&] { return units >= 1; }));
  task.stop();
  ctx.poll();
  CHECK_ONCE(rec);
  BOOST_TEST(ctx.outstanding_work() == 0u);
  BOOST_TEST(ctx.queued() == 0u);
}

BOOST_AUTO_TEST_CASE(pending_wait_with_bound_executor_holds_work_on_that_executor) {
  asio::io_context io;
  coop_test::manual_context other;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto task = coop.cooperate(forever(units));
  task.pause();
  auto rec = std::make_shared<record>();
  task.when_done(asio::bind_executor(other.get_executor(), once_handler(rec)));
  BOOST_TEST(other.outstanding_work() > 0u);
  task.stop();
  drain(io);
  BOOST_TEST(rec->calls == 0);
  other.poll();
  CHECK_ONCE(rec);
  BOOST_TEST(other.outstanding_work() == 0u);
}

// ---------------------------------------------------------------------------------------
// Per-operation cancellation

namespace {

// Two waiters on a six-unit task: `cancelled` is bound to a signal emitted after two
// units, `plain` is not. Only `cancelled` ends (operation_aborted, before the task
// finishes); the task runs all six units and `plain` gets the real result.
void check_cancel_ends_only_that_wait(asio::cancellation_type type) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto task = coop.cooperate(counted(units, 6));
  asio::cancellation_signal signal;
  auto cancelled = std::make_shared<record>();
  auto plain = std::make_shared<record>();
  int units_when_cancelled_ran = -1;
  task.when_done(asio::bind_cancellation_slot(
      signal.slot(), once_handler(cancelled, [&](std::exception_ptr) { units_when_cancelled_ran = units; })));
  task.when_done(once_handler(plain));
  BOOST_TEST(poll_until(io, [&] { return units == 2; }));
  signal.emit(type);
  BOOST_TEST(cancelled->calls == 0);   // completed through its executor, not inside emit()
  drain(io);
  CHECK_ONCE(cancelled);
  CHECK_ONCE(plain);
  BOOST_TEST(is_operation_aborted(cancelled->result), "got " << kind(cancelled->result));
  BOOST_TEST(units_when_cancelled_ran >= 2);
  BOOST_TEST(units_when_cancelled_ran < 6);
  BOOST_TEST(units == 6);
  BOOST_TEST(kind(plain->result) == "null");
  BOOST_CHECK_THROW(task.pause(), coop::task_done);
}

}  // namespace

BOOST_AUTO_TEST_CASE(terminal_cancellation_ends_only_that_wait) {
  check_cancel_ends_only_that_wait(asio::cancellation_type::terminal);
}

BOOST_AUTO_TEST_CASE(partial_cancellation_ends_only_that_wait) {
  check_cancel_ends_only_that_wait(asio::cancellation_type::partial);
}

BOOST_AUTO_TEST_CASE(total_cancellation_ends_only_that_wait) {
  check_cancel_ends_only_that_wait(asio::cancellation_type::total);
}

BOOST_AUTO_TEST_CASE(cancelled_wait_on_a_paused_task_releases_its_work) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto task = coop.cooperate(counted(units, 2));
  task.pause();
  asio::cancellation_signal signal;
  auto rec = std::make_shared<record>();
  task.when_done(asio::bind_cancellation_slot(signal.slot(), once_handler(rec)));
  drain(io);
  BOOST_TEST(!io.stopped());
  signal.emit(asio::cancellation_type::terminal);
  drain(io);
  CHECK_ONCE(rec);
  BOOST_TEST(is_operation_aborted(rec->result));
  BOOST_TEST(io.stopped());      // the aborted wait no longer holds work
  task.resume();                 // the task itself was untouched
  auto after = std::make_shared<record>();
  task.when_done(once_handler(after));
  drain(io);
  BOOST_TEST(units == 2);
  CHECK_ONCE(after);
  BOOST_TEST(kind(after->result) == "null");
}

BOOST_AUTO_TEST_CASE(cancellation_after_completion_is_harmless) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto task = coop.cooperate(counted(units, 2));
  asio::cancellation_signal signal;
  auto rec = std::make_shared<record>();
  task.when_done(asio::bind_cancellation_slot(signal.slot(), once_handler(rec)));
  drain(io);
  CHECK_ONCE(rec);
  signal.emit(asio::cancellation_type::terminal);
  signal.emit(asio::cancellation_type::partial);
  signal.emit(asio::cancellation_type::total);
  drain(io);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == "null");
}

BOOST_AUTO_TEST_CASE(cancellation_after_stop_returned_but_before_the_handler_ran) {
  // stop() has finished the task and the completion is on its way: cancelling now must not
  // turn it into a second completion or an abort.
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto task = coop.cooperate(forever(units));
  asio::cancellation_signal signal;
  auto rec = std::make_shared<record>();
  task.when_done(asio::bind_cancellation_slot(signal.slot(), once_handler(rec)));
  BOOST_TEST(poll_until(io, [&] { return units >= 1; }));
  task.stop();
  signal.emit(asio::cancellation_type::terminal);
  drain(io);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == kind<coop::task_stopped>());
}

BOOST_AUTO_TEST_CASE(cancellation_from_the_works_destructor_as_the_task_finishes) {
  // stop() destroys the work while it retires the task, before it completes the waits: a
  // cancellation emitted from there (same thread, under the cooperator's lock) meets a
  // finished task, so the wait gets the task's result, once.
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  asio::cancellation_signal signal;
  struct cancels_when_destroyed {
    asio::cancellation_signal* signal;
    coop::step operator()() { return coop::step::more; }
    cancels_when_destroyed(asio::cancellation_signal& s) : signal(&s) {}
    cancels_when_destroyed(cancels_when_destroyed&& other) noexcept : signal(std::exchange(other.signal, nullptr)) {}
    ~cancels_when_destroyed() {
      if (signal) signal->emit(asio::cancellation_type::terminal);
    }
  };
  auto task = coop.cooperate(cancels_when_destroyed(signal));
  auto rec = std::make_shared<record>();
  task.when_done(asio::bind_cancellation_slot(signal.slot(), once_handler(rec)));
  io.poll_one();
  task.stop();
  drain(io);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == kind<coop::task_stopped>());
}

BOOST_AUTO_TEST_CASE(a_wait_begun_after_a_failure_gets_the_same_exception) {
  // The exception is kept with the finished task for every later wait.
  coop_test::manual_context ctx;
  test_cooperator coop(ctx.get_executor(), one_unit_per_tick());
  const std::exception_ptr thrown = std::make_exception_ptr(unit_error(7));
  auto task = coop.cooperate([&]() -> coop::step { std::rethrow_exception(thrown); });
  auto first = std::make_shared<record>();
  task.when_done(once_handler(first));
  ctx.poll();
  CHECK_ONCE(first);
  BOOST_TEST((first->result == thrown));
  for (int i = 0; i < 2; ++i) {
    auto later = std::make_shared<record>();
    task.when_done(once_handler(later));
    ctx.poll();
    CHECK_ONCE(later);
    BOOST_TEST((later->result == thrown));
  }
}

// ---------------------------------------------------------------------------------------
// What handlers may do

BOOST_AUTO_TEST_CASE(handler_that_stops_the_cooperator) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int short_units = 0, long_units = 0;
  auto short_task = coop.cooperate(counted(short_units, 2));
  auto long_task = coop.cooperate(forever(long_units));
  auto short_rec = std::make_shared<record>();
  auto long_rec = std::make_shared<record>();
  int long_units_at_stop = -1;
  short_task.when_done(once_handler(short_rec, [&](std::exception_ptr) {
    coop.stop();
    long_units_at_stop = long_units;
  }));
  long_task.when_done(once_handler(long_rec));
  drain(io);   // terminates: nothing runs after the stop
  CHECK_ONCE(short_rec);
  CHECK_ONCE(long_rec);
  BOOST_TEST(kind(short_rec->result) == "null");
  BOOST_TEST(kind(long_rec->result) == kind<coop::scheduler_stopped>());
  BOOST_TEST(long_units == long_units_at_stop);
  BOOST_TEST(!coop.running());
  BOOST_TEST(io.stopped());

  // start() after stop() runs again.
  coop.start();
  int again = 0;
  auto again_task = coop.cooperate(counted(again, 3));
  auto again_rec = std::make_shared<record>();
  again_task.when_done(once_handler(again_rec));
  drain(io);
  BOOST_TEST(again == 3);
  CHECK_ONCE(again_rec);
  BOOST_TEST(kind(again_rec->result) == "null");
}

BOOST_AUTO_TEST_CASE(handler_that_cooperates_new_work) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int first_units = 0, second_units = 0;
  auto first = coop.cooperate(counted(first_units, 2));
  auto first_rec = std::make_shared<record>();
  auto second_rec = std::make_shared<record>();
  first.when_done(once_handler(first_rec, [&](std::exception_ptr) {
    auto second = coop.cooperate(counted(second_units, 4));
    second.when_done(once_handler(second_rec));
  }));
  drain(io);
  BOOST_TEST(first_units == 2);
  BOOST_TEST(second_units == 4);
  CHECK_ONCE(first_rec);
  CHECK_ONCE(second_rec);
  BOOST_TEST(kind(second_rec->result) == "null");
  BOOST_TEST(io.stopped());
}

BOOST_AUTO_TEST_CASE(handler_that_waits_again_and_touches_the_task) {
  asio::io_context io;
  test_cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto task = coop.cooperate(counted(units, 1));
  auto outer = std::make_shared<record>();
  auto inner = std::make_shared<record>();
  bool pause_threw_done = false;
  task.when_done(once_handler(outer, [&](std::exception_ptr) {
    try {
      task.pause();
    } catch (const coop::task_done&) {
      pause_threw_done = true;
    }
    task.when_done(once_handler(inner));
    BOOST_TEST(inner->calls == 0);
  }));
  drain(io);
  CHECK_ONCE(outer);
  CHECK_ONCE(inner);
  BOOST_TEST(pause_threw_done);
  BOOST_TEST(kind(inner->result) == "null");
}

BOOST_AUTO_TEST_CASE(once_handler_detects_drop_and_double_call) {
  // The checker itself must be able to fail.
  auto dropped = std::make_shared<record>();
  { once_handler h(dropped); }
  BOOST_TEST(dropped->dropped == 1);
  auto twice = std::make_shared<record>();
  {
    once_handler h(twice);
    h(nullptr);
    h(nullptr);
  }
  BOOST_TEST(twice->calls == 2);
  BOOST_TEST(twice->dropped == 0);
  auto moved = std::make_shared<record>();
  {
    once_handler a(moved);
    once_handler b(std::move(a));
    b(nullptr);
  }
  BOOST_TEST(moved->calls == 1);
  BOOST_TEST(moved->dropped == 0);
}
