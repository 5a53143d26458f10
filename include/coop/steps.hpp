// SPDX-License-Identifier: BSL-1.0
// coop::steps — coroutine work: each resumption up to the next co_yield is one unit.
//
//   coop::steps checksum(file& f) {
//     while (auto chunk = f.next()) { hash(chunk); co_yield coop::next; }
//   }
//   coop::steps paced(asio::steady_timer& t) {
//     for (;;) { t.expires_after(1s); co_yield t.async_wait(asio::deferred); work(); }
//   }
//
// `co_yield coop::next;` ends a unit. `co_yield op;` with an Asio operation made with
// asio::deferred ends the unit and takes the task out of the run order until the
// operation completes; the co_yield expression is then its result without a leading
// error_code / exception_ptr (nothing, the value, or a std::tuple). A failed operation
// fails the task. `co_return` or falling off the end completes it; an escaping exception
// fails it.
//
// coop::steps_of<T> is the same with `co_return value;`: the task's result (result_task.hpp).
#pragma once

#include <coop/detail/frame_room.hpp>
#include <coop/detail/steps_awaiter.hpp>

#include <coroutine>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace coop {

/// `co_yield coop::next;` ends one unit of coroutine work.
struct next_t {
  explicit constexpr next_t() = default;
};
inline constexpr next_t next{};

namespace detail {

/// What every steps coroutine's promise has, whatever it returns.
struct steps_promise_base {
  task_base* task_ = nullptr;  // set when cooperate() takes the frame
  std::exception_ptr exception_;

  std::suspend_always initial_suspend() noexcept { return {}; }
  std::suspend_always final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { exception_ = std::current_exception(); }

  std::suspend_always yield_value(next_t) noexcept { return {}; }

  template <class Operation>
  auto yield_value(Operation&& op) {
    static_assert(detail::is_async_operation<std::decay_t<Operation>>,
                  "coop::steps: co_yield takes coop::next or an Asio operation made with "
                  "asio::deferred (e.g. timer.async_wait(asio::deferred))");
    if constexpr (detail::is_async_operation<std::decay_t<Operation>>)
      return detail::operation_awaiter<std::decay_t<Operation>>(*task_, std::forward<Operation>(op));
    else
      return std::suspend_never{};  // after the static_assert: no follow-on errors
  }

  // A unit ends only at co_yield, so that the cooperator decides when the next one runs;
  // co_await would suspend the coroutine behind the cooperator's back.
  template <class Awaited>
  std::suspend_never await_transform(Awaited&&) noexcept {
    static_assert(sizeof(Awaited) == 0,
                  "coop::steps: use co_yield, not co_await: `co_yield coop::next;` ends a unit, "
                  "`auto r = co_yield op;` waits for an Asio operation made with asio::deferred");
    return {};
  }
};

/// `co_return;` (T void) or `co_return value;`: the value goes to the task's result slot,
/// outside the frame, so it outlives the frame.
template <class T> struct steps_return {
  std::optional<T>* result_ = nullptr;  // set when cooperate() takes the frame
  template <class U = T>
  void return_value(U&& value) {
    result_->emplace(std::forward<U>(value));
  }
};
template <> struct steps_return<void> {
  void return_void() noexcept {}
};

template <class Callable, class T> class steps_task;

template <class Owner, class T>
struct steps_promise : steps_promise_base, steps_return<T> {
  Owner get_return_object() noexcept { return Owner(std::coroutine_handle<steps_promise>::from_promise(*this)); }

  // The frame comes with room for the task cooperate() makes of it (frame_room.hpp).
  static void* operator new(std::size_t size) {
    return frame_room::allocate_frame(size, frame_room::room_for<steps_task<void, T>>());
  }
  static void operator delete(void* frame) noexcept { frame_room::deallocate_frame(frame); }
};

/// The move-only ownership of a steps coroutine's frame, shared by steps and steps_of.
template <class Owner, class T>
class steps_frame_owner {
public:
  using promise_type = steps_promise<Owner, T>;
  using handle_type = std::coroutine_handle<promise_type>;

  steps_frame_owner(steps_frame_owner&& other) noexcept : frame_(std::exchange(other.frame_, {})) {}
  steps_frame_owner& operator=(steps_frame_owner&& other) noexcept {
    if (this != &other) {
      if (frame_) frame_.destroy();
      frame_ = std::exchange(other.frame_, {});
    }
    return *this;
  }
  ~steps_frame_owner() {
    if (frame_) frame_.destroy();
  }

