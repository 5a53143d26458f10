// SPDX-License-Identifier: BSL-1.0
// cooperator_pool on an io_context run by several threads: units of different members
// run at once, units of one task never overlap, and control from other threads keeps
// Part 1's promise (after pause() or stop() returns, no unit of that task starts) while
// stats are read concurrently. Also run under ThreadSanitizer (label "threads").
#define BOOST_TEST_MODULE threads_pool
#include <boost/test/unit_test.hpp>

#include <coop/coop.hpp>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// Runs `io` on `n` threads until it runs out of work.
struct runners {
  std::vector<std::thread> threads;
  runners(asio::io_context& io, int n) {
    for (int i = 0; i < n; ++i) threads.emplace_back([&io] { io.run(); });
  }
  ~runners() { join(); }
  void join() {
    for (std::thread& t : threads)
      if (t.joinable()) t.join();
  }
};

// Spins until `flag` is set or 20 s have passed (the machine may be loaded); true if set.
bool wait_for(const std::atomic<bool>& flag) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!flag.load(std::memory_order_acquire))
    if (std::chrono::steady_clock::now() > deadline) return false;
  return true;
}

// What a task's units tell the test: whether two of them ever overlapped, and how many ran.
struct probe {
  std::atomic<int> inside{0};
  std::atomic<bool> overlapped{false};
  std::atomic<std::uint64_t> units{0};
};

// Work that records its units in `p` and does `spin` steps of work in each.
auto probed(probe& p, int spin) {
  return [&p, spin] {
    if (p.inside.fetch_add(1) != 0) p.overlapped = true;
    p.units.fetch_add(1, std::memory_order_relaxed);
    for (int k = 0; k < spin; ++k) asm volatile("" ::: "memory");  // a little work
    p.inside.fetch_sub(1);
    return coop::step::more;
  };
}

// Stops tasks [first, last) one by one; true if none ran a unit in the `quiet` after its
// stop() returned.
bool stop_and_check_still(std::vector<coop::cooperative_task>& tasks, const std::vector<std::unique_ptr<probe>>& probes,
                          std::size_t first, std::size_t last, std::chrono::microseconds quiet) {
  bool still = true;
  for (std::size_t i = first; i < last; ++i) {
    tasks[i].stop();
    const std::uint64_t at_stop = probes[i]->units.load();
    std::this_thread::sleep_for(quiet);
    if (probes[i]->units.load() != at_stop) still = false;
  }
  return still;
}

// No task's units overlapped, every task ran, and the pool counted the units they did.
void check_probes(const std::vector<std::unique_ptr<probe>>& probes, const coop::cooperator_pool& pool) {
  std::uint64_t units = 0;
  for (const auto& p : probes) {
    BOOST_CHECK(!p->overlapped.load());
    BOOST_CHECK_GT(p->units.load(), 0u);
    units += p->units.load();
  }
  BOOST_CHECK_EQUAL(pool.stats().units, units);
}

}  // namespace

// Two tasks on two members: each one's first unit waits until the other's has begun. It
// can only end well if the two units run at the same time, on two threads.
BOOST_AUTO_TEST_CASE(units_of_two_members_run_at_once) {
  asio::io_context io;
  coop::cooperator_pool pool(io, 2);
  std::atomic<bool> began[2] = {false, false};
  std::atomic<bool> met[2] = {false, false};
  for (int i = 0; i < 2; ++i) {
    pool.cooperate([&, i] {
      began[i].store(true, std::memory_order_release);
      met[i].store(wait_for(began[1 - i]), std::memory_order_relaxed);
      return coop::step::done;
    });
  }
  BOOST_CHECK_EQUAL(pool.member_stats(0).runnable, 1u);
  BOOST_CHECK_EQUAL(pool.member_stats(1).runnable, 1u);
  runners r(io, 2);
  r.join();
  BOOST_CHECK(met[0].load());
  BOOST_CHECK(met[1].load());
  BOOST_CHECK_EQUAL(pool.stats().finished, 2u);
}

// Many tasks on two members run by three threads, paused, resumed and stopped from a
// controller thread while a reader takes stats. Each task checks that its units never
// overlap; after pause() or stop() returns, its unit count must not grow (until resume).
BOOST_AUTO_TEST_CASE(control_from_other_threads_while_members_run) {
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  coop::cooperator_pool pool(io, 2, {.slice = 200us});
  constexpr int n = 16;
  std::vector<std::unique_ptr<probe>> probes;
  std::vector<coop::cooperative_task> tasks;
  std::atomic<int> finished{0};
  for (int i = 0; i < n; ++i) {
    probes.push_back(std::make_unique<probe>());
    probe& p = *probes.back();
    tasks.push_back(pool.cooperate(probed(p, 200)));
    tasks.back().when_done([&finished](std::exception_ptr) { finished.fetch_add(1); });
  }
  runners r(io, 3);
  std::atomic<bool> done{false};
  std::atomic<bool> counts_ok{true};  // Boost.Test's checks are for the main thread only
  std::thread reader([&] {
    while (!done.load()) {
      const coop::cooperator_stats s = pool.stats();
      // Each count is published on its own (a task moving between two may be in both
      // for a moment), so each is bounded, not their sum.
      if (s.runnable > std::size_t{n} || s.paused > std::size_t{n} || s.waiting + s.queued != 0) counts_ok = false;
      for (const auto& t : tasks) (void)t.stats();
    }
  });
  bool still_after_pause = true;
  for (int round = 0; round < 200; ++round) {
    coop::cooperative_task& t = tasks[static_cast<std::size_t>(round % (n / 2))];
    probe& p = *probes[static_cast<std::size_t>(round % (n / 2))];
    t.pause();
    const std::uint64_t at_pause = p.units.load();
    std::this_thread::sleep_for(50us);
    if (p.units.load() != at_pause) still_after_pause = false;
    t.resume();
  }
  const bool still_after_stop = stop_and_check_still(tasks, probes, n / 2, n, 50us);
  pool.stop();
  done = true;
  reader.join();
  guard.reset();
  r.join();
  BOOST_CHECK(counts_ok.load());
  BOOST_CHECK(still_after_pause);
  BOOST_CHECK(still_after_stop);
  BOOST_CHECK_EQUAL(finished.load(), n);
  check_probes(probes, pool);
}

