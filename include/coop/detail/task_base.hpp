// SPDX-License-Identifier: BSL-1.0
// The state every task shares, whatever its work: its place in its cooperator's lists, the
// pause count, how it finished and the parked when_done waiters. Guarded by the
// cooperator core's lock; reference counted because handles outlive everything.
//
// Kept small (48 bytes on LP64; the cold part, task_extra, follows the work): the tick
// walks every runnable task in turn, so with many tasks a unit costs about as much as
// reading its task's memory. The cooperator is not
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

/// A task's shares and whether it has finished, in one atomic word, so that set_shares()
/// from any thread and the task's retirement agree on which tasks have shares other than
/// the default (the cooperator keeps their count; see core_impl::weighted_tasks_).
namespace shares_word {
inline constexpr std::uint32_t standard = 100;       // Twisted's one unit per turn
inline constexpr std::uint32_t finished = 1u << 16;  // set_shares() does nothing from here on
inline constexpr std::uint32_t mask = finished - 1;
}  // namespace shares_word

/// What a task's run() reports: how many units it ran and whether the last one ended it.
enum class run_outcome : unsigned char { more, done, failed };
struct run_result {
  std::uint32_t units;
  run_outcome outcome;
};

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
  /// core's lock, after unlinking. Returns false when posting failed for lack of memory:
  /// the op is untouched and the caller keeps it (result in result_) to try again.
  virtual bool complete(std::exception_ptr result) noexcept = 0;
  std::exception_ptr result_;  // kept while a completion waits to be posted again
  /// Destroys the op without invoking it (execution context shutting down).
  virtual void destroy() noexcept = 0;

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

/// A task's cold state: each task type keeps it after its work, so that with many tasks
/// the memory a round-robin unit touches (the task's first bytes and its work) stays
/// together. Guarded by the core's lock, except `name` and `number`, which are set before
/// the task is added and never change.
struct task_extra {
  // With some task's shares not the default, or fairness by time: the turn this task has
  // left (units x 100, or nanoseconds). Negative: it overran its turns and skips turns
  // until back in credit.
  std::int64_t credit = 0;
  std::uint32_t number = 0;                 // the N of "task-N", in the order tasks were added
  std::unique_ptr<const std::string> name;  // set by task_options; null: "task-N"
};

class task_base {
public:
  task_base(const task_base&) = delete;
  task_base& operator=(const task_base&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  /// Runs up to `max_units` units, fewer when `interrupt` becomes non-zero, the task is
  /// paused or finished (control_), or it starts waiting on an operation. Never throws:
  /// a throwing unit is reported as failed with the exception stored in failure_.
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

  /// State and pause count (see namespace control); any thread.
  std::atomic<std::uint32_t> control_{0};

private:
  std::atomic<std::uint32_t> refs_{1};  // here: fills the word next to control_

public:
  // All below guarded by the core's lock.
  waiter_base* waiters_ = nullptr;
  std::exception_ptr failure_;              // what a failed task failed with (set before
                                            // control_ says failed)
  std::uint32_t await_generation_ = 0;       // which awaited operation is pending
  std::uint32_t slot_ = 0;                  // index in the runnable or the parked ring
  // Atomic only so that a handle's state() may read them from any thread; written under
  // the lock, and never on the path of a unit.
  std::atomic<task_place> place_{task_place::none};
  bool retired_ = false;                    // finished and gone from the cooperator
  std::atomic<bool> awaiting_{false};        // coroutine work: waiting on an operation
  // Set when the task joins the run order; a weighted turn then drops the credit it
  // had (time away from the run order earns nothing). Here, not in task_extra: joining
  // must not touch the task's cold memory.
  bool rejoined_ = true;
  /// Shares and the finished bit (namespace shares_word); any thread.
  std::atomic<std::uint32_t> shares_{shares_word::standard};

  /// What the round-robin tick never reads, kept after the work (see task_extra).
  virtual task_extra& extra() noexcept = 0;
  const task_extra& extra() const noexcept { return const_cast<task_base*>(this)->extra(); }

protected:
  task_base() = default;
  virtual ~task_base() = default;
};

static_assert(sizeof(void*) != 8 || sizeof(task_base) <= 48, "task_base grew: every unit reads it");

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
