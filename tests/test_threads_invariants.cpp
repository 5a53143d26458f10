// SPDX-License-Identifier: BSL-1.0
// Thread stress: 3 threads run an io_context that hosts a cooperator while 2 controller
// threads call control operations at random (pause/resume/stop tasks, when_done, new
// tasks, stop/start the cooperator) and units return done, throw, stop themselves or wait
// on themselves, and stats are read. Invariants checked:
//  - units never overlap and always run on the cooperator's strand;
//  - no unit starts after pause() or stop() of its task returned, nor after
//    cooperator::stop() returned for a task that existed before the call;
//  - each when_done completes exactly once (a dropped handler is reported), and every wait
//    on a task sees the same result, the one its pause()/stop() failures announced;
//  - the control calls throw only what the contract allows;
//  - stats never count a unit before it started, and the cooperator's never go back.
// Bounded by time (COOP_THREADS_SECONDS, default 3 s of stress; under TSan ~10 s in all).
// Built again under ThreadSanitizer in CI (name starts with test_threads).
#define BOOST_TEST_MODULE threads_invariants
#include <boost/test/unit_test.hpp>

#include <coop/coop.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/core/demangle.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <shared_mutex>
#include <sstream>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

thread_local bool in_unit = false;   // this thread is inside a unit

struct unit_error : std::runtime_error {
  explicit unit_error(int task) : std::runtime_error("unit_error " + std::to_string(task)) {}
  int task() const { return std::stoi(what() + 11); }
};

std::string describe(const std::exception_ptr& e) {
  if (!e) return "null";
  try {
    std::rethrow_exception(e);
  } catch (const unit_error& u) {
    return "unit_error";
  } catch (const std::exception& x) {
    return boost::core::demangle(typeid(x).name());
  } catch (...) {
    return "non-std exception";
  }
}

// What the task's when_done result must be, given the exception its pause()/stop() threw.
std::string result_for(const std::string& thrown) {
  if (thrown == "coop::task_done") return "null";
  if (thrown == "coop::task_failed") return "unit_error";
  return thrown;   // task_stopped, scheduler_stopped
}

class stress {
public:
  struct wait_state {
    int task = 0;
    std::atomic<int> calls{0};
    std::atomic<bool> dropped{false};
    std::string result;   // written once by the (single) call
  };

  // Fails when dropped (destroyed without being called, once moved into place) or called
  // twice (calls counts them).
  class once_handler {
  public:
    once_handler(stress& s, std::shared_ptr<wait_state> w) : s_(&s), w_(std::move(w)) {}
    once_handler(once_handler&& o) noexcept : s_(o.s_), w_(std::move(o.w_)) {}
    once_handler(const once_handler&) = delete;
    once_handler& operator=(const once_handler&) = delete;
    once_handler& operator=(once_handler&&) = delete;
    ~once_handler() {
      if (w_) w_->dropped = true;
    }
    void operator()(std::exception_ptr e) {
      auto w = std::move(w_);
      if (!w) {
        s_->violation("a when_done handler was called through a moved-from object");
        return;
      }
      if (in_unit) s_->violation("a when_done handler ran inside a unit");
      if (w->calls.fetch_add(1) == 0) w->result = describe(e);
    }

  private:
    stress* s_;
    std::shared_ptr<wait_state> w_;
  };

  struct run_state {
    coop::cooperative_task handle;
    int id = 0;
    std::uint64_t generation = 0;   // cooperator stop()s before its creation
    std::atomic<bool> ready{false};  // handle assigned
    int finite_units = 0;           // 0: runs until stopped
    bool fails = false;
    std::atomic<int> units{0};
    // Set once pause()/stop() returned (and cleared before resume()); a unit that starts
    // while it is set is a violation.
    std::atomic<bool> must_not_run{false};
    std::mutex control;             // serializes the controllers' bookkeeping of this task
    int pauses = 0;                 // guarded by control
    std::string finished_as;        // guarded by control: what pause()/stop() threw
  };

  // `options`: the cooperator's; `weighted`: tasks get shares and controllers change them.
  stress(int seconds, coop::cooperator_options options, bool weighted)
      : seconds_(seconds), options_(std::move(options)), weighted_(weighted) {}

