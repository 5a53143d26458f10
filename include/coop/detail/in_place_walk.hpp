// SPDX-License-Identifier: BSL-1.0
// The tick's common case, walked in the task type's own code. While the tasks after the
// run ring's cursor are in place (no hole behind the cursor, so no task moves) and of one
// type, their units run in a loop compiled for that type: the unit is a direct call the
// compiler can inline, not a virtual call, and the walk's state stays in registers. With
// trivial units the instructions around a unit are what it costs, and a busy core (a
// sibling thread taking issue slots) pays for every one of them.
#pragma once

#include <coop/detail/task_base.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace coop::detail {

/// What the tick hands a task's run_turns(): the run order from the cursor on, where to
/// publish the running task and what to watch. The cursor is a slot pointer kept here,
/// not in the ring: the ring reads it back when a unit changes the ring (run_ring::sync),
/// so each turn moves the cursor with one store.
struct in_place_walk {
  task_base* const* next = nullptr;                       // the cursor: the next slot
  task_base* const* stop = nullptr;  // the round's end, or the slot where the clock is due
  task_base* const* fetch_end = nullptr;  // slots before it have a task to prefetch ahead
  std::atomic<task_base*>* running = nullptr;             // the running task (claim())
  const std::atomic<std::uint32_t>* interrupt = nullptr;  // non-zero ends the walk
  bool fences = false;                                    // asymmetric fences (claim())
  std::uint64_t rate = 0;  // what each unit is charged as busy time (busy_meter.hpp)
  // Results: whether the last task's claim was refused (then it has not run).
  bool refused = false;
  task_base* last = nullptr;                              // the last task visited
  // Kept by the ring: where the walk started, and the slots the cursor passed, counted
  // when the ring takes the cursor back (before its slots can move).
  task_base* const* first = nullptr;
  std::size_t passed = 0;
};

/// Publishes `t` as about to run, then reads its control word: true if it may run.
/// `Fences`: with asymmetric fences the other side pays for ordering (heavy_fence()), so
/// this side needs only a compiler barrier (Dekker with one cheap side).
template <bool Fences> bool claim(std::atomic<task_base*>& running, task_base& t) noexcept {
  if constexpr (Fences) {
    running.store(&t, std::memory_order_release);  // a plain store on x86
    std::atomic_signal_fence(std::memory_order_seq_cst);
    return t.control_.load(std::memory_order_relaxed) == 0;
  } else {
    running.store(&t, std::memory_order_seq_cst);
    return t.control_.load(std::memory_order_seq_cst) == 0;
  }
}

/// How far ahead the walk fetches tasks: enough to cover a miss to memory (~100 ns) with
/// units of a few ns.
inline constexpr std::size_t prefetch_distance = 32;

/// Fetches a task: what a unit touches is its vtable pointer and control word (the start
/// of the object) and the work that follows task_base.
inline void prefetch_task(const task_base* t) noexcept {
  const char* p = reinterpret_cast<const char*>(t);
  __builtin_prefetch(p);
  __builtin_prefetch(p + sizeof(task_base));
}

/// Fetches the task some turns ahead of the slot `next`, if there is one before `end`.
inline void prefetch_ahead(task_base* const* next, task_base* const* end) noexcept {
  if (end - next > static_cast<std::ptrdiff_t>(prefetch_distance)) prefetch_task(next[prefetch_distance]);
}

/// The end of the slots from which a task prefetch_distance slots ahead can be fetched.
inline task_base* const* fetch_end(task_base* const* next, task_base* const* end) noexcept {
  return end - next > static_cast<std::ptrdiff_t>(prefetch_distance) ? end - prefetch_distance : next;
}

/// The task's dynamic type in one load: its vtable pointer, which the Itanium and MSVC
/// ABIs keep at the start of an object like these (single inheritance, no virtual bases).
/// Only ever compared with another task's: equal keys mean the same final type (a type
/// whose vtable a library duplicated just gets unequal keys, and the walk hands over).
inline const void* type_key(const task_base& t) noexcept {
  const void* key;
  std::memcpy(&key, reinterpret_cast<const unsigned char*>(&t), sizeof key);
  return key;
}

/// Runs the turns of `first` (the task at the cursor) and of the tasks of type `Task` in
/// place after it, one unit each, until a unit does not end with `more`, a claim is
/// refused, `interrupt` is raised, the walk reaches `stop`, or the next slot is empty or
/// holds another type. Returns the last unit's outcome; one unit ran per slot the cursor
/// passed, but for a refused claim.
template <class Task, bool Fences> run_outcome walk_same_type(Task& first, in_place_walk& w) noexcept {
  // Locals, so that the loop keeps them in registers across the units' calls.
  std::atomic<task_base*>& running = *w.running;
  const std::atomic<std::uint32_t>& interrupt = *w.interrupt;
  task_base* const* const stop = w.stop;
  task_base* const* const fetch_end = w.fetch_end;
  const std::uint64_t rate = w.rate;
  const void* const type = type_key(first);
  task_base* const* next = w.next;  // first's slot
  Task* t = &first;
  run_outcome outcome;
  for (;;) {
    ++next;
    if (next < fetch_end) prefetch_task(next[prefetch_distance]);
    w.next = next;
    // No reset of `running` between units: the next claim replaces it before any other
    // code runs (release, so whoever sees it change sees the unit's effects).
    if (!claim<Fences>(running, *t)) [[unlikely]] {
      w.refused = true;
      outcome = run_outcome::more;
      break;
    }
    outcome = t->Task::run_one();  // qualified: a direct call
    t->count_units(1, rate);
    if (outcome != run_outcome::more || next == stop || interrupt.load(std::memory_order_acquire) != 0)
        [[unlikely]]
      break;
    task_base* u = *next;
    if (!u || type_key(*u) != type) break;
    t = static_cast<Task*>(u);
  }
  running.store(nullptr, std::memory_order_release);
  w.last = t;
  return outcome;
}

template <class Task> run_outcome walk_same_type(Task& first, in_place_walk& w) noexcept {
  return w.fences ? walk_same_type<Task, true>(first, w) : walk_same_type<Task, false>(first, w);
}

}  // namespace coop::detail
