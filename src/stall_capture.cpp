// SPDX-License-Identifier: BSL-1.0
#include "stall_capture.hpp"

#include <boost/stacktrace/safe_dump_to.hpp>
#include <boost/stacktrace/stacktrace.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>

#if defined(__linux__)
#include <csignal>
#include <ctime>
#include <semaphore.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace coop::detail::stall_capture {

namespace {

// The one request in flight: written by the watchdog while `state` is idle, by the
// handler while it is `writing`.
struct request {
  static constexpr int idle = 0, requested = 1, writing = 2, done = 3;
  std::atomic<int> state{idle};
  long tid = 0;
  const std::atomic<task_base*>* running = nullptr;
  void* frames[64] = {};
  std::size_t frame_count = 0;
  bool has_task = false;
  std::uint32_t number = 0;
  char name[128] = {};
  std::size_t name_length = 0;
};
request req;

#if defined(__linux__)
// Posted by the handler once its account is written (sem_post is async-signal-safe), so
// the watchdog sleeps until then instead of polling. Polling by yield() lost the CPU for a
// whole scheduler slice whenever the watchdog shared its CPU with the stalled thread,
// which is where the first wake-up of a process's watchdog puts it: the stalled thread
// answered in ~0.2 ms, the watchdog saw it ~3 ms later.
sem_t answered;

// A real-time signal: queued, never merged with the system's own; past the few the C
// library and common runtimes take for themselves.
int stall_signal() noexcept { return SIGRTMIN + 6; }

void on_signal(int) {
  const int saved_errno = errno;
  int expected = request::requested;
  if (req.state.compare_exchange_strong(expected, request::writing, std::memory_order_acquire)) {
    if (static_cast<long>(::syscall(SYS_gettid)) == req.tid) {
      // All frames: Boost 1.81's skip count cuts the dump at the signal frame. The
      // handler's own frame is dropped when the dump is read.
      req.frame_count = boost::stacktrace::safe_dump_to(0, req.frames, sizeof req.frames);
      // This thread is suspended mid-unit: the running task is alive.
      if (const task_base* t = req.running->load(std::memory_order_relaxed)) {
        req.has_task = true;
        req.number = t->number();
        if (const std::string* name = t->name()) {
          req.name_length = std::min(name->size(), sizeof req.name);
          std::memcpy(req.name, name->data(), req.name_length);
        }
      }
    }
    req.state.store(request::done, std::memory_order_release);
    ::sem_post(&answered);
  }
  errno = saved_errno;
}
#endif

}  // namespace

long this_thread_id() noexcept {
#if defined(__linux__)
  return static_cast<long>(::syscall(SYS_gettid));
#else
  return 0;
#endif
}

bool install() noexcept {
#if defined(__linux__)
  static const bool installed = [] {
    struct sigaction sa {};
    sa.sa_handler = &on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;  // system calls the unit was in go on
    // Unwinding the first time may load libgcc_s (not async-signal-safe): done here. So
    // is the first symbolization's setup (~0.1 ms of one-time work).
    void* warm[4] = {};
    const std::size_t frames = boost::stacktrace::safe_dump_to(warm, sizeof warm);
    (void)boost::stacktrace::to_string(boost::stacktrace::stacktrace::from_dump(warm, frames * sizeof(void*)));
    return ::sem_init(&answered, 0, 0) == 0 && ::sigaction(stall_signal(), &sa, nullptr) == 0;
  }();
  return installed;
#else
  return false;
#endif
}

account take(long tid, const std::atomic<task_base*>& running, std::chrono::milliseconds timeout) {
  account a;
#if defined(__linux__)
  if (tid == 0 || !install()) return a;
  req.tid = tid;
  req.running = &running;
  req.frame_count = 0;
  req.has_task = false;
  req.name_length = 0;
  req.state.store(request::requested, std::memory_order_release);
  if (::syscall(SYS_tgkill, static_cast<long>(::getpid()), tid, stall_signal()) != 0) {
    req.state.store(request::idle, std::memory_order_relaxed);  // the thread is gone
    return a;
  }
  // steady_clock is CLOCK_MONOTONIC, the clock the wait is given.
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // A post left over from an earlier answer the watchdog saw before waiting only makes
  // one more turn of this loop: the state decides.
  while (req.state.load(std::memory_order_acquire) != request::done) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
    const timespec until{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    if (::sem_clockwait(&answered, CLOCK_MONOTONIC, &until) == 0 || errno == EINTR) continue;
    int expected = request::requested;
    if (req.state.compare_exchange_strong(expected, request::idle)) return a;  // never delivered
    // The handler is writing: it ends in microseconds.
    deadline += std::chrono::milliseconds(1);
  }
  a.taken = true;
  if (req.has_task) {
    a.task = req.name_length ? std::string(req.name, req.name_length) : "task-" + std::to_string(req.number);
  }
  // The dump ends with a null frame; the first is this library's handler.
  if (req.frame_count > 2)
    a.backtrace = boost::stacktrace::to_string(
        boost::stacktrace::stacktrace::from_dump(req.frames + 1, (req.frame_count - 1) * sizeof(void*)));
  req.state.store(request::idle, std::memory_order_release);
#else
  (void)tid;
  (void)running;
  (void)timeout;
#endif
  return a;
}

}  // namespace coop::detail::stall_capture
