// SPDX-License-Identifier: BSL-1.0
// The execution context's side (context_service.hpp): the service that keeps the
// context's cores and its default cooperator, and the detached strand a core uses once
// its context is gone.
#include "context_service.hpp"
#include "core_lock.hpp"

#include <coop/detail/drop_guard.hpp>

#include "../executor_context.hpp"
#include "../process_locks.hpp"

#include <boost/asio/execution.hpp>
#include <boost/asio/execution_context.hpp>

#include <memory>
#include <vector>

namespace coop::detail {

context_service& context_service::of(const asio::any_io_executor& ex) {
  return asio::use_service<context_service>(context_of(ex));
}

void context_service::add(core_impl& core) {
  std::lock_guard l(registries_mutex());
  cores_.push_back(&core);
  core.service_ = this;
}

void context_service::remove_locked(core_impl& core) noexcept {
  std::erase(cores_, &core);
  core.service_ = nullptr;
}

cooperator& context_service::default_cooperator(const asio::any_io_executor& ex) {
  {
    std::lock_guard lock(default_cooperators_mutex());
    if (default_) return *default_;
  }
  // Made outside the mutex: a cooperator's constructor takes registries_mutex(), and
  // fork() takes the two in one order only (process_locks.hpp). The context alone
  // cannot name an executor; the first caller's executor does. A cooperator that lost
  // the race to another thread is dropped (after the unlock), never having had a task.
  auto made = std::make_unique<cooperator>(ex);
  std::lock_guard lock(default_cooperators_mutex());
  if (!default_) default_ = std::move(made);
  return *default_;
}

void context_service::shutdown() {
  // Every core, the default cooperator's among them, finishes its tasks and lets go of
  // its strand. The default cooperator object itself lives on with the service: work
  // destructors run below may still ask for it (they get it, stopped).
  std::vector<std::shared_ptr<core_impl>> alive;
  {
    std::lock_guard l(registries_mutex());
    for (core_impl* core : cores_) {
      core->service_ = nullptr;
      if (auto p = core->weak_from_this().lock()) alive.push_back(std::move(p));
    }
    cores_.clear();
  }
  // Outside the mutex: stopping runs work destructors, which may make cooperators.
  for (auto& core : alive) core->context_shutdown();
}

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

void core_impl::register_with_context(const asio::any_io_executor& ex) { context_service::of(ex).add(*this); }

void core_impl::leave_context() noexcept {
  std::lock_guard l(registries_mutex());
  if (service_) service_->remove_locked(*this);  // null: the context has shut down
}

void core_impl::context_shutdown() noexcept {
  {
    lock l(*this);
    // As stop(), but parked waiters are destroyed instead of invoked: the context would
    // destroy them anyway.
    shutting_down_ = true;
    stop_locked();
    // Waits begun from now on complete through their handlers' own executors (use_future,
    // a live executor); one bound to the gone strand is destroyed by that strand.
    shutting_down_ = false;
  }
  lock l(*this);
  context_gone_.store(true, std::memory_order_release);  // no new wait takes work on it
  std::optional<executor_type> gone;
  {
    std::lock_guard sl(strand_mutex_);
    gone.swap(strand_);
  }
  // `gone` dies here, while the strand's service still exists.
}

}  // namespace coop::detail
