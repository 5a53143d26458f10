// SPDX-License-Identifier: BSL-1.0
// The admission limit a cooperator pool applies across its members (max_active on a
// pool): at most `limit` tasks admitted on all members together; the others wait queued
// on their own member and are admitted in the order they were queued, whichever member
// frees a place. A place freed on one member goes straight to the oldest queued task
// (the count admitted stays), so a new task cannot overtake the queue meanwhile.
//
// Its mutex is a leaf: taken under a member's lock, never held while calling a member.
#pragma once

#include <coop/detail/task_base.hpp>

#include <cstddef>
#include <mutex>
#include <vector>

namespace coop::detail {

class core_impl;

class admission_budget {
public:
  explicit admission_budget(std::size_t limit) noexcept : limit_(limit) {}

  /// A place granted to a queued task: its member must admit it (or, if it has finished
  /// meanwhile, pass the place on). Holds a reference to the task.
  struct grant {
    core_impl* member = nullptr;
    task_ptr task;
  };

  /// Room for one more queued task, so that admit_or_enqueue() never allocates: once per
  /// new task, before it is placed (a member's reserve_room()). Throws std::bad_alloc with
  /// nothing changed.
  void reserve() {
    std::lock_guard l(mutex_);
    compact();
    fifo_.reserve(fifo_.size() + promised_ + 1);
    ++promised_;
  }

  /// A new task on `member`: true if it takes a place now; false if it must wait queued
  /// (it is then last in the pool's queue).
  bool admit_or_enqueue(core_impl& member, task_base& t) noexcept {
    std::lock_guard l(mutex_);
    if (promised_) --promised_;
    if (admitted_ < limit_ && head_ == fifo_.size()) {
      ++admitted_;
      return true;
    }
    fifo_.push_back({&member, &t});  // within the room reserve() made
    return false;
  }

  /// A new task placed without asking (its member is stopped: it finishes at once).
  void drop_promise() noexcept {
    std::lock_guard l(mutex_);
    if (promised_) --promised_;
  }

  /// A queued task finished without being admitted: it leaves the queue. If a place was
  /// granted to it already, it is not here: the grant finds it finished and passes it on.
  void forget(const task_base& t) noexcept {
    std::lock_guard l(mutex_);
    for (std::size_t i = head_; i < fifo_.size(); ++i) {
      if (fifo_[i].task == &t) {
        fifo_.erase(fifo_.begin() + static_cast<std::ptrdiff_t>(i));
        return;
      }
    }
  }

  /// An admitted task finished, or a grant found its task gone: the place goes to the
  /// oldest queued task, or back to the budget (an empty grant).
  grant release() noexcept {
    std::lock_guard l(mutex_);
    if (head_ == fifo_.size()) {
      --admitted_;
      return {};
    }
    const entry e = fifo_[head_++];
    // Referenced under the mutex: its member's forget() cannot have run yet, so it is alive.
    return {e.member, task_ptr(e.task)};
  }

private:
  struct entry {
    core_impl* member;
    task_base* task;
  };
  void compact() noexcept {
    fifo_.erase(fifo_.begin(), fifo_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }

  std::mutex mutex_;
  const std::size_t limit_;
  std::size_t admitted_ = 0;
  std::size_t promised_ = 0;  // reserve()s not yet followed by their task's placement
  std::vector<entry> fifo_;   // queued tasks from fifo_[head_] on, oldest first
  std::size_t head_ = 0;
};

}  // namespace coop::detail
