// SPDX-License-Identifier: BSL-1.0
// The stall detector: a unit over the threshold is reported once, while it still runs,
// with its task's name and a backtrace taken from the stalled thread; units under the
// threshold never are; a unit that never returns is; each tick loop (slice, weighted,
// predicate) is watched; the default report is one line on stderr; stats() counts them.
#define BOOST_TEST_MODULE stall
#include <boost/test/unit_test.hpp>

#include <coop/coop.hpp>

#include <boost/asio/io_context.hpp>

#include "support/print_task_state.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <csignal>
#include <pthread.h>
#include <unistd.h>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

// What on_stall saw: the reports, and when each came relative to its unit's start.
struct reports {
  std::mutex mutex;
  std::vector<coop::stall_report> list;
  std::vector<std::chrono::nanoseconds> after_start;
  std::atomic<clock_type::rep> unit_started{0};
  std::atomic<int> count{0};

  std::function<void(const coop::stall_report&)> handler() {
    return [this](const coop::stall_report& r) {
      const auto started = clock_type::time_point(clock_type::duration(unit_started.load()));
      std::lock_guard l(mutex);
      list.push_back(r);
      after_start.push_back(clock_type::now() - started);
      ++count;
    };
  }
};

// One unit that spins until `until` is set (or `limit` passes), noting when it started.
auto stuck_unit(reports& r, const std::atomic<bool>& until, std::chrono::nanoseconds limit) {
  return [&r, &until, limit] {
    const auto start = clock_type::now();
    r.unit_started.store(start.time_since_epoch().count());
    while (!until.load() && clock_type::now() - start < limit) {
    }
    return coop::step::done;
  };
}

// Units that each spin for `cost`, `n` of them.
auto spinning_units(std::chrono::nanoseconds cost, int n, reports& r) {
  return [cost, n, &r]() mutable {
    const auto start = clock_type::now();
    r.unit_started.store(start.time_since_epoch().count());
    while (clock_type::now() - start < cost) {
    }
    return --n > 0 ? coop::step::more : coop::step::done;
  };
}

// Cooperator options of each tick loop, with the detector on.
std::vector<coop::cooperator_options> every_loop(std::chrono::nanoseconds threshold, reports& r) {
  std::vector<coop::cooperator_options> out(3);
  out[1].fairness = coop::fairness::time;  // the weighted tick
  out[2].termination = [] { return [] { return true; }; };
  for (auto& o : out) {
    o.stall_threshold = threshold;
    o.on_stall = r.handler();
  }
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_stall_is_reported_while_the_unit_runs) {
  for (int loop = 0; loop < 3; ++loop) {
    reports r;
    std::atomic<bool> reported{false};
    asio::io_context io;
    coop::cooperator_options options = every_loop(20ms, r)[static_cast<std::size_t>(loop)];
    options.on_stall = [&reported, inner = r.handler()](const coop::stall_report& report) {
      inner(report);
      reported = true;  // lets the unit end: it was still running when this came
    };
    coop::cooperator c(io, options);
    c.cooperate([] { return coop::step::done; });  // another task, with a unit of its own
    coop::cooperative_task t = c.cooperate(stuck_unit(r, reported, 10s), {.name = "stuck"});
    io.run();
    BOOST_TEST_REQUIRE(r.count.load() == 1);  // the unit ended because it was reported
    const coop::stall_report& report = r.list[0];
    BOOST_TEST(report.task == "stuck");
    BOOST_TEST(report.running >= 20ms);
    // Due within the threshold and the detector's period (1 ms) of the unit's start; on a
    // loaded machine the watchdog thread may wake later, hence the margin.
    BOOST_TEST_MESSAGE("loop " << loop << ": reported " << r.after_start[0].count() / 1000 << " us after the unit began, "
                               << "running " << report.running.count() / 1000 << " us");
    BOOST_TEST(r.after_start[0] >= 20ms);
    BOOST_TEST(r.after_start[0] < 20ms + 30ms);
#if defined(__linux__)
    BOOST_TEST(!report.backtrace.empty());
    // Several frames: the signal's, the unit's, the tick's, the io_context's.
    BOOST_TEST(std::count(report.backtrace.begin(), report.backtrace.end(), '\n') >= 5);
    BOOST_TEST_MESSAGE(report.backtrace);
#endif
    BOOST_TEST(c.stats().stalls == 1u);
    BOOST_TEST(t.state() == coop::task_state::done);
  }
}

BOOST_AUTO_TEST_CASE(units_under_the_threshold_are_not_reported) {
  for (int loop = 0; loop < 3; ++loop) {
    reports r;
    asio::io_context io;
    coop::cooperator c(io, every_loop(40ms, r)[static_cast<std::size_t>(loop)]);
    c.cooperate(spinning_units(5ms, 30, r));
    c.cooperate(spinning_units(2ms, 60, r));
    io.run();
    BOOST_TEST(r.count.load() == 0);
    BOOST_TEST(c.stats().stalls == 0u);
  }
}

