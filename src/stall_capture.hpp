// SPDX-License-Identifier: BSL-1.0
// The stalled thread's own account of a stall: its stack and the task whose unit it runs,
// taken by that thread itself in a signal handler (as Seastar's stall detector does), so
// the stack is the one of the stall, not of the watchdog. The handler only copies
// (Boost.Stacktrace's async-signal-safe dump, the task's name bytes); the watchdog
// symbolizes afterwards.
#pragma once

#include <coop/detail/task_base.hpp>

#include <atomic>
#include <chrono>
#include <string>

namespace coop::detail::stall_capture {

struct account {
  bool taken = false;     // the thread answered in time
  std::string task;       // the name of the task whose unit it ran; empty if none
  std::string backtrace;  // one frame per line
};

/// Installs the handler (once per process); false where stacks cannot be taken this way.
bool install() noexcept;

/// Asks thread `tid` (a kernel thread id, of this process) for its account, and waits for
/// it up to `timeout`. `running`: the cooperator's running task, which the thread reads
/// while its unit is suspended by the signal (so the task cannot be freed meanwhile).
/// One caller at a time (the watchdog thread).
account take(long tid, const std::atomic<task_base*>& running, std::chrono::milliseconds timeout);

/// The calling thread's kernel id.
long this_thread_id() noexcept;

}  // namespace coop::detail::stall_capture
