#include <coop/detail/cooperator_core.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <vector>
#include <boost/asio/execution.hpp>
#include <boost/asio/query.hpp>
#include <thread>

namespace coop::detail {

// ---- task_list -----------------------------------------------------------------------

void task_list::push_back(task_base& t) noexcept {
  t.next_ = nullptr;
  t.prev_ = tail_;
  (tail_ ? tail_->next_ : head_) = &t;
  tail_ = &t;
  // Twisted's list iterator: an element appended before the iterator passed the end is
  // still part of this round.
  if (!cursor_) cursor_ = &t;
}

void task_list::unlink(task_base& t) noexcept {
  if (cursor_ == &t) cursor_ = t.next_;
  (t.prev_ ? t.prev_->next_ : head_) = t.next_;
  (t.next_ ? t.next_->prev_ : tail_) = t.prev_;
  t.next_ = t.prev_ = nullptr;
}

// ---- the re-entrant lock -------------------------------------------------------------

namespace {
// The cores whose lock this thread holds, innermost first: a call made from inside a unit,
// a work destructor or any other code run under the lock must not lock again.
struct held_lock {
  const cooperator_core* core;
  held_lock* outer;
};
thread_local held_lock* innermost_held = nullptr;

bool this_thread_holds(const cooperator_core* core) noexcept {
  for (held_lock* h = innermost_held; h; h = h->outer)
    if (h->core == core) return true;
  return false;
}
}  // namespace

class cooperator_core::lock {
public:
  explicit lock(cooperator_core& core) noexcept : core_(core), owns_(!this_thread_holds(&core)) {
    if (owns_) {
      core_.acquire();
      node_ = {&core_, innermost_held};
      innermost_held = &node_;
    }
  }
  ~lock() {
    if (owns_) {
      innermost_held = node_.outer;
      core_.mutex_.unlock();
    }
  }
  lock(const lock&) = delete;
  lock& operator=(const lock&) = delete;

private:
  cooperator_core& core_;
  bool owns_;
  held_lock node_{};
};

void cooperator_core::acquire() noexcept {
  if (mutex_.try_lock()) return;
  // The runner holds the lock for a whole tick: ask it to give the lock up at the next
  // unit boundary.
  interrupt_.fetch_add(controller, std::memory_order_relaxed);
  mutex_.lock();
  interrupt_.fetch_sub(controller, std::memory_order_relaxed);
}

void cooperator_core::yield_to_controllers() noexcept {
  // Between units this thread runs no user code, so its held-lock node may stay.
  mutex_.unlock();
  while (interrupt_.load(std::memory_order_relaxed) >= controller) std::this_thread::yield();
  mutex_.lock();
}

// ---- the execution context's cores -----------------------------------------------------

namespace {
// Guards every registry's list and every core's registry_ pointer. Touched only when a
// core is made or destroyed and when a context shuts down.
std::mutex registries_mutex;
}  // namespace

// One per execution context with cooperators: when the context shuts down, its cores
// stop and release their strands while the strand service still exists.
class cooperator_core::registry : public asio::execution_context::service {
public:
  using key_type = registry;
  static inline asio::execution_context::id id;
  explicit registry(asio::execution_context& ctx) : service(ctx) {}

  void add(cooperator_core& core) {
    std::lock_guard l(registries_mutex);
    cores_.push_back(&core);
    core.registry_ = this;
  }
  /// Called with registries_mutex held.
  void remove_locked(cooperator_core& core) noexcept {
    std::erase(cores_, &core);
    core.registry_ = nullptr;
  }

private:
  void shutdown() override {
    std::vector<std::shared_ptr<cooperator_core>> alive;
    {
      std::lock_guard l(registries_mutex);
      for (cooperator_core* core : cores_) {
        core->registry_ = nullptr;
        if (auto p = core->weak_from_this().lock()) alive.push_back(std::move(p));
      }
      cores_.clear();
    }
    // Outside the mutex: stopping runs work destructors, which may make cooperators.
    for (auto& core : alive) core->context_shutdown();
  }

