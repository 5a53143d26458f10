// SPDX-License-Identifier: BSL-1.0
// A task's waited time (task_stats::waited) from two marks: as it joins the run order,
// task_base::waited_ becomes the time it joined less what it had waited and been busy
// until then (tagged with a low 1); as it leaves, the time waited again. Waited is then
// the time in the run order less the time busy, with no per-unit work and no clock read
// of its own (the marks take the tick's last clock read, wait_clock()).
#pragma once

#include <coop/detail/task_base.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace coop::detail::wait_marks {

inline std::int64_t ns(std::chrono::steady_clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
inline std::int64_t busy_ns(const task_base& t) noexcept {
  return static_cast<std::int64_t>(t.busy_.load(std::memory_order_relaxed) / busy_scale);
}

/// The time `t` has waited, as of `now`.
inline std::int64_t waited(const task_base& t, std::chrono::steady_clock::time_point now) noexcept {
  const std::uint64_t v = t.waited_.load(std::memory_order_relaxed);
  if (!(v & 1)) return static_cast<std::int64_t>(v >> 1);
  return std::max<std::int64_t>(0, ns(now) - static_cast<std::int64_t>(v >> 1) - busy_ns(t));
}

/// `t` joins the run order at `now`. The lock holder only.
inline void join(task_base& t, std::chrono::steady_clock::time_point now) noexcept {
#ifndef COOP_DETAIL_NO_STATS
  const std::uint64_t v = t.waited_.load(std::memory_order_relaxed);
  if (v & 1) return;
  const std::int64_t mark = std::max<std::int64_t>(0, ns(now) - static_cast<std::int64_t>(v >> 1) - busy_ns(t));
  t.waited_.store(static_cast<std::uint64_t>(mark) << 1 | 1, std::memory_order_relaxed);
#else
  (void)t;
  (void)now;
#endif
}

/// `t` leaves the run order at `now`. The lock holder only.
inline void leave(task_base& t, std::chrono::steady_clock::time_point now) noexcept {
  if (!(t.waited_.load(std::memory_order_relaxed) & 1)) return;
  t.waited_.store(static_cast<std::uint64_t>(waited(t, now)) << 1, std::memory_order_relaxed);
}

}  // namespace coop::detail::wait_marks
