// SPDX-License-Identifier: BSL-1.0
// What runs, seen from outside: each task's units, busy and waited time, and the
// cooperator's counts, read from another thread while the units run. Three jobs share a
// cooperator for 300 ms; one of them is paused half-way, so it stops being busy and stops
// waiting.
#include <coop/coop.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using std::chrono::steady_clock;

// One unit: busy for `cost`.
struct busy_job {
  std::chrono::nanoseconds cost;
  coop::step operator()() const {
    const auto start = steady_clock::now();
    while (steady_clock::now() - start < cost) {
    }
    return coop::step::more;
  }
};

double ms(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

int main() {
  asio::io_context io;
  coop::cooperator cooperator(io);
  std::vector<coop::cooperative_task> jobs = {
      cooperator.cooperate(busy_job{5us}, {.name = "checksum"}),
      cooperator.cooperate(busy_job{50us}, {.name = "report"}),
      cooperator.cooperate(busy_job{20us}, {.name = "reindex"}),
  };
  std::thread runner([&] { io.run_for(300ms); });

  // From this thread, while the units run: snapshots, never waiting for a tick.
  std::this_thread::sleep_for(150ms);
  jobs[2].pause();
  const coop::task_stats at_pause = jobs[2].stats();
  runner.join();

  std::printf("%-10s %-9s %9s %10s %10s\n", "task", "state", "units", "busy ms", "waited ms");
  for (const coop::cooperative_task& job : jobs) {
    const coop::task_stats s = job.stats();
    std::printf("%-10s %-9s %9llu %10.1f %10.1f\n", job.name().c_str(), coop::to_string(job.state()),
                static_cast<unsigned long long>(s.units), ms(s.busy), ms(s.waited));
  }
  const coop::cooperator_stats c = cooperator.stats();
  std::printf("cooperator: %llu ticks, %llu units, %.1f ms busy; runnable %zu, paused %zu\n",
              static_cast<unsigned long long>(c.ticks), static_cast<unsigned long long>(c.units), ms(c.busy),
              c.runnable, c.paused);

  // The paused job ran nothing more after pause() returned.
  const bool ok = jobs[2].stats().units == at_pause.units && c.runnable == 2 && c.paused == 1 &&
                  jobs[0].stats().units > 0 && jobs[0].stats().busy + jobs[1].stats().busy <= c.busy;
  cooperator.stop();
  return ok ? 0 : 1;
}
