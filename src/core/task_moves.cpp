// SPDX-License-Identifier: BSL-1.0
// Work stealing in a cooperator pool: at the end of a tick, a member with tasks to spare
// gives half of its runnable ones to a member with none, and every call on a task finds
// the member that holds it now.
//
// A task moves only between its turns: it is runnable, not running (the donor's tick has
// ended), not paused, not awaiting an operation, and both members' locks are held. So its
// placement, waiters, shares and stats move with it untouched, and its units never
// overlap: the thief runs it only in a tick that starts after the move.
//
// pause() and stop() need no lock: they change the control word, then wait out a unit of
// the task that may be running. They look for that unit on the member the task is on
// after their change, and again if it moved meanwhile. A thief's tick stores its epoch
// sequentially consistent and fences before its first claim (run_tick), and its claim
// reads the control word after that: a move that came after the caller's look at the
// task's member is before that fence, and so is the caller's change, which the claim then
// sees. Requests that take the lock (resume, when_done, set_shares, a stop's retiring)
// go to the member holding the task, and one left in a member's inbox for a task that
// has moved since is passed on when it is applied.
#include "core_lock.hpp"

namespace coop::detail {

core_impl::holder core_impl::member(std::uint16_t index) noexcept {
  if (index == member_index_) return {this, {}};
  std::shared_ptr<core_impl> c = index < pool_->cores.size() ? pool_->cores[index].lock() : nullptr;
  return {c.get(), c};
}

core_impl::holder core_impl::holder_of(const task_base& t) noexcept {
  if (!pool_) return {this, {}};
  return member(t.member_.load(std::memory_order_seq_cst));
}

bool core_impl::forward(request what, task_base& t, waiter_base* w, std::uint64_t waiter_id) noexcept {
  const holder h = holder_of(t);
  if (!h.core || h.core == this) return false;
  h.core->apply_or_queue(what, t, w, waiter_id);
  return true;
}

void core_impl::wait_out_unit_anywhere(const task_base& t) noexcept {
  if (!pool_) {
    wait_out_unit(t);
    return;
  }
  std::uint16_t at = t.member_.load(std::memory_order_seq_cst);
  for (;;) {
    if (const holder h = member(at); h.core) h.core->wait_out_unit(t);
    const std::uint16_t now = t.member_.load(std::memory_order_seq_cst);
    if (now == at) return;
    at = now;  // it moved while we looked: a unit may run there
  }
}

void core_impl::donate() noexcept {
  for (std::uint16_t i = 0; i < pool_->cores.size(); ++i) {
    if (i == member_index_) continue;
    const holder h = member(i);
    if (!h.core) continue;
    core_impl& thief = *h.core;
    // Published counts first (no lock): most ticks end with every member busy.
    if (thief.runnable_count_.load(std::memory_order_relaxed) != 0 || !thief.running()) continue;
    // Never wait for another member's lock under this one's: two members giving to each
    // other would wait for ever.
    if (!thief.mutex_.try_lock()) continue;
    lock l(thief, std::adopt_lock);
    if (!thief.policy_.empty() || thief.stopped_ || !thief.running() || !thief.strand_ || thief.shutting_down_)
      continue;
    if (move_tasks_to(thief, policy_.size() / 2) != 0) thief.try_schedule_tick();
    return;
  }
}

std::size_t core_impl::move_tasks_to(core_impl& thief, std::size_t count) noexcept {
  std::shared_ptr<cooperator_core> thief_ref;
  try {
    // Room first, so that placing the tasks there never allocates.
    thief.parked_.reserve(thief.task_count_ + count);
    thief.policy_.reserve(thief.task_count_ + count);
    thief_ref = thief.shared_from_this();
  } catch (...) {
    return 0;  // out of memory: nothing moves, the tasks run here
  }
  std::size_t moved = 0;
  policy_.give_from_end(count, [&](task_base& t) {
    // Only a task between its turns: active and unpaused with no resume pending, not
    // awaiting an operation, and not the one whose unit has just ended.
    if (t.control_.load(std::memory_order_acquire) != 0 || t.awaiting_.load(std::memory_order_relaxed) ||
        &t == current() || &t == unit_just_ended_)
      return false;
    leave_run_order(t);
    t.place_.store(task_place::none, std::memory_order_relaxed);
    --task_count_;
    if (t.counted_weighted_) {
      t.counted_weighted_ = false;
      --weighted_tasks_;
    }
    t.member_.store(thief.member_index_, std::memory_order_seq_cst);
    t.moved_to(thief_ref);
    ++thief.task_count_;
    thief.recount_shares(t);
    thief.make_runnable(t);
    ++moved;
    return true;
  });
  add_relaxed(moved_out_, std::uint64_t{moved});
  add_relaxed(thief.moved_in_, std::uint64_t{moved});
  return moved;
}

}  // namespace coop::detail
