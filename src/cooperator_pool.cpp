// SPDX-License-Identifier: BSL-1.0
// A cooperator pool's members: made with the pool's options and one numbering of tasks,
// and the placement of a new task on the member with the fewest unfinished tasks.
#include <coop/cooperator_pool.hpp>

#include "core/core_lock.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace coop::detail {

pool_members::pool_members(const asio::any_io_executor& ex, std::size_t size, cooperator_options options)
    : executor_(ex) {
  if (size == 0) throw std::invalid_argument("coop: a cooperator_pool needs at least one member");
  if (size > std::numeric_limits<std::uint16_t>::max())
    throw std::invalid_argument("coop: a cooperator_pool has at most 65535 members");
  auto numbers = std::make_shared<std::atomic<std::uint32_t>>(0);
  // max_active is the pool's as a whole: the members share one budget of places and one
  // queue, instead of a limit each.
  std::shared_ptr<admission_budget> budget;
  if (options.max_active != 0) budget = std::make_shared<admission_budget>(options.max_active);
  options.max_active = 0;
  members_.reserve(size);
  for (std::size_t i = 0; i < size; ++i) {
    entry e;
    e.coop = std::make_unique<cooperator>(ex, options);
    core_impl& core = static_cast<core_impl&>(*e.coop->core_);
    core.number_tasks_from(numbers);
    if (budget) core.admit_by(budget);
    members_.push_back(std::move(e));
  }
  // Each member's core knows the others, to give them tasks and to find a moved task.
  auto links = std::make_shared<pool_links>();
  for (entry& e : members_) links->cores.push_back(std::static_pointer_cast<core_impl>(e.coop->core_));
  for (std::size_t i = 0; i < members_.size(); ++i)
    static_cast<core_impl&>(*members_[i].coop->core_).join_pool(links, static_cast<std::uint16_t>(i));
}

pool_members::~pool_members() = default;

std::size_t pool_members::place() noexcept {
  // From inside a member's unit (or anything else run under its lock), the task joins that
  // member: adding there never waits, while adding to another member whose tick runs waits
  // for its unit boundary, and two units adding to each other's members would wait for
  // each other for ever.
  for (std::size_t i = 0; i < members_.size(); ++i) {
    if (this_thread_holds(static_cast<const core_impl*>(members_[i].coop->core_.get()))) {
      members_[i].placed->fetch_add(1, std::memory_order_relaxed);
      return i;
    }
  }
  if (const std::size_t pinned = pinned_.load(std::memory_order_relaxed); pinned < members_.size()) {
    members_[pinned].placed->fetch_add(1, std::memory_order_relaxed);
    return pinned;
  }
  // Unfinished = placed + moved in - moved out - finished: each count is current without
  // the member's lock (its stats' counts by placement are published only as its ticks
  // end). Ties go to the lowest index, so an idle pool deals tasks out in turn.
  std::size_t best = 0;
  std::int64_t fewest = std::numeric_limits<std::int64_t>::max();
  for (std::size_t i = 0; i < members_.size(); ++i) {
    const auto& core = static_cast<const core_impl&>(*members_[i].coop->core_);
    const auto placed = static_cast<std::int64_t>(members_[i].placed->load(std::memory_order_relaxed));
    const auto finished = static_cast<std::int64_t>(members_[i].coop->stats().finished);
    const std::int64_t unfinished = std::max<std::int64_t>(0, placed + core.moved_net() - finished);
    if (unfinished < fewest) {
      fewest = unfinished;
      best = i;
    }
  }
  members_[best].placed->fetch_add(1, std::memory_order_relaxed);
  return best;
}

void pool_members::unplace(std::size_t i) noexcept { members_[i].placed->fetch_sub(1, std::memory_order_relaxed); }

void pool_members::start() {
  for (entry& e : members_) e.coop->start();
}

void pool_members::stop() noexcept {
  for (entry& e : members_) e.coop->stop();
}

cooperator_stats pool_members::stats() const noexcept {
  cooperator_stats sum;
  for (const entry& e : members_) {
    const cooperator_stats s = e.coop->stats();
    sum.ticks += s.ticks;
    sum.units += s.units;
    sum.queued += s.queued;
    sum.runnable += s.runnable;
    sum.paused += s.paused;
    sum.waiting += s.waiting;
    sum.finished += s.finished;
    sum.busy += s.busy;
    sum.stalls += s.stalls;
    sum.moved_in += s.moved_in;
    sum.moved_out += s.moved_out;
  }
  return sum;
}

}  // namespace coop::detail
