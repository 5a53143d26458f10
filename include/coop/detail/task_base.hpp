// SPDX-License-Identifier: BSL-1.0
// The state every task shares, whatever its work: its place in its cooperator's lists, the
// pause count, how it finished and the parked when_done waiters. Guarded by the
// cooperator core's lock; reference counted because handles outlive everything.
//
// Kept small (72 bytes on LP64): the tick walks every runnable task in turn, so with many
// tasks a unit costs about as much as reading its task's memory (the first line of the
// task, and the work that follows). The cooperator is not
// referenced from here: handles, waiters and coroutine tasks (which need it) hold it.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <utility>

namespace coop::detail {

class cooperator_core;
struct in_place_walk;

enum class run_state : unsigned char { active, done, stopped, failed, scheduler_stopped };
enum class task_place : unsigned char { none, runnable, parked, queued };

/// A task's shares (task_options::shares).
namespace shares_word {
inline constexpr std::uint16_t standard = 100;  // Twisted's one unit per turn
}  // namespace shares_word

/// What a task's run() reports: how many units it ran and whether the last one ended it.
enum class run_outcome : unsigned char { more, done, failed };
struct run_result {
  std::uint32_t units;
  run_outcome outcome;
};

/// The exception of the unit that has just failed, on the thread that ran it: its task's
/// run() stores it, the tick takes it right after and hands it to retire(), which keeps it
/// in the task (task_base::failure_; the task's word for it holds the waiters until then).
std::exception_ptr& unit_failure() noexcept;

/// Adds to a counter that only one thread writes at a time (under a lock) and others
/// read: a load and a store, not a read-modify-write (a locked instruction on x86).
template <class T> void add_relaxed(std::atomic<T>& a, T n) noexcept {
  a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

/// A parked when_done operation (type-erased; see when_done_op.hpp).
class waiter_base {
public:
  waiter_base* next_ = nullptr;
  waiter_base* prev_ = nullptr;
  bool linked_ = false;
  /// Names this wait for the cooperator's whole life. A cancellation left in the inbox
  /// refers to the wait by address and id: the operation may have completed and been
  /// freed (its address reused) by the time the inbox is applied.
  std::uint64_t id_ = 0;
  /// Hands the result to the handler's executor (posted, never inline). Called under the
  /// lock of `by`, the core delivering it (in a pool, the member the task finished on),
  /// after unlinking. Returns false when posting failed for lack of memory: the op is
  /// untouched and the caller keeps it (result in result_) to try again.
  virtual bool complete(std::exception_ptr result, cooperator_core& by) noexcept = 0;
  std::exception_ptr result_;  // kept while a completion waits to be posted again
  /// Destroys the op without invoking it (execution context shutting down).
  virtual void destroy() noexcept = 0;
  /// Runs the handler with result_ (the op is freed first), from the batch of completions
  /// the delivering core runs on its strand. Throws what the handler throws.
  virtual void invoke() = 0;

protected:
  ~waiter_base() = default;
};

/// A task's state and pause count in one atomic word, changed by compare-and-swap from
/// any thread without the cooperator's lock: the state in the low bits, the count above.
/// 0 means active and not paused, the one value the runner lets run. The requeue bit: a
/// resume from another thread during a tick, not yet applied (the task must not run
/// where it was, it goes to the end of the order).
namespace control {
inline constexpr std::uint32_t state_mask = 7;
inline constexpr std::uint32_t requeue = 8;
inline constexpr std::uint32_t one_pause = 16;
inline run_state state(std::uint32_t c) noexcept { return static_cast<run_state>(c & state_mask); }
inline std::uint32_t pauses(std::uint32_t c) noexcept { return c / one_pause; }
inline std::uint32_t with_state(std::uint32_t c, run_state s) noexcept {
  return (c & ~state_mask) | static_cast<std::uint32_t>(s);
}
}  // namespace control

/// A named task's name and number (task_base::identity_ points to it).
struct task_name {
  std::uint32_t number = 0;
  std::string name;
};

class task_base {
public:
  task_base(const task_base&) = delete;
  task_base& operator=(const task_base&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  /// add_ref() for a task no other thread can reach yet (being added to its cooperator):
  /// a load and a store, not a locked read-modify-write (~7 ns of a task's lifecycle).
  void add_ref_unpublished() noexcept { add_relaxed(refs_, std::uint32_t{1}); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  /// How many references there are, a snapshot. A holder that knows all the others knows
  /// the count cannot grow: a new reference is only ever copied from an existing one.
  std::uint32_t references() const noexcept { return refs_.load(std::memory_order_relaxed); }

  /// Runs up to `max_units` units, fewer when `interrupt` becomes non-zero, the task is
  /// paused or finished (control_), or it starts waiting on an operation. Never throws:
  /// a throwing unit is reported as failed with the exception stored in unit_failure().
  virtual run_result run(std::uint32_t max_units, const std::atomic<std::uint32_t>& interrupt) noexcept = 0;
  /// Runs one unit (the round-robin case: one unit per task per turn).
  virtual run_outcome run_one() noexcept = 0;
  /// Runs the turns of this task (at the walk's cursor) and of the tasks of the same type
  /// in place after it, in this type's own code (in_place_walk.hpp).
  virtual run_outcome run_turns(in_place_walk& w) noexcept = 0;
  /// Destroys the user's work (callable or coroutine frame); idempotent.
  virtual void destroy_work() noexcept = 0;
  /// Coroutine work waiting on an operation: emit terminal cancellation to it.
  virtual void cancel_awaited() noexcept {}
  /// Coroutine work whose pending operation is gone without completing: no cancellation
  /// may reach it any more.
  virtual void forget_awaited() noexcept {}
  /// A cooperator pool moved the task (not running, not awaiting) to the member whose core
  /// is `core`; coroutine work reports its later awaits there.
  virtual void moved_to(const std::shared_ptr<cooperator_core>& core) noexcept { (void)core; }

  /// State and pause count (see namespace control); any thread.
  std::atomic<std::uint32_t> control_{0};

private:
  std::atomic<std::uint32_t> refs_{1};  // here: fills the word next to control_

public:
  // All below guarded by the core's lock, unless they say otherwise.
  // Until the task retires, its parked when_done waiters; from then on, what it failed
  // with (null unless it failed): retire() hands the waiters the result, and a wait that
  // begins later completes from failure_. One word for both: the tick's walk reads every
  // task in turn, and each 16 bytes a task carries cost a unit ~0.5 ns at 100,000 tasks.
  union {
    waiter_base* waiters_ = nullptr;
    std::exception_ptr failure_;
  };
  /// At retirement: the waiters to complete, taken out, and `failure` kept in their place.
  waiter_base* retire_waiters(std::exception_ptr failure) noexcept {
    waiter_base* w = waiters_;
    ::new (static_cast<void*>(&failure_)) std::exception_ptr(std::move(failure));
    return w;
  }
  std::uint32_t slot_ = 0;                  // index in the runnable or the parked ring
  // Read only while some task has shares other than the default, or with fairness by
  // time: the turn this task has left (units x 100, or nanoseconds). Negative: it
  // overran its turns and skips turns until back in credit.
  // While the task waits queued on a pool's admission budget (it takes no turns then), its
  // index in the budget's queue instead; admission makes credit_ the active member again.
  union {
    std::int32_t credit_ = 0;
    std::uint32_t budget_slot_;
  };
  // Atomic only so that a handle's state() may read them from any thread: written under
  // the lock, with relaxed stores (plain stores on x86; a seq_cst store is a locked
  // exchange, which a pause+resume would pay twice).
  std::atomic<task_place> place_{task_place::none};
  std::atomic<bool> awaiting_{false};        // coroutine work: waiting on an operation
  // One byte of flags, all written under the lock (or before the task is added).
  bool retired_ : 1 = false;                 // finished and gone from the cooperator
  // Set when the task joins the run order; its next weighted turn drops the credit it
  // had (time away from the run order earns nothing).
  bool rejoined_ : 1 = true;
  // Callable work: whether the work object is alive (callable_task.hpp keeps it in raw
  // storage: with a flag of its own, a 16-byte work would cost 8 more bytes per task).
  bool work_alive_ : 1 = false;
  // Counted in the core's weighted_tasks_ (unfinished, shares not the default).
  bool counted_weighted_ : 1 = false;
  // Counted in the core's waiting_parked_ (parked while its coroutine awaits an operation).
  bool counted_waiting_ : 1 = false;
  // Holds one of a pool's admission places (admission_budget, max_active across members).
  bool holds_place_ : 1 = false;
  /// Which member of a cooperator pool holds the task (0 outside a pool). Changed only by
  /// a move between members, which holds both members' locks; read by the task's handle
  /// to find the member to ask (task_moves.cpp).
  std::atomic<std::uint16_t> member_{0};
  /// Shares, 1..10000; stored by set_shares() from any thread, counted under the lock.
  std::atomic<std::uint16_t> shares_{shares_word::standard};

  // Stats (task_stats). Written only by the lock holder, with a relaxed load and store
  // (never a read-modify-write), read from any thread.
  std::atomic<std::uint64_t> units_{0};  // units run
  std::atomic<std::uint64_t> busy_{0};   // time in its units, in 1/256 ns (busy_scale)
  // Outside the run order: the time it waited, in ns, shifted left by one. In the run
  // order: (the time it joined, less what it had waited and been busy until then) << 1 | 1,
  // from which the time waited so far follows (stats.cpp).
  std::atomic<std::uint64_t> waited_{0};

  /// Counts a run of `n` units that cost `cost` (in 1/256 ns). The lock holder only.
  void count_units(std::uint32_t n, std::uint64_t cost) noexcept {
#ifndef COOP_DETAIL_NO_STATS
    add_relaxed(units_, std::uint64_t{n});
    add_relaxed(busy_, cost);
#else
    (void)n;
    (void)cost;
#endif
  }

  /// "task-N"'s N: set when the task is added, never changed after.
  std::uint32_t number() const noexcept {
    return identity_ & 1 ? static_cast<std::uint32_t>(identity_ >> 1) : named()->number;
  }
  /// The name task_options gave, or null. Set before the task is added, never changed after.
  const std::string* name() const noexcept { return identity_ & 1 ? nullptr : &named()->name; }
  /// Before the task is added.
  void set_name(std::string name) {
    if (name.empty()) return;
    identity_ = reinterpret_cast<std::uintptr_t>(new task_name{0, std::move(name)});
  }
  /// When the task is added.
  void set_number(std::uint32_t n) noexcept {
    if (identity_ & 1) identity_ = (std::uintptr_t{n} << 1) | 1;
    else named()->number = n;
  }

protected:
  task_base() noexcept {}  // user-provided: the union with failure_ has no default one
  virtual ~task_base() {
    if (retired_) failure_.~exception_ptr();
    if (!(identity_ & 1)) delete named();
  }

private:
  task_name* named() const noexcept { return reinterpret_cast<task_name*>(identity_); }
  // The number, shifted left and tagged with 1; or, for a named task, its task_name
  // (heap-allocated: most tasks have no name, and this keeps them 8 bytes smaller).
  std::uintptr_t identity_ = 1;
};

/// busy_ counts 1/256 ns: a trivial unit's share of an interval is a few ns, which whole
/// nanoseconds would round by a third.
inline constexpr std::uint64_t busy_scale = 256;

// A task's allocation is task_base and its work: 72 + a 16-byte work + malloc's 8 is 96.
static_assert(sizeof(void*) != 8 || sizeof(task_base) <= 72, "task_base grew: every unit reads it");

/// Owning pointer to a task (intrusive reference count).
class task_ptr {
public:
  task_ptr() noexcept = default;
  explicit task_ptr(task_base* p, bool add_ref = true) noexcept : p_(p) {
    if (p_ && add_ref) p_->add_ref();
  }
  task_ptr(const task_ptr& other) noexcept : task_ptr(other.p_) {}
  task_ptr(task_ptr&& other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
  task_ptr& operator=(task_ptr other) noexcept {
    std::swap(p_, other.p_);
    return *this;
  }
  ~task_ptr() {
    if (p_) p_->release();
  }
  task_base* get() const noexcept { return p_; }
  task_base* operator->() const noexcept { return p_; }
  task_base& operator*() const noexcept { return *p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  friend bool operator==(const task_ptr&, const task_ptr&) = default;

private:
  task_base* p_ = nullptr;
};

}  // namespace coop::detail
