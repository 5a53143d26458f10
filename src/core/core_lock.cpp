// SPDX-License-Identifier: BSL-1.0
// The core's lock (core_lock.hpp) and its inbox: another thread that finds the lock held
// never waits for the units running under it; it leaves its request (relink a resumed
// task, retire a stopped one, park or cancel a waiter, admit a task) in the inbox and
// raises interrupt_, and the holder applies it at the next unit boundary or before it lets
// go of the lock.
#include "core_lock.hpp"

#include <coop/detail/when_done_op.hpp>

#include <vector>

namespace coop::detail {

namespace {
thread_local held_lock* innermost_held = nullptr;
}  // namespace

bool this_thread_holds(const core_impl* core) noexcept {
  for (held_lock* h = innermost_held; h; h = h->outer)
    if (h->core == core) return true;
  return false;
}

// The node lives on the caller's stack until it is popped, which GCC 12's
// -Wdangling-pointer cannot see.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
void push_held(held_lock& node) noexcept {
  node.outer = innermost_held;
  innermost_held = &node;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

void pop_held(const held_lock& node) noexcept { innermost_held = node.outer; }

void core_impl::after_unlock() noexcept {
  // A request left after the drain, while we still held the lock, is ours to apply unless
  // someone else holds the lock now (then it is theirs).
  while (inbox_waiting() && mutex_.try_lock()) {
    held_lock node{this, nullptr};
    push_held(node);
    drain_inbox();
    publish_counts();
    pop_held(node);
    mutex_.unlock();
  }
}

void core_impl::apply_or_queue(request what, task_base& t, waiter_base* w, std::uint64_t waiter_id) noexcept {
  // A cancellation forwarded from another member names its wait by id: the wait may have
  // completed and been freed, so it is looked for, never read (cancel_parked).
  if (what == request::cancel_waiter && waiter_id == 0) waiter_id = w->id_;
  const auto apply_here = [&] {
    if (what == request::cancel_waiter) cancel_parked(t, w, waiter_id);
    else apply(what, t, w);
  };
  if (this_thread_holds(this)) {
    apply_here();
    return;
  }
  if (mutex_.try_lock()) {
    lock l(*this, std::adopt_lock);
    // Requests left earlier go first: a cancellation must not overtake the parking of
    // its own wait (it would find nothing to cancel, and the wait would stay parked).
    drain_inbox();
    apply_here();
    return;
  }
  try {
    std::lock_guard l(inbox_mutex_);
    inbox_.push_back({what, task_ptr(&t), w, waiter_id});
  } catch (...) {
    // Out of memory for the inbox: wait for the lock instead.
    lock l(*this);
    apply_here();
    return;
  }
  interrupt_.fetch_or(inbox_bit, std::memory_order_seq_cst);
  // The holder may have drained and be unlocking just now: then the request is ours.
  if (mutex_.try_lock()) lock l(*this, std::adopt_lock);  // its unlock drains the inbox
}

void core_impl::drain_inbox() noexcept {
  if (!inbox_waiting()) return;
  std::vector<inbox_item> items;
  {
    std::lock_guard l(inbox_mutex_);
    interrupt_.fetch_and(~inbox_bit, std::memory_order_relaxed);
    items.swap(inbox_);
  }
  for (inbox_item& item : items) {
    if (item.admit) answer_admission(*item.task, *item.admit);
    else if (item.what == request::cancel_waiter) cancel_parked(*item.task, item.waiter, item.waiter_id);
    else apply(item.what, *item.task, item.waiter);
  }
}

void core_impl::cancel_parked(task_base& t, const waiter_base* w, std::uint64_t id) noexcept {
  // A task that moved to another member has its waiters there.
  if (!holds(t) && forward(request::cancel_waiter, t, const_cast<waiter_base*>(w), id)) return;
  // A retired task's word holds its failure; its waiters are out, being completed by
  // retire() (a cancellation emitted from user code it runs arrives here): they get the
  // task's result.
  if (t.retired_) return;
  for (waiter_base* p = t.waiters_; p; p = p->next_)
    if (p == w && p->id_ == id) {
      apply(request::cancel_waiter, t, p);
      return;
    }
  // Not parked: it completed (its completion is on its way or has run).
}

void core_impl::apply(request what, task_base& t, waiter_base* w) noexcept {
  // A task that moved to another member meanwhile: the request is that member's.
  if (!holds(t) && forward(what, t, w, what == request::cancel_waiter ? w->id_ : 0)) return;
  switch (what) {
    case request::update_placement:
      update_placement(t);
      return;
    case request::park_waiter:
      if (t.retired_) {
        deliver(*w, result_of(t));
        return;
      }
      w->prev_ = nullptr;
      w->next_ = t.waiters_;
      if (t.waiters_) t.waiters_->prev_ = w;
      t.waiters_ = w;
      w->linked_ = true;
      return;
    case request::cancel_waiter:
      if (!w->linked_) return;  // already completed; its completion is on its way
      (w->prev_ ? w->prev_->next_ : t.waiters_) = w->next_;
      if (w->next_) w->next_->prev_ = w->prev_;
      w->linked_ = false;
      deliver(*w, operation_aborted_exception);
      return;
    case request::recount_shares:
      recount_shares(t);
      return;
    case request::admit_granted:
      admit_granted(t);
      return;
  }
}

}  // namespace coop::detail
