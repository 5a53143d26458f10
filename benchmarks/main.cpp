// SPDX-License-Identifier: BSL-1.0
// coop_bench: measures coop against a tight loop and plain Asio in one run, prints a table
// of absolute figures and ratios, checks the targets and writes the same as JSON.
//
//   coop_bench [--quick] [--json FILE] [--only SECTIONS] [--repetitions N] [--verbose]
//              [--stall-seconds S] [--benchmark_* flags of Google Benchmark]
//   coop_bench --report FILE     prints the tables of a saved JSON file
#include "bench.hpp"

#include <benchmark/benchmark.h>
#include <boost/program_options.hpp>
#include <boost/version.hpp>

#include <sys/utsname.h>

#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#ifndef COOP_BENCH_BUILD_TYPE
#define COOP_BENCH_BUILD_TYPE "unknown"
#endif

namespace po = boost::program_options;
using namespace bench;

namespace {

// ---- reading the results document ---------------------------------------------------------

double num(const json::value& v) { return v.is_null() ? 0.0 : v.to_number<double>(); }
double num(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v ? num(*v) : 0.0;
}

const json::object* find_row(const json::value* rows, std::string_view field, std::string_view value,
                             std::uint64_t tasks = 0) {
  if (!rows || !rows->is_array()) return nullptr;
  for (const auto& r : rows->as_array()) {
    const auto& o = r.as_object();
    if (o.at(field).as_string() == value && (tasks == 0 || o.at("tasks").to_number<std::uint64_t>() == tasks))
      return &o;
  }
  return nullptr;
}

std::string read_first_line(const char* path, std::string_view prefix = {}) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (prefix.empty()) return line;
    else if (line.starts_with(prefix)) return line.substr(line.find(':') + 2);
  return {};
}

json::object machine_info() {
  utsname u{};
  ::uname(&u);
  return {{"cpu", read_first_line("/proc/cpuinfo", "model name")},
          {"cores", std::thread::hardware_concurrency()},
          {"kernel", std::string(u.sysname) + " " + u.release},
          {"loadavg_at_start", read_first_line("/proc/loadavg")},
          {"compiler", "GCC " __VERSION__},
          {"boost", BOOST_LIB_VERSION},
          {"build_type", COOP_BENCH_BUILD_TYPE}};
}

