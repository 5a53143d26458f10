// SPDX-License-Identifier: BSL-1.0
// The implementation of a cooperator's core (include/coop/detail/cooperator_core.hpp is
// what the templates see): its strand, its task lists and the tick loop.
//
// Concurrency. A task's state and pause count are one atomic word (task_base::control_),
// changed by compare-and-swap from any thread: that is what pause()/resume()/stop() return
// from, and what the runner checks (one plain load) before each unit, so once pause() or
// stop() returns no new unit of the task starts. The lists, waiters and placement are
// guarded by one mutex, which the tick holds for the whole slice, so a unit costs no lock
// and no read-modify-write. Another thread never waits for it while units run: when
// try_lock fails it leaves the follow-up (relink a resumed task, retire a stopped one,
// park a waiter) in an inbox and raises interrupt_, and the lock holder applies it at the
// next unit boundary or before unlocking. Nobody blocks on a unit, so a unit may take any
// lock of its own. The mutex is re-entrant per thread, so units, work destructors and
// handlers run under it may call anything.
#pragma once

#include <coop/cooperator_options.hpp>
#include <coop/detail/cooperator_core.hpp>
#include <coop/detail/in_place_walk.hpp>
#include "admission_budget.hpp"
#include "admission_queue.hpp"
#include "busy_meter.hpp"
#include "round_robin.hpp"
#include "run_ring.hpp"
#include <coop/detail/task_base.hpp>
#include <coop/error.hpp>
#include <coop/stats.hpp>

#include "../asymmetric_fence.hpp"
#include "../core_mutex.hpp"
#include "../preemption_timer.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace coop::detail {

namespace asio = boost::asio;

// The shake-out build (CMake option COOP_SHAKE_OUT), as Seastar's debug build forces
// preemption: every tick ends after one unit, whatever its slice or predicate says, so
// code that works only while ticks run many units shows its bugs.
#ifdef COOP_SHAKE_OUT
inline constexpr bool shake_out = true;
#else
inline constexpr bool shake_out = false;
#endif

// Made at start-up: the noexcept paths that hand them out must not allocate.
inline const std::exception_ptr task_stopped_exception = std::make_exception_ptr(task_stopped());
inline const std::exception_ptr scheduler_stopped_exception = std::make_exception_ptr(scheduler_stopped());
inline const std::exception_ptr operation_aborted_exception =
    std::make_exception_ptr(boost::system::system_error(asio::error::operation_aborted));


class context_service;
class core_impl;

/// The members of a cooperator pool as each member's core sees them: where a task that
/// moved is now (task_base::member_ indexes it). Weak: a member's core may be gone while
/// a handle of a task that moved away from it is alive (the task has finished then).
struct pool_links {
  std::vector<std::weak_ptr<core_impl>> cores;
};

class core_impl final : public cooperator_core, public std::enable_shared_from_this<core_impl> {
public:
  core_impl(const asio::any_io_executor& ex, cooperator_options options);
  ~core_impl();

