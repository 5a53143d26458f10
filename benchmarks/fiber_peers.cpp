// SPDX-License-Identifier: BSL-1.0
// Boost.Fiber as a peer, measured the way coop is: one fiber per task on the calling
// thread (the default round_robin scheduler, the default stack), this_fiber::yield()
// after each trivial unit; and a fiber's create+join, the lifecycle of a one-unit task.
#include "fiber_peers.hpp"

#include <boost/fiber/all.hpp>

#include <vector>

namespace bench {

void fiber_yield_per_unit(benchmark::State& state, std::uint64_t fibers, std::uint64_t total) {
  const std::uint64_t per_fiber = total / fibers;
  for (auto _ : state) {
    std::vector<boost::fibers::fiber> all;
    all.reserve(fibers);
    const stopwatch watch;
    for (std::uint64_t i = 0; i < fibers; ++i)
      all.emplace_back([i, per_fiber] {
        std::uint64_t s = i;
        for (std::uint64_t n = 0; n < per_fiber; ++n) {
          lcg_step(s);
          boost::this_fiber::yield();
        }
        benchmark::DoNotOptimize(s);
      });
    for (auto& f : all) f.join();
    set_time(state, watch.elapsed());
  }
}

void fiber_create_join(benchmark::State& state, std::uint64_t fibers) {
  for (auto _ : state) {
    std::vector<boost::fibers::fiber> all;
    all.reserve(fibers);
    std::uint64_t sum = 0;
    const stopwatch watch;
    for (std::uint64_t i = 0; i < fibers; ++i)
      all.emplace_back([i, &sum] {
        std::uint64_t s = i;
        lcg_step(s);
        sum += s;
      });
    for (auto& f : all) f.join();
    set_time(state, watch.elapsed());
    benchmark::DoNotOptimize(sum);
  }
}

}  // namespace bench
