// SPDX-License-Identifier: BSL-1.0
#include <coop/default_cooperator.hpp>

#include <boost/asio/execution.hpp>
#include <boost/asio/query.hpp>

#include <memory>
#include <mutex>

#include "executor_context.hpp"
#include "process_locks.hpp"

namespace coop {
namespace {

class default_cooperator_service : public asio::execution_context::service {
public:
  using key_type = default_cooperator_service;
  static inline asio::execution_context::id id;

  explicit default_cooperator_service(asio::execution_context& ctx) : service(ctx) {}

  cooperator& get(const asio::any_io_executor& ex) {
    {
      std::lock_guard lock(detail::default_cooperators_mutex());
      if (cooperator_) return *cooperator_;
    }
    // Made outside the mutex: a cooperator's constructor takes registries_mutex(), and
    // fork() takes the two in one order only (process_locks.hpp). The context alone
    // cannot name an executor; the first caller's executor does. A cooperator that lost
    // the race to another thread is dropped (after the unlock), never having had a task.
    auto made = std::make_unique<cooperator>(ex);
    std::lock_guard lock(detail::default_cooperators_mutex());
    if (!cooperator_) cooperator_ = std::move(made);
    return *cooperator_;
  }

private:
  void shutdown() override {
    cooperator* c = nullptr;
    {
      std::lock_guard lock(detail::default_cooperators_mutex());
      c = cooperator_.get();
    }
    // Without the mutex: stopping runs work destructors, which may call
    // default_cooperator() on this context (they get this cooperator, now stopped).
    if (c) c->shutdown_with_context();
  }

  // Set once, under default_cooperators_mutex(); then lives as long as the service.
  std::unique_ptr<cooperator> cooperator_;
};

}  // namespace

cooperator& default_cooperator(const asio::any_io_executor& ex) {
  auto& ctx = detail::context_of(ex);
  return asio::use_service<default_cooperator_service>(ctx).get(ex);
}

}  // namespace coop
