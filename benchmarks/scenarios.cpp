// SPDX-License-Identifier: BSL-1.0
// The scenarios that need their own runner: (b) latency under load, (c) control from inside
// a unit, (d) memory, (e) fairness, (f) threads.
#include "bench.hpp"

#include <coop/coop.hpp>
#include <coop/detail/task_arena.hpp>

#include <malloc.h>

#include <atomic>
#include <functional>
#include <optional>
#include <thread>

namespace bench {
namespace {

using namespace std::chrono_literals;

struct counted_work {
  std::uint64_t state;
  std::uint64_t remaining;
  coop::step operator()() noexcept {
    lcg_step(state);
    return --remaining == 0 ? coop::step::done : coop::step::more;
  }
};

json::object summary_us(std::vector<double> samples, double limit_us) {
  std::sort(samples.begin(), samples.end());
  const auto over = std::count_if(samples.begin(), samples.end(), [&](double v) { return v > limit_us; });
  return {{"count", samples.size()},
          {"p50_us", percentile(samples, 50)},
          {"p99_us", percentile(samples, 99)},
          {"p999_us", percentile(samples, 99.9)},
          {"max_us", samples.empty() ? 0.0 : samples.back()},
          {"limit_us", limit_us},
          {"over_limit", over}};
}

// ---- (b) latency under load -------------------------------------------------------------------

constexpr auto timer_period = 2ms;
constexpr int load_tasks = 4;

/// A 2 ms periodic timer on an absolute schedule: every period of the window yields one
/// lateness sample. When the loop was blocked past several periods, all of them are served
/// by the one late firing (each late by what it waited), and the timer re-arms for the
/// next period still ahead.
class periodic_probe {
public:
  periodic_probe(asio::io_context& ctx, clock::time_point first, clock::time_point end, std::function<void()> at_end)
      : timer_(ctx), expected_(first), end_(end), at_end_(std::move(at_end)) {
    lateness_us_.reserve(static_cast<std::size_t>((end - first) / timer_period) + 2);
  }
  void start() { arm(); }
  std::vector<double>& lateness_us() { return lateness_us_; }

private:
  void arm() {
    timer_.expires_at(expected_);
    timer_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      const auto now = clock::now();
      while (expected_ <= now && expected_ <= end_) {
        lateness_us_.push_back(to_us(now - expected_));
        expected_ += timer_period;
      }
      if (expected_ > end_) {
        at_end_();
        return;
      }
      arm();
    });
  }

  asio::steady_timer timer_;
  clock::time_point expected_;
  clock::time_point end_;
  std::function<void()> at_end_;
  std::vector<double> lateness_us_;
};

enum class load { none, cooperator, one_handler };

json::object latency_case(const std::string& name, load kind, std::chrono::nanoseconds slice,
                          std::chrono::milliseconds window, std::uint32_t busy_steps, double unit_us) {
  asio::io_context ctx;
  handler_log ticks;
  ticks.reserve(static_cast<std::size_t>(window / 100us) + 16);
  ticks.unit_length =
      std::chrono::duration_cast<clock::duration>(std::chrono::duration<double, std::micro>(unit_us));
  if (kind == load::cooperator) ticks.slice = slice;
  // One unit of the load, timed so that a tick the OS or the VM disturbed can be told apart.
  auto unit = [&ticks, busy_steps](std::uint64_t& state) {
    const auto start = clock::now();
    ticks.unit_started(start);
    busy_unit(state, busy_steps);
    ticks.unit_ended(start, clock::now());
  };
  std::optional<coop::cooperator> cooperator;

  const long switches_before = involuntary_switches();
  const auto start = clock::now();
  const auto end = start + window;
  periodic_probe probe(ctx, start + timer_period, end, [&] {
    if (cooperator) cooperator->stop();
  });

  if (kind == load::cooperator) {
    // Ticks are timed from outside the library: the cooperator's strand runs on an
    // executor that times every function it executes, i.e. every strand run.
    coop::cooperator_options options;
    options.slice = slice;
    cooperator.emplace(asio::any_io_executor(timed_executor(ctx.get_executor(), &ticks)), std::move(options));
    for (int i = 0; i < load_tasks; ++i)
      (void)cooperator->cooperate([&unit, state = std::uint64_t(i + 1)]() mutable {
        unit(state);
        return coop::step::more;
      });
  } else if (kind == load::one_handler) {
    asio::post(ctx, [&] {
      const long waits = thread_voluntary_switches();
      const auto delay = thread_run_delay();
      const stopwatch watch;
      ticks.start(watch.started());
      std::uint64_t states[load_tasks] = {1, 2, 3, 4};
      while (clock::now() < end)
        for (auto& s : states) unit(s);
      const span s = watch.elapsed();
      ticks.add(s, thread_run_delay() - delay, thread_voluntary_switches() != waits, watch.started() + s.wall);
    });
  }
  probe.start();
  ctx.run();
  const auto elapsed = clock::now() - start;

  std::vector<double> lateness = std::move(probe.lateness_us());
  std::sort(lateness.begin(), lateness.end());
  const double slice_us = std::chrono::duration<double, std::micro>(slice).count();
  json::object row{{"case", name},
                   {"slice_ms", kind == load::cooperator ? json::value(slice_us / 1000.0) : json::value(nullptr)},
                   {"samples", lateness.size()},
                   {"p50_us", percentile(lateness, 50)},
                   {"p99_us", percentile(lateness, 99)},
                   {"max_us", lateness.empty() ? 0.0 : lateness.back()},
                   {"units", ticks.units},
                   {"elapsed_ms", to_us(elapsed) / 1000.0},
                   {"involuntary_switches", involuntary_switches() - switches_before}};
  if (kind != load::none) {
    // Wall time of every tick, of the ticks nothing outside the library disturbed (what the
    // library controls), and thread CPU time.
    std::vector<double> clean;
    for (std::size_t i = 0; i < ticks.wall_us.size(); ++i)
      if (!ticks.disturbed[i]) clean.push_back(ticks.wall_us[i]);
    row["ticks"] = summary_us(ticks.wall_us, slice_us + 50.0);
    row["ticks_undisturbed"] = summary_us(std::move(clean), slice_us + 50.0);
    row["ticks_cpu"] = summary_us(ticks.cpu_us, slice_us + 50.0);
    row["slow_units"] = ticks.slow_units;
    row["gap_stalls"] = ticks.gap_stalls;
    row["blocked_ticks"] = ticks.blocked;
    row["empty_strand_runs"] = ticks.empty_runs;
  }
  json::array cdf;
  for (double v : lateness) cdf.push_back(v);
  row["lateness_us"] = std::move(cdf);
  return row;
}

}  // namespace

