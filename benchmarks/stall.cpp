// SPDX-License-Identifier: BSL-1.0
// coop_bench (j) the stall detector: how late after the threshold on_stall is called for
// units that stall now and then (a 10 ms threshold, 50 ms units, 30 ms apart), and that
// units under the threshold (1 us to 5 ms) are never reported, over a long window.
#include "bench.hpp"

#include <coop/coop.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <mutex>

namespace bench {

namespace {

constexpr auto threshold = std::chrono::milliseconds(10);

/// Spins on the clock until `length` has passed since the unit began.
void spin_for(clock::duration length) noexcept {
  const auto end = clock::now() + length;
  while (clock::now() < end) {
  }
}

struct delays {
  std::vector<double> after_threshold_us;  // each report's call, from its unit's start + threshold
  std::vector<double> running_ms;          // stall_report::running
  std::size_t with_backtrace = 0;
};

// `stalls` one-unit tasks of 50 ms, each made after 30 ms without ticks (a server stalls
// now and then, not all the time); each unit stores when it began, the watchdog's
// on_stall reads it while the unit still runs.
delays measure_delays(int stalls) {
  asio::io_context ctx;
  std::atomic<std::int64_t> unit_began{0};
  std::mutex m;
  delays d;
  coop::cooperator cooperator(
      ctx, {.stall_threshold = threshold, .on_stall = [&](const coop::stall_report& r) {
              const auto now = clock::now().time_since_epoch();
              const auto due = clock::duration(unit_began.load(std::memory_order_acquire)) + threshold;
              std::lock_guard lock(m);
              d.after_threshold_us.push_back(to_us(now - due));
              d.running_ms.push_back(std::chrono::duration<double, std::milli>(r.running).count());
              if (!r.backtrace.empty()) ++d.with_backtrace;
            }});
  asio::steady_timer gap(ctx);
  std::function<void(int)> next = [&](int left) {
    if (left == 0) return;
    gap.expires_after(std::chrono::milliseconds(30));
    gap.async_wait([&, left](boost::system::error_code) {
      cooperator
          .cooperate([&]() noexcept {
            unit_began.store(clock::now().time_since_epoch().count(), std::memory_order_release);
            spin_for(std::chrono::milliseconds(50));
            return coop::step::done;
          })
          .when_done([&, left](std::exception_ptr) { next(left - 1); });
    });
  };
  next(stalls);
  ctx.run();
  return d;
}

struct quiet_run {
  std::uint64_t units = 0;
  std::uint64_t reports = 0;
  double longest_unit_ms = 0;  // the longest unit as it measured itself (wall)
};

// Four tasks whose units last 1 us to 5 ms (log-uniform, a fixed sequence) for `window`, a
// 10 ms threshold: every report is a false one.
quiet_run measure_quiet(std::chrono::milliseconds window) {
  asio::io_context ctx;
  std::atomic<std::uint64_t> reports{0};
  coop::cooperator cooperator(ctx, {.stall_threshold = threshold,
                                    .on_stall = [&](const coop::stall_report&) { reports.fetch_add(1); }});
  quiet_run q;
  for (std::uint64_t i = 0; i < 4; ++i)
    (void)cooperator.cooperate([&q, state = i + 1]() mutable noexcept {
      state = state * 6364136223846793005u + 1442695040888963407u;
      // 2^0 .. 2^12.3 us: 1 us to 5 ms, each octave as likely.
      const double log2_us = static_cast<double>(state >> 40) / static_cast<double>(1ull << 24) * 12.29;
      const auto length = std::chrono::duration_cast<clock::duration>(
          std::chrono::duration<double, std::micro>(std::exp2(log2_us)));
      const auto began = clock::now();
      spin_for(length);
      q.longest_unit_ms = std::max(q.longest_unit_ms, std::chrono::duration<double, std::milli>(clock::now() - began).count());
      ++q.units;
      return coop::step::more;
    });
  asio::steady_timer timer(ctx, window);
  timer.async_wait([&](boost::system::error_code) { cooperator.stop(); });
  ctx.run();
  q.reports = reports.load();
  return q;
}

}  // namespace

void run_stall(const settings& config, json::object& out) {
  const int stalls = config.quick ? 5 : 20;
  delays d = measure_delays(stalls);
  json::object o;
  o["threshold_ms"] = static_cast<double>(threshold.count());
  o["unit_ms"] = 50.0;
  o["stalls"] = stalls;
  o["reports"] = d.after_threshold_us.size();
  o["with_backtrace"] = d.with_backtrace;
  json::array delays_us, running_ms;
  for (double v : d.after_threshold_us) delays_us.push_back(v);
  for (double v : d.running_ms) running_ms.push_back(v);
  o["delays_us"] = std::move(delays_us);
  o["running_ms"] = std::move(running_ms);
  std::sort(d.after_threshold_us.begin(), d.after_threshold_us.end());
  o["delay_p50_us"] = percentile(d.after_threshold_us, 50);
  o["delay_max_us"] = d.after_threshold_us.empty() ? 0.0 : d.after_threshold_us.back();

  const quiet_run q = measure_quiet(config.stall_window);
  o["quiet_window_s"] = std::chrono::duration<double>(config.stall_window).count();
  o["quiet_units"] = q.units;
  o["quiet_reports"] = q.reports;
  o["quiet_longest_unit_ms"] = q.longest_unit_ms;
  out["stall"] = std::move(o);
}

}  // namespace bench
