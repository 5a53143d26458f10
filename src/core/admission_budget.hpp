// SPDX-License-Identifier: BSL-1.0
// The admission limit a cooperator pool applies across its members (max_active on a
// pool): at most `limit` tasks admitted on all members together; the others wait queued
// on their own member and are admitted in the order they were queued, whichever member
// frees a place. A place freed on one member goes straight to the oldest queued task
// (the count admitted stays), so a new task cannot overtake the queue.
//
// Its mutex is a leaf: taken under a member's lock, never held while calling a member or
// any user code. Every operation is O(1) (amortized): a pool may hold many queued tasks.
#pragma once

#include <coop/detail/task_base.hpp>

#include <algorithm>
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
    const std::size_t need = fifo_.size() + promised_ + 1;
    if (fifo_.capacity() < need) {
      // Before growing: close the holes (taken and forgotten entries) once they are as
      // many as the live ones, which keeps compaction amortized O(1) per task.
      if (fifo_.size() - live_ >= live_ + 16) compact();
      const std::size_t after = fifo_.size() + promised_ + 1;
      if (fifo_.capacity() < after) fifo_.reserve(std::max(after, 2 * fifo_.capacity()));
    }
    ++promised_;
  }

  /// A new task on `member`: true if it takes a place now; false if it must wait queued
  /// (it is then last in the pool's queue). The member's lock is held.
  bool admit_or_enqueue(core_impl& member, task_base& t) noexcept {
    std::lock_guard l(mutex_);
    if (promised_) --promised_;
    if (admitted_ < limit_ && live_ == 0) {
      ++admitted_;
      return true;
    }
    t.budget_slot_ = static_cast<std::uint32_t>(fifo_.size());
    fifo_.push_back({&member, &t});  // within the room reserve() made
    ++live_;
    return false;
  }

  /// A new task placed without asking (its member is stopped: it finishes at once).
  void drop_promise() noexcept {
    std::lock_guard l(mutex_);
    if (promised_) --promised_;
  }

  /// A queued task finished without being admitted (its member's lock is held): it leaves
  /// the queue. If a place was granted to it already, it is not here any more: the grant
  /// finds it finished and passes the place on.
  void forget(const task_base& t) noexcept {
    std::lock_guard l(mutex_);
    const std::size_t i = t.budget_slot_;
    if (i >= head_ && i < fifo_.size() && fifo_[i].task == &t) {
      fifo_[i].task = nullptr;
      --live_;
    }
  }

  /// An admitted task finished, or a grant found its task gone: the place goes to the
  /// oldest queued task, or back to the budget (an empty grant).
  grant release() noexcept {
    std::lock_guard l(mutex_);
    while (head_ < fifo_.size()) {
      const entry e = fifo_[head_++];
      if (!e.task) continue;  // forgotten
      --live_;
      // Referenced under the mutex: its member's forget() has not run, so it is alive.
      return {e.member, task_ptr(e.task)};
    }
    --admitted_;
    fifo_.clear();
    head_ = 0;
    return {};
  }

private:
  struct entry {
    core_impl* member;
    task_base* task;  // null: forgotten
  };
  void compact() noexcept {
    // A queued task's budget_slot_ is the budget's (its member leaves it alone until the
    // task is admitted), so the moved entries are renumbered here.
    std::size_t w = 0;
    for (std::size_t r = head_; r < fifo_.size(); ++r) {
      if (!fifo_[r].task) continue;
      fifo_[r].task->budget_slot_ = static_cast<std::uint32_t>(w);
      fifo_[w++] = fifo_[r];
    }
    fifo_.resize(w);
    head_ = 0;
  }

  std::mutex mutex_;
  const std::size_t limit_;
  std::size_t admitted_ = 0;
  std::size_t promised_ = 0;  // reserve()s not yet followed by their task's placement
  std::size_t live_ = 0;      // queued tasks in fifo_
  std::vector<entry> fifo_;   // from fifo_[head_] on, oldest first, with holes
  std::size_t head_ = 0;
};

}  // namespace coop::detail