std::string utc_now() {
  char buf[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return buf;
}

// ---- tables -----------------------------------------------------------------------------------

const std::uint64_t task_counts[] = {1, 1'000, 100'000};

void print_throughput(const json::object& doc, const settings& config) {
  const auto* rows = doc.if_contains("throughput");
  if (!rows) return;
  std::printf("\n(a) Throughput: %llu trivial units (one LCG step, not inlined) spread over N tasks;\n"
              "    ns of thread CPU time per unit (ratio to the tight loop), median of %d runs\n",
              static_cast<unsigned long long>(config.total_units), config.repetitions);
  std::printf("  %-46s %18s %18s %18s\n", "", "1 task", "1,000 tasks", "100,000 tasks");
  for (const char* key : {"tight", "tight_rr", "coop", "user", "post", "strand", "await", "batched", "fiber"}) {
    std::string label;
    std::string cells;
    for (auto tasks : task_counts) {
      const auto* row = find_row(rows, "key", key, tasks);
      const auto* tight = find_row(rows, "key", "tight", tasks);
      char cell[40] = "-";
      if (row && tight) {
        label = row->at("variant").as_string().c_str();
        std::snprintf(cell, sizeof cell, "%.2f (%.2fx)", num(*row, "ns_per_unit"),
                      num(*row, "ns_per_unit") / num(*tight, "ns_per_unit"));
      }
      char padded[48];
      std::snprintf(padded, sizeof padded, " %18s", cell);
      cells += padded;
    }
    if (!label.empty()) std::printf("  %-46s%s\n", label.c_str(), cells.c_str());
  }
  std::printf("  (\"made and awaited\": wall time from the first cooperate() to the last when_done handler, per unit,\n"
              "   over the tight loop's wall time:");
  for (auto tasks : task_counts) {
    const auto* user = find_row(rows, "key", "user", tasks);
    const auto* tight = find_row(rows, "key", "tight", tasks);
    if (user && tight) std::printf(" %.2fx", num(*user, "wall_ns_per_unit") / num(*tight, "wall_ns_per_unit"));
  }
  std::printf(")\n");
  if (const auto* shortest = find_row(rows, "key", "short", 100'000))
    std::printf("  %-46s %.2f ns per unit (wall %.2f)\n", shortest->at("variant").as_string().c_str(),
                num(*shortest, "ns_per_unit"), num(*shortest, "wall_ns_per_unit"));
}

void print_latency(const json::object& doc) {
  const auto* section = doc.if_contains("latency");
  if (!section) return;
  const auto& l = section->as_object();
  std::printf("\n(b) Latency under load: %lld ms periodic steady_timer on the io_context, %lld tasks of %.2f us\n"
              "    CPU-bound units, %lld ms per case; timer lateness over all samples (us)\n",
              static_cast<long long>(num(l, "period_ms")), static_cast<long long>(num(l, "tasks")), num(l, "unit_us"),
              static_cast<long long>(num(l, "window_ms")));
  std::printf("  %-20s %6s %8s %8s %8s %8s | %5s %5s %8s %8s %8s %6s %8s | %8s %6s\n", "case", "fired", "p50",
              "p99", "max", "units", "ticks", "dist.", "max", "p99 und", "max und", ">limit", "cpu max", "stalls/s",
              "invcsw");
  for (const auto& c : l.at("cases").as_array()) {
    const auto& o = c.as_object();
    std::printf("  %-20s %6lld %8.0f %8.0f %8.0f %8lld |", o.at("case").as_string().c_str(),
                static_cast<long long>(num(o, "samples")), num(o, "p50_us"), num(o, "p99_us"), num(o, "max_us"),
                static_cast<long long>(num(o, "units")));
    if (const auto* t = o.if_contains("ticks")) {
      const auto& all = t->as_object();
      const auto& clean = o.at("ticks_undisturbed").as_object();
      const auto& cpu = o.at("ticks_cpu").as_object();
      std::printf(" %5lld %5lld %8.0f", static_cast<long long>(num(all, "count")),
                  static_cast<long long>(num(all, "count") - num(clean, "count")), num(all, "max_us"));
      if (o.at("slice_ms").is_null())
        std::printf(" %8s %8s %6s %8.0f |", "-", "-", "-", num(cpu, "max_us"));
      else
        std::printf(" %8.1f %8.1f %6lld %8.1f |", num(clean, "p99_us"), num(clean, "max_us"),
                    static_cast<long long>(num(clean, "over_limit")), num(cpu, "max_us"));
    } else {
      std::printf(" %5s %5s %8s %8s %8s %6s %8s |", "-", "-", "-", "-", "-", "-", "-");
    }
    if (o.contains("gap_stalls"))
      std::printf(" %8.0f", (num(o, "gap_stalls") + num(o, "slow_units")) / (num(o, "elapsed_ms") / 1000.0));
    else
      std::printf(" %8s", "-");  // no load, or a file from before stalls were counted
    std::printf(" %6lld\n", static_cast<long long>(num(o, "involuntary_switches")));
  }
  std::printf("  ticks = the cooperator's strand runs, timed (wall) from outside the library, in us; dist. = ticks\n"
              "  disturbed from outside: the thread waited 20 us or more for a CPU, or a stretch of a few us (a\n"
              "  unit, or the library's work between the tick's start, its units and its end) took 20 us longer\n"
              "  (VM steal, long interrupts) where it could lengthen the tick: before the first unit or after\n"
              "  the slice; never a tick in which the thread blocked; und = undisturbed ticks; >limit =\n"
              "  undisturbed ticks over slice + 50 us; cpu = the thread's CPU time; stalls/s = all such stalls\n"
              "  per second (a slow path of the library's would show as more than with the job in one\n"
              "  handler); invcsw = involuntary context switches\n");
}

void print_control(const json::object& doc) {
  const auto* section = doc.if_contains("control");
  if (!section) return;
  const auto* any_outside = section->as_object().if_contains("outside");
  if (!section->as_object().contains("inside") && (!any_outside || any_outside->as_array().empty())) return;
  std::printf("\n(c) Control: ns per operation\n");
  std::printf("  %-46s %14s %14s %10s\n", "", "1,000 tasks", "100,000 tasks", "100k/1k");
  auto print = [&](const json::value* rows, const char* key) {
    const auto* a = find_row(rows, "key", key, 1'000);
    const auto* b = find_row(rows, "key", key, 100'000);
    if (!a || !b) return;
    std::string label = a->at("variant").as_string().c_str();
    if (rows == section->as_object().if_contains("outside") && label.find("inside") == std::string::npos)
      label += ", outside a tick";
    std::printf("  %-46s %14.1f %14.1f %9.2fx\n", label.c_str(), num(*a, "ns_per_op"), num(*b, "ns_per_op"),
                num(*b, "ns_per_op") / num(*a, "ns_per_op"));
  };
  const auto* outside = section->as_object().if_contains("outside");
  for (const char* key : {"cooperate", "pause_resume", "stop"}) print(outside, key);
  print(section->as_object().if_contains("inside"), "pause_resume_inside");
}

void print_lifecycle(const json::object& doc) {
  const auto* rows = doc.if_contains("lifecycle");
  if (!rows) return;
  std::printf("\n(g) Task lifecycle: cooperate + one trivial unit + finish (+ the when_done handler run),\n"
              "    all inside the timed region: ns per task (CPU)\n");
  std::printf("  %-58s %12s %14s %16s %10s\n", "", "1,000 tasks", "100,000 tasks", "1,000,000 tasks", "/ plain");
  for (const char* key : {"no_wait", "plain", "returning", "steps_of", "future", "bound", "fiber", "no_wait_fresh"}) {
    const auto* a = find_row(rows, "key", key, 1'000);
    const auto* b = find_row(rows, "key", key, 100'000);
    const auto* c = find_row(rows, "key", key, 1'000'000);
    const auto* plain = find_row(rows, "key", "plain", 100'000);
    if (!a || !b || !plain) continue;
    char million[24] = "-";
    if (c) std::snprintf(million, sizeof million, "%.1f", num(*c, "ns_per_op"));
    std::printf("  %-58s %12.1f %14.1f %16s %9.2fx\n", a->at("variant").as_string().c_str(), num(*a, "ns_per_op"),
                num(*b, "ns_per_op"), million, num(*b, "ns_per_op") / num(*plain, "ns_per_op"));
  }
}

void print_rest(const json::object& doc) {
  if (const auto* m = doc.if_contains("memory")) {
    const auto& o = m->as_object();
    std::printf("\n(d) Memory: %lld tasks with a %lld-byte callable: RSS +%.1f MB = %.1f bytes/task"
                " (heap in use: %.1f bytes/task)\n",
                static_cast<long long>(num(o, "tasks")), static_cast<long long>(num(o, "callable_bytes")),
                num(o, "rss_delta_bytes") / 1e6, num(o, "bytes_per_task"), num(o, "heap_bytes_per_task"));
  }
  if (const auto* f = doc.if_contains("fairness")) {
    const auto& o = f->as_object();
    std::printf("\n(e) Fairness: %lld equal tasks for %lld ms: Jain's index %.6f (units per task %lld..%lld, %lld in all)\n",
                static_cast<long long>(num(o, "tasks")), static_cast<long long>(num(o, "window_ms")), num(o, "jain"),
                static_cast<long long>(num(o, "min_units")), static_cast<long long>(num(o, "max_units")),
                static_cast<long long>(num(o, "total_units")));
  }
  if (const auto* t = doc.if_contains("threads")) {
    std::printf("\n(f) Threads: 1,000 tasks of trivial units, io_context::run() on N threads\n");
    for (const auto& r : t->as_array()) {
      const auto& o = r.as_object();
      std::printf("  %-40s %8.2f ns/unit wall, %8.2f ns/unit CPU (all threads)", o.at("case").as_string().c_str(),
                  num(o, "ns_per_unit"), num(o, "cpu_ns_per_unit"));
      if (o.contains("pause_resume_pairs"))
        std::printf("\n  %-40s (%lld pause+resume pairs, one per %.0f ns)", "", static_cast<long long>(num(o, "pause_resume_pairs")),
                    num(o, "ns_per_pair"));
      std::printf("\n");
    }
  }
  if (const auto* r = doc.if_contains("reference")) {
    const auto& o = r->as_object();
    std::printf("\nReference: steady_clock::now() %.2f ns; one trivial unit in a benchmark loop %.2f ns\n",
                num(o, "clock_ns"), num(o, "unit_ns"));
  }
}

// ---- targets ----------------------------------------------------------------------------------

// Fewer undisturbed ticks than this (a loaded machine preempts nearly every long tick) say
// nothing about the longest one.
constexpr double min_undisturbed_ticks = 20;

json::array check_targets(const json::object& doc) {
  json::array out;
  // A target whose figure could not be measured (too few samples) gets holds = null.
  auto add = [&](std::string name, double value, const char* op, double limit, std::string unit,
                 bool measured = true) {
    const bool holds = std::string_view(op) == "<=" ? value <= limit : value >= limit;
    out.push_back(json::object{{"target", std::move(name)},
                               {"value", value},
                               {"op", op},
                               {"limit", limit},
                               {"unit", std::move(unit)},
                               {"holds", measured ? json::value(holds) : json::value(nullptr)}});
  };
  if (const auto* rows = doc.if_contains("throughput")) {
    // Per unit over the tight loop, as the harness measures it and as a user does.
    const double ratio_limit[] = {1.3, 1.6, 2.5};
    const auto label = [](std::uint64_t tasks) -> std::string {
      return tasks == 1 ? "1 task" : tasks == 1'000 ? "1,000 tasks" : "100,000 tasks";
    };
    for (int i = 0; i < 3; ++i) {
      const auto tasks = task_counts[i];
      const auto* coop = find_row(rows, "key", "coop", tasks);
      const auto* tight = find_row(rows, "key", "tight", tasks);
      const auto* post = find_row(rows, "key", "post", tasks);
      if (!coop || !tight || !post) continue;
      const std::string n = label(tasks);
      add("per-unit cost / tight loop, " + n, num(*coop, "ns_per_unit") / num(*tight, "ns_per_unit"), "<=",
          ratio_limit[i], "x");
      add("post per unit / coop per unit, " + n, num(*post, "ns_per_unit") / num(*coop, "ns_per_unit"), ">=",
          3.0, "x");
      if (tasks == 1)
        if (const auto* strand = find_row(rows, "key", "strand", 1))
          add("strand post per unit / coop per unit, 1 task", num(*strand, "ns_per_unit") / num(*coop, "ns_per_unit"),
              ">=", 15.0, "x");
    }
    // As a user measures it: wall time, tasks made and awaited in the timed region.
    for (int i = 0; i < 3; ++i) {
      const auto* user = find_row(rows, "key", "user", task_counts[i]);
      const auto* tight = find_row(rows, "key", "tight", task_counts[i]);
      if (user && tight)
        add("made and awaited, per unit (wall) / tight loop, " + label(task_counts[i]),
            num(*user, "wall_ns_per_unit") / num(*tight, "wall_ns_per_unit"), "<=", ratio_limit[i], "x");
    }
    if (const auto* shortest = find_row(rows, "key", "short", 100'000))
      add("100,000 tasks of 10 units, made and awaited: ns per unit", num(*shortest, "ns_per_unit"), "<=", 40.0, "ns");
    for (std::uint64_t tasks : {std::uint64_t{1}, std::uint64_t{1'000}}) {
      const auto* fiber = find_row(rows, "key", "fiber", tasks);
      const auto* coop = find_row(rows, "key", "coop", tasks);
      if (fiber && coop)
        add("Boost.Fiber yield per unit / coop per unit, " + label(tasks),
            num(*fiber, "ns_per_unit") / num(*coop, "ns_per_unit"), ">=", 3.0, "x");
    }
  }
  if (const auto* rows = doc.if_contains("lifecycle")) {
    const auto* plain = find_row(rows, "key", "plain", 100'000);
    const auto* no_wait = find_row(rows, "key", "no_wait", 100'000);
    const auto* plain_m = find_row(rows, "key", "plain", 1'000'000);
    const auto* no_wait_m = find_row(rows, "key", "no_wait", 1'000'000);
    if (plain) add("lifecycle with a callback wait, 100,000 tasks", num(*plain, "ns_per_op"), "<=", 300.0, "ns");
    if (no_wait) add("lifecycle without a wait, 100,000 tasks", num(*no_wait, "ns_per_op"), "<=", 150.0, "ns");
    if (plain && plain_m)
      add("lifecycle flat: 1,000,000 / 100,000 tasks, callback wait", num(*plain_m, "ns_per_op") / num(*plain, "ns_per_op"),
          "<=", 1.3, "x");
    if (no_wait && no_wait_m)
      add("lifecycle flat: 1,000,000 / 100,000 tasks, no wait", num(*no_wait_m, "ns_per_op") / num(*no_wait, "ns_per_op"),
          "<=", 1.3, "x");
    for (std::uint64_t tasks : {std::uint64_t{1'000}, std::uint64_t{100'000}}) {
      const auto* fiber = find_row(rows, "key", "fiber", tasks);
      const auto* coop = find_row(rows, "key", "plain", tasks);
      if (fiber && coop)
        add("Boost.Fiber create+join / coop lifecycle with a wait, " +
                std::string(tasks == 1'000 ? "1,000 tasks" : "100,000 tasks"),
            num(*fiber, "ns_per_op") / num(*coop, "ns_per_op"), ">=", 3.0, "x");
    }
  }
  if (const auto* l = doc.if_contains("latency")) {
    const double unit_us = num(l->as_object(), "unit_us");
    for (const auto& c : l->as_object().at("cases").as_array()) {
      const auto& o = c.as_object();
      if (o.at("slice_ms").is_null()) continue;
      const double slice_us = num(o, "slice_ms") * 1000.0;
      const std::string at = " at slice " + std::string(o.at("case").as_string().c_str()).substr(12);
      if (slice_us == 1000.0) add("p99 timer lateness" + at, num(o, "p99_us"), "<=", slice_us + 300.0, "us");
      add("max timer lateness" + at, num(o, "max_us"), "<=", slice_us + unit_us + 1000.0, "us");
      const auto& clean = o.at("ticks_undisturbed").as_object();
      add("longest undisturbed tick" + at, num(clean, "max_us"), "<=", slice_us + 50.0, "us",
          num(clean, "count") >= min_undisturbed_ticks);
    }
  }
  if (const auto* c = doc.if_contains("control")) {
    const auto* outside = c->as_object().if_contains("outside");
    const auto* a = find_row(outside, "key", "pause_resume", 1'000);
    const auto* b = find_row(outside, "key", "pause_resume", 100'000);
    if (a && b) {
      add("pause+resume pair at 100,000 tasks", num(*b, "ns_per_op"), "<=", 50.0, "ns");
      add("pause+resume flat: 100,000 tasks / 1,000 tasks", num(*b, "ns_per_op") / num(*a, "ns_per_op"), "<=", 1.5, "x");
    }
  }
  if (const auto* m = doc.if_contains("memory")) {
    const auto& o = m->as_object();
    add("bytes per task beyond the callable (RSS, 1,000,000 tasks)",
        num(o, "bytes_per_task") - num(o, "callable_bytes"), "<=", 128.0, "B");
  }
  if (const auto* rows = doc.if_contains("lifecycle")) {
    for (std::uint64_t tasks : {std::uint64_t{1'000}, std::uint64_t{100'000}}) {
      const auto* plain = find_row(rows, "key", "plain", tasks);
      const std::string n = tasks == 1'000 ? "1,000 tasks" : "100,000 tasks";
      for (const char* key : {"returning", "steps_of"}) {
        const auto* row = find_row(rows, "key", key, tasks);
        if (!plain || !row) continue;
        add(std::string("lifecycle ") + key + " / plain when_done, " + n, num(*row, "ns_per_op") / num(*plain, "ns_per_op"),
            "<=", 1.10, "x");
      }
    }
  }
  if (const auto* f = doc.if_contains("fairness")) add("Jain's index, 100 tasks, 300 ms", num(f->as_object(), "jain"), ">=", 0.99, "");
  if (const auto* sh = doc.if_contains("shares")) {
    const auto& o = sh->as_object();
    const auto off = [&](const char* key, std::size_t i, double want) {
      return std::abs(o.at(key).as_array().at(i).to_number<double>() - want);
    };
    add("fairness::time, 1 us vs 100 us units: |share - 50%|", off("pair_time_pct", 0, 50), "<=", 3.0, "pp");
    add("fairness::time, shares 100/200/400: worst |share - 1:2:4|",
        std::max({off("trio_time_pct", 0, 100.0 / 7), off("trio_time_pct", 1, 200.0 / 7), off("trio_time_pct", 2, 400.0 / 7)}),
        "<=", 3.0, "pp");
    add("trivial unit at 1,000 tasks: fairness::time / units", num(o, "trivial_time_ns") / num(o, "trivial_units_ns"), "<=",
        1.3, "x");
  }
  if (const auto* p = doc.if_contains("pool")) {
    const auto& o = p->as_object();
    add("pool of 2 on 2 threads / 1 cooperator on 1 thread, units/s", num(o, "scaling"), ">=", 1.8, "x");
    add("pause+resume on a pool's task / on a cooperator's", num(o, "pause_resume_pool_ns") / num(o, "pause_resume_single_ns"),
        "<=", 1.5, "x");
    if (o.contains("balance_jain")) {
      add("pool balance: Jain's index of units per task, 400 tasks begun on one member", num(o, "balance_jain"), ">=",
          0.95, "");
      add("pool balance: the less busy member's share of the window", std::min(num(o, "balance_busy0"), num(o, "balance_busy1")),
          ">=", 0.9, "");
    }
  }
  if (const auto* st = doc.if_contains("stall")) {
    const auto& o = st->as_object();
    add("stall reported after the threshold: max delay, 10 ms threshold, 50 ms units", num(o, "delay_max_us") / 1000.0,
        "<=", 2.0, "ms");
    add("stall reports: one per stalled unit, |reports - stalled units|", std::abs(num(o, "reports") - num(o, "stalls")),
        "<=", 0.0, "");
    add("false stall reports, units of 1 us to 5 ms, 10 ms threshold", num(o, "quiet_reports"), "<=", 0.0, "");
  }
  return out;
}

void print_targets(const json::array& targets, bool quick) {
  if (targets.empty()) return;
  std::printf("\nTargets%s\n", quick ? " -- a --quick run is too short and too small to judge them" : "");
  int held = 0, unmeasured = 0;
  for (const auto& t : targets) {
    const auto& o = t.as_object();
    const char* verdict = "n/a";
    if (o.at("holds").is_null()) {
      ++unmeasured;
    } else if (o.at("holds").as_bool()) {
      ++held;
      verdict = "ok";
    } else {
      verdict = "MISS";
    }
    std::printf("  %-4s %-58s %10.3f %s %g %s\n", verdict, o.at("target").as_string().c_str(), num(o, "value"),
                o.at("op").as_string().c_str(), num(o, "limit"), o.at("unit").as_string().c_str());
  }
  std::printf("  %d of %zu targets hold", held, targets.size());
  if (unmeasured) std::printf(" (%d n/a: too few undisturbed ticks; run on a quieter machine)", unmeasured);
  std::printf("\n");
}

void print_shares(const json::object& doc) {
  const auto* sh = doc.if_contains("shares");
  if (!sh) return;
  const auto& o = sh->as_object();
  const auto pct = [&](const char* key, std::size_t i) { return o.at(key).as_array().at(i).to_number<double>(); };
  std::printf("\n(h) Shares and fairness by time, one cooperator, %lld ms per split (share of the busy time)\n",
              static_cast<long long>(num(o, "window_ms")));
  std::printf("  1 us and 100 us units, equal shares, fairness::time    %5.1f%% / %5.1f%%\n", pct("pair_time_pct", 0),
              pct("pair_time_pct", 1));
  std::printf("  the same with fairness::units (Twisted's round-robin)  %5.1f%% / %5.1f%%\n", pct("pair_units_pct", 0),
              pct("pair_units_pct", 1));
  std::printf("  1/10/100 us units, shares 100/200/400, fairness::time   %5.1f%% / %5.1f%% / %5.1f%%  (1:2:4 is 14.3/28.6/57.1)\n",
              pct("trio_time_pct", 0), pct("trio_time_pct", 1), pct("trio_time_pct", 2));
  std::printf("  trivial unit, 1,000 tasks: units %.2f ns, time %.2f ns (median of %lld runs)\n",
              num(o, "trivial_units_ns"), num(o, "trivial_time_ns"), static_cast<long long>(num(o, "trivial_runs")));
  const auto& series = o.at("set_shares_series").as_array();
  double before = 0, after = 0;
  int nb = 0, na = 0;
  for (const auto& p : series) {
    const double t = p.as_array().at(0).to_number<double>(), v = p.as_array().at(1).to_number<double>();
    if (t < num(o, "set_shares_at_ms")) before += v, ++nb;
    else if (t > num(o, "set_shares_at_ms") + 100) after += v, ++na;
  }
  std::printf("  set_shares(300) from another thread at %.0f ms: first task %.1f%% before, %.1f%% after (100 ms on)\n",
              num(o, "set_shares_at_ms"), nb ? before / nb : 0.0, na ? after / na : 0.0);
}

void print_pool(const json::object& doc) {
  const auto* p = doc.if_contains("pool");
  if (!p) return;
  const auto& o = p->as_object();
  std::printf("\n(i) Cooperator pool: %lld tasks of %.1f us CPU-bound units, %lld ms windows, median of %lld runs\n",
              static_cast<long long>(num(o, "tasks")), num(o, "unit_us"), static_cast<long long>(num(o, "window_ms")),
              static_cast<long long>(num(o, "runs")));
  std::printf("  one cooperator, context run by 1 thread      %10.0f units/s\n", num(o, "single_units_per_s"));
  std::printf("  pool of 2 members, context run by 2 threads  %10.0f units/s  (%.2fx)\n", num(o, "pool2_units_per_s"),
              num(o, "scaling"));
  std::printf("  pause+resume pair, 1,000 idle tasks: cooperator %.1f ns, pool of 2 %.1f ns\n",
              num(o, "pause_resume_single_ns"), num(o, "pause_resume_pool_ns"));
  if (o.contains("balance_jain"))
    std::printf("  balance, %lld tasks begun on member 0, 2 threads: Jain's index %.4f, busy %.1f%% / %.1f%%, %.0f moved\n",
                static_cast<long long>(num(o, "balance_tasks")), num(o, "balance_jain"), 100 * num(o, "balance_busy0"),
                100 * num(o, "balance_busy1"), num(o, "balance_moved"));
}

void print_stall(const json::object& doc) {
  const auto* st = doc.if_contains("stall");
  if (!st) return;
  const auto& o = st->as_object();
  std::printf("\n(j) Stall detector, a %.0f ms threshold\n", num(o, "threshold_ms"));
  std::printf("  %lld units of %.0f ms: %lld reports (%lld with a backtrace); on_stall called after the threshold:"
              " p50 %.0f us, max %.0f us\n",
              static_cast<long long>(num(o, "stalls")), num(o, "unit_ms"), static_cast<long long>(num(o, "reports")),
              static_cast<long long>(num(o, "with_backtrace")), num(o, "delay_p50_us"), num(o, "delay_max_us"));
  std::printf("  units of 1 us to 5 ms for %.0f s: %lld units, %lld reports (longest unit %.2f ms, wall)\n",
              num(o, "quiet_window_s"), static_cast<long long>(num(o, "quiet_units")),
              static_cast<long long>(num(o, "quiet_reports")), num(o, "quiet_longest_unit_ms"));
}

void print_all(json::object& doc, const settings& config) {
  doc["targets"] = check_targets(doc);
  print_throughput(doc, config);
  print_latency(doc);
  print_control(doc);
  print_lifecycle(doc);
  print_rest(doc);
  print_shares(doc);
  print_pool(doc);
  print_stall(doc);
  print_targets(doc["targets"].as_array(), config.quick);
}

int print_saved(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  boost::system::error_code ec;
  json::value saved = json::parse(text.str(), ec);
  if (!file || ec || !saved.is_object()) {
    std::cerr << "coop_bench: cannot read results from " << path << "\n";
    return 1;
  }
  auto& doc = saved.as_object();
  settings config;
  const auto& s = doc.at("settings").as_object();
  config.quick = s.at("quick").as_bool();
  config.repetitions = static_cast<int>(num(s, "repetitions"));
  config.total_units = static_cast<std::uint64_t>(num(s, "total_units"));
  std::printf("coop_bench results of %s  %s, %lld cores, load %s\n  command: %s\n", doc.at("date").as_string().c_str(),
              doc.at("machine").as_object().at("cpu").as_string().c_str(),
              static_cast<long long>(num(doc.at("machine").as_object(), "cores")),
              doc.at("machine").as_object().at("loadavg_at_start").as_string().c_str(),
              doc.at("command").as_string().c_str());
  print_all(doc, config);
  return 0;
}

/// Keeps freed memory in the process, as a long-running server's heap is. Each benchmark
/// iteration makes and frees all its tasks; with glibc's defaults, freeing them can give
/// the top of the heap back to the kernel, and the next iteration then pays a page fault
/// per 4 KiB it touches again. Whether that happens depends on glibc's sliding trim
/// threshold, which earlier large frees in the same process move: the same lifecycle
/// figure came out 530 or 1,300 ns per task from one process to the next. A fixed
/// threshold measures coop, not that lottery. Fixing it also fixes the mmap threshold
/// (glibc couples them), so that one is set as high as a warmed-up process has it: large
/// arrays come from the heap too. The memory section trims explicitly (malloc_trim)
/// before it reads the RSS, so it is not affected.
void warm_heap() {
  ::mallopt(M_TRIM_THRESHOLD, 256 << 20);
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's own ceiling for its sliding threshold
}

}  // namespace

int main(int argc, char** argv) {
  settings config;
  std::string json_path, report_path, only;
  bool verbose = false;
  po::options_description options("coop_bench options (Google Benchmark's --benchmark_* flags pass through)");
  options.add_options()
      ("help,h", "show this help")
      ("quick", "short smoke run (a few seconds): small sizes, one repetition")
      ("json", po::value(&json_path), "write the results as JSON to this file")
      ("report", po::value(&report_path), "measure nothing: print the tables and targets of a saved JSON file")
      ("only", po::value(&only), "comma-separated sections: throughput,control,lifecycle,latency,memory,fairness,shares,threads,pool,stall")
      ("stall-seconds", po::value<double>(), "the stall section's run of units under the threshold, seconds (default 60)")
      ("repetitions", po::value(&config.repetitions), "runs per throughput/control figure; the median is kept (default 5)")
      ("verbose", "also print Google Benchmark's own console output")
      ("glibc-trim", "keep glibc's heap trimming (see warm_heap() for why it is off by default)");
  po::variables_map vm;
  std::vector<std::string> passthrough;
  try {
    auto parsed = po::command_line_parser(argc, argv).options(options).allow_unregistered().run();
    po::store(parsed, vm);
    po::notify(vm);
    passthrough = po::collect_unrecognized(parsed.options, po::include_positional);
  } catch (const std::exception& e) {
    std::cerr << "coop_bench: " << e.what() << "\n" << options;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  verbose = vm.count("verbose") > 0;
  if (!report_path.empty()) return print_saved(report_path);
  const bool heap_warm = vm.count("glibc-trim") == 0;
  if (heap_warm) warm_heap();
  if (vm.count("quick")) {
    config.quick = true;
    if (!vm.count("repetitions")) config.repetitions = 1;
    config.total_units = 400'000;
    config.latency_window = std::chrono::milliseconds(200);
    config.stall_window = std::chrono::milliseconds(2000);
  }
  if (vm.count("stall-seconds"))
    config.stall_window = std::chrono::milliseconds(static_cast<long long>(vm["stall-seconds"].as<double>() * 1000));
  std::set<std::string> sections;
  for (std::stringstream in(only); std::getline(in, only, ',');)
    if (!only.empty()) sections.insert(only);
  auto wanted = [&](const char* s) { return sections.empty() || sections.count(s) > 0; };

  // Google Benchmark reads its own flags; a filter restricts it to the chosen sections.
  std::vector<std::string> gb_args{argv[0]};
  for (auto& a : passthrough) gb_args.push_back(a);
  const bool own_filter = std::any_of(passthrough.begin(), passthrough.end(),
                                     [](const std::string& a) { return a.starts_with("--benchmark_filter"); });
  if (!sections.empty() && !own_filter) {
    std::string filter = "--benchmark_filter=^(";
    bool first = true;
    for (const char* s : {"throughput", "control", "lifecycle"})
      if (wanted(s)) filter += (first ? "" : "|") + std::string(s), first = false;
    gb_args.push_back(filter + (first ? "none" : "") + ")/");
  }
  std::vector<char*> gb_argv;
  for (auto& a : gb_args) gb_argv.push_back(a.data());
  int gb_argc = static_cast<int>(gb_argv.size());
  benchmark::Initialize(&gb_argc, gb_argv.data());
  if (benchmark::ReportUnrecognizedArguments(gb_argc, gb_argv.data())) return 2;

  std::string command;
  for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);
  json::object doc{{"date", utc_now()},
                   {"command", command},
                   {"machine", machine_info()},
                   {"settings",
                    {{"quick", config.quick},
                     {"repetitions", config.repetitions},
                     {"total_units", config.total_units},
                     {"batch", config.batch},
                     {"latency_window_ms", config.latency_window.count()},
                     {"fairness_window_ms", config.fairness_window.count()},
                     {"memory_tasks", config.memory_tasks},
                     {"stall_window_ms", config.stall_window.count()},
                     {"heap", heap_warm ? "warm" : "glibc-trim"}}}};

  std::printf("coop_bench  %s  %s, %u cores, load %s, heap %s\n", doc["date"].as_string().c_str(),
              doc["machine"].as_object()["cpu"].as_string().c_str(), std::thread::hardware_concurrency(),
              doc["machine"].as_object()["loadavg_at_start"].as_string().c_str(), heap_warm ? "warm" : "glibc-trim");
  std::fflush(stdout);

  if (wanted("throughput") || wanted("control") || wanted("lifecycle")) run_micro(config, doc, verbose);
  if (wanted("control")) run_control_inside(config, doc);
  if (wanted("latency")) run_latency(config, doc);
  if (wanted("fairness")) run_fairness(config, doc);
  if (wanted("shares")) run_shares(config, doc);
  if (wanted("threads")) run_threads(config, doc);
  if (wanted("pool")) run_pool(config, doc);
  if (wanted("stall")) run_stall(config, doc);
  if (wanted("memory")) run_memory(config, doc);  // last: it leaves the heap large

  print_all(doc, config);

  if (!json_path.empty()) {
    std::ofstream file(json_path);
    file << json::serialize(doc) << "\n";
    if (!file) {
      std::cerr << "coop_bench: cannot write " << json_path << "\n";
      return 1;
    }
    std::printf("\nJSON written to %s\n", json_path.c_str());
  }
  return 0;
}
