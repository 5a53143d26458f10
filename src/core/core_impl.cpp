// SPDX-License-Identifier: BSL-1.0
#include "core_impl.hpp"

#include <coop/detail/drop_guard.hpp>
#include <coop/detail/steps_task.hpp>
#include <coop/detail/strand_entry.hpp>

#include "../executor_context.hpp"
#include "../process_locks.hpp"


#include <boost/asio/execution.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/detail/scheduler.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>

#include <algorithm>
#include <thread>
#include <vector>

namespace coop::detail {

namespace {
// The shake-out build (CMake option COOP_SHAKE_OUT), as Seastar's debug build forces
// preemption: every tick ends after one unit, whatever its slice or predicate says, so
// code that works only while ticks run many units shows its bugs.
#ifdef COOP_SHAKE_OUT
constexpr bool shake_out = true;
#else
constexpr bool shake_out = false;
#endif

// Made at start-up: the noexcept paths that hand them out must not allocate.
const std::exception_ptr task_stopped_exception = std::make_exception_ptr(task_stopped());
const std::exception_ptr scheduler_stopped_exception = std::make_exception_ptr(scheduler_stopped());
const std::exception_ptr operation_aborted_exception =
    std::make_exception_ptr(boost::system::system_error(asio::error::operation_aborted));
}  // namespace

// ---- run_ring ------------------------------------------------------------------------

void run_ring::push_back(task_base& t, bool join_round) noexcept {
  sync();
  if (!join_round && read_ == slots_.size()) {
    slots_.resize(write_);
    read_ = write_ = 0;
  }
  // Holes from removals: close them before they outgrow the reserved room.
  if (slots_.size() >= growth * live_ + 16) compact();
  t.slot_ = static_cast<std::uint32_t>(slots_.size());
  slots_.push_back(&t);  // within the capacity reserve() made: no allocation
  ++live_;
}

void run_ring::compact() noexcept {
  std::size_t w = 0;
  const auto keep = [&](std::size_t r) {
    if (task_base* t = slots_[r]) {
      slots_[w] = t;
      t->slot_ = static_cast<std::uint32_t>(w++);
    }
  };
  for (std::size_t r = 0; r < write_; ++r) keep(r);
  const std::size_t visited = w;
  for (std::size_t r = read_; r < slots_.size(); ++r) keep(r);
  slots_.resize(w);
  read_ = write_ = visited;
}

task_base* run_ring::any() noexcept {
  sync();
  if (read_ != write_) compact();
  while (!slots_.empty() && !slots_.back()) slots_.pop_back();
  read_ = write_ = std::min(read_, slots_.size());
  return slots_.empty() ? nullptr : slots_.back();
}

// ---- the re-entrant lock -------------------------------------------------------------

namespace {
// The cores whose lock this thread holds, innermost first: a call made from inside a unit,
// a work destructor or any other code run under the lock must not lock again.
struct held_lock {
  const core_impl* core;
  held_lock* outer;
};
thread_local held_lock* innermost_held = nullptr;

// The node lives on the caller's stack until it is popped, which GCC 12's
// -Wdangling-pointer cannot see.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
inline void push_held(held_lock* node) noexcept {
  node->outer = innermost_held;
  innermost_held = node;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// Whether this thread holds `core`'s lock. A file-local function, not a member: every
// resume() asks, and the compiler does not inline a member of a shared library (another
// definition could replace it at load time).
bool this_thread_holds(const core_impl* core) noexcept {
  for (held_lock* h = innermost_held; h; h = h->outer)
    if (h->core == core) return true;
  return false;
}
}  // namespace

void core_impl::wait_out_unit(const task_base& t) const noexcept {
  // No units running: a tick starting later fences before its first unit, so it sees the
  // change (the caller's compare-and-swap and this load are sequentially consistent).
  const std::uint32_t epoch = units_epoch_.load(std::memory_order_seq_cst);
  if (!(epoch & 1)) return;
  // A unit of its own task (same thread) is the caller itself: nothing to wait for.
  if (this_thread_holds(this)) return;
  // The tick only has a compiler barrier between publishing a task and reading its
  // control word; make every running thread's stores visible before reading. Should the
  // kernel refuse (a seccomp filter installed after registration), wait for this tick's
  // units to end instead: the next tick fences before its first unit.
  if (asymmetric_fences_ && !heavy_fence()) {
    while (units_epoch_.load(std::memory_order_seq_cst) == epoch) std::this_thread::yield();
    return;
  }
  while (running_task_.load(std::memory_order_seq_cst) == &t) std::this_thread::yield();
}

// Blocking and re-entrant. Used where waiting for a tick to end is right: the tick itself,
// the strand's own handlers, and cooperator start()/stop().
class core_impl::lock {
public:
  explicit lock(core_impl& core) noexcept : core_(core), owns_(!this_thread_holds(&core)) {
    if (owns_) {
      core_.mutex_.lock();
      enter();
    }
  }
  /// Adopts a mutex this thread has just locked.
  lock(core_impl& core, std::adopt_lock_t) noexcept : core_(core), owns_(true) { enter(); }
  ~lock() {
    if (owns_) {
      // Still the holder: code these run may re-enter.
      if (core_.inbox_waiting()) core_.drain_inbox();
      if (core_.needs_retry_.load(std::memory_order_relaxed)) core_.retry();
      innermost_held = node_.outer;
      core_.mutex_.unlock();
      if (core_.inbox_waiting()) core_.after_unlock();
    }
  }
  lock(const lock&) = delete;
  lock& operator=(const lock&) = delete;

private:
  void enter() noexcept {
    node_.core = &core_;
    push_held(&node_);
  }
  core_impl& core_;
  bool owns_;
  held_lock node_{};
};

void core_impl::after_unlock() noexcept {
  // A request left after the drain, while we still held the lock, is ours to apply unless
  // someone else holds the lock now (then it is theirs).
  while (inbox_waiting() && mutex_.try_lock()) {
    held_lock node{this, nullptr};
    push_held(&node);
    drain_inbox();
    innermost_held = node.outer;
    mutex_.unlock();
  }
}

void core_impl::apply_or_leave(request what, task_base& t, waiter_base* w) noexcept {
  if (this_thread_holds(this)) {
    apply(what, t, w);
    return;
  }
  if (mutex_.try_lock()) {
    lock l(*this, std::adopt_lock);
    // Requests left earlier go first: a cancellation must not overtake the parking of
    // its own wait (it would find nothing to cancel, and the wait would stay parked).
    drain_inbox();
    apply(what, t, w);
    return;
  }
  try {
    std::lock_guard l(inbox_mutex_);
    inbox_.push_back({what, task_ptr(&t), w, w ? w->id_ : 0});
  } catch (...) {
    // Out of memory for the inbox: wait for the lock instead.
    lock l(*this);
    apply(what, t, w);
    return;
  }
  interrupt_.fetch_or(inbox_bit, std::memory_order_seq_cst);
  // The holder may have drained and be unlocking just now: then the request is ours.
  if (mutex_.try_lock()) lock l(*this, std::adopt_lock);  // its unlock drains the inbox
}

void core_impl::drain_inbox() noexcept {
  if (!inbox_waiting()) return;
  std::vector<inbox_item> items;
  {
    std::lock_guard l(inbox_mutex_);
    interrupt_.fetch_and(~inbox_bit, std::memory_order_relaxed);
    items.swap(inbox_);
  }
  for (inbox_item& item : items) {
    if (item.admit) answer_admission(*item.task, *item.admit);
    else if (item.what == request::cancel_waiter) cancel_parked(*item.task, item.waiter, item.waiter_id);
    else apply(item.what, *item.task, item.waiter);
  }
}

void core_impl::cancel_parked(task_base& t, const waiter_base* w, std::uint64_t id) noexcept {
  for (waiter_base* p = t.waiters_; p; p = p->next_)
    if (p == w && p->id_ == id) {
      apply(request::cancel_waiter, t, p);
      return;
    }
  // Not parked: it completed (its completion is on its way or has run).
}

void core_impl::apply(request what, task_base& t, waiter_base* w) noexcept {
  switch (what) {
    case request::settle:
      settle(t);
      return;
    case request::park_waiter:
      if (t.retired_) {
        deliver(*w, result_of(t));
        return;
      }
      w->prev_ = nullptr;
      w->next_ = t.waiters_;
      if (t.waiters_) t.waiters_->prev_ = w;
      t.waiters_ = w;
      w->linked_ = true;
      return;
    case request::cancel_waiter:
      if (!w->linked_) return;  // already completed; its completion is on its way
      (w->prev_ ? w->prev_->next_ : t.waiters_) = w->next_;
      if (w->next_) w->next_->prev_ = w->prev_;
      w->linked_ = false;
      deliver(*w, operation_aborted_exception);
      return;
  }
}

// ---- delivering completions ---------------------------------------------------------

void core_impl::deliver(waiter_base& w, std::exception_ptr result) noexcept {
  if (shutting_down_) {
    w.destroy();
    return;
  }
  if (w.complete(std::move(result))) return;
  // Out of memory: keep it and post it again later (next lock release, or the watchdog).
  w.prev_ = nullptr;
  w.next_ = undelivered_;
  undelivered_ = &w;
  retry_needed();
}

void core_impl::redeliver(waiter_base& w, std::exception_ptr result) noexcept {
  lock l(*this);
  deliver(w, std::move(result));
}

void core_impl::retry_needed() noexcept {
  needs_retry_.store(true, std::memory_order_release);
  timer_entry_.needs_retry.store(true, std::memory_order_release);
  preemption_timer::tick_started();  // wake the watchdog if it sleeps
}

void core_impl::retry() noexcept {
  needs_retry_.store(false, std::memory_order_relaxed);
  timer_entry_.needs_retry.store(false, std::memory_order_relaxed);
  waiter_base* w = std::exchange(undelivered_, nullptr);
  while (w) {
    waiter_base* next = w->next_;
    deliver(*w, std::move(w->result_));
    w = next;
  }
  if (tick_lost_) {
    tick_lost_ = false;
    if (running_.load(std::memory_order_relaxed) && !runnable_.empty() && !in_tick_) try_schedule_tick();
  }
}

void core_impl::try_retry() noexcept {
  if (!needs_retry_.load(std::memory_order_acquire) || !mutex_.try_lock()) return;
  lock l(*this, std::adopt_lock);
  retry();
}

void core_impl::try_schedule_tick() noexcept {
  try {
    schedule_tick();
  } catch (...) {
    tick_lost_ = true;  // out of memory: post it again later
    retry_needed();
  }
}

// ---- the execution context's cores -----------------------------------------------------

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


// ---- construction --------------------------------------------------------------------

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
      slice_(options.slice),
      termination_(std::move(options.termination)),
      running_(options.started),
      // A clock read every ~5 us (less for tiny slices) bounds a tick's overshoot; one read
      // (~25 ns) per 5 us costs trivial units 0.5%, and at 20 us ticks ran ~15 us longer.
      check_period_(std::clamp<std::chrono::nanoseconds>(options.slice / 8, std::chrono::nanoseconds(0),
                                                         std::chrono::microseconds(5))) {
  register_with_context(ex);
  hops_ = on_asio_scheduler(ex) ? 2 : 1;
  timer_entry_.core = this;
  timer_entry_.slice_ns = slice_.count();
  try {
    preemption_timer::add(timer_entry_);
  } catch (...) {
    std::lock_guard l(registries_mutex());
    if (registry_) registry_->remove_locked(*this);
    throw;
  }
}

core_impl::~core_impl() {
  preemption_timer::remove(timer_entry_);
  std::lock_guard l(registries_mutex());
  if (registry_) registry_->remove_locked(*this);  // null: the context has shut down
}

void core_impl::register_with_context(const asio::any_io_executor& ex) {
  asio::use_service<registry>(context_of(ex)).add(*this);
}

// ---- cooperator control --------------------------------------------------------------

void core_impl::add(task_base& t) {
  std::optional<lock> l;
  if (this_thread_holds(this)) l.emplace(*this);
  else if (mutex_.try_lock()) l.emplace(*this, std::adopt_lock);
  t.add_ref();  // the cooperator's reference
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
  settle(t);
}

void core_impl::reserve_room() {
  // The parked ring first: it is never walked, so if the second reserve throws, the run
  // ring (whose cursor a tick's walk in place may hold) is untouched. A run ring that
  // grows takes the cursor back first, and the task settled next raises changed_bit
  // (make_runnable or retire), which ends the walk after this unit.
  parked_.reserve(task_count_ + 1);
  runnable_.reserve(task_count_ + 1);
}

void core_impl::admit_from_outside(task_base& t) {
  // cooperate() promises std::bad_alloc with nothing changed, and only the lock holder
  // can make room in the rings: the request waits for its answer, which comes at the
  // next unit boundary (or when the holder lets the lock go), as a pause() from another
  // thread waits out the unit that is running.
  admission answer;
  try {
    std::lock_guard l(inbox_mutex_);
    inbox_.push_back({request::settle, task_ptr(&t), nullptr, 0, &answer});
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
  if (outcome == admission::admitted) settle(t);
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
  if (!runnable_.empty() && !in_tick_) schedule_tick();
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
  // calls see consistent lists; take the front again each time.
  while (task_base* t = runnable_.any()) {
    try_finish(*t, task_state::scheduler_stopped);
    retire(*t);
  }
  while (task_base* t = parked_.any()) {
    try_finish(*t, task_state::scheduler_stopped);
    retire(*t);
  }
}

void core_impl::shutdown() noexcept {
  lock l(*this);
  shutting_down_ = true;
  stop_locked();
  // Waits begun from now on complete through their handlers' own executors (use_future,
  // a live executor); one bound to the gone strand is destroyed by that strand.
  shutting_down_ = false;
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

bool core_impl::try_finish(task_base& t, task_state how) noexcept {
  std::uint32_t c = t.control_.load(std::memory_order_relaxed);
  do {
    if (control::state(c) != task_state::active) return false;  // the first way of finishing wins
  } while (!t.control_.compare_exchange_weak(c, control::with_state(c, how), std::memory_order_seq_cst));
  return true;
}

boost::system::error_code core_impl::pause(task_base& t) noexcept {
  std::uint32_t c = t.control_.load(std::memory_order_relaxed);
  do {
    if (control::state(c) != task_state::active) return finished_error(control::state(c));
  } while (!t.control_.compare_exchange_weak(c, c + control::one_pause, std::memory_order_seq_cst));
  // The runner checks control_ before every unit, so no new unit starts from here on.
  // The task leaves the run order lazily: the runner parks it when its turn comes (or a
  // resume moves it to the end first), so a pause costs no lock.
  if (control::pauses(c) == 0) wait_out_unit(t);
  return {};
}

boost::system::error_code core_impl::resume(task_base& t) noexcept {
  const bool held = this_thread_holds(this);
  std::optional<lock> l;
  if (!held && mutex_.try_lock()) l.emplace(*this, std::adopt_lock);
  const bool locked = held || l;
  // Without the lock (a tick holds it) the requeue bit keeps the runner from running the
  // task where a lazy pause left it; the runner or the inbox moves it to the end.
  std::uint32_t c = t.control_.load(std::memory_order_relaxed);
  bool requeue;
  do {
    if (control::pauses(c) == 0) return make_error_code(error::not_paused);
    // A task that finished while paused stays finished: resuming it is a no-op.
    requeue = control::pauses(c) == 1 && control::state(c) == task_state::active;
  } while (!t.control_.compare_exchange_weak(c, (c - control::one_pause) | (requeue && !locked ? control::requeue : 0),
                                             std::memory_order_acq_rel));
  if (!requeue) return {};
  if (locked) settle(t, true);
  else apply_or_leave(request::settle, t);
  return {};
}

boost::system::error_code core_impl::stop(task_base& t) noexcept {
  if (!try_finish(t, task_state::stopped)) return finished_error(control::state(t.control_.load(std::memory_order_acquire)));
  wait_out_unit(t);
  apply_or_leave(request::settle, t);
  return {};
}

void core_impl::when_done(task_base& t, waiter_base& w) noexcept {
  w.id_ = next_waiter_id_.fetch_add(1, std::memory_order_relaxed);
  apply_or_leave(request::park_waiter, t, &w);
}

void core_impl::cancel_wait(task_base& t, waiter_base& w) noexcept { apply_or_leave(request::cancel_waiter, t, &w); }

void core_impl::cancel_task(task_base& t) noexcept {
  if (try_finish(t, task_state::stopped)) apply_or_leave(request::settle, t);
}

// ---- coroutine waits -----------------------------------------------------------------

std::uint32_t core_impl::begin_wait(task_base& t) noexcept {
  lock l(*this);
  if (control::state(t.control_.load(std::memory_order_acquire)) != task_state::active) return 0;
  t.waiting_ = true;
  if (++t.wait_generation_ == 0) t.wait_generation_ = 1;
  park(t);
  return t.wait_generation_;
}

void core_impl::undo_wait(task_base& t) noexcept {
  lock l(*this);
  t.waiting_ = false;
  settle(t);
}

void core_impl::end_wait(task_base& t, std::uint32_t generation, std::exception_ptr failure,
                               void (*deliver)(void*), void* arg) noexcept {
  lock l(*this);
  if (!t.waiting_ || t.wait_generation_ != generation) return;  // a handler of an earlier wait
  t.waiting_ = false;
  if (control::state(t.control_.load(std::memory_order_acquire)) == task_state::active) {
    if (failure) {
      t.failure_ = std::move(failure);
      try_finish(t, task_state::failed);
    } else {
      deliver(arg);
    }
  }
  // Rejoins the run order, stays parked (user pause), or — stopped during the wait —
  // retires, or drops the work kept alive for the operation.
  settle(t);
}

bool core_impl::wait_pending(const task_base& t, std::uint32_t generation) noexcept {
  lock l(*this);  // its release applies what other threads left meanwhile
  return t.waiting_ && t.wait_generation_ == generation;
}

void core_impl::wait_abandoned(task_base& t, std::uint32_t generation) noexcept {
  lock l(*this);
  if (!t.waiting_ || t.wait_generation_ != generation) return;
  t.waiting_ = false;
  if (control::state(t.control_.load(std::memory_order_acquire)) == task_state::active) {
    t.failure_ = operation_aborted_exception;
    try_finish(t, task_state::failed);
  }
  settle(t);
}

namespace {
// wait_dropped()'s check: run on the strand, or destroyed unrun (the context shut down,
// or out of memory), it ends the wait the same way; a wait the context's shutdown has
// already ended (the task stopped scheduler_stopped) is past it by then.
struct dropped_wait_check {
  task_ptr task;
  std::uint32_t generation;
  dropped_wait_check(task_ptr t, std::uint32_t g) noexcept : task(std::move(t)), generation(g) {}
  dropped_wait_check(dropped_wait_check&&) noexcept = default;
  dropped_wait_check& operator=(dropped_wait_check&&) = delete;
  ~dropped_wait_check() { end(); }
  void operator()() noexcept { end(); }
  void end() noexcept {
    if (task_ptr t = std::move(task)) core_of(*t).wait_abandoned(*t, generation);
  }
};
}  // namespace

void core_impl::wait_dropped(task_base& t, std::uint32_t generation) noexcept {
  lock l(*this);
  if (!t.waiting_ || t.wait_generation_ != generation) return;
  t.forget_wait();  // a stop() meanwhile must not emit cancellation into the gone operation
  try {
    post_to_strand(&t, dropped_wait_check(task_ptr(&t), generation));  // a drop ends it at once
  } catch (...) {
  }
}

// ---- placement and finishing ---------------------------------------------------------

std::exception_ptr core_impl::result_of(const task_base& t) noexcept {
  switch (control::state(t.control_.load(std::memory_order_acquire))) {
    case task_state::failed: return t.failure_;
    case task_state::stopped: return task_stopped_exception;
    case task_state::scheduler_stopped: return scheduler_stopped_exception;
    case task_state::done:
    case task_state::active: break;
  }
  return {};
}

void core_impl::settle(task_base& t, bool requeue) noexcept {
  if (requeue && t.place_ == task_place::runnable && t.control_.load(std::memory_order_acquire) == 0) {
    // The common resume: a lazy pause left the task in the order (active, unpaused, no
    // requeue bit pending, so not waiting): it moves to the end. The general case below.
    runnable_.unlink(t);
    make_runnable(t);
    return;
  }
  if (t.place_ == task_place::none && !t.retired_) {
    // A new task: add() or answer_admission() made room for it in both rings, so placing
    // it never allocates.
    ++task_count_;
    parked_.push_back(t);
    t.place_ = task_place::parked;
  }
  if (t.retired_) {
    // Finished earlier; an operation it waited on has now let go of its work.
    if (!t.waiting_ && &t != current()) t.destroy_work();
    return;
  }
  std::uint32_t c = t.control_.load(std::memory_order_acquire);
  if (c & control::requeue) {
    c = t.control_.fetch_and(~control::requeue, std::memory_order_acq_rel) & ~control::requeue;
    requeue = true;
  }
  if (control::state(c) != task_state::active) retire(t);
  else if (control::pauses(c) > 0 || t.waiting_) park(t);
  else if (requeue && t.place_ == task_place::runnable) {
    // Resumed while a lazy pause left it in the order: it joins at the end.
    runnable_.unlink(t);
    make_runnable(t);
  } else if (t.place_ != task_place::runnable) {
    if (stopped_) {
      if (try_finish(t, task_state::scheduler_stopped)) retire(t);
      else settle(t);
      return;
    }
    if (t.place_ == task_place::parked) parked_.unlink(t);
    make_runnable(t);
    if (running_.load(std::memory_order_relaxed) && !in_tick_) try_schedule_tick();
  }
}

void core_impl::park(task_base& t) noexcept {
  if (t.place_ == task_place::parked) return;
  if (t.place_ == task_place::runnable) runnable_.unlink(t);
  parked_.push_back(t);
  t.place_ = task_place::parked;
  note_change();
}

void core_impl::make_runnable(task_base& t) noexcept {
  // The task whose unit is running goes behind the others (its next turn); so does the
  // one whose unit has just ended while the requests left during that unit are applied.
  runnable_.push_back(t, &t != current() && &t != just_ran_);
  t.place_ = task_place::runnable;
  note_change();
}

void core_impl::retire(task_base& t) noexcept {
  if (t.retired_) return;
  t.retired_ = true;
  if (&t == just_ran_) just_ran_ = nullptr;  // it may be freed below
  --task_count_;
  if (t.place_ == task_place::runnable) runnable_.unlink(t);
  else if (t.place_ == task_place::parked) parked_.unlink(t);
  t.place_ = task_place::none;
  note_change();

  // The lists are consistent from here on: user code below may re-enter.
  if (t.waiting_) {
    // The work dies when the operation lets go of it. When the context shuts down, it
    // destroys the pending operation itself.
    if (!shutting_down_) t.cancel_wait();
  } else if (&t != current()) {
    t.destroy_work();  // a running unit's work dies after the unit
  }

  // Handlers complete in the order their waits began (Twisted fires Deferreds in order);
  // waiters are pushed at the head, so walk from the tail.
  waiter_base* w = t.waiters_;
  while (w && w->next_) w = w->next_;
  t.waiters_ = nullptr;
  while (w) {
    waiter_base* prev = w->prev_;
    w->linked_ = false;
    deliver(*w, result_of(t));
    w = prev;
  }
  if (&t == current()) current_finished_ = true;  // the tick drops its reference after the unit
  else t.release();                              // the cooperator's reference
}

// ---- scheduling ----------------------------------------------------------------------

void core_impl::note_change() noexcept {
  // Only a unit in progress needs telling: a lone task's batch, or a walk in place, which
  // must end after this unit (its cursor and slot pointers may be stale).
  if (current()) interrupt_.fetch_or(changed_bit, std::memory_order_relaxed);
}

namespace {
struct tick_handler {
  std::shared_ptr<core_impl> core;
  tick_handler(std::shared_ptr<core_impl> c) noexcept : core(std::move(c)) {}
  tick_handler(tick_handler&&) noexcept = default;
  tick_handler& operator=(tick_handler&&) = delete;
  ~tick_handler() {
    if (core) drop_guard::report_drop(core.get());  // dropped by an out-of-memory dispatch?
  }
  void operator()() noexcept {
    std::shared_ptr<core_impl> c = std::move(core);  // ran: not dropped
    drop_guard::report_run(c.get());  // a tick re-posted (and dropped) inside is another one
    c->run_tick();
  }
};

struct tick_lost {
  std::shared_ptr<core_impl> core;
  void operator()() const noexcept { core->tick_post_failed(); }
};

using tick_entry = strand_entry<core_impl::executor_type, tick_handler, tick_lost>;

tick_entry make_tick_entry(const core_impl::executor_type& strand, const std::shared_ptr<core_impl>& core) {
  return tick_entry{strand, tick_handler{core}, core.get(), tick_lost{core}};
}

// The re-posted tick's first hop on Asio's scheduler. An io_context queues what its
// reactor finds ready (timers, sockets) behind the handlers already queued; a tick posted
// straight after the last one would run ahead of I/O that became ready during the last
// one, so that I/O would wait two slices. After this hop the reactor has run, and what it
// found is queued ahead of the tick's entry into the strand.
struct hop_handler {
  core_impl::executor_type strand;
  std::shared_ptr<core_impl> core;
  void operator()() const noexcept {
    try {
      asio::post(strand.get_inner_executor(), make_tick_entry(strand, core));
    } catch (...) {
      core->tick_post_failed();  // out of memory: nothing escapes into run()
    }
  }
};
}  // namespace

void core_impl::schedule_tick(bool from_tick) {
  if (tick_posted_ || !strand_) return;
  // Every tick enters the strand through its inner executor (strand_entry.hpp: a post to
  // an idle strand that runs out of memory can leave Boost 1.81's strand locked for good).
  if (from_tick && hops_ > 1) asio::post(strand_->get_inner_executor(), hop_handler{*strand_, shared_from_this()});
  else asio::post(strand_->get_inner_executor(), make_tick_entry(*strand_, shared_from_this()));
  tick_posted_ = true;
}

void core_impl::tick_post_failed() noexcept {
  lock l(*this);
  tick_posted_ = false;
  tick_lost_ = true;
  retry_needed();
}

void core_impl::adapt_check_interval(std::chrono::nanoseconds elapsed, std::uint32_t units) noexcept {
  // Aim for one clock read per check_period_: a read costs several trivial units, so
  // reading after every unit (as Twisted does) would dominate small units. Grow at most
  // 2x per check so one fast burst cannot make the next check late; shrink at once.
  const std::uint64_t per_unit = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(elapsed.count()) / units);
  const std::uint64_t wanted = static_cast<std::uint64_t>(check_period_.count()) / per_unit;
  const std::uint64_t limit = std::min<std::uint64_t>(std::uint64_t{check_interval_} * 2, 1u << 20);
  check_interval_ = static_cast<std::uint32_t>(std::clamp<std::uint64_t>(wanted, 1, limit));
}

void core_impl::after_unit(task_base& t, run_outcome outcome) noexcept {
  if (outcome == run_outcome::done) {
    if (try_finish(t, task_state::done)) retire(t);
  } else if (outcome == run_outcome::failed) {
    // run() stored the exception in failure_ before this makes it visible.
    if (try_finish(t, task_state::failed)) retire(t);
    else t.failure_ = nullptr;  // stopped first: the exception goes nowhere
  }
  if (current_finished_) {
    current_finished_ = false;
    if (!t.waiting_) t.destroy_work();
    t.release();  // the cooperator's reference, kept while the unit ran
  }
}

bool core_impl::handle_interrupt() noexcept {
  const std::uint32_t i = interrupt_.load(std::memory_order_acquire);
  if (i & changed_bit) interrupt_.fetch_and(~changed_bit, std::memory_order_relaxed);
  if (i & inbox_bit) drain_inbox();
  return (i & (preempt_bit | stop_bit)) || !running_.load(std::memory_order_relaxed);
}

void core_impl::run_tick() noexcept {
  lock l(*this);
  tick_posted_ = false;
  interrupt_.fetch_and(~stop_bit, std::memory_order_relaxed);
  drain_inbox();
  if (!running_.load(std::memory_order_relaxed) || runnable_.empty()) return;
  in_tick_ = true;
  // Pairs with wait_out_unit(): a caller that reads an even epoch changed the control
  // word before this point, so every claim below sees the change. Only the lock holder
  // writes the epoch.
  const std::uint32_t epoch = units_epoch_.load(std::memory_order_relaxed) + 1;
  units_epoch_.store(epoch, std::memory_order_seq_cst);
  if (asymmetric_fences_) full_fence();  // the claims' loads are relaxed then
  if (termination_) run_units_until_predicate();
  else run_units_for_slice();
  units_epoch_.store(epoch + 1, std::memory_order_release);
  in_tick_ = false;
  drain_inbox();
  just_ran_ = nullptr;
  if (running_.load(std::memory_order_relaxed) && !runnable_.empty()) {
    try {
      schedule_tick(true);
    } catch (...) {
      tick_lost_ = true;  // out of memory: post it again later
      retry_needed();
    }
  }
}

void core_impl::run_units_until_predicate() noexcept {
  std::function<bool()> predicate;
  try {
    predicate = termination_();
  } catch (...) {
  }
  while (task_base* t = runnable_.next_in_round()) {
    if (!claim(*t, asymmetric_fences_)) {
      running_task_.store(nullptr, std::memory_order_release);
      settle(*t);  // paused or finished from another thread: it must not run
      continue;
    }
    const run_outcome outcome = t->run_one();
    running_task_.store(nullptr, std::memory_order_release);
    const bool still_active = outcome == run_outcome::more && !current_finished_;
    after_unit(*t, outcome);
    just_ran_ = still_active ? t : nullptr;  // retire() clears it
    bool end = true;
    try {
      end = !predicate || predicate();
    } catch (...) {
    }
    if (end || shake_out) break;
    const bool stop = interrupt_.load(std::memory_order_acquire) && handle_interrupt();
    just_ran_ = nullptr;
    if (stop) break;
  }
}

void core_impl::run_units_for_slice() noexcept {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const auto deadline = start + slice_;
  interrupt_.fetch_and(~preempt_bit, std::memory_order_relaxed);
  timer_entry_.tick_start_ns.store(start.time_since_epoch().count(), std::memory_order_seq_cst);
  preemption_timer::tick_started();
  auto last_check = start;
  // Units left before the next clock read; the clock is read when it reaches 0, after
  // check_interval_ units.
  std::uint32_t until_check = shake_out ? 1 : check_interval_;
  const auto clock_says_stop = [&] {
    const auto now = clock::now();
    adapt_check_interval(now - last_check, check_interval_);
    last_check = now;
    until_check = check_interval_;
    return shake_out || now >= deadline;
  };

  task_base* ran = nullptr;  // the task whose unit just ended, if it is still active
  const bool fences = asymmetric_fences_;
  // A task whose claim failed: paused or finished from another thread, it must not run.
  const auto refuse = [&](task_base& u) {
    running_task_.store(nullptr, std::memory_order_release);
    ran = nullptr;
    settle(u);
  };
  while (task_base* t = runnable_.next_in_round()) {
    if (!claim(*t, fences)) [[unlikely]] {
      refuse(*t);
      continue;
    }
    ran = t;
    if (runnable_.single()) {
      // A lone task runs a batch of units inside its own run(): no virtual call per
      // unit. Any change ends the batch through interrupt_ or its control_.
      const run_result r = t->run(until_check, interrupt_);
      running_task_.store(nullptr, std::memory_order_release);
      if (r.outcome != run_outcome::more) {
        after_unit(*t, r.outcome);
        ran = nullptr;
      }
      until_check -= r.units;
    } else {
      run_outcome outcome = t->run_one();
      running_task_.store(nullptr, std::memory_order_release);
      --until_check;
      const auto nothing_happened = [&] {
        return outcome == run_outcome::more && until_check != 0 &&
               interrupt_.load(std::memory_order_acquire) == 0;
      };
      if (nothing_happened()) [[likely]] {
        // The tasks in place after t take their turns in their own type's code while
        // nothing happens (in_place_walk.hpp): each stays active, no clock read is due,
        // interrupt_ stays clear. A unit that changes the lists raises it (note_change()),
        // so the walk ends after that unit, never going on over slots that may have
        // moved; the ring took the cursor back before the change. A run of one type is
        // one virtual call; a change of type hands over to the next type's walk.
        in_place_walk w{.running = &running_task_, .interrupt = &interrupt_, .fences = fences};
        if (runnable_.start_walk(w, until_check)) {
          // On while a task is in place at the cursor and nothing happened.
          while (w.next != w.stop && *w.next) {
            outcome = (*w.next)->run_turns(w);
            if (w.refused || outcome != run_outcome::more || interrupt_.load(std::memory_order_acquire))
              break;
          }
          runnable_.end_walk();
          until_check -= static_cast<std::uint32_t>(w.passed) - (w.refused ? 1 : 0);
        }
        if (w.last) {
          t = w.last;
          if (w.refused) [[unlikely]] {
            refuse(*t);
            continue;
          }
          ran = t;
        }
      }
      if (outcome != run_outcome::more) [[unlikely]] {
        after_unit(*t, outcome);
        ran = nullptr;
      }
    }
    if (interrupt_.load(std::memory_order_acquire)) [[unlikely]] {
      // A task finished during its own unit raised changed_bit (note_change).
      if (current_finished_) {
        after_unit(*t, run_outcome::more);
        ran = nullptr;
      }
      just_ran_ = ran;
      const bool end = handle_interrupt();
      just_ran_ = ran = nullptr;  // what handle_interrupt() applied may have retired it
      if (end) break;
    }
    if (until_check == 0 && clock_says_stop()) break;
  }
  just_ran_ = ran;  // for the requests run_tick() applies after the units
  timer_entry_.tick_start_ns.store(0, std::memory_order_relaxed);
  // Preempted by the timer: units got slower than the interval learned; relearn it.
  if (interrupt_.load(std::memory_order_relaxed) & preempt_bit) check_interval_ = 1;
}

// ---- the interface the templates call (cooperator_core.hpp) ----------------------------

namespace {
core_impl& impl(cooperator_core& c) noexcept { return static_cast<core_impl&>(c); }
const core_impl& impl(const cooperator_core& c) noexcept { return static_cast<const core_impl&>(c); }
}  // namespace

std::shared_ptr<cooperator_core> make_cooperator_core(const asio::any_io_executor& ex, cooperator_options options) {
  return std::make_shared<core_impl>(ex, std::move(options));
}

cooperator_core::executor_type cooperator_core::get_executor() const noexcept { return impl(*this).get_executor(); }
bool cooperator_core::running() const noexcept { return impl(*this).running(); }
void cooperator_core::add(task_base& t) { impl(*this).add(t); }
void cooperator_core::start() { impl(*this).start(); }
void cooperator_core::stop() noexcept { impl(*this).stop(); }
void cooperator_core::shutdown() noexcept { impl(*this).shutdown(); }
boost::system::error_code cooperator_core::pause(task_base& t) noexcept { return impl(*this).pause(t); }
boost::system::error_code cooperator_core::resume(task_base& t) noexcept { return impl(*this).resume(t); }
boost::system::error_code cooperator_core::stop(task_base& t) noexcept { return impl(*this).stop(t); }
void cooperator_core::when_done(task_base& t, waiter_base& w) noexcept { impl(*this).when_done(t, w); }
void cooperator_core::cancel_wait(task_base& t, waiter_base& w) noexcept { impl(*this).cancel_wait(t, w); }
void cooperator_core::cancel_task(task_base& t) noexcept { impl(*this).cancel_task(t); }
void cooperator_core::redeliver(waiter_base& w, std::exception_ptr result) noexcept {
  impl(*this).redeliver(w, std::move(result));
}
std::uint32_t cooperator_core::begin_wait(task_base& t) noexcept { return impl(*this).begin_wait(t); }
void cooperator_core::undo_wait(task_base& t) noexcept { impl(*this).undo_wait(t); }
void cooperator_core::end_wait(task_base& t, std::uint32_t generation, std::exception_ptr failure,
                               void (*deliver)(void*), void* arg) noexcept {
  impl(*this).end_wait(t, generation, std::move(failure), deliver, arg);
}
void cooperator_core::wait_abandoned(task_base& t, std::uint32_t generation) noexcept {
  impl(*this).wait_abandoned(t, generation);
}
void cooperator_core::wait_dropped(task_base& t, std::uint32_t generation) noexcept {
  impl(*this).wait_dropped(t, generation);
}
bool cooperator_core::wait_pending(const task_base& t, std::uint32_t generation) noexcept {
  return impl(*this).wait_pending(t, generation);
}
std::optional<cooperator_core::executor_type> cooperator_core::live_strand() const noexcept {
  return impl(*this).live_strand();
}

}  // namespace coop::detail