  void run() {
    asio::io_context& ioc = ioc_;
    auto guard = asio::make_work_guard(ioc);
    if (options_.stall_threshold.count() > 0) options_.on_stall = [this](const coop::stall_report&) { ++stalls_reported_; };
    coop::cooperator c(ioc, options_);
    coop_ = &c;
    strand_.emplace(c.get_executor());

    std::vector<std::thread> runners;
    for (int i = 0; i < 3; ++i)
      runners.emplace_back([&] {
        try {
          ioc.run();
        } catch (const std::exception& e) {
          violation(std::string("an exception escaped io_context::run: ") + e.what());
        }
      });

    for (int i = 0; i < 6; ++i) add_task(i);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds_);
    std::vector<std::thread> controllers;
    for (int i = 0; i < 2; ++i)
      controllers.emplace_back([this, i, deadline] { control(static_cast<std::uint64_t>(i) + 1, deadline); });
    for (auto& t : controllers) t.join();

    // Wind down: stop everything, let every completion run, and run() returns once no
    // wait is pending and the cooperator holds no work.
    {
      std::unique_lock lock(coop_mutex_);
      c.stop();
      dead_below_ = ++generation_;
    }
    guard.reset();
    const auto give_up = std::chrono::steady_clock::now() + 60s;   // generous: never expected
    while (!ioc.stopped() && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(10ms);
    if (!ioc.stopped()) {
      violation("io_context::run() did not return 60 s after cooperator::stop(): something holds work");
      ioc.stop();
    }
    for (auto& t : runners) t.join();
    // A report still on its way is counted in stats() first, then made.
    for (int i = 0; i < 100 && c.stats().stalls != static_cast<std::uint64_t>(stalls_reported_.load()); ++i)
      std::this_thread::sleep_for(10ms);
    stalls_counted_ = c.stats().stalls;
    coop_ = nullptr;
    strand_.reset();   // before the io_context (and its strand service) goes
  }

  void check() {
    std::lock_guard lock(tasks_mutex_);
    BOOST_TEST_MESSAGE("stress: " << tasks_.size() << " tasks, " << waits_.size() << " waits, " << units_.load()
                                  << " units, " << control_calls_.load() << " control calls, "
                                  << coop_restarts_.load() << " cooperator stop/start");
    for (auto& v : violations_) BOOST_ERROR(v);
    BOOST_TEST(units_.load() > 0);
    BOOST_TEST(control_calls_.load() > 100);
    if (options_.stall_threshold.count() > 0) {
      BOOST_TEST_MESSAGE("stalls: " << long_units_.load() << " long units, " << stalls_reported_.load() << " reported");
      if (long_units_.load() >= 3) BOOST_TEST(stalls_reported_.load() > 0);
      BOOST_TEST(stalls_counted_.load() == static_cast<std::uint64_t>(stalls_reported_.load()));
    }
    std::vector<std::string> result_of(tasks_.size());
    for (auto& w : waits_) {
      BOOST_TEST(w->calls.load() == 1, "wait on task " << w->task << " completed " << w->calls.load() << " times");
      BOOST_TEST(!w->dropped.load(), "a handler of task " << w->task << " was dropped");
      if (w->calls.load() != 1) continue;
      std::string& r = result_of[static_cast<std::size_t>(w->task)];
      if (r.empty()) r = w->result;
      BOOST_TEST(w->result == r, "task " << w->task << ": waits disagree: " << w->result << " vs " << r);
    }
    for (auto& t : tasks_) {
      const std::string& r = result_of[static_cast<std::size_t>(t->id)];
      if (!t->finished_as.empty() && !r.empty())
        BOOST_TEST(result_for(t->finished_as) == r,
                   "task " << t->id << ": pause/stop threw " << t->finished_as << ", when_done got " << r);
      if (t->finite_units > 0 && r == "null")
        BOOST_TEST(t->units.load() == t->finite_units, "task " << t->id << " done after " << t->units.load() << " units");
    }
  }

private:
  void violation(const std::string& what) {
    std::lock_guard lock(violations_mutex_);
    if (violations_.size() < 20) violations_.push_back(what);
  }

  coop::step unit(run_state& t) {
    if (!strand_->running_in_this_thread()) violation("a unit ran off the strand");
    if (active_.fetch_add(1) != 0) violation("units overlap");
    in_unit = true;
    struct leave {
      stress& s;
      ~leave() {
        in_unit = false;
        s.active_.fetch_sub(1);
      }
    } l{*this};
    if (t.must_not_run.load()) violation("task " + std::to_string(t.id) + ": a unit started after pause()/stop() returned");
    if (t.generation < dead_below_.load())
      violation("task " + std::to_string(t.id) + ": a unit started after cooperator::stop() returned");
    const long all = ++units_;
    int n = ++t.units;
    std::this_thread::yield();   // widen the windows a little
    if (options_.stall_threshold.count() > 0 && all % 500 == 0) {
      // A unit the stall detector must see: its probes and signal race the controllers.
      ++long_units_;
      const auto start = std::chrono::steady_clock::now();
      while (std::chrono::steady_clock::now() - start < 10 * options_.stall_threshold) {
      }
    }
    if (t.finite_units > 0 && n == t.finite_units) {
      if (t.fails) throw unit_error(t.id);
      return coop::step::done;
    }
    if (n % 97 == 0 && t.ready.load()) wait_on(t);   // when_done from inside a unit
    return coop::step::more;
  }

