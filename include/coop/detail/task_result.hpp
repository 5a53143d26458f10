// SPDX-License-Identifier: BSL-1.0
// A task's result (Part 2, "Results"): what a steps_of<T> coroutine co_returns, or the
// work object of returning(work), kept in the task (outside the coroutine frame) so that
// every when_done waiter, however late, finds it. Guarded by the cooperator core's lock,
// like the rest of the task's completion state.
#pragma once

#include <coop/detail/task_base.hpp>

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace coop::detail {

template <class T> class result_slot;

/// A parked waiter that carries a value (when_done_op<Handler, T>).
template <class T>
class result_waiter : public waiter_base {
public:
  /// The value it waited for became final after the waiter was completed (see
  /// result_slot::defer): deliver it again, now with the value.
  virtual void value_final() noexcept = 0;

private:
  friend class result_slot<T>;
  result_waiter* next_deferred_ = nullptr;

protected:
  ~result_waiter() = default;
};

template <> class result_slot<void> {};

template <class T>
class result_slot {
public:
  /// `keeps_work`: returning(work), the value is the work itself and is handed over on
  /// every way of finishing; else (steps_of) only a task that is done has a value.
  explicit result_slot(bool keeps_work) noexcept : keeps_work_(keeps_work), final_(!keeps_work) {}
  result_slot(const result_slot&) = delete;
  result_slot& operator=(const result_slot&) = delete;

  /// The work (returning) or the co_return value (steps_of, once it ran).
  std::optional<T> value_;

  /// Whether the value can no longer change. A work object is final once the task has
  /// finished and its last unit has ended (the task's destroy_work()); a co_return value
  /// always is (the task is done only after the unit that returned it).
  bool final() const noexcept { return final_; }

  /// The value for a waiter of a finished task; `take` (coiterate, the only waiter) moves
  /// it out, else a copy. A task that failed or stopped gives T{}, but for returning(work).
  void give(std::optional<T>& to, run_state how, bool take) {
    if (value_ && (keeps_work_ || how == run_state::done)) {
      if (take) {
        to.emplace(std::move(*value_));
        value_.reset();
      } else {
        if constexpr (std::is_copy_constructible_v<T>) to.emplace(*value_);
      }
      return;
    }
    give_default(to);
  }

  /// The value for a when_done wait cancelled while the task runs on: T{}; for a work
  /// type without a default constructor, a copy of the work as it stands (the cooperator's
  /// lock is held, so no unit of another thread is changing it).
  void give_for_cancelled_wait(std::optional<T>& to) {
    if constexpr (std::is_default_constructible_v<T>) {
      to.emplace();
    } else if constexpr (std::is_copy_constructible_v<T>) {
      to.emplace(*value_);
    }
  }

  static void give_default(std::optional<T>& to) {
    if constexpr (std::is_default_constructible_v<T>) to.emplace();
  }

  /// A waiter completed while the work may still change (the task finished inside its
  /// own unit: stopped itself or its cooperator). It completes when work_finished() runs,
  /// after that unit; waiters keep their order.
  void defer(result_waiter<T>& w) noexcept {
    w.next_deferred_ = nullptr;
    (deferred_tail_ ? deferred_tail_->next_deferred_ : deferred_) = &w;
    deferred_tail_ = &w;
  }

  /// The task finished and its last unit has ended (destroy_work): the work is final.
  void work_finished() noexcept {
    final_ = true;
    result_waiter<T>* w = std::exchange(deferred_, nullptr);
    deferred_tail_ = nullptr;
    while (w) {
      result_waiter<T>* next = std::exchange(w->next_deferred_, nullptr);
      w->value_final();
      w = next;
    }
  }

private:
  const bool keeps_work_;
  bool final_;
  result_waiter<T>* deferred_ = nullptr;
  result_waiter<T>* deferred_tail_ = nullptr;
};

/// What returning(work) gives: the work, marked so that cooperate() keeps it as the
/// task's result.
template <class Work>
struct returning_work {
  Work work;
};

template <class W> struct is_returning_work : std::false_type {};
template <class W> struct is_returning_work<returning_work<W>> : std::true_type {};

}  // namespace coop::detail