  std::vector<cooperator_core*> cores_;
};

namespace {
// What a core's strand becomes once its context has shut down: a context, never
// destroyed, whose executor destroys what is submitted (Asio destroys handlers queued on
// a context that shuts down, and this is the same rule afterwards).
class detached_context : public asio::execution_context {
public:
  struct executor {
    detached_context* ctx;
    asio::execution_context& query(asio::execution::context_t) const noexcept { return *ctx; }
    static constexpr asio::execution::blocking_t query(asio::execution::blocking_t) noexcept {
      return asio::execution::blocking.never;
    }
    executor require(asio::execution::blocking_t::never_t) const noexcept { return *this; }
    template <class F> void execute(F&&) const noexcept {}
    friend bool operator==(const executor&, const executor&) noexcept { return true; }
    friend bool operator!=(const executor&, const executor&) noexcept { return false; }
  };
};
}  // namespace

cooperator_core::executor_type cooperator_core::detached_strand() noexcept {
  static const executor_type* strand = [] {
    auto* ctx = new detached_context;  // never destroyed: strands on it may live until exit
    return new executor_type(asio::make_strand(asio::any_io_executor(detached_context::executor{ctx})));
  }();
  return *strand;
}

void cooperator_core::context_shutdown() noexcept {
  shutdown();
  lock l(*this);
  strand_.reset();
}

// ---- construction --------------------------------------------------------------------

cooperator_core::cooperator_core(const asio::any_io_executor& ex, cooperator_options options)
    : strand_(asio::make_strand(ex)),
      slice_(options.slice),
      termination_(std::move(options.termination)),
      running_(options.started),
      // A clock read every ~20 us (less for tiny slices) bounds a tick's overshoot.
      check_period_(std::clamp<std::chrono::nanoseconds>(options.slice / 8, std::chrono::nanoseconds(0),
                                                         std::chrono::microseconds(20))) {
  register_with_context(ex);
}

cooperator_core::~cooperator_core() {
  std::lock_guard l(registries_mutex);
  if (registry_) registry_->remove_locked(*this);  // null: the context has shut down
}

void cooperator_core::register_with_context(const asio::any_io_executor& ex) {
  asio::use_service<registry>(asio::query(ex, asio::execution::context)).add(*this);
}

// ---- cooperator control --------------------------------------------------------------

void cooperator_core::add(task_base& t) noexcept {
  lock l(*this);
  if (stopped_) {
    t.place_ = task_place::none;
    finish(t, task_state::scheduler_stopped);
    return;
  }
  make_runnable(t);
}

void cooperator_core::start() noexcept {
  lock l(*this);
  stopped_ = false;
  running_.store(true, std::memory_order_relaxed);
  if (!runnable_.empty()) schedule_tick();
}

void cooperator_core::stop() noexcept {
  lock l(*this);
  stopped_ = true;
  running_.store(false, std::memory_order_relaxed);
  // finish() unlinks before it runs any user code (work destructors), so re-entrant
  // calls see consistent lists; take the front again each time.
  while (task_base* t = runnable_.front()) finish(*t, task_state::scheduler_stopped);
  while (task_base* t = parked_.front()) finish(*t, task_state::scheduler_stopped);
}

void cooperator_core::shutdown() noexcept {
  lock l(*this);
  shutting_down_ = true;
  stop();
}

// ---- task control --------------------------------------------------------------------

namespace {
boost::system::error_code finished_error(task_state s) noexcept {
  switch (s) {
    case task_state::done: return make_error_code(error::task_done);
    case task_state::stopped: return make_error_code(error::task_stopped);
    case task_state::failed: return make_error_code(error::task_failed);
    case task_state::scheduler_stopped: return make_error_code(error::scheduler_stopped);
    case task_state::active: break;
  }
  return {};
}
}  // namespace

boost::system::error_code cooperator_core::pause(task_base& t) noexcept {
  lock l(*this);
  if (t.state_ != task_state::active) return finished_error(t.state_);
  if (t.pauses_++ == 0 && t.place_ == task_place::runnable) {
    runnable_.unlink(t);
    parked_.push_back(t);
    t.place_ = task_place::parked;
    note_change();
  }
  return {};
}

boost::system::error_code cooperator_core::resume(task_base& t) noexcept {
  lock l(*this);
  if (t.pauses_ == 0) return make_error_code(error::not_paused);
  // A task that finished while paused stays finished: resuming it is a no-op.
  if (--t.pauses_ == 0 && t.state_ == task_state::active && !t.waiting_) {
    parked_.unlink(t);
    make_runnable(t);
  }
  return {};
}

boost::system::error_code cooperator_core::stop(task_base& t) noexcept {
  lock l(*this);
  if (t.state_ != task_state::active) return finished_error(t.state_);
  finish(t, task_state::stopped);
  return {};
}

void cooperator_core::when_done(task_base& t, waiter_base& w) noexcept {
  lock l(*this);
  if (t.state_ != task_state::active) {
    if (shutting_down_) w.destroy();
    else w.complete(result_of(t));
    return;
  }
  w.prev_ = nullptr;
  w.next_ = t.waiters_;
  if (t.waiters_) t.waiters_->prev_ = &w;
  t.waiters_ = &w;
  w.linked_ = true;
}

void cooperator_core::cancel_wait(task_base& t, waiter_base& w) noexcept {
  lock l(*this);
  if (!w.linked_) return;  // already completed; its completion is on its way
  (w.prev_ ? w.prev_->next_ : t.waiters_) = w.next_;
  if (w.next_) w.next_->prev_ = w.prev_;
  w.linked_ = false;
  w.complete(std::make_exception_ptr(boost::system::system_error(asio::error::operation_aborted)));
}

void cooperator_core::cancel_task(task_base& t) noexcept {
  lock l(*this);
  if (t.state_ == task_state::active) finish(t, task_state::stopped);
}

bool cooperator_core::begin_wait(task_base& t) noexcept {
  lock l(*this);
  if (t.state_ != task_state::active) return false;
  t.waiting_ = true;
  if (t.place_ == task_place::runnable) {
    runnable_.unlink(t);
    parked_.push_back(t);
    t.place_ = task_place::parked;
    note_change();
  }
  return true;
}

void cooperator_core::end_wait(task_base& t, std::exception_ptr failure, void (*deliver)(void*),
                               void* arg) noexcept {
  lock l(*this);
  t.waiting_ = false;
  if (t.state_ != task_state::active) {
    // Stopped during the wait: the work was kept alive for the operation; drop it now.
    if (&t != current_) t.destroy_work();
    return;
  }
  if (failure) {
    finish(t, task_state::failed, std::move(failure));
    return;
  }
  deliver(arg);
  if (t.pauses_ == 0) {
    parked_.unlink(t);
    make_runnable(t);
  }
}

void cooperator_core::wait_abandoned(task_base& t) noexcept {
  lock l(*this);
  if (!t.waiting_) return;
  t.waiting_ = false;
  if (t.state_ == task_state::active)
    finish(t, task_state::failed,
           std::make_exception_ptr(boost::system::system_error(asio::error::operation_aborted)));
  else if (&t != current_)
    t.destroy_work();
}

// ---- finishing -----------------------------------------------------------------------

std::exception_ptr cooperator_core::result_of(const task_base& t) noexcept {
  switch (t.state_) {
    case task_state::failed: return t.failure_;
    case task_state::stopped: return std::make_exception_ptr(task_stopped());
    case task_state::scheduler_stopped: return std::make_exception_ptr(scheduler_stopped());
    case task_state::done:
    case task_state::active: break;
  }
  return {};
}

void cooperator_core::finish(task_base& t, task_state how, std::exception_ptr failure) noexcept {
  if (t.state_ != task_state::active) return;  // the first way of finishing wins
  t.state_ = how;
  t.failure_ = std::move(failure);
  if (t.place_ == task_place::runnable) runnable_.unlink(t);
  else if (t.place_ == task_place::parked) parked_.unlink(t);
  t.place_ = task_place::none;
  note_change();

  // The lists are consistent from here on: user code below may re-enter.
  if (t.waiting_) {
    // When the context shuts down, it destroys the pending operation itself.
    if (!shutting_down_) t.cancel_wait();
  }           // the work dies when the operation lets go of it
  else if (&t != current_) t.destroy_work();  // a running unit's work dies after the unit

  while (waiter_base* w = t.waiters_) {
    t.waiters_ = w->next_;
    if (t.waiters_) t.waiters_->prev_ = nullptr;
    w->linked_ = false;
    if (shutting_down_) w->destroy();
    else w->complete(result_of(t));
  }
  if (&t == current_) current_finished_ = true;  // the tick drops its reference after the unit
  else t.release();                              // the cooperator's reference
}

// ---- scheduling ----------------------------------------------------------------------

void cooperator_core::note_change() noexcept {
  // Only a unit in progress (a batch of units of a lone task) needs telling.
  if (current_) interrupt_.fetch_or(changed_bit, std::memory_order_relaxed);
}

void cooperator_core::make_runnable(task_base& t) noexcept {
  runnable_.push_back(t);
  t.place_ = task_place::runnable;
  note_change();
  if (running_.load(std::memory_order_relaxed) && !in_tick_) schedule_tick();
}

namespace {
struct tick_handler {
  std::shared_ptr<cooperator_core> core;
  void operator()() const noexcept { core->run_tick(); }
};
}  // namespace

void cooperator_core::schedule_tick() noexcept {
  if (tick_posted_) return;
  try {
    if (!strand_) return;
    asio::post(*strand_, tick_handler{shared_from_this()});
    tick_posted_ = true;
  } catch (...) {
    // Out of memory: the next state change schedules again.
  }
}

void cooperator_core::adapt_check_interval(std::chrono::nanoseconds elapsed, std::uint32_t units) noexcept {
  // Aim for one clock read per check_period_: a read costs several trivial units, so
  // reading after every unit (as Twisted does) would dominate small units. Grow at most
  // 2x per check so one fast burst cannot make the next check late; shrink at once.
  const std::uint64_t per_unit = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(elapsed.count()) / units);
  const std::uint64_t wanted = static_cast<std::uint64_t>(check_period_.count()) / per_unit;
  const std::uint64_t limit = std::min<std::uint64_t>(std::uint64_t{check_interval_} * 2, 1u << 20);
  check_interval_ = static_cast<std::uint32_t>(std::clamp<std::uint64_t>(wanted, 1, limit));
}