void run_latency(const settings& config, json::object& out) {
  const std::uint32_t steps = calibrate_busy_steps(2us);
  const double unit_us = busy_unit_us(steps);
  json::array cases;
  cases.push_back(latency_case("no load", load::none, 0ns, config.latency_window, steps, unit_us));
  for (auto slice : {250us, 1000us, 4000us}) {
    const auto label = "coop, slice " + std::string(slice == 250us ? "0.25" : slice == 1000us ? "1" : "4") + " ms";
    cases.push_back(latency_case(label, load::cooperator, slice, config.latency_window, steps, unit_us));
  }
  cases.push_back(
      latency_case("job in one handler", load::one_handler, config.latency_window, config.latency_window, steps, unit_us));
  out["latency"] = {{"period_ms", 2},
                    {"tasks", load_tasks},
                    {"busy_steps", steps},
                    {"unit_us", unit_us},
                    {"window_ms", config.latency_window.count()},
                    {"cases", std::move(cases)}};
}

// ---- (c) control from inside a unit -----------------------------------------------------------

void run_control_inside(const settings& config, json::object& out) {
  json::array rows;
  for (std::uint64_t tasks : {std::uint64_t{1'000}, std::uint64_t{100'000}}) {
    asio::io_context ctx;
    coop::cooperator cooperator(ctx);
    std::vector<coop::cooperative_task> handles;
    handles.reserve(tasks);
    for (std::uint64_t i = 0; i < tasks; ++i)
      handles.push_back(cooperator.cooperate([] { return coop::step::more; }));

    // A driver task: each of its units does a batch of pause+resume pairs over the
    // others, timed inside the unit; the others run their (empty) units in between.
    constexpr std::uint64_t batch = 1'000;
    const std::uint64_t batches = config.quick ? 20 : (tasks > 1'000 ? 300 : 2'000);
    std::uint64_t done = 0;
    std::size_t next = 0;
    clock::duration spent{};
    (void)cooperator.cooperate([&]() {
      const auto start = clock::now();
      for (std::uint64_t k = 0; k < batch; ++k) {
        auto& task = handles[next];
        task.pause();
        task.resume();
        if (++next == handles.size()) next = 0;
      }
      spent += clock::now() - start;
      if (++done == batches) {
        cooperator.stop();
        return coop::step::done;
      }
      return coop::step::more;
    });
    ctx.run();
    rows.push_back(json::object{{"key", "pause_resume_inside"},
                                {"variant", "pause+resume pair, inside a unit"},
                                {"tasks", tasks},
                                {"ns_per_op", to_ns(spent) / static_cast<double>(done * batch)}});
  }
  out["control"].as_object()["inside"] = std::move(rows);
}

// ---- (d) memory -------------------------------------------------------------------------------

namespace {
std::uint64_t heap_in_use() {
  const auto info = ::mallinfo2();
  return info.uordblks + info.hblkhd;
}
}  // namespace

