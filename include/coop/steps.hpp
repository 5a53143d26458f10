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
#pragma once

#include <coop/detail/steps_awaiter.hpp>

#include <coroutine>
#include <exception>
#include <type_traits>
#include <utility>

namespace coop {

/// `co_yield coop::next;` ends one unit of coroutine work.
struct next_t {
  explicit constexpr next_t() = default;
};
inline constexpr next_t next{};

/// The return type of a coroutine used as work. Starts suspended; move-only owner of the
/// coroutine frame until cooperate() takes it.
class [[nodiscard]] steps {
public:
  struct promise_type {
    detail::task_base* task_ = nullptr;  // set when cooperate() takes the frame
    std::exception_ptr exception_;

    steps get_return_object() noexcept { return steps(std::coroutine_handle<promise_type>::from_promise(*this)); }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { exception_ = std::current_exception(); }

    std::suspend_always yield_value(next_t) noexcept { return {}; }

    template <class Operation>
    auto yield_value(Operation&& op) {
      static_assert(detail::is_async_operation<std::decay_t<Operation>>,
                    "coop::steps: co_yield takes coop::next or an Asio operation made with "
                    "asio::deferred (e.g. timer.async_wait(asio::deferred))");
      return detail::operation_awaiter<std::decay_t<Operation>>(*task_, std::forward<Operation>(op));
    }
  };
  using handle_type = std::coroutine_handle<promise_type>;

  steps(steps&& other) noexcept : frame_(std::exchange(other.frame_, {})) {}
  steps& operator=(steps&& other) noexcept {
    if (this != &other) {
      if (frame_) frame_.destroy();
      frame_ = std::exchange(other.frame_, {});
    }
    return *this;
  }
  ~steps() {
    if (frame_) frame_.destroy();
  }

  /// Whether this object still owns a coroutine frame.
  bool valid() const noexcept { return static_cast<bool>(frame_); }
  /// Gives up ownership of the frame.
  handle_type release() noexcept { return std::exchange(frame_, {}); }

private:
  explicit steps(handle_type frame) noexcept : frame_(frame) {}
  handle_type frame_;
};

}  // namespace coop
