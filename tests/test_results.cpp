// SPDX-License-Identifier: BSL-1.0
// Results (the README and the API reference): steps_of<T>, returning(work), result_task<T>::when_done and
// coiterate with `void(std::exception_ptr, T)` — per completion token, per way of
// finishing, copies for waiters, moves for coiterate, and the work object's lifetime.
#define BOOST_TEST_MODULE results
#include <boost/test/unit_test.hpp>

#include <coop/coop.hpp>

#include "support/exception_kind.hpp"
#include "support/io_context_drive.hpp"
#include "support/one_unit_per_tick.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/promise.hpp>
#include <boost/asio/experimental/use_promise.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

BOOST_TEST_DONT_PRINT_LOG_VALUE(std::optional<int>)
BOOST_TEST_DONT_PRINT_LOG_VALUE(std::optional<std::string>)

namespace asio = boost::asio;
using coop_test::kind;

namespace {

using coop_test::one_unit_per_tick;

struct unit_error : std::runtime_error {
  unit_error() : std::runtime_error("unit_error") {}
};

using coop_test::is_operation_aborted;

using coop_test::drain;       // support/io_context_drive.hpp
using coop_test::poll_until;

// A steps_of<int> coroutine of `n` units that returns `value`.
coop::steps_of<int> count_to(int n, int value) {
  for (int i = 1; i < n; ++i) co_yield coop::next;
  co_return value;
}

coop::steps_of<int> failing() {
  co_yield coop::next;
  throw unit_error();
}

coop::steps_of<std::string> endless() {
  for (;;) co_yield coop::next;
}

// Work that counts its objects: every construction (copies and moves included) must be
// matched by exactly one destruction.
struct lifetimes {
  int constructed = 0;
  int destroyed = 0;
  int alive() const { return constructed - destroyed; }
};

struct counted_work {
  lifetimes* life;
  int units = 0;
  int limit;
  bool fail = false;
  counted_work(lifetimes* l, int n, bool f = false) : life(l), limit(n), fail(f) { ++life->constructed; }
  counted_work(const counted_work& o) : life(o.life), units(o.units), limit(o.limit), fail(o.fail) {
    ++life->constructed;
  }
  counted_work(counted_work&& o) noexcept : life(o.life), units(o.units), limit(o.limit), fail(o.fail) {
    ++life->constructed;
  }
  counted_work& operator=(const counted_work&) = delete;
  ~counted_work() { ++life->destroyed; }
  coop::step operator()() {
    ++units;
    if (fail && units == limit) throw unit_error();
    return units < limit ? coop::step::more : coop::step::done;
  }
};

// Move-only result.
struct token_value {
  std::unique_ptr<int> p;
};

coop::steps_of<token_value> make_token(int v) {
  co_yield coop::next;
  co_return token_value{std::make_unique<int>(v)};
}

// An over-aligned result: its task is allocated alone, with its alignment (a coroutine's
// frame has room for its task only when the task needs no more than new's alignment).
// Counts the values made at a misaligned address.
int misaligned_wide = 0;
struct alignas(64) wide {
  int v = 0;
  wide() = default;
  explicit wide(int x) : v(x) { check(); }
  wide(const wide& other) noexcept : v(other.v) { check(); }
  wide& operator=(const wide&) = default;
  void check() const noexcept {
    if (reinterpret_cast<std::uintptr_t>(this) % alignof(wide) != 0) ++misaligned_wide;
  }
};

coop::steps_of<wide> make_wide(int v) {
  co_yield coop::next;
  co_return wide(v);
}

struct result_record {
  int calls = 0;
  std::exception_ptr error;
  int value = -1;
};

}  // namespace

// ---------------------------------------------------------------------------------------
// steps_of<T> with each completion token

BOOST_AUTO_TEST_CASE(callback_gets_the_co_returned_value) {
  asio::io_context io;
  coop::cooperator coop(io, one_unit_per_tick());
  coop::result_task<int> task = coop.cooperate(count_to(3, 42));
  result_record rec;
  task.when_done([&](std::exception_ptr e, int v) {
    ++rec.calls;
    rec.error = e;
    rec.value = v;
  });
  BOOST_TEST(rec.calls == 0);  // nothing before run()
  drain(io);
  BOOST_TEST(rec.calls == 1);
  BOOST_TEST(kind(rec.error) == "null");
  BOOST_TEST(rec.value == 42);
}