// max_active across the members while both run on their own threads and places pass
// between them: no more tasks are between their first and last unit than the limit, and
// every task runs to the end.
BOOST_AUTO_TEST_CASE(max_active_holds_across_members_running_at_once) {
  asio::io_context io;
  constexpr int limit = 3, n = 60;
  coop::cooperator_pool pool(io, 2, {.max_active = limit});
  std::atomic<int> open{0}, most{0}, done{0};
  for (int i = 0; i < n; ++i) {
    pool.cooperate([&, left = 1 + i % 5, first = true]() mutable {
      if (first) {
        first = false;
        const int now = open.fetch_add(1) + 1;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
      }
      for (int k = 0; k < 500; ++k) asm volatile("" ::: "memory");
      if (--left > 0) return coop::step::more;
      open.fetch_sub(1);
      done.fetch_add(1);
      return coop::step::done;
    });
  }
  runners r(io, 2);
  r.join();
  BOOST_CHECK_EQUAL(done.load(), n);
  BOOST_CHECK_LE(most.load(), limit);
  BOOST_CHECK_GE(most.load(), 1);
  BOOST_CHECK_EQUAL(pool.stats().finished, std::uint64_t{n});
  BOOST_CHECK_EQUAL(pool.stats().queued, 0u);
}

// Tasks move between members while other threads pause, resume and stop them. The tasks
// placed on member 1 are stopped first, so member 0 must give it tasks; pauses from two
// controller threads then keep leaving one member or the other idle, and tasks move back
// and forth. Units of a task never overlap, and once pause() or stop() returns no unit
// of the task starts, on any member.
BOOST_AUTO_TEST_CASE(moves_race_control_from_other_threads) {
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  coop::cooperator_pool pool(io, 2, {.slice = 100us});
  constexpr int n = 24;
  std::vector<std::unique_ptr<probe>> probes;
  std::vector<coop::cooperative_task> tasks, fillers;
  std::atomic<int> finished{0};
  for (int i = 0; i < n; ++i) {
    probes.push_back(std::make_unique<probe>());
    probe& p = *probes.back();
    tasks.push_back(pool.cooperate(probed(p, 100)));
    tasks.back().when_done([&finished](std::exception_ptr) { finished.fetch_add(1); });
    fillers.push_back(pool.cooperate([] { return coop::step::more; }));
  }
  // An idle pool deals tasks out in turn: every filler went to member 1.
  BOOST_CHECK_EQUAL(pool.member_stats(1).runnable, std::size_t{n});
  for (auto& f : fillers) f.stop();
  runners r(io, 2);
  std::atomic<bool> ok_after_pause{true};
  const auto control = [&](int first, int step) {
    for (int round = 0; round < 150; ++round) {
      // Pause a run of this thread's tasks (enough to empty a member now and then),
      // check each stays still, then resume them.
      std::vector<std::size_t> chosen;
      for (int i = first; i < n; i += step)
        if ((i / step + round) % 3 != 0) chosen.push_back(static_cast<std::size_t>(i));
      std::vector<std::uint64_t> at_pause;
      for (std::size_t i : chosen) {
        tasks[i].pause();
        at_pause.push_back(probes[i]->units.load());
      }
      std::this_thread::sleep_for(30us);
      for (std::size_t k = 0; k < chosen.size(); ++k)
        if (probes[chosen[k]]->units.load() != at_pause[k]) ok_after_pause = false;
      for (std::size_t i : chosen) tasks[i].resume();
    }
  };
  std::thread a(control, 0, 2), b(control, 1, 2);
  a.join();
  b.join();
  const bool still_after_stop = stop_and_check_still(tasks, probes, 0, n, 20us);
  const coop::cooperator_stats s = pool.stats();
  pool.stop();
  guard.reset();
  r.join();
  BOOST_CHECK(ok_after_pause.load());
  BOOST_CHECK(still_after_stop);
  BOOST_CHECK_EQUAL(finished.load(), n);
  BOOST_CHECK_GT(s.moved_in, 0u);
  BOOST_CHECK_EQUAL(s.moved_in, s.moved_out);
  BOOST_TEST_MESSAGE("tasks moved: " << s.moved_in);
  check_probes(probes, pool);
}
