// SPDX-License-Identifier: BSL-1.0
// Threads: an io_context run by three threads, a cooperator with many tasks, and foreign
// threads (and units) calling pause/resume/stop/cooperate/when_done at random. Checked:
// units of one cooperator never overlap and run on its strand; after pause() or stop()
// returns no new unit of that task starts; every when_done completes exactly once, with
// the result that matches how its task finished; run() returns at the end (no work
// leaks). Also run under ThreadSanitizer (label "threads"): iteration counts are modest.
#define BOOST_TEST_MODULE threads
#include <boost/test/unit_test.hpp>

#include <coop/coop.hpp>
#include "core_mutex.hpp"  // src/: white-box

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace asio = boost::asio;

namespace {

constexpr int run_threads = 3;
constexpr int foreign_threads = 2;

// Counters every thread updates; only the main thread reads them, after all joined.
struct checks {
  std::atomic<bool> in_unit{false};
  std::atomic<int> overlapping_units{0};
  std::atomic<int> units_after_pause_or_stop{0};
  std::atomic<int> units_off_strand{0};
  std::atomic<long> units{0};
  std::atomic<int> registered{0};
  std::atomic<int> completed{0};
  std::atomic<int> dropped{0};
  std::atomic<int> invoked_twice{0};
  std::atomic<int> invoked_moved_from{0};
  std::atomic<int> handler_on_wrong_executor{0};
  std::atomic<int> unexpected_error_codes{0};
  std::atomic<int> unexpected_exceptions{0};
};

// One task as the test sees it. The flags are set only after the pause()/stop() that
// justifies them has returned, and cleared before the resume() that undoes them.
struct run_state {
  explicit run_state(int l) : limit(l) {}
  const int limit;
  std::atomic<int> units{0};
  std::atomic<bool> paused_by_test{false};
  std::atomic<bool> stopped_by_test{false};
  std::atomic<int> waiters{0};
  std::atomic<int> results_null{0};
  std::atomic<int> results_task_stopped{0};
  std::atomic<int> results_scheduler_stopped{0};
  std::atomic<int> results_other{0};
};

// A unit: checks the invariants at its start, does a little work, counts.
auto make_work(std::shared_ptr<run_state> state, checks& c, const coop::cooperator& coop) {
  return [state = std::move(state), &c, &coop] {
    if (c.in_unit.exchange(true)) ++c.overlapping_units;
    if (state->paused_by_test.load() || state->stopped_by_test.load()) ++c.units_after_pause_or_stop;
    if (!coop.get_executor().running_in_this_thread()) ++c.units_off_strand;
    volatile unsigned spin = 0;
    for (unsigned i = 0; i < 32; ++i) spin = spin + i;
    const int n = ++state->units;
    ++c.units;
    c.in_unit.store(false);
    return n < state->limit ? coop::step::more : coop::step::done;
  };
}

// A move-only when_done handler that must run exactly once, on the executor it expects.
class waiter {
public:
  waiter(std::shared_ptr<run_state> state, checks& c, std::function<bool()> on_right_executor)
      : state_(std::move(state)), checks_(&c), on_right_executor_(std::move(on_right_executor)) {
    ++checks_->registered;
    ++state_->waiters;
  }
  waiter(waiter&& other) noexcept
      : state_(std::move(other.state_)),
        checks_(std::exchange(other.checks_, nullptr)),
        on_right_executor_(std::move(other.on_right_executor_)),
        invoked_(other.invoked_) {}
  waiter& operator=(waiter&&) = delete;
  ~waiter() {
    if (checks_ && !invoked_) ++checks_->dropped;
  }

