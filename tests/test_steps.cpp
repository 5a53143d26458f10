// SPDX-License-Identifier: BSL-1.0
// coop::steps — coroutine work: co_yield coop::next ends a unit; co_yield of an Asio
// operation made with asio::deferred takes the task out of the run order until the
// operation completes and gives back its result; failures, stop and pause during a wait,
// operations that complete inside their own initiation, and where the completion runs.
#define BOOST_TEST_MODULE steps
#include <boost/test/unit_test.hpp>

#include <coop/coop.hpp>

#include "support/exception_kind.hpp"
#include "support/manual_executor.hpp"
#include "support/scheduler_under_test.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/core/demangle.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace asio = boost::asio;
// A cooperator, or a pool built as one (the suite's _on_pool build: support/scheduler_under_test.hpp).
using test_cooperator = coop_test::scheduler_under_test;
using boost::system::error_code;
using log_t = std::vector<std::string>;

namespace {

// ---------------------------------------------------------------------------------------
// Helpers

using coop_test::kind;
using coop_test::thrown_by;
using coop_test::in_promised_order;

// The code a boost::system::system_error carries (a default code for anything else).
error_code code_of(const std::exception_ptr& ep) {
  try {
    if (ep) std::rethrow_exception(ep);
  } catch (const boost::system::system_error& e) {
    return e.code();
  } catch (...) {
  }
  return {};
}

struct unit_error : std::runtime_error {
  explicit unit_error(int i) : std::runtime_error("unit_error"), id(i) {}
  int id;
};
int unit_error_id(const std::exception_ptr& ep) {
  try {
    if (ep) std::rethrow_exception(ep);
  } catch (const unit_error& e) {
    return e.id;
  } catch (...) {
  }
  return -1;
}

// What a when_done handler saw; a handler that must run exactly once ends with
// calls == 1 and dropped == 0.
struct outcome {
  int calls = 0;
  int dropped = 0;  // destroyed without being invoked
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
#define CHECK_OUTCOME(o, expected_kind) \
  do {                                  \
    BOOST_TEST((o).calls == 1);         \
    BOOST_TEST((o).dropped == 0);       \
    BOOST_TEST(kind((o).ep) == (expected_kind)); \
  } while (0)

// Counts its destruction: as a local of a coroutine it tells when the frame is destroyed.
struct frame_probe {
  explicit frame_probe(int* d) : destroyed(d) {}
  frame_probe(const frame_probe&) = delete;
  frame_probe& operator=(const frame_probe&) = delete;
  ~frame_probe() { ++*destroyed; }
  int* destroyed;
};

// Options: every tick runs exactly one unit; `ticks` (if given) gets "|" at each tick start.
coop::cooperator_options one_unit_per_tick(log_t* ticks = nullptr) {
  coop::cooperator_options options;
  options.termination = [ticks] {
    if (ticks) ticks->push_back("|");
    return [] { return true; };
  };
  return options;
}

// A callable task that logs prefix1..prefixN, one per unit, then is done.
std::function<coop::step()> counter(log_t& log, std::string prefix, int units) {
  return [&log, prefix, units, n = 0]() mutable {
    log.push_back(prefix + std::to_string(++n));
    return n == units ? coop::step::done : coop::step::more;
  };
}

// A hand-completed asynchronous operation with signature void(Args...), written the Asio
// way: the initiation parks the handler with work on its associated executor and hooks its
// cancellation slot; complete() posts the handler to its associated executor. With
// complete_inline_with() the next initiation invokes the handler inside itself instead.
template <class... Args>
class manual_op {
public:
  explicit manual_op(asio::any_io_executor fallback) : fallback_(std::move(fallback)) {}
  manual_op(const manual_op&) = delete;
  manual_op& operator=(const manual_op&) = delete;

  template <asio::completion_token_for<void(Args...)> Token>
  auto async_wait(Token&& token) {
    return asio::async_initiate<Token, void(Args...)>(initiation{this}, token);
  }

  void complete_inline_with(Args... args) { inline_.emplace(std::move(args)...); }
  bool pending() const noexcept { return static_cast<bool>(complete_); }
  void complete(Args... args) {
    BOOST_REQUIRE(pending());
    auto f = std::exchange(complete_, nullptr);
    f(std::tuple<Args...>(std::move(args)...));
  }
  // The operation gives up: its handler is destroyed without being invoked.
  void abandon() { complete_ = nullptr; }

  int initiations = 0;
  int depth = 0;  // > 0 while the initiation runs
  std::vector<asio::cancellation_type> cancellations;
  std::optional<asio::any_io_executor> handler_executor;
  log_t* log = nullptr;

private:
  struct initiation {
    manual_op* self;
    template <class Handler> void operator()(Handler&& handler) const {
      ++self->initiations;
      auto ex = asio::get_associated_executor(handler, self->fallback_);
      self->handler_executor.emplace(ex);
      if (self->inline_) {
        auto values = std::move(*self->inline_);
        self->inline_.reset();
        ++self->depth;
        std::apply(std::move(handler), std::move(values));
        --self->depth;
        if (self->log) self->log->push_back("initiation returned");
        return;
      }
      auto slot = asio::get_associated_cancellation_slot(handler);
      if (slot.is_connected()) {
        manual_op* s = self;
        slot.assign([s](asio::cancellation_type type) { s->cancellations.push_back(type); });
      }
      auto work = asio::prefer(ex, asio::execution::outstanding_work.tracked);
      auto h = std::make_shared<std::decay_t<Handler>>(std::forward<Handler>(handler));
      self->complete_ = [h, work, slot](std::tuple<Args...> values) mutable {
        if (slot.is_connected()) slot.clear();
        asio::post(work, [h, values = std::move(values)]() mutable { std::apply(std::move(*h), std::move(values)); });
      };
    }
  };

