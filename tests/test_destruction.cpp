// SPDX-License-Identifier: BSL-1.0
// Destroying a cooperator (and its io_context) with live tasks and waiters: waiters finish
// with scheduler_stopped, handles stay usable, nothing leaks (run under ASan), and a
// completion handler may destroy the cooperator.
#define BOOST_TEST_MODULE destruction
#include <boost/test/unit_test.hpp>

#include <coop/coop.hpp>

#include "support/exception_kind.hpp"
#include "support/io_context_drive.hpp"
#include "support/manual_executor.hpp"
#include "support/once_handler.hpp"
#include "support/one_unit_per_tick.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/core/demangle.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

namespace asio = boost::asio;

namespace {

using coop_test::calls_on_moved_from;
using coop_test::once_handler;
using coop_test::one_unit_per_tick;
using coop_test::record;

using coop_test::kind;
using coop_test::thrown_by;

auto counted(int& count, int n) {
  return [&count, n] { return ++count < n ? coop::step::more : coop::step::done; };
}

auto forever(int& count) {
  return [&count] {
    ++count;
    return coop::step::more;
  };
}

using coop_test::drain;       // support/io_context_drive.hpp
using coop_test::poll_until;

// Counts live instances, to see that work objects (and coroutine frames) are destroyed.
struct lifetime {
  explicit lifetime(std::shared_ptr<int> n) : live(std::move(n)) { ++*live; }
  lifetime(const lifetime& other) : live(other.live) { ++*live; }
  lifetime(lifetime&& other) noexcept : live(other.live) { ++*live; }
  lifetime& operator=(const lifetime&) = delete;
  ~lifetime() { --*live; }
  std::shared_ptr<int> live;
};

}  // namespace

// ---------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(destroying_finishes_running_and_paused_tasks_with_scheduler_stopped) {
  asio::io_context io;
  std::optional<coop::cooperator> coop;
  coop.emplace(io, one_unit_per_tick());
  int running_units = 0, paused_units = 0;
  auto running = coop->cooperate(forever(running_units));
  auto paused = coop->cooperate(forever(paused_units));
  paused.pause();
  auto running_rec1 = std::make_shared<record>();
  auto running_rec2 = std::make_shared<record>();
  auto paused_rec = std::make_shared<record>();
  running.when_done(once_handler(running_rec1));
  running.when_done(once_handler(running_rec2));
  paused.when_done(once_handler(paused_rec));
  BOOST_TEST(poll_until(io, [&] { return running_units >= 2; }));

  coop.reset();
  const int units_at_destruction = running_units;
  BOOST_TEST(running_rec1->calls == 0);   // not inside the destructor
  BOOST_TEST(running_rec2->calls == 0);
  BOOST_TEST(paused_rec->calls == 0);
  drain(io);
  BOOST_TEST(running_units == units_at_destruction);
  BOOST_TEST(paused_units == 0);
  CHECK_ONCE(running_rec1);
  CHECK_ONCE(running_rec2);
  CHECK_ONCE(paused_rec);
  BOOST_TEST(kind(running_rec1->result) == kind<coop::scheduler_stopped>());
  BOOST_TEST(kind(running_rec2->result) == kind<coop::scheduler_stopped>());
  BOOST_TEST(kind(paused_rec->result) == kind<coop::scheduler_stopped>());
  BOOST_TEST(io.stopped());   // no tick, no wait left holding the io_context
}

BOOST_AUTO_TEST_CASE(destroying_a_never_started_cooperator) {
  asio::io_context io;
  std::optional<coop::cooperator> coop;
  coop::cooperator_options options = one_unit_per_tick();
  options.started = false;
  coop.emplace(io, options);
  int units = 0;
  auto task = coop->cooperate(forever(units));
  auto rec = std::make_shared<record>();
  task.when_done(once_handler(rec));
  drain(io);
  BOOST_TEST(units == 0);
  coop.reset();
  drain(io);
  BOOST_TEST(units == 0);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == kind<coop::scheduler_stopped>());
  BOOST_TEST(io.stopped());
}

BOOST_AUTO_TEST_CASE(work_objects_are_released_on_destruction) {
  asio::io_context io;
  auto live = std::make_shared<int>(0);
  {
    coop::cooperator coop(io, one_unit_per_tick());
    auto running = coop.cooperate([guard = lifetime(live)] { return coop::step::more; });
    auto paused = coop.cooperate([guard = lifetime(live)] { return coop::step::more; });
    paused.pause();
    BOOST_TEST(*live == 2);
    io.poll_one();
    io.poll_one();
  }
  drain(io);
  BOOST_TEST(*live == 0);
}

