// SPDX-License-Identifier: BSL-1.0
// Completions a core delivers from its own strand (a tick finishing tasks, a unit stopping
// one) to handlers that run on that strand: queued on the core and run by one handler
// posted to the strand, instead of one strand entry each, which costs an allocation, the
// strand's lock and copies of the type-erased executor inside post(). They run after the
// code that delivered them (the tick), in the order they were delivered, before the next
// tick; a handler a unit posted to the strand meanwhile may run before or after them
// (nothing orders a completion against it).
#include "core_lock.hpp"

#include <boost/asio/post.hpp>

#include <memory>
#include <utility>

namespace coop::detail {

namespace {
// The posted handler. Destroyed unrun (the strand's queue destroyed with the context),
// it destroys the batch's operations unrun too, as the queue would have.
class batch_runner {
public:
  explicit batch_runner(std::shared_ptr<core_impl> core) noexcept : core_(std::move(core)) {}
  batch_runner(batch_runner&&) noexcept = default;
  batch_runner& operator=(batch_runner&&) = delete;
  ~batch_runner() {
    if (core_) core_->discard_batch();
  }
  void operator()() { std::exchange(core_, nullptr)->run_batch(); }

private:
  std::shared_ptr<core_impl> core_;
};
}  // namespace

bool core_impl::batch_completion(waiter_base& w, std::exception_ptr& result) noexcept {
  if (!strand_ || !strand_->running_in_this_thread()) return false;
  if (!batch_head_) {
    // No batch is queued, so none is left to discard should the post fail (out of memory,
    // the runner destroyed inside it): the waiter then posts its own completion.
    try {
      asio::post(*strand_, batch_runner(shared_from_this()));  // on the strand: only queues
    } catch (...) {
      return false;
    }
  }
  w.result_ = std::move(result);
  w.next_ = nullptr;
  (batch_tail_ ? batch_tail_->next_ : batch_head_) = &w;
  batch_tail_ = &w;
  return true;
}

waiter_base* core_impl::take_batch() noexcept {
  lock l(*this);
  batch_tail_ = nullptr;
  return std::exchange(batch_head_, nullptr);  // a completion delivered from here on starts a new batch
}

void core_impl::run_batch() {
  waiter_base* w = take_batch();
  while (w) {
    waiter_base* next = w->next_;
    try {
      w->invoke();
    } catch (...) {
      // The handler's exception leaves run(), as from any handler; the completions after
      // it are delivered again (to a new batch, since this thread runs the strand).
      lock l(*this);
      for (w = next; w; w = next) {
        next = w->next_;
        deliver(*w, std::move(w->result_));
      }
      throw;
    }
    w = next;
  }
}

void core_impl::discard_batch() noexcept {
  for (waiter_base* w = take_batch(); w;) {
    waiter_base* next = w->next_;
    w->destroy();
    w = next;
  }
}

}  // namespace coop::detail
