// SPDX-License-Identifier: BSL-1.0
// Whether the library under test is the shake-out build (CMake option COOP_SHAKE_OUT):
// every tick ends after one unit. Tests of the slice and of the termination predicate
// themselves expect that structure there; every other test expects the same either way.
#pragma once

namespace coop_test {

#ifdef COOP_SHAKE_OUT
inline constexpr bool shake_out = true;
#else
inline constexpr bool shake_out = false;
#endif

}  // namespace coop_test
