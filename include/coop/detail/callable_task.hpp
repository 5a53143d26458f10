// SPDX-License-Identifier: BSL-1.0
// A task whose work is a callable returning coop::step; with `KeepsWork` (returning(work))
// the work object outlives the task's end as its result (task_result.hpp).
#pragma once

#include <coop/detail/in_place_walk.hpp>
#include <coop/detail/task_base.hpp>
#include <coop/detail/task_result.hpp>
#include <coop/step.hpp>

#include <functional>
#include <optional>
#include <utility>

namespace coop::detail {

template <class Work, bool KeepsWork = false>
class callable_task final : public task_base {
public:
  template <class W>
  explicit callable_task(W&& work) {
    result_.value_.emplace(std::forward<W>(work));
  }

  run_result run(std::uint32_t max_units, const std::atomic<std::uint32_t>& interrupt) noexcept override {
    std::uint32_t units = 0;
    try {
      Work& work = *result_.value_;
      do {
        ++units;
        if (std::invoke(work) == step::done) return {units, run_outcome::done};
      } while (units < max_units && interrupt.load(std::memory_order_acquire) == 0 &&
               control_.load(std::memory_order_acquire) == 0);
      return {units, run_outcome::more};
    } catch (...) {
      failure_ = std::current_exception();
      return {units, run_outcome::failed};
    }
  }

  run_outcome run_one() noexcept override {
    try {
      return std::invoke(*result_.value_) == step::done ? run_outcome::done : run_outcome::more;
    } catch (...) {
      failure_ = std::current_exception();
      return run_outcome::failed;
    }
  }

  run_outcome run_turns(in_place_walk& w) noexcept override { return walk_same_type(*this, w); }

  /// With KeepsWork the work stays as the result: it is final now, the task has finished
  /// and its last unit has ended.
  void destroy_work() noexcept override {
    if constexpr (KeepsWork) result_.work_finished();
    else result_.value_.reset();
  }

  result_slot<Work>* result() noexcept requires KeepsWork { return &result_; }

  task_extra& extra() noexcept override { return extra_; }

private:
  struct plain_storage {
    explicit plain_storage(bool) noexcept {}
    std::optional<Work> value_;
  };
  // Where the work lives: the result slot's value, or a plain optional (same offset).
  std::conditional_t<KeepsWork, result_slot<Work>, plain_storage> result_{KeepsWork};
  task_extra extra_;  // after the work: see task_extra
};

}  // namespace coop::detail
