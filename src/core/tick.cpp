// SPDX-License-Identifier: BSL-1.0
// The tick: posted to the strand while tasks are runnable, it runs units round-robin until
// the slice (or the termination predicate) ends it, then posts the next one behind the
// I/O that became ready meanwhile.
#include "core_lock.hpp"

#include "../stall_capture.hpp"

#include <coop/detail/drop_guard.hpp>
#include <coop/detail/strand_entry.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>

namespace coop::detail {

std::exception_ptr& unit_failure() noexcept {
  thread_local std::exception_ptr failure;
  return failure;
}

void core_impl::try_schedule_tick() noexcept {
  try {
    schedule_tick();
  } catch (...) {
    tick_lost_ = true;  // out of memory: post it again later
    retry_needed();
  }
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
  // Units of a microsecond or more: a read after each (at most 2.5% of a unit) makes each
  // task's busy time exact, however unequal the units sharing an interval (busy_meter.hpp).
  const std::uint64_t wanted =
      per_unit >= exact_busy_unit_ns ? 1 : static_cast<std::uint64_t>(check_period_.count()) / per_unit;
  const std::uint64_t limit = std::min<std::uint64_t>(std::uint64_t{check_interval_} * 2, 1u << 20);
  check_interval_ = static_cast<std::uint32_t>(std::clamp<std::uint64_t>(wanted, 1, limit));
}

void core_impl::after_unit(task_base& t, run_outcome outcome) noexcept {
  if (outcome == run_outcome::done) {
    if (try_finish(t, run_state::done)) retire(t);
  } else if (outcome == run_outcome::failed) {
    std::exception_ptr failure = std::exchange(unit_failure(), nullptr);
    if (try_finish(t, run_state::failed)) retire(t, std::move(failure));
    // else stopped first: the exception goes nowhere
  }
  if (running_task_finished_) {
    running_task_finished_ = false;
    if (!t.awaiting_) t.destroy_work();
    t.release();  // the cooperator's reference, kept while the unit ran
  }
}

bool core_impl::handle_interrupt() noexcept {
  const std::uint32_t i = interrupt_.load(std::memory_order_acquire);
  if (i & changed_bit) interrupt_.fetch_and(~changed_bit, std::memory_order_relaxed);
  if (i & probe_bit) {
    // The stall detector asks: a read here tells it the unit it saw has ended.
    interrupt_.fetch_and(~probe_bit, std::memory_order_relaxed);
    meter_.read(std::chrono::steady_clock::now());
  }
  if (i & inbox_bit) drain_inbox();
  return (i & (preempt_bit | stop_bit)) || !running_.load(std::memory_order_relaxed);
}

/// When a tick's units stop. Without a termination predicate: at the slice's deadline, the
/// clock read after every check_interval_ units (adapted so that a read comes about every
/// check_period_), the preemption timer cutting in when units outgrow the interval. With
/// one: when the predicate says so, asked after every unit as Twisted asks it; no deadline,
/// no preemption then. The tick's loops count units down to the next check and call
/// check() when it is due; only this class knows which way the tick ends.
class core_impl::tick_end {
public:
  using clock = std::chrono::steady_clock;

  explicit tick_end(core_impl& core) noexcept : core_(core), by_predicate_(static_cast<bool>(core.termination_)) {
    if (by_predicate_) {
      try {
        predicate_ = core.termination_();
      } catch (...) {
      }
      last_ = clock::now();
      core.meter_.start(last_);  // busy time from the reads at each end of the tick
    } else {
      last_ = core.begin_slice();
      deadline_ = last_ + core.slice_;
    }
  }
  ~tick_end() {
    if (!by_predicate_) core_.end_slice();
  }
  tick_end(const tick_end&) = delete;
  tick_end& operator=(const tick_end&) = delete;

  bool by_predicate() const noexcept { return by_predicate_; }

  /// Units before the first check() is due (the loops count them down in a register).
  std::uint32_t first_check() const noexcept { return by_predicate_ || shake_out ? 1 : core_.check_interval_; }