  void operator()(std::exception_ptr ep) {
    if (!checks_) {   // a moved-from handler cannot reach the checks: count globally
      moved_from_calls().fetch_add(1);
      return;
    }
    if (invoked_) ++checks_->invoked_twice;
    invoked_ = true;
    if (on_right_executor_ && !on_right_executor_()) ++checks_->handler_on_wrong_executor;
    if (!ep) {
      ++state_->results_null;
    } else {
      try {
        std::rethrow_exception(ep);
      } catch (const coop::task_stopped&) {
        ++state_->results_task_stopped;
      } catch (const coop::scheduler_stopped&) {
        ++state_->results_scheduler_stopped;
      } catch (...) {
        ++state_->results_other;
      }
    }
    ++checks_->completed;
  }

  static std::atomic<int>& moved_from_calls() {
    static std::atomic<int> n{0};
    return n;
  }

private:
  std::shared_ptr<run_state> state_;
  checks* checks_;
  std::function<bool()> on_right_executor_;
  bool invoked_ = false;
};

bool is_finished_code(const boost::system::error_code& ec) {
  return ec == coop::make_error_code(coop::error::task_done) ||
         ec == coop::make_error_code(coop::error::task_stopped) ||
         ec == coop::make_error_code(coop::error::scheduler_stopped);
}

// Runs io on `n` threads; wait_all() gives false if they do not all return in time.
class runners {
public:
  runners(asio::io_context& io, int n) : io_(io) {
    for (int i = 0; i < n; ++i) futures_.push_back(std::async(std::launch::async, [&io] { io.run(); }));
  }
  bool wait_all(std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    bool all = true;
    for (auto& f : futures_)
      if (f.wait_until(deadline) != std::future_status::ready) all = false;
    if (!all) io_.stop();   // let the threads go so the test can report
    for (auto& f : futures_) f.get();
    return all;
  }

private:
  asio::io_context& io_;
  std::vector<std::future<void>> futures_;
};

// Registers a when_done on `task` with one of three kinds of handler: no executor (must
// run on the cooperator's strand), bound to the io_context, bound to another strand.
void wait_on(coop::cooperative_task& task, const std::shared_ptr<run_state>& state, checks& c,
             const coop::cooperator& coop, asio::io_context& io,
             const asio::strand<asio::io_context::executor_type>& other, unsigned choice) {
  switch (choice % 3) {
    case 0:
      task.when_done(waiter(state, c, [&coop] { return coop.get_executor().running_in_this_thread(); }));
      break;
    case 1:
      task.when_done(asio::bind_executor(
          io, waiter(state, c, [&io] { return io.get_executor().running_in_this_thread(); })));
      break;
    default:
      task.when_done(asio::bind_executor(
          other, waiter(state, c, [other] { return other.running_in_this_thread(); })));
      break;
  }
}

void check_counters(const checks& c) {
  BOOST_TEST(c.overlapping_units.load() == 0);
  BOOST_TEST(c.units_after_pause_or_stop.load() == 0);
  BOOST_TEST(c.units_off_strand.load() == 0);
  BOOST_TEST(c.completed.load() == c.registered.load());
  BOOST_TEST(c.dropped.load() == 0);
  BOOST_TEST(c.invoked_twice.load() == 0);
  BOOST_TEST(waiter::moved_from_calls().load() == 0);
  BOOST_TEST(c.handler_on_wrong_executor.load() == 0);
  BOOST_TEST(c.unexpected_error_codes.load() == 0);
  BOOST_TEST(c.unexpected_exceptions.load() == 0);
  BOOST_TEST(c.units.load() > 0);
  BOOST_TEST(c.registered.load() > 0);
}

// Every task has finished, and all its waiters got the result that matches how.
void check_task_results(const std::vector<std::pair<coop::cooperative_task, std::shared_ptr<run_state>>>& all) {
  int unfinished = 0, mismatched = 0, over_limit = 0;
  for (const auto& [handle, state] : all) {
    auto task = handle;
    boost::system::error_code ec;
    task.pause(ec);
    const int waiters = state->waiters.load();
    if (state->units.load() > state->limit) ++over_limit;
    if (state->results_other.load() != 0) ++mismatched;
    if (ec == coop::make_error_code(coop::error::task_done)) {
      if (state->results_null.load() != waiters || state->units.load() != state->limit) ++mismatched;
    } else if (ec == coop::make_error_code(coop::error::task_stopped)) {
      if (state->results_task_stopped.load() != waiters) ++mismatched;
    } else if (ec == coop::make_error_code(coop::error::scheduler_stopped)) {
      if (state->results_scheduler_stopped.load() != waiters) ++mismatched;
    } else {
      ++unfinished;
    }
  }
  BOOST_TEST(unfinished == 0);
  BOOST_TEST(mismatched == 0);
  BOOST_TEST(over_limit == 0);
}

// ---------------------------------------------------------------------------------------
// Foreign threads drive the tasks; the test serialises its own calls on one task (a mutex
// per slot) only to know when a task is paused by it, never around units.

struct slot {
  std::mutex mutex;
  std::optional<coop::cooperative_task> task;   // optional: the API has no empty handle
  std::shared_ptr<run_state> state;
  int pauses = 0;   // pauses the test made and has not resumed yet
};

void foreign_threads_drive_the_cooperator(coop::cooperator_options options, int iterations) {
  asio::io_context io(run_threads);
  auto guard = asio::make_work_guard(io);
  auto other = asio::make_strand(io);
  coop::cooperator coop(io, std::move(options));
  checks c;

  std::mutex all_mutex;   // guards `all` and orders cooperate() against coop.stop()
  std::vector<std::pair<coop::cooperative_task, std::shared_ptr<run_state>>> all;

  // Puts a new task in `s` (whose mutex the caller holds, if threads are running).
  auto add_task = [&](slot& s, int limit) {
    auto state = std::make_shared<run_state>(limit);
    std::lock_guard lock(all_mutex);
    s.task.emplace(coop.cooperate(make_work(state, c, coop)));
    s.state = state;
    all.emplace_back(*s.task, state);
  };

  std::vector<slot> slots(24);
  for (std::size_t i = 0; i < slots.size(); ++i) {
    add_task(slots[i], 50 + static_cast<int>(i) * 10);
    wait_on(*slots[i].task, slots[i].state, c, coop, io, other, static_cast<unsigned>(i));
  }

  runners run(io, run_threads);

  auto drive = [&](unsigned seed) {
    std::mt19937 rng(seed);
    for (int i = 0; i < iterations; ++i) {
      slot& s = slots[rng() % slots.size()];
      const unsigned op = rng() % 1000;
      boost::system::error_code ec;
      try {
        if (op < 250) {                      // pause
          std::lock_guard lock(s.mutex);
          s.task->pause(ec);
          if (!ec) {
            ++s.pauses;
            s.state->paused_by_test = true;
          } else if (!is_finished_code(ec)) {
            ++c.unexpected_error_codes;
          }
        } else if (op < 500) {               // resume
          std::lock_guard lock(s.mutex);
          if (s.pauses > 0) {
            if (s.pauses == 1) s.state->paused_by_test = false;
            s.task->resume(ec);               // matched: succeeds, or no-op once finished
            --s.pauses;
            if (ec) ++c.unexpected_error_codes;
          } else {
            s.task->resume(ec);
            if (ec != coop::make_error_code(coop::error::not_paused)) ++c.unexpected_error_codes;
          }
        } else if (op < 570) {               // stop
          std::lock_guard lock(s.mutex);
          s.task->stop(ec);
          if (!ec) s.state->stopped_by_test = true;
          else if (!is_finished_code(ec)) ++c.unexpected_error_codes;
        } else if (op < 700) {               // cooperate: a new task takes the slot
          std::lock_guard lock(s.mutex);
          // Undo the test's pauses of the old task; it runs on (or has finished) alone.
          if (s.pauses > 0) s.state->paused_by_test = false;
          for (; s.pauses > 0; --s.pauses) {
            s.task->resume(ec);
            if (ec) ++c.unexpected_error_codes;
          }
          add_task(s, 10 + static_cast<int>(rng() % 150));
          if (rng() % 2) wait_on(*s.task, s.state, c, coop, io, other, rng());
        } else if (op < 990) {               // when_done
          std::optional<coop::cooperative_task> task;
          std::shared_ptr<run_state> state;
          {
            std::lock_guard lock(s.mutex);
            task = s.task;
            state = s.state;
          }
          wait_on(*task, state, c, coop, io, other, rng());
        } else if (op == 990) {              // stop and restart the cooperator
          std::lock_guard lock(all_mutex);
          coop.stop();
          for (auto& entry : all) entry.second->stopped_by_test = true;
          coop.start();
        } else {                             // running(): true outside a stop/start pair
          std::lock_guard lock(all_mutex);
          if (!coop.running()) ++c.unexpected_error_codes;
        }
      } catch (...) {
        ++c.unexpected_exceptions;
      }
    }
  };

  std::vector<std::thread> drivers;
  for (int t = 0; t < foreign_threads; ++t) drivers.emplace_back(drive, 1234u + static_cast<unsigned>(t));
  for (auto& t : drivers) t.join();

  // Let everything finish: undo the remaining pauses, then release the guard. Every task
  // is finite, so run() must return once the last one is done.
  for (auto& s : slots) {
    std::lock_guard lock(s.mutex);
    if (s.pauses > 0) s.state->paused_by_test = false;
    for (; s.pauses > 0; --s.pauses) {
      boost::system::error_code ec;
      s.task->resume(ec);
      if (ec) ++c.unexpected_error_codes;
    }
  }
  guard.reset();
  BOOST_TEST(run.wait_all(std::chrono::seconds(120)), "io_context::run() did not return: work leaked");

  check_counters(c);
  check_task_results(all);
  BOOST_TEST_MESSAGE("units " << c.units.load() << ", waits " << c.registered.load() << ", tasks " << all.size());
}

}  // namespace

