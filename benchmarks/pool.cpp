// SPDX-License-Identifier: BSL-1.0
// coop_bench (i) the cooperator pool: units per second of 1,000 tasks of ~10 us CPU-bound
// units on a pool of two members with the io_context run by two threads, against one
// cooperator on one thread; and a pause+resume pair on a pool's task against one on a
// cooperator's; and the balance work stealing brings to tasks that all start on one member.
#include "bench.hpp"

#include <coop/coop.hpp>

#include <thread>

namespace bench {

namespace {

constexpr std::size_t pool_tasks = 1'000;
constexpr std::size_t balance_tasks = 400;

struct busy_forever {
  std::uint32_t steps;
  std::uint64_t state;
  coop::step operator()() noexcept {
    busy_unit(state, steps);
    return coop::step::more;
  }
};

// Units per second over `window` after a warm-up, `threads` threads running the context.
// Units are counted from the stats, which grow as ticks end (a tick is 1 ms here, so the
// count is off by at most a tick per member out of a second's).
template <class Scheduler> double units_per_second(Scheduler& s, asio::io_context& io, int threads,
                                                   std::uint32_t steps, std::chrono::milliseconds window) {
  for (std::size_t i = 0; i < pool_tasks; ++i) (void)s.cooperate(busy_forever{steps, i + 1});
  std::vector<std::thread> runners;
  for (int i = 0; i < threads; ++i) runners.emplace_back([&io] { io.run(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // warm-up: every thread busy
  const std::uint64_t units0 = s.stats().units;
  const auto t0 = clock::now();
  std::this_thread::sleep_for(window);
  const std::uint64_t units1 = s.stats().units;
  const auto t1 = clock::now();
  s.stop();  // every task finishes: the context runs out of work
  for (std::thread& t : runners) t.join();
  return static_cast<double>(units1 - units0) / std::chrono::duration<double>(t1 - t0).count();
}

// Nanoseconds per pause+resume pair on idle tasks (the context does not run), taken in turn.
template <class Scheduler> double pause_resume_ns(Scheduler& s, int pairs) {
  std::vector<coop::cooperative_task> tasks;
  for (std::size_t i = 0; i < pool_tasks; ++i) tasks.push_back(s.cooperate(busy_forever{1, i + 1}));
  const auto start = clock::now();
  for (int i = 0; i < pairs; ++i) {
    coop::cooperative_task& t = tasks[static_cast<std::size_t>(i) % tasks.size()];
    t.pause();
    t.resume();
  }
  const double ns = to_ns(clock::now() - start) / pairs;
  s.stop();
  return ns;
}

// Balance: `tasks` tasks all on member 0 of a pool of two (as many were placed on member 1
// and stopped before the context ran), then `window` of running on two threads from the
// start: Jain's index of the units each task ran, and each member's busy time over the
// window. Work stealing has to even the members out; without it, member 1 idles.
struct balance_result {
  double jain;
  double busy0, busy1;  // fractions of the window
  std::uint64_t moved;
};
balance_result balance(std::size_t tasks, std::uint32_t steps, std::chrono::milliseconds window) {
  asio::io_context io;
  coop::cooperator_pool pool(io, 2, {.slice = std::chrono::milliseconds(1)});
  std::vector<coop::cooperative_task> all, kept;
  for (std::size_t i = 0; i < 2 * tasks; ++i) all.push_back(pool.cooperate(busy_forever{steps, i + 1}));
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (i % 2) all[i].stop();  // an idle pool deals tasks out in turn: these went to member 1
    else kept.push_back(all[i]);
  }
  const auto busy = [&](std::size_t m) { return pool.member_stats(m).busy; };
  const auto b0 = busy(0), b1 = busy(1);
  std::vector<std::thread> runners;
  const auto t0 = clock::now();
  for (int i = 0; i < 2; ++i) runners.emplace_back([&io] { io.run(); });
  std::this_thread::sleep_for(window);
  std::vector<std::uint64_t> units;
  for (const auto& t : kept) units.push_back(t.stats().units);
  const auto e0 = busy(0), e1 = busy(1);
  const double seconds = std::chrono::duration<double>(clock::now() - t0).count();
  const std::uint64_t moved = pool.stats().moved_in;
  pool.stop();
  for (std::thread& t : runners) t.join();
  const auto frac = [&](std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count() / seconds; };
  return {jain_index(units), frac(e0 - b0), frac(e1 - b1), moved};
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

void run_pool(const settings& config, json::object& out) {
  const auto window = config.quick ? std::chrono::milliseconds(200) : std::chrono::milliseconds(1000);
  const std::uint32_t steps = calibrate_busy_steps(std::chrono::microseconds(10));
  const int runs = config.quick ? 1 : config.repetitions;
  const int pairs = config.quick ? 20'000 : 200'000;
  std::vector<double> single, pooled, single_ctl, pooled_ctl, jain, busy0, busy1, moved;
  for (int r = 0; r < runs; ++r) {  // interleaved, so drifts of the machine hit both
    {
      asio::io_context io;
      coop::cooperator c(io, {.slice = std::chrono::milliseconds(1)});
      single.push_back(units_per_second(c, io, 1, steps, window));
    }
    {
      asio::io_context io;
      coop::cooperator_pool p(io, 2, {.slice = std::chrono::milliseconds(1)});
      pooled.push_back(units_per_second(p, io, 2, steps, window));
    }
    {
      const balance_result b = balance(balance_tasks, steps, window);
      jain.push_back(b.jain);
      busy0.push_back(b.busy0);
      busy1.push_back(b.busy1);
      moved.push_back(static_cast<double>(b.moved));
    }
    {
      asio::io_context io;
      coop::cooperator c(io);
      single_ctl.push_back(pause_resume_ns(c, pairs));
    }
    {
      asio::io_context io;
      coop::cooperator_pool p(io, 2);
      pooled_ctl.push_back(pause_resume_ns(p, pairs));
    }
  }
  json::object o;
  o["runs"] = runs;
  o["tasks"] = pool_tasks;
  o["unit_us"] = busy_unit_us(steps);
  o["window_ms"] = window.count();
  o["single_units_per_s"] = median_of(single);
  o["pool2_units_per_s"] = median_of(pooled);
  o["scaling"] = median_of(single) > 0 ? median_of(pooled) / median_of(single) : 0.0;
  o["pause_resume_single_ns"] = median_of(single_ctl);
  o["pause_resume_pool_ns"] = median_of(pooled_ctl);
  o["balance_tasks"] = balance_tasks;
  o["balance_jain"] = median_of(jain);
  o["balance_busy0"] = median_of(busy0);
  o["balance_busy1"] = median_of(busy1);
  o["balance_moved"] = median_of(moved);
  out["pool"] = std::move(o);
}

}  // namespace bench
