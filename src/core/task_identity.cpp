// SPDX-License-Identifier: BSL-1.0
// What a task's handle reports about it besides control: its name, its shares (which any
// thread may change) and its state.
#include "core_lock.hpp"

#include <stdexcept>
#include <string>

namespace coop::detail {

namespace {
constexpr unsigned min_shares = 1, max_shares = 10000;

// +1 when a shares word goes from the default to another value, -1 back, 0 otherwise.
int weight_change(std::uint32_t from, std::uint32_t to) noexcept {
  const bool was = (from & shares_word::mask) != shares_word::standard;
  const bool is = (to & shares_word::mask) != shares_word::standard;
  return int(is) - int(was);
}
}  // namespace

void cooperator_core::check_shares(unsigned shares) {
  if (shares < min_shares || shares > max_shares)
    throw std::invalid_argument("coop: shares must be in 1..10000, not " + std::to_string(shares));
}

void cooperator_core::set_options(task_base& t, task_options&& options) {
  t.shares_.store(static_cast<std::uint16_t>(options.shares), std::memory_order_relaxed);
  t.set_name(std::move(options.name));
}

unsigned cooperator_core::shares(const task_base& t) noexcept {
  return t.shares_.load(std::memory_order_relaxed) & shares_word::mask;
}

std::string cooperator_core::name(const task_base& t) {
  // Set before the task was added, never changed after.
  if (const std::string* name = t.name()) return *name;
  return "task-" + std::to_string(t.number());
}

task_state cooperator_core::state(const task_base& t) noexcept {
  const std::uint32_t c = t.control_.load(std::memory_order_acquire);
  switch (control::state(c)) {
    case run_state::done: return task_state::done;
    case run_state::stopped: return task_state::stopped;
    case run_state::failed: return task_state::failed;
    case run_state::scheduler_stopped: return task_state::scheduler_stopped;
    case run_state::active: break;
  }
  if (control::pauses(c) > 0) return task_state::paused;
  if (t.awaiting_.load(std::memory_order_relaxed)) return task_state::waiting;
  if (t.place_.load(std::memory_order_relaxed) == task_place::queued) return task_state::queued;
  return task_state::runnable;
}

void core_impl::set_shares(task_base& t, unsigned shares) {
  check_shares(shares);
  std::uint16_t w = t.shares_.load(std::memory_order_relaxed);
  do {
    if (w & shares_word::finished) return;
  } while (!t.shares_.compare_exchange_weak(w, static_cast<std::uint16_t>(shares), std::memory_order_relaxed));
  // The tick reads the shares at each turn, and picks its loop (round-robin or weighted)
  // from weighted_tasks_ at each tick.
  if (const int d = weight_change(w, shares)) weighted_tasks_.fetch_add(d, std::memory_order_relaxed);
}

void core_impl::count_shares(task_base& t) noexcept {
  if (weight_change(shares_word::standard, t.shares_.load(std::memory_order_relaxed)))
    weighted_tasks_.fetch_add(1, std::memory_order_relaxed);
}

void core_impl::uncount_shares(task_base& t) noexcept {
  const std::uint16_t w = t.shares_.fetch_or(shares_word::finished, std::memory_order_relaxed);
  if (weight_change(w, shares_word::standard)) weighted_tasks_.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace coop::detail