  asio::any_io_executor fallback_;
  std::optional<std::tuple<Args...>> inline_;
  std::function<void(std::tuple<Args...>)> complete_;
};

// The type of `co_yield op` inside coop::steps (what the awaiter's await_resume returns).
template <class Op>
using yield_result_t =
    decltype(std::declval<coop::steps::promise_type&>().yield_value(std::declval<Op>()).await_resume());

using any_ex = asio::any_io_executor;
template <class... V>
using values_op = decltype(asio::deferred.values(std::declval<V>()...));

// ---------------------------------------------------------------------------------------
// Coroutines used by the tests

coop::steps three_units(log_t& log, std::string prefix, int* destroyed = nullptr) {
  std::optional<frame_probe> probe;
  if (destroyed) probe.emplace(destroyed);
  log.push_back(prefix + "1");
  co_yield coop::next;
  log.push_back(prefix + "2");
  co_yield coop::next;
  log.push_back(prefix + "3");
}

coop::steps holds_token(std::shared_ptr<int> token, int& ran) {
  ++ran;
  co_yield coop::next;
  ++ran;
  (void)token;
}

// Waits on `op` once: a1, wait, a2:<value>, next, a3.
coop::steps waits_once(log_t& log, manual_op<error_code, std::size_t>& op, int& destroyed) {
  frame_probe probe{&destroyed};
  log.push_back("a1");
  std::size_t n = co_yield op.async_wait(asio::deferred);
  log.push_back("a2:" + std::to_string(n) + (op.depth == 0 ? "" : " (inside the initiation!)"));
  co_yield coop::next;
  log.push_back("a3");
}

coop::steps waits_on_timer(asio::steady_timer& timer, std::chrono::steady_clock::duration d, log_t& log,
                           int& destroyed) {
  frame_probe probe{&destroyed};
  log.push_back("before");
  timer.expires_after(d);
  co_yield timer.async_wait(asio::deferred);
  log.push_back("after");
}

}  // namespace

// ---------------------------------------------------------------------------------------
// The value of co_yield (compile time)

BOOST_AUTO_TEST_SUITE(yield_value_types)

BOOST_AUTO_TEST_CASE(result_types_of_several_signatures) {
  // next
  static_assert(std::is_void_v<yield_result_t<coop::next_t>>);
  // void()
  static_assert(std::is_void_v<yield_result_t<decltype(asio::post(std::declval<any_ex>(), asio::deferred))>>);
  static_assert(std::is_void_v<yield_result_t<values_op<>>>);
  // void(error_code)
  static_assert(std::is_void_v<yield_result_t<decltype(std::declval<asio::steady_timer&>().async_wait(asio::deferred))>>);
  static_assert(std::is_void_v<yield_result_t<values_op<std::error_code>>>);
  static_assert(std::is_void_v<yield_result_t<values_op<std::exception_ptr>>>);
  // void(error_code, std::size_t)
  static_assert(std::is_same_v<yield_result_t<decltype(asio::post(
                                   std::declval<any_ex>(), asio::append(asio::deferred, error_code{}, std::size_t{})))>,
                               std::size_t>);
  static_assert(std::is_same_v<
                yield_result_t<decltype(std::declval<manual_op<error_code, std::size_t>&>().async_wait(asio::deferred))>,
                std::size_t>);
  // one value, no error
  static_assert(std::is_same_v<yield_result_t<values_op<int>>, int>);
  static_assert(std::is_same_v<yield_result_t<values_op<std::unique_ptr<int>>>, std::unique_ptr<int>>);
  // an exception_ptr or std::error_code first, then a value
  static_assert(std::is_same_v<yield_result_t<values_op<std::exception_ptr, long>>, long>);
  static_assert(std::is_same_v<yield_result_t<values_op<std::error_code, char>>, char>);
  // several values: a tuple
  static_assert(std::is_same_v<yield_result_t<decltype(asio::post(std::declval<any_ex>(),
                                                                  asio::append(asio::deferred, 1, std::string())))>,
                               std::tuple<int, std::string>>);
  static_assert(std::is_same_v<yield_result_t<values_op<error_code, int, std::string>>, std::tuple<int, std::string>>);
  static_assert(std::is_same_v<yield_result_t<values_op<int, double>>, std::tuple<int, double>>);
  BOOST_TEST(true);
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
// Units

BOOST_AUTO_TEST_SUITE(units)

BOOST_AUTO_TEST_CASE(next_ends_one_unit_round_robin_with_a_callable_task) {
  coop_test::manual_context ctx;
  log_t log;
  test_cooperator c(ctx.get_executor(), one_unit_per_tick(&log));
  int destroyed = 0;
  auto a = watch(c.cooperate(three_units(log, "a", &destroyed)));
  auto b = watch(c.cooperate(counter(log, "b", 3)));
  ctx.poll();
  BOOST_TEST(log == (log_t{"|", "a1", "|", "b1", "|", "a2", "|", "b2", "|", "a3", "|", "b3"}),
             boost::test_tools::per_element());
  CHECK_OUTCOME(*a, "null");
  CHECK_OUTCOME(*b, "null");
  BOOST_TEST(destroyed == 1);
  BOOST_TEST(ctx.queued() == 0u);
  BOOST_TEST(ctx.outstanding_work() == 0u);
}

BOOST_AUTO_TEST_CASE(next_round_robin_on_an_io_context) {
  asio::io_context io;
  log_t log;
  test_cooperator c(io, one_unit_per_tick());
  auto b = watch(c.cooperate(counter(log, "b", 4)));
  auto a = watch(c.cooperate(three_units(log, "a")));
  io.run();  // returns: with nothing runnable the cooperator holds no work
  BOOST_TEST(log == (log_t{"b1", "a1", "b2", "a2", "b3", "a3", "b4"}), boost::test_tools::per_element());
  CHECK_OUTCOME(*a, "null");
  CHECK_OUTCOME(*b, "null");
}

BOOST_AUTO_TEST_CASE(the_coroutine_starts_suspended) {
  coop_test::manual_context ctx;
  log_t log;
  test_cooperator c(ctx.get_executor(), one_unit_per_tick());
  int destroyed = 0;
  coop::steps s = three_units(log, "a", &destroyed);
  BOOST_TEST(s.valid());
  BOOST_TEST(log.empty());  // calling the coroutine runs nothing
  auto t = c.cooperate(std::move(s));
  BOOST_TEST(!s.valid());
  BOOST_TEST(log.empty());  // cooperating runs nothing either: only the executor does
  BOOST_TEST(ctx.queued() > 0u);
  ctx.poll();
  BOOST_TEST(log == (log_t{"a1", "a2", "a3"}), boost::test_tools::per_element());
  BOOST_TEST(destroyed == 1);
}

BOOST_AUTO_TEST_CASE(a_steps_object_never_given_to_a_cooperator_never_runs) {
  auto token = std::make_shared<int>(0);
  int ran = 0;
  {
    coop::steps s = holds_token(token, ran);
    BOOST_TEST(token.use_count() == 2);  // the parameter copy lives in the frame
    BOOST_TEST(ran == 0);
  }
  BOOST_TEST(token.use_count() == 1);  // frame destroyed with the steps object
  BOOST_TEST(ran == 0);
}

BOOST_AUTO_TEST_CASE(a_not_started_cooperator_runs_nothing_until_start) {
  coop_test::manual_context ctx;
  log_t log;
  auto options = one_unit_per_tick();
  options.started = false;
  test_cooperator c(ctx.get_executor(), options);
  auto t = watch(c.cooperate(three_units(log, "a")));
  ctx.poll();
  BOOST_TEST(log.empty());
  c.start();
  ctx.poll();
  BOOST_TEST(log == (log_t{"a1", "a2", "a3"}), boost::test_tools::per_element());
  CHECK_OUTCOME(*t, "null");
}

BOOST_AUTO_TEST_CASE(co_return_completes_the_task) {
  coop_test::manual_context ctx;
  log_t log;
  test_cooperator c(ctx.get_executor(), one_unit_per_tick());
  int destroyed = 0;
  auto body = [](log_t& log, int& destroyed) -> coop::steps {
    frame_probe probe{&destroyed};
    for (int i = 1;; ++i) {
      log.push_back("u" + std::to_string(i));
      if (i == 2) co_return;
      co_yield coop::next;
    }
  };
  auto t = c.cooperate(body(log, destroyed));
  auto o = watch(t);
  ctx.poll();
  BOOST_TEST(log == (log_t{"u1", "u2"}), boost::test_tools::per_element());
  CHECK_OUTCOME(*o, "null");
  BOOST_TEST(destroyed == 1);
  BOOST_TEST(thrown_by([&] { t.pause(); }) == kind<coop::task_done>());
  BOOST_TEST(thrown_by([&] { t.resume(); }) == kind<coop::not_paused>());
}

BOOST_AUTO_TEST_CASE(an_escaping_exception_fails_the_task) {
  coop_test::manual_context ctx;
  log_t log;
  test_cooperator c(ctx.get_executor(), one_unit_per_tick());
  int destroyed = 0;
  auto body = [](log_t& log, int& destroyed) -> coop::steps {
    frame_probe probe{&destroyed};
    log.push_back("u1");
    co_yield coop::next;
    log.push_back("u2");
    throw unit_error(3);
  };
  auto t = c.cooperate(body(log, destroyed));
  auto o = watch(t);
  auto other = watch(c.cooperate(counter(log, "b", 3)));
  ctx.poll();
  BOOST_TEST(log == (log_t{"u1", "b1", "u2", "b2", "b3"}), boost::test_tools::per_element());
  CHECK_OUTCOME(*o, kind<unit_error>());
  BOOST_TEST(unit_error_id(o->ep) == 3);
  CHECK_OUTCOME(*other, "null");  // the other task runs on
  BOOST_TEST(destroyed == 1);
  BOOST_TEST(thrown_by([&] { t.pause(); }) == kind<coop::task_failed>());
}

BOOST_AUTO_TEST_CASE(an_exception_in_the_first_unit_fails_the_task) {
  coop_test::manual_context ctx;
  test_cooperator c(ctx.get_executor());
  auto body = []() -> coop::steps {
    throw unit_error(1);
    co_yield coop::next;
  };
  auto o = watch(c.cooperate(body()));
  ctx.poll();
  CHECK_OUTCOME(*o, kind<unit_error>());
  BOOST_TEST(unit_error_id(o->ep) == 1);
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
// Awaiting operations: values

BOOST_AUTO_TEST_SUITE(awaited_values)

BOOST_AUTO_TEST_CASE(values_of_several_signatures) {
  coop_test::manual_context ctx;
  test_cooperator c(ctx.get_executor(), one_unit_per_tick());
  manual_op<error_code, std::size_t> op(ctx.get_executor());
  log_t log;
  auto body = [](any_ex ex, manual_op<error_code, std::size_t>& op, log_t& log) -> coop::steps {
    co_yield asio::post(ex, asio::deferred);  // void()
    log.push_back("void()");
    std::size_t n = co_yield asio::post(ex, asio::append(asio::deferred, error_code{}, std::size_t{42}));
    log.push_back("size_t " + std::to_string(n));
    auto [i, s] = co_yield asio::post(ex, asio::append(asio::deferred, 7, std::string("seven")));
    log.push_back("tuple " + std::to_string(i) + " " + s);
    auto [j, d] = co_yield asio::deferred.values(5, 2.5);
    log.push_back("values " + std::to_string(j) + " " + std::to_string(d));
    int k = co_yield asio::deferred.values(9);
    log.push_back("one value " + std::to_string(k));
    co_yield asio::deferred.values(error_code{});  // void(error_code)
    log.push_back("void(error_code)");
    long l = co_yield asio::deferred.values(std::exception_ptr{}, 11L);
    log.push_back("after exception_ptr " + std::to_string(l));
    char ch = co_yield asio::deferred.values(std::error_code{}, 'x');
    log.push_back(std::string("after std::error_code ") + ch);
    auto [e1, e2] = co_yield asio::deferred.values(error_code{}, 3, std::string("three"));
    log.push_back("after error_code, tuple " + std::to_string(e1) + " " + e2);
    std::unique_ptr<int> p = co_yield asio::deferred.values(std::make_unique<int>(13));
    log.push_back("move-only " + std::to_string(*p));
    std::size_t m = co_yield op.async_wait(asio::deferred);
    log.push_back("custom " + std::to_string(m));
    int chained = co_yield (asio::post(ex, asio::deferred) | asio::deferred([] { return asio::deferred.values(21); }));
    log.push_back("chained " + std::to_string(chained));
  };
  auto o = watch(c.cooperate(body(ctx.get_executor(), op, log)));
  ctx.poll();
  BOOST_TEST(op.pending());
  op.complete(error_code{}, 99);
  ctx.poll();
  BOOST_TEST(log == (log_t{"void()", "size_t 42", "tuple 7 seven", "values 5 2.500000", "one value 9",
                           "void(error_code)", "after exception_ptr 11", "after std::error_code x",
                           "after error_code, tuple 3 three", "move-only 13", "custom 99", "chained 21"}),
             boost::test_tools::per_element());
  CHECK_OUTCOME(*o, "null");
}

BOOST_AUTO_TEST_CASE(an_expired_timer_gives_nothing) {
  asio::io_context io;
  asio::steady_timer timer(io);
  test_cooperator c(io);
  log_t log;
  auto body = [](asio::steady_timer& timer, log_t& log) -> coop::steps {
    timer.expires_at(asio::steady_timer::clock_type::time_point::min());
    co_yield timer.async_wait(asio::deferred);
    log.push_back("waited");
  };
  auto o = watch(c.cooperate(body(timer, log)));
  io.run();
  BOOST_TEST(log == (log_t{"waited"}), boost::test_tools::per_element());
  CHECK_OUTCOME(*o, "null");
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
// Awaiting operations: the run order

BOOST_AUTO_TEST_SUITE(waiting)

BOOST_AUTO_TEST_CASE(a_wait_takes_the_task_out_of_the_run_order_until_completion) {
  coop_test::manual_context ctx;
  log_t log;
  int destroyed = 0;
  manual_op<error_code, std::size_t> op(ctx.get_executor());
  test_cooperator c(ctx.get_executor(), one_unit_per_tick());
  auto a = watch(c.cooperate(waits_once(log, op, destroyed)));
  auto b = watch(c.cooperate(counter(log, "b", 4)));
  ctx.poll();
  // A waits: only B runs, and then nothing is queued.
  BOOST_TEST(log == (log_t{"a1", "b1", "b2", "b3", "b4"}), boost::test_tools::per_element());
  BOOST_TEST(op.initiations == 1);
  BOOST_TEST(op.pending());
  BOOST_TEST(a->calls == 0);
  BOOST_TEST(ctx.queued() == 0u);
  // The operation's work and A's pending when_done (on the strand): none of the cooperator's.
  BOOST_TEST(ctx.outstanding_work() == 2u);
  // C joins while A waits, then the operation completes: A rejoins after C.
  auto cc = watch(c.cooperate(counter(log, "c", 3)));
  op.complete(error_code{}, 5);
  BOOST_TEST(log.size() == 5u);  // the completion is posted, nothing runs inline
  ctx.poll();
  BOOST_TEST(log == (log_t{"a1", "b1", "b2", "b3", "b4", "c1", "a2:5", "c2", "a3", "c3"}),
             boost::test_tools::per_element());
  CHECK_OUTCOME(*a, "null");
  CHECK_OUTCOME(*b, "null");
  CHECK_OUTCOME(*cc, "null");
  BOOST_TEST(destroyed == 1);
  BOOST_TEST(ctx.queued() == 0u);
  BOOST_TEST(ctx.outstanding_work() == 0u);
}

BOOST_AUTO_TEST_CASE(completion_inside_the_initiation_resumes_at_the_next_turn_without_recursion) {
  coop_test::manual_context ctx;
  log_t log;
  int destroyed = 0;
  manual_op<error_code, std::size_t> op(ctx.get_executor());
  op.log = &log;
  op.complete_inline_with(error_code{}, 8);
  test_cooperator c(ctx.get_executor(), one_unit_per_tick());
  auto b = watch(c.cooperate(counter(log, "b", 3)));
  auto a = watch(c.cooperate(waits_once(log, op, destroyed)));
  auto cc = watch(c.cooperate(counter(log, "c", 3)));
  ctx.poll();
  // A resumes neither inside the initiation nor in place: it rejoins at the end of the
  // order, after C.
  BOOST_TEST(in_promised_order(log) ==
                 in_promised_order(log_t{"b1", "a1", "initiation returned", "c1", "a2:8", "b2", "c2", "a3", "b3", "c3"}),
             boost::test_tools::per_element());
  CHECK_OUTCOME(*a, "null");
  CHECK_OUTCOME(*b, "null");
  CHECK_OUTCOME(*cc, "null");
  BOOST_TEST(destroyed == 1);
}

BOOST_AUTO_TEST_CASE(many_completions_inside_the_initiation_do_not_grow_the_stack) {
  coop_test::manual_context ctx;
  test_cooperator c(ctx.get_executor());
  constexpr int rounds = 100000;
  int sum = 0;
  int nested = 0;
  auto body = [](int& sum, int& nested) -> coop::steps {
    for (int i = 0; i < rounds; ++i) {
      manual_op<int> op{asio::any_io_executor()};
      op.complete_inline_with(1);
      sum += co_yield op.async_wait(asio::deferred);
      if (op.depth != 0) ++nested;
    }
  };
  auto o = watch(c.cooperate(body(sum, nested)));
  ctx.poll();
  BOOST_TEST(sum == rounds);
  BOOST_TEST(nested == 0);
  CHECK_OUTCOME(*o, "null");
}

BOOST_AUTO_TEST_CASE(the_completion_handler_runs_on_the_cooperators_strand) {
  coop_test::manual_context ctx;
  test_cooperator c(ctx.get_executor(), one_unit_per_tick());
  manual_op<error_code, std::size_t> op(ctx.get_executor());
  log_t log;
  int destroyed = 0;
  auto o = watch(c.cooperate(waits_once(log, op, destroyed)));
  ctx.poll();
  BOOST_REQUIRE(op.handler_executor.has_value());
  BOOST_TEST((*op.handler_executor == asio::any_io_executor(c.get_executor())));
  op.complete(error_code{}, 1);
  ctx.poll();
  CHECK_OUTCOME(*o, "null");
}

BOOST_AUTO_TEST_CASE(on_the_strand_right_after_co_yield_returns_io_context) {
  asio::io_context io;
  asio::steady_timer timer(io);
  test_cooperator c(io);
  std::vector<bool> on_strand;
  auto body = [](test_cooperator& c, asio::steady_timer& timer, std::vector<bool>& on_strand) -> coop::steps {
    timer.expires_after(std::chrono::milliseconds(1));
    co_yield timer.async_wait(asio::deferred);
    on_strand.push_back(c.get_executor().running_in_this_thread());
    co_yield asio::post(timer.get_executor(), asio::deferred);
    on_strand.push_back(c.get_executor().running_in_this_thread());
  };
  auto o = watch(c.cooperate(body(c, timer, on_strand)));
  io.run();
  BOOST_TEST(on_strand == (std::vector<bool>{true, true}), boost::test_tools::per_element());
  CHECK_OUTCOME(*o, "null");
}

BOOST_AUTO_TEST_CASE(a_job_paced_by_a_timer) {
  using clock = std::chrono::steady_clock;
  static constexpr auto period = std::chrono::milliseconds(20);
  static constexpr int waits = 5;
  asio::io_context io;
  asio::steady_timer timer(io);
  test_cooperator c(io);
  std::vector<clock::time_point> stamps;
  std::vector<int> others_at;  // units of the other task done at each stamp
  int others = 0;
  bool paced_done = false;
  auto paced = [](asio::steady_timer& timer, std::vector<clock::time_point>& stamps, std::vector<int>& others_at,
                  const int& others, bool& paced_done) -> coop::steps {
    stamps.push_back(clock::now());
    others_at.push_back(others);
    for (int i = 0; i < waits; ++i) {
      timer.expires_after(period);
      co_yield timer.async_wait(asio::deferred);
      stamps.push_back(clock::now());
      others_at.push_back(others);
    }
    paced_done = true;
  };
  auto p = watch(c.cooperate(paced(timer, stamps, others_at, others, paced_done)));
  auto q = watch(c.cooperate([&] {
    ++others;
    return paced_done ? coop::step::done : coop::step::more;
  }));
  const auto start = clock::now();
  io.run_for(std::chrono::seconds(60));
  const auto elapsed = clock::now() - start;
  CHECK_OUTCOME(*p, "null");
  CHECK_OUTCOME(*q, "null");
  BOOST_REQUIRE(stamps.size() == static_cast<std::size_t>(waits + 1));
  for (int i = 1; i <= waits; ++i) {
    BOOST_TEST((stamps[i] - stamps[i - 1] >= period), "wait " << i << " ended early");
    BOOST_TEST(others_at[i] > others_at[i - 1], "the other task ran no unit during wait " << i);
  }
  BOOST_TEST((elapsed >= waits * period));
  BOOST_TEST((elapsed < std::chrono::seconds(60)));
}

BOOST_AUTO_TEST_CASE(a_lambda_coroutine_keeps_its_captures_alive) {
  struct live_counter {
    int* live;
    std::string text;
    live_counter(int* l, std::string t) : live(l), text(std::move(t)) { ++*live; }
    live_counter(const live_counter& o) : live(o.live), text(o.text) { ++*live; }
    live_counter(live_counter&& o) noexcept : live(o.live), text(std::move(o.text)) { ++*live; }
    ~live_counter() { --*live; }
  };
  int live = 0;
  log_t log;
  coop_test::manual_context ctx;
  manual_op<error_code, std::size_t> op(ctx.get_executor());
  std::optional<test_cooperator> c(std::in_place, ctx.get_executor(), one_unit_per_tick());
  std::shared_ptr<outcome> o;
  {
    auto t = c->cooperate([probe = live_counter(&live, std::string(64, 'x')), &log, &op]() -> coop::steps {
      log.push_back(probe.text.substr(0, 2) + "1");
      co_yield coop::next;
      log.push_back(probe.text.substr(0, 2) + "2");
      std::size_t n = co_yield op.async_wait(asio::deferred);
      log.push_back(probe.text.substr(0, 2) + "3:" + std::to_string(n) + ":" + std::to_string(probe.text.size()));
    });
    o = watch(t);
  }
  BOOST_TEST(live >= 1);  // the temporary lambda is gone; the task keeps its own
  ctx.poll();
  BOOST_TEST(log == (log_t{"xx1", "xx2"}), boost::test_tools::per_element());
  BOOST_TEST(live >= 1);
  op.complete(error_code{}, 4);
  ctx.poll();
  BOOST_TEST(log == (log_t{"xx1", "xx2", "xx3:4:64"}), boost::test_tools::per_element());
  CHECK_OUTCOME(*o, "null");
  BOOST_TEST(live == 0);  // released once the task has finished
  c.reset();
  BOOST_TEST(live == 0);
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
// Failing awaited operations

BOOST_AUTO_TEST_SUITE(failures)

BOOST_AUTO_TEST_CASE(a_cancelled_timer_fails_the_task_with_operation_aborted) {
  asio::io_context io;
  asio::steady_timer timer(io);
  test_cooperator c(io, one_unit_per_tick());
  log_t log;
  int destroyed = 0;
  auto t = c.cooperate(waits_on_timer(timer, std::chrono::hours(1), log, destroyed));
  auto o = watch(t);
  auto canceller = watch(c.cooperate([&] {
    log.push_back("cancel");
    timer.cancel();
    return coop::step::done;
  }));
  const auto start = std::chrono::steady_clock::now();
  io.run_for(std::chrono::seconds(60));  // returns at once only if the hour-long wait was cancelled
  BOOST_TEST((std::chrono::steady_clock::now() - start < std::chrono::seconds(60)));
  BOOST_TEST(log == (log_t{"before", "cancel"}), boost::test_tools::per_element());
  CHECK_OUTCOME(*o, kind<boost::system::system_error>());
  BOOST_TEST(code_of(o->ep) == error_code(asio::error::operation_aborted));
  CHECK_OUTCOME(*canceller, "null");
  BOOST_TEST(destroyed == 1);
  BOOST_TEST(thrown_by([&] { t.pause(); }) == kind<coop::task_failed>());
}

// With asio::as_tuple(asio::deferred) the error is a value the coroutine handles: a
// cancelled wait gives operation_aborted in the tuple and the task goes on to its end.
BOOST_AUTO_TEST_CASE(an_error_taken_as_a_tuple_does_not_fail_the_task) {
  asio::io_context io;
  asio::steady_timer timer(io);
  test_cooperator c(io, one_unit_per_tick());
  error_code seen;
  int after = 0;
  auto t = c.cooperate([&]() -> coop::steps {
    auto [ec] = co_yield timer.async_wait(asio::as_tuple(asio::deferred));
    seen = ec;
    for (; after < 3; ++after) co_yield coop::next;
  });  // the callable, not its coroutine: the cooperator keeps the closure alive
  auto o = watch(t);
  auto canceller = watch(c.cooperate([&] {
    timer.cancel();
    return coop::step::done;
  }));
  timer.expires_after(std::chrono::hours(1));
  io.run_for(std::chrono::seconds(60));
  BOOST_TEST(seen == error_code(asio::error::operation_aborted));
  BOOST_TEST(after == 3);
  CHECK_OUTCOME(*o, "null");
  CHECK_OUTCOME(*canceller, "null");
}

BOOST_AUTO_TEST_CASE(an_error_code_fails_the_task_with_system_error) {
  coop_test::manual_context ctx;
  log_t log;
  int destroyed = 0;
  manual_op<error_code, std::size_t> op(ctx.get_executor());
  test_cooperator c(ctx.get_executor(), one_unit_per_tick());
  auto t = c.cooperate(waits_once(log, op, destroyed));
  auto o = watch(t);
  ctx.poll();
  op.complete(asio::error::connection_reset, 17);
  ctx.poll();
  BOOST_TEST(log == (log_t{"a1"}), boost::test_tools::per_element());
  CHECK_OUTCOME(*o, kind<boost::system::system_error>());
  BOOST_TEST(code_of(o->ep) == error_code(asio::error::connection_reset));
  BOOST_TEST(destroyed == 1);
  BOOST_TEST(thrown_by([&] { t.pause(); }) == kind<coop::task_failed>());
}

BOOST_AUTO_TEST_CASE(an_error_code_inside_the_initiation_fails_the_task) {
  coop_test::manual_context ctx;
  log_t log;
  int destroyed = 0;
  manual_op<error_code, std::size_t> op(ctx.get_executor());
  op.complete_inline_with(asio::error::broken_pipe, 0);
  test_cooperator c(ctx.get_executor(), one_unit_per_tick());
  auto o = watch(c.cooperate(waits_once(log, op, destroyed)));
  ctx.poll();
  BOOST_TEST(log == (log_t{"a1"}), boost::test_tools::per_element());
  CHECK_OUTCOME(*o, kind<boost::system::system_error>());
  BOOST_TEST(code_of(o->ep) == error_code(asio::error::broken_pipe));
  BOOST_TEST(destroyed == 1);
}

BOOST_AUTO_TEST_CASE(an_exception_ptr_fails_the_task_with_that_exception) {
  coop_test::manual_context ctx;
  log_t log;
  manual_op<std::exception_ptr, int> op(ctx.get_executor());
  test_cooperator c(ctx.get_executor(), one_unit_per_tick());
  auto body = [](manual_op<std::exception_ptr, int>& op, log_t& log) -> coop::steps {
    int v = co_yield op.async_wait(asio::deferred);
    log.push_back("got " + std::to_string(v));
    v = co_yield op.async_wait(asio::deferred);
    log.push_back("got " + std::to_string(v));
  };
  auto o = watch(c.cooperate(body(op, log)));
  ctx.poll();
  op.complete(nullptr, 1);  // a null exception_ptr is success
  ctx.poll();
  op.complete(std::make_exception_ptr(unit_error(7)), 2);
  ctx.poll();
  BOOST_TEST(log == (log_t{"got 1"}), boost::test_tools::per_element());
  CHECK_OUTCOME(*o, kind<unit_error>());
  BOOST_TEST(unit_error_id(o->ep) == 7);
}

BOOST_AUTO_TEST_CASE(a_std_error_code_fails_the_task_with_that_code) {
  // The contract: a non-zero error_code, Boost's or std's, fails the task with
  // boost::system::system_error(ec). Checked: the code survives; the exception type is
  // reported by name so a mismatch is visible.
  coop_test::manual_context ctx;
  manual_op<std::error_code> op(ctx.get_executor());
  test_cooperator c(ctx.get_executor());
  auto body = [](manual_op<std::error_code>& op) -> coop::steps { co_yield op.async_wait(asio::deferred); };
  auto o = watch(c.cooperate(body(op)));
  ctx.poll();
  const std::error_code ec = std::make_error_code(std::errc::connection_refused);
  op.complete(ec);
  ctx.poll();
  BOOST_TEST(o->calls == 1);
  std::error_code carried;
  try {
    std::rethrow_exception(o->ep);
  } catch (const boost::system::system_error& e) {
    carried = e.code();
  } catch (const std::system_error& e) {
    carried = e.code();
  } catch (...) {
  }
  BOOST_TEST((carried == ec), "carried " << carried.message() << " (" << kind(o->ep) << ")");
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
// Stopping during a wait

BOOST_AUTO_TEST_SUITE(stop_during_a_wait)

BOOST_AUTO_TEST_CASE(task_stop_cancels_a_pending_timer_wait) {
  asio::io_context io;
  asio::steady_timer timer(io);
  test_cooperator c(io);
  log_t log;
  int destroyed = 0;
  auto t = c.cooperate(waits_on_timer(timer, std::chrono::hours(1), log, destroyed));
  auto o = watch(t);
  io.poll();
  BOOST_TEST(log == (log_t{"before"}), boost::test_tools::per_element());
  BOOST_TEST(o->calls == 0);
  t.stop();
  const auto start = std::chrono::steady_clock::now();
  io.run_for(std::chrono::seconds(60));  // returns at once only if the hour-long wait was cancelled
  BOOST_TEST((std::chrono::steady_clock::now() - start < std::chrono::seconds(60)));
  BOOST_TEST(timer.cancel() == 0u);  // nothing left pending on the timer
  BOOST_TEST(log == (log_t{"before"}), boost::test_tools::per_element());
  CHECK_OUTCOME(*o, kind<coop::task_stopped>());
  BOOST_TEST(destroyed == 1);
  BOOST_TEST(thrown_by([&] { t.stop(); }) == kind<coop::task_stopped>());
}

BOOST_AUTO_TEST_CASE(cooperator_stop_cancels_a_pending_timer_wait) {
  asio::io_context io;
  asio::steady_timer timer(io);
  test_cooperator c(io);
  log_t log;
  int destroyed = 0;
  auto t = c.cooperate(waits_on_timer(timer, std::chrono::hours(1), log, destroyed));
  auto o = watch(t);
  io.poll();
  BOOST_TEST(log == (log_t{"before"}), boost::test_tools::per_element());
  c.stop();
  const auto start = std::chrono::steady_clock::now();
  io.run_for(std::chrono::seconds(60));  // returns at once only if the hour-long wait was cancelled
  BOOST_TEST((std::chrono::steady_clock::now() - start < std::chrono::seconds(60)));
  BOOST_TEST(timer.cancel() == 0u);
  BOOST_TEST(log == (log_t{"before"}), boost::test_tools::per_element());
  CHECK_OUTCOME(*o, kind<coop::scheduler_stopped>());
  BOOST_TEST(destroyed == 1);
  BOOST_TEST(thrown_by([&] { t.pause(); }) == kind<coop::scheduler_stopped>());
}

BOOST_AUTO_TEST_CASE(cooperator_destruction_cancels_a_pending_timer_wait) {
  asio::io_context io;
  asio::steady_timer timer(io);
  std::optional<test_cooperator> c(std::in_place, io);
  log_t log;
  int destroyed = 0;
  auto t = c->cooperate(waits_on_timer(timer, std::chrono::hours(1), log, destroyed));
  auto o = watch(t);
  io.poll();
  BOOST_TEST(log == (log_t{"before"}), boost::test_tools::per_element());
  c.reset();
  const auto start = std::chrono::steady_clock::now();
  io.run_for(std::chrono::seconds(60));  // returns at once only if the hour-long wait was cancelled
  BOOST_TEST((std::chrono::steady_clock::now() - start < std::chrono::seconds(60)));
  BOOST_TEST(timer.cancel() == 0u);
  BOOST_TEST(log == (log_t{"before"}), boost::test_tools::per_element());
  CHECK_OUTCOME(*o, kind<coop::scheduler_stopped>());
  BOOST_TEST(destroyed == 1);
  BOOST_TEST(thrown_by([&] { t.pause(); }) == kind<coop::scheduler_stopped>());
}

// A manual operation that ignores cancellation: the terminal request reaches it, and its
// later successful completion runs no unit.
void stop_then_late_success(bool stop_cooperator) {
  coop_test::manual_context ctx;
  log_t log;
  int destroyed = 0;
  manual_op<error_code, std::size_t> op(ctx.get_executor());
  test_cooperator c(ctx.get_executor(), one_unit_per_tick());
  auto t = c.cooperate(waits_once(log, op, destroyed));
  auto o = watch(t);
  ctx.poll();
  BOOST_REQUIRE(op.pending());
  if (stop_cooperator) c.stop();
  else t.stop();
  ctx.poll();
  BOOST_TEST(op.cancellations.size() == 1u);
  BOOST_TEST((op.cancellations.size() == 1u && op.cancellations[0] == asio::cancellation_type::terminal));
  CHECK_OUTCOME(*o, stop_cooperator ? kind<coop::scheduler_stopped>() : kind<coop::task_stopped>());
  op.complete(error_code{}, 3);
  ctx.poll();
  BOOST_TEST(log == (log_t{"a1"}), boost::test_tools::per_element());
  BOOST_TEST(destroyed == 1);
  BOOST_TEST(o->calls == 1);
  BOOST_TEST(ctx.queued() == 0u);
  BOOST_TEST(ctx.outstanding_work() == 0u);
}

BOOST_AUTO_TEST_CASE(task_stop_emits_terminal_cancellation_and_a_late_completion_runs_nothing) {
  stop_then_late_success(false);
}

BOOST_AUTO_TEST_CASE(cooperator_stop_emits_terminal_cancellation_and_a_late_completion_runs_nothing) {
  stop_then_late_success(true);
}

BOOST_AUTO_TEST_CASE(a_late_failure_after_stop_leaves_the_task_stopped) {
  coop_test::manual_context ctx;
  log_t log;
  int destroyed = 0;
  manual_op<error_code, std::size_t> op(ctx.get_executor());
  test_cooperator c(ctx.get_executor(), one_unit_per_tick());
  auto t = c.cooperate(waits_once(log, op, destroyed));
  auto o = watch(t);
  ctx.poll();
  t.stop();
  op.complete(asio::error::operation_aborted, 0);
  ctx.poll();
  CHECK_OUTCOME(*o, kind<coop::task_stopped>());
  BOOST_TEST(log == (log_t{"a1"}), boost::test_tools::per_element());
  BOOST_TEST(destroyed == 1);
}

BOOST_AUTO_TEST_CASE(stop_with_the_completion_already_queued_runs_nothing) {
  coop_test::manual_context ctx;
  log_t log;
  int destroyed = 0;
  manual_op<error_code, std::size_t> op(ctx.get_executor());
  test_cooperator c(ctx.get_executor(), one_unit_per_tick());
  auto t = c.cooperate(waits_once(log, op, destroyed));
  auto o = watch(t);
  ctx.poll();
  op.complete(error_code{}, 2);  // posted, not yet run
  t.stop();
  ctx.poll();
  CHECK_OUTCOME(*o, kind<coop::task_stopped>());
  BOOST_TEST(log == (log_t{"a1"}), boost::test_tools::per_element());
  BOOST_TEST(destroyed == 1);
}

BOOST_AUTO_TEST_CASE(stop_then_the_operation_drops_its_handler) {
  coop_test::manual_context ctx;
  log_t log;
  int destroyed = 0;
  manual_op<error_code, std::size_t> op(ctx.get_executor());
  test_cooperator c(ctx.get_executor(), one_unit_per_tick());
  auto t = c.cooperate(waits_once(log, op, destroyed));
  auto o = watch(t);
  ctx.poll();
  t.stop();
  ctx.poll();
  op.abandon();
  ctx.poll();
  CHECK_OUTCOME(*o, kind<coop::task_stopped>());
  BOOST_TEST(log == (log_t{"a1"}), boost::test_tools::per_element());
  BOOST_TEST(destroyed == 1);
}

// An operation that gives up (destroys its handler without calling it) fails the task
// with operation_aborted: no completion will come, so the task must not wait forever.
BOOST_AUTO_TEST_CASE(the_operation_drops_its_handler_while_the_task_waits) {
  coop_test::manual_context ctx;
  log_t log;
  int destroyed = 0;
  manual_op<error_code, std::size_t> op(ctx.get_executor());
  test_cooperator c(ctx.get_executor(), one_unit_per_tick());
  auto t = c.cooperate(waits_once(log, op, destroyed));
  auto o = watch(t);
  ctx.poll();
  BOOST_TEST(op.pending());
  op.abandon();
  ctx.poll();
  CHECK_OUTCOME(*o, kind<boost::system::system_error>());
  BOOST_TEST(code_of(o->ep) == error_code(asio::error::operation_aborted));
  BOOST_TEST(log == (log_t{"a1"}), boost::test_tools::per_element());
  BOOST_TEST(destroyed == 1);
}

// The same when the initiation itself drops the handler and returns normally: the wait
// ends at once (the awaiter sees the drop), not never.
BOOST_AUTO_TEST_CASE(an_initiation_that_drops_its_handler_fails_the_task) {
  coop_test::manual_context ctx;
  log_t log;
  int destroyed = 0;
  int other_units = 0;
  test_cooperator c(ctx.get_executor(), one_unit_per_tick());
  auto body = [](log_t& log, int& destroyed) -> coop::steps {
    frame_probe probe{&destroyed};
    log.push_back("before");
    co_yield asio::async_initiate<decltype(asio::deferred), void(error_code)>(
        [](auto handler) { auto gone = std::move(handler); }, asio::deferred);
    log.push_back("after");
  };
  auto t = c.cooperate(body(log, destroyed));
  auto o = watch(t);
  auto other = c.cooperate([&other_units] { return ++other_units == 3 ? coop::step::done : coop::step::more; });
  ctx.poll();
  CHECK_OUTCOME(*o, kind<boost::system::system_error>());
  BOOST_TEST(code_of(o->ep) == error_code(asio::error::operation_aborted));
  BOOST_TEST(log == (log_t{"before"}), boost::test_tools::per_element());
  BOOST_TEST(destroyed == 1);
  BOOST_TEST(other_units == 3);
}

// A broken operation keeps the handler of a wait whose initiation threw; when it lets go
// of that handler later, during the task's next wait, the next wait is not affected.
BOOST_AUTO_TEST_CASE(a_handler_of_an_earlier_wait_does_not_end_the_current_one) {
  coop_test::manual_context ctx;
  log_t log;
  int destroyed = 0;
  std::shared_ptr<void> kept;  // the stale handler
  manual_op<error_code, std::size_t> op(ctx.get_executor());
  test_cooperator c(ctx.get_executor(), one_unit_per_tick());
  auto body = [](log_t& log, int& destroyed, std::shared_ptr<void>& kept,
                 manual_op<error_code, std::size_t>& op) -> coop::steps {
    frame_probe probe{&destroyed};
    try {
      co_yield asio::async_initiate<decltype(asio::deferred), void(error_code)>(
          [&kept](auto handler) {
            kept = std::make_shared<decltype(handler)>(std::move(handler));
            throw std::runtime_error("initiation failed");
          },
          asio::deferred);
    } catch (const std::runtime_error&) {
      log.push_back("threw");
    }
    std::size_t n = co_yield op.async_wait(asio::deferred);
    log.push_back("got " + std::to_string(n));
  };
  auto t = c.cooperate(body(log, destroyed, kept, op));
  auto o = watch(t);
  ctx.poll();
  BOOST_REQUIRE(op.pending());
  kept.reset();  // destroyed without being called, while the second wait is pending
  ctx.poll();
  BOOST_TEST(o->calls == 0);
  op.complete(error_code(), 7);
  ctx.poll();
  CHECK_OUTCOME(*o, "null");
  BOOST_TEST(log == (log_t{"threw", "got 7"}), boost::test_tools::per_element());
  BOOST_TEST(destroyed == 1);
}

BOOST_AUTO_TEST_CASE(a_unit_that_stops_its_own_task_then_yields_an_operation) {
  coop_test::manual_context ctx;
  log_t log;
  int destroyed = 0;
  manual_op<error_code, std::size_t> op(ctx.get_executor());
  test_cooperator c(ctx.get_executor(), one_unit_per_tick());
  coop::cooperative_task self;
  auto body = [](coop::cooperative_task& self, manual_op<error_code, std::size_t>& op, log_t& log,
                 int& destroyed) -> coop::steps {
    frame_probe probe{&destroyed};
    log.push_back("unit");
    self.stop();
    co_yield op.async_wait(asio::deferred);
    log.push_back("after");
  };
  self = c.cooperate(body(self, op, log, destroyed));
  auto o = watch(self);
  ctx.poll();
  BOOST_TEST(op.initiations == 0);  // nothing to wait for: the operation is not started
  BOOST_TEST(log == (log_t{"unit"}), boost::test_tools::per_element());
  CHECK_OUTCOME(*o, kind<coop::task_stopped>());
  BOOST_TEST(destroyed == 1);
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
// Pausing during a wait

BOOST_AUTO_TEST_SUITE(pause_during_a_wait)

struct pause_fixture {
  coop_test::manual_context ctx;
  log_t log;
  int destroyed = 0;
  manual_op<error_code, std::size_t> op{ctx.get_executor()};
  test_cooperator c{ctx.get_executor(), one_unit_per_tick()};
  coop::cooperative_task t = c.cooperate(waits_once(log, op, destroyed));
  std::shared_ptr<outcome> o = watch(t);
  pause_fixture() {
    ctx.poll();
    BOOST_REQUIRE(op.pending());
    BOOST_REQUIRE(log == (log_t{"a1"}));
  }
};

BOOST_FIXTURE_TEST_CASE(completion_then_resume, pause_fixture) {
  t.pause();
  op.complete(error_code{}, 6);
  ctx.poll();
  BOOST_TEST(log == (log_t{"a1"}), boost::test_tools::per_element());  // completed, but paused
  BOOST_TEST(ctx.queued() == 0u);
  t.resume();
  ctx.poll();
  BOOST_TEST(log == (log_t{"a1", "a2:6", "a3"}), boost::test_tools::per_element());
  CHECK_OUTCOME(*o, "null");
  BOOST_TEST(destroyed == 1);
}

BOOST_FIXTURE_TEST_CASE(resume_then_completion, pause_fixture) {
  t.pause();
  t.resume();
  ctx.poll();
  BOOST_TEST(log == (log_t{"a1"}), boost::test_tools::per_element());  // resumed, but still waiting
  BOOST_TEST(ctx.queued() == 0u);
  op.complete(error_code{}, 6);
  ctx.poll();
  BOOST_TEST(log == (log_t{"a1", "a2:6", "a3"}), boost::test_tools::per_element());
  CHECK_OUTCOME(*o, "null");
}

BOOST_FIXTURE_TEST_CASE(two_pauses_need_two_resumes, pause_fixture) {
  t.pause();
  t.pause();
  op.complete(error_code{}, 6);
  ctx.poll();
  t.resume();
  ctx.poll();
  BOOST_TEST(log == (log_t{"a1"}), boost::test_tools::per_element());
  t.resume();
  ctx.poll();
  BOOST_TEST(log == (log_t{"a1", "a2:6", "a3"}), boost::test_tools::per_element());
  CHECK_OUTCOME(*o, "null");
}

BOOST_FIXTURE_TEST_CASE(resume_when_the_only_pause_is_the_wait_throws_not_paused, pause_fixture) {
  BOOST_TEST(thrown_by([&] { t.resume(); }) == kind<coop::not_paused>());
  boost::system::error_code ec;
  t.resume(ec);
  BOOST_TEST(ec == make_error_code(coop::error::not_paused));
  // The failed resume changed nothing: the completion alone lets the task go on.
  op.complete(error_code{}, 6);
  ctx.poll();
  BOOST_TEST(log == (log_t{"a1", "a2:6", "a3"}), boost::test_tools::per_element());
  CHECK_OUTCOME(*o, "null");
}

BOOST_FIXTURE_TEST_CASE(a_failure_while_paused_fails_the_task, pause_fixture) {
  t.pause();
  op.complete(asio::error::timed_out, 0);
  ctx.poll();
  CHECK_OUTCOME(*o, kind<boost::system::system_error>());
  BOOST_TEST(code_of(o->ep) == error_code(asio::error::timed_out));
  BOOST_TEST(destroyed == 1);
  t.resume();  // resuming a paused task that finished meanwhile is a no-op
  BOOST_TEST(thrown_by([&] { t.resume(); }) == kind<coop::not_paused>());
  BOOST_TEST(log == (log_t{"a1"}), boost::test_tools::per_element());
}

BOOST_FIXTURE_TEST_CASE(stop_while_paused_and_waiting, pause_fixture) {
  t.pause();
  t.stop();
  ctx.poll();
  BOOST_TEST(op.cancellations.size() == 1u);
  op.complete(error_code{}, 6);
  ctx.poll();
  CHECK_OUTCOME(*o, kind<coop::task_stopped>());
  BOOST_TEST(log == (log_t{"a1"}), boost::test_tools::per_element());
  BOOST_TEST(destroyed == 1);
}

BOOST_AUTO_TEST_SUITE_END()
