// SPDX-License-Identifier: BSL-1.0
// Placement: where a task is (runnable, parked, retired) follows its control word, and a
// finished task leaves, completing its waits in the order they began.
#include "core_lock.hpp"
#include "wait_marks.hpp"

namespace coop::detail {

std::exception_ptr core_impl::result_of(const task_base& t) noexcept {
  switch (control::state(t.control_.load(std::memory_order_acquire))) {
    case run_state::failed: return t.failure_;
    case run_state::stopped: return task_stopped_exception;
    case run_state::scheduler_stopped: return scheduler_stopped_exception;
    case run_state::done:
    case run_state::active: break;
  }
  return {};
}

void core_impl::update_placement(task_base& t, bool requeue) noexcept {
  if (requeue && t.place_ == task_place::runnable && t.control_.load(std::memory_order_acquire) == 0) {
    // The common resume: a lazy pause left the task in the order (active, unpaused, no
    // requeue bit pending, so not waiting): it moves to the end. The general case below.
    leave_run_order(t);
    make_runnable(t);
    return;
  }
  if (t.place_ == task_place::none && !t.retired_) {
    // A new task: add() or answer_admission() made room for it in both rings, so placing
    // it never allocates.
    bool queue = max_active_ && admitted() >= max_active_ && !stopped_;
    if (budget_) {
      if (stopped_) budget_->drop_promise();  // it finishes at once, holding no place
      else queue = !(t.holds_place_ = budget_->admit_or_enqueue(*this, t));
    }
    ++task_count_;
    t.set_number(shared_numbers_ ? shared_numbers_->fetch_add(1, std::memory_order_relaxed) + 1 : ++tasks_added_);
    recount_shares(t);
    if (queue) {
      queued_.push_back(t);
      t.place_.store(task_place::queued, std::memory_order_relaxed);
    } else {
      to_parked(t);
    }
  }
  if (t.retired_) {
    // Finished earlier; an operation it waited on has now let go of its work.
    if (!t.awaiting_ && &t != current()) t.destroy_work();
    return;
  }
  if (t.place_ == task_place::queued) {
    // Paused, resumed or stopped while queued: only finishing moves it (out of the
    // queue). A requeue bit left by a resume is applied when it is admitted.
    if (control::state(t.control_.load(std::memory_order_acquire)) != run_state::active) retire(t);
    return;
  }
  std::uint32_t c = t.control_.load(std::memory_order_acquire);
  if (c & control::requeue) {
    c = t.control_.fetch_and(~control::requeue, std::memory_order_acq_rel) & ~control::requeue;
    requeue = true;
  }
  if (control::state(c) != run_state::active) retire(t);
  else if (control::pauses(c) > 0 || t.awaiting_) park(t);
  else if (requeue && t.place_ == task_place::runnable) {
    // Resumed while a lazy pause left it in the order: it joins at the end.
    leave_run_order(t);
    make_runnable(t);
  } else if (t.place_ != task_place::runnable) {
    if (stopped_) {
      if (try_finish(t, run_state::scheduler_stopped)) retire(t);
      else update_placement(t);
      return;
    }
    if (t.place_ == task_place::parked) from_parked(t);
    make_runnable(t);
    if (running_.load(std::memory_order_relaxed) && !in_tick_) try_schedule_tick();
  }
}

void core_impl::park(task_base& t) noexcept {
  if (t.place_ == task_place::parked) {
    // Paused while it awaited, or the other way round: counted again.
    from_parked(t);
    to_parked(t);
    return;
  }
  if (t.place_ == task_place::runnable) leave_run_order(t);
  to_parked(t);
  note_change();
}

void core_impl::to_parked(task_base& t) noexcept {
  parked_.push_back(t);
  t.place_.store(task_place::parked, std::memory_order_relaxed);
  // Paused wins over waiting (task_state).
  t.counted_waiting_ = t.awaiting_.load(std::memory_order_relaxed) &&
                       control::pauses(t.control_.load(std::memory_order_relaxed)) == 0;
  if (t.counted_waiting_) ++waiting_parked_;
}

void core_impl::from_parked(task_base& t) noexcept {
  parked_.unlink(t);
  if (t.counted_waiting_) --waiting_parked_;
  t.counted_waiting_ = false;
}

void core_impl::make_runnable(task_base& t) noexcept {
  // The task whose unit is running goes behind the others (its next turn); so does the
  // one whose unit has just ended while the requests left during that unit are applied.
  const auto now = wait_clock();  // before it joins: an empty run order means idle
  policy_.join(t, &t != current() && &t != unit_just_ended_);
  wait_marks::join(t, now);
  t.place_.store(task_place::runnable, std::memory_order_relaxed);
  note_change();
}

void core_impl::retire(task_base& t, std::exception_ptr failure) noexcept {
  if (t.retired_) return;
  // From here on the task's word holds its failure, not its waiters.
  waiter_base* w = t.retire_waiters(std::move(failure));
  t.retired_ = true;
  if (&t == unit_just_ended_) unit_just_ended_ = nullptr;  // it may be freed below
  std::uint32_t waits = 0;
  for (const waiter_base* p = w; p; p = p->next_) ++waits;
  meter_.retiring(t, waits);
  --task_count_;
  add_relaxed(finished_, std::uint64_t{1});
  recount_shares(t);
  if (t.place_ == task_place::runnable) leave_run_order(t);
  else if (t.place_ == task_place::parked) from_parked(t);
  else if (t.place_ == task_place::queued) {
    queued_.unlink(t);
    if (budget_) budget_->forget(t);
  }
  t.place_.store(task_place::none, std::memory_order_relaxed);
  note_change();
  if (t.holds_place_) {
    t.holds_place_ = false;
    pass_place_on();
  } else if (!queued_.empty() && !budget_) {
    admit_queued();  // a place may have freed up
  }

  // The lists are consistent from here on: user code below may re-enter.
  if (t.awaiting_) {
    // The work dies when the operation lets go of it. When the context shuts down, it
    // destroys the pending operation itself.
    if (!shutting_down_) t.cancel_awaited();
  } else if (&t != current()) {
    t.destroy_work();  // a running unit's work dies after the unit
  }

  // Handlers complete in the order their waits began (Twisted fires Deferreds in order);
  // waiters are pushed at the head, so walk from the tail.
  while (w && w->next_) w = w->next_;
  while (w) {
    waiter_base* prev = w->prev_;
    w->linked_ = false;
    deliver(*w, result_of(t));
    w = prev;
  }
  if (&t == current()) running_task_finished_ = true;  // the tick drops its reference after the unit
  else t.release();                              // the cooperator's reference
}

void core_impl::admit_queued() noexcept {
  if (stopped_) return;  // stop() finishes the queued tasks
  while (admitted() < max_active_) {
    task_base* t = queued_.pop_front();  // counts as admitted from here
    if (!t) return;
    // As a new task: it waits parked (paused while queued) or joins the end of the run
    // order. The rings have room: reserve_room() counted it when it was added.
    to_parked(*t);
    update_placement(*t);
  }
}

void core_impl::pass_place_on() noexcept {
  admission_budget::grant g = budget_->release();
  if (!g.task) return;  // nobody queued: the place is free again
  // The other member applies it under its own lock, now or from its inbox at its next unit
  // boundary (never waiting for it here, under this member's lock).
  if (g.member == this) admit_granted(*g.task);
  else g.member->apply_or_queue(request::admit_granted, *g.task);
}

void core_impl::admit_granted(task_base& t) noexcept {
  if (t.place_ != task_place::queued) {
    pass_place_on();  // it finished while the place was on its way
    return;
  }
  // As admit_queued(): it waits parked (paused while queued) or joins the end of the run
  // order; the rings have room (reserve_room() counted it when it was added).
  queued_.unlink(t);
  t.holds_place_ = true;
  t.credit_ = 0;  // no longer the budget's index: a task's turn credit again
  to_parked(t);
  update_placement(t);
}

void core_impl::note_change() noexcept {
  // Only a unit in progress needs telling: a lone task's batch, or a walk in place, which
  // must end after this unit (its cursor and slot pointers may be stale).
  if (current()) interrupt_.fetch_or(changed_bit, std::memory_order_relaxed);
}

}  // namespace coop::detail
