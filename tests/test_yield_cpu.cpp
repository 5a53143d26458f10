// SPDX-License-Identifier: BSL-1.0
// cooperator_options::yield_cpu: after a tick that leaves tasks runnable the thread yields
// the CPU to the OS, outside the cooperator's lock; after a tick that ran everything it
// does not, nor with the option off. This executable defines sched_yield(), what
// std::this_thread::yield() calls with glibc, to count the calls and to see what the
// yielding thread can do.
#define BOOST_TEST_MODULE yield_cpu
#include <boost/test/unit_test.hpp>

#include "support/manual_executor.hpp"
#include "support/one_unit_per_tick.hpp"
#include "support/print_task_state.hpp"
#include "support/shake_out.hpp"

#include <coop/coop.hpp>

#include <chrono>
#include <functional>
#include <future>
#include <thread>

namespace {

int yields = 0;
std::function<void()> at_yield;  // what a test does while the thread yields

}  // namespace

extern "C" int sched_yield() noexcept {
  ++yields;
  if (at_yield) at_yield();
  return 0;
}

namespace {

auto units(int n) {
  return [n]() mutable { return --n > 0 ? coop::step::more : coop::step::done; };
}

struct reset_yields {
  reset_yields() { yields = 0; }
  ~reset_yields() { at_yield = nullptr; }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(a_tick_that_leaves_tasks_runnable_yields_once, reset_yields) {
  coop_test::manual_context ctx;
  coop::cooperator c(ctx, coop_test::one_unit_per_tick());
  auto a = c.cooperate(units(3));
  auto b = c.cooperate(units(3));
  // Six ticks of one unit: the first five leave a task runnable, the last none.
  std::size_t ticks = 0;
  while (c.stats().finished < 2 && ticks < 100) ticks += ctx.poll_one();
  BOOST_TEST(c.stats().units == 6u);
  BOOST_TEST(c.stats().ticks == 6u);
  BOOST_TEST(yields == 5);
}

// stop() from another thread waits for a tick that holds the lock: called while the
// thread yields, it must not wait for the yielding thread.
BOOST_FIXTURE_TEST_CASE(the_yield_is_outside_the_lock, reset_yields) {
  coop_test::manual_context ctx;
  coop::cooperator c(ctx, coop_test::one_unit_per_tick());
  auto a = c.cooperate(units(100));
  auto b = c.cooperate(units(100));
  bool stopped_meanwhile = false;
  at_yield = [&] {
    at_yield = nullptr;
    std::promise<void> stopped;
    std::future<void> done = stopped.get_future();
    std::thread([&c, p = std::move(stopped)]() mutable {
      c.stop();
      p.set_value();
    }).detach();
    stopped_meanwhile = done.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  };
  ctx.poll_one();
  BOOST_TEST(yields == 1);
  BOOST_TEST_REQUIRE(stopped_meanwhile);
  BOOST_TEST(a.state() == coop::task_state::scheduler_stopped);
  BOOST_TEST(b.state() == coop::task_state::scheduler_stopped);
}

BOOST_FIXTURE_TEST_CASE(a_tick_that_runs_everything_does_not_yield, reset_yields) {
  coop_test::manual_context ctx;
  coop::cooperator c(ctx);  // 1 ms slices: these few units end within the first tick
  auto a = c.cooperate(units(5));
  auto b = c.cooperate(units(5));
  while (ctx.poll_one() != 0) {
  }
  BOOST_TEST(c.stats().finished == 2u);
  // The shake-out build ends every tick after one unit: then each but the last leaves
  // tasks runnable.
  BOOST_TEST(yields == (coop_test::shake_out ? static_cast<int>(c.stats().ticks) - 1 : 0));
}

BOOST_FIXTURE_TEST_CASE(yield_cpu_false_never_yields, reset_yields) {
  coop_test::manual_context ctx;
  coop::cooperator_options options = coop_test::one_unit_per_tick();
  options.yield_cpu = false;
  coop::cooperator c(ctx, options);
  auto a = c.cooperate(units(3));
  auto b = c.cooperate(units(3));
  while (ctx.poll_one() != 0) {
  }
  BOOST_TEST(c.stats().units == 6u);
  BOOST_TEST(yields == 0);
}
