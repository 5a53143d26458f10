// SPDX-License-Identifier: BSL-1.0
// Boost.Fiber, the peer measured beside coop in the throughput and lifecycle sections.
#pragma once

#include "bench.hpp"

#include <benchmark/benchmark.h>

#include <cstdint>

namespace bench {

/// Thread CPU time as the benchmark's time, wall time as the counter "wall_ns".
void set_time(benchmark::State& state, span s);

/// `fibers` fibers share `total` trivial units, yielding after each one.
void fiber_yield_per_unit(benchmark::State& state, std::uint64_t fibers, std::uint64_t total);
/// `fibers` fibers of one trivial unit, made and then joined.
void fiber_create_join(benchmark::State& state, std::uint64_t fibers);

}  // namespace bench