BOOST_AUTO_TEST_CASE(handles_after_destruction) {
  asio::io_context io;
  std::optional<coop::cooperator> coop;
  coop.emplace(io, one_unit_per_tick());
  int units = 0, done_units = 0;
  auto running = coop->cooperate(forever(units));
  auto paused = coop->cooperate(forever(units));
  auto paused_twice = coop->cooperate(forever(units));
  auto done = coop->cooperate(counted(done_units, 1));
  auto stopped = coop->cooperate(forever(units));
  paused.pause();
  paused_twice.pause();
  paused_twice.pause();
  stopped.stop();
  BOOST_TEST(poll_until(io, [&] { return done_units == 1; }));
  coop.reset();
  const int units_at_destruction = units;
  drain(io);

  // pause()/stop() of a task the destruction finished: scheduler_stopped.
  BOOST_TEST(thrown_by([&] { running.pause(); }) == kind<coop::scheduler_stopped>());
  BOOST_TEST(thrown_by([&] { running.stop(); }) == kind<coop::scheduler_stopped>());
  BOOST_TEST(thrown_by([&] { paused.pause(); }) == kind<coop::scheduler_stopped>());
  BOOST_TEST(thrown_by([&] { paused.stop(); }) == kind<coop::scheduler_stopped>());
  // Tasks that had finished before keep how they finished: the first way wins.
  BOOST_TEST(thrown_by([&] { done.pause(); }) == kind<coop::task_done>());
  BOOST_TEST(thrown_by([&] { done.stop(); }) == kind<coop::task_done>());
  BOOST_TEST(thrown_by([&] { stopped.pause(); }) == kind<coop::task_stopped>());
  BOOST_TEST(thrown_by([&] { stopped.stop(); }) == kind<coop::task_stopped>());
  // resume(): never paused -> not_paused; paused and finished meanwhile -> no-op, until
  // the pauses are used up.
  BOOST_TEST(thrown_by([&] { running.resume(); }) == kind<coop::not_paused>());
  BOOST_TEST(thrown_by([&] { paused.resume(); }) == "no exception");
  BOOST_TEST(thrown_by([&] { paused.resume(); }) == kind<coop::not_paused>());
  BOOST_TEST(thrown_by([&] { paused_twice.resume(); }) == "no exception");
  BOOST_TEST(thrown_by([&] { paused_twice.resume(); }) == "no exception");
  BOOST_TEST(thrown_by([&] { paused_twice.resume(); }) == kind<coop::not_paused>());
  BOOST_TEST(thrown_by([&] { done.resume(); }) == kind<coop::not_paused>());

  // The error_code forms.
  boost::system::error_code ec = asio::error::operation_aborted;
  running.pause(ec);
  BOOST_TEST(ec == coop::make_error_code(coop::error::scheduler_stopped));
  ec = asio::error::operation_aborted;
  running.stop(ec);
  BOOST_TEST(ec == coop::make_error_code(coop::error::scheduler_stopped));
  ec = asio::error::operation_aborted;
  running.resume(ec);
  BOOST_TEST(ec == coop::make_error_code(coop::error::not_paused));
  ec = asio::error::operation_aborted;
  stopped.pause(ec);
  BOOST_TEST(ec == coop::make_error_code(coop::error::task_stopped));
  ec = asio::error::operation_aborted;
  done.stop(ec);
  BOOST_TEST(ec == coop::make_error_code(coop::error::task_done));
  auto paused_ec = coop::cooperative_task(paused);   // a copy of the handle: same task
  paused_ec.pause(ec);
  BOOST_TEST(ec == coop::make_error_code(coop::error::scheduler_stopped));

  drain(io);
  BOOST_TEST(units == units_at_destruction);   // nothing ever ran again
  BOOST_TEST(io.stopped());
}

BOOST_AUTO_TEST_CASE(resume_of_paused_task_after_destruction_clears_ec) {
  asio::io_context io;
  std::optional<coop::cooperator> coop;
  coop.emplace(io, one_unit_per_tick());
  int units = 0;
  auto paused = coop->cooperate(forever(units));
  paused.pause();
  coop.reset();
  boost::system::error_code ec = asio::error::operation_aborted;
  paused.resume(ec);
  BOOST_TEST(!ec);   // finished meanwhile: a no-op, which is success
  paused.resume(ec);
  BOOST_TEST(ec == coop::make_error_code(coop::error::not_paused));
  drain(io);
  BOOST_TEST(units == 0);
}