  /// Whether this object still owns a coroutine frame.
  bool valid() const noexcept { return static_cast<bool>(frame_); }
  /// Gives up ownership of the frame.
  handle_type release() noexcept { return std::exchange(frame_, {}); }

protected:
  explicit steps_frame_owner(handle_type frame) noexcept : frame_(frame) {}

private:
  friend struct frame_room;
  handle_type frame_;
};

}  // namespace detail

/// The return type of a coroutine used as work. Starts suspended; move-only owner of the
/// coroutine frame until cooperate() takes it.
///
/// `co_yield op;` with an operation made with asio::deferred ends the unit; the task
/// leaves the run order (state `waiting`) until the operation completes, and the
/// co_yield expression is the operation's result without its leading error_code or
/// exception_ptr. A failure there fails the task; to handle it instead, take the error
/// as a value with `asio::as_tuple(asio::deferred)`:
///
///   auto [ec, n] = co_yield asio::async_read(socket, buffer, asio::as_tuple(asio::deferred));
///   if (ec) { ... }   // the task goes on
///
/// @par While an operation is pending
/// - pause(): the operation is left to run; its result is kept and the coroutine resumes
///   with it at its turn after the last resume() (until then the task is `paused`).
/// - stop() (or the cooperator's stop()): the task finishes at once (task_stopped or
///   scheduler_stopped: its when_done waits complete) and terminal cancellation is
///   emitted to the operation, on the cooperator's strand; its completion, when it comes,
///   resumes nothing.
///
/// @par Destruction
/// The coroutine frame (and what it holds) is destroyed exactly once, soon after the task
/// finishes, on a thread holding the cooperator's lock, never inside a unit: by the tick
/// (on the strand) after the unit that finished the task, or when it applies a stop()
/// another thread made during the tick; otherwise by the thread whose call finished it
/// (task stop(), the cooperator's stop() or destructor). While an operation is pending,
/// not before the operation lets go of its handler (it completes, or is destroyed, e.g.
/// by the execution context's shutdown on the thread running it), so nothing the
/// operation refers to in the frame dangles. A frame up to 1 KiB is one block with its
/// task's (one allocation per task), whose memory goes with the task, when its last
/// handle and wait are gone; a larger one is allocated alone and freed as it is
/// destroyed. Callable work is destroyed by the same rules
/// (work with a result is moved into the completion instead, see coop::returning).
class [[nodiscard]] steps : public detail::steps_frame_owner<steps, void> {
  /// @cond
  friend promise_type;
  /// @endcond
  using steps_frame_owner::steps_frame_owner;
};

/// A coop::steps coroutine that ends with `co_return value;`: cooperate() gives a
/// result_task<T>, coiterate() completes with `void(std::exception_ptr, T)`. Every rule of
/// coop::steps holds. On failure or stop the value is `T{}` (as asio::co_spawn does).
///
///   coop::steps_of<std::uint32_t> crc(file& f) {
///     std::uint32_t c = 0;
///     while (auto chunk = f.next()) { c = update(c, chunk); co_yield coop::next; }
///     co_return c;
///   }
template <class T>
class [[nodiscard]] steps_of : public detail::steps_frame_owner<steps_of<T>, T> {
  static_assert(!std::is_void_v<T>, "coop::steps_of<void>: use coop::steps");
  static_assert(!std::is_reference_v<T>, "coop::steps_of<T>: T must be a value type, not a reference");
  static_assert(std::is_default_constructible_v<T>,
                "coop::steps_of<T>: T must be default-constructible (a failed or stopped task "
                "completes with T{})");
  static_assert(std::is_move_constructible_v<T>,
                "coop::steps_of<T>: T must be move-constructible (the value is moved into the completion)");
  using base = detail::steps_frame_owner<steps_of<T>, T>;
  /// @cond
  friend typename base::promise_type;
  /// @endcond
  using base::base;

public:
  /// What the coroutine co_returns.
  using value_type = T;
};

}  // namespace coop

// The task type a frame makes room for (steps_promise::operator new); it includes this
// file first.
#include <coop/detail/steps_task.hpp>
