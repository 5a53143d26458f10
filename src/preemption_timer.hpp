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

  // The stall detector (stall_ns > 0). The tick publishes the kernel id of the thread
  // running it (0 between ticks) and the time of each clock read, all made at unit
  // boundaries; the watchdog asks for a read at the next boundary (core_impl::probe())
  // at every look. A probe that no boundary has answered by the time it is stall_ns
  // old means the unit running when it was made runs on: a stall. A tick makes the first
  // probe itself, at its start (its first clock read, the boundary before its first
  // unit): a unit that stalls at once is reported on time however late the watchdog
  // wakes up after a quiet spell.
  std::int64_t stall_ns = 0;
  std::atomic<long> tick_thread{0};
  std::atomic<std::int64_t> boundary_ns{0};
  // The watchdog's own: its last probe, the one before, and the last one reported; and
  // whether the last probe is the one a tick makes at its start (tick_start_ns).
  std::int64_t probe_ns = 0, previous_probe_ns = 0, reported_probe_ns = 0;
  bool probe_at_tick_start = false;
};

/// How often the thread looks while a tick with a stall detector runs: a stall is reported
/// at most this late (plus the thread's own wake-up delay).
inline constexpr std::chrono::milliseconds stall_period{1};

/// Registers an entry for the core's lifetime.
void add(entry& e);
void remove(entry& e) noexcept;
/// Wakes the thread if it is idle (call after storing tick_start_ns).
void tick_started() noexcept;

}  // namespace preemption_timer
}  // namespace coop::detail
