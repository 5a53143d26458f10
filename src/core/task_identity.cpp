// SPDX-License-Identifier: BSL-1.0
// What a task's handle reports about it besides control: its name, its shares (which any
// thread may change) and its state.
#include "core_lock.hpp"

#include <stdexcept>
#include <string>

namespace coop::detail {

namespace {
constexpr unsigned min_shares = 1, max_shares = 10000;
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
  return t.shares_.load(std::memory_order_relaxed);
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
  // On a finished task it does nothing. One finishing meanwhile is as if this came first.
  if (control::state(t.control_.load(std::memory_order_acquire)) != run_state::active) return;
  // The tick reads the shares at each turn; the count of weighted tasks, from which it
  // picks its loop at each tick, is the lock holder's to change (now, or from the inbox
  // at the next unit boundary).
  t.shares_.store(static_cast<std::uint16_t>(shares), std::memory_order_relaxed);
  apply_or_queue(request::recount_shares, t);
}

void core_impl::recount_shares(task_base& t) noexcept {
  const bool weighted = !t.retired_ && t.shares_.load(std::memory_order_relaxed) != shares_word::standard;
  if (weighted == t.counted_weighted_) return;
  t.counted_weighted_ = weighted;
  if (weighted) ++weighted_tasks_;
  else --weighted_tasks_;
}

}  // namespace coop::detail