  // ---- the interface's members (include/coop/detail/cooperator_core.hpp says what each
  // does); cooperator_core.cpp forwards them here ----
  executor_type get_executor() const noexcept {
    std::lock_guard l(strand_mutex_);  // any thread, at any time: context_shutdown() resets it
    return strand_ ? *strand_ : detached_strand();
  }
  const executor_type* locked_strand() const noexcept { return strand_ ? &*strand_ : nullptr; }
  const asio::any_io_executor* context_executor() const noexcept {
    return context_gone_.load(std::memory_order_acquire) ? nullptr : &inner_;
  }
  bool running() const noexcept { return running_.load(std::memory_order_relaxed); }
  void add(task_base& t);
  void start();
  void stop() noexcept;
  boost::system::error_code pause(task_base& t) noexcept;
  boost::system::error_code resume(task_base& t) noexcept;
  boost::system::error_code stop(task_base& t) noexcept;
  void set_shares(task_base& t, unsigned shares);
  void when_done(task_base& t, waiter_base& w) noexcept;
  void cancel_waiter(task_base& t, waiter_base& w) noexcept;
  void cancel_task(task_base& t) noexcept;
  void redeliver(waiter_base& w, std::exception_ptr result) noexcept;
  bool batch_completion(waiter_base& w, std::exception_ptr& result) noexcept;
  // The batch's posted handler runs it, or, destroyed unrun with the strand's queue,
  // discards it (completion_batch.cpp).
  void run_batch();
  void discard_batch() noexcept;
  std::uint32_t begin_await(task_base& t) noexcept;
  void undo_await(task_base& t) noexcept;
  void end_await(task_base& t, std::uint32_t generation, std::exception_ptr failure, void (*deliver)(void*),
                 void* arg) noexcept;
  void await_abandoned(task_base& t, std::uint32_t generation) noexcept;
  void await_dropped(task_base& t, std::uint32_t generation) noexcept;
  bool await_pending(const task_base& t, std::uint32_t generation) noexcept;
  cooperator_stats stats() const noexcept;

  // ---- the library's own ----
  /// The execution context is shutting down: stop(), destroying parked waiters instead
  /// of invoking them, and give up the strand while its service still exists (handles
  /// may keep this core alive past the context).
  void context_shutdown() noexcept;

  /// The strand, unless the execution context has shut down.
  std::optional<executor_type> live_strand() const noexcept {
    std::lock_guard l(strand_mutex_);
    return strand_;
  }

  /// One tick: runs units round-robin until the slice or the predicate ends it. Called
  /// by the tick the cooperator posts to its strand.
  void run_tick() noexcept;
  /// The tick's work under the lock; true when tasks are left runnable (the next tick is
  /// posted).
  bool run_units() noexcept;

  /// A hop of the tick's re-post could not post its next step (out of memory): the tick
  /// is posted again later, like one that failed to post in the first place.
  void tick_post_failed() noexcept;

  /// Set by the preemption timer when the tick's slice has run out.
  void preempt() noexcept { interrupt_.fetch_or(preempt_bit, std::memory_order_relaxed); }
  /// The stall detector's probe: the tick reads the clock at its next unit boundary.
  void probe() noexcept { interrupt_.fetch_or(probe_bit, std::memory_order_relaxed); }
  /// The unit running now has run for about `running`, over the stall threshold: takes the
  /// stalled thread's account and reports it (the watchdog thread, without its mutex).
  void report_stall(std::chrono::nanoseconds running) noexcept;
  /// Posts again what could not be posted for lack of memory, if the lock is free
  /// (the watchdog thread calls it).
  void try_retry() noexcept;

  /// Tasks take their number ("task-N") from `counter`, shared with the other members of
  /// a pool, instead of this core's own count. Before the first task is added.
  void number_tasks_from(std::shared_ptr<std::atomic<std::uint32_t>> counter) noexcept {
    shared_numbers_ = std::move(counter);
  }
  /// Admission goes by `budget`, shared with the other members of a pool (max_active
  /// across the pool), instead of this core's own max_active_. Before the first task.
  void admit_by(std::shared_ptr<admission_budget> budget) noexcept { budget_ = std::move(budget); }
  /// This core is member `index` of a pool whose members are `links`: its tasks may move
  /// to an idle member at the end of its ticks, and tasks move in from the others
  /// (task_moves.cpp). Before the first task.
  void join_pool(std::shared_ptr<const pool_links> links, std::uint16_t index) noexcept {
    pool_ = std::move(links);
    member_index_ = index;
  }
  /// Tasks moved in less tasks moved out (a pool places new tasks by unfinished counts).
  std::int64_t moved_net() const noexcept {
    return static_cast<std::int64_t>(moved_in_.load(std::memory_order_relaxed)) -
           static_cast<std::int64_t>(moved_out_.load(std::memory_order_relaxed));
  }

private:
  class lock;
  friend class lock;
  friend class context_service;