BOOST_AUTO_TEST_CASE(when_done_after_destruction_is_posted_with_the_result) {
  asio::io_context io;
  std::optional<coop::cooperator> coop;
  coop.emplace(io, one_unit_per_tick());
  int units = 0, done_units = 0;
  auto running = coop->cooperate(forever(units));
  auto done = coop->cooperate(counted(done_units, 2));
  BOOST_TEST(poll_until(io, [&] { return done_units == 2; }));
  coop.reset();
  drain(io);
  BOOST_TEST(done_units == 2);

  auto running_rec = std::make_shared<record>();
  auto done_rec = std::make_shared<record>();
  running.when_done(once_handler(running_rec));
  done.when_done(once_handler(done_rec));
  BOOST_TEST(running_rec->calls == 0);   // posted, not inline
  BOOST_TEST(done_rec->calls == 0);
  drain(io);
  CHECK_ONCE(running_rec);
  CHECK_ONCE(done_rec);
  BOOST_TEST(kind(running_rec->result) == kind<coop::scheduler_stopped>());
  BOOST_TEST(kind(done_rec->result) == "null");
  BOOST_TEST(io.stopped());
}

BOOST_AUTO_TEST_CASE(when_done_after_destruction_on_a_bound_executor) {
  asio::io_context io, other;
  std::optional<coop::cooperator> coop;
  coop.emplace(io, one_unit_per_tick());
  int units = 0;
  auto task = coop->cooperate(forever(units));
  coop.reset();
  drain(io);
  auto rec = std::make_shared<record>();
  bool in_other = false;
  task.when_done(asio::bind_executor(other, once_handler(rec, [&](std::exception_ptr) {
    in_other = other.get_executor().running_in_this_thread();
  })));
  drain(io);
  BOOST_TEST(rec->calls == 0);
  other.poll();
  CHECK_ONCE(rec);
  BOOST_TEST(in_other);
  BOOST_TEST(kind(rec->result) == kind<coop::scheduler_stopped>());
}

// ---------------------------------------------------------------------------------------
// Destroying the execution context with things still queued

BOOST_AUTO_TEST_CASE(destroying_io_context_with_queued_ticks) {
  auto io = std::make_unique<asio::io_context>();
  auto live = std::make_shared<int>(0);
  int units = 0;
  {
    coop::cooperator coop(*io, one_unit_per_tick());
    auto a = coop.cooperate([&units, guard = lifetime(live)] {
      ++units;
      return coop::step::more;
    });
    auto b = coop.cooperate([&units, guard = lifetime(live)] {
      ++units;
      return coop::step::more;
    });
    // One tick ran; the next is queued on the io_context.
    io->poll_one();
  }
  // The cooperator is gone with its tick still queued; destroy the context unrun.
  io.reset();
  BOOST_TEST(units <= 1);
  BOOST_TEST(*live == 0);
}

BOOST_AUTO_TEST_CASE(destroying_io_context_with_queued_ticks_and_completions) {
  auto io = std::make_unique<asio::io_context>();
  auto rec_running = std::make_shared<record>();
  auto rec_paused = std::make_shared<record>();
  auto live = std::make_shared<int>(0);
  int units = 0;
  {
    coop::cooperator coop(*io, one_unit_per_tick());
    auto running = coop.cooperate([&units, guard = lifetime(live)] {
      ++units;
      return coop::step::more;
    });
    auto paused = coop.cooperate([&units, guard = lifetime(live)] {
      ++units;
      return coop::step::more;
    });
    paused.pause();
    running.when_done(once_handler(rec_running));
    paused.when_done(once_handler(rec_paused));
  }
  // The completions are queued, never run: the context's destruction destroys them.
  BOOST_TEST(rec_running->calls == 0);
  BOOST_TEST(rec_paused->calls == 0);
  io.reset();
  BOOST_TEST(rec_running->calls == 0);
  BOOST_TEST(rec_paused->calls == 0);
  BOOST_TEST(rec_running->dropped == 1);
  BOOST_TEST(rec_paused->dropped == 1);
  BOOST_TEST(units == 0);
  BOOST_TEST(*live == 0);
}

