// SPDX-License-Identifier: BSL-1.0
// The micro-measurements, run by Google Benchmark: (a) throughput of trivial units,
// (c) control operations from outside a tick, (g) a task's lifecycle (made, one unit,
// finished, awaited), and two reference figures (a clock read, one trivial unit in a loop). Each figure is the median of `repetitions` runs.
#include "bench.hpp"
#include "fiber_peers.hpp"

#include <coop/coop.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/use_future.hpp>

#include <benchmark/benchmark.h>

#include <future>
#include <iostream>
#include <map>
#include <memory>

namespace bench {
namespace {

/// The user's work in the throughput runs: `remaining` trivial units, then done.
struct counted_work {
  std::uint64_t state;
  std::uint64_t remaining;
  coop::step operator()() noexcept {
    lcg_step(state);
    return --remaining == 0 ? coop::step::done : coop::step::more;
  }
};

/// A task that never ends and is never run in the control measurements.
struct idle_work {
  coop::step operator()() const noexcept { return coop::step::more; }
};

/// One asio::post per unit: the handler runs a unit and posts itself again.
template <class Executor>
struct post_chain {
  Executor executor;
  counted_work* work;
  void operator()() {
    if ((*work)() == coop::step::more) asio::post(executor, std::move(*this));
  }
};

/// Hand-batched posting: a fixed number of units per handler.
template <class Executor>
struct batched_chain {
  Executor executor;
  counted_work* work;
  unsigned batch;
  void operator()() {
    for (unsigned i = 0; i < batch; ++i)
      if ((*work)() == coop::step::done) return;
    asio::post(executor, std::move(*this));
  }
};

asio::awaitable<void> await_chain(counted_work work) {
  while (work() == coop::step::more) co_await asio::post(asio::use_awaitable);
}

}  // namespace

// The benchmark's (manual) time is the thread's CPU time: every run here is single-threaded,
// and on a shared machine wall time also counts the time the OS gave to other processes.
// Wall time goes along as a counter.
void set_time(benchmark::State& state, span s) {
  state.SetIterationTime(std::chrono::duration<double>(s.cpu).count());
  auto& wall = state.counters["wall_ns"];
  wall.value += to_ns(s.wall);
  wall.flags = benchmark::Counter::kAvgIterations;
}

namespace {

/// Runs ctx until it is out of work and returns how long that took.
span time_run(asio::io_context& ctx) {
  const stopwatch watch;
  ctx.run();
  return watch.elapsed();
}

// ---- (a) throughput: `total` units split over `tasks` tasks -------------------------------

void tight_loop(benchmark::State& state, std::uint64_t total) {
  for (auto _ : state) {
    std::uint64_t s = 1;
    const stopwatch watch;
    for (std::uint64_t i = 0; i < total; ++i) lcg_step(s);
    set_time(state, watch.elapsed());
    benchmark::DoNotOptimize(s);
  }
}

// The same loop round-robin over the tasks' own states: what the memory of many tasks
// costs before any scheduling.
void tight_round_robin(benchmark::State& state, std::uint64_t tasks, std::uint64_t total) {
  for (auto _ : state) {
    std::vector<counted_work> works(tasks, counted_work{1, total / tasks});
    const stopwatch watch;
    for (std::uint64_t round = 0; round < total / tasks; ++round)
      for (auto& w : works) benchmark::DoNotOptimize(w());
    set_time(state, watch.elapsed());
  }
}

void coop_default(benchmark::State& state, std::uint64_t tasks, std::uint64_t total) {
  for (auto _ : state) {
    asio::io_context ctx;
    coop::cooperator cooperator(ctx);
    for (std::uint64_t i = 0; i < tasks; ++i) (void)cooperator.cooperate(counted_work{1, total / tasks});
    set_time(state, time_run(ctx));
  }
}

/// As a user measures it: `total` units over `tasks` tasks, each task made and awaited by
/// a callback inside the timed region, from the first cooperate() to the last handler.
void coop_as_a_user(benchmark::State& state, std::uint64_t tasks, std::uint64_t total) {
  for (auto _ : state) {
    asio::io_context ctx;
    coop::cooperator cooperator(ctx);
    std::uint64_t done = 0;
    const stopwatch watch;
    for (std::uint64_t i = 0; i < tasks; ++i)
      cooperator.cooperate(counted_work{i, total / tasks}).when_done([&done](std::exception_ptr) { ++done; });
    ctx.run();
    set_time(state, watch.elapsed());
    if (done != tasks) state.SkipWithError("a when_done handler did not run");
  }
}

template <class MakeExecutor>
void post_per_unit(benchmark::State& state, std::uint64_t tasks, std::uint64_t total, MakeExecutor make) {
  for (auto _ : state) {
    asio::io_context ctx;
    auto executor = make(ctx);
    std::vector<counted_work> works(tasks, counted_work{1, total / tasks});
    for (auto& w : works) asio::post(executor, post_chain<decltype(executor)>{executor, &w});
    set_time(state, time_run(ctx));
  }
}

void await_per_unit(benchmark::State& state, std::uint64_t tasks, std::uint64_t total) {
  for (auto _ : state) {
    asio::io_context ctx;
    for (std::uint64_t i = 0; i < tasks; ++i)
      asio::co_spawn(ctx, await_chain(counted_work{1, total / tasks}), asio::detached);
    set_time(state, time_run(ctx));
  }
}

void batched_posting(benchmark::State& state, std::uint64_t tasks, std::uint64_t total, unsigned batch) {
  for (auto _ : state) {
    asio::io_context ctx;
    auto executor = ctx.get_executor();
    std::vector<counted_work> works(tasks, counted_work{1, total / tasks});
    for (auto& w : works) asio::post(executor, batched_chain<decltype(executor)>{executor, &w, batch});
    set_time(state, time_run(ctx));
  }
}

// ---- (c) control, from outside a tick (the io_context is not running) ----------------------

void control_cooperate(benchmark::State& state, std::uint64_t tasks) {
  for (auto _ : state) {
    asio::io_context ctx;
    coop::cooperator cooperator(ctx);
    std::vector<coop::cooperative_task> handles;
    handles.reserve(tasks);
    const stopwatch watch;
    for (std::uint64_t i = 0; i < tasks; ++i) handles.push_back(cooperator.cooperate(idle_work{}));
    set_time(state, watch.elapsed());
  }
}

void control_pause_resume(benchmark::State& state, std::uint64_t tasks) {
  asio::io_context ctx;
  coop::cooperator cooperator(ctx);
  std::vector<coop::cooperative_task> handles;
  handles.reserve(tasks);
  for (std::uint64_t i = 0; i < tasks; ++i) handles.push_back(cooperator.cooperate(idle_work{}));
  std::size_t next = 0;
  for (auto _ : state) {
    auto& task = handles[next];
    task.pause();
    task.resume();
    if (++next == handles.size()) next = 0;
  }
}

void control_stop(benchmark::State& state, std::uint64_t tasks) {
  for (auto _ : state) {
    asio::io_context ctx;
    coop::cooperator cooperator(ctx);
    std::vector<coop::cooperative_task> handles;
    handles.reserve(tasks);
    for (std::uint64_t i = 0; i < tasks; ++i) handles.push_back(cooperator.cooperate(idle_work{}));
    const stopwatch watch;
    for (auto& task : handles) task.stop();
    set_time(state, watch.elapsed());
  }
}

// ---- task lifecycle: cooperate, one unit, finish, the when_done handler run -------------------

/// One trivial unit, then done.
struct one_unit_work {
  std::uint64_t state;
  coop::step operator()() noexcept {
    lcg_step(state);
    return coop::step::done;
  }
};

coop::steps_of<std::uint64_t> one_unit_steps(std::uint64_t state) {
  lcg_step(state);
  co_return state;
}

enum class lifecycle_kind { no_wait, plain, returning, steps_of, future, bound, no_wait_fresh };

/// Makes `tasks` tasks of `kind` on `cooperator` and runs `ctx` until they are done.
void lifecycle_round(asio::io_context& ctx, coop::cooperator& cooperator, std::uint64_t tasks, lifecycle_kind kind,
                     std::uint64_t& sum, std::vector<std::future<void>>& futures) {
  for (std::uint64_t i = 0; i < tasks; ++i) {
    switch (kind) {
      case lifecycle_kind::no_wait:
      case lifecycle_kind::no_wait_fresh: cooperator.cooperate(one_unit_work{i}); break;
      case lifecycle_kind::plain:
        cooperator.cooperate(one_unit_work{i}).when_done([&sum](std::exception_ptr) { ++sum; });
        break;
      case lifecycle_kind::returning:
        cooperator.cooperate(coop::returning(one_unit_work{i})).when_done([&sum](std::exception_ptr, one_unit_work w) {
          sum += w.state;
        });
        break;
      case lifecycle_kind::steps_of:
        cooperator.cooperate(one_unit_steps(i)).when_done([&sum](std::exception_ptr, std::uint64_t v) { sum += v; });
        break;
      case lifecycle_kind::future:
        futures.push_back(cooperator.cooperate(one_unit_work{i}).when_done(asio::use_future));
        break;
      case lifecycle_kind::bound:
        cooperator.cooperate(one_unit_work{i}).when_done(
            asio::bind_executor(ctx.get_executor(), [&sum](std::exception_ptr) { ++sum; }));
        break;
    }
  }
  ctx.run();
  ctx.restart();
  for (auto& f : futures) f.get();
  futures.clear();
}

/// `tasks` tasks made, run and (but for no_wait) awaited by a callback, all inside the
/// timed region: what a user's job costs beyond its units. The tasks join a long-lived
/// cooperator, as in a server, after one untimed round: its run queue has the room it
/// needs, and the memory the tasks take has been used once. (At 1,000,000 tasks a round on
/// a new cooperator spends ~20 ns per task in page faults of its run queue alone in this VM:
/// the queue is large enough that glibc maps it afresh each time; `no_wait_fresh` measures
/// that shape.)
void lifecycle(benchmark::State& state, std::uint64_t tasks, lifecycle_kind kind) {
  std::uint64_t sum = 0;
  std::vector<std::future<void>> futures;
  if (kind == lifecycle_kind::future) futures.reserve(tasks);
  if (kind == lifecycle_kind::no_wait_fresh) {
    for (auto _ : state) {
      asio::io_context ctx;
      coop::cooperator cooperator(ctx);
      const stopwatch watch;
      lifecycle_round(ctx, cooperator, tasks, kind, sum, futures);
      set_time(state, watch.elapsed());
    }
    return;
  }
  asio::io_context ctx;
  coop::cooperator cooperator(ctx);
  lifecycle_round(ctx, cooperator, tasks, kind, sum, futures);
  for (auto _ : state) {
    const stopwatch watch;
    lifecycle_round(ctx, cooperator, tasks, kind, sum, futures);
    set_time(state, watch.elapsed());
  }
  benchmark::DoNotOptimize(sum);
}

// ---- references -----------------------------------------------------------------------------

void reference_clock(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(clock::now());
}

void reference_unit(benchmark::State& state) {
  std::uint64_t s = 1;
  for (auto _ : state) lcg_step(s);
  benchmark::DoNotOptimize(s);
}

// ---- registration and collection -------------------------------------------------------------

/// What a registered benchmark measures: one operation of `section`/`variant` at `tasks`
/// tasks, `ops` of them per benchmark iteration.
struct entry {
  std::string section;
  std::string variant;
  std::uint64_t tasks;
  double ops;
};

/// Keeps the per-iteration real time of every repetition; optionally echoes the console.
class collector : public benchmark::BenchmarkReporter {
public:
  explicit collector(bool verbose) {
    if (verbose) console_ = std::make_unique<benchmark::ConsoleReporter>();
  }
  bool ReportContext(const Context& context) override {
    cpu_mhz_ = context.cpu_info.cycles_per_second / 1e6;
    return console_ ? console_->ReportContext(context) : true;
  }
  void ReportRuns(const std::vector<Run>& runs) override {
    if (console_) console_->ReportRuns(runs);
    for (const auto& run : runs) {
      if (run.error_occurred) {
        std::cerr << "benchmark " << run.benchmark_name() << " failed: " << run.error_message << "\n";
        continue;
      }
      if (run.run_type != Run::RT_Iteration) continue;
      // Manual-time runs carry their wall time as a counter; their "real" time is CPU time.
      auto& t = times_[run.run_name.function_name];
      if (auto wall = run.counters.find("wall_ns"); wall != run.counters.end()) {
        t.cpu.push_back(run.GetAdjustedRealTime());
        t.wall.push_back(wall->second.value);
      } else {
        t.cpu.push_back(run.GetAdjustedCPUTime());
        t.wall.push_back(run.GetAdjustedRealTime());
      }
    }
  }
  void Finalize() override {
    if (console_) console_->Finalize();
  }
  struct times_ns {
    std::vector<double> cpu, wall;  // per iteration, one entry per repetition
  };
  const std::map<std::string, times_ns>& times() const { return times_; }
  double cpu_mhz() const { return cpu_mhz_; }

private:
  std::unique_ptr<benchmark::ConsoleReporter> console_;
  std::map<std::string, times_ns> times_;
  double cpu_mhz_ = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

void run_micro(const settings& config, json::object& out, bool verbose) {
  std::map<std::string, entry> entries;
  const std::uint64_t total = config.total_units;
  const std::uint64_t task_counts[] = {1, 1'000, 100'000};

  // Heavy runs (one whole io_context run per iteration) use manual time; in quick mode one
  // iteration is enough for a smoke run.
  auto add = [&](const std::string& name, entry what, auto&& fn, bool manual) {
    entries.emplace(name, std::move(what));
    auto* b = benchmark::RegisterBenchmark(name.c_str(), std::forward<decltype(fn)>(fn));
    b->Unit(benchmark::kNanosecond)->Repetitions(config.repetitions);
    if (manual) {
      b->UseManualTime();
      if (config.quick) b->Iterations(1);
      else b->MinTime(0.1);
    } else {
      b->MinTime(config.quick ? 0.01 : 0.2);
    }
  };

  for (auto tasks : task_counts) {
    const auto t = std::to_string(tasks);
    const double units = static_cast<double>(total / tasks * tasks);
    add("throughput/tight/" + t, {"throughput", "tight loop", tasks, units},
        [=](benchmark::State& s) { tight_loop(s, total / tasks * tasks); }, true);
    if (tasks > 1)
      add("throughput/tight_rr/" + t, {"throughput", "tight loop over the tasks' states", tasks, units},
          [=](benchmark::State& s) { tight_round_robin(s, tasks, total); }, true);
    add("throughput/coop/" + t, {"throughput", "coop, default options", tasks, units},
        [=](benchmark::State& s) { coop_default(s, tasks, total); }, true);
    add("throughput/post/" + t, {"throughput", "asio::post per unit (io_context executor)", tasks, units},
        [=](benchmark::State& s) {
          post_per_unit(s, tasks, total, [](asio::io_context& ctx) { return ctx.get_executor(); });
        }, true);
    add("throughput/strand/" + t, {"throughput", "asio::post per unit (strand)", tasks, units},
        [=](benchmark::State& s) {
          post_per_unit(s, tasks, total, [](asio::io_context& ctx) { return asio::make_strand(ctx); });
        }, true);
    add("throughput/await/" + t, {"throughput", "co_await asio::post per unit", tasks, units},
        [=](benchmark::State& s) { await_per_unit(s, tasks, total); }, true);
    // As a user measures it, with five times the units (20,000,000 at full size: 200 per
    // task at 100,000 tasks).
    const std::uint64_t user_total = total * 5;
    add("throughput/user/" + t,
        {"throughput", "coop, tasks made and awaited in the timed region", tasks,
         static_cast<double>(user_total / tasks * tasks)},
        [=](benchmark::State& s) { coop_as_a_user(s, tasks, user_total); }, true);
    if (tasks <= 1'000)
      add("throughput/fiber/" + t, {"throughput", "Boost.Fiber, this_fiber::yield() per unit", tasks, units},
          [=](benchmark::State& s) { fiber_yield_per_unit(s, tasks, total); }, true);
    add("throughput/batched/" + t,
        {"throughput", "hand-batched posting (" + std::to_string(config.batch) + " units/handler)", tasks, units},
        [=, batch = config.batch](benchmark::State& s) { batched_posting(s, tasks, total, batch); }, true);
  }
  for (std::uint64_t tasks : {std::uint64_t{1'000}, std::uint64_t{100'000}}) {
    const auto t = std::to_string(tasks);
    add("control/cooperate/" + t, {"control", "cooperate", tasks, static_cast<double>(tasks)},
        [=](benchmark::State& s) { control_cooperate(s, tasks); }, true);
    add("control/pause_resume/" + t, {"control", "pause+resume pair", tasks, 1.0},
        [=](benchmark::State& s) { control_pause_resume(s, tasks); }, false);
    add("control/stop/" + t, {"control", "stop", tasks, static_cast<double>(tasks)},
        [=](benchmark::State& s) { control_stop(s, tasks); }, true);
  }
  // Many short tasks (Twisted's shape): 100,000 tasks of 10 units, made and awaited in
  // the timed region.
  add("throughput/short/100000", {"throughput", "100,000 tasks of 10 units, made and awaited", 100'000, 1e6},
      [](benchmark::State& s) { coop_as_a_user(s, 100'000, 1'000'000); }, true);
  const std::pair<const char*, lifecycle_kind> lifecycles[] = {
      {"no_wait", lifecycle_kind::no_wait},     {"plain", lifecycle_kind::plain},
      {"returning", lifecycle_kind::returning}, {"steps_of", lifecycle_kind::steps_of},
      {"future", lifecycle_kind::future},       {"bound", lifecycle_kind::bound},
      {"no_wait_fresh", lifecycle_kind::no_wait_fresh}};
  const std::map<std::string, std::string> lifecycle_names{
      {"no_wait", "cooperate(work), no wait"},
      {"plain", "cooperate(work) + when_done(callback)"},
      {"returning", "cooperate(returning(work)) + when_done(callback)"},
      {"steps_of", "cooperate(steps_of<T>) + when_done(callback)"},
      {"future", "cooperate(work) + when_done(use_future)"},
      {"bound", "cooperate(work) + when_done(bind_executor(ctx, callback))"},
      {"no_wait_fresh", "cooperate(work), no wait, a new cooperator each round"}};
  for (std::uint64_t tasks : {std::uint64_t{1'000}, std::uint64_t{100'000}, std::uint64_t{1'000'000}}) {
    for (const auto& [key, kind] : lifecycles) {
      // At a million tasks, the two that say whether the cost stays flat.
      if (tasks == 1'000'000 && kind != lifecycle_kind::no_wait && kind != lifecycle_kind::plain &&
          kind != lifecycle_kind::no_wait_fresh)
        continue;
      add("lifecycle/" + std::string(key) + "/" + std::to_string(tasks),
          {"lifecycle", lifecycle_names.at(key), tasks, static_cast<double>(tasks)},
          [=, kind = kind](benchmark::State& s) { lifecycle(s, tasks, kind); }, true);
    }
    if (tasks <= 100'000)
      add("lifecycle/fiber/" + std::to_string(tasks),
          {"lifecycle", "Boost.Fiber: create + join a fiber of one unit", tasks, static_cast<double>(tasks)},
          [=](benchmark::State& s) { fiber_create_join(s, tasks); }, true);
  }
  add("reference/clock", {"reference", "steady_clock::now()", 0, 1.0}, reference_clock, false);
  add("reference/unit", {"reference", "one trivial unit in a loop", 0, 1.0}, reference_unit, false);

  collector reporter(verbose);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::ClearRegisteredBenchmarks();

  json::array throughput, control, lifecycle_rows;
  json::object reference;
  for (const auto& [name, what] : entries) {
    auto found = reporter.times().find(name);
    if (found == reporter.times().end()) continue;
    json::array runs_ns;
    for (double t : found->second.cpu) runs_ns.push_back(t / what.ops);
    const double per_op = median(found->second.cpu) / what.ops;
    const double wall_per_op = median(found->second.wall) / what.ops;
    if (what.section == "reference") {
      reference[name.substr(name.find('/') + 1) + "_ns"] = per_op;
      continue;
    }
    json::object row{{"key", name.substr(name.find('/') + 1, name.rfind('/') - name.find('/') - 1)},
                     {"variant", what.variant},
                     {"tasks", what.tasks},
                     {what.section == "throughput" ? "ns_per_unit" : "ns_per_op", per_op},
                     {what.section == "throughput" ? "wall_ns_per_unit" : "wall_ns_per_op", wall_per_op},
                     {"runs", std::move(runs_ns)}};
    (what.section == "throughput" ? throughput : what.section == "lifecycle" ? lifecycle_rows : control)
        .push_back(std::move(row));
  }
  reference["cpu_mhz"] = reporter.cpu_mhz();
  if (!throughput.empty()) out["throughput"] = std::move(throughput);
  if (!lifecycle_rows.empty()) out["lifecycle"] = std::move(lifecycle_rows);
  json::object& control_section = out["control"].emplace_object();
  control_section["outside"] = std::move(control);
  if (reference.size() > 1) out["reference"] = std::move(reference);
}

}  // namespace bench
