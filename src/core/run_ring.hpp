// SPDX-License-Identifier: BSL-1.0
// The run queue: the runnable tasks in join order, walked round-robin (and the parked
// tasks, in a ring of their own that is never walked).
#pragma once

#include <coop/detail/in_place_walk.hpp>
#include <coop/detail/task_base.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace coop::detail {

/// The runnable tasks in join order, walked round-robin. An array of task pointers, not a
/// linked list: walking it reads memory in sequence and the tasks ahead can be fetched
/// early, where a list is a chain of dependent loads. Removal leaves a hole (O(1));
/// the walk closes holes as it goes, keeping the order.
///
/// The parked tasks are kept in one too (never walked): a task is in one ring at a time and
/// its slot_ indexes that one, so the task needs no list links.
///
/// Layout: slots_[0, write_) the tasks visited this round; [write_, read_) stale;
/// [read_, size) the rest of the round. A task appended before the walk passes the end
/// is still part of the round (Twisted's list iterator).
class run_ring {
public:
  bool empty() const noexcept { return live_ == 0; }
  bool single() const noexcept { return live_ == 1; }
  std::size_t size() const noexcept { return live_; }
  /// Room for `tasks` tasks without allocating later (push_back is then noexcept).
  /// Throws when out of memory, with nothing changed (a walk's cursor included).
  void reserve(std::size_t tasks) {
    const std::size_t needed = growth * tasks + 16;
    if (slots_.capacity() >= needed) return;
    std::vector<task_base*> grown;
    grown.reserve(std::max(needed, 2 * slots_.capacity()));  // amortized O(1)
    sync();  // the slots move: a walk's cursor points into the old ones
    grown.assign(slots_.begin(), slots_.end());
    slots_.swap(grown);
  }
  /// `join_round` false: if the round is at its end, start the next one first, so the
  /// task (the one whose unit is running) lets the others run before its next turn.
  void push_back(task_base& t, bool join_round = true) noexcept;
  void unlink(task_base& t) noexcept {
    slots_[t.slot_] = nullptr;
    --live_;
  }
  /// The next task of the round; wraps to a new round at the end; null when empty.
  task_base* next_in_round() noexcept {
    sync();
    for (;;) {
      if (read_ == slots_.size()) {
        slots_.resize(write_);  // the round ends: the visited tasks are the next round
        read_ = write_ = 0;
        if (live_ == 0) {
          slots_.clear();
          return nullptr;
        }
        continue;
      }
      task_base* t = slots_[read_++];
      if (!t) continue;
      if (write_ + 1 != read_) {
        slots_[write_] = t;
        t->slot_ = static_cast<std::uint32_t>(write_);
      }
      ++write_;
      prefetch_ahead(slots_.data() + read_, slots_.data() + slots_.size());
      return t;
    }
  }
  /// Hands the cursor to `w` for a walk in place (in_place_walk.hpp) of at most `units`
  /// turns, if there is no hole behind it (so no task moves), until end_walk() or a change
  /// of the ring; else false.
  bool start_walk(in_place_walk& w, std::uint32_t units) noexcept {
    sync();
    if (read_ != write_) return false;
    task_base* const* const next = slots_.data() + read_;
    task_base* const* const end = slots_.data() + slots_.size();
    w.first = w.next = next;
    w.stop = static_cast<std::size_t>(end - next) > units ? next + units : end;
    w.fetch_end = fetch_end(next, end);
    walk_ = &w;
    return true;
  }
  void end_walk() noexcept { sync(); }
  /// Some task (stop() takes them all, one at a time).
  task_base* any() noexcept;
  /// Offers the tasks from the back of the slots to `take(task)` until it returns true
  /// `count` times; one it takes it unlinks (which leaves a hole, and moves no slot).
  /// The holes are closed first: mid-round, [write_, read_) holds stale copies of tasks
  /// already moved down, and a task offered twice would be taken twice.
  template <class Take> void offer_from_end(std::size_t count, Take& take) noexcept {
    sync();
    if (read_ != write_) compact();
    for (std::size_t i = slots_.size(); i-- > 0 && count != 0;)
      if (task_base* t = slots_[i]; t && take(*t)) --count;
  }

private:
  // The ring may grow to `growth` times the live tasks before its holes are closed: a
  // pause+resume outside a tick leaves one hole, and each closing rewrites every task's
  // slot (amortized 1/(growth-1) task writes per hole).
  static constexpr std::size_t growth = 3;
  void compact() noexcept;
  /// Takes the cursor back from a walk in place (start_walk()).
  void sync() noexcept {
    if (walk_) [[unlikely]] {
      read_ = write_ = static_cast<std::size_t>(walk_->next - slots_.data());
      walk_->passed = static_cast<std::size_t>(walk_->next - walk_->first);
      walk_ = nullptr;
    }
  }
  std::vector<task_base*> slots_;
  std::size_t read_ = 0;
  std::size_t write_ = 0;
  std::size_t live_ = 0;
  in_place_walk* walk_ = nullptr;  // holds the cursor while set
};

}  // namespace coop::detail