BOOST_AUTO_TEST_CASE(destroying_manual_context_with_queued_work) {
  auto ctx = std::make_unique<coop_test::manual_context>();
  auto rec = std::make_shared<record>();
  auto live = std::make_shared<int>(0);
  {
    coop::cooperator coop(ctx->get_executor(), one_unit_per_tick());
    auto task = coop.cooperate([guard = lifetime(live)] { return coop::step::more; });
    task.when_done(once_handler(rec));
    ctx->poll_one();
  }
  ctx.reset();
  BOOST_TEST(rec->calls == 0);
  BOOST_TEST(rec->dropped == 1);
  BOOST_TEST(*live == 0);
}

// ---------------------------------------------------------------------------------------
// A completion handler that destroys the cooperator

BOOST_AUTO_TEST_CASE(when_done_handler_destroys_the_cooperator_optional) {
  asio::io_context io;
  std::optional<coop::cooperator> coop;
  coop.emplace(io, one_unit_per_tick());
  int short_units = 0, long_units = 0, paused_units = 0;
  auto short_task = coop->cooperate(counted(short_units, 2));
  auto long_task = coop->cooperate(forever(long_units));
  auto paused_task = coop->cooperate(forever(paused_units));
  paused_task.pause();
  auto killer = std::make_shared<record>();
  auto second_on_short = std::make_shared<record>();
  auto long_rec = std::make_shared<record>();
  auto paused_rec = std::make_shared<record>();
  int long_units_at_destruction = -1;
  short_task.when_done(once_handler(killer, [&](std::exception_ptr) {
    coop.reset();
    long_units_at_destruction = long_units;
  }));
  short_task.when_done(once_handler(second_on_short));
  long_task.when_done(once_handler(long_rec));
  paused_task.when_done(once_handler(paused_rec));
  drain(io);
  BOOST_TEST(!coop.has_value());
  CHECK_ONCE(killer);
  CHECK_ONCE(second_on_short);
  CHECK_ONCE(long_rec);
  CHECK_ONCE(paused_rec);
  BOOST_TEST(kind(killer->result) == "null");
  BOOST_TEST(kind(second_on_short->result) == "null");
  BOOST_TEST(kind(long_rec->result) == kind<coop::scheduler_stopped>());
  BOOST_TEST(kind(paused_rec->result) == kind<coop::scheduler_stopped>());
  BOOST_TEST(long_units == long_units_at_destruction);
  BOOST_TEST(paused_units == 0);
  BOOST_TEST(thrown_by([&] { long_task.pause(); }) == kind<coop::scheduler_stopped>());
  BOOST_TEST(thrown_by([&] { short_task.pause(); }) == kind<coop::task_done>());
  BOOST_TEST(io.stopped());
}

BOOST_AUTO_TEST_CASE(when_done_handler_on_another_strand_destroys_the_cooperator_unique_ptr) {
  asio::io_context io;
  auto other = asio::make_strand(io);
  auto coop = std::make_unique<coop::cooperator>(io, one_unit_per_tick());
  int units = 0, long_units = 0;
  auto task = coop->cooperate(counted(units, 3));
  auto long_task = coop->cooperate(forever(long_units));
  auto killer = std::make_shared<record>();
  auto long_rec = std::make_shared<record>();
  task.when_done(asio::bind_executor(other, once_handler(killer, [&](std::exception_ptr) { coop.reset(); })));
  long_task.when_done(once_handler(long_rec));
  drain(io);
  BOOST_TEST(!coop);
  BOOST_TEST(units == 3);
  CHECK_ONCE(killer);
  CHECK_ONCE(long_rec);
  BOOST_TEST(kind(long_rec->result) == kind<coop::scheduler_stopped>());
  BOOST_TEST(io.stopped());
}

BOOST_AUTO_TEST_CASE(when_done_handler_of_a_destroyed_task_destroys_the_cooperator) {
  // The handler runs because of the destruction of one cooperator and destroys another
  // one from there.
  asio::io_context io;
  std::optional<coop::cooperator> first, second;
  first.emplace(io, one_unit_per_tick());
  second.emplace(io, one_unit_per_tick());
  int a_units = 0, b_units = 0;
  auto a = first->cooperate(forever(a_units));
  auto b = second->cooperate(forever(b_units));
  auto a_rec = std::make_shared<record>();
  auto b_rec = std::make_shared<record>();
  a.when_done(once_handler(a_rec, [&](std::exception_ptr) { second.reset(); }));
  b.when_done(once_handler(b_rec));
  BOOST_TEST(poll_until(io, [&] { return a_units >= 2 && b_units >= 2; }));
  first.reset();
  drain(io);
  BOOST_TEST(!second.has_value());
  CHECK_ONCE(a_rec);
  CHECK_ONCE(b_rec);
  BOOST_TEST(kind(a_rec->result) == kind<coop::scheduler_stopped>());
  BOOST_TEST(kind(b_rec->result) == kind<coop::scheduler_stopped>());
  BOOST_TEST(io.stopped());
}

