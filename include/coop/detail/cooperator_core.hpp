// SPDX-License-Identifier: BSL-1.0
// The shared state of one cooperator, as the templates see it: what cooperate(),
// when_done and coop::steps instantiate call. Its data, its lock and its tick are compiled
// into the library (src/core/core_impl.hpp), so changing them changes no user's build.
// Owned jointly by the cooperator object, its tasks and its queued tick, so handles and
// queued handlers stay safe after the cooperator object is gone.
//
// Every member may be called from any thread at any time unless it says otherwise.
#pragma once

#include <coop/cooperator_options.hpp>
#include <coop/detail/strand_entry.hpp>
#include <coop/detail/task_base.hpp>
#include <coop/stats.hpp>
#include <coop/task_options.hpp>
#include <coop/task_state.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/strand.hpp>
#include <boost/system/error_code.hpp>

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace coop::detail {

namespace asio = boost::asio;

class cooperator_core {
public:
  using executor_type = asio::strand<asio::any_io_executor>;

  cooperator_core(const cooperator_core&) = delete;
  cooperator_core& operator=(const cooperator_core&) = delete;

  /// The strand; once the execution context has shut down, a strand on a context that
  /// destroys whatever is submitted to it (the real one must die with its service).
  executor_type get_executor() const noexcept;
  /// The strand itself, without a copy or the lock get_executor() takes: only under this
  /// core's lock (a waiter's complete()). Null once the execution context has shut down.
  const executor_type* locked_strand() const noexcept;
  /// The executor the strand runs on, untracked: what a wait whose handler runs on
  /// whichever member delivers it holds its outstanding work on (no lock and no copy of
  /// the strand to take). Null once the execution context has shut down. Any thread.
  const asio::any_io_executor* context_executor() const noexcept;
  bool running() const noexcept;

  // ---- the cooperator ----
  /// Takes over the cooperator's reference to `t` (a fresh task). A stopped cooperator
  /// finishes it at once with scheduler_stopped. Throws std::bad_alloc with nothing
  /// changed when the tick cannot be queued.
  void add(task_base& t);
  void start();
  void stop() noexcept;

  // ---- a task's handle; each returns the failure, or a default error_code ----
  boost::system::error_code pause(task_base& t) noexcept;
  boost::system::error_code resume(task_base& t) noexcept;
  boost::system::error_code stop(task_base& t) noexcept;

  // ---- shares, name and state (the task's handle) ----
  /// Throws std::invalid_argument unless `shares` is in 1..10000.
  static void check_shares(unsigned shares);
  /// Before add(): gives the fresh task `t` its options (check_shares() done).
  static void set_options(task_base& t, task_options&& options);
  /// Any thread; takes effect from the next turn of `t` (the next tick at the latest).
  /// Throws as check_shares(); does nothing when `t` has finished.
  void set_shares(task_base& t, unsigned shares);
  static unsigned shares(const task_base& t) noexcept;
  static std::string name(const task_base& t);
  /// A snapshot; any thread.
  static task_state state(const task_base& t) noexcept;
  /// Snapshots; any thread, without the lock.
  static task_stats stats(const task_base& t) noexcept;
  cooperator_stats stats() const noexcept;

  // ---- when_done and coiterate ----
  /// Parks `w` on `t`, or completes it at once (posted) when `t` has finished.
  void when_done(task_base& t, waiter_base& w) noexcept;
  /// Cancellation of a parked when_done: completes it with operation_aborted if still parked.
  void cancel_waiter(task_base& t, waiter_base& w) noexcept;
  /// Cancellation bound to coiterate: stops the task if it still runs.
  void cancel_task(task_base& t) noexcept;
  /// Completes `w` again: its completion was dropped after leaving the lock (out of
  /// memory while entering the handler's strand). Kept for a later retry if that fails too.
  void redeliver(waiter_base& w, std::exception_ptr result) noexcept;
  /// From a waiter's complete(), under this core's lock, for a handler that runs on the
  /// delivering core's strand: when this thread runs that strand (a tick finishing tasks),
  /// queues `w` and `result` on the core's batch of completions, which one handler posted
  /// to the strand runs in order. False, `result` untouched, otherwise.
  bool batch_completion(waiter_base& w, std::exception_ptr& result) noexcept;

  // ---- the operation a coroutine task awaits (coop::steps) ----
  /// Called from the task's own unit: the unit yielded an operation; the task leaves the
  /// run order. Returns the operation's generation, or 0 when the task has already
  /// finished (the unit stopped it): then the operation must not be started.
  std::uint32_t begin_await(task_base& t) noexcept;
  /// The operation's initiation threw: the task is back in the run order as if it had not
  /// yielded (the exception goes on into the coroutine).
  void undo_await(task_base& t) noexcept;
  /// The awaited operation completed. A failure finishes the task with `failure`;
  /// otherwise, if the task is still active, `deliver(arg)` stores the result (under the
  /// lock, so a concurrent stop() cannot destroy the coroutine frame meanwhile) and the
  /// task rejoins the run order unless the user paused it.
  void end_await(task_base& t, std::uint32_t generation, std::exception_ptr failure, void (*deliver)(void*),
                void* arg) noexcept;
  /// The awaited operation's initiation gave up its handler without calling it: the
  /// task fails with operation_aborted.
  void await_abandoned(task_base& t, std::uint32_t generation) noexcept;
  /// The awaited operation's handler was destroyed without being called, after the
  /// initiation. That is either an operation giving up (the task fails, as above) or the
  /// execution context shutting down, which destroys pending operations service by
  /// service, newest first, so possibly before it stops this cooperator (the task then
  /// finishes scheduler_stopped). Decided by a check posted to the strand: while the
  /// context shuts down no handler runs, and the check is destroyed after the context
  /// has stopped this cooperator.
  void await_dropped(task_base& t, std::uint32_t generation) noexcept;
  /// Whether operation `generation` of `t` is still awaited.
  bool await_pending(const task_base& t, std::uint32_t generation) noexcept;
  /// Emits terminal cancellation to operation `generation` of `t` if it is still awaited
  /// (posted to the strand by a stop, where the operation's handler also runs).
  template <class Emit> void cancel_pending_await(task_base& t, std::uint32_t generation, Emit&& emit) noexcept {
    // On the strand: the operation's handler cannot run concurrently, and a handler that
    // already ran moved the task past this generation.
    if (await_pending(t, generation)) emit();
  }

  /// Posts `f` to the strand (cancellation of awaited operations is emitted there);
  /// `id`: an address that names this post while it is in flight. Nothing once the
  /// execution context has shut down.
  template <class F> void post_to_strand(const void* id, F&& f) {
    // Through the inner executor, so that running out of memory cannot lock the strand
    // for good (strand_entry.hpp); a cancellation the dispatch drops is lost (the
    // operation then runs to its own end), and nothing escapes into run().
    if (std::optional<executor_type> strand = live_strand())
      post_into_strand(*strand, drop_reporting<std::decay_t<F>>(std::forward<F>(f), id), id, [] {});
  }

protected:
  cooperator_core() = default;
  ~cooperator_core() = default;  // owned through shared_ptr<core_impl>

private:
  /// The strand, unless the execution context has shut down.
  std::optional<executor_type> live_strand() const noexcept;
};

/// A new cooperator's core on `ex`.
std::shared_ptr<cooperator_core> make_cooperator_core(const asio::any_io_executor& ex, cooperator_options options);

}  // namespace coop::detail
