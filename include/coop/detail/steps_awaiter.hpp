// SPDX-License-Identifier: BSL-1.0
// How `co_yield op;` waits for an Asio operation inside coop::steps work.
#pragma once

#include <coop/detail/cooperator_core.hpp>
#include <coop/detail/drop_guard.hpp>
#include <coop/detail/task_base.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <coroutine>
#include <exception>
#include <optional>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>

namespace coop::detail {

namespace asio = boost::asio;

// ---- an operation's completion signature (Asio's own traits) -------------------------

/// The operation's one completion signature, as void(Args...).
template <class Signature> struct plain_signature;
template <class R, class... Args> struct plain_signature<R(Args...)> {
  using type = void(Args...);
};

template <class Op>
concept async_operation_with_one_signature =
    asio::is_async_operation<Op>::value && requires { typename asio::completion_signature_of<Op>::type; };

template <class Op>
inline constexpr bool is_async_operation = async_operation_with_one_signature<Op>;

template <class Op> struct operation_signature {
  using type = typename plain_signature<typename asio::completion_signature_of<Op>::type>::type;
};

// ---- splitting a completion into failure and value -----------------------------------

template <class T>
inline constexpr bool is_error_argument =
    std::is_same_v<T, boost::system::error_code> || std::is_same_v<T, std::error_code> ||
    std::is_same_v<T, std::exception_ptr>;

inline std::exception_ptr failure_of(const boost::system::error_code& ec) {
  return ec ? std::make_exception_ptr(boost::system::system_error(ec)) : nullptr;
}
inline std::exception_ptr failure_of(const std::error_code& ec) {
  // The contract: a failed operation fails the task with boost::system::system_error.
  return ec ? std::make_exception_ptr(boost::system::system_error(boost::system::error_code(ec))) : nullptr;
}
inline std::exception_ptr failure_of(const std::exception_ptr& e) { return e; }

template <class... Args> struct completion_traits {
  static constexpr bool has_error = false;
  using values = std::tuple<std::decay_t<Args>...>;
};
template <class First, class... Rest>
  requires is_error_argument<std::decay_t<First>>
struct completion_traits<First, Rest...> {
  static constexpr bool has_error = true;
  using values = std::tuple<std::decay_t<Rest>...>;
};

/// The value of the co_yield expression: nothing, the one value, or a tuple.
template <class Tuple> struct yield_value_of {
  using type = Tuple;
  static type take(Tuple&& t) { return std::move(t); }
};
template <> struct yield_value_of<std::tuple<>> {
  using type = void;
  static void take(std::tuple<>&&) {}
};
template <class T> struct yield_value_of<std::tuple<T>> {
  using type = T;
  static T take(std::tuple<T>&& t) { return std::get<0>(std::move(t)); }
};

// ---- the awaiter and the operation's handler -----------------------------------------

/// The cancellation signal of a task's pending operation (lives in the task, so a late
/// emission never touches a destroyed frame).
asio::cancellation_slot wait_cancellation_slot(task_base& t) noexcept;
/// The cooperator of a coroutine task (which keeps it alive).
cooperator_core& core_of(task_base& t) noexcept;

template <class Signature> class operation_handler;

template <class Op>
class operation_awaiter {
  using signature = typename operation_signature<Op>::type;

public:
  template <class O>
  operation_awaiter(task_base& task, O&& op) : task_(task), op_(std::forward<O>(op)) {}

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<>) {
    const std::uint32_t generation = core_of(task_).begin_await(task_);
    if (!generation) return;  // the unit stopped its own task
    // A handler the initiation destroys without calling it reports to this guard (on
    // this thread only), and the awaiter decides: the initiation threw, or it gave up.
    drop_guard guard(&task_, generation);
    try {
      std::move(op_)(operation_handler<signature>(task_ptr(&task_), generation, &result_));
    } catch (...) {
      // The initiation threw: no wait began; the exception goes on into the coroutine.
      core_of(task_).undo_await(task_);
      throw;
    }
    if (guard.dropped()) core_of(task_).await_abandoned(task_, generation);  // no completion will come
  }
  auto await_resume() { return yield_value_of<values>::take(std::move(*result_)); }

private:
  template <class> friend class operation_handler;
  using values = typename operation_handler<signature>::values;
  task_base& task_;
  Op op_;
  std::optional<values> result_;
};

template <class... Args>
class operation_handler<void(Args...)> {
public:
  using traits = completion_traits<Args...>;
  using values = typename traits::values;
  using executor_type = cooperator_core::executor_type;
  using cancellation_slot_type = asio::cancellation_slot;

  operation_handler(task_ptr task, std::uint32_t generation, std::optional<values>* result) noexcept
      : task_(std::move(task)), generation_(generation), result_(result) {}
  operation_handler(operation_handler&&) noexcept = default;
  operation_handler& operator=(operation_handler&&) = delete;
  ~operation_handler() {
    // Destroyed without being called; inside the initiation, the awaiter decides. A
    // handler of an earlier wait (kept by an initiation that threw) changes nothing.
    if (task_ && !drop_guard::report_drop(task_.get(), generation_))
      core_of(*task_).await_dropped(*task_, generation_);
  }

  /// The cooperator's strand: the result and the units never race.
  executor_type get_executor() const noexcept { return core_of(*task_).get_executor(); }
  cancellation_slot_type get_cancellation_slot() const noexcept { return wait_cancellation_slot(*task_); }

  template <class... A>
  void operator()(A&&... args) {
    task_ptr task = std::move(task_);
    std::exception_ptr failure;
    std::tuple<A&&...> refs(std::forward<A>(args)...);
    if constexpr (traits::has_error) {
      try {
        failure = failure_of(std::get<0>(refs));
      } catch (...) {
        failure = std::current_exception();  // out of memory: the task fails with that
      }
    }
    struct delivery {
      std::optional<values>* result;
      std::tuple<A&&...>* refs;
      static void deliver(void* self) {
        auto* d = static_cast<delivery*>(self);
        if constexpr (traits::has_error)
          std::apply([&](auto&&, auto&&... rest) { d->result->emplace(std::forward<decltype(rest)>(rest)...); },
                     std::move(*d->refs));
        else
          std::apply([&](auto&&... all) { d->result->emplace(std::forward<decltype(all)>(all)...); },
                     std::move(*d->refs));
      }
    } d{result_, &refs};
    core_of(*task).end_await(*task, generation_, std::move(failure), &delivery::deliver, &d);
  }

private:
  task_ptr task_;
  std::uint32_t generation_;  // which wait of the task this handler ends
  std::optional<values>* result_;
};

}  // namespace coop::detail
