// SPDX-License-Identifier: BSL-1.0
// The execution context's side: a service that stops the context's cores when it shuts
// down, while their strands' service still exists, and the detached strand a core uses
// once its context is gone.
#include "core_lock.hpp"

#include <coop/detail/drop_guard.hpp>

#include "../executor_context.hpp"
#include "../process_locks.hpp"

#include <boost/asio/execution.hpp>
#include <boost/asio/execution_context.hpp>

#include <memory>
#include <vector>

namespace coop::detail {

// registries_mutex() (process_locks.hpp) guards every registry's list and every core's
// registry_ pointer. Touched only when a core is made or destroyed and when a context
// shuts down.

// One per execution context with cooperators: when the context shuts down, its cores
// stop and release their strands while the strand service still exists.
class core_impl::registry : public asio::execution_context::service {
public:
  using key_type = registry;
  static inline asio::execution_context::id id;
  explicit registry(asio::execution_context& ctx) : service(ctx) {}

  void add(core_impl& core) {
    std::lock_guard l(registries_mutex());
    cores_.push_back(&core);
    core.registry_ = this;
  }
  /// Called with registries_mutex() held.
  void remove_locked(core_impl& core) noexcept {
    std::erase(cores_, &core);
    core.registry_ = nullptr;
  }

private:
  void shutdown() override {
    std::vector<std::shared_ptr<core_impl>> alive;
    {
      std::lock_guard l(registries_mutex());
      for (core_impl* core : cores_) {
        core->registry_ = nullptr;
        if (auto p = core->weak_from_this().lock()) alive.push_back(std::move(p));
      }
      cores_.clear();
    }
    // Outside the mutex: stopping runs work destructors, which may make cooperators.
    for (auto& core : alive) core->context_shutdown();
  }

  std::vector<core_impl*> cores_;
};

namespace {
// What a core's strand becomes once its context has shut down: a context, never
// destroyed, whose executor destroys what is submitted (Asio destroys handlers queued on
// a context that shuts down, and this is the same rule afterwards). Destroyed as by a
// shutdown, not as by a failed post: the poster must not keep it to send again.
class detached_context : public asio::execution_context {
public:
  struct executor {
    detached_context* ctx;
    asio::execution_context& query(asio::execution::context_t) const noexcept { return *ctx; }
    static constexpr asio::execution::blocking_t query(asio::execution::blocking_t) noexcept {
      return asio::execution::blocking.never;
    }
    executor require(asio::execution::blocking_t::never_t) const noexcept { return *this; }
    template <class F> void execute(F&& f) const noexcept { drop_guard::destroy_unrun(std::forward<F>(f)); }
    // The Networking TS executor requirements, for BOOST_ASIO_USE_TS_EXECUTOR_AS_DEFAULT.
    asio::execution_context& context() const noexcept { return *ctx; }
    void on_work_started() const noexcept {}
    void on_work_finished() const noexcept {}
    template <class F, class A> void dispatch(F&& f, const A&) const noexcept { drop_guard::destroy_unrun(std::forward<F>(f)); }
    template <class F, class A> void post(F&& f, const A&) const noexcept { drop_guard::destroy_unrun(std::forward<F>(f)); }
    template <class F, class A> void defer(F&& f, const A&) const noexcept { drop_guard::destroy_unrun(std::forward<F>(f)); }
    friend bool operator==(const executor&, const executor&) noexcept { return true; }
  };
};
}  // namespace

core_impl::executor_type core_impl::detached_strand() noexcept {
  static const executor_type* strand = [] {
    auto* ctx = new detached_context;  // never destroyed: strands on it may live until exit
    return new executor_type(asio::make_strand(asio::any_io_executor(detached_context::executor{ctx})));
  }();
  return *strand;
}

void core_impl::register_with_context(const asio::any_io_executor& ex) {
  asio::use_service<registry>(context_of(ex)).add(*this);
}

void core_impl::leave_context() noexcept {
  std::lock_guard l(registries_mutex());
  if (registry_) registry_->remove_locked(*this);  // null: the context has shut down
}

void core_impl::context_shutdown() noexcept {
  shutdown();
  lock l(*this);
  std::optional<executor_type> gone;
  {
    std::lock_guard sl(strand_mutex_);
    gone.swap(strand_);
  }
  // `gone` dies here, while the strand's service still exists.
}

}  // namespace coop::detail