void run_memory(const settings& config, json::object& out) {
  auto trivial = [] { return coop::step::more; };
  asio::io_context ctx;
  coop::cooperator cooperator(ctx);
  // Memory earlier sections freed is not counted as this one's: the arena's empty chunks
  // kept for reuse and the heap's free pages go back first.
  coop::detail::task_arena::release_spare_chunks();
  ::malloc_trim(0);
  const auto rss_before = resident_bytes();
  const auto heap_before = heap_in_use();
  for (std::uint64_t i = 0; i < config.memory_tasks; ++i) (void)cooperator.cooperate(trivial);
  const auto rss_after = resident_bytes();
  const auto heap_after = heap_in_use();
  const double n = static_cast<double>(config.memory_tasks);
  out["memory"] = {{"tasks", config.memory_tasks},
                   {"callable_bytes", sizeof(trivial)},
                   {"rss_delta_bytes", rss_after - rss_before},
                   {"bytes_per_task", static_cast<double>(rss_after - rss_before) / n},
                   {"heap_bytes_per_task", static_cast<double>(heap_after - heap_before) / n}};
}

// ---- (e) fairness -----------------------------------------------------------------------------

void run_fairness(const settings& config, json::object& out) {
  constexpr std::size_t tasks = 100;
  asio::io_context ctx;
  coop::cooperator cooperator(ctx);
  std::vector<std::uint64_t> counts(tasks);
  for (std::size_t i = 0; i < tasks; ++i)
    (void)cooperator.cooperate([&counts, i, state = std::uint64_t(i + 1)]() mutable {
      lcg_step(state);
      ++counts[i];
      return coop::step::more;
    });
  asio::steady_timer timer(ctx, config.fairness_window);
  timer.async_wait([&](boost::system::error_code) { cooperator.stop(); });
  ctx.run();
  const auto [lo, hi] = std::minmax_element(counts.begin(), counts.end());
  std::uint64_t total = 0;
  for (auto c : counts) total += c;
  out["fairness"] = {{"tasks", tasks},
                     {"window_ms", config.fairness_window.count()},
                     {"jain", jain_index(counts)},
                     {"min_units", *lo},
                     {"max_units", *hi},
                     {"total_units", total}};
}

// ---- (f) threads ------------------------------------------------------------------------------

namespace {
json::object threads_case(const std::string& name, int runners, bool controller, std::uint64_t total) {
  constexpr std::uint64_t tasks = 1'000;
  asio::io_context ctx;
  coop::cooperator cooperator(ctx);
  auto guard = asio::make_work_guard(ctx);  // a paused last task must not let run() return
  std::atomic<std::uint64_t> finished{0};
  std::atomic<bool> all_done{false};
  std::vector<coop::cooperative_task> handles;
  handles.reserve(tasks);
  for (std::uint64_t i = 0; i < tasks; ++i) {
    handles.push_back(cooperator.cooperate(counted_work{1, total / tasks}));
    handles.back().when_done([&](std::exception_ptr) {
      if (finished.fetch_add(1) + 1 == tasks) {
        all_done = true;
        guard.reset();
      }
    });
  }

  std::uint64_t pairs = 0;
  const auto cpu_start = process_cpu_time();
  const auto start = clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < runners; ++i) threads.emplace_back([&] { ctx.run(); });
  std::thread control;
  if (controller)
    control = std::thread([&] {
      boost::system::error_code ec;
      std::size_t next = 0;
      while (!all_done.load(std::memory_order_relaxed)) {
        handles[next].pause(ec);
        handles[next].resume(ec);
        ++pairs;
        if (++next == handles.size()) next = 0;
      }
    });
  for (auto& t : threads) t.join();
  const auto elapsed = clock::now() - start;
  if (control.joinable()) control.join();
  const auto cpu = process_cpu_time() - cpu_start;
  const double units = static_cast<double>(total / tasks * tasks);
  json::object row{{"case", name},
                   {"threads", runners},
                   {"tasks", tasks},
                   {"ns_per_unit", to_ns(elapsed) / units},
                   {"cpu_ns_per_unit", to_ns(cpu) / units}};
  if (controller) {
    row["pause_resume_pairs"] = pairs;
    row["ns_per_pair"] = pairs ? to_ns(elapsed) / static_cast<double>(pairs) : 0.0;
  }
  return row;
}
}  // namespace

void run_threads(const settings& config, json::object& out) {
  json::array rows;
  rows.push_back(threads_case("1 thread", 1, false, config.total_units));
  rows.push_back(threads_case("2 threads", 2, false, config.total_units));
  rows.push_back(threads_case("2 threads + pause/resume from a 3rd", 2, true, config.total_units));
  out["threads"] = std::move(rows);
}

}  // namespace bench
