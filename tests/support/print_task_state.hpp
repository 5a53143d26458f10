// SPDX-License-Identifier: BSL-1.0
// Prints a coop::task_state by its name, for Boost.Test's messages.
#pragma once

#include <coop/task_state.hpp>

#include <ostream>

namespace coop {
inline std::ostream& operator<<(std::ostream& out, task_state s) { return out << to_string(s); }
}  // namespace coop
