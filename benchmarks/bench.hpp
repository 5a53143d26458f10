// SPDX-License-Identifier: BSL-1.0
// coop_bench: shared pieces of the benchmark harness (units of work, statistics, the
// results document, an executor wrapper that times every handler it runs).
#pragma once

#include <boost/asio.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace bench {

namespace asio = boost::asio;
namespace json = boost::json;
using clock = std::chrono::steady_clock;

// ---- units of work -------------------------------------------------------------------------

/// The trivial unit: one LCG step. Defined in its own translation unit and marked
/// noinline/noipa so that no variant of the benchmark gets it inlined or elided.
[[gnu::noinline, gnu::noipa]] void lcg_step(std::uint64_t& state) noexcept;

/// A CPU-bound unit: `steps` dependent LCG steps (about 2 µs once calibrated).
[[gnu::noinline, gnu::noipa]] void busy_unit(std::uint64_t& state, std::uint32_t steps) noexcept;

/// Number of busy_unit steps that take about `target` on this machine.
std::uint32_t calibrate_busy_steps(std::chrono::nanoseconds target);
/// The median length of busy_unit(steps), in microseconds.
double busy_unit_us(std::uint32_t steps);

// ---- settings shared by every section ------------------------------------------------------

struct settings {
  bool quick = false;
  int repetitions = 5;                      // runs per throughput/control figure (median kept)
  std::uint64_t total_units = 4'000'000;    // throughput: same total at every task count
  unsigned batch = 16;                      // hand-batched posting: units per handler
  std::chrono::milliseconds latency_window{2000};
  std::chrono::milliseconds fairness_window{300};
  std::uint64_t memory_tasks = 1'000'000;
  std::chrono::milliseconds stall_window{60'000};  // units under the stall threshold, none reported
};

// ---- statistics ----------------------------------------------------------------------------

inline double to_us(clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }
inline double to_ns(clock::duration d) { return std::chrono::duration<double, std::nano>(d).count(); }

/// Nearest-rank percentile of already sorted samples (p in [0, 100]).
inline double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0.0;
  auto rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size()) + 0.999999);
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

/// Jain's fairness index: (sum x)^2 / (n * sum x^2); 1 is perfectly fair.
inline double jain_index(const std::vector<std::uint64_t>& x) {
  double sum = 0, sum_sq = 0;
  for (auto v : x) {
    sum += static_cast<double>(v);
    sum_sq += static_cast<double>(v) * static_cast<double>(v);
  }
  return sum_sq == 0 ? 0.0 : sum * sum / (static_cast<double>(x.size()) * sum_sq);
}

/// Resident set size of this process, from /proc/self/statm.
std::uint64_t resident_bytes();
/// Involuntary context switches of this process so far (getrusage), to flag preemption
/// by other processes on a shared machine.
long involuntary_switches();
/// Times the calling thread gave up its CPU to wait (blocked on a lock, slept) so far.
long thread_voluntary_switches();

// ---- the sections --------------------------------------------------------------------------
// Each fills its part of `out`; main.cpp prints the tables and checks the targets from the
// same document, which is also what --json writes.

/// Google Benchmark part: throughput (a), control (c) and the reference micro-measurements.
void run_micro(const settings&, json::object& out, bool verbose);
void run_latency(const settings&, json::object& out);        // (b)
void run_control_inside(const settings&, json::object& out); // (c), from inside a unit
void run_memory(const settings&, json::object& out);         // (d)
void run_fairness(const settings&, json::object& out);       // (e)
void run_threads(const settings&, json::object& out);        // (f)
void run_shares(const settings&, json::object& out);         // (h)
void run_pool(const settings&, json::object& out);           // (i)
void run_stall(const settings&, json::object& out);          // (j)

// ---- an executor that times every function it runs ----------------------------------------

/// CPU time consumed so far by the calling thread. On a shared machine a handler's wall
/// time includes the time the OS gave to other processes; its thread CPU time does not.
clock::duration thread_cpu_time() noexcept;

/// CPU time consumed so far by all threads of the process (user + system).
clock::duration process_cpu_time() noexcept;

/// Wall time and thread CPU time of a span of code, measured from construction.
struct span {
  clock::duration wall;
  clock::duration cpu;
};
class stopwatch {
public:
  stopwatch() noexcept : cpu_(thread_cpu_time()), wall_(clock::now()) {}
  clock::time_point started() const noexcept { return wall_; }
  span elapsed() const noexcept {
    const auto wall = clock::now();
    return {wall - wall_, thread_cpu_time() - cpu_};
  }

private:
  clock::duration cpu_;
  clock::time_point wall_;
};

/// Time the calling thread has spent runnable but waiting for a CPU so far (the run delay of
/// /proc/thread-self/schedstat), i.e. time the OS gave to other threads or processes.
clock::duration thread_run_delay() noexcept;