BOOST_AUTO_TEST_CASE(an_over_aligned_value_is_kept_aligned) {
  asio::io_context io;
  coop::cooperator coop(io);
  std::vector<int> got;
  for (int i = 0; i < 8; ++i) coop.cooperate(make_wide(i)).when_done([&](std::exception_ptr, wide w) { got.push_back(w.v); });
  drain(io);
  BOOST_TEST(got == (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  BOOST_TEST(misaligned_wide == 0);
}

BOOST_AUTO_TEST_CASE(finished_task_completes_posted_never_inline) {
  asio::io_context io;
  coop::cooperator coop(io);
  auto task = coop.cooperate(count_to(1, 5));
  drain(io);
  int got = 0;
  task.when_done([&](std::exception_ptr, int v) { got = v; });
  BOOST_TEST(got == 0);
  drain(io);
  BOOST_TEST(got == 5);
}

BOOST_AUTO_TEST_CASE(use_future_gives_future_of_T) {
  asio::io_context io;
  coop::cooperator coop(io);
  std::future<int> good = coop.cooperate(count_to(2, 7)).when_done(asio::use_future);
  std::future<int> bad = coop.cooperate(failing()).when_done(asio::use_future);
  drain(io);
  BOOST_REQUIRE((good.wait_for(std::chrono::seconds(60)) == std::future_status::ready));
  BOOST_REQUIRE((bad.wait_for(std::chrono::seconds(60)) == std::future_status::ready));
  BOOST_TEST(good.get() == 7);
  BOOST_CHECK_THROW(bad.get(), unit_error);
}

BOOST_AUTO_TEST_CASE(use_awaitable_gives_T_and_coiterate_awaits_it) {
  asio::io_context io;
  coop::cooperator coop(io);
  int from_when_done = 0, from_coiterate = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto task = coop.cooperate(count_to(3, 11));
        from_when_done = co_await task.when_done(asio::use_awaitable);
        from_coiterate = co_await coop.coiterate(count_to(2, 12), asio::use_awaitable);
      },
      asio::detached);
  BOOST_TEST(poll_until(io, [&] { return from_coiterate != 0; }));
  BOOST_TEST(from_when_done == 11);
  BOOST_TEST(from_coiterate == 12);
}

BOOST_AUTO_TEST_CASE(use_awaitable_rethrows_and_failure_gives_default) {
  asio::io_context io;
  coop::cooperator coop(io);
  bool threw = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        try {
          co_await coop.coiterate(failing(), asio::use_awaitable);
        } catch (const unit_error&) {
          threw = true;
        }
      },
      asio::detached);
  BOOST_TEST(poll_until(io, [&] { return threw; }));
}

BOOST_AUTO_TEST_CASE(deferred_starts_when_launched) {
  asio::io_context io;
  coop::cooperator coop(io);
  int got = 0;
  auto op = coop.coiterate(count_to(2, 9), asio::deferred);
  drain(io);
  BOOST_TEST(got == 0);  // lazy: nothing ran
  std::move(op)([&](std::exception_ptr e, int v) {
    BOOST_TEST(!e);
    got = v;
  });
  drain(io);
  BOOST_TEST(got == 9);
}

BOOST_AUTO_TEST_CASE(as_tuple_gives_error_and_value) {
  asio::io_context io;
  coop::cooperator coop(io);
  auto task = coop.cooperate(failing());
  std::optional<std::tuple<std::exception_ptr, int>> got;
  task.when_done(asio::as_tuple([&](std::tuple<std::exception_ptr, int> t) { got.emplace(std::move(t)); }));
  drain(io);
  BOOST_REQUIRE(got);
  BOOST_TEST(kind(std::get<0>(*got)) == coop_test::kind<unit_error>());
  BOOST_TEST(std::get<1>(*got) == 0);  // T{} on failure
}

BOOST_AUTO_TEST_CASE(use_promise_gives_T) {
  asio::io_context io;
  coop::cooperator coop(io);
  auto task = coop.cooperate(count_to(2, 21));
  auto promise = task.when_done(asio::experimental::use_promise);
  std::optional<int> got;
  promise([&](std::exception_ptr e, int v) {
    BOOST_TEST(!e);
    got = v;
  });
  drain(io);
  BOOST_TEST(got == 21);
}

// ---------------------------------------------------------------------------------------
// Ways of finishing

BOOST_AUTO_TEST_CASE(stopped_task_gives_default_value) {
  asio::io_context io;
  coop::cooperator coop(io);
  auto task = coop.cooperate(endless());
  std::optional<std::string> got;
  std::exception_ptr error;
  task.when_done([&](std::exception_ptr e, std::string v) {
    error = e;
    got = std::move(v);
  });
  io.poll_one();
  task.stop();
  drain(io);
  BOOST_TEST(kind(error) == coop_test::kind<coop::task_stopped>());
  BOOST_TEST((got && got->empty()));
}