BOOST_AUTO_TEST_CASE(each_long_unit_is_reported_once) {
  reports r;
  asio::io_context io;
  coop::cooperator c(io, every_loop(15ms, r)[0]);
  c.cooperate(spinning_units(45ms, 3, r), {.name = "slow"});
  io.run();
  BOOST_TEST(r.count.load() == 3);
  BOOST_TEST(c.stats().stalls == 3u);
  for (const auto& report : r.list) BOOST_TEST(report.task == "slow");
}

BOOST_AUTO_TEST_CASE(a_unit_that_never_returns_is_reported) {
  reports r;
  std::atomic<bool> release{false};
  asio::io_context io;
  coop::cooperator c(io, every_loop(10ms, r)[0]);
  c.cooperate(stuck_unit(r, release, 1h), {.name = "forever"});
  std::thread runner([&] { io.run(); });
  const auto deadline = clock_type::now() + 10s;
  while (r.count.load() == 0 && clock_type::now() < deadline) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(100ms);  // ten thresholds more: still one report for the unit
  const int reported = r.count.load();
  release = true;  // the test ends the unit
  runner.join();
  BOOST_TEST(reported == 1);
  BOOST_TEST(r.list.at(0).task == "forever");
  BOOST_TEST(r.list.at(0).running >= 10ms);
  BOOST_TEST(c.stats().stalls == 1u);
}

#if defined(__linux__)
// The watchdog gives the stalled thread 20 ms to answer its signal: a thread that blocks
// it gets its report after that, without a name or a backtrace, and the next stall, with
// the signal let through again, gets both.
BOOST_AUTO_TEST_CASE(a_thread_that_blocks_the_signal_is_reported_without_a_backtrace) {
  reports r;
  std::atomic<int> reported{0};
  asio::io_context io;
  coop::cooperator_options options = every_loop(10ms, r)[0];
  options.on_stall = [&reported, inner = r.handler()](const coop::stall_report& report) {
    inner(report);
    ++reported;
  };
  coop::cooperator c(io, options);
  int unit = 0;
  c.cooperate(
      [&] {
        sigset_t all, before;
        sigfillset(&all);
        if (unit == 0) ::pthread_sigmask(SIG_BLOCK, &all, &before);
        const auto start = clock_type::now();
        r.unit_started.store(start.time_since_epoch().count());
        while (reported.load() == unit && clock_type::now() - start < 10s) {
        }
        if (unit == 0) ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
        return ++unit < 2 ? coop::step::more : coop::step::done;
      },
      {.name = "masked"});
  io.run();
  BOOST_TEST_REQUIRE(r.count.load() == 2);
  BOOST_TEST(r.list[0].task.empty());
  BOOST_TEST(r.list[0].backtrace.empty());
  BOOST_TEST(r.list[0].running >= 10ms);
  BOOST_TEST(r.after_start[0] >= 10ms + 20ms);  // the threshold, then the wait for an answer
  BOOST_TEST(r.list[1].task == "masked");
  BOOST_TEST(!r.list[1].backtrace.empty());
  BOOST_TEST(c.stats().stalls == 2u);
}
#endif

BOOST_AUTO_TEST_CASE(the_default_report_is_one_line_on_stderr) {
  // stderr into a file for the test's span.
  std::FILE* file = std::tmpfile();
  BOOST_TEST_REQUIRE(file != nullptr);
  std::fflush(stderr);
  const int saved = ::dup(2);
  ::dup2(::fileno(file), 2);
  {
    reports r;
    std::atomic<bool> never{false};
    asio::io_context io;
    coop::cooperator c(io, {.stall_threshold = 10ms});
    c.cooperate(stuck_unit(r, never, 60ms), {.name = "quiet"});
    io.run();
    BOOST_TEST(c.stats().stalls == 1u);
  }
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::rewind(file);
  std::string text;
  for (int ch; (ch = std::fgetc(file)) != EOF;) text.push_back(static_cast<char>(ch));
  std::fclose(file);
  BOOST_TEST_MESSAGE("stderr: " << text);
  BOOST_TEST(text.find("coop: stall") != std::string::npos);
  BOOST_TEST(text.find("\"quiet\"") != std::string::npos);
  BOOST_TEST(std::count(text.begin(), text.end(), '\n') == 1);
}

BOOST_AUTO_TEST_CASE(no_threshold_no_detector) {
  reports r;
  asio::io_context io;
  coop::cooperator c(io);
  c.cooperate(spinning_units(30ms, 2, r));
  io.run();
  BOOST_TEST(c.stats().stalls == 0u);
}
