// SPDX-License-Identifier: BSL-1.0
// The operation a coroutine task (coop::steps) awaits: the task leaves the run order while
// it waits, and its handler brings it back, fails it, or finds it stopped.
#include "core_lock.hpp"

#include <coop/detail/steps_task.hpp>

namespace coop::detail {

namespace {
// Only coroutine tasks await operations; their generation counter lives with them.
std::uint32_t& generation_of(task_base& t) noexcept { return static_cast<steps_task_base&>(t).await_generation_; }
std::uint32_t generation_of(const task_base& t) noexcept {
  return static_cast<const steps_task_base&>(t).await_generation_;
}
}  // namespace

std::uint32_t core_impl::begin_await(task_base& t) noexcept {
  lock l(*this);
  if (control::state(t.control_.load(std::memory_order_acquire)) != run_state::active) return 0;
  t.awaiting_.store(true, std::memory_order_relaxed);
  auto& keep = static_cast<steps_task_base&>(t).core_keep_;
  if (!keep) keep = shared_from_this();
  std::uint32_t& g = generation_of(t);
  if (++g == 0) g = 1;
  park(t);
  return g;
}

void core_impl::undo_await(task_base& t) noexcept {
  lock l(*this);
  t.awaiting_.store(false, std::memory_order_relaxed);
  update_placement(t);
}

void core_impl::end_await(task_base& t, std::uint32_t generation, std::exception_ptr failure,
                               void (*deliver)(void*), void* arg) noexcept {
  lock l(*this);
  if (!t.awaiting_ || generation_of(t) != generation) return;  // a handler of an earlier operation
  t.awaiting_.store(false, std::memory_order_relaxed);
  if (control::state(t.control_.load(std::memory_order_acquire)) == run_state::active) {
    if (failure) {
      if (try_finish(t, run_state::failed)) retire(t, std::move(failure));
    } else {
      deliver(arg);
    }
  }
  // Rejoins the run order, stays parked (user pause), or — stopped while it awaited —
  // retires, or drops the work kept alive for the operation.
  update_placement(t);
}

bool core_impl::await_pending(const task_base& t, std::uint32_t generation) noexcept {
  lock l(*this);  // its release applies what other threads left meanwhile
  return t.awaiting_ && generation_of(t) == generation;
}

void core_impl::await_abandoned(task_base& t, std::uint32_t generation) noexcept {
  lock l(*this);
  if (!t.awaiting_ || generation_of(t) != generation) return;
  t.awaiting_.store(false, std::memory_order_relaxed);
  if (control::state(t.control_.load(std::memory_order_acquire)) == run_state::active) {
    if (try_finish(t, run_state::failed)) retire(t, operation_aborted_exception);
  }
  update_placement(t);
}

namespace {
// await_dropped()'s check: run on the strand, or destroyed unrun (the context shut down,
// or out of memory), it ends the await the same way; one the context's shutdown has
// already ended (the task stopped scheduler_stopped) is past it by then.
struct dropped_await_check {
  task_ptr task;
  std::uint32_t generation;
  dropped_await_check(task_ptr t, std::uint32_t g) noexcept : task(std::move(t)), generation(g) {}
  dropped_await_check(dropped_await_check&&) noexcept = default;
  dropped_await_check& operator=(dropped_await_check&&) = delete;
  ~dropped_await_check() { end(); }
  void operator()() noexcept { end(); }
  void end() noexcept {
    if (task_ptr t = std::move(task)) core_of(*t).await_abandoned(*t, generation);
  }
};
}  // namespace

void core_impl::await_dropped(task_base& t, std::uint32_t generation) noexcept {
  lock l(*this);
  if (!t.awaiting_ || generation_of(t) != generation) return;
  t.forget_awaited();  // a stop() meanwhile must not emit cancellation into the gone operation
  try {
    post_to_strand(&t, dropped_await_check(task_ptr(&t), generation));  // a drop ends it at once
  } catch (...) {
  }
}

}  // namespace coop::detail