/// Durations of the functions a timed_executor ran (the ticks), in wall time and in thread
/// CPU time, and whether something outside the library disturbed them. VM steal is
/// invisible to the guest's run delay and CPU time, so it is found by its effect: a
/// stretch of at most a few microseconds of code that took 20 us longer, a stall. The
/// work reports its units (unit_started/unit_ended), so every stretch is timed: a unit, and
/// the gaps between the tick's start, its units and its end (the library's work there is
/// ~1.5 us at the start and well under 1 us between units: no system call, no allocation
/// but the tick's re-post). A tick is disturbed when:
///  - the thread waited 20 us or more for a CPU (run delay), or
///  - a stall could have made it longer: one before its first unit (it delays the start of
///    the slice) or one that ended after `slice` from the tick's start. A stall before the
///    library's deadline cannot: the deadline is a point in time, the tick just runs fewer
///    units.
/// A tick in which the thread blocked (gave up its CPU to wait: a lock, a sleep) is never
/// excluded: that is the library's doing, whatever else happened. The stalls are counted
/// (all of them) so that their rate can be compared with the same units run in one handler,
/// with no library between them: a slow path of the library's own would raise it.
/// Single-threaded use only.
struct handler_log {
  static constexpr auto stall = std::chrono::microseconds(20);
  clock::duration unit_length{};  // the work's nominal unit
  clock::duration slice{};        // the cooperator's slice; zero: every stall disturbs
  std::uint64_t units = 0;
  std::uint64_t slow_units = 0;  // stalls inside units
  std::uint64_t gap_stalls = 0;  // stalls between them
  std::uint64_t blocked = 0;     // ticks in which the thread blocked
  std::vector<double> wall_us;
  std::vector<double> cpu_us;
  std::vector<bool> disturbed;
  std::size_t empty_runs = 0;  // strand runs that ran no unit (e.g. the tick after stop())
  void reserve(std::size_t n) {
    wall_us.reserve(n);
    cpu_us.reserve(n);
    disturbed.reserve(n);
  }
  /// A tick starts at `t`.
  void start(clock::time_point t) noexcept {
    tick_start_ = last_seen_ = t;
    units_before_ = units;
    stalled_ = false;
  }
  void unit_started(clock::time_point t) noexcept {
    if (t - last_seen_ >= stall) note_stall(gap_stalls, t);
    last_seen_ = t;
  }
  void unit_ended(clock::time_point started, clock::time_point t) noexcept {
    if (t - started >= unit_length + stall) note_stall(slow_units, t);
    last_seen_ = t;
    ++units;
  }
  /// The tick ended at `end`. `waited`: run delay during it; `blocked_in_it`: the thread
  /// blocked in it.
  void add(span s, clock::duration waited, bool blocked_in_it, clock::time_point end) {
    if (units == units_before_) {
      ++empty_runs;
      return;
    }
    unit_started(end);  // the gap after the last unit
    wall_us.push_back(to_us(s.wall));
    cpu_us.push_back(to_us(s.cpu));
    blocked += blocked_in_it;
    disturbed.push_back(!blocked_in_it && (waited >= stall || stalled_));
  }

private:
  void note_stall(std::uint64_t& count, clock::time_point ended) noexcept {
    ++count;
    const bool before_first_unit = units == units_before_;
    if (slice == clock::duration::zero() || before_first_unit || ended > tick_start_ + slice) stalled_ = true;
  }
  clock::time_point tick_start_{};
  clock::time_point last_seen_{};
  std::uint64_t units_before_ = 0;
  bool stalled_ = false;
};

/// Wraps an executor; every function submitted through it is timed and logged. Given to a
/// cooperator (as any_io_executor), the strand on top of it submits one function per strand
/// run, i.e. per tick (nested inside the re-post's last hop on an io_context): so the log
/// holds the tick lengths measured from outside the library.
template <class Inner>
class timed_executor {
public:
  timed_executor(Inner inner, handler_log* log) noexcept : inner_(std::move(inner)), log_(log) {}

  template <class Function>
  void execute(Function&& f) const {
    inner_.execute([f = std::forward<Function>(f), log = log_]() mutable {
      // On an io_context a re-posted tick enters the strand from inside its last hop
      // (dispatch runs it inline): time only the outermost function, so that each tick
      // is logged once. The hop before it runs no unit and is not logged either.
      thread_local int depth = 0;
      if (depth > 0) {
        f();
        return;
      }
      struct nest {
        nest() noexcept { ++depth; }
        ~nest() { --depth; }
      } n;
      const long waits = thread_voluntary_switches();
      const auto delay = thread_run_delay();
      const stopwatch watch;
      log->start(watch.started());
      f();
      const span s = watch.elapsed();
      log->add(s, thread_run_delay() - delay, thread_voluntary_switches() != waits, watch.started() + s.wall);
    });
  }

  template <class Property>
    requires asio::can_query<const Inner&, const Property&>::value
  decltype(auto) query(const Property& p) const {
    return asio::query(inner_, p);
  }

  template <class Property>
    requires asio::can_require<const Inner&, const Property&>::value
  auto require(const Property& p) const {
    using next = std::decay_t<decltype(asio::require(inner_, p))>;
    return timed_executor<next>(asio::require(inner_, p), log_);
  }

  template <class Property>
    requires asio::can_prefer<const Inner&, const Property&>::value
  auto prefer(const Property& p) const {
    using next = std::decay_t<decltype(asio::prefer(inner_, p))>;
    return timed_executor<next>(asio::prefer(inner_, p), log_);
  }

  friend bool operator==(const timed_executor& a, const timed_executor& b) noexcept {
    return a.inner_ == b.inner_ && a.log_ == b.log_;
  }
  friend bool operator!=(const timed_executor& a, const timed_executor& b) noexcept { return !(a == b); }

private:
  template <class> friend class timed_executor;
  Inner inner_;
  handler_log* log_;
};

}  // namespace bench
