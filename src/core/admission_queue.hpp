// SPDX-License-Identifier: BSL-1.0
// The tasks waiting for admission (cooperator_options::max_active), oldest first.
#pragma once

#include <coop/detail/task_base.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace coop::detail {

/// FIFO of queued tasks with O(1) removal from anywhere (a queued task may be stopped):
/// removal leaves a hole that pop_front() skips, and holes are closed (amortized O(1))
/// once they are as many as the tasks. A task's slot_ indexes it here
/// while it is queued (a task is in one list at a time).
class admission_queue {
public:
  bool empty() const noexcept { return live_ == 0; }
  std::size_t size() const noexcept { return live_; }
  /// Room for `tasks` queued tasks, so push_back() never allocates. Throws when out of
  /// memory, with nothing changed.
  void reserve(std::size_t tasks) {
    if (slots_.capacity() < 2 * tasks + 16) slots_.reserve(std::max(2 * tasks + 16, 2 * slots_.capacity()));
  }
  void push_back(task_base& t) noexcept {
    // Holes (removed tasks, and the front pop_front() passed) are closed before they
    // outgrow the room reserve() made: size stays under 2 x (tasks) + 16.
    if (slots_.size() >= 2 * live_ + 16) reclaim();
    t.slot_ = static_cast<std::uint32_t>(slots_.size());
    slots_.push_back(&t);  // within the capacity reserve() made: no allocation
    ++live_;
  }
  void unlink(task_base& t) noexcept {
    slots_[t.slot_] = nullptr;
    --live_;
  }
  /// The oldest task, left in; null when none.
  task_base* front() noexcept {
    while (head_ < slots_.size() && !slots_[head_]) ++head_;
    return head_ < slots_.size() ? slots_[head_] : nullptr;
  }
  /// Takes the oldest task out; null when none.
  task_base* pop_front() noexcept {
    while (head_ < slots_.size()) {
      if (task_base* t = slots_[head_++]) {
        --live_;
        if (head_ == slots_.size()) slots_.clear(), head_ = 0;
        return t;
      }
    }
    slots_.clear();
    head_ = 0;
    return nullptr;
  }

private:
  void reclaim() noexcept {
    std::size_t w = 0;
    for (std::size_t r = head_; r < slots_.size(); ++r)
      if (task_base* t = slots_[r]) {
        slots_[w] = t;
        t->slot_ = static_cast<std::uint32_t>(w++);
      }
    slots_.resize(w);
    head_ = 0;
  }

  std::vector<task_base*> slots_;
  std::size_t head_ = 0;
  std::size_t live_ = 0;
};

}  // namespace coop::detail
