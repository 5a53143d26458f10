// SPDX-License-Identifier: BSL-1.0
// The order tests: work that logs each of its units by name, and the expected log
// written as one string.
#pragma once

#include <coop/step.hpp>

#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace coop_test {

using log_type = std::vector<std::string>;

inline constexpr int forever = std::numeric_limits<int>::max();

// "A1 B1 C1" -> {"A1", "B1", "C1"}
inline log_type expect(std::string_view spaced) {
  log_type out;
  std::istringstream in{std::string(spaced)};
  for (std::string word; in >> word;) out.push_back(word);
  return out;
}

// Work that logs "<name><n>" for its n-th unit and completes with its `count`-th unit.
inline auto recorder(log_type& log, std::string name, int count = forever) {
  return [&log, name = std::move(name), count, n = 0]() mutable {
    ++n;
    log.push_back(name + std::to_string(n));
    return n >= count ? coop::step::done : coop::step::more;
  };
}

}  // namespace coop_test