BOOST_AUTO_TEST_CASE(foreign_threads_with_time_slices) {
  foreign_threads_drive_the_cooperator(coop::cooperator_options{}, 5000);
}

BOOST_AUTO_TEST_CASE(foreign_threads_with_one_unit_per_tick) {
  // Many more tick boundaries: control calls meet the strand handoff far more often.
  coop::cooperator_options options;
  options.termination = [] { return [] { return true; }; };
  foreign_threads_drive_the_cooperator(std::move(options), 5000);
}

// ---------------------------------------------------------------------------------------
// Units themselves (on the strand) and foreign threads both call into the cooperator, with
// no test lock anywhere near a unit.

BOOST_AUTO_TEST_CASE(units_and_foreign_threads_call_everything) {
  asio::io_context io(run_threads);
  auto guard = asio::make_work_guard(io);
  auto other = asio::make_strand(io);
  coop::cooperator coop(io);
  checks c;
  constexpr int task_count = 16;
  constexpr int iterations = 3000;
  std::atomic<int> spawned_by_units{0};

  // Fixed before any thread starts, read-only afterwards.
  std::vector<std::pair<coop::cooperative_task, std::shared_ptr<run_state>>> tasks;
  tasks.reserve(task_count);
  std::vector<std::shared_ptr<run_state>> states;
  for (int i = 0; i < task_count; ++i) states.push_back(std::make_shared<run_state>(1 << 30));

  std::mutex extra_mutex;
  std::vector<std::pair<coop::cooperative_task, std::shared_ptr<run_state>>> extra;

  // One random control call on a random task of the fixed set.
  auto act = [&](std::uint64_t r) {
    auto& [task_ref, state] = tasks[r % task_count];
    auto task = task_ref;
    boost::system::error_code ec;
    switch ((r >> 8) % 6) {
      case 0:
        task.pause(ec);
        if (ec && !is_finished_code(ec)) ++c.unexpected_error_codes;
        break;
      case 1:
        task.resume(ec);
        if (ec && ec != coop::make_error_code(coop::error::not_paused)) ++c.unexpected_error_codes;
        break;
      case 2:
        if ((r >> 16) % 8 == 0) {   // rare: stopping shrinks the set for good
          task.stop(ec);
          if (!ec) state->stopped_by_test = true;
          else if (!is_finished_code(ec)) ++c.unexpected_error_codes;
        }
        break;
      case 3:
        wait_on(task, state, c, coop, io, other, static_cast<unsigned>(r >> 20));
        break;
      case 4:
        if (spawned_by_units.fetch_add(1) < 300) {
          auto new_state = std::make_shared<run_state>(1 + static_cast<int>((r >> 24) % 40));
          auto new_task = coop.cooperate(make_work(new_state, c, coop));
          wait_on(new_task, new_state, c, coop, io, other, static_cast<unsigned>(r >> 12));
          std::lock_guard lock(extra_mutex);
          extra.emplace_back(new_task, new_state);
        }
        break;
      default:
        (void)coop.running();
        break;
    }
  };

  std::atomic<std::uint64_t> unit_random{0x9e3779b97f4a7c15ULL};
  for (int i = 0; i < task_count; ++i) {
    auto state = states[i];
    auto base = make_work(state, c, coop);
    auto task = coop.cooperate([base, &act, &unit_random]() mutable {
      const coop::step result = base();
      // A quarter of the units make a control call themselves (from the strand).
      std::uint64_t r = unit_random.fetch_add(0x9e3779b97f4a7c15ULL) * 0xbf58476d1ce4e5b9ULL;
      r ^= r >> 31;
      if (r % 4 == 0) act(r >> 2);
      return result;
    });
    tasks.emplace_back(task, state);
  }

  runners run(io, run_threads);

  std::vector<std::thread> drivers;
  for (int t = 0; t < foreign_threads; ++t)
    drivers.emplace_back([&, t] {
      std::mt19937_64 rng(99 + t);
      for (int i = 0; i < iterations; ++i) {
        try {
          act(rng());
        } catch (...) {
          ++c.unexpected_exceptions;
        }
      }
    });
  for (auto& t : drivers) t.join();

  // Finish the fixed set (units may still be pausing and resuming each other until the
  // last one is stopped); the tasks units spawned are finite and nobody pauses them.
  for (auto& [task, state] : tasks) {
    auto handle = task;
    boost::system::error_code ec;
    handle.stop(ec);
    if (!ec) state->stopped_by_test = true;
    else if (!is_finished_code(ec)) ++c.unexpected_error_codes;
  }
  guard.reset();
  BOOST_TEST(run.wait_all(std::chrono::seconds(120)), "io_context::run() did not return: work leaked");

  check_counters(c);
  std::vector<std::pair<coop::cooperative_task, std::shared_ptr<run_state>>> all = tasks;
  all.insert(all.end(), extra.begin(), extra.end());
  // The fixed set's limit is never reached: each of those ended stopped.
  check_task_results(all);
  BOOST_TEST_MESSAGE("units " << c.units.load() << ", waits " << c.registered.load() << ", spawned "
                              << extra.size());
}

