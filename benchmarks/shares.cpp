// SPDX-License-Identifier: BSL-1.0
// coop_bench (g) shares and fairness by time: how the busy time splits between tasks whose
// units cost 1 us and 100 us (fairness::time against Twisted's units), the split of shares
// 100/200/400, what fairness::time costs per trivial unit at 1,000 tasks, and the split
// over time when another thread calls set_shares().
#include "bench.hpp"

#include <coop/coop.hpp>

#include <atomic>
#include <thread>

namespace bench {

namespace {

// A task's unit: busy for its calibrated steps; the wall time it took is added to `busy`.
struct timed_busy_work {
  std::uint32_t steps;
  std::atomic<std::int64_t>* busy;
  std::uint64_t state = 1;
  coop::step operator()() noexcept {
    const auto start = clock::now();
    busy_unit(state, steps);
    busy->fetch_add((clock::now() - start).count(), std::memory_order_relaxed);
    return coop::step::more;
  }
};

// Runs tasks with the given unit costs and shares on one cooperator for `window`; returns
// each task's part of the busy time.
std::vector<double> split(coop::fairness fairness, const std::vector<std::uint32_t>& steps,
                          const std::vector<unsigned>& shares, std::chrono::milliseconds window) {
  asio::io_context ctx;
  coop::cooperator cooperator(ctx, {.fairness = fairness});
  std::vector<std::atomic<std::int64_t>> busy(steps.size());
  for (std::size_t i = 0; i < steps.size(); ++i)
    (void)cooperator.cooperate(timed_busy_work{steps[i], &busy[i]}, {.shares = shares[i]});
  asio::steady_timer timer(ctx, window);
  timer.async_wait([&](boost::system::error_code) { cooperator.stop(); });
  ctx.run();
  double total = 0;
  for (auto& b : busy) total += static_cast<double>(b.load());
  std::vector<double> out;
  for (auto& b : busy) out.push_back(total > 0 ? static_cast<double>(b.load()) / total : 0);
  return out;
}

// Nanoseconds per trivial unit, `tasks` tasks sharing `total` units, in one run.
double trivial_ns_per_unit(coop::fairness fairness, std::uint64_t tasks, std::uint64_t total) {
  asio::io_context ctx;
  coop::cooperator cooperator(ctx, {.fairness = fairness});
  const std::uint64_t per_task = total / tasks;
  for (std::uint64_t i = 0; i < tasks; ++i)
    (void)cooperator.cooperate([state = i + 1, left = per_task]() mutable noexcept {
      lcg_step(state);
      return --left == 0 ? coop::step::done : coop::step::more;
    });
  const auto start = clock::now();
  ctx.run();
  return to_ns(clock::now() - start) / static_cast<double>(per_task * tasks);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

json::array pct(const std::vector<double>& parts) {
  json::array a;
  for (double p : parts) a.push_back(100 * p);
  return a;
}

}  // namespace

void run_shares(const settings& config, json::object& out) {
  const auto window = config.quick ? std::chrono::milliseconds(300) : std::chrono::milliseconds(2000);
  const std::uint32_t us1 = calibrate_busy_steps(std::chrono::microseconds(1));
  const std::uint32_t us10 = calibrate_busy_steps(std::chrono::microseconds(10));
  const std::uint32_t us100 = calibrate_busy_steps(std::chrono::microseconds(100));

  json::object o;
  o["window_ms"] = window.count();
  o["pair_time_pct"] = pct(split(coop::fairness::time, {us1, us100}, {100, 100}, window));
  o["pair_units_pct"] = pct(split(coop::fairness::units, {us1, us100}, {100, 100}, window));
  o["trio_time_pct"] = pct(split(coop::fairness::time, {us1, us10, us100}, {100, 200, 400}, window));

  // fairness::time against units per trivial unit at 1,000 tasks, runs interleaved.
  std::vector<double> by_time, by_units;
  const int runs = config.quick ? 1 : config.repetitions;
  for (int i = 0; i < runs; ++i) {
    by_units.push_back(trivial_ns_per_unit(coop::fairness::units, 1'000, config.total_units));
    by_time.push_back(trivial_ns_per_unit(coop::fairness::time, 1'000, config.total_units));
  }
  o["trivial_runs"] = runs;
  o["trivial_units_ns"] = median(by_units);
  o["trivial_time_ns"] = median(by_time);

  // The split over time: two tasks of 10 us units with equal shares; halfway another
  // thread gives the first 300 shares. Sampled every 50 ms by a timer on the same context.
  {
    asio::io_context ctx;
    coop::cooperator cooperator(ctx, {.fairness = coop::fairness::time});
    std::atomic<std::int64_t> busy[2]{};
    coop::cooperative_task first = cooperator.cooperate(timed_busy_work{us10, &busy[0]});
    (void)cooperator.cooperate(timed_busy_work{us10, &busy[1]});
    json::array series;
    const auto start = clock::now();
    const auto step = std::chrono::milliseconds(50);
    asio::steady_timer timer(ctx);
    std::int64_t last[2] = {0, 0};
    std::function<void()> sample = [&] {
      timer.expires_after(step);
      timer.async_wait([&](boost::system::error_code) {
        const std::int64_t now[2] = {busy[0].load(), busy[1].load()};
        const double d0 = static_cast<double>(now[0] - last[0]), d1 = static_cast<double>(now[1] - last[1]);
        last[0] = now[0];
        last[1] = now[1];
        series.push_back({std::chrono::duration<double, std::milli>(clock::now() - start).count(),
                          d0 + d1 > 0 ? 100 * d0 / (d0 + d1) : 0.0});
        if (clock::now() - start < 2 * window) sample();
        else cooperator.stop();
      });
    };
    sample();
    std::thread changer([&] {
      std::this_thread::sleep_until(start + window);
      first.set_shares(300);
    });
    ctx.run();
    changer.join();
    o["set_shares_at_ms"] = static_cast<double>(window.count());
    o["set_shares_series"] = std::move(series);
  }
  out["shares"] = std::move(o);
}

}  // namespace bench
