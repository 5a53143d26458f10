// SPDX-License-Identifier: BSL-1.0
// A task whose work is a coop::steps coroutine (optionally with the callable that made it,
// kept alive because a lambda coroutine's captures live in the lambda object).
#pragma once

#include <coop/detail/cooperator_core.hpp>
#include <coop/detail/frame_room.hpp>
#include <coop/detail/in_place_walk.hpp>
#include <coop/detail/steps_awaiter.hpp>
#include <coop/detail/task_arena.hpp>
#include <coop/detail/task_base.hpp>
#include <coop/detail/task_result.hpp>
#include <coop/steps.hpp>

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>

#include <coroutine>
#include <functional>
#include <new>
#include <optional>
#include <stdexcept>
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
        if (promise_->exception_) {
          unit_failure() = promise_->exception_;
          return {units, run_outcome::failed};
        }
        return {units, run_outcome::done};
      }
    } while (units < max_units && !awaiting_ && interrupt.load(std::memory_order_acquire) == 0 &&
             control_.load(std::memory_order_acquire) == 0);
    return {units, run_outcome::more};
  }

  // final: run_turns() calls it directly for every steps_task<X>.
  run_outcome run_one() noexcept final {
    frame_.resume();
    if (!frame_.done()) return run_outcome::more;
    if (promise_->exception_) {
      unit_failure() = promise_->exception_;
      return run_outcome::failed;
    }
    return run_outcome::done;
  }

  run_outcome run_turns(in_place_walk& w) noexcept final { return walk_same_type(*this, w); }

  void cancel_awaited() noexcept override {
    // Emitted on the strand, where the operation's handler runs: the slot is never used
    // concurrently with the operation's own use of it.
    try {
      core_->post_to_strand(&signal_, [self = task_ptr(this), generation = await_generation_] {
        auto& task = static_cast<steps_task_base&>(*self);
        task.core_->cancel_pending_await(task, generation,
                                        [&] { task.signal_.emit(asio::cancellation_type::terminal); });
      });
    } catch (...) {
    }
  }

  void forget_awaited() noexcept override { signal_.slot().clear(); }

  void moved_to(const std::shared_ptr<cooperator_core>& core) noexcept override {
    core_ = core.get();
    // A reference taken by an earlier await is for the member it ran on: what is in
    // flight from that await (a completion that resumes nothing) now reports here.
    if (core_keep_) core_keep_ = core;
  }

  asio::cancellation_signal signal_;
  cooperator_core* core_ = nullptr;  // set by make_task; what the awaits report to
  // Set by the first await: the operation's completion, and a cancellation posted for it,
  // report to the core and may run after the cooperator is gone. Taken then rather than
  // when the task is made, because copying a shared_ptr per task (two atomic updates of
  // one shared count) is a measurable part of a short task's cost.
  std::shared_ptr<cooperator_core> core_keep_;
  std::uint32_t await_generation_ = 0;     // which awaited operation is pending (core's lock)

protected:
  steps_task_base() noexcept = default;
  template <class Promise>
  explicit steps_task_base(std::coroutine_handle<Promise> frame) noexcept {
    adopt(frame);
  }
  /// Takes the frame (of a steps or a steps_of<T> coroutine) and points it at this task.
  template <class Promise>
  void adopt(std::coroutine_handle<Promise> frame) noexcept {
    frame_ = frame;
    promise_ = frame ? &frame.promise() : nullptr;
    if (promise_) promise_->task_ = this;
  }
  void destroy_frame() noexcept {
    if (frame_) std::exchange(frame_, {}).destroy();
  }
  ~steps_task_base() override { destroy_frame(); }

  std::coroutine_handle<> frame_;
  steps_promise_base* promise_ = nullptr;  // frame_'s, whatever the coroutine returns
};

inline asio::cancellation_slot wait_cancellation_slot(task_base& t) noexcept {
  return static_cast<steps_task_base&>(t).signal_.slot();
}
inline cooperator_core& core_of(task_base& t) noexcept { return *static_cast<steps_task_base&>(t).core_; }

/// The result of a steps_of<T> coroutine (T void: coop::steps, none).
template <class T> struct steps_result {
  result_slot<T> result_{false};
  template <class Promise> void connect(std::coroutine_handle<Promise> frame) noexcept {
    frame.promise().result_ = &result_.value_;
  }
};
template <> struct steps_result<void> {
  template <class Promise> void connect(std::coroutine_handle<Promise>) noexcept {}
};

/// The value type of a steps or steps_of<T> object: void or T.
template <class Steps> struct steps_value;
template <> struct steps_value<steps> {
  using type = void;
};
template <class T> struct steps_value<steps_of<T>> {
  using type = T;
};

/// `Callable` void: the work is the steps (or steps_of<T>) object; else a callable
/// returning one (kept alive: a lambda coroutine's captures live in the lambda object).
/// `T`: what the coroutine returns.
template <class Callable, class T = void>
class steps_task final : public steps_task_base, public task_arena::arena_allocated<steps_task<Callable, T>> {
public:
  template <class C>
  explicit steps_task(C&& callable)
      : callable_(std::in_place, std::forward<C>(callable)) {
    auto frame = [this] {
      const frame_room::no_room_scope this_task_exists;  // the frame needs no room for it
      return std::invoke(*callable_).release();
    }();
    if (!frame) throw std::invalid_argument("coop: the work returned an empty coop::steps");
    result_.connect(frame);
    adopt(frame);
  }
  void destroy_work() noexcept override {
    destroy_frame();
    callable_.reset();
  }
  auto* result() noexcept { return &result_.result_; }

private:
  std::optional<Callable> callable_;
  [[no_unique_address]] steps_result<T> result_;
};

template <class T>
class steps_task<void, T> final : public steps_task_base {
public:
  // make_task places the task in the room in front of its frame where there is one, else
  // allocates it alone, laid out the same: either way its address is where its block
  // begins, and a header after it says where the block came from (frame_room.hpp). An
  // over-aligned task (T's alignment) is never placed.
  static void* operator new(std::size_t) { return frame_room::allocate_task_alone<steps_task>(); }
  static void operator delete(void* p) noexcept { frame_room::deallocate_task<steps_task>(p); }
  static void* operator new(std::size_t size, std::align_val_t a) { return ::operator new(size, a); }
  static void operator delete(void* p, std::align_val_t a) noexcept { ::operator delete(p, a); }

  template <class Steps>
  explicit steps_task(Steps&& work) noexcept {
    auto frame = work.release();
    result_.connect(frame);
    adopt(frame);
  }
  void destroy_work() noexcept override { destroy_frame(); }
  auto* result() noexcept { return &result_.result_; }

private:
  [[no_unique_address]] steps_result<T> result_;
};

}  // namespace coop::detail