  void add_task(int seed) {
    std::shared_lock lock(coop_mutex_);   // cooperate() never races cooperator stop()/start() here
    add_task_locked(seed);
  }

  // With coop_mutex_ held (shared or exclusive).
  void add_task_locked(int seed) {
    auto t = std::make_shared<run_state>();
    std::mt19937 rng(static_cast<unsigned>(seed));
    t->finite_units = rng() % 3 == 0 ? 0 : static_cast<int>(1 + rng() % 400);
    t->fails = rng() % 4 == 0;
    t->id = next_id_++;
    run_state* raw = t.get();
    t->generation = generation_.load();
    t->handle = coop_->cooperate([this, raw] { return unit(*raw); },
                                 {.shares = weighted_ ? static_cast<unsigned>(1 + rng() % 400) : 100u});
    t->ready = true;   // the handle is set: its units may use it from now on
    {
      std::lock_guard tl(tasks_mutex_);
      tasks_.push_back(t);
    }
    ++control_calls_;
  }

  std::shared_ptr<run_state> pick_task(std::mt19937_64& rng) {
    std::lock_guard lock(tasks_mutex_);
    return tasks_[rng() % tasks_.size()];
  }

  void wait_on(run_state& t) {
    auto w = std::make_shared<wait_state>();
    w->task = t.id;
    {
      std::lock_guard lock(waits_mutex_);
      if (waits_.size() >= 20000) return;
      waits_.push_back(w);
    }
    if (w->task % 2 == 0)
      t.handle.when_done(once_handler(*this, w));   // runs on the cooperator's strand
    else
      t.handle.when_done(asio::bind_executor(io_executor(), once_handler(*this, w)));
  }

  asio::any_io_executor io_executor() { return strand_->get_inner_executor(); }

  // Records how a pause()/stop() found the task finished; it must match when_done.
  void finished(run_state& t, const std::exception& e) {
    std::string name = boost::core::demangle(typeid(e).name());
    if (name != "coop::task_done" && name != "coop::task_stopped" && name != "coop::task_failed" &&
        name != "coop::scheduler_stopped") {
      violation("task " + std::to_string(t.id) + ": pause/stop threw " + name);
      return;
    }
    if (!t.finished_as.empty() && t.finished_as != name)
      violation("task " + std::to_string(t.id) + ": finished as " + t.finished_as + " and later as " + name);
    t.finished_as = name;
    t.must_not_run = true;
  }

