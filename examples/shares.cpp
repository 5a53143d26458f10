// SPDX-License-Identifier: BSL-1.0
// Shares, fairness by time and a concurrency limit. Three jobs whose units cost 2 us,
// 20 us and 200 us get the busy time in proportion to their shares (100 : 200 : 400),
// whatever their units cost; Twisted's round-robin would give the 200 us job ~90% of it.
// Then six jobs on a cooperator that admits two at a time: the others wait, queued.
#include <coop/coop.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using std::chrono::steady_clock;

// One unit: busy for `cost`; the time it took goes to `busy`.
struct busy_job {
  std::chrono::nanoseconds cost;
  std::chrono::nanoseconds* busy;
  coop::step operator()() {
    const auto start = steady_clock::now();
    auto now = start;
    while (now - start < cost) now = steady_clock::now();
    *busy += now - start;
    return coop::step::more;
  }
};

bool fair_by_time() {
  asio::io_context io;
  coop::cooperator cooperator(io, {.fairness = coop::fairness::time});
  std::chrono::nanoseconds busy[3]{};
  const std::chrono::nanoseconds costs[3] = {2us, 20us, 200us};
  const unsigned shares[3] = {100, 200, 400};
  std::vector<coop::cooperative_task> jobs;
  for (int i = 0; i < 3; ++i)
    jobs.push_back(cooperator.cooperate(busy_job{costs[i], &busy[i]},
                                        {.name = "job-" + std::to_string(i), .shares = shares[i]}));
  io.run_for(400ms);
  cooperator.stop();

  const auto total = busy[0] + busy[1] + busy[2];
  bool ok = true;
  for (int i = 0; i < 3; ++i) {
    const double got = double(busy[i].count()) / double(total.count());
    const double wanted = shares[i] / 700.0;
    std::printf("%s: units of %lld us, %u shares: %.1f%% of the busy time (proportional: %.1f%%)\n",
                jobs[i].name().c_str(), static_cast<long long>(costs[i].count() / 1000), jobs[i].shares(),
                100 * got, 100 * wanted);
    ok = ok && got > wanted * 0.6 && got < wanted * 1.4;  // loose: a shared machine stalls units
  }
  return ok;
}

bool limited_concurrency() {
  asio::io_context io;
  coop::cooperator cooperator(io, {.max_active = 2});  // the third task added waits, queued
  std::vector<coop::cooperative_task> jobs;
  std::string order;
  for (char name = 'a'; name < 'g'; ++name)
    jobs.push_back(cooperator.cooperate([&order, name, left = 3]() mutable {
      if (left == 3) order += name;  // its first unit
      return --left == 0 ? coop::step::done : coop::step::more;
    }));
  std::printf("before running: %s %s %s\n", coop::to_string(jobs[0].state()), coop::to_string(jobs[1].state()),
              coop::to_string(jobs[2].state()));
  io.run();
  std::printf("jobs started in the order %s, at most two at a time\n", order.c_str());
  return order == "abcdef" && jobs[5].state() == coop::task_state::done;
}

int main() {
  const bool fair = fair_by_time();
  const bool limited = limited_concurrency();
  return fair && limited ? 0 : 1;
}
