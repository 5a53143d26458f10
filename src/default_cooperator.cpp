// SPDX-License-Identifier: BSL-1.0
#include <coop/default_cooperator.hpp>

#include <boost/asio/execution.hpp>
#include <boost/asio/query.hpp>

#include <mutex>
#include <optional>

namespace coop {
namespace {

class default_cooperator_service : public asio::execution_context::service {
public:
  using key_type = default_cooperator_service;
  static inline asio::execution_context::id id;

  explicit default_cooperator_service(asio::execution_context& ctx) : service(ctx) {}

  cooperator& get(const asio::any_io_executor& ex) {
    std::lock_guard lock(mutex_);
    // The context alone cannot name an executor; the first caller's executor does.
    if (!cooperator_) cooperator_.emplace(ex);
    return *cooperator_;
  }

private:
  void shutdown() override {
    cooperator* c = nullptr;
    {
      std::lock_guard lock(mutex_);
      if (cooperator_) c = &*cooperator_;
    }
    // Without the mutex: stopping runs work destructors, which may call
    // default_cooperator() on this context (they get this cooperator, now stopped).
    if (c) c->shutdown_with_context();
  }

  std::mutex mutex_;  // guards the creation of cooperator_, which then lives as long as us
  std::optional<cooperator> cooperator_;
};

}  // namespace

cooperator& default_cooperator(const asio::any_io_executor& ex) {
  auto& ctx = asio::query(ex, asio::execution::context);
  return asio::use_service<default_cooperator_service>(ctx).get(ex);
}

}  // namespace coop
