// SPDX-License-Identifier: BSL-1.0
// One task set on two threads: a cooperator_pool of two members on an io_context run by
// two threads. Eight jobs spread over the members (each new one joins the member with the
// fewest unfinished jobs), so up to two units run at once; the per-member stats show the
// split. Exits non-zero if a job is lost or a member got none.
#include <coop/coop.hpp>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <thread>
#include <vector>

namespace asio = boost::asio;

// A job of `units` units, each a few microseconds of arithmetic; its result is the work
// object itself (coop::returning), holding the sum it computed.
struct sum_job {
  std::uint64_t units;
  std::uint64_t sum = 0;
  coop::step operator()() {
    for (std::uint64_t i = 0; i < 2000; ++i) sum += (sum ^ i) * 2654435761u % 1000003;
    return --units > 0 ? coop::step::more : coop::step::done;
  }
};

int main() {
  asio::io_context io;
  coop::cooperator_pool pool(io, 2);
  std::atomic<int> finished{0};
  for (int i = 0; i < 8; ++i) {
    pool.coiterate(coop::returning(sum_job{2000}), {.name = "sum-" + std::to_string(i)},
                   [&](std::exception_ptr ep, sum_job job) {
                     if (!ep && job.units == 0) ++finished;
                   });
  }
  std::thread second([&] { io.run(); });
  io.run();
  second.join();

  const coop::cooperator_stats all = pool.stats();
  std::printf("pool of %zu: %d of 8 jobs finished, %llu units, %.1f ms busy\n", pool.size(), finished.load(),
              static_cast<unsigned long long>(all.units), static_cast<double>(all.busy.count()) / 1e6);
  bool every_member_ran = true;
  for (std::size_t i = 0; i < pool.size(); ++i) {
    const coop::cooperator_stats s = pool.member_stats(i);
    std::printf("member %zu: %llu tasks, %llu units, %.1f ms busy\n", i, static_cast<unsigned long long>(s.finished),
                static_cast<unsigned long long>(s.units), static_cast<double>(s.busy.count()) / 1e6);
    every_member_ran = every_member_ran && s.units > 0;
  }
  return finished == 8 && every_member_ran ? 0 : 1;
}
