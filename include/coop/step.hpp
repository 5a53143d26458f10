// SPDX-License-Identifier: BSL-1.0
// coop::step — what one unit of callable work reports.
#pragma once

namespace coop {

/// The result of one call of a callable work: `more` asks to be called again at the
/// task's next turn, `done` completes the task (Twisted: the iterator is exhausted).
enum class step : unsigned char { more, done };

}  // namespace coop
