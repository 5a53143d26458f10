// SPDX-License-Identifier: BSL-1.0
// Work whose units are busy for a set time and measure it themselves: the reference the
// time tests (fairness by time, busy time in the stats) compare the library against.
#pragma once

#include <coop/step.hpp>

#include <chrono>

namespace coop_test {

/// Busy for `cost` per unit, forever; adds the time its units took, as it measured them
/// (the steady clock), to `busy`.
inline auto spinner(std::chrono::nanoseconds cost, std::chrono::nanoseconds& busy) {
  return [cost, &busy] {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    auto now = start;
    while (now - start < cost) now = clock::now();
    busy += now - start;
    return coop::step::more;
  };
}

}  // namespace coop_test
