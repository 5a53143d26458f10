// SPDX-License-Identifier: BSL-1.0
// A task whose work is a callable returning coop::step; with `KeepsWork` (returning(work))
// the work object outlives the task's end as its result (task_result.hpp).
#pragma once

#include <coop/detail/in_place_walk.hpp>
#include <coop/detail/task_arena.hpp>
#include <coop/detail/task_base.hpp>
#include <coop/detail/task_result.hpp>
#include <coop/step.hpp>

#include <functional>
#include <optional>
#include <utility>

namespace coop::detail {

// Comes from the task arena: packed with the thread's other tasks, apart from what else the
// program allocates.
template <class Work, bool KeepsWork = false>
class callable_task final : public task_base, public task_arena::arena_allocated<callable_task<Work, KeepsWork>> {
public:
  template <class W>
  explicit callable_task(W&& work) {
    result_.emplace(std::forward<W>(work));
    if constexpr (!KeepsWork) work_alive_ = true;
  }
  ~callable_task() override {
    if constexpr (!KeepsWork) destroy_work();  // a kept work dies with its result slot
  }

  run_result run(std::uint32_t max_units, const std::atomic<std::uint32_t>& interrupt) noexcept override {
    std::uint32_t units = 0;
    try {
      Work& work = work_ref();
      do {
        ++units;
        if (std::invoke(work) == step::done) return {units, run_outcome::done};
      } while (units < max_units && interrupt.load(std::memory_order_acquire) == 0 &&
               control_.load(std::memory_order_acquire) == 0);
      return {units, run_outcome::more};
    } catch (...) {
      unit_failure() = std::current_exception();
      return {units, run_outcome::failed};
    }
  }

  run_outcome run_one() noexcept override {
    try {
      return std::invoke(work_ref()) == step::done ? run_outcome::done : run_outcome::more;
    } catch (...) {
      unit_failure() = std::current_exception();
      return run_outcome::failed;
    }
  }

  run_outcome run_turns(in_place_walk& w) noexcept override { return walk_same_type(*this, w); }

  /// With KeepsWork the work stays as the result: it is final now, the task has finished
  /// and its last unit has ended.
  void destroy_work() noexcept override {
    if constexpr (KeepsWork) {
      result_.work_finished();
    } else if (work_alive_) {
      work_alive_ = false;
      result_.work.~Work();
    }
  }

  result_slot<Work>* result() noexcept requires KeepsWork { return &result_; }

private:
  Work& work_ref() noexcept {
    if constexpr (KeepsWork) return *result_.value_;
    else return result_.work;
  }
  // The work without an engaged flag of its own (task_base::work_alive_ says).
  struct plain_storage {
    explicit plain_storage(bool) noexcept {}
    ~plain_storage() {}  // callable_task destroys the work
    template <class W> void emplace(W&& w) { ::new (static_cast<void*>(&work)) Work(std::forward<W>(w)); }
    union {
      Work work;
    };
  };
  struct keeping_storage : result_slot<Work> {
    explicit keeping_storage(bool keeps) noexcept : result_slot<Work>(keeps) {}
    template <class W> void emplace(W&& w) { this->value_.emplace(std::forward<W>(w)); }
  };
  // Where the work lives: the result slot's value (returning(work)), or raw storage.
  std::conditional_t<KeepsWork, keeping_storage, plain_storage> result_{KeepsWork};
};

}  // namespace coop::detail
