// SPDX-License-Identifier: BSL-1.0
// The members of a cooperator_pool and the count of tasks placed on each. Shared with the
// pool's coiterate operations, so one launched after the pool is gone (a deferred token)
// still finds its (stopped) members, as a cooperator's operations keep its core.
#pragma once

#include <coop/cooperator.hpp>
#include <coop/cooperator_options.hpp>
#include <coop/stats.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace coop::detail {

namespace asio = boost::asio;

class pool_members {
public:
  /// Throws std::invalid_argument for `size` 0.
  pool_members(const asio::any_io_executor& ex, std::size_t size, cooperator_options options);
  pool_members(const pool_members&) = delete;
  pool_members& operator=(const pool_members&) = delete;
  ~pool_members();

  std::size_t size() const noexcept { return members_.size(); }
  /// The executor the members' strands are made on.
  const asio::any_io_executor& executor() const noexcept { return executor_; }
  cooperator& member(std::size_t i) noexcept { return *members_[i].coop; }
  const cooperator& member(std::size_t i) const noexcept { return *members_[i].coop; }

  /// Adds a task through `add(cooperator&)` on the member with the fewest unfinished
  /// tasks; the member is counted before `add` runs, so concurrent callers spread out.
  template <class Add> decltype(auto) add(Add&& add) {
    const std::size_t i = place();
    try {
      return std::forward<Add>(add)(member(i));
    } catch (...) {
      unplace(i);  // nothing was added
      throw;
    }
  }

  void start();
  void stop() noexcept;
  cooperator_stats stats() const noexcept;

  /// From now on, every task added from outside the members' units joins `member`: the
  /// others get tasks only by taking them. For tests that must see tasks move; `size()`
  /// (out of range) goes back to placement by load.
  void place_all_on(std::size_t member) noexcept { pinned_.store(member, std::memory_order_relaxed); }

private:
  std::size_t place() noexcept;
  void unplace(std::size_t i) noexcept;

  struct entry {
    std::unique_ptr<cooperator> coop;
    // Tasks ever placed on this member; less the member's finished count, its
    // unfinished tasks, without the member's lock and without waiting for a tick.
    std::unique_ptr<std::atomic<std::uint64_t>> placed = std::make_unique<std::atomic<std::uint64_t>>(0);
  };
  asio::any_io_executor executor_;
  std::vector<entry> members_;
  std::atomic<std::size_t> pinned_{static_cast<std::size_t>(-1)};
};

}  // namespace coop::detail