// ---------------------------------------------------------------------------------------
// coiterate and cooperator stop/start from several threads at once.

BOOST_AUTO_TEST_CASE(concurrent_coiterate_and_cooperator_stop) {
  asio::io_context io(run_threads);
  auto guard = asio::make_work_guard(io);
  coop::cooperator coop(io);
  checks c;
  std::atomic<int> completions{0}, registered{0}, done{0}, stopped{0}, other{0};
  std::atomic<int> dropped{0};

  struct counting_handler {
    std::atomic<int>* completions;
    std::atomic<int>* done;
    std::atomic<int>* stopped;
    std::atomic<int>* other;
    std::atomic<int>* dropped;
    bool live = true;
    counting_handler(std::atomic<int>* a, std::atomic<int>* b, std::atomic<int>* s, std::atomic<int>* o,
                     std::atomic<int>* d)
        : completions(a), done(b), stopped(s), other(o), dropped(d) {}
    counting_handler(counting_handler&& h) noexcept
        : completions(h.completions), done(h.done), stopped(h.stopped), other(h.other), dropped(h.dropped),
          live(std::exchange(h.live, false)) {}
    ~counting_handler() {
      if (live) ++*dropped;
    }
    void operator()(std::exception_ptr ep) {
      if (!live) {
        ++*other;   // invoked twice or after a move
        return;
      }
      live = false;
      ++*completions;
      if (!ep) {
        ++*done;
        return;
      }
      try {
        std::rethrow_exception(ep);
      } catch (const coop::scheduler_stopped&) {
        ++*stopped;
      } catch (...) {
        ++*other;
      }
    }
  };

  runners run(io, run_threads);
  std::vector<std::thread> drivers;
  for (int t = 0; t < foreign_threads + 1; ++t)
    drivers.emplace_back([&, t] {
      std::mt19937 rng(7 + t);
      for (int i = 0; i < 600; ++i) {
        if (t == foreign_threads && i % 200 == 100) {   // one thread stops and restarts
          coop.stop();
          coop.start();
          continue;
        }
        auto state = std::make_shared<run_state>(1 + static_cast<int>(rng() % 30));
        ++registered;
        coop.coiterate(make_work(state, c, coop),
                       counting_handler(&completions, &done, &stopped, &other, &dropped));
      }
    });
  for (auto& t : drivers) t.join();
  guard.reset();
  BOOST_TEST(run.wait_all(std::chrono::seconds(120)), "io_context::run() did not return: work leaked");

  BOOST_TEST(c.overlapping_units.load() == 0);
  BOOST_TEST(c.units_off_strand.load() == 0);
  BOOST_TEST(completions.load() == registered.load());
  BOOST_TEST(done.load() + stopped.load() == registered.load());
  BOOST_TEST(other.load() == 0);
  BOOST_TEST(dropped.load() == 0);
  BOOST_TEST(done.load() > 0);
  BOOST_TEST_MESSAGE("coiterate: " << done.load() << " done, " << stopped.load() << " scheduler_stopped");
}

