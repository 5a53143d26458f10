// SPDX-License-Identifier: BSL-1.0
// coop::default_cooperator: one cooperator per execution context, used by coop::cooperate
// and coop::coiterate, shut down with its context (tasks finish with scheduler_stopped,
// queued handlers are destroyed, not invoked).
#define BOOST_TEST_MODULE default_cooperator
#include <boost/test/unit_test.hpp>

#include <coop/coop.hpp>

#include "support/exception_kind.hpp"
#include "support/manual_executor.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/core/demangle.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace asio = boost::asio;
using log_t = std::vector<std::string>;

namespace {

using coop_test::kind;
using coop_test::thrown_by;

struct unit_error : std::runtime_error {
  unit_error() : std::runtime_error("unit_error") {}
};

// What a completion handler saw: must end with calls == 1 and dropped == 0 when it has to
// run, calls == 0 and dropped == 1 when it has to be destroyed instead.
struct outcome {
  int calls = 0;
  int dropped = 0;
  std::exception_ptr ep;
};
class recorder {
public:
  explicit recorder(std::shared_ptr<outcome> o) : outcome_(std::move(o)) {}
  recorder(recorder&& other) noexcept : outcome_(std::move(other.outcome_)), invoked_(other.invoked_) {}
  recorder& operator=(recorder&&) = delete;
  ~recorder() {
    if (outcome_ && !invoked_) ++outcome_->dropped;
  }
  void operator()(std::exception_ptr ep) {
    invoked_ = true;
    ++outcome_->calls;
    outcome_->ep = std::move(ep);
  }

private:
  std::shared_ptr<outcome> outcome_;
  bool invoked_ = false;
};
std::shared_ptr<outcome> watch(coop::cooperative_task t) {
  auto o = std::make_shared<outcome>();
  t.when_done(recorder(o));
  return o;
}

struct frame_probe {
  explicit frame_probe(int* d) : destroyed(d) {}
  frame_probe(const frame_probe&) = delete;
  frame_probe& operator=(const frame_probe&) = delete;
  ~frame_probe() { ++*destroyed; }
  int* destroyed;
};

// A callable task: `units` units, each logging prefix<n> and whether it ran on `c`'s strand.
std::function<coop::step()> counter(log_t& log, std::string prefix, int units, coop::cooperator* c = nullptr) {
  return [&log, prefix, units, c, n = 0]() mutable {
    ++n;
    std::string entry = prefix + std::to_string(n);
    if (c && !c->get_executor().running_in_this_thread()) entry += " (not on the strand)";
    log.push_back(entry);
    return n == units ? coop::step::done : coop::step::more;
  };
}

// Runs forever, one unit per call.
std::function<coop::step()> endless(int& units) {
  return [&units] {
    ++units;
    return coop::step::more;
  };
}

coop::steps waits_on_timer(asio::steady_timer& timer, int& destroyed, log_t& log) {
  frame_probe probe{&destroyed};
  log.push_back("before");
  timer.expires_after(std::chrono::hours(1));
  co_yield timer.async_wait(asio::deferred);
  log.push_back("after");
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Identity

BOOST_AUTO_TEST_CASE(one_cooperator_per_io_context_whatever_the_argument) {
  asio::io_context io;
  coop::cooperator& from_context = coop::default_cooperator(io);
  coop::cooperator& from_executor = coop::default_cooperator(io.get_executor());
  auto ex = io.get_executor();  // an executor lvalue picks the executor overload
  coop::cooperator& from_executor_lvalue = coop::default_cooperator(ex);
  coop::cooperator& from_any = coop::default_cooperator(asio::any_io_executor(io.get_executor()));
  coop::cooperator& from_strand = coop::default_cooperator(asio::make_strand(io));
  BOOST_TEST(&from_context == &from_executor);
  BOOST_TEST(&from_context == &from_executor_lvalue);
  BOOST_TEST(&from_context == &from_any);
  BOOST_TEST(&from_context == &from_strand);
  BOOST_TEST(from_context.running());
}

BOOST_AUTO_TEST_CASE(one_cooperator_per_manual_context_and_thread_pool) {
  coop_test::manual_context ctx;
  BOOST_TEST(&coop::default_cooperator(ctx) == &coop::default_cooperator(ctx.get_executor()));
  asio::thread_pool pool(1);
  BOOST_TEST(&coop::default_cooperator(pool) == &coop::default_cooperator(pool.get_executor()));
  BOOST_TEST(&coop::default_cooperator(pool) != &coop::default_cooperator(ctx));
  pool.join();
}

BOOST_AUTO_TEST_CASE(two_io_contexts_have_two_default_cooperators) {
  asio::io_context io1, io2;
  coop::cooperator& c1 = coop::default_cooperator(io1);
  coop::cooperator& c2 = coop::default_cooperator(io2);
  BOOST_TEST(&c1 != &c2);
  BOOST_TEST(&c1 == &coop::default_cooperator(io1.get_executor()));
  BOOST_TEST(&c2 == &coop::default_cooperator(io2.get_executor()));

  // coop::cooperate on each context: each task runs only when its own context runs, on
  // its own context's default cooperator.
  log_t log;
  auto t1 = watch(coop::cooperate(io1.get_executor(), counter(log, "one", 2, &c1)));
  auto t2 = watch(coop::cooperate(io2.get_executor(), counter(log, "two", 2, &c2)));
  io2.run();
  BOOST_TEST(log == (log_t{"two1", "two2"}), boost::test_tools::per_element());
  BOOST_TEST(t1->calls == 0);
  io1.run();
  BOOST_TEST(log == (log_t{"two1", "two2", "one1", "one2"}), boost::test_tools::per_element());
  BOOST_TEST(kind(t1->ep) == "null");
  BOOST_TEST(kind(t2->ep) == "null");
  BOOST_TEST(t1->calls == 1);
  BOOST_TEST(t2->calls == 1);
}

// ---------------------------------------------------------------------------------------
// cooperate / coiterate

BOOST_AUTO_TEST_CASE(cooperate_adds_to_the_default_cooperator) {
  asio::io_context io;
  coop::cooperator& c = coop::default_cooperator(io);
  log_t log;
  auto t = coop::cooperate(io.get_executor(), counter(log, "a", 3, &c));
  auto o = watch(t);
  BOOST_TEST(log.empty());  // nothing runs before the context does
  io.run();
  BOOST_TEST(log == (log_t{"a1", "a2", "a3"}), boost::test_tools::per_element());
  BOOST_TEST(o->calls == 1);
  BOOST_TEST(kind(o->ep) == "null");
}

BOOST_AUTO_TEST_CASE(stopping_the_default_cooperator_stops_what_cooperate_added) {
  asio::io_context io;
  int units = 0;
  auto t = coop::cooperate(io.get_executor(), endless(units));
  auto o = watch(t);
  io.poll_one();
  coop::default_cooperator(io).stop();
  io.run();
  BOOST_TEST(o->calls == 1);
  BOOST_TEST(kind(o->ep) == kind<coop::scheduler_stopped>());
  BOOST_TEST(thrown_by([&] { t.pause(); }) == kind<coop::scheduler_stopped>());
  coop::default_cooperator(io).start();  // the default cooperator can run again
  log_t log;
  auto again = watch(coop::cooperate(io.get_executor(), counter(log, "b", 2)));
  io.restart();
  io.run();
  BOOST_TEST(log == (log_t{"b1", "b2"}), boost::test_tools::per_element());
  BOOST_TEST(kind(again->ep) == "null");
}

BOOST_AUTO_TEST_CASE(cooperate_with_a_coroutine) {
  asio::io_context io;
  log_t log;
  auto body = [](log_t& log) -> coop::steps {
    log.push_back("s1");
    co_yield coop::next;
    log.push_back("s2");
  };
  auto o = watch(coop::cooperate(io.get_executor(), body(log)));
  io.run();
  BOOST_TEST(log == (log_t{"s1", "s2"}), boost::test_tools::per_element());
  BOOST_TEST(kind(o->ep) == "null");
}

BOOST_AUTO_TEST_CASE(coiterate_with_a_callback) {
  asio::io_context io;
  coop::cooperator& c = coop::default_cooperator(io);
  log_t log;
  auto o = std::make_shared<outcome>();
  coop::coiterate(io.get_executor(), counter(log, "a", 2, &c), recorder(o));
  BOOST_TEST(log.empty());
  io.run();
  BOOST_TEST(log == (log_t{"a1", "a2"}), boost::test_tools::per_element());
  BOOST_TEST(o->calls == 1);
  BOOST_TEST(o->dropped == 0);
  BOOST_TEST(kind(o->ep) == "null");
}

BOOST_AUTO_TEST_CASE(coiterate_with_deferred_starts_when_launched) {
  asio::io_context io;
  log_t log;
  auto op = coop::coiterate(io.get_executor(), counter(log, "a", 2), asio::deferred);
  io.poll();
  BOOST_TEST(log.empty());  // lazy: no task yet
  auto o = std::make_shared<outcome>();
  std::move(op)(recorder(o));
  io.restart();
  io.run();
  BOOST_TEST(log == (log_t{"a1", "a2"}), boost::test_tools::per_element());
  BOOST_TEST(o->calls == 1);
  BOOST_TEST(kind(o->ep) == "null");
}

BOOST_AUTO_TEST_CASE(coiterate_with_use_future_throws_the_failure) {
  asio::io_context io;
  auto f = coop::coiterate(
      io.get_executor(), []() -> coop::step { throw unit_error(); }, asio::use_future);
  io.run();
  BOOST_TEST(thrown_by([&] { f.get(); }) == kind<unit_error>());
}

// ---------------------------------------------------------------------------------------
// Shut down with the context

BOOST_AUTO_TEST_CASE(destroying_the_io_context_finishes_tasks_with_scheduler_stopped) {
  coop::cooperative_task running, paused, done_queued;
  std::shared_ptr<outcome> running_wait;
  auto done_completion = std::make_shared<outcome>();
  int units = 0;
  log_t log;
  {
    asio::io_context io;
    running = coop::cooperate(io.get_executor(), endless(units));
    paused = coop::cooperate(io.get_executor(), endless(units));
    done_queued = coop::cooperate(io.get_executor(), counter(log, "d", 1));
    running_wait = watch(running);
    for (int i = 0; i < 1000 && log.empty(); ++i) io.poll_one();
    BOOST_REQUIRE(units > 0);
    BOOST_REQUIRE(log == (log_t{"d1"}));
    paused.pause();
    // A finished task's when_done completes posted, never inline: it sits in the queue.
    done_queued.when_done(recorder(done_completion));
    BOOST_TEST(done_completion->calls == 0);
  }
  // The handles outlive the context.
  BOOST_TEST(thrown_by([&] { running.pause(); }) == kind<coop::scheduler_stopped>());
  BOOST_TEST(thrown_by([&] { paused.pause(); }) == kind<coop::scheduler_stopped>());
  BOOST_TEST(thrown_by([&] { running.stop(); }) == kind<coop::scheduler_stopped>());
  BOOST_TEST(thrown_by([&] { done_queued.pause(); }) == kind<coop::task_done>());
  BOOST_TEST(thrown_by([&] { running.resume(); }) == kind<coop::not_paused>());
  // Handlers are destroyed, not invoked: the parked wait and the queued completion.
  BOOST_TEST(running_wait->calls == 0);
  BOOST_TEST(running_wait->dropped == 1);
  BOOST_TEST(done_completion->calls == 0);
  BOOST_TEST(done_completion->dropped == 1);
  // Releasing the last handles after the context is gone is safe.
  running = {};
  paused = {};
  done_queued = {};
}

BOOST_AUTO_TEST_CASE(destroying_the_io_context_with_a_coroutine_waiting_on_a_timer) {
  coop::cooperative_task waiting;
  std::shared_ptr<outcome> wait;
  int destroyed = 0;
  log_t log;
  {
    asio::io_context io;
    asio::steady_timer timer(io);
    waiting = coop::cooperate(io.get_executor(), waits_on_timer(timer, destroyed, log));
    wait = watch(waiting);
    io.poll();
    BOOST_REQUIRE(log == (log_t{"before"}));
  }
  BOOST_TEST(log == (log_t{"before"}), boost::test_tools::per_element());
  BOOST_TEST(destroyed == 1);
  BOOST_TEST(thrown_by([&] { waiting.pause(); }) == kind<coop::scheduler_stopped>());
  BOOST_TEST(wait->calls == 0);
  BOOST_TEST(wait->dropped == 1);
  waiting = {};
  BOOST_TEST(destroyed == 1);
}

BOOST_AUTO_TEST_CASE(destroying_a_manual_context_destroys_queued_handlers) {
  coop::cooperative_task kept;
  std::shared_ptr<outcome> wait;
  auto stopped_completion = std::make_shared<outcome>();
  int units = 0;
  {
    coop_test::manual_context ctx;
    kept = coop::cooperate(ctx.get_executor(), endless(units));
    wait = watch(kept);
    auto other = coop::cooperate(ctx.get_executor(), endless(units));
    ctx.poll_one();
    other.stop();  // its completion is now queued
    other.when_done(recorder(stopped_completion));
  }
  BOOST_TEST(thrown_by([&] { kept.pause(); }) == kind<coop::scheduler_stopped>());
  BOOST_TEST(wait->calls == 0);
  BOOST_TEST(wait->dropped == 1);
  BOOST_TEST(stopped_completion->calls == 0);
  BOOST_TEST(stopped_completion->dropped == 1);
  kept = {};
}

BOOST_AUTO_TEST_CASE(a_new_context_gets_a_new_running_default_cooperator) {
  // Each context has its own; one shut down with its context does not affect another.
  auto first = std::make_optional<asio::io_context>();
  coop::cooperator* c1 = &coop::default_cooperator(*first);
  int units = 0;
  auto t = coop::cooperate(first->get_executor(), endless(units));
  first.reset();
  BOOST_TEST(thrown_by([&] { t.pause(); }) == kind<coop::scheduler_stopped>());
  asio::io_context second;
  coop::cooperator& c2 = coop::default_cooperator(second);
  (void)c1;  // may or may not be the same address: the old one is gone
  BOOST_TEST(c2.running());
  log_t log;
  auto o = watch(coop::cooperate(second.get_executor(), counter(log, "n", 2, &c2)));
  second.run();
  BOOST_TEST(log == (log_t{"n1", "n2"}), boost::test_tools::per_element());
  BOOST_TEST(kind(o->ep) == "null");
  t = {};
}

namespace {
// Work whose destructor adds a task to the default cooperator of the same context.
struct cooperates_when_destroyed {
  asio::io_context* io;
  std::optional<std::string>* late_result;
  cooperates_when_destroyed(asio::io_context* i, std::optional<std::string>* r) : io(i), late_result(r) {}
  cooperates_when_destroyed(cooperates_when_destroyed&& other) noexcept
      : io(std::exchange(other.io, nullptr)), late_result(other.late_result) {}
  ~cooperates_when_destroyed() {
    if (!io) return;
    coop::cooperative_task late = coop::cooperate(io->get_executor(), [] { return coop::step::done; });
    *late_result = coop_test::thrown_by([&] { late.pause(); });
  }
  coop::step operator()() { return coop::step::more; }
};
}  // namespace

// Context shutdown destroys the default cooperator's work; a work destructor that calls
// coop::cooperate on the same context must not deadlock on the service's own mutex.
// Another cooperator made first puts its service ahead, so the default cooperator's
// service shuts down first (newest first), while the context is still half alive.
BOOST_AUTO_TEST_CASE(work_destructor_cooperates_during_context_shutdown) {
  auto io = std::make_unique<asio::io_context>();
  auto other = std::make_unique<coop::cooperator>(*io);
  std::optional<std::string> late_result;
  coop::cooperate(io->get_executor(), cooperates_when_destroyed(io.get(), &late_result));
  // The destruction runs on another thread so that a deadlock fails the case at a
  // deadline instead of hanging the suite.
  std::future<void> destroyed = std::async(std::launch::async, [&] { io.reset(); });
  if (destroyed.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    std::fprintf(stderr, "FAILED: context shutdown deadlocked in a work destructor\n");
    std::abort();
  }
  other.reset();
  BOOST_REQUIRE(late_result.has_value());
  BOOST_TEST(*late_result == coop_test::kind<coop::scheduler_stopped>());
}
