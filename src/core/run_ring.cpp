// SPDX-License-Identifier: BSL-1.0
// The run queue (run_ring.hpp): appending, closing holes, and taking any task.
#include "run_ring.hpp"

namespace coop::detail {

void run_ring::push_back(task_base& t, bool join_round) noexcept {
  sync();
  if (!join_round && read_ == slots_.size()) {
    slots_.resize(write_);
    read_ = write_ = 0;
  }
  // Holes from removals: close them before they outgrow the reserved room.
  if (slots_.size() >= growth * live_ + 16) compact();
  t.slot_ = static_cast<std::uint32_t>(slots_.size());
  slots_.push_back(&t);  // within the capacity reserve() made: no allocation
  ++live_;
}

void run_ring::compact() noexcept {
  std::size_t w = 0;
  const auto keep = [&](std::size_t r) {
    if (task_base* t = slots_[r]) {
      slots_[w] = t;
      t->slot_ = static_cast<std::uint32_t>(w++);
    }
  };
  for (std::size_t r = 0; r < write_; ++r) keep(r);
  const std::size_t visited = w;
  for (std::size_t r = read_; r < slots_.size(); ++r) keep(r);
  slots_.resize(w);
  read_ = write_ = visited;
}

task_base* run_ring::any() noexcept {
  sync();
  if (read_ != write_) compact();
  while (!slots_.empty() && !slots_.back()) slots_.pop_back();
  read_ = write_ = std::min(read_, slots_.size());
  return slots_.empty() ? nullptr : slots_.back();
}

}  // namespace coop::detail
