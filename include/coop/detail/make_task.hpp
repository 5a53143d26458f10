// Turns what the user passes as work into a task object, or a readable compile error.
#pragma once

#include <coop/detail/callable_task.hpp>
#include <coop/detail/steps_task.hpp>
#include <coop/step.hpp>
#include <coop/steps.hpp>

#include <functional>
#include <memory>
#include <stdexcept>
#include <type_traits>

namespace coop::detail {

template <class T> struct is_std_function : std::false_type {};
template <class R, class... A> struct is_std_function<std::function<R(A...)>> : std::true_type {};

inline task_base* with_core(steps_task_base* t, const std::shared_ptr<cooperator_core>& core) noexcept {
  t->core_ = core;
  return t;
}

template <class W, class Result>
concept callable_returning = std::is_invocable_v<W&> && std::is_same_v<std::invoke_result_t<W&>, Result>;
template <class W>
inline constexpr bool is_step_callable = callable_returning<W, step>;
template <class W>
inline constexpr bool is_steps_callable = callable_returning<W, steps>;

/// A `new` task of `core` holding `work`, with one reference (the caller's).
template <class Work>
task_base* make_task(Work&& work, const std::shared_ptr<cooperator_core>& core) {
  using W = std::decay_t<Work>;
  static_assert(std::is_same_v<W, steps> || is_step_callable<W> || is_steps_callable<W>,
                "coop: work must be a callable returning coop::step, a coop::steps coroutine, "
                "or a callable returning coop::steps");
  if constexpr (is_std_function<W>::value || std::is_pointer_v<W>) {
    if (!work) throw std::invalid_argument("coop: cooperate() needs work, got an empty function");
  }
  if constexpr (std::is_same_v<W, steps>) {
    if (!work.valid()) throw std::invalid_argument("coop: cooperate() got an empty coop::steps");
    return with_core(new steps_task<void>(std::forward<Work>(work)), core);
  } else if constexpr (is_step_callable<W>) {
    return new callable_task<W>(std::forward<Work>(work));
  } else {
    return with_core(new steps_task<W>(std::forward<Work>(work)), core);
  }
}

}  // namespace coop::detail