// ---------------------------------------------------------------------------------------
// Coroutine work waiting on an operation when the cooperator goes away

namespace {

coop::steps wait_on_timer(asio::steady_timer& timer, lifetime guard, int& units, std::string& outcome) {
  (void)guard;   // lives in the frame
  ++units;
  try {
    co_yield timer.async_wait(asio::deferred);
    outcome = "resumed";
  } catch (...) {
    outcome = kind(std::current_exception());
  }
  ++units;
}

}  // namespace

BOOST_AUTO_TEST_CASE(destroying_with_a_coroutine_waiting_on_a_timer) {
  asio::io_context io;
  asio::steady_timer timer(io, std::chrono::hours(1));
  auto live = std::make_shared<int>(0);
  int units = 0;
  std::string outcome = "none";
  auto rec = std::make_shared<record>();
  {
    coop::cooperator coop(io, one_unit_per_tick());
    auto task = coop.cooperate(wait_on_timer(timer, lifetime(live), units, outcome));
    task.when_done(once_handler(rec));
    BOOST_TEST(poll_until(io, [&] { return units == 1; }));
    BOOST_TEST(*live == 1);
  }
  drain(io);   // the wait was cancelled; its completion runs nothing
  BOOST_TEST(units == 1);
  BOOST_TEST(outcome == "none");
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == kind<coop::scheduler_stopped>());
  BOOST_TEST(*live == 0);     // the frame is gone
  BOOST_TEST(io.stopped());   // the timer wait no longer holds the io_context
}

BOOST_AUTO_TEST_CASE(destroying_io_context_with_a_coroutine_waiting_on_a_timer) {
  auto io = std::make_unique<asio::io_context>();
  auto live = std::make_shared<int>(0);
  int units = 0;
  std::string outcome = "none";
  auto rec = std::make_shared<record>();
  {
    asio::steady_timer timer(*io, std::chrono::hours(1));
    coop::cooperator coop(*io, one_unit_per_tick());
    auto task = coop.cooperate(wait_on_timer(timer, lifetime(live), units, outcome));
    task.when_done(once_handler(rec));
    BOOST_TEST(poll_until(*io, [&] { return units == 1; }));
  }
  io.reset();   // the cancelled wait's completion and the when_done completion: destroyed
  BOOST_TEST(units == 1);
  BOOST_TEST(outcome == "none");
  BOOST_TEST(rec->calls == 0);
  BOOST_TEST(rec->dropped == 1);
  BOOST_TEST(*live == 0);
}

// ---------------------------------------------------------------------------------------
// After the execution context is gone

namespace {
// An operation that never completes by itself: its service keeps the handler and, as
// every Asio service does with pending operations, destroys it when the context shuts
// down. Made after the cooperator, the service shuts down before the cooperator's own
// (newest first), as a timer's service does when the timer is made after the cooperator.
class forever_service : public asio::execution_context::service {
public:
  using key_type = forever_service;
  static inline asio::execution_context::id id;
  explicit forever_service(asio::execution_context& ctx) : service(ctx) {}
  void keep(std::function<void()> destroy_handler) { pending_.push_back(std::move(destroy_handler)); }
  void drop_all() {
    for (auto& destroy : pending_) destroy();
    pending_.clear();
  }

private:
  void shutdown() override { drop_all(); }
  std::vector<std::function<void()>> pending_;
};

template <class Token> auto async_forever(asio::io_context& io, Token&& token) {
  return asio::async_initiate<Token, void(boost::system::error_code)>(
      [&io](auto handler) {
        using handler_type = decltype(handler);
        auto kept = std::make_shared<std::optional<handler_type>>(std::move(handler));
        asio::use_service<forever_service>(io).keep([kept] { kept->reset(); });
      },
      token);
}

coop::steps wait_forever(asio::io_context& io, int& units) {
  ++units;
  co_yield async_forever(io, asio::deferred);
  ++units;
}
}  // namespace

