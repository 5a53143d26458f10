// SPDX-License-Identifier: BSL-1.0
// A completion handler for void(std::exception_ptr) that must run exactly once: it
// records being invoked (more than once is counted) and being destroyed without having
// been invoked, and CHECK_ONCE asserts that it ran once and was not dropped.
#pragma once

#include <boost/test/unit_test.hpp>

#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <utility>

namespace coop_test {

// What a once_handler saw. `calls` must end at 1 and `dropped` at 0 for a handler that
// must run exactly once.
struct record {
  int calls = 0;
  int dropped = 0;  // destroyed without ever being invoked
  std::exception_ptr result;
};

// Invocations of a moved-from handler: a library that calls one has lost the real one.
inline std::atomic<int> calls_on_moved_from{0};

// Move-only. `then` runs inside the invocation, after the record is updated.
class once_handler {
public:
  explicit once_handler(std::shared_ptr<record> r, std::function<void(std::exception_ptr)> then = {})
      : record_(std::move(r)), then_(std::move(then)) {}
  once_handler(once_handler&& other) noexcept
      : record_(std::move(other.record_)), then_(std::move(other.then_)), invoked_(other.invoked_) {}
  once_handler& operator=(once_handler&&) = delete;
  ~once_handler() {
    if (record_ && !invoked_) ++record_->dropped;
  }

  void operator()(std::exception_ptr ep) {
    if (!record_) {
      ++calls_on_moved_from;
      return;
    }
    invoked_ = true;
    ++record_->calls;
    record_->result = ep;
    if (then_) then_(ep);
  }

private:
  std::shared_ptr<record> record_;
  std::function<void(std::exception_ptr)> then_;
  bool invoked_ = false;
};

}  // namespace coop_test

#define CHECK_ONCE(rec)                                          \
  do {                                                           \
    BOOST_TEST((rec)->calls == 1);                               \
    BOOST_TEST((rec)->dropped == 0);                             \
    BOOST_TEST(::coop_test::calls_on_moved_from.load() == 0);    \
  } while (false)
