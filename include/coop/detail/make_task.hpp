// SPDX-License-Identifier: BSL-1.0
// Turns what the user passes as work into a task object, or a readable compile error.
#pragma once

#include <coop/detail/callable_task.hpp>
#include <coop/detail/steps_task.hpp>
#include <coop/detail/task_result.hpp>
#include <coop/step.hpp>
#include <coop/steps.hpp>

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <memory>
#include <stdexcept>
#include <type_traits>

namespace coop::detail {

template <class T> struct is_std_function : std::false_type {};
template <class R, class... A> struct is_std_function<std::function<R(A...)>> : std::true_type {};

inline task_base* with_core(steps_task_base* t, const std::shared_ptr<cooperator_core>& core) noexcept {
  t->core_ = core.get();  // no reference taken here: most coroutines never await (see core_keep_)
  return t;
}

template <class W, class Result>
concept callable_returning = std::is_invocable_v<W&> && std::is_same_v<std::invoke_result_t<W&>, Result>;
template <class W>
inline constexpr bool is_step_callable = callable_returning<W, step>;
template <class W>
inline constexpr bool is_steps_callable = callable_returning<W, steps>;

template <class W> struct is_steps_of : std::false_type {};
template <class T> struct is_steps_of<steps_of<T>> : std::true_type {};
template <class W>
concept steps_of_callable = std::is_invocable_v<W&> && is_steps_of<std::invoke_result_t<W&>>::value;

/// What a task of work `W` (decayed) completes with besides its exception_ptr: void for
/// Part 1 work; T for steps_of<T> (or a callable returning one); Work for returning(work).
template <class W> struct work_result {
  using type = void;
};
template <class T> struct work_result<steps_of<T>> {
  using type = T;
};
template <steps_of_callable W> struct work_result<W> {
  using type = typename std::invoke_result_t<W&>::value_type;
};
template <class W> struct work_result<returning_work<W>> {
  using type = W;
};
template <class Work>
using work_result_t = typename work_result<std::decay_t<Work>>::type;

/// Work whose task has a result (result_task.hpp).
template <class Work>
concept result_work = !std::is_void_v<work_result_t<Work>>;

/// A new task and, for result work, where its result is kept (else null).
template <class T> struct made_task {
  task_base* task;
  result_slot<T>* result;
};

template <class W>
inline constexpr bool is_work = std::is_same_v<W, steps> || is_steps_of<W>::value || is_step_callable<W> ||
                                is_steps_callable<W> || steps_of_callable<W> || is_returning_work<W>::value;

template <class> inline constexpr bool always_false = false;
template <class T> struct is_awaitable : std::false_type {};
template <class T, class Executor> struct is_awaitable<asio::awaitable<T, Executor>> : std::true_type {};

/// One readable error for work that is not work; the compiler names `Returned` (what the
/// callable returns) in the instantiation above the message.
template <class Returned> constexpr bool diagnose_work_returning() {
  if constexpr (std::is_same_v<Returned, bool>)
    static_assert(always_false<Returned>,
                  "coop: the work returns bool; a unit returns coop::step::more (call me again) or "
                  "coop::step::done (finished)");
  else if constexpr (std::is_void_v<Returned>)
    static_assert(always_false<Returned>,
                  "coop: the work returns void; a unit returns coop::step::more (call me again) or "
                  "coop::step::done (finished)");
  else if constexpr (is_awaitable<Returned>::value)
    static_assert(always_false<Returned>,
                  "coop: the work returns asio::awaitable, which coop cannot run a unit at a time; write a "
                  "coop::steps coroutine instead (co_yield coop::next ends a unit, co_yield op waits for an "
                  "Asio operation made with asio::deferred)");
  else
    static_assert(always_false<Returned>,
                  "coop: work must return coop::step (a callable), be a coop::steps or steps_of<T> "
                  "coroutine (or a callable returning one), or coop::returning(callable); this work "
                  "returns the type `Returned` named above");
  return true;
}

/// A `new` task of `core` holding `work`, with one reference (the caller's).
template <class Work>
made_task<work_result_t<Work>> make_task_with_result(Work&& work, const std::shared_ptr<cooperator_core>& core) {
  using W = std::decay_t<Work>;
  if constexpr (!is_work<W>) {
    if constexpr (std::is_invocable_v<W&>)
      static_assert(diagnose_work_returning<std::invoke_result_t<W&>>());
    else
      static_assert(always_false<W>,
                    "coop: work must be callable with no arguments (one call is one unit), a coop::steps "
                    "or steps_of<T> coroutine, or coop::returning(callable)");
    return {};  // after the error: nothing more to report
  } else if constexpr (is_returning_work<W>::value) {
    using inner = std::remove_cvref_t<decltype(work.work)>;
    if constexpr (is_std_function<inner>::value || std::is_pointer_v<inner>) {
      if (!work.work) throw std::invalid_argument("coop: cooperate() needs work, got an empty function");
    }
    auto* t = new callable_task<inner, true>(std::forward<Work>(work).work);
    return {t, t->result()};
  } else {
    if constexpr (is_std_function<W>::value || std::is_pointer_v<W>) {
      if (!work) throw std::invalid_argument("coop: cooperate() needs work, got an empty function");
    }
    if constexpr (std::is_same_v<W, steps> || is_steps_of<W>::value) {
      if (!work.valid()) throw std::invalid_argument("coop: cooperate() got an empty coop::steps");
      using task_type = steps_task<void, work_result_t<W>>;
      task_type* t = nullptr;
      if (void* room = frame_room::take_room_of(work, sizeof(task_type)))
        t = ::new (room) task_type(std::forward<Work>(work));  // its frame's block: one allocation
      else
        t = new task_type(std::forward<Work>(work));
      with_core(t, core);
      if constexpr (std::is_same_v<W, steps>) return {t, nullptr};
      else return {t, t->result()};
    } else if constexpr (is_step_callable<W>) {
      return {new callable_task<W>(std::forward<Work>(work)), nullptr};
    } else {
      auto* t = new steps_task<W, work_result_t<W>>(std::forward<Work>(work));
      with_core(t, core);
      if constexpr (is_steps_callable<W>) return {t, nullptr};
      else return {t, t->result()};
    }
  }
}

/// make_task_with_result() for Part 1 work: the task alone.
template <class Work>
task_base* make_task(Work&& work, const std::shared_ptr<cooperator_core>& core) {
  return make_task_with_result(std::forward<Work>(work), core).task;
}

}  // namespace coop::detail