// A coroutine waiting on an operation when its context shuts down finishes
// scheduler_stopped, like every other unfinished task, even when the operation's service
// destroys the handler before the cooperator is stopped. Before, that destruction failed
// the task with operation_aborted (task_failed).
BOOST_AUTO_TEST_CASE(context_death_during_a_wait_is_scheduler_stopped) {
  std::optional<coop::cooperator> coop;  // outlives the context
  auto io = std::make_unique<asio::io_context>();
  coop.emplace(*io, one_unit_per_tick());
  int units = 0;
  auto task = coop->cooperate(wait_forever(*io, units));
  auto rec = std::make_shared<record>();
  task.when_done(once_handler(rec));
  BOOST_TEST(poll_until(*io, [&] { return units == 1; }));
  io.reset();
  BOOST_TEST(units == 1);
  BOOST_TEST(coop_test::thrown_by([&] { task.pause(); }) == kind<coop::scheduler_stopped>());
  // Its parked wait went with the context, as Asio's pending operations do.
  BOOST_TEST(rec->calls == 0);
  BOOST_TEST(rec->dropped == 1);
  coop.reset();
}

// The same operation dropped while the context lives: the task fails with
// operation_aborted, once the dropped handler's check has run on the strand.
BOOST_AUTO_TEST_CASE(dropped_wait_outside_shutdown_fails_the_task) {
  asio::io_context io;
  coop::cooperator coop(io, one_unit_per_tick());
  int units = 0;
  auto task = coop.cooperate(wait_forever(io, units));
  auto rec = std::make_shared<record>();
  task.when_done(once_handler(rec));
  BOOST_TEST(poll_until(io, [&] { return units == 1; }));
  asio::use_service<forever_service>(io).drop_all();  // drops the pending handler
  drain(io);
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == kind<boost::system::system_error>());
}

// when_done on a task whose cooperator and context are gone completes with the stored
// result through the handler's own executor: use_future gets the value, not a broken
// promise; a handler bound to a live context runs there.
BOOST_AUTO_TEST_CASE(when_done_after_cooperator_and_context_are_gone) {
  coop::cooperative_task done_task, paused_task;
  {
    asio::io_context io;
    coop::cooperator coop(io);
    done_task = coop.cooperate([] { return coop::step::done; });
    paused_task = coop.cooperate([] { return coop::step::more; });
    paused_task.pause();
    io.run();
  }
  std::future<void> done = done_task.when_done(asio::use_future);
  std::future<void> stopped = paused_task.when_done(asio::use_future);
  BOOST_REQUIRE(done.wait_for(std::chrono::seconds(60)) == std::future_status::ready);
  BOOST_REQUIRE(stopped.wait_for(std::chrono::seconds(60)) == std::future_status::ready);
  BOOST_TEST(coop_test::thrown_by([&] { done.get(); }) == "no exception");
  BOOST_TEST(coop_test::thrown_by([&] { stopped.get(); }) == kind<coop::scheduler_stopped>());

  asio::io_context other;
  auto rec = std::make_shared<record>();
  done_task.when_done(asio::bind_executor(other, once_handler(rec)));
  other.run();
  CHECK_ONCE(rec);
  BOOST_TEST(kind(rec->result) == "null");
}

// A handler with no executor of its own would run on the cooperator's strand: once the
// context is gone, when_done destroys it before returning, as the context's shutdown
// destroys what is queued, whether the cooperator object still lives or not. Before, the
// gone strand's refusal was taken for a post that ran out of memory: the library's
// watchdog thread retried it forever and the handler was never released.
BOOST_AUTO_TEST_CASE(when_done_on_the_gone_strand_destroys_the_handler) {
  std::optional<coop::cooperator> coop;
  auto io = std::make_unique<asio::io_context>();
  coop.emplace(*io);
  auto task = coop->cooperate([] { return coop::step::done; });
  io->run();
  io.reset();
  for (int round = 0; round < 2; ++round) {  // the cooperator alive, then gone
    auto rec = std::make_shared<record>();
    task.when_done(once_handler(rec));
    BOOST_TEST(rec.use_count() == 1, "round " << round << ": the handler is still held");
    if (rec.use_count() == 1) {
      BOOST_TEST(rec->calls == 0);
      BOOST_TEST(rec->dropped == 1);
    }
    coop.reset();
  }
}
