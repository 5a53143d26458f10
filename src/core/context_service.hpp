// SPDX-License-Identifier: BSL-1.0
// The one service coop keeps in an execution context: the context's cores, which it stops
// when the context shuts down (while their strands' service still exists, so each can let
// go of its strand), and the context's default cooperator.
#pragma once

#include <coop/cooperator.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>

#include <memory>
#include <vector>

namespace coop::detail {

class core_impl;

class context_service : public asio::execution_context::service {
public:
  using key_type = context_service;
  static inline asio::execution_context::id id;

  explicit context_service(asio::execution_context& ctx) : service(ctx) {}

  /// The service of `ex`'s execution context, made on first use.
  static context_service& of(const asio::any_io_executor& ex);

  /// A new core joins the list (its constructor).
  void add(core_impl& core);
  /// A core leaves the list (its destructor). Called with registries_mutex() held.
  void remove_locked(core_impl& core) noexcept;

  /// The context's default cooperator, made on first use on `ex`.
  cooperator& default_cooperator(const asio::any_io_executor& ex);

private:
  void shutdown() override;

  // Guarded by registries_mutex() (process_locks.hpp), as is every core's pointer to its
  // service: touched only when a core is made or destroyed and when the context shuts down.
  std::vector<core_impl*> cores_;
  // Set once, under default_cooperators_mutex(); then lives as long as the service.
  std::unique_ptr<cooperator> default_;
};

}  // namespace coop::detail
