// SPDX-License-Identifier: BSL-1.0
// Out-of-memory redelivery: a completion that could not be posted is kept on the core and
// posted again at the next release of the lock, or by the watchdog thread.
#include "core_lock.hpp"

namespace coop::detail {

void core_impl::deliver(waiter_base& w, std::exception_ptr result) noexcept {
  if (shutting_down_) {
    w.destroy();
    return;
  }
  if (w.complete(std::move(result), *this)) return;
  // Out of memory: keep it and post it again later (next lock release, or the watchdog).
  w.prev_ = nullptr;
  w.next_ = undelivered_;
  undelivered_ = &w;
  retry_needed();
}

void core_impl::redeliver(waiter_base& w, std::exception_ptr result) noexcept {
  lock l(*this);
  deliver(w, std::move(result));
}

void core_impl::retry_needed() noexcept {
  needs_retry_.store(true, std::memory_order_release);
  timer_entry_.needs_retry.store(true, std::memory_order_release);
  preemption_timer::tick_started();  // wake the watchdog if it sleeps
}

void core_impl::retry() noexcept {
  needs_retry_.store(false, std::memory_order_relaxed);
  timer_entry_.needs_retry.store(false, std::memory_order_relaxed);
  waiter_base* w = std::exchange(undelivered_, nullptr);
  while (w) {
    waiter_base* next = w->next_;
    deliver(*w, std::move(w->result_));
    w = next;
  }
  if (tick_lost_) {
    tick_lost_ = false;
    if (running_.load(std::memory_order_relaxed) && !policy_.empty() && !in_tick_) try_schedule_tick();
  }
}

void core_impl::try_retry() noexcept {
  if (!needs_retry_.load(std::memory_order_acquire) || !mutex_.try_lock()) return;
  lock l(*this, std::adopt_lock);
  retry();
}

}  // namespace coop::detail
