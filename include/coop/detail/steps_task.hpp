// A task whose work is a coop::steps coroutine (optionally with the callable that made it,
// kept alive because a lambda coroutine's captures live in the lambda object).
#pragma once

#include <coop/detail/cooperator_core.hpp>
#include <coop/detail/in_place_walk.hpp>
#include <coop/detail/steps_awaiter.hpp>
#include <coop/detail/task_base.hpp>
#include <coop/steps.hpp>

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>

#include <functional>
#include <optional>
#include <utility>

namespace coop::detail {

class steps_task_base : public task_base {
public:
  run_result run(std::uint32_t max_units, const std::atomic<std::uint32_t>& interrupt) noexcept final {
    std::uint32_t units = 0;
    do {
      ++units;
      frame_.resume();
      if (frame_.done()) {
        if (frame_.promise().exception_) {
          failure_ = frame_.promise().exception_;
          return {units, run_outcome::failed};
        }
        return {units, run_outcome::done};
      }
    } while (units < max_units && !waiting_ && interrupt.load(std::memory_order_acquire) == 0 &&
             control_.load(std::memory_order_acquire) == 0);
    return {units, run_outcome::more};
  }

  // final: run_turns() calls it directly for every steps_task<X>.
  run_outcome run_one() noexcept final {
    frame_.resume();
    if (!frame_.done()) return run_outcome::more;
    if (frame_.promise().exception_) {
      failure_ = frame_.promise().exception_;
      return run_outcome::failed;
    }
    return run_outcome::done;
  }

  run_outcome run_turns(in_place_walk& w) noexcept final { return walk_same_type(*this, w); }

  void cancel_wait() noexcept override {
    // Emitted on the strand, where the operation's handler runs: the slot is never used
    // concurrently with the operation's own use of it.
    try {
      core_->post_to_strand(&signal_, [self = task_ptr(this), generation = wait_generation_] {
        auto& task = static_cast<steps_task_base&>(*self);
        task.core_->cancel_pending_wait(task, generation,
                                        [&] { task.signal_.emit(asio::cancellation_type::terminal); });
      });
    } catch (...) {
    }
  }

  asio::cancellation_signal signal_;
  std::shared_ptr<cooperator_core> core_;  // set by make_task; what the waits report to

protected:
  explicit steps_task_base(steps::handle_type frame) noexcept : frame_(frame) {
    if (frame_) frame_.promise().task_ = this;
  }
  void destroy_frame() noexcept {
    if (frame_) std::exchange(frame_, {}).destroy();
  }
  ~steps_task_base() override { destroy_frame(); }

  steps::handle_type frame_;
};

inline asio::cancellation_slot wait_cancellation_slot(task_base& t) noexcept {
  return static_cast<steps_task_base&>(t).signal_.slot();
}
inline cooperator_core& core_of(task_base& t) noexcept { return *static_cast<steps_task_base&>(t).core_; }

/// `Callable` void: the work is a steps object; else a callable returning steps.
template <class Callable>
class steps_task final : public steps_task_base {
public:
  template <class C>
  explicit steps_task(C&& callable) : steps_task_base({}), callable_(std::in_place, std::forward<C>(callable)) {
    frame_ = std::invoke(*callable_).release();
    if (!frame_) throw std::invalid_argument("coop: the work returned an empty coop::steps");
    frame_.promise().task_ = this;
  }
  void destroy_work() noexcept override {
    destroy_frame();
    callable_.reset();
  }

private:
  std::optional<Callable> callable_;
};

template <>
class steps_task<void> final : public steps_task_base {
public:
  explicit steps_task(steps&& work) noexcept : steps_task_base(work.release()) {}
  void destroy_work() noexcept override { destroy_frame(); }
};

}  // namespace coop::detail
