// SPDX-License-Identifier: BSL-1.0
// A backstop that ends ticks whose units suddenly got much slower than the clock-read
// interval the tick learned (Seastar's preemption flag, made lazy): a thread that, while
// any tick runs, wakes every period and raises the preempt bit of every core whose
// current tick has overrun its slice. A tick only stores its start time (one relaxed
// atomic store), so the thread costs nothing per tick and wakes a few hundred times a
// second at most, only while cooperators are busy.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace coop::detail {

class core_impl;

namespace preemption_timer {

/// How often the thread looks while ticks run, and so how late it may catch an overrun.
inline constexpr std::chrono::milliseconds period{2};

/// A core's entry: the start of its running tick (0: none) and its slice.
struct entry {
  core_impl* core;
  std::atomic<std::int64_t> tick_start_ns{0};
  std::int64_t slice_ns = 0;
  std::atomic<bool> needs_retry{false};  // something could not be posted: call try_retry()
};

/// Registers an entry for the core's lifetime.
void add(entry& e);
void remove(entry& e) noexcept;
/// Wakes the thread if it is idle (call after storing tick_start_ns).
void tick_started() noexcept;

}  // namespace preemption_timer
}  // namespace coop::detail