BOOST_AUTO_TEST_CASE(stopped_cooperator_gives_default_value) {
  asio::io_context io;
  auto coop = std::make_unique<coop::cooperator>(io);
  auto task = coop->cooperate(endless());
  std::exception_ptr error;
  bool called = false;
  task.when_done([&](std::exception_ptr e, std::string v) {
    called = true;
    error = e;
    BOOST_TEST(v.empty());
  });
  coop->stop();
  drain(io);
  BOOST_TEST(called);
  BOOST_TEST(kind(error) == coop_test::kind<coop::scheduler_stopped>());
}

BOOST_AUTO_TEST_CASE(sliced_task_keeps_part_one_signature) {
  asio::io_context io;
  coop::cooperator coop(io);
  coop::cooperative_task plain = coop.cooperate(count_to(2, 3));
  bool called = false;
  plain.when_done([&](std::exception_ptr e) {
    called = true;
    BOOST_TEST(!e);
  });
  drain(io);
  BOOST_TEST(called);
}

BOOST_AUTO_TEST_CASE(several_waiters_each_get_a_copy) {
  asio::io_context io;
  coop::cooperator coop(io);
  auto task = coop.cooperate([]() -> coop::steps_of<std::vector<int>> {
    co_yield coop::next;
    co_return std::vector<int>{1, 2, 3};
  });
  std::vector<std::vector<int>> seen;
  for (int i = 0; i < 3; ++i) task.when_done([&](std::exception_ptr, std::vector<int> v) { seen.push_back(v); });
  drain(io);
  task.when_done([&](std::exception_ptr, std::vector<int> v) { seen.push_back(v); });  // after the end
  drain(io);
  BOOST_REQUIRE(seen.size() == 4u);
  for (auto& v : seen) BOOST_TEST((v == std::vector<int>{1, 2, 3}));
}

BOOST_AUTO_TEST_CASE(cancelled_wait_gives_operation_aborted_and_default) {
  asio::io_context io;
  coop::cooperator coop(io);
  auto task = coop.cooperate(endless());
  asio::cancellation_signal signal;
  std::exception_ptr error;
  std::optional<std::string> got;
  task.when_done(asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e, std::string v) {
    error = e;
    got = std::move(v);
  }));
  io.poll_one();
  signal.emit(asio::cancellation_type::total);
  // The task is endless: step the context a bounded number of times, not until idle.
  for (int i = 0; i < 20 && !got; ++i) io.poll_one();
  BOOST_TEST(is_operation_aborted(error));
  BOOST_TEST((got && got->empty()));
  BOOST_CHECK_NO_THROW(task.stop());  // the task ran on
  drain(io);
}

BOOST_AUTO_TEST_CASE(move_only_value_through_coiterate) {
  asio::io_context io;
  coop::cooperator coop(io);
  int got = 0;
  coop.coiterate(make_token(77), [&](std::exception_ptr e, token_value t) {
    BOOST_TEST(!e);
    BOOST_REQUIRE(t.p);
    got = *t.p;
  });
  drain(io);
  BOOST_TEST(got == 77);
}

BOOST_AUTO_TEST_CASE(coiterate_terminal_cancellation_stops_and_gives_default) {
  asio::io_context io;
  coop::cooperator coop(io);
  asio::cancellation_signal signal;
  std::exception_ptr error;
  bool called = false;
  coop.coiterate(endless(), asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e, std::string v) {
                   called = true;
                   error = e;
                   BOOST_TEST(v.empty());
                 }));
  io.poll_one();
  signal.emit(asio::cancellation_type::terminal);
  drain(io);
  BOOST_TEST(called);
  BOOST_TEST(kind(error) == coop_test::kind<coop::task_stopped>());
}

BOOST_AUTO_TEST_CASE(steps_of_with_a_deferred_timer) {
  asio::io_context io;
  coop::cooperator coop(io);
  asio::steady_timer timer(io);
  int got = 0;
  coop.coiterate(
      [&]() -> coop::steps_of<int> {
        timer.expires_at(asio::steady_timer::time_point::min());  // due at once
        co_yield timer.async_wait(asio::deferred);
        co_return 5;
      },
      [&](std::exception_ptr e, int v) {
        BOOST_TEST(!e);
        got = v;
      });
  BOOST_TEST(poll_until(io, [&] { return got != 0; }));
  BOOST_TEST(got == 5);
}

BOOST_AUTO_TEST_CASE(default_cooperator_free_functions) {
  asio::io_context io;
  int a = 0, b = 0;
  auto task = coop::cooperate(io.get_executor(), count_to(2, 1));
  task.when_done([&](std::exception_ptr, int v) { a = v; });
  coop::coiterate(io.get_executor(), count_to(1, 2), [&](std::exception_ptr, int v) { b = v; });
  drain(io);
  BOOST_TEST(a == 1);
  BOOST_TEST(b == 2);
}

// ---------------------------------------------------------------------------------------
// returning(work)

