// SPDX-License-Identifier: BSL-1.0
// coop's errors: exception classes mirroring Twisted's, and the same conditions as an
// Asio-style error code enum with its category.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <stdexcept>
#include <type_traits>

namespace coop {

/// Base of every coop exception (Twisted: SchedulerError).
class scheduler_error : public std::runtime_error {
public:
  scheduler_error() : scheduler_error("coop: scheduler error") {}
  using std::runtime_error::runtime_error;
};

/// The cooperator was stopped (or destroyed) before the task finished.
class scheduler_stopped : public scheduler_error {
public:
  /// With the library's message.
  scheduler_stopped() : scheduler_error("coop: the cooperator was stopped before the task finished") {}
  /// With the message given.
  using scheduler_error::scheduler_error;
};

/// The task has already finished; the subclass says how.
class task_finished : public scheduler_error {
public:
  /// With the library's message.
  task_finished() : scheduler_error("coop: the task has already finished") {}
  /// With the message given.
  using scheduler_error::scheduler_error;
};

/// The work ran to completion.
class task_done : public task_finished {
public:
  task_done() : task_finished("coop: the task is done (its work completed)") {}
};

/// cooperative_task::stop() (or a cancelled coiterate) ended the task.
class task_stopped : public task_finished {
public:
  task_stopped() : task_finished("coop: the task was stopped") {}
};

/// A work unit threw, or an awaited operation failed.
class task_failed : public task_finished {
public:
  task_failed() : task_finished("coop: the task failed (a work unit threw or an awaited operation failed)") {}
};

/// resume() without a matching pause().
class not_paused : public scheduler_error {
public:
  not_paused() : scheduler_error("coop: resume() called on a task that is not paused") {}
};

/// The conditions above as error codes (values start at 1: every one is a failure).
enum class error {
  scheduler_stopped = 1,
  task_done,
  task_stopped,
  task_failed,
  not_paused,
};

/// The category of coop::error; name "coop".
const boost::system::error_category& error_category() noexcept;

inline boost::system::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// Throws the exception class that matches `e` (coop::error values only).
[[noreturn]] void throw_error(error e);

}  // namespace coop

/// @cond
template <>
struct boost::system::is_error_code_enum<coop::error> : std::true_type {};
/// @endcond