void cooperator_core::after_unit(task_base& t, run_outcome outcome) noexcept {
  if (outcome == run_outcome::done) finish(t, task_state::done);
  else if (outcome == run_outcome::failed) finish(t, task_state::failed, std::move(t.failure_));
  if (current_finished_) {
    current_finished_ = false;
    if (!t.waiting_) t.destroy_work();
    t.release();  // the cooperator's reference, kept while the unit ran
  }
}

bool cooperator_core::handle_interrupt() noexcept {
  const std::uint32_t i = interrupt_.load(std::memory_order_relaxed);
  if (i & changed_bit) interrupt_.fetch_and(~changed_bit, std::memory_order_relaxed);
  if (i >= controller) yield_to_controllers();
  return !running_.load(std::memory_order_relaxed);
}

void cooperator_core::run_tick() noexcept {
  lock l(*this);
  tick_posted_ = false;
  if (!running_.load(std::memory_order_relaxed) || runnable_.empty()) return;
  in_tick_ = true;
  if (termination_) run_units_until_predicate();
  else run_units_for_slice();
  in_tick_ = false;
  if (running_.load(std::memory_order_relaxed) && !runnable_.empty()) schedule_tick();
}

void cooperator_core::run_units_until_predicate() noexcept {
  std::function<bool()> predicate;
  try {
    predicate = termination_();
  } catch (...) {
  }
  while (task_base* t = runnable_.next_in_round()) {
    current_ = t;
    const run_outcome outcome = t->run_one();
    current_ = nullptr;
    after_unit(*t, outcome);
    bool end = true;
    try {
      end = !predicate || predicate();
    } catch (...) {
    }
    if (end) break;
    if (interrupt_.load(std::memory_order_relaxed) && handle_interrupt()) break;
  }
}