BOOST_AUTO_TEST_CASE(returning_hands_back_the_work_when_done) {
  lifetimes life;
  {
    asio::io_context io;
    coop::cooperator coop(io);
    auto task = coop.cooperate(coop::returning(counted_work(&life, 3)));
    int units = 0;
    task.when_done([&](std::exception_ptr e, counted_work w) {
      BOOST_TEST(!e);
      units = w.units;
    });
    drain(io);
    BOOST_TEST(units == 3);
  }
  BOOST_TEST(life.constructed > 0);
  BOOST_TEST(life.alive() == 0);
}

BOOST_AUTO_TEST_CASE(returning_coiterate_moves_the_work_on_every_way_of_finishing) {
  lifetimes life;
  {
    asio::io_context io;
    coop::cooperator coop(io);
    std::vector<std::pair<std::string, int>> seen;
    auto record = [&](std::exception_ptr e, counted_work w) { seen.emplace_back(kind(e), w.units); };
    coop.coiterate(coop::returning(counted_work(&life, 2)), record);         // done
    coop.coiterate(coop::returning(counted_work(&life, 2, true)), record);   // fails
    auto stopped = coop.cooperate(coop::returning(counted_work(&life, 1 << 30)));
    stopped.when_done(record);
    while (seen.size() < 2u) io.run_one();  // the first two finish, whatever the slice
    stopped.stop();
    drain(io);
    auto sched = coop.cooperate(coop::returning(counted_work(&life, 1 << 30)));
    sched.when_done(record);
    io.restart();  // the drain above ran out of work, which stops the context
    io.poll_one();
    coop.stop();
    drain(io);
    BOOST_REQUIRE(seen.size() == 4u);
    BOOST_TEST(seen[0].first == "null");
    BOOST_TEST(seen[0].second == 2);
    BOOST_TEST(seen[1].first == coop_test::kind<unit_error>());
    BOOST_TEST(seen[1].second == 2);
    BOOST_TEST(seen[2].first == coop_test::kind<coop::task_stopped>());
    BOOST_TEST(seen[2].second >= 1);
    BOOST_TEST(seen[3].first == coop_test::kind<coop::scheduler_stopped>());
    BOOST_TEST(seen[3].second >= 1);
  }
  BOOST_TEST(life.alive() == 0);
}

BOOST_AUTO_TEST_CASE(returning_unit_that_stops_its_own_task_hands_back_the_finished_unit) {
  {
    asio::io_context io;
    coop::cooperator coop(io);
    coop::result_task<std::function<coop::step()>> task;
    int seen = -1;
    auto units = std::make_shared<int>(0);
    task = coop.cooperate(coop::returning(std::function<coop::step()>([&, units] {
      ++*units;
      task.stop();  // the waiter below completes only after this unit has ended
      ++*units;
      return coop::step::more;
    })));
    task.when_done([&](std::exception_ptr e, std::function<coop::step()> w) {
      BOOST_TEST(kind(e) == coop_test::kind<coop::task_stopped>());
      BOOST_TEST(static_cast<bool>(w));
      seen = *units;
    });
    drain(io);
    BOOST_TEST(seen == 2);
  }
}

BOOST_AUTO_TEST_CASE(returning_coiterate_self_stop_through_cooperator_moves_final_work) {
  lifetimes life;
  {
    asio::io_context io;
    coop::cooperator coop(io);
    int units = -1;
    struct stopper {
      lifetimes* life;
      coop::cooperator* c;
      int units = 0;
      coop::step operator()() {
        ++units;
        c->stop();
        ++units;  // after the stop: the completion must see it
        return coop::step::more;
      }
    };
    coop.coiterate(coop::returning(stopper{&life, &coop}), [&](std::exception_ptr e, stopper s) {
      BOOST_TEST(kind(e) == coop_test::kind<coop::scheduler_stopped>());
      units = s.units;
    });
    drain(io);
    BOOST_TEST(units == 2);
  }
}

BOOST_AUTO_TEST_CASE(returning_work_without_default_constructor_cancelled_wait_gets_a_copy) {
  lifetimes life;
  {
    asio::io_context io;
    coop::cooperator coop(io, one_unit_per_tick());
    auto task = coop.cooperate(coop::returning(counted_work(&life, 1 << 30)));
    asio::cancellation_signal signal;
    std::exception_ptr error;
    int units = -1;
    task.when_done(asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e, counted_work w) {
      error = e;
      units = w.units;
    }));
    io.poll_one();
    io.poll_one();
    signal.emit(asio::cancellation_type::terminal);
    // The task runs on (a long one): step the context a bounded number of times.
    for (int i = 0; i < 20 && units < 0; ++i) io.poll_one();
    BOOST_TEST(is_operation_aborted(error));
    BOOST_TEST(units >= 0);
    task.stop();
    drain(io);
  }
  BOOST_TEST(life.alive() == 0);
}