  // What another thread leaves for the lock holder.
  enum class request : unsigned char { update_placement, park_waiter, cancel_waiter, recount_shares, admit_granted };
  // A cooperate() from another thread, waiting for the lock holder to admit its task or
  // refuse it (out of memory): lives on the requester's stack until answered.
  struct admission {
    static constexpr std::uint32_t pending = 0, admitted = 1, refused = 2;
    std::atomic<std::uint32_t> state{pending};
    std::exception_ptr error;  // refused: why
  };
  // `waiter`: for park_waiter, a wait nobody else can complete, so alive until applied;
  // for cancel_waiter, only a name (with `waiter_id`), never dereferenced: the wait may
  // have completed and been freed meanwhile. `admit`: a new task to admit, and its answer.
  struct inbox_item {
    request what;
    task_ptr task;
    waiter_base* waiter;
    std::uint64_t waiter_id;
    admission* admit = nullptr;
  };

  /// After a control word change from another thread: waits while a unit of `t`, decided
  /// before the change, is still running, so no unit of `t` starts after the caller returns.
  void wait_out_unit(const task_base& t) const noexcept;

  // ---- a pool's moves (task_moves.cpp) ----
  /// The core that holds a task, and a reference that keeps it alive while it is asked.
  struct holder {
    core_impl* core;
    std::shared_ptr<core_impl> keep;
  };
  /// Whether `t` is this core's (always outside a pool). Stable while this core's lock is
  /// held: a move takes the locks of both members.
  bool holds(const task_base& t) const noexcept {
    return !pool_ || t.member_.load(std::memory_order_seq_cst) == member_index_;
  }
  /// The core holding `t` now; null core when that member is gone (its tasks finished).
  holder holder_of(const task_base& t) noexcept;
  holder member(std::uint16_t index) noexcept;
  /// Passes a request for a task that moved away to the member holding it; false when
  /// that member is gone (the task has finished: the request is this core's to apply).
  bool forward(request what, task_base& t, waiter_base* w, std::uint64_t waiter_id) noexcept;
  /// wait_out_unit() on whichever member runs `t`, following it if it moves meanwhile.
  void wait_out_unit_anywhere(const task_base& t) noexcept;
  /// The end of a tick with tasks to spare: half of them move to a member with none
  /// runnable whose lock is free.
  void donate() noexcept;
  /// Moves up to `count` runnable tasks (not paused, not awaiting) to `thief`, both locks
  /// held; returns how many moved.
  std::size_t move_tasks_to(core_impl& thief, std::size_t count) noexcept;
  /// Publishes `t` as about to run, then reads its control word: true if it may run.
  /// `fences`: asymmetric_fences_ (passed in so the hot loop can keep it in a register).
  bool claim(task_base& t, bool fences) noexcept {
    return fences ? detail::claim<true>(running_task_, t) : detail::claim<false>(running_task_, t);
  }
  /// The task whose unit is running (the lock holder's view).
  task_base* current() const noexcept { return running_task_.load(std::memory_order_relaxed); }
  /// Applies `what` now if this thread can take the lock, else leaves it in the inbox.
  /// `waiter_id`: a forwarded cancel_waiter's (its waiter is never read then).
  void apply_or_queue(request what, task_base& t, waiter_base* w = nullptr, std::uint64_t waiter_id = 0) noexcept;
  void apply(request what, task_base& t, waiter_base* w) noexcept;
  /// Room in both rings for one more task. Throws when out of memory, nothing changed.
  void reserve_room();
  /// add() from another thread while the lock is held: leaves the task for the holder and
  /// waits for its answer; throws its std::bad_alloc with nothing changed.
  void admit_from_outside(task_base& t);
  /// The lock holder's side: admits `t` (update_placement) or refuses it, and tells the requester.
  void answer_admission(task_base& t, admission& answer) noexcept;
  /// Ends the wait named `w`/`id` with operation_aborted if it is still parked on `t`.
  /// Finds it among t's waiters, never reading `w` itself (see inbox_item).
  void cancel_parked(task_base& t, const waiter_base* w, std::uint64_t id) noexcept;
  void drain_inbox() noexcept;
  /// Sequentially consistent: see core_mutex.hpp.
  bool inbox_waiting() const noexcept { return interrupt_.load(std::memory_order_seq_cst) & inbox_bit; }
  /// After unlocking: takes care of requests left while the lock was held.
  void after_unlock() noexcept;

