// SPDX-License-Identifier: BSL-1.0
// Races between a tick, which holds the cooperator's lock while units run, and other
// threads whose requests it applies later (the inbox). Each case drives the interleaving
// by hand: the unit itself waits for the other thread to have made its call, so the
// order is fixed and the case fails the same way every time. Also run under
// ThreadSanitizer (label "threads").
#define BOOST_TEST_MODULE threads_races
#include <boost/test/unit_test.hpp>

#include <coop/coop.hpp>
#include <support/exception_kind.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sys/types.h>
#include <unistd.h>

namespace asio = boost::asio;

// Allocation failure on one thread only: while this thread's flag is set, its next
// operator new throws std::bad_alloc (and clears the flag).
namespace {
thread_local bool fail_next_allocation = false;
// Out of line: the compiler must not pair an inlined malloc with a free it can see.
[[gnu::noinline]] void* allocate(std::size_t n) {
  if (fail_next_allocation) {
    fail_next_allocation = false;
    throw std::bad_alloc();
  }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void deallocate(void* p) noexcept { std::free(p); }
}  // namespace

void* operator new(std::size_t n) { return allocate(n); }
void* operator new[](std::size_t n) { return allocate(n); }
void operator delete(void* p) noexcept { deallocate(p); }
void operator delete[](void* p) noexcept { deallocate(p); }
void operator delete(void* p, std::size_t) noexcept { deallocate(p); }
void operator delete[](void* p, std::size_t) noexcept { deallocate(p); }

// A when_done cancelled from another thread while a tick holds the lock leaves its
// cancellation in the inbox. The task then finishes and the wait's completion runs (and
// frees the operation) before the tick applies the inbox: the queued cancellation must
// not touch the freed operation. Under ASan the stale pointer was a heap-use-after-free.
BOOST_AUTO_TEST_CASE(queued_cancellation_of_a_wait_that_completed_meanwhile) {
  asio::io_context io;
  asio::io_context handlers;  // the wait's handler runs here, run by hand inside the unit
  coop::cooperator coop(io);
  asio::cancellation_signal cancel;
  std::optional<std::string> result;
  coop::cooperative_task self;
  int units = 0;
  self = coop.cooperate([&] {
    ++units;
    // Another thread cancels the wait: the tick holds the lock, so it is queued.
    std::thread([&] { cancel.emit(asio::cancellation_type::terminal); }).join();
    // The task finishes inside its unit: its waiter completes (posted to `handlers`).
    self.stop();
    // The completion runs and frees the operation before the unit ends.
    handlers.run_one();
    return coop::step::more;
  });
  self.when_done(asio::bind_cancellation_slot(
      cancel.slot(), asio::bind_executor(handlers, [&](std::exception_ptr e) { result = coop_test::kind(e); })));
  io.run();
  BOOST_TEST(units == 1);
  BOOST_REQUIRE(result.has_value());
  BOOST_TEST(*result == coop_test::kind<coop::task_stopped>());
}

// The other order: stop() of the cooperator retires the task and completes its waits,
// then cancellations from another thread are queued before those completions run and
// free their operations. Each wait completes exactly once, none is touched afterwards.
BOOST_AUTO_TEST_CASE(queued_cancellations_racing_a_cooperator_stop) {
  asio::io_context io;
  asio::io_context handlers;
  coop::cooperator coop(io);
  constexpr int waits = 16;
  asio::cancellation_signal cancel[waits];
  int completed[waits] = {};
  coop::cooperative_task self;
  self = coop.cooperate([&] {
    coop.stop();  // retires the task from inside its own unit: its waits complete
    // Cancellations arrive after that, before the completions have run: queued.
    std::thread([&] {
      for (auto& c : cancel) c.emit(asio::cancellation_type::terminal);
    }).join();
    while (handlers.run_one() != 0) {
    }
    return coop::step::more;
  });
  for (int i = 0; i < waits; ++i)
    self.when_done(asio::bind_cancellation_slot(cancel[i].slot(),
                                                asio::bind_executor(handlers, [&, i](std::exception_ptr) { ++completed[i]; })));
  io.run();
  handlers.restart();
  handlers.run();
  for (int i = 0; i < waits; ++i) BOOST_TEST(completed[i] == 1);
}

namespace {

// Refuses memory on one thread while `refusing` is set. The first allocation on any other
// thread (the library's watchdog, retrying the post) ends the refusal and runs
// `on_other_thread` first.
struct allocation_control {
  std::thread::id refuse_on = std::this_thread::get_id();
  std::atomic<bool> refusing{false};
  std::function<void()> on_other_thread;
};

template <class T> struct refusing_allocator {
  using value_type = T;
  allocation_control* control;
  explicit refusing_allocator(allocation_control* c) noexcept : control(c) {}
  template <class U> refusing_allocator(const refusing_allocator<U>& other) noexcept : control(other.control) {}
  T* allocate(std::size_t n) {
    if (control->refusing.load()) {
      if (std::this_thread::get_id() == control->refuse_on) throw std::bad_alloc();
      if (control->refusing.exchange(false)) control->on_other_thread();
    }
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>().deallocate(p, n); }
  template <class U> bool operator==(const refusing_allocator<U>& other) const noexcept { return control == other.control; }
};

// Work whose destructor makes (and so also destroys) a cooperator.
struct makes_a_cooperator_when_destroyed {
  asio::io_context* io;
  std::atomic<bool>* destroyed;
  makes_a_cooperator_when_destroyed(asio::io_context* i, std::atomic<bool>* d) : io(i), destroyed(d) {}
  makes_a_cooperator_when_destroyed(makes_a_cooperator_when_destroyed&& other) noexcept
      : io(std::exchange(other.io, nullptr)), destroyed(other.destroyed) {}
  ~makes_a_cooperator_when_destroyed() {
    if (!io) return;
    coop::cooperator inner(*io);
    destroyed->store(true);
  }
  coop::step operator()() { return coop::step::more; }
};

// Waits up to a minute for `flag`; a deadlocked library never sets it, and the process
// could not end cleanly then, so the case aborts with a message instead of hanging.
void require_within_a_minute(const std::atomic<bool>& flag, const char* what) {
  for (int i = 0; i < 60000 && !flag.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!flag.load()) {
    std::fprintf(stderr, "FAILED: %s did not happen within a minute (deadlock)\n", what);
    std::abort();
  }
}

}  // namespace

// The watchdog posts again a completion that ran out of memory. While it holds the
// cooperator's lock for that, another thread stops a task (left in the inbox); releasing
// the lock applies the stop, which destroys the task's work on the watchdog thread, and
// that destructor makes a cooperator. Before, the watchdog did all this holding its own
// mutex, which making (or destroying) a cooperator takes: a self-deadlock.
BOOST_AUTO_TEST_CASE(watchdog_retry_runs_a_destructor_that_makes_a_cooperator) {
  asio::io_context io;
  coop::cooperator coop(io);
  std::atomic<bool> destroyed{false};
  coop::cooperative_task paused = coop.cooperate(makes_a_cooperator_when_destroyed(&io, &destroyed));
  paused.pause();

  allocation_control control;
  // Runs on the watchdog thread, inside its retry, with the cooperator's lock held.
  control.on_other_thread = [&] { std::thread([&] { paused.stop(); }).join(); };
  int units = 0;
  coop::cooperative_task finishing = coop.cooperate([&] {
    if (++units < 2) return coop::step::more;
    control.refusing = true;  // its completion cannot be posted from here
    return coop::step::done;
  });
  std::optional<std::string> result;
  finishing.when_done(asio::bind_allocator(refusing_allocator<int>(&control),
                                           asio::bind_executor(io, [&](std::exception_ptr e) { result = coop_test::kind(e); })));
  io.run();  // until the completion the watchdog posted has run
  BOOST_REQUIRE(result.has_value());
  BOOST_TEST(*result == "null");
  require_within_a_minute(destroyed, "the stopped task's work destructor");
  BOOST_TEST(coop_test::thrown_by([&] { paused.pause(); }) == coop_test::kind<coop::task_stopped>());
}

namespace {
// A service made before the cooperator: services shut down newest first, so its
// shutdown() runs after the cooperator's part of the context's shutdown, and before any
// service is destroyed.
struct shutdown_hook : asio::execution_context::service {
  using key_type = shutdown_hook;
  static inline asio::execution_context::id id;
  explicit shutdown_hook(asio::execution_context& ctx) : service(ctx) {}
  std::function<void()> on_shutdown;
  void shutdown() override {
    if (on_shutdown) on_shutdown();
  }
};
}  // namespace

// get_executor() may be called from any thread at any time, while the context shuts down
// (and gives up the cooperator's strand) too. Before, it read the strand unguarded:
// ThreadSanitizer reported the race with the shutdown, ASan at times a use-after-free of
// the strand's implementation.
BOOST_AUTO_TEST_CASE(get_executor_while_the_context_shuts_down) {
  for (int round = 0; round < 20; ++round) {
    auto io = std::make_unique<asio::io_context>();
    std::atomic<bool> stop{false};
    std::atomic<bool> started{false};
    std::thread reader;
    // The reader ends before any service is destroyed: the strands it copied die with it.
    asio::use_service<shutdown_hook>(*io).on_shutdown = [&] {
      stop = true;
      reader.join();
    };
    coop::cooperator coop(*io);
    reader = std::thread([&] {
      while (!stop) {
        coop::cooperator::executor_type ex = coop.get_executor();
        started = true;
      }
    });
    while (!started) std::this_thread::yield();
    io.reset();
    BOOST_TEST(!reader.joinable());
    BOOST_TEST(!coop.get_executor().running_in_this_thread());
  }
}

// The shape the outside suite crashed with, as a bounded stress: coroutines on an
// io_context run by three threads wait for a task or a timer, whichever comes first (the
// loser's wait is cancelled on the coroutine's strand, while the tick holds the lock on
// another thread), and another thread stops the cooperator. Every coroutine must finish;
// ASan and TSan must stay quiet.
BOOST_AUTO_TEST_CASE(stop_racing_cancelled_waits) {
  using namespace asio::experimental::awaitable_operators;
  constexpr int tasks = 48;
  for (int round = 0; round < 12; ++round) {
    asio::io_context io(3);
    coop::cooperator coop(io);
    std::atomic<int> finished{0};
    for (int i = 0; i < tasks; ++i) {
      coop::cooperative_task task =
          coop.cooperate([n = 0, limit = 1 + (i * 7 + round) % 11]() mutable {
            return ++n < limit ? coop::step::more : coop::step::done;
          });
      // Each coroutine on a strand of its own: Asio's || and its timer share one
      // cancellation state, which must not be touched by two threads at once; the
      // cooperator's tick and stop() still run on other threads.
      asio::co_spawn(
          asio::make_strand(io),
          [&finished, task, delay = std::chrono::microseconds((i % 5) * 40)]() mutable -> asio::awaitable<void> {
            asio::steady_timer timer(co_await asio::this_coro::executor, delay);
            try {
              co_await (task.when_done(asio::use_awaitable) || timer.async_wait(asio::use_awaitable));
            } catch (const std::exception&) {
              // the task stopped or failed: the wait is over either way
            }
            ++finished;
          },
          asio::detached);
    }
    std::thread stopper([&] {
      while (finished.load() < round * tasks / 16) std::this_thread::yield();
      coop.stop();
    });
    std::vector<std::thread> runners;
    for (int r = 0; r < 3; ++r) runners.emplace_back([&] { io.run(); });
    for (auto& r : runners) r.join();
    stopper.join();
    BOOST_TEST(finished.load() == tasks);
  }
}

namespace {
// Whether thread `tid` of this process is asleep (state S in /proc/self/task/<tid>/stat).
bool asleep(pid_t tid) {
  std::ifstream stat("/proc/self/task/" + std::to_string(tid) + "/stat");
  const std::string line((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const std::size_t name_end = line.rfind(')');
  return name_end != std::string::npos && name_end + 2 < line.size() && line[name_end + 2] == 'S';
}
}  // namespace

// cooperate() from another thread while a unit runs leaves the task for the lock holder,
// which admits it at the next unit boundary. Out of memory there, the accepted task used
// to fail later (std::bad_alloc as its result) although cooperate() had returned a
// handle; cooperate() promises std::bad_alloc with nothing changed, and now keeps it: it
// waits for the holder's answer (one unit at most) and throws. The unit holds the lock
// until the other thread's call has returned (before) or sleeps waiting for the answer
// (now): nothing else in that call sleeps.
BOOST_AUTO_TEST_CASE(cooperate_from_another_thread_out_of_memory_changes_nothing) {
  asio::io_context io;
  coop::cooperator coop(io);
  std::atomic<pid_t> other_tid{0};
  std::atomic<bool> other_done{false};
  std::string outcome;  // written by the other thread before other_done
  std::optional<coop::cooperative_task> added;
  std::thread other;
  int units = 0;
  coop.cooperate([&] {
    fail_next_allocation = false;
    if (++units == 1) {
      other = std::thread([&] {
        other_tid = ::gettid();
        try {
          added = coop.cooperate([] { return coop::step::done; });
          outcome = "added";
        } catch (const std::bad_alloc&) {
          outcome = "bad_alloc";
        }
        other_done = true;
      });
      while (other_tid.load() == 0) std::this_thread::yield();
      while (!other_done.load() && !asleep(other_tid.load())) std::this_thread::yield();
    }
    if (units > 1 && other_done) return coop::step::done;
    // Between units, where the lock holder admits the task, the first allocation (the
    // ring growing for a second task) fails.
    fail_next_allocation = true;
    return coop::step::more;
  });
  io.run();
  fail_next_allocation = false;
  other.join();
  if (added) outcome += ", then finished with " + coop_test::thrown_by([&] { added->pause(); });
  BOOST_TEST(outcome == "bad_alloc");
  // Nothing changed: the cooperator takes and runs the next task.
  int later = 0;
  coop.cooperate([&] {
    ++later;
    return coop::step::done;
  });
  io.restart();
  io.run();
  BOOST_TEST(later == 1);
}