  /// Due after the unit of `ran` (null when it finished or was refused): true ends the
  /// tick; `until_check` gets the units to the next check. The predicate may control
  /// tasks; it sees `ran` as the task whose unit has just ended, and `ran` becomes null
  /// if what it did retired that task.
  bool check(task_base*& ran, std::uint32_t& until_check) noexcept {
    if (by_predicate_) {
      until_check = 1;
      core_.unit_just_ended_ = ran;
      bool end = true;
      try {
        end = !predicate_ || predicate_();
      } catch (...) {
      }
      ran = std::exchange(core_.unit_just_ended_, nullptr);  // retire() clears it
      return end || shake_out;
    }
    const auto now = clock::now();
    core_.meter_.read(now);
    core_.adapt_check_interval(now - last_, core_.check_interval_);
    last_ = now;
    until_check = core_.check_interval_;
    return shake_out || now >= deadline_;
  }

  /// Reads the clock for the weighted turns: the time since the last read (all of it is
  /// charged to the turn that ran then), and whether the slice is over.
  clock::duration read() noexcept {
    const auto now = clock::now();
    core_.meter_.read(now);
    const auto elapsed = now - last_;
    last_ = now;
    over_ = !by_predicate_ && (shake_out || now >= deadline_);
    return elapsed;
  }
  /// The slice was over at the last read().
  bool over() const noexcept { return over_; }
  /// What is left of the slice after the last read() (a turn's batch is sized to it).
  std::int64_t left_ns() const noexcept { return by_predicate_ ? 0 : (deadline_ - last_).count(); }

private:
  core_impl& core_;
  const bool by_predicate_;
  std::function<bool()> predicate_;
  clock::time_point last_;
  clock::time_point deadline_;
  bool over_ = false;
};

void core_impl::run_tick() noexcept {
  // A tick that leaves tasks runnable is one of a run of full ticks that keep this thread
  // in user space. The kernel may leave a thread it woke meanwhile waiting for its own
  // next timer tick (up to 4 ms at HZ=250) before it preempts one that makes no system
  // call: yielding here, outside the lock, lets such a thread (another of the server's
  // threads, or a process beside it) run within a slice. With none waiting it returns at
  // once (~1 us, once per slice).
  if (run_units() && yield_cpu_) std::this_thread::yield();
}

bool core_impl::run_units() noexcept {
  lock l(*this);
  tick_posted_ = false;
  interrupt_.fetch_and(~stop_bit, std::memory_order_relaxed);
  drain_inbox();
  if (!running_.load(std::memory_order_relaxed) || policy_.empty()) return false;
  in_tick_ = true;
  if (timer_entry_.stall_ns > 0) {
    // Which thread the stall detector's signal must reach while this tick's units run.
    thread_local const long this_thread = stall_capture::this_thread_id();
    timer_entry_.tick_thread.store(this_thread, std::memory_order_seq_cst);
    preemption_timer::tick_started();
  }
  // Pairs with wait_out_unit(): a caller that reads an even epoch changed the control
  // word before this point, so every claim below sees the change. Only the lock holder
  // writes the epoch.
  const std::uint32_t epoch = units_epoch_.load(std::memory_order_relaxed) + 1;
  units_epoch_.store(epoch, std::memory_order_seq_cst);
  if (asymmetric_fences_) full_fence();  // the claims' loads are relaxed then
  {
    tick_end end(*this);
    if (weighted()) run_weighted_turns(end);
    else run_round_robin(end);
  }
  count_tick();
  units_epoch_.store(epoch + 1, std::memory_order_release);
  timer_entry_.tick_thread.store(0, std::memory_order_relaxed);
  in_tick_ = false;
  drain_inbox();
  unit_just_ended_ = nullptr;
  // A pool's member with tasks to spare gives some to an idle member (task_moves.cpp).
  if (pool_ && policy_.size() >= 2 && !stopped_ && running_.load(std::memory_order_relaxed)) donate();
  if (!running_.load(std::memory_order_relaxed) || policy_.empty()) return false;
  try {
    schedule_tick(true);
  } catch (...) {
    tick_lost_ = true;  // out of memory: post it again later
    retry_needed();
  }
  return true;
}

bool core_impl::begin_turn(task_base& t) noexcept {
  if (t.rejoined_) {
    // Time paused, waiting or queued banks no credit; a debt (a turn overrun) is kept.
    t.rejoined_ = false;
    t.credit_ = std::min(t.credit_, 0);
  }
  const std::int32_t shares = t.shares_.load(std::memory_order_relaxed);
  t.credit_ += by_time_ ? shares * time_turn_ns / 100 : shares;  // at most 10 ms in ns
  return has_credit(t);
}

bool core_impl::interrupted(task_base& t, task_base*& ran) noexcept {
  // A task finished during its own unit raised changed_bit (note_change).
  if (running_task_finished_) {
    after_unit(t, run_outcome::more);
    ran = nullptr;
  }
  unit_just_ended_ = ran;
  const bool end = handle_interrupt();
  unit_just_ended_ = ran = nullptr;  // what handle_interrupt() applied may have retired it
  return end;
}

std::chrono::steady_clock::time_point core_impl::begin_slice() noexcept {
  const auto start = std::chrono::steady_clock::now();
  interrupt_.fetch_and(~preempt_bit, std::memory_order_relaxed);
  // The stall detector's first probe, made by the tick (preemption_timer.hpp): the first
  // unit's end is a boundary the watchdog sees.
  if (timer_entry_.stall_ns > 0) probe();
  meter_.start(start);
  timer_entry_.tick_start_ns.store(start.time_since_epoch().count(), std::memory_order_seq_cst);
  preemption_timer::tick_started();
  return start;
}

void core_impl::end_slice() noexcept {
  timer_entry_.tick_start_ns.store(0, std::memory_order_relaxed);
  // Preempted by the timer: units got slower than the interval learned; relearn it.
  if (interrupt_.load(std::memory_order_relaxed) & preempt_bit) check_interval_ = 1;
}

void core_impl::run_round_robin(tick_end& end) noexcept {
  std::uint32_t until_check = end.first_check();  // units before the next check
  task_base* ran = nullptr;  // the task whose unit just ended, if it is still active
  const bool fences = asymmetric_fences_;
  // A task whose claim failed: paused or finished from another thread, it must not run.
  const auto refuse = [&](task_base& u) {
    running_task_.store(nullptr, std::memory_order_release);
    ran = nullptr;
    update_placement(u);
  };
  while (task_base* t = policy_.next()) {
    if (!claim(*t, fences)) [[unlikely]] {
      refuse(*t);
      continue;
    }
    ran = t;
    if (policy_.lone()) {
      // A lone task runs a batch of units inside its own run(): no virtual call per
      // unit. Any change ends the batch through interrupt_ or its control_.
      const run_result r = t->run(until_check, interrupt_);
      running_task_.store(nullptr, std::memory_order_release);
      meter_.ran(*t, r.units);
      if (r.outcome != run_outcome::more) {
        after_unit(*t, r.outcome);
        ran = nullptr;
      }
      until_check -= r.units;
    } else {
      run_outcome outcome = t->run_one();
      running_task_.store(nullptr, std::memory_order_release);
      meter_.ran(*t, 1);
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
        in_place_walk w{.running = &running_task_, .interrupt = &interrupt_, .fences = fences, .rate = meter_.rate()};
        if (policy_.start_walk(w, until_check)) {
          // On while a task is in place at the cursor and nothing happened.
          while (w.next != w.stop && *w.next) {
            outcome = (*w.next)->run_turns(w);
            if (w.refused || outcome != run_outcome::more || interrupt_.load(std::memory_order_acquire))
              break;
          }
          policy_.end_walk();
          const auto walked = static_cast<std::uint32_t>(w.passed) - (w.refused ? 1 : 0);
          if (walked) meter_.walked(walked);
          until_check -= walked;
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
    if (interrupt_.load(std::memory_order_acquire) && interrupted(*t, ran)) [[unlikely]]
      break;
    if (until_check == 0 && end.check(ran, until_check)) break;
  }
  unit_just_ended_ = ran;  // for the requests run_tick() applies after the units
}

void core_impl::run_weighted_turns(tick_end& end) noexcept {
  // fairness::units counts units down to the check; fairness::time reads the clock after
  // every batch (and so does a lone task's batch).
  std::uint32_t until_check = end.first_check();
  task_base* ran = nullptr;  // the task whose unit just ended, if it is still active
  const bool fences = asymmetric_fences_;
  for (;;) {
    task_base* t = policy_.take_held();
    const bool continuing = t != nullptr;
    if (!t && !(t = policy_.next())) break;
    // Alone, a task owes nothing for its time (fairness by time; with fairness::units its
    // turns are kept, so the order does not depend on when a paused task leaves the ring).
    const bool lone = by_time_ && policy_.lone();
    if (!lone && !continuing && !begin_turn(*t)) continue;  // skips this turn
    if (!claim(*t, fences)) [[unlikely]] {
      running_task_.store(nullptr, std::memory_order_release);
      ran = nullptr;
      update_placement(*t);  // paused or finished from another thread: it must not run
      continue;
    }
    ran = t;
    run_result r{0, run_outcome::more};
    if (lone) {
      // It runs batches as the round-robin tick does, and keeps no debt that would hold
      // it back when others join.
      t->credit_ = 0;
      r = t->run(end.by_predicate() ? 1 : check_interval_, interrupt_);
      meter_.ran(*t, r.units);
      adapt_check_interval(end.read(), std::max<std::uint32_t>(r.units, 1));
    } else if (by_time_) {
      // Batches of units, the clock read after each and the time charged to the turn.
      // The first batch is one unit (this task's units may cost anything); each next one
      // is sized from the units so far to fill what is left of the turn and the slice,
      // at most doubling. With a termination predicate, one unit: it is asked after each.
      std::uint32_t batch = 1;
      for (;;) {
        r = t->run(batch, interrupt_);
        meter_.ran(*t, r.units);
        const auto elapsed = end.read();
        charge(*t, elapsed.count());
        if (r.outcome != run_outcome::more || r.units < batch || end.over() || end.by_predicate() ||
            !has_credit(*t) || interrupt_.load(std::memory_order_acquire))
          break;
        const std::int64_t per_unit = std::max<std::int64_t>(1, elapsed.count() / std::max<std::uint32_t>(r.units, 1));
        const std::int64_t left = std::min<std::int64_t>(t->credit_, end.left_ns());
        batch = static_cast<std::uint32_t>(std::clamp<std::int64_t>(left / per_unit, 1, std::int64_t{batch} * 2));
      }
    } else {
      const auto units = static_cast<std::uint32_t>(std::min<std::int64_t>(t->credit_ / unit_cost, until_check));
      r = t->run(units, interrupt_);
      meter_.ran(*t, r.units);
      charge(*t, std::int64_t{r.units} * unit_cost);
      until_check -= std::min(until_check, r.units);
    }
    running_task_.store(nullptr, std::memory_order_release);
    if (r.outcome != run_outcome::more) [[unlikely]] {
      after_unit(*t, r.outcome);
      ran = nullptr;
    } else if (!lone && has_credit(*t)) {
      policy_.hold(*t);  // its turn was cut short: it goes on first
    }
    if (interrupt_.load(std::memory_order_acquire) && interrupted(*t, ran)) [[unlikely]]
      break;
    // By time (and for a lone task) the clock was read after the batch; fairness::units
    // counts units down to the check; a predicate is asked after every unit.
    const bool check_due = end.by_predicate() || (!by_time_ && until_check == 0);
    if (check_due ? end.check(ran, until_check) : end.over()) break;
  }
  unit_just_ended_ = ran;  // for the requests run_tick() applies after the units
}

}  // namespace coop::detail
