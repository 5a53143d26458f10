// SPDX-License-Identifier: BSL-1.0
// The interface the templates call (include/coop/detail/cooperator_core.hpp): each member
// forwards to the core's implementation.
#include "core_impl.hpp"

#include <memory>
#include <utility>

namespace coop::detail {

namespace {
core_impl& impl(cooperator_core& c) noexcept { return static_cast<core_impl&>(c); }
const core_impl& impl(const cooperator_core& c) noexcept { return static_cast<const core_impl&>(c); }
}  // namespace

std::shared_ptr<cooperator_core> make_cooperator_core(const asio::any_io_executor& ex, cooperator_options options) {
  return std::make_shared<core_impl>(ex, std::move(options));
}

cooperator_core::executor_type cooperator_core::get_executor() const noexcept { return impl(*this).get_executor(); }
const cooperator_core::executor_type* cooperator_core::locked_strand() const noexcept {
  return impl(*this).locked_strand();
}
const asio::any_io_executor* cooperator_core::context_executor() const noexcept {
  return impl(*this).context_executor();
}
bool cooperator_core::running() const noexcept { return impl(*this).running(); }
void cooperator_core::add(task_base& t) { impl(*this).add(t); }
void cooperator_core::start() { impl(*this).start(); }
void cooperator_core::stop() noexcept { impl(*this).stop(); }
boost::system::error_code cooperator_core::pause(task_base& t) noexcept { return impl(*this).pause(t); }
boost::system::error_code cooperator_core::resume(task_base& t) noexcept { return impl(*this).resume(t); }
boost::system::error_code cooperator_core::stop(task_base& t) noexcept { return impl(*this).stop(t); }
void cooperator_core::set_shares(task_base& t, unsigned shares) { impl(*this).set_shares(t, shares); }
void cooperator_core::when_done(task_base& t, waiter_base& w) noexcept { impl(*this).when_done(t, w); }
void cooperator_core::cancel_waiter(task_base& t, waiter_base& w) noexcept { impl(*this).cancel_waiter(t, w); }
void cooperator_core::cancel_task(task_base& t) noexcept { impl(*this).cancel_task(t); }
void cooperator_core::redeliver(waiter_base& w, std::exception_ptr result) noexcept {
  impl(*this).redeliver(w, std::move(result));
}
bool cooperator_core::batch_completion(waiter_base& w, std::exception_ptr& result) noexcept {
  return impl(*this).batch_completion(w, result);
}
std::uint32_t cooperator_core::begin_await(task_base& t) noexcept { return impl(*this).begin_await(t); }
void cooperator_core::undo_await(task_base& t) noexcept { impl(*this).undo_await(t); }
void cooperator_core::end_await(task_base& t, std::uint32_t generation, std::exception_ptr failure,
                               void (*deliver)(void*), void* arg) noexcept {
  impl(*this).end_await(t, generation, std::move(failure), deliver, arg);
}
void cooperator_core::await_abandoned(task_base& t, std::uint32_t generation) noexcept {
  impl(*this).await_abandoned(t, generation);
}
void cooperator_core::await_dropped(task_base& t, std::uint32_t generation) noexcept {
  impl(*this).await_dropped(t, generation);
}
bool cooperator_core::await_pending(const task_base& t, std::uint32_t generation) noexcept {
  return impl(*this).await_pending(t, generation);
}
cooperator_stats cooperator_core::stats() const noexcept { return impl(*this).stats(); }
std::optional<cooperator_core::executor_type> cooperator_core::live_strand() const noexcept {
  return impl(*this).live_strand();
}

}  // namespace coop::detail
