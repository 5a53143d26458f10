// A task whose work is a callable returning coop::step.
#pragma once

#include <coop/detail/in_place_walk.hpp>
#include <coop/detail/task_base.hpp>
#include <coop/step.hpp>

#include <functional>
#include <optional>
#include <utility>

namespace coop::detail {

template <class Work>
class callable_task final : public task_base {
public:
  template <class W>
  explicit callable_task(W&& work) : work_(std::in_place, std::forward<W>(work)) {}

  run_result run(std::uint32_t max_units, const std::atomic<std::uint32_t>& interrupt) noexcept override {
    std::uint32_t units = 0;
    try {
      Work& work = *work_;
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
      return std::invoke(*work_) == step::done ? run_outcome::done : run_outcome::more;
    } catch (...) {
      failure_ = std::current_exception();
      return run_outcome::failed;
    }
  }

  run_outcome run_turns(in_place_walk& w) noexcept override { return walk_same_type(*this, w); }

  void destroy_work() noexcept override { work_.reset(); }

private:
  std::optional<Work> work_;
};

}  // namespace coop::detail
