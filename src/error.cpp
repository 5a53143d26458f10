// SPDX-License-Identifier: BSL-1.0
#include <coop/error.hpp>

#include <string>

namespace coop {
namespace {

class category_impl final : public boost::system::error_category {
public:
  // A fixed id keeps categories equal across shared-library boundaries.
  constexpr category_impl() noexcept : error_category(0xc00b'5eed'0000'0001ULL) {}
  const char* name() const noexcept override { return "coop"; }
  std::string message(int value) const override {
    switch (static_cast<error>(value)) {
      case error::scheduler_stopped: return "the cooperator was stopped before the task finished";
      case error::task_done: return "the task is done (its work completed)";
      case error::task_stopped: return "the task was stopped";
      case error::task_failed: return "the task failed";
      case error::not_paused: return "the task is not paused";
    }
    return "unknown coop error";
  }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const category_impl instance;
  return instance;
}

void throw_error(error e) {
  switch (e) {
    case error::scheduler_stopped: throw scheduler_stopped();
    case error::task_done: throw task_done();
    case error::task_stopped: throw task_stopped();
    case error::task_failed: throw task_failed();
    case error::not_paused: throw not_paused();
  }
  throw scheduler_error();
}

}  // namespace coop