  /// Brings a task's placement in line with its control word: parks a paused task,
  /// relinks a resumed one, retires a finished one. Idempotent. `requeue` (or the
  /// control word's requeue bit): the task was resumed, so it goes to the end of the
  /// order even if a lazy pause left it in place.
  void update_placement(task_base& t, bool requeue = false) noexcept;
  void retire(task_base& t, std::exception_ptr failure = {}) noexcept;
  /// Admits the oldest queued tasks while fewer than max_active_ are admitted.
  void admit_queued() noexcept;
  /// A pool's budget: `t`, which held a place, has finished; the place goes to the
  /// pool's oldest queued task, on whichever member it waits.
  void pass_place_on() noexcept;
  /// A pool's budget granted `t` (queued here) a place: admits it, or passes the place on
  /// if `t` has finished meanwhile.
  void admit_granted(task_base& t) noexcept;
  /// Brings weighted_tasks_ in line with `t`'s shares and whether it has retired.
  void recount_shares(task_base& t) noexcept;
  /// Compare-and-swap an active task to `how`; false when it had finished already.
  static bool try_finish(task_base& t, run_state how) noexcept;
  void park(task_base& t) noexcept;
  void make_runnable(task_base& t) noexcept;
  /// `t` leaves the run order (its wait there ends: stats.cpp).
  void leave_run_order(task_base& t) noexcept;
  /// Into and out of the parked ring, counting the tasks parked while they await.
  void to_parked(task_base& t) noexcept;
  void from_parked(task_base& t) noexcept;
  /// When a task joins or leaves the run order, for its waited time (stats.cpp). Call it
  /// before the task joins or leaves.
  std::chrono::steady_clock::time_point wait_clock() noexcept;
  /// Makes the counts of tasks by placement visible to stats() (the lock holder, as it
  /// lets go of the lock).
  void publish_counts() noexcept;
  /// The end of a tick's units: reads the clock if units ran since the last read, and
  /// adds what the tick ran to the cooperator's stats.
  void count_tick() noexcept;
  /// `from_tick`: the tick re-posts itself; it hops through the inner executor first so
  /// the io_context polls timers and sockets before the next tick (a direct re-post runs
  /// ahead of them and doubles the latency of I/O that became ready during the tick).
  void schedule_tick(bool from_tick = false);
  /// A slice's tick starts: arms the preemption timer, returns the start time.
  std::chrono::steady_clock::time_point begin_slice() noexcept;
  void end_slice() noexcept;
  /// When a tick's units stop: the slice's deadline or the termination predicate.
  class tick_end;
  /// A tick's units in join order, one per turn: a lone task runs batches, and runs of
  /// tasks of one type in place take their turns in their own code (in_place_walk.hpp).
  void run_round_robin(tick_end& end) noexcept;
  /// With shares other than the default, or fairness by time: turns of several units (or
  /// of a time budget), each task's credit carried from turn to turn.
  void run_weighted_turns(tick_end& end) noexcept;
  /// Whether this tick weighs turns: fairness by time, or some task's shares not 100.
  bool weighted() const noexcept {
    return by_time_ || weighted_tasks_ != 0;
  }
  /// A weighted turn of `t` begins: it earns its budget. False when it still cannot run
  /// a unit (it overran earlier turns, or its shares are below one unit per turn).
  bool begin_turn(task_base& t) noexcept;
  /// Whether `t` may run another unit in its turn.
  bool has_credit(const task_base& t) const noexcept { return t.credit_ >= (by_time_ ? 1 : unit_cost); }
  /// Charges `t`'s turn for units that cost `cost` (credit units or nanoseconds). A debt
  /// is kept down to about a second (a unit that ran longer is charged as if it had not).
  static void charge(task_base& t, std::int64_t cost) noexcept {
    t.credit_ = static_cast<std::int32_t>(std::max<std::int64_t>(std::int64_t{t.credit_} - cost, -(std::int64_t{1} << 30)));
  }
  /// At a unit boundary with interrupt_ raised, after a unit or batch of `t`; `ran` is
  /// `t` while it is still active. True ends the tick.
  bool interrupted(task_base& t, task_base*& ran) noexcept;
  void after_unit(task_base& t, run_outcome outcome) noexcept;
  /// At a unit boundary with interrupt_ raised: true ends the tick.
  bool handle_interrupt() noexcept;
  void note_change() noexcept;
  void adapt_check_interval(std::chrono::nanoseconds elapsed, std::uint32_t units) noexcept;
  void stop_locked() noexcept;
  /// Completes (posts) `w`, or keeps it for retry() when out of memory.
  void deliver(waiter_base& w, std::exception_ptr result) noexcept;
  void retry_needed() noexcept;
  waiter_base* take_batch() noexcept;
  void retry() noexcept;
  void try_schedule_tick() noexcept;
  static std::exception_ptr result_of(const task_base& t) noexcept;
  static executor_type detached_strand() noexcept;
  void register_with_context(const asio::any_io_executor& ex);
  /// Leaves the context's list of cores (destruction, or a constructor that failed).
  void leave_context() noexcept;