void cooperator_core::run_units_for_slice() noexcept {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const auto deadline = start + slice_;
  auto last_check = start;
  // Units left before the next clock read; the clock is read when it reaches 0, after
  // check_interval_ units.
  std::uint32_t until_check = check_interval_;
  const auto clock_says_stop = [&] {
    const auto now = clock::now();
    adapt_check_interval(now - last_check, check_interval_);
    last_check = now;
    until_check = check_interval_;
    return now >= deadline;
  };

  while (task_base* t = runnable_.next_in_round()) {
    current_ = t;
    if (runnable_.single()) {
      // A lone task runs a batch of units inside its own run(): no virtual call per
      // unit. Any change to the lists ends the batch through interrupt_.
      const run_result r = t->run(until_check, interrupt_);
      current_ = nullptr;
      if (r.outcome != run_outcome::more || current_finished_) after_unit(*t, r.outcome);
      until_check -= r.units;
    } else {
      const run_outcome outcome = t->run_one();
      current_ = nullptr;
      if (outcome != run_outcome::more || current_finished_) [[unlikely]] after_unit(*t, outcome);
      --until_check;
    }
    if (until_check == 0 && clock_says_stop()) break;
    if (interrupt_.load(std::memory_order_relaxed) && handle_interrupt()) [[unlikely]] break;
  }
}

}  // namespace coop::detail