// A pause from one place and a resume from another thread while a tick runs (the resume
// cannot take the cooperator's lock: it marks the task and leaves the move to the tick).
// Twisted's order still holds: the resumed task joins at the end of the order, and a
// task paused outside a tick never runs where it was. Deterministic: the foreign thread
// is joined inside the unit, and ticks are counted by a termination predicate.
BOOST_AUTO_TEST_CASE(resume_from_another_thread_during_a_tick_joins_at_the_end) {
  asio::io_context ioc;
  int budget = 1;  // units in the next tick
  coop::cooperator c(ioc, {.termination = [&] {
                       return [left = budget]() mutable { return --left == 0; };
                     }});
  std::vector<std::string> log;
  std::optional<coop::cooperative_task> a;
  auto named = [&](std::string name, int count, std::function<void(int)> also = {}) {
    return [&log, name, count, also, n = 0]() mutable {
      ++n;
      log.push_back(name + std::to_string(n));
      if (also) also(n);
      return n >= count ? coop::step::done : coop::step::more;
    };
  };
  c.cooperate(named("X", 2));
  c.cooperate(named("B", 2, [&](int n) {
    if (n == 1) std::thread([&] { a->resume(); }).join();  // the tick holds the lock now
  }));
  a = c.cooperate(named("A", 2));
  c.cooperate(named("C", 2));
  // A re-posted tick takes several handlers (hops); run handlers until the tick ran.
  while (log.empty()) BOOST_TEST_REQUIRE(ioc.run_one() == 1u);  // tick 1: X1
  BOOST_TEST_REQUIRE(log.size() == 1u);
  a->pause();     // outside a tick: A stays where it is until the tick meets it
  budget = 4;
  // Tick 2: B1 (A resumed from another thread meanwhile), C1, A1, X2 (the shake-out
  // build runs them in a tick each, in the same order).
  while (log.size() < 5u) BOOST_TEST_REQUIRE(ioc.run_one() == 1u);
  const std::vector<std::string> expected{"X1", "B1", "C1", "A1", "X2"};
  BOOST_TEST(log == expected, boost::test_tools::per_element());
  ioc.run();
  BOOST_TEST(log.size() == 8u);
}

