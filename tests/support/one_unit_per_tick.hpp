// SPDX-License-Identifier: BSL-1.0
// Cooperator options whose termination predicate ends every tick after one unit, so a
// test sees the round-robin order unit by unit whatever the machine's speed.
#pragma once

#include <coop/cooperator_options.hpp>

namespace coop_test {

inline coop::cooperator_options one_unit_per_tick() {
  coop::cooperator_options options;
  options.termination = [] { return [] { return true; }; };
  return options;
}

}  // namespace coop_test