  static constexpr std::uint32_t changed_bit = 1;  // the lists changed inside a unit
  static constexpr std::uint32_t inbox_bit = 2;    // requests wait in the inbox
  static constexpr std::uint32_t preempt_bit = 4;  // the slice has run out
  static constexpr std::uint32_t stop_bit = 8;     // stop() waits for the tick to end
  static constexpr std::uint32_t probe_bit = 16;   // the stall detector asks for a clock read

  // Written only under the lock and strand_mutex_ both; read under either.
  std::optional<executor_type> strand_;
  mutable std::mutex strand_mutex_;
  // The strand's inner executor, untracked; never changed. Read only while context_gone_
  // is false, which context_shutdown() sets before the strand goes.
  const asio::any_io_executor inner_;
  std::atomic<bool> context_gone_{false};
  context_service* service_ = nullptr;  // the context's list of cores; null once it shut down
  std::chrono::nanoseconds slice_;
  const bool by_time_;  // fairness::time
  const bool yield_cpu_;  // cooperator_options::yield_cpu
  // A unit's cost in credit with fairness::units: a turn earns the task's shares, so at
  // 100 shares it runs one unit.
  static constexpr std::int32_t unit_cost = 100;
  // The time a turn earns with fairness::time, per 100 shares: long enough that a turn's
  // clock reads (one per batch of units, the batches doubling) cost trivial units under
  // 1%, short enough that tasks take turns many times per slice of a millisecond.
  static constexpr std::int32_t time_turn_ns = 100'000;
  // Units at least this long (in ns) are followed by a clock read each.
  static constexpr std::uint64_t exact_busy_unit_ns = 1000;
  std::function<std::function<bool()>()> termination_;
  std::function<void(const stall_report&)> on_stall_;  // the stall detector's, or empty
  core_mutex mutex_;
  std::atomic<std::uint32_t> interrupt_{0};
  std::atomic<bool> running_;
  // The task whose unit (or batch) the runner has decided to run: published before it
  // reads the task's control word, so a pause()/stop() from another thread either is
  // seen by that read or sees this and waits for the unit to end (Dekker).
  std::atomic<task_base*> running_task_{nullptr};
  // Odd from the start of a tick's units to their end: a foreign pause()/stop() that
  // reads an even value has nothing to wait for.
  std::atomic<std::uint32_t> units_epoch_{0};
  const bool asymmetric_fences_ = asymmetric_fences_available();
  std::mutex inbox_mutex_;
  std::atomic<std::uint64_t> next_waiter_id_{1};
  std::atomic<std::uint32_t> admissions_answered_{0};  // what admit_from_outside() waits on
  std::vector<inbox_item> inbox_;
  bool stopped_ = false;
  bool shutting_down_ = false;
  bool tick_posted_ = false;
  bool in_tick_ = false;
  bool running_task_finished_ = false;     // the running unit's task finished during the unit
  // The task whose unit has just ended, while the requests left during that unit are
  // applied: a resume from another thread during its unit sends it behind the others.
  // The tick's loops keep it in a local (`ran`, in a register on the hot path) and set
  // it here only where requests are applied between units: interrupted(), the
  // termination predicate (tick_end::check) and after the last unit. running_task_ is
  // the other side: the task whose unit runs now, for threads that pause or stop it.
  task_base* unit_just_ended_ = nullptr;
  round_robin policy_;                // the runnable tasks, and whose turn is next
  run_ring parked_;                   // paused or waiting on an operation
  admission_queue queued_;            // waiting for admission (max_active_), oldest first
  const std::size_t max_active_;      // 0: no limit
  /// Unfinished tasks not queued (they count against max_active_).
  std::size_t admitted() const noexcept { return task_count_ - queued_.size(); }
  std::size_t task_count_ = 0;        // tasks added and not yet retired
  std::uint32_t tasks_added_ = 0;     // numbers the tasks: the N of "task-N"
  std::shared_ptr<std::atomic<std::uint32_t>> shared_numbers_;  // a pool's count instead
  std::shared_ptr<admission_budget> budget_;  // a pool's max_active instead of max_active_
  std::shared_ptr<const pool_links> pool_;    // a pool's members, when this core is one
  std::uint16_t member_index_ = 0;            // which one
  // Tasks moved in and out (stats); written under the lock, relaxed load and store.
  std::atomic<std::uint64_t> moved_in_{0};
  std::atomic<std::uint64_t> moved_out_{0};
  // Unfinished tasks whose shares are not the default: while there are none, units mode
  // is exactly round-robin and the tick takes its fast path. Kept under the lock
  // (recount_shares()), so retiring a task costs no atomic read-modify-write.
  std::size_t weighted_tasks_ = 0;
  std::uint32_t check_interval_ = 1;  // units between clock reads, adapted per tick
  std::chrono::nanoseconds check_period_;
  preemption_timer::entry timer_entry_;
  // What could not be posted for lack of memory, posted again by retry().
  waiter_base* undelivered_ = nullptr;
  // Completions delivered from the strand, run by one posted handler (completion_batch.cpp);
  // a batch is non-empty exactly while its handler is queued.
  waiter_base* batch_head_ = nullptr;
  waiter_base* batch_tail_ = nullptr;
  bool tick_lost_ = false;
  int hops_ = 1;  // posts on the inner executor before a re-posted tick enters the strand
  std::atomic<bool> needs_retry_{false};

  // Stats. The meter turns the tick's clock reads into busy time (busy_meter.hpp); the
  // rest are written by the lock holder (add_relaxed) and read by stats() from any thread.
  busy_meter meter_;
  std::chrono::steady_clock::time_point last_stamp_{};  // wait_clock() outside a tick
  std::size_t waiting_parked_ = 0;   // parked tasks counted as waiting (counted_waiting_)
  std::atomic<std::uint64_t> ticks_{0};
  std::atomic<std::uint64_t> units_run_{0};
  std::atomic<std::uint64_t> busy_ns_{0};
  std::atomic<std::uint64_t> finished_{0};
  std::atomic<std::uint64_t> stalls_{0};
  std::atomic<std::size_t> runnable_count_{0};
  std::atomic<std::size_t> paused_count_{0};
  std::atomic<std::size_t> waiting_count_{0};
  std::atomic<std::size_t> queued_count_{0};
};

}  // namespace coop::detail