// The last task of a round pauses itself in its unit and another thread resumes it during
// that unit (the resume waits in the inbox until the unit ends). Its next turn comes after
// the others', as when the unit resumes itself: it does not run twice in a row.
BOOST_AUTO_TEST_CASE(task_resumed_from_another_thread_during_its_own_unit_goes_behind) {
  for (const bool slices : {true, false}) {
    BOOST_TEST_CONTEXT((slices ? "time slices" : "termination predicate")) {
      asio::io_context ioc;
      coop::cooperator_options options;
      options.slice = std::chrono::seconds(5);  // the whole run fits in one tick
      if (!slices) options.termination = [] { return [] { return false; }; };
      coop::cooperator c(ioc, std::move(options));
      std::vector<std::string> log;
      std::optional<coop::cooperative_task> t;
      auto named = [&](std::string name, std::function<void(int)> also = {}) {
        return [&log, name, also, n = 0]() mutable {
          ++n;
          log.push_back(name + std::to_string(n));
          if (also) also(n);
          return n >= 3 ? coop::step::done : coop::step::more;
        };
      };
      c.cooperate(named("A"));
      c.cooperate(named("B"));
      t = c.cooperate(named("T", [&](int n) {
        if (n != 1) return;
        t->pause();
        std::thread([&] { t->resume(); }).join();
      }));
      ioc.run();
      const std::vector<std::string> expected{"A1", "B1", "T1", "A2", "B2", "T2", "A3", "B3", "T3"};
      BOOST_TEST(log == expected, boost::test_tools::per_element());
    }
  }
}