  void control(std::uint64_t seed, std::chrono::steady_clock::time_point deadline) {
    std::mt19937_64 rng(seed);
    coop::cooperator_stats seen;  // what this controller last read
    while (std::chrono::steady_clock::now() < deadline) {
      ++control_calls_;
      std::this_thread::yield();   // leave the runners some of the 2 cores
      const auto r = rng() % 1000;
      if (r < 15) {
        if (tasks_size() < 3000) add_task(static_cast<int>(rng() % 100000));
        continue;
      }
      if (r < 17) {
        std::unique_lock lock(coop_mutex_);
        coop_->stop();
        dead_below_ = ++generation_;
        coop_->start();
        ++coop_restarts_;
        for (int i = 0; i < 6; ++i) add_task_locked(static_cast<int>(rng() % 100000));
        continue;
      }
      auto t = pick_task(rng);
      if (r < 100) {
        wait_on(*t);
        continue;
      }
      if (r < 115) {
        // Stats, read while units run: a unit is counted once it has returned, and the
        // cooperator's counts never go back.
        const coop::task_stats ts = t->handle.stats();
        if (ts.units > static_cast<std::uint64_t>(t->units.load()))
          violation("task " + std::to_string(t->id) + ": stats() counts units that never started");
        if (ts.busy.count() < 0 || ts.waited.count() < 0) violation("negative busy or waited time");
        std::shared_lock lock(coop_mutex_);
        const coop::cooperator_stats cs = coop_->stats();
        if (cs.units < seen.units || cs.ticks < seen.ticks || cs.finished < seen.finished || cs.busy < seen.busy)
          violation("cooperator stats went back");
        if (cs.runnable + cs.paused + cs.waiting + cs.queued > tasks_size())
          violation("cooperator stats count more unfinished tasks than were made");
        seen = cs;
        continue;
      }
      if (weighted_ && r >= 930 && r < 950) {
        // Any task, in any state: a finished one ignores it.
        t->handle.set_shares(static_cast<unsigned>(1 + rng() % 400));
        std::lock_guard lock(t->control);  // no resume() of it meanwhile
        const coop::task_state state = t->handle.state();
        if (t->pauses > 0 && (state == coop::task_state::runnable || state == coop::task_state::queued ||
                              state == coop::task_state::waiting))
          violation("task " + std::to_string(t->id) + ": paused, and state() says " + coop::to_string(state));
        continue;
      }
      std::lock_guard lock(t->control);
      if (r < 400) {   // pause
        try {
          t->handle.pause();
          ++t->pauses;
          t->must_not_run = true;
        } catch (const std::exception& e) {
          finished(*t, e);
        }
      } else if (r < 950) {   // resume
        if (t->pauses == 0) {
          try {
            t->handle.resume();
            violation("task " + std::to_string(t->id) + ": resume() without pause() did not throw");
          } catch (const coop::not_paused&) {
          } catch (const std::exception& e) {
            violation(std::string("resume() without pause() threw ") + boost::core::demangle(typeid(e).name()));
          }
        } else {
          if (--t->pauses == 0 && t->finished_as.empty()) t->must_not_run = false;   // before it may run
          boost::system::error_code ec = asio::error::fault;
          t->handle.resume(ec);
          if (ec) violation("task " + std::to_string(t->id) + ": resume() after pause() failed: " + ec.message());
        }
      } else {   // stop
        try {
          t->handle.stop();
          t->finished_as = "coop::task_stopped";
          t->must_not_run = true;
        } catch (const std::exception& e) {
          finished(*t, e);
        }
      }
    }
  }

  std::size_t tasks_size() {
    std::lock_guard lock(tasks_mutex_);
    return tasks_.size();
  }

  int seconds_;
  coop::cooperator_options options_;
  bool weighted_;
  // First member, so destroyed last: the task handles below keep the cooperator's strand,
  // which must not outlive its io_context.
  asio::io_context ioc_;
  coop::cooperator* coop_ = nullptr;
  std::optional<coop::cooperator::executor_type> strand_;
  std::shared_mutex coop_mutex_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<std::uint64_t> dead_below_{0};
  std::mutex tasks_mutex_;
  std::vector<std::shared_ptr<run_state>> tasks_;
  std::mutex waits_mutex_;
  std::vector<std::shared_ptr<wait_state>> waits_;
  std::mutex violations_mutex_;
  std::vector<std::string> violations_;
  std::atomic<int> active_{0};
  std::atomic<int> next_id_{0};
  std::atomic<long> units_{0};
  std::atomic<long> control_calls_{0};
  std::atomic<long> coop_restarts_{0};
  std::atomic<long> long_units_{0};
  std::atomic<long> stalls_reported_{0};
  std::atomic<std::uint64_t> stalls_counted_{0};
};

int stress_seconds() {
  const char* v = std::getenv("COOP_THREADS_SECONDS");
  int s = v && *v ? std::atoi(v) : 3;
  return s > 0 ? s : 3;
}

}  // namespace

BOOST_AUTO_TEST_CASE(invariants_hold_under_concurrent_control) {
  stress s(stress_seconds(), {.termination = [] { return [n = 0]() mutable { return ++n >= 3; }; }}, false);
  s.run();
  s.check();
}

BOOST_AUTO_TEST_CASE(invariants_hold_with_shares_and_a_concurrency_limit) {
  // Weighted turns (shares changed from the controllers) in the time slice's tick, and
  // tasks queued for admission that controllers pause, resume and stop.
  stress s(stress_seconds(), {.slice = 200us, .max_active = 5}, true);
  s.run();
  s.check();
}

BOOST_AUTO_TEST_CASE(invariants_hold_with_fairness_by_time) {
  // With the stall detector: its probes, signals and reports race the controllers.
  stress s(stress_seconds(),
           {.slice = 200us, .fairness = coop::fairness::time, .max_active = 5, .stall_threshold = 2ms}, true);
  s.run();
  s.check();
}
