// The shared state of one cooperator: its strand, its task lists and the tick loop.
// Owned jointly by the cooperator object, its tasks and its queued tick, so handles and
// queued handlers stay safe after the cooperator object is gone.
//
// Concurrency: one mutex guards everything. The tick holds it for the whole tick and
// gives it up only at a unit boundary when another thread asks for it (interrupt_), so a
// unit costs no lock and no atomic read-modify-write; a control call from another thread
// waits at most one unit, and once it returns the runner sees its effect before the next
// unit. The lock is re-entrant per thread, so units, work destructors and handlers run
// under it may call anything.
#pragma once

#include <coop/cooperator_options.hpp>
#include <coop/detail/task_base.hpp>
#include <coop/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>

namespace coop::detail {

namespace asio = boost::asio;

/// An intrusive list of tasks; the runnable list also keeps the round-robin cursor.
class task_list {
public:
  bool empty() const noexcept { return head_ == nullptr; }
  bool single() const noexcept { return head_ != nullptr && head_ == tail_; }
  task_base* front() const noexcept { return head_; }
  void push_back(task_base& t) noexcept;
  void unlink(task_base& t) noexcept;
  /// The next task of the current round; wraps to a new round at the end.
  task_base* next_in_round() noexcept {
    task_base* t = cursor_ ? cursor_ : head_;
    if (t) {
      cursor_ = t->next_;
      // Walking a list is a chain of dependent loads: fetch the next task (its links,
      // vtable pointer and work) while this one runs its unit.
      if (task_base* n = cursor_ ? cursor_ : head_) {
        __builtin_prefetch(n);
        __builtin_prefetch(reinterpret_cast<const char*>(n) + 64);
      }
    }
    return t;
  }

private:
  task_base* head_ = nullptr;
  task_base* tail_ = nullptr;
  task_base* cursor_ = nullptr;  // next task of this round; null: the round is at its end
};

class cooperator_core : public std::enable_shared_from_this<cooperator_core> {
public:
  using executor_type = asio::strand<asio::any_io_executor>;

  cooperator_core(const asio::any_io_executor& ex, cooperator_options options);
  ~cooperator_core();

  /// The strand; once the execution context has shut down, a strand on a context that
  /// destroys whatever is submitted to it (the real one must die with its service).
  executor_type get_executor() const noexcept { return strand_ ? *strand_ : detached_strand(); }
  bool running() const noexcept { return running_.load(std::memory_order_relaxed); }

  /// Takes over the cooperator's reference to `t` (a fresh task). A stopped cooperator
  /// finishes it at once with scheduler_stopped.
  void add(task_base& t) noexcept;
  void start() noexcept;
  void stop() noexcept;
  /// stop(), and parked waiters are destroyed instead of invoked: the execution context
  /// is shutting down and would destroy them anyway.
  void shutdown() noexcept;
  /// The execution context is shutting down: shutdown(), and give up the strand while
  /// its service still exists (handles may keep this core alive past the context).
  void context_shutdown() noexcept;

  // Task control; each returns the failure, or a default error_code on success.
  boost::system::error_code pause(task_base& t) noexcept;
  boost::system::error_code resume(task_base& t) noexcept;
  boost::system::error_code stop(task_base& t) noexcept;

  /// Parks `w` on `t`, or completes it at once (posted) when `t` has finished.
  void when_done(task_base& t, waiter_base& w) noexcept;
  /// Cancellation of a parked when_done: completes it with operation_aborted if still parked.
  void cancel_wait(task_base& t, waiter_base& w) noexcept;
  /// Cancellation bound to coiterate: stops the task if it still runs.
  void cancel_task(task_base& t) noexcept;

  /// Coroutine work: the unit yielded an operation; the task leaves the run order.
  /// Returns false when the task has already finished (the unit stopped it): then there
  /// is nothing to wait for and the operation must not be started.
  bool begin_wait(task_base& t) noexcept;
  /// The awaited operation completed. A failure finishes the task with `failure`;
  /// otherwise, if the task is still active, `deliver(arg)` stores the result (under the
  /// lock, so a concurrent stop() cannot destroy the coroutine frame meanwhile) and the
  /// task rejoins the run order unless the user paused it.
  void end_wait(task_base& t, std::exception_ptr failure, void (*deliver)(void*), void* arg) noexcept;
  /// The awaited operation's handler is gone: destroy the work of a finished task.
  void wait_abandoned(task_base& t) noexcept;

  /// Posts `f` to the strand (cancellation of awaited operations is emitted there).
  template <class F> void post_to_strand(F&& f);

  /// One tick: runs units round-robin until the slice or the predicate ends it. Called
  /// by the tick the cooperator posts to its strand.
  void run_tick() noexcept;

private:
  class lock;
  friend class lock;
  void acquire() noexcept;
  void finish(task_base& t, task_state how, std::exception_ptr failure = {}) noexcept;
  void make_runnable(task_base& t) noexcept;
  void schedule_tick() noexcept;
  void yield_to_controllers() noexcept;
  void run_units_for_slice() noexcept;
  void run_units_until_predicate() noexcept;
  void after_unit(task_base& t, run_outcome outcome) noexcept;
  bool handle_interrupt() noexcept;
  void note_change() noexcept;
  void adapt_check_interval(std::chrono::nanoseconds elapsed, std::uint32_t units) noexcept;
  static std::exception_ptr result_of(const task_base& t) noexcept;

  static constexpr std::uint32_t changed_bit = 1;   // interrupt_: the lists changed in a unit
  static constexpr std::uint32_t controller = 2;    // interrupt_: one thread waits for the lock

  static executor_type detached_strand() noexcept;
  void register_with_context(const asio::any_io_executor& ex);

  std::optional<executor_type> strand_;
  class registry;
  registry* registry_ = nullptr;  // the context's list of cores; null once it shut down
  std::chrono::nanoseconds slice_;
  std::function<std::function<bool()>()> termination_;
  std::mutex mutex_;
  std::atomic<std::uint32_t> interrupt_{0};
  std::atomic<bool> running_;
  bool stopped_ = false;
  bool shutting_down_ = false;
  bool tick_posted_ = false;
  bool in_tick_ = false;
  bool current_finished_ = false;     // the running unit's task finished during the unit
  task_base* current_ = nullptr;      // the task whose unit is running
  task_list runnable_;
  task_list parked_;                  // paused or waiting on an operation
  std::uint32_t check_interval_ = 1;  // units between clock reads, adapted per tick
  std::chrono::nanoseconds check_period_;
};

}  // namespace coop::detail

#include <boost/asio/post.hpp>

template <class F> void coop::detail::cooperator_core::post_to_strand(F&& f) {
  if (strand_) asio::post(*strand_, std::forward<F>(f));
}