// The cooperator's own lock (detail::core_mutex): a plain counter changed only under it must
// count every change (TSan also reports a race if it does not exclude), try_lock() fails
// while it is held, and blocked threads wake up. Three threads block in lock() and hold it
// for a while now and then, so that several sleep on it at once (the case a lost wake-up
// needs); a fourth only try_locks. A lost wake-up leaves a thread asleep: the test then
// fails at its deadline instead of hanging.
BOOST_AUTO_TEST_CASE(core_mutex_excludes_and_wakes_sleepers) {
  coop::detail::core_mutex m;
  BOOST_TEST(m.try_lock());
  BOOST_TEST(!m.try_lock());
  m.unlock();

  constexpr int per_thread = 20000;
  constexpr int blocking_threads = 3;
  long counter = 0;
  std::atomic<long> tried_and_got{0};
  std::atomic<int> finished{0};
  std::vector<std::thread> threads;
  for (int i = 0; i <= blocking_threads; ++i)
    threads.emplace_back([&, i] {
      for (int n = 0; n < per_thread; ++n) {
        if (i == blocking_threads) {
          if (!m.try_lock()) continue;
          tried_and_got.fetch_add(1, std::memory_order_relaxed);
        } else {
          m.lock();
        }
        ++counter;
        // Now and then hold the lock long enough for the others to go to sleep on it.
        if (n % 1000 == i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        m.unlock();
      }
      finished.fetch_add(1);
    });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (finished.load() != blocking_threads + 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (finished.load() != blocking_threads + 1) {
    BOOST_ERROR("a thread blocked in core_mutex::lock() was never woken");
    std::_Exit(1);  // it cannot be joined
  }
  for (auto& t : threads) t.join();
  BOOST_TEST(counter == blocking_threads * per_thread + tried_and_got.load());
  BOOST_TEST(m.try_lock());  // left free
  m.unlock();
}
