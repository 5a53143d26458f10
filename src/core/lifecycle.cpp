// SPDX-License-Identifier: BSL-1.0
// A cooperator's life: making its core, admitting tasks (from any thread, with
// std::bad_alloc and nothing changed when out of memory), start() and stop().
#include "core_lock.hpp"

#include "../executor_context.hpp"
#include "../stall_capture.hpp"

#include <boost/asio/detail/scheduler.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/prefer.hpp>

#include <algorithm>

namespace coop::detail {

namespace {
// Whether `ex` runs handlers on Asio's own scheduler (io_context, thread_pool), whose
// reactor queues ready I/O behind the handlers already queued. Asks for the execution
// context, so executors that wrap one (tracing, binding) count too.
bool on_asio_scheduler(const asio::any_io_executor& ex) noexcept {
  // Both register their scheduler as a service of the context.
  return asio::has_service<asio::detail::scheduler>(context_of(ex));
}

// With nothing runnable the cooperator holds no work on the executor. A Networking TS
// executor (BOOST_ASIO_USE_TS_EXECUTOR_AS_DEFAULT) counts work only when told to.
asio::any_io_executor untracked(const asio::any_io_executor& ex) {
#if defined(BOOST_ASIO_USE_TS_EXECUTOR_AS_DEFAULT)
  return ex;
#else
  return asio::prefer(ex, asio::execution::outstanding_work.untracked);
#endif
}
}  // namespace

core_impl::core_impl(const asio::any_io_executor& ex, cooperator_options options)
    : strand_(asio::make_strand(untracked(ex))),
      inner_(strand_->get_inner_executor()),
      slice_(options.slice),
      by_time_(options.fairness == fairness::time),
      yield_cpu_(options.yield_cpu),
      termination_(std::move(options.termination)),
      on_stall_(std::move(options.on_stall)),
      running_(options.started),
      max_active_(options.max_active),
      // A clock read every ~5 us (less for tiny slices) bounds a tick's overshoot; one read
      // (~25 ns) per 5 us costs trivial units 0.5%, and at 20 us ticks ran ~15 us longer.
      check_period_(std::clamp<std::chrono::nanoseconds>(options.slice / 8, std::chrono::nanoseconds(0),
                                                         std::chrono::microseconds(5))) {
  register_with_context(ex);
  hops_ = on_asio_scheduler(ex) ? 2 : 1;
  timer_entry_.core = this;
  timer_entry_.slice_ns = slice_.count();
  meter_.publish_to(timer_entry_.boundary_ns);
  if (options.stall_threshold.count() > 0) {
    stall_capture::install();  // now, not from the watchdog's first report
    timer_entry_.stall_ns = options.stall_threshold.count();
  }
  try {
    preemption_timer::add(timer_entry_);
  } catch (...) {
    leave_context();
    throw;
  }
}

core_impl::~core_impl() {
  preemption_timer::remove(timer_entry_);
  leave_context();
}

void core_impl::add(task_base& t) {
  t.member_.store(member_index_, std::memory_order_relaxed);  // before anyone can see it
  std::optional<lock> l;
  if (this_thread_holds(this)) l.emplace(*this);
  else if (mutex_.try_lock()) l.emplace(*this, std::adopt_lock);
  t.add_ref_unpublished();  // the cooperator's reference; the caller holds the only other
  if (!l) {
    admit_from_outside(t);  // a tick holds the lock: it admits the task, or refuses it
    return;
  }
  try {
    // What can throw comes first: if it does, nothing was added.
    reserve_room();
    if (!stopped_ && running_.load(std::memory_order_relaxed) && !in_tick_) schedule_tick();
  } catch (...) {
    t.release();
    throw;
  }
  update_placement(t);
}

void core_impl::reserve_room() {
  // The parked ring first: it is never walked, so if the second reserve throws, the run
  // ring (whose cursor a tick's walk in place may hold) is untouched. A run ring that
  // grows takes the cursor back first, and the task settled next raises changed_bit
  // (make_runnable or retire), which ends the walk after this unit.
  parked_.reserve(task_count_ + 1);
  if (max_active_ || budget_) queued_.reserve(task_count_ + 1);
  policy_.reserve(task_count_ + 1);
  if (budget_) budget_->reserve();  // last: nothing after it throws
}

void core_impl::admit_from_outside(task_base& t) {
  // cooperate() promises std::bad_alloc with nothing changed, and only the lock holder
  // can make room in the rings: the request waits for its answer, which comes at the
  // next unit boundary (or when the holder lets the lock go), as a pause() from another
  // thread waits out the unit that is running.
  admission answer;
  try {
    std::lock_guard l(inbox_mutex_);
    inbox_.push_back({request::update_placement, task_ptr(&t), nullptr, 0, &answer});
  } catch (...) {
    t.release();
    throw;
  }
  interrupt_.fetch_or(inbox_bit, std::memory_order_seq_cst);
  // The holder may have drained and be unlocking just now: then the request is ours.
  if (mutex_.try_lock()) lock l(*this, std::adopt_lock);  // its unlock drains the inbox
  for (;;) {
    const std::uint32_t seen = admissions_answered_.load(std::memory_order_seq_cst);
    if (answer.state.load(std::memory_order_acquire) != admission::pending) break;
    admissions_answered_.wait(seen, std::memory_order_seq_cst);
  }
  if (answer.state.load(std::memory_order_acquire) == admission::refused) {
    t.release();
    std::rethrow_exception(answer.error);
  }
}

void core_impl::answer_admission(task_base& t, admission& answer) noexcept {
  std::uint32_t outcome = admission::admitted;
  try {
    reserve_room();
  } catch (...) {
    answer.error = std::current_exception();
    outcome = admission::refused;
  }
  if (outcome == admission::admitted) update_placement(t);
  // The requester may return (and free `answer`) as soon as it sees the state: nothing
  // touches `answer` after this store.
  answer.state.store(outcome, std::memory_order_release);
  admissions_answered_.fetch_add(1, std::memory_order_seq_cst);
  admissions_answered_.notify_all();
}

void core_impl::start() {
  lock l(*this);
  stopped_ = false;
  running_.store(true, std::memory_order_relaxed);
  if (!policy_.empty() && !in_tick_) schedule_tick();
}

void core_impl::stop() noexcept {
  if (!this_thread_holds(this)) {
    // A tick in progress holds the lock: make it end at the next unit boundary.
    running_.store(false, std::memory_order_relaxed);
    interrupt_.fetch_or(stop_bit, std::memory_order_seq_cst);
  }
  lock l(*this);
  stop_locked();
}

void core_impl::stop_locked() noexcept {
  stopped_ = true;
  running_.store(false, std::memory_order_relaxed);
  drain_inbox();
  // retire() unlinks before it runs any user code (work destructors), so re-entrant
  // calls see consistent lists; take the front again each time. The queued tasks first:
  // none is admitted on the way.
  while (task_base* t = queued_.front()) {
    try_finish(*t, run_state::scheduler_stopped);
    retire(*t);
  }
  while (task_base* t = policy_.any()) {
    try_finish(*t, run_state::scheduler_stopped);
    retire(*t);
  }
  while (task_base* t = parked_.any()) {
    try_finish(*t, run_state::scheduler_stopped);
    retire(*t);
  }
}

}  // namespace coop::detail
