// SPDX-License-Identifier: BSL-1.0
// Faults: allocation failure injected at every allocation, one at a time, during
// cooperator construction, cooperate, when_done, coiterate, ticks, task stop() and
// cooperator stop(); work objects whose destructors re-enter the cooperator; a unit that
// destroys the last handle of its own task; a when_done handler that destroys the
// cooperator.
//
// This translation unit replaces the global operator new/delete with a counting version
// (live allocations; the N-th allocation from arming throws std::bad_alloc, or returns
// null for the nothrow forms). After each injected failure the test checks: the caller got
// std::bad_alloc (or the operation completed as if nothing happened), no completion handler
// ran twice, none ran inline, the cooperator still runs new work to completion, and, once
// everything is destroyed, the live allocation count is back where it started (ASan/LSan
// in CI say the same from the outside).
#define BOOST_TEST_MODULE faults
#include <boost/test/unit_test.hpp>

#include <coop/coop.hpp>
#include <coop/detail/task_arena.hpp>

#include "support/manual_executor.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/core/demangle.hpp>
#include <boost/version.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <typeinfo>
#include <vector>

#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace asio = boost::asio;
using coop_test::manual_context;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------
// Counting, failure-injecting global allocation functions

namespace alloc {

std::atomic<long> live{0};          // allocations not yet freed
std::atomic<long> total{0};         // allocations ever made
std::atomic<long> bytes{0};         // bytes ever allocated
std::atomic<long> countdown{0};     // > 0: armed; the allocation that brings it to 0 fails
std::atomic<bool> fired{false};
std::atomic<long> injected{0};      // failures injected over the whole run

bool should_fail() {
  long c = countdown.load(std::memory_order_relaxed);
  if (c <= 0) return false;
  if (countdown.fetch_sub(1) != 1) return false;
  fired = true;
  ++injected;
  return true;
}

void* allocate(std::size_t size, std::size_t align, bool nothrow) {
  if (should_fail()) {
    if (nothrow) return nullptr;
    throw std::bad_alloc();
  }
  if (size == 0) size = 1;
  void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (size + align - 1) / align * align)
                                              : std::malloc(size);
  if (!p) {
    if (nothrow) return nullptr;
    throw std::bad_alloc();
  }
  ++live;
  ++total;
  bytes += static_cast<long>(size);
  return p;
}

void deallocate(void* p) noexcept {
  if (!p) return;
  --live;
  std::free(p);
}

// Live allocations, once this thread has let go of the chunks its tasks are carved from
// and the arena's empty chunks kept for reuse are given back: a thread keeps the chunk it
// carves from, and the arena keeps a few empty ones. Called before a scenario too, so that its first task allocates a chunk (and an
// injected failure can meet it there).
long live_now() {
  coop::detail::task_arena::release_thread_chunks();
  coop::detail::task_arena::release_spare_chunks();
  return live.load();
}

// Arms the failure at the n-th allocation from now (n >= 1).
void arm(long n) {
  fired = false;
  countdown = n;
}
// Disarms; returns whether the failure was injected.
bool disarm() {
  countdown = 0;
  return fired.exchange(false);
}

}  // namespace alloc

void* operator new(std::size_t n) { return alloc::allocate(n, 0, false); }
void* operator new[](std::size_t n) { return alloc::allocate(n, 0, false); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return alloc::allocate(n, 0, true);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return alloc::allocate(n, 0, true);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t n, std::align_val_t a) { return alloc::allocate(n, static_cast<std::size_t>(a), false); }
void* operator new[](std::size_t n, std::align_val_t a) { return alloc::allocate(n, static_cast<std::size_t>(a), false); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return alloc::allocate(n, static_cast<std::size_t>(a), true);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return alloc::allocate(n, static_cast<std::size_t>(a), true);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { alloc::deallocate(p); }
void operator delete[](void* p) noexcept { alloc::deallocate(p); }
void operator delete(void* p, std::size_t) noexcept { alloc::deallocate(p); }
void operator delete[](void* p, std::size_t) noexcept { alloc::deallocate(p); }
void operator delete(void* p, std::align_val_t) noexcept { alloc::deallocate(p); }
void operator delete[](void* p, std::align_val_t) noexcept { alloc::deallocate(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { alloc::deallocate(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { alloc::deallocate(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { alloc::deallocate(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { alloc::deallocate(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { alloc::deallocate(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { alloc::deallocate(p); }

namespace {

// ---------------------------------------------------------------------------------------
// Helpers

// Aborts the process (with a message) if a test case deadlocks: a destructor that
// re-enters the cooperator under its own lock would hang instead of failing.
class watchdog {
public:
  explicit watchdog(const char* name) : name_(name), thread_([this] {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, 120s, [this] { return done_; })) {
      std::fprintf(stderr, "faults: %s did not finish in 120 s (deadlock?)\n", name_);
      std::abort();
    }
  }) {}
  ~watchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

private:
  const char* name_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// What failing units throw in the injection tests: nothing allocated.
struct unit_failure : std::exception {
  const char* what() const noexcept override { return "unit failure"; }
};

using termination_factory = std::function<std::function<bool()>()>;
termination_factory one_unit_per_tick() {
  return [] { return [] { return true; }; };
}

// The exact type of a completion's exception, without allocating (it runs while a
// failure may be armed).
std::string_view type_of(const std::exception_ptr& p) {
  if (!p) return "null";
  try {
    std::rethrow_exception(p);
  } catch (const std::exception& e) {
    const std::type_info& t = typeid(e);
    if (t == typeid(coop::task_done)) return "coop::task_done";
    if (t == typeid(coop::task_stopped)) return "coop::task_stopped";
    if (t == typeid(coop::task_failed)) return "coop::task_failed";
    if (t == typeid(coop::scheduler_stopped)) return "coop::scheduler_stopped";
    if (t == typeid(coop::not_paused)) return "coop::not_paused";
    if (t == typeid(std::runtime_error)) return "std::runtime_error";
    if (t == typeid(std::bad_alloc)) return "std::bad_alloc";
    if (t == typeid(unit_failure)) return "unit_failure";
    return "another exception";
  } catch (...) {
    return "a non-std exception";
  }
}

// Problems found inside a scope whose allocations are being counted: reported after it.
struct findings {
  std::vector<std::string> list;
  void operator()(std::string what) { list.push_back(std::move(what)); }
};

// Work counting its units and its live copies; done after `limit` units.
struct counted_work {
  static inline std::atomic<long> alive{0};  // atomic: one scenario makes work on another thread
  int* units;
  int limit;
  counted_work(int* u, int l) : units(u), limit(l) { ++alive; }
  counted_work(const counted_work& o) : units(o.units), limit(o.limit) { ++alive; }
  counted_work(counted_work&& o) noexcept : units(o.units), limit(o.limit) { ++alive; }
  counted_work& operator=(const counted_work&) = delete;
  ~counted_work() { --alive; }
  coop::step operator()() {
    ++*units;
    return *units >= limit ? coop::step::done : coop::step::more;
  }
};

// A completion handler recording its calls and result, counting its live copies, and
// noticing an inline call (made while `inside` is set).
struct wait_record {
  int calls = 0;
  std::string_view result;
};
bool inside_call = false;   // set around calls into coop made by the tests
int inline_calls = 0;

struct counted_handler {
  static inline long alive = 0;
  wait_record* record;
  explicit counted_handler(wait_record* r) : record(r) { ++alive; }
  counted_handler(const counted_handler& o) : record(o.record) { ++alive; }
  counted_handler(counted_handler&& o) noexcept : record(o.record) { ++alive; }
  counted_handler& operator=(const counted_handler&) = delete;
  ~counted_handler() { --alive; }
  void operator()(std::exception_ptr e) {
    if (inside_call) ++inline_calls;
    if (++record->calls == 1) record->result = type_of(e);
  }
};

template <class F> auto call(F&& f) {
  inside_call = true;
  struct reset {
    ~reset() { inside_call = false; }
  } r;
  return f();
}

std::size_t poll_one(manual_context& ctx) { return ctx.poll_one(); }
std::size_t poll_one(asio::io_context& ctx) {
  if (ctx.stopped()) ctx.restart();
  return ctx.poll_one();
}

template <class Context>
std::size_t drain(Context& ctx, findings& found, long limit = 100000) {
  std::size_t n = 0;
  for (;;) {
    try {
      if (poll_one(ctx) == 0) break;
    } catch (const std::exception& e) {
      found(std::string("an exception escaped the executor while draining: ") + boost::core::demangle(typeid(e).name()));
    }
    if (static_cast<long>(++n) >= limit) {
      found("the executor never ran dry");
      break;
    }
  }
  return n;
}

// The cooperator still works: a new task runs to completion and its wait completes.
template <class Scheduler, class Context>
void check_usable_scheduler(Scheduler& c, Context& ctx, findings& found) {
  int units = 0;
  wait_record w;
  auto t = c.cooperate(counted_work{&units, 3});
  t.when_done(counted_handler{&w});
  drain(ctx, found);
  if (units != 3) found("afterwards the cooperator is stuck: a new task ran " + std::to_string(units) + "/3 units");
  if (w.calls != 1 || w.result != "null")
    found("afterwards the cooperator is stuck: a new wait completed " + std::to_string(w.calls) + " times");
}

template <class Context> void check_usable(coop::cooperator& c, Context& ctx, findings& found) {
  check_usable_scheduler(c, ctx, found);
}

struct injection_stats {
  long points = 0;      // allocations at which a failure was injected
  long surfaced = 0;    // ... that reached the caller as std::bad_alloc
  long crashed = 0;     // ... that killed the process (std::terminate, heap corruption)
};

// A task of two counted units added by `add(work)` while the failure is armed: the caller
// gets std::bad_alloc and nothing ran, or the task ran both units once the executor ran
// dry. Returns whether the armed failure fired and whether the caller saw it.
struct add_outcome {
  bool fired = false;
  bool threw = false;
  int units = 0;
};
template <class Add, class Context>
add_outcome add_two_units_while_armed(long n, Context& ctx, findings& found, injection_stats& stats, Add&& add) {
  add_outcome o;
  alloc::arm(n);
  try {
    call([&] { return add(counted_work{&o.units, 2}); });
  } catch (const std::bad_alloc&) {
    o.threw = true;
  }
  o.fired = alloc::disarm();
  if (o.threw) ++stats.surfaced;
  drain(ctx, found);
  if (o.threw && o.units != 0) found("cooperate() threw, yet its work ran");
  if (!o.threw && o.units != 2)
    found("cooperate() returned normally, yet its task ran " + std::to_string(o.units) +
          "/2 units: nothing was scheduled and the caller was not told");
  return o;
}

long total_points = 0;   // over the whole run, for the summary line

// One injection point, in a child process, so that a crash (std::terminate from an
// exception leaving a noexcept function, a double free) is reported as a failure of this
// point and the other points and tests still run. The child reports through a pipe:
// "F <finding>" lines, then "R <fired> <surfaced>". COOP_FAULTS_NO_FORK=1 runs the points
// in the test process instead (to debug a crash; the leak checks are then skipped).
struct point_result {
  bool fired = true;
  bool surfaced = false;
  std::string crash;
  std::vector<std::string> found;
};

template <class Scenario>
point_result run_point(Scenario& scenario, long n) {
  point_result result;
  if (std::getenv("COOP_FAULTS_NO_FORK")) {   // for debugging under gdb: a crash is fatal
    findings found;
    injection_stats stats;
    result.fired = scenario(n, found, stats);
    result.surfaced = stats.surfaced > 0;
    result.found = found.list;
    return result;
  }
  int fds[2];
  if (pipe(fds) != 0) {
    result.crash = "pipe() failed";
    return result;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    result.crash = "fork() failed";
    return result;
  }
  if (pid == 0) {
    close(fds[0]);
    // Die of a crash here instead of letting Boost.Test's handlers catch it and go on
    // running the rest of the suite in the child.
    for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) std::signal(sig, SIG_DFL);
    dup2(fds[1], STDERR_FILENO);   // what std::terminate or the heap checker says, for the report
    findings found;
    found.list.reserve(16);
    injection_stats stats;
    const long before = alloc::live_now();
    const long alive_work = counted_work::alive, alive_handlers = counted_handler::alive;
    inline_calls = 0;
    bool fired = scenario(n, found, stats);
    const long after = alloc::live_now();
    if (after != before && found.list.empty()) found(std::to_string(after - before) + " allocation(s) leaked");
    if (counted_work::alive != alive_work) found(std::to_string(counted_work::alive.load() - alive_work) + " work object(s) leaked");
    if (counted_handler::alive != alive_handlers)
      found(std::to_string(counted_handler::alive - alive_handlers) + " handler object(s) leaked");
    if (inline_calls != 0) found("a completion handler ran inline, inside a call into coop");
    std::string out;
    for (auto& f : found.list) out += "F " + f + "\n";
    out += "R " + std::to_string(fired ? 1 : 0) + " " + std::to_string(stats.surfaced > 0 ? 1 : 0) + "\n";
    const char* p = out.data();
    std::size_t left = out.size();
    while (left > 0) {
      ssize_t w = write(fds[1], p, left);
      if (w <= 0) break;
      p += w;
      left -= static_cast<std::size_t>(w);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string in;
  char buffer[4096];
  for (;;) {
    ssize_t r = read(fds[0], buffer, sizeof buffer);
    if (r <= 0) break;
    in.append(buffer, static_cast<std::size_t>(r));
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  bool reported = false;
  std::string said;   // the child's stderr
  bool headline = false;
  std::size_t at = 0;
  while (at < in.size()) {
    std::size_t end = in.find('\n', at);
    if (end == std::string::npos) end = in.size();
    std::string line = in.substr(at, end - at);
    at = end + 1;
    if (line.rfind("F ", 0) == 0) result.found.push_back(line.substr(2));
    else if (line.rfind("R ", 0) == 0) {
      reported = true;
      result.fired = line[2] == '1';
      result.surfaced = line.size() > 4 && line[4] == '1';
    } else if (!line.empty() && !headline) {
      // A sanitizer report is long and full of addresses: keep its headline only.
      auto error = line.find("ERROR: ");
      if (error != std::string::npos) {
        said = line.substr(error);
        said = said.substr(0, std::min(said.find(" on "), said.find(" at pc")));
        headline = true;
      } else if (said.size() < 200) {
        said += (said.empty() ? "" : " / ") + line;
      }
    }
  }
  if (!reported) {
    if (WIFSIGNALED(status))
      result.crash = std::string("the process died of ") + strsignal(WTERMSIG(status)) +
                     (said.empty() ? std::string() : ": \"" + said + "\"");
    else
      result.crash = "the process exited early with status " + std::to_string(WEXITSTATUS(status)) +
                     (said.empty() ? std::string() : ": \"" + said + "\"");
  }
  return result;
}

// Runs `scenario(n)` for n = 1, 2, ... until the injection no longer fires (the operation
// needs fewer than n allocations), each in its own process. scenario returns whether it
// fired and records problems in `found`; the live allocation, work and handler counts are
// checked around it. Findings are grouped: one error per distinct finding, with the
// allocation numbers where it happened.
// Findings that Boost.Asio itself produces under the same failure (see asio_baseline)
// are reported as warnings naming the cause; everything else is an error.
using asio_attribution = std::function<std::string(const std::string& finding)>;

template <class Scenario>
injection_stats inject_everywhere(const char* name, Scenario scenario, asio_attribution asio_cause = {}) {
  injection_stats stats;
  {
    findings warmup;   // a first run in this process: nothing injected
    scenario(0L, warmup, stats);
    for (auto& f : warmup.list) BOOST_ERROR(name << ", without any failure injected: " << f);
  }
  std::vector<std::pair<std::string, std::vector<long>>> grouped;
  auto note = [&](const std::string& what, long n) {
    for (auto& [w, ns] : grouped)
      if (w == what) {
        ns.push_back(n);
        return;
      }
    grouped.push_back({what, {n}});
  };
  int crashes_in_a_row = 0;
  const char* first = std::getenv("COOP_FAULTS_FIRST");   // debugging: start at this point
  for (long n = first ? std::atol(first) : 1; n < 2000; ++n) {
    point_result r = run_point(scenario, n);
    if (!r.crash.empty()) {
      note(r.crash, n);
      ++stats.crashed;
      ++stats.points;
      if (++crashes_in_a_row >= 50) {
        note("(gave up after 50 crashes in a row)", n);
        break;
      }
      continue;
    }
    crashes_in_a_row = 0;
    for (auto& f : r.found) note(f, n);
    if (!r.fired) break;
    ++stats.points;
    if (r.surfaced) ++stats.surfaced;
  }
  total_points += stats.points;
  for (auto& [what, ns] : grouped) {
    std::string at;
    for (std::size_t i = 0; i < ns.size() && i < 12; ++i) at += (i ? ", #" : "#") + std::to_string(ns[i]);
    if (ns.size() > 12) at += ", ... (" + std::to_string(ns.size()) + " in all)";
    std::string cause = asio_cause ? asio_cause(what) : std::string();
    if (cause.empty())
      BOOST_ERROR(name << ": " << what << "  [failure injected at allocation " << at << "]");
    else
      BOOST_TEST_MESSAGE("warning: " << name << ": " << what << "  [failure injected at allocation " << at
                                     << "] -- " << cause);
  }
  BOOST_TEST_MESSAGE(name << ": " << stats.points << " allocation points failed one at a time, " << stats.surfaced
                          << " surfaced as std::bad_alloc, " << stats.crashed << " crashed the process");
  return stats;
}

// What Boost.Asio's strand (over a type-erased executor, as coop uses it) does on its own
// under the same injected failures, computed once: whether constructing a strand can
// crash, and whether a post whose invoker cannot be scheduled leaves the strand locked for
// good (every later handler queued behind it, never run).
struct asio_baseline {
  bool construction_crashes = false;
  bool post_sticks = false;
};

const asio_baseline& strand_baseline() {
  static const asio_baseline baseline = [] {
    asio_baseline b;
    auto construct = [](long n, findings&, injection_stats&) {
      manual_context ctx;
      asio::any_io_executor ex(ctx.get_executor());
      alloc::arm(n);
      try {
        auto strand = asio::make_strand(ex);
      } catch (const std::bad_alloc&) {
      }
      return alloc::disarm();
    };
    auto post = [](long n, findings& found, injection_stats&) {
      manual_context ctx;
      auto strand = asio::make_strand(asio::any_io_executor(ctx.get_executor()));
      bool later = false;
      alloc::arm(n);
      try {
        asio::post(strand, [] {});
      } catch (const std::bad_alloc&) {
      }
      bool fired = alloc::disarm();
      asio::post(strand, [&later] { later = true; });
      while (ctx.poll_one() != 0) {
      }
      if (!later) found("stuck");
      return fired;
    };
    for (long n = 1; n < 50; ++n) {
      point_result r = run_point(construct, n);
      if (!r.crash.empty()) b.construction_crashes = true;
      if (r.crash.empty() && !r.fired) break;
    }
    for (long n = 1; n < 50; ++n) {
      point_result r = run_point(post, n);
      if (!r.found.empty() || !r.crash.empty()) b.post_sticks = true;
      if (r.crash.empty() && !r.fired) break;
    }
    return b;
  }();
  return baseline;
}

// A stuck cooperator is Asio's doing when Asio's strand alone gets stuck the same way.
std::string stuck_strand_cause(const std::string& finding) {
  if (finding.find("afterwards the cooperator is stuck") != std::string::npos && strand_baseline().post_sticks)
    return "Boost.Asio's strand stays locked when scheduling its invoker fails (shown by the strand alone, "
           "test asio_strand_baseline)";
  return {};
}

// Prints the figure for the README once all tests ran.
struct summary {
  ~summary() { std::printf("faults: %ld allocation failures injected, one per run\n", total_points); }
};

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(summary);

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(allocation_failure)

BOOST_AUTO_TEST_CASE(the_allocator_hooks_work) {
  // The counting allocator sees coop's allocations and the injection reaches the caller.
  // A first cooperator creates what lives for the whole process (the watchdog thread and
  // its list): that is not a leak of the one measured below.
  { manual_context warm_up; coop::cooperator c(warm_up); }
  const long before = alloc::live_now();
  {
    manual_context ctx;
    coop::cooperator c(ctx);
    BOOST_TEST(alloc::live_now() > before);
    alloc::arm(1);
    BOOST_CHECK_THROW(c.cooperate([] { return coop::step::done; }), std::bad_alloc);
    BOOST_TEST(alloc::disarm());
  }
  BOOST_TEST(alloc::live_now() == before);
  // The isolation reports a crash as a crash.
  auto crash = [](long n, findings&, injection_stats&) {
    if (n > 0) std::abort();
    return false;
  };
  point_result r = run_point(crash, 1);
  BOOST_TEST(!r.crash.empty());
}

// Two units, then 7: as work with a result, and as a coroutine.
struct two_units_of_seven {
  int units = 0;
  int value = 7;
  coop::step operator()() noexcept { return ++units < 2 ? coop::step::more : coop::step::done; }
};
coop::steps_of<int> two_units_coroutine(int v) {
  co_yield coop::next;
  co_return v;
}
// The same with a buffer in its frame.
coop::steps_of<int> two_units_with_a_buffer(int v) {
  std::array<volatile char, 4096> buffer{};
  buffer[0] = static_cast<char>(v);
  co_yield coop::next;
  co_return buffer[0];
}
int value_of(int v) { return v; }
int value_of(const two_units_of_seven& w) { return w.value; }

// A coroutine given to cooperate() and its task share one block (the frame has room in
// front of it for the task), from the task arena as a callable task's is: a coroutine task
// costs the allocations a callable's does. A coroutine that callable work makes gets no
// room (that work's task exists already); a large frame is allocated alone, from the heap.
BOOST_AUTO_TEST_CASE(a_coroutine_task_is_one_allocation) {
  manual_context ctx;
  coop::cooperator c(ctx);
  { auto warm = c.cooperate([] { return coop::step::done; }); ctx.poll(); }
  struct cost {
    long allocations, bytes;
  };
  // What making a task and running it to its end allocates; nothing is left allocated.
  // Measured the second time: the first may carve a new chunk for its task's size.
  auto measure = [&](auto make) {
    cost result_cost{};
    for (int round = 0; round < 2; ++round) {
      const long live = alloc::live.load(), total = alloc::total.load(), bytes = alloc::bytes.load();
      int result = 0;
      make().when_done([&](std::exception_ptr, const auto& v) { result = value_of(v); });
      ctx.poll();
      BOOST_TEST(result == 7);
      if (round == 1) BOOST_TEST(alloc::live.load() == live);
      result_cost = cost{alloc::total.load() - total, alloc::bytes.load() - bytes};
    }
    return result_cost;
  };
  const cost callable = measure([&] { return c.cooperate(coop::returning(two_units_of_seven{})); });
  const cost coroutine = measure([&] { return c.cooperate(two_units_coroutine(7)); });
  const cost made_by_callable = measure([&] { return c.cooperate([] { return two_units_coroutine(7); }); });
  BOOST_TEST_MESSAGE("allocations (bytes): callable " << callable.allocations << " (" << callable.bytes << "), coroutine "
                     << coroutine.allocations << " (" << coroutine.bytes << "), coroutine made by callable work "
                     << made_by_callable.allocations << " (" << made_by_callable.bytes << ")");
  BOOST_TEST(coroutine.allocations == callable.allocations);
  BOOST_TEST(made_by_callable.allocations == coroutine.allocations);  // its task and its frame: the arena's
  // The frame made by callable work has no room for a task.
  {
    const coop::detail::frame_room::no_room_scope callable_makes_it;
    auto frame_of_callable = two_units_coroutine(7);
    BOOST_TEST(!coop::detail::frame_room::take_room_of(frame_of_callable, 1));
  }
  // A large frame is allocated alone, so that its memory goes as soon as it is destroyed
  // rather than with the task.
  const cost large = measure([&] { return c.cooperate(two_units_with_a_buffer(7)); });
  BOOST_TEST(large.allocations == coroutine.allocations + 1);
}

// Not a test of coop: documents what Boost.Asio's strand does alone under the same
// failures, so that those effects are told apart from coop's own.
BOOST_AUTO_TEST_CASE(asio_strand_baseline) {
  const asio_baseline& b = strand_baseline();
  BOOST_TEST_MESSAGE("Boost " << BOOST_LIB_VERSION << ", asio::strand over any_io_executor: construction "
                              << (b.construction_crashes ? "CAN CRASH" : "is safe") << " under allocation failure; "
                              << "a post whose invoker cannot be scheduled "
                              << (b.post_sticks ? "LEAVES THE STRAND LOCKED FOR GOOD" : "leaves it usable"));
  BOOST_TEST(true);
}

BOOST_AUTO_TEST_CASE(constructing_a_cooperator) {
  watchdog dog("constructing_a_cooperator");
  auto stats = inject_everywhere("cooperator construction", [](long n, findings& found, injection_stats& stats) {
    manual_context ctx;
    std::optional<coop::cooperator> c;
    alloc::arm(n);
    bool threw = false;
    try {
      c.emplace(ctx, coop::cooperator_options{.termination = one_unit_per_tick()});
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    bool fired = alloc::disarm();
    if (threw) ++stats.surfaced;
    if (threw == c.has_value()) found("construction neither threw nor produced a cooperator");
    if (!c) c.emplace(ctx, coop::cooperator_options{.termination = one_unit_per_tick()});
    check_usable(*c, ctx, found);
    return fired;
  }, [](const std::string& finding) -> std::string {
    // Killed by a signal, or stopped by UBSan inside the strand service (ASan's heap fill
    // makes the half-built impl's service pointer point nowhere).
    const bool crashed = finding.find("the process died") != std::string::npos ||
                         (finding.find("the process exited early") != std::string::npos &&
                          finding.find("strand_executor_service") != std::string::npos);
    if (crashed && strand_baseline().construction_crashes)
      return "Boost.Asio's strand construction crashes alone under the same failure (~strand_impl of a half-built "
             "impl locks the mutex of a service pointer never set; test asio_strand_baseline)";
    return stuck_strand_cause(finding);
  });
  BOOST_TEST(stats.points > 0);
}

// cooperate() on an idle cooperator (it must schedule a tick) and on a busy one.
BOOST_AUTO_TEST_CASE(cooperate) {
  watchdog dog("cooperate");
  for (int busy = 0; busy < 2; ++busy) {
    const char* name = busy ? "cooperate (busy cooperator)" : "cooperate (idle cooperator)";
    auto stats = inject_everywhere(name, [busy](long n, findings& found, injection_stats& stats) {
      manual_context ctx;
      coop::cooperator c(ctx, {.termination = one_unit_per_tick()});
      int other_units = 0;
      wait_record other_wait;
      std::optional<coop::cooperative_task> other;
      if (busy) {
        other = c.cooperate(counted_work{&other_units, 3});
        other->when_done(counted_handler{&other_wait});
        ctx.poll_one();   // mid-round
      }
      const add_outcome o =
          add_two_units_while_armed(n, ctx, found, stats, [&](counted_work w) { return c.cooperate(std::move(w)); });
      if (busy && (other_units != 3 || other_wait.calls != 1 || other_wait.result != "null"))
        found("the task already there was disturbed");
      check_usable(c, ctx, found);
      return o.fired;
    }, stuck_strand_cause);
    BOOST_TEST(stats.points > 0);
  }
}

// cooperate() with a name (allocated), shares, fairness by time and a concurrency limit:
// busy, the new task waits queued behind the one admitted. A failure anywhere gives
// std::bad_alloc with nothing scheduled, or a task that runs to its end once admitted.
BOOST_AUTO_TEST_CASE(cooperate_with_options) {
  watchdog dog("cooperate_with_options");
  for (int busy = 0; busy < 2; ++busy) {
    const char* name = busy ? "cooperate with options (a task admitted, the new one queued)"
                            : "cooperate with options (idle cooperator)";
    auto stats = inject_everywhere(name, [busy](long n, findings& found, injection_stats& stats) {
      manual_context ctx;
      coop::cooperator c(ctx, {.termination = one_unit_per_tick(), .fairness = coop::fairness::time, .max_active = 1});
      int other_units = 0;
      wait_record other_wait;
      std::optional<coop::cooperative_task> other;
      if (busy) {
        other = c.cooperate(counted_work{&other_units, 3}, {.shares = 300});
        other->when_done(counted_handler{&other_wait});
        ctx.poll_one();
      }
      coop::task_options options{.name = "a name long enough to be allocated, not stored inline", .shares = 50};
      const add_outcome o = add_two_units_while_armed(
          n, ctx, found, stats, [&](counted_work w) { return c.cooperate(std::move(w), std::move(options)); });
      const int units = o.units;
      const bool threw = o.threw;
      if (busy && (other_units != 3 || other_wait.calls != 1 || other_wait.result != "null"))
        found("the task already there was disturbed");
      // The stats count what ran, whatever failed on the way.
      const coop::cooperator_stats cs = c.stats();
      if (cs.units != static_cast<std::uint64_t>(units + other_units))
        found("the cooperator's stats count " + std::to_string(cs.units) + " units, " +
              std::to_string(units + other_units) + " ran");
      if (cs.finished != static_cast<std::uint64_t>((threw ? 0 : 1) + busy))
        found("the cooperator's stats count " + std::to_string(cs.finished) + " finished tasks");
      if (cs.runnable + cs.paused + cs.waiting + cs.queued != 0) found("the stats count unfinished tasks");
      check_usable(c, ctx, found);
      return o.fired;
    }, stuck_strand_cause);
    BOOST_TEST(stats.points > 0);
  }
}

// A pool with max_active across its two members: one task admitted on member 0, the new
// one joins member 1 and queues for the pool's place (the admission budget's room is made
// as it is added). A failure anywhere gives std::bad_alloc with nothing scheduled and the
// pool's counts untouched, or a task that runs to its end once the place passes to it.
BOOST_AUTO_TEST_CASE(cooperate_on_a_pool_with_max_active) {
  watchdog dog("cooperate_on_a_pool_with_max_active");
  auto stats = inject_everywhere("cooperate on a pool (max_active 1, the place taken)",
                                 [](long n, findings& found, injection_stats& stats) {
    manual_context ctx;
    coop::cooperator_pool pool(ctx, 2, {.termination = one_unit_per_tick(), .max_active = 1});
    int other_units = 0;
    wait_record other_wait;
    coop::cooperative_task other = pool.cooperate(counted_work{&other_units, 3});
    other.when_done(counted_handler{&other_wait});
    ctx.poll_one();
    const add_outcome o =
        add_two_units_while_armed(n, ctx, found, stats, [&](counted_work w) { return pool.cooperate(std::move(w)); });
    const bool threw = o.threw;
    if (other_units != 3 || other_wait.calls != 1 || other_wait.result != "null")
      found("the task already there was disturbed");
    const coop::cooperator_stats cs = pool.stats();
    if (cs.finished != static_cast<std::uint64_t>(threw ? 1 : 2))
      found("the pool's stats count " + std::to_string(cs.finished) + " finished tasks");
    if (cs.runnable + cs.paused + cs.waiting + cs.queued != 0) found("the stats count unfinished tasks");
    // The place is free again: the next task is admitted at once, and runs.
    check_usable_scheduler(pool, ctx, found);
    return o.fired;
  }, stuck_strand_cause);
  BOOST_TEST(stats.points > 0);
}

namespace {
// Whether thread `tid` of this process is asleep. Reads /proc with plain system calls: the
// caller must not allocate while a failure is armed for another thread's sake.
bool thread_asleep(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
  const int fd = ::open(path, O_RDONLY);
  if (fd < 0) return false;
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = 0;
  const char* name_end = std::strrchr(buf, ')');
  return name_end && name_end[1] == ' ' && name_end[2] == 'S';
}
}  // namespace

// cooperate() from another thread while a unit runs: the tick's thread admits the task,
// with the lock held by it, not by the caller. A failure injected anywhere (the caller's
// allocations, the admission on the tick's thread, the ticks after) must give the caller
// std::bad_alloc with nothing scheduled, or a task that runs to its end. The unit holds
// the lock until the caller has returned or sleeps waiting for the answer.
BOOST_AUTO_TEST_CASE(cooperate_from_another_thread_during_a_unit) {
  watchdog dog("cooperate_from_another_thread_during_a_unit");
  auto stats = inject_everywhere("cooperate from another thread", [](long n, findings& found, injection_stats& stats) {
    manual_context ctx;
    coop::cooperator c(ctx, {.termination = one_unit_per_tick()});
    int units = 0;
    bool threw = false;
    bool fired = false;
    std::thread other;
    std::atomic<pid_t> other_tid{0};
    std::atomic<bool> returned{false};
    int calls = 0;
    c.cooperate([&] {
      if (++calls == 1) {
        other = std::thread([&] {
          other_tid = ::gettid();
          alloc::arm(n);
          try {
            c.cooperate(counted_work{&units, 2});
          } catch (const std::bad_alloc&) {
            threw = true;
          }
          returned = true;
        });
        while (other_tid.load() == 0) std::this_thread::yield();
        while (!returned.load() && !thread_asleep(other_tid.load())) std::this_thread::yield();
      }
      return calls >= 2 ? coop::step::done : coop::step::more;
    });
    drain(ctx, found);
    other.join();
    // Disarmed here, not by the caller: the admission on the tick's thread (after the
    // caller's own allocations) is one of the points.
    fired = alloc::disarm();
    drain(ctx, found);  // what the answer admitted after the first drain ran dry
    if (threw) ++stats.surfaced;
    if (threw && units != 0) found("cooperate() threw, yet its work ran");
    if (!threw && units != 2)
      found("cooperate() returned normally, yet its task ran " + std::to_string(units) +
            "/2 units: the task was accepted and then lost or failed");
    check_usable(c, ctx, found);
    return fired;
  }, stuck_strand_cause);
  BOOST_TEST(stats.points > 0);
}

// resume() of the only task and start() of a cooperator made with started=false: both
// must schedule a tick.
BOOST_AUTO_TEST_CASE(resume_and_start) {
  watchdog dog("resume_and_start");
  for (int variant = 0; variant < 2; ++variant) {
    const char* name = variant == 0 ? "resume (idle cooperator)" : "start";
    auto stats = inject_everywhere(name, [variant](long n, findings& found, injection_stats& stats) {
      manual_context ctx;
      coop::cooperator c(ctx, {.termination = one_unit_per_tick(), .started = variant == 0});
      int units = 0;
      wait_record w;
      auto t = c.cooperate(counted_work{&units, 2});
      t.when_done(counted_handler{&w});
      if (variant == 0) t.pause();
      drain(ctx, found);
      alloc::arm(n);
      bool threw = false;
      try {
        call([&] {
          if (variant == 0)
            t.resume();
          else
            c.start();
          return 0;
        });
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      bool fired = alloc::disarm();
      if (threw) ++stats.surfaced;
      drain(ctx, found);
      if (!threw && (units != 2 || w.calls != 1))
        found(std::string(variant == 0 ? "resume()" : "start()") + " returned normally, yet the task ran " +
              std::to_string(units) + "/2 units: nothing was scheduled and the caller was not told");
      check_usable(c, ctx, found);
      return fired;
    }, stuck_strand_cause);
    (void)stats;
  }
}

BOOST_AUTO_TEST_CASE(when_done) {
  watchdog dog("when_done");
  for (int variant = 0; variant < 3; ++variant) {
    // 0: running task, plain handler; 1: running task, handler bound to the context;
    // 2: finished task (the result is posted at once)
    const char* names[] = {"when_done (running task)", "when_done (bound executor)", "when_done (finished task)"};
    auto stats = inject_everywhere(names[variant], [variant](long n, findings& found, injection_stats& stats) {
      manual_context ctx;
      coop::cooperator c(ctx, {.termination = one_unit_per_tick()});
      int units = 0;
      wait_record first, w;
      auto t = c.cooperate(counted_work{&units, variant == 2 ? 1 : 3});
      t.when_done(counted_handler{&first});
      if (variant == 2) drain(ctx, found);
      alloc::arm(n);
      bool threw = false;
      try {
        call([&] {
          if (variant == 1)
            t.when_done(asio::bind_executor(ctx.get_executor(), counted_handler{&w}));
          else
            t.when_done(counted_handler{&w});
          return 0;
        });
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      bool fired = alloc::disarm();
      if (threw) ++stats.surfaced;
      drain(ctx, found);
      if (threw && w.calls != 0) found("when_done() threw, yet its handler ran");
      if (!threw && (w.calls != 1 || w.result != "null"))
        found("when_done() returned normally, yet its handler ran " + std::to_string(w.calls) + " times (lost)");
      if (first.calls != 1 || first.result != "null" || units != (variant == 2 ? 1 : 3))
        found("the task or its earlier wait was disturbed");
      check_usable(c, ctx, found);
      return fired;
    }, stuck_strand_cause);
    BOOST_TEST(stats.points > 0);
  }
}

BOOST_AUTO_TEST_CASE(coiterate) {
  watchdog dog("coiterate");
  auto stats = inject_everywhere("coiterate", [](long n, findings& found, injection_stats& stats) {
    manual_context ctx;
    coop::cooperator c(ctx, {.termination = one_unit_per_tick()});
    int units = 0;
    wait_record w;
    alloc::arm(n);
    bool threw = false;
    try {
      call([&] {
        c.coiterate(counted_work{&units, 2}, counted_handler{&w});
        return 0;
      });
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    bool fired = alloc::disarm();
    if (threw) ++stats.surfaced;
    drain(ctx, found);
    if (threw && w.calls != 0) found("coiterate() threw, yet its handler ran");
    if (threw && units != 0) found("coiterate() threw, yet its work ran (without a waiter)");
    if (!threw && (w.calls != 1 || w.result != "null" || units != 2))
      found("coiterate() returned normally, yet the task ran " + std::to_string(units) + "/2 units and its handler " +
            std::to_string(w.calls) + " times: nothing was scheduled and the caller was not told");
    check_usable(c, ctx, found);
    return fired;
  }, stuck_strand_cause);
  BOOST_TEST(stats.points > 0);
}

// Failures inside ticks, on an io_context (whose strand reuses handler memory, so the
// failures land in coop's own allocations): the cooperator's rescheduling and the posting
// of completions of tasks that finish in a tick. Whatever escapes the executor must be
// std::bad_alloc; no handler may run twice, none may be lost; the cooperator must still
// run new work.
BOOST_AUTO_TEST_CASE(ticks) {
  watchdog dog("ticks");
  auto stats = inject_everywhere("ticks", [](long n, findings& found, injection_stats& stats) {
    asio::io_context ctx;
    coop::cooperator c(ctx, {.termination = [] { return [k = 0]() mutable { return ++k >= 2; }; }});
    int units_a = 0, units_b = 0, units_c = 0;
    wait_record wa1, wa2, wb, wc;
    auto a = c.cooperate(counted_work{&units_a, 2});
    auto b = c.cooperate(counted_work{&units_b, 3});
    auto t3 = c.cooperate([&units_c]() -> coop::step {
      ++units_c;
      if (units_c == 2) throw unit_failure();
      return coop::step::more;
    });
    a.when_done(counted_handler{&wa1});
    a.when_done(asio::bind_executor(ctx.get_executor(), counted_handler{&wa2}));
    b.when_done(counted_handler{&wb});
    t3.when_done(counted_handler{&wc});
    alloc::arm(n);
    long polls = 0;
    for (;;) {
      try {
        if (poll_one(ctx) == 0) break;
      } catch (const std::bad_alloc&) {
        ++stats.surfaced;
      } catch (const std::exception& e) {
        found(std::string("a non-bad_alloc exception escaped the executor: ") + boost::core::demangle(typeid(e).name()));
      }
      if (++polls > 100000) {
        found("the executor never ran dry");
        break;
      }
    }
    bool fired = alloc::disarm();
    struct expect {
      wait_record* w;
      const char* result;
    } expected[] = {{&wa1, "null"}, {&wa2, "null"}, {&wb, "null"}, {&wc, "unit_failure"}};
    for (auto& e : expected) {
      if (e.w->calls > 1) found("a completion handler ran twice");
      if (e.w->calls == 1 && e.w->result != e.result)
        found("a wait expecting " + std::string(e.result) + " completed with " + std::string(e.w->result));
    }
    if (units_a > 2 || units_b > 3 || units_c > 2) found("a task ran past its end");
    // The cooperator may have had to give up a tick, but new work must get it going.
    check_usable(c, ctx, found);
    c.stop();
    drain(ctx, found);
    for (auto& e : expected)
      if (e.w->calls == 0) found(std::string("a wait (expecting ") + e.result + ") was never completed: lost");
    return fired;
  }, stuck_strand_cause);
  BOOST_TEST(stats.points > 0);
}

// Failures inside ticks on an executor where a tick enters the strand in one hop (the
// manual executor): a tick whose re-post fails inside the running tick is posted again
// once, never as a second chain of ticks (the cooperator would then take two turns of the
// executor for one).
BOOST_AUTO_TEST_CASE(ticks_one_hop_never_two_chains) {
  watchdog dog("ticks_one_hop_never_two_chains");
  auto stats = inject_everywhere("ticks (one hop)", [](long n, findings& found, injection_stats& stats) {
    manual_context ctx;
    coop::cooperator c(ctx, {.termination = one_unit_per_tick()});
    int units = 0;
    auto t = c.cooperate(counted_work{&units, 200});
    for (int i = 0; i < 5; ++i) ctx.poll_one();
    alloc::arm(n);
    for (int i = 0; i < 4; ++i) {
      try {
        ctx.poll_one();
      } catch (const std::bad_alloc&) {
        ++stats.surfaced;
      }
    }
    bool fired = alloc::disarm();
    for (int i = 0; i < 40; ++i) {
      if (ctx.queued() > 1) {
        found(std::to_string(ctx.queued()) + " handlers queued for one runnable task: a second chain of ticks");
        break;
      }
      ctx.poll_one();
    }
    check_usable(c, ctx, found);
    c.stop();
    drain(ctx, found);
    return fired;
  });
  BOOST_TEST(stats.points > 0);
}

// Stopping a coroutine task that waits on an operation sends the operation terminal
// cancellation through the strand. When that post runs out of memory the cancellation is
// lost (documented: the operation runs to its own end), but nothing may escape into
// run(), and the stopped task's wait completes once. Armed while stop()'s two posts (the
// cancellation, the wait's completion) enter the strand; not while the timer completes:
// a handler bound to a strand that Asio's own operation cannot dispatch for lack of
// memory throws out of run() in Asio's code (handler_work), with or without coop.
BOOST_AUTO_TEST_CASE(cancellation_of_a_waiting_coroutine) {
  watchdog dog("cancellation_of_a_waiting_coroutine");
  auto stats = inject_everywhere("stop of a waiting coroutine", [](long n, findings& found, injection_stats&) {
    asio::io_context ctx;
    coop::cooperator c(ctx);
    asio::steady_timer timer(ctx, std::chrono::hours(1));
    int after = 0;
    wait_record w;
    auto body = [](asio::steady_timer& t, int& after) -> coop::steps {
      co_yield t.async_wait(asio::deferred);
      ++after;
    };
    auto t = c.cooperate(body(timer, after));
    t.when_done(counted_handler{&w});
    for (int i = 0; i < 10; ++i) ctx.poll_one();
    t.stop();
    alloc::arm(n);
    for (int i = 0; i < 2; ++i) {
      try {
        ctx.poll_one();
      } catch (const std::exception& e) {
        found(std::string("an exception escaped the executor: ") + boost::core::demangle(typeid(e).name()));
      }
    }
    bool fired = alloc::disarm();
    timer.cancel();  // whether or not the cancellation got through
    ctx.restart();
    drain(ctx, found);
    if (w.calls != 1 || w.result != std::string("coop::task_stopped"))
      found("the stopped task's wait completed " + std::to_string(w.calls) + " times, with " + std::string(w.result));
    if (after != 0) found("the task ran on after stop()");
    return fired;
  });
  BOOST_TEST(stats.points > 0);
}

BOOST_AUTO_TEST_CASE(task_stop_and_cooperator_stop) {
  watchdog dog("stop");
  for (int variant = 0; variant < 2; ++variant) {
    const char* name = variant == 0 ? "cooperative_task::stop" : "cooperator::stop";
    auto stats = inject_everywhere(name, [variant, name](long n, findings& found, injection_stats& stats) {
      asio::io_context ctx;
      coop::cooperator c(ctx, {.termination = one_unit_per_tick()});
      int units = 0, other_units = 0;
      wait_record w1, w2, w3;
      auto t = c.cooperate(counted_work{&units, 1000});
      auto other = c.cooperate(counted_work{&other_units, 1000});
      t.when_done(counted_handler{&w1});
      t.when_done(asio::bind_executor(ctx.get_executor(), counted_handler{&w2}));
      other.when_done(counted_handler{&w3});
      poll_one(ctx);
      alloc::arm(n);
      bool threw = false;
      try {
        call([&] {
          if (variant == 0)
            t.stop();
          else
            c.stop();
          return 0;
        });
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      if (threw) ++stats.surfaced;
      // Still armed: completions reach their strand from the io_context's thread after
      // stop() has returned, and may run out of memory there.
      for (long polls = 0; polls < 3000; ++polls) {   // `other` runs 1000 units at most
        try {
          if (poll_one(ctx) == 0) break;
        } catch (const std::bad_alloc&) {
          ++stats.surfaced;
        } catch (const std::exception& e) {
          found(std::string("a non-bad_alloc exception escaped the executor: ") +
                boost::core::demangle(typeid(e).name()));
        }
      }
      bool fired = alloc::disarm();
      const char* expected = variant == 0 ? "coop::task_stopped" : "coop::scheduler_stopped";
      if (!threw && (w1.calls != 1 || w1.result != expected || w2.calls != 1 || w2.result != expected))
        found(std::string(name) + " returned normally, yet its waits completed " + std::to_string(w1.calls) + " and " +
              std::to_string(w2.calls) + " times");
      if (w1.calls > 1 || w2.calls > 1 || w3.calls > 1) found("a completion handler ran twice");
      c.start();
      check_usable(c, ctx, found);
      c.stop();
      drain(ctx, found);
      for (auto* w : {&w1, &w2, &w3})
        if (w->calls != 1) found("a wait completed " + std::to_string(w->calls) + " times, even after stop()");
      return fired;
    }, stuck_strand_cause);
    BOOST_TEST(stats.points > 0);
  }
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(reentrant_destructors)

// Work whose destructor calls back into the cooperator.
struct reentrant_work {
  std::function<void()> on_destroy;
  int* units;
  int limit;
  bool owner = true;
  reentrant_work(std::function<void()> f, int* u, int l) : on_destroy(std::move(f)), units(u), limit(l) {}
  reentrant_work(reentrant_work&& o) noexcept : on_destroy(std::move(o.on_destroy)), units(o.units), limit(o.limit), owner(o.owner) {
    o.owner = false;
  }
  reentrant_work(const reentrant_work&) = delete;
  ~reentrant_work() {
    if (owner && on_destroy) on_destroy();
  }
  coop::step operator()() {
    ++*units;
    return *units >= limit ? coop::step::done : coop::step::more;
  }
};

BOOST_AUTO_TEST_CASE(destructor_cooperates_new_work) {
  watchdog dog("destructor_cooperates_new_work");
  const long before = alloc::live_now();
  findings found;
  {
    manual_context ctx;
    coop::cooperator c(ctx, {.termination = one_unit_per_tick()});
    int units = 0, successor_units = 0, destroyed = 0;
    wait_record w, ws;
    std::optional<coop::cooperative_task> successor;
    // When a finished task releases its work is not in the contract: at the latest when its
    // last handle is gone. The test drops the handle to force it.
    std::optional<coop::cooperative_task> t = c.cooperate(reentrant_work(
        [&] {
          ++destroyed;
          successor = c.cooperate(counted_work{&successor_units, 2});
          successor->when_done(counted_handler{&ws});
        },
        &units, 2));
    t->when_done(counted_handler{&w});
    drain(ctx, found);
    t.reset();
    drain(ctx, found);
    BOOST_TEST(units == 2);
    BOOST_TEST(destroyed == 1);
    BOOST_TEST(successor_units == 2);
    BOOST_TEST(w.calls == 1);
    BOOST_TEST(w.result == "null");
    BOOST_TEST(ws.calls == 1);
    BOOST_TEST(ws.result == "null");
  }
  BOOST_TEST(found.list.empty());
  BOOST_TEST(alloc::live_now() == before);
}

BOOST_AUTO_TEST_CASE(destructor_stops_and_pauses_other_tasks) {
  watchdog dog("destructor_stops_and_pauses_other_tasks");
  const long before = alloc::live_now();
  findings found;
  {
    manual_context ctx;
    coop::cooperator c(ctx, {.termination = one_unit_per_tick()});
    int units = 0, b_units = 0, c_units = 0;
    wait_record wa, wb, wc;
    auto b = c.cooperate(counted_work{&b_units, 1000});
    auto cc = c.cooperate(counted_work{&c_units, 1000});
    std::string stop_result = "not called", pause_result = "not called";
    std::optional<coop::cooperative_task> a = c.cooperate(reentrant_work(
        [&] {
          try {
            b.stop();
            stop_result = "ok";
          } catch (const std::exception& e) {
            stop_result = boost::core::demangle(typeid(e).name());
          }
          try {
            cc.pause();
            pause_result = "ok";
          } catch (const std::exception& e) {
            pause_result = boost::core::demangle(typeid(e).name());
          }
        },
        &units, 1000));
    a->when_done(counted_handler{&wa});
    b.when_done(counted_handler{&wb});
    cc.when_done(counted_handler{&wc});
    for (int i = 0; i < 6; ++i) ctx.poll_one();
    a->stop();   // a's work is destroyed now, or at the latest with its last handle:
    a.reset();   // it stops b and pauses cc
    drain(ctx, found, 200);
    BOOST_TEST(stop_result == "ok");
    BOOST_TEST(pause_result == "ok");
    BOOST_TEST(wa.calls == 1);
    BOOST_TEST(wa.result == "coop::task_stopped");
    BOOST_TEST(wb.calls == 1);
    BOOST_TEST(wb.result == "coop::task_stopped");
    BOOST_TEST(wc.calls == 0);   // paused, not finished
    const int c_before = c_units;
    drain(ctx, found, 200);
    BOOST_TEST(c_units == c_before);   // paused: no unit starts
    cc.resume();
    cc.stop();
    drain(ctx, found);
    BOOST_TEST(wc.calls == 1);
    BOOST_TEST(wc.result == "coop::task_stopped");
  }
  for (auto& f : found.list) BOOST_ERROR(f);
  BOOST_TEST(alloc::live_now() == before);
}

BOOST_AUTO_TEST_CASE(destructors_run_by_cooperator_stop_reenter_it) {
  // cooperator::stop() finishes every task; each work's destructor (run by stop(), or at
  // the latest when the last handle goes) cooperates new work — which must finish at once
  // with scheduler_stopped, the cooperator being stopped — and stops a victim task, which
  // either works or reports scheduler_stopped, consistently with the victim's completion.
  watchdog dog("destructors_run_by_cooperator_stop_reenter_it");
  const long before = alloc::live_now();
  findings found;
  {
    manual_context ctx;
    coop::cooperator c(ctx, {.termination = one_unit_per_tick()});
    constexpr int n = 4;
    std::vector<coop::cooperative_task> victims, late;
    std::vector<std::optional<coop::cooperative_task>> tasks(n);
    std::string stop_results[n];
    int units[n] = {}, victim_units = 0, late_units = 0;
    wait_record waits[n], victim_waits[n], late_waits[n];
    for (int i = 0; i < n; ++i) {
      victims.push_back(c.cooperate(counted_work{&victim_units, 100000}));
      victims.back().when_done(counted_handler{&victim_waits[i]});
    }
    for (int i = 0; i < n; ++i) {
      tasks[i] = c.cooperate(reentrant_work(
          [&, i] {
            late.push_back(c.cooperate(counted_work{&late_units, 5}));
            late.back().when_done(counted_handler{&late_waits[i]});
            boost::system::error_code ec;
            victims[i].stop(ec);
            stop_results[i] = ec ? ec.message() : "ok";
          },
          &units[i], 100000));
      tasks[i]->when_done(counted_handler{&waits[i]});
    }
    for (int i = 0; i < 10; ++i) ctx.poll_one();
    c.stop();
    for (auto& t : tasks) t.reset();
    drain(ctx, found);
    BOOST_TEST(late.size() == static_cast<std::size_t>(n));
    BOOST_TEST(late_units == 0);
    const std::string stopped = coop::make_error_code(coop::error::scheduler_stopped).message();
    for (int i = 0; i < n; ++i) {
      BOOST_TEST(waits[i].calls == 1);
      BOOST_TEST(waits[i].result == "coop::scheduler_stopped");
      BOOST_TEST(late_waits[i].calls == 1);
      BOOST_TEST(late_waits[i].result == "coop::scheduler_stopped");
      BOOST_TEST((stop_results[i] == "ok" || stop_results[i] == stopped), stop_results[i]);
      BOOST_TEST(victim_waits[i].calls == 1);
      BOOST_TEST(victim_waits[i].result ==
                 (stop_results[i] == "ok" ? "coop::task_stopped" : "coop::scheduler_stopped"));
    }
    c.start();
    check_usable(c, ctx, found);
  }
  for (auto& f : found.list) BOOST_ERROR(f);
  BOOST_TEST(alloc::live_now() == before);
}

BOOST_AUTO_TEST_CASE(destructor_stops_the_cooperator) {
  // The work of a task that completes stops the whole cooperator from its destructor.
  watchdog dog("destructor_stops_the_cooperator");
  const long before = alloc::live_now();
  findings found;
  {
    manual_context ctx;
    coop::cooperator c(ctx, {.termination = one_unit_per_tick()});
    int units = 0, other_units = 0;
    wait_record w, wo;
    auto other = c.cooperate(counted_work{&other_units, 1000});
    // unique_ptr, not optional: GCC 12 warns (falsely) maybe-uninitialized on the latter.
    auto t = std::make_unique<coop::cooperative_task>(c.cooperate(reentrant_work([&] { c.stop(); }, &units, 3)));
    t->when_done(counted_handler{&w});
    other.when_done(counted_handler{&wo});
    for (int i = 0; i < 6; ++i) ctx.poll_one();   // t's three units, other's three
    t.reset();                                    // release t's work at the latest now
    drain(ctx, found, 1000);
    BOOST_TEST(units == 3);
    BOOST_TEST(other_units == 3);   // A B A B A B: the stop comes with t's last unit
    BOOST_TEST(w.calls == 1);
    BOOST_TEST(w.result == "null");
    BOOST_TEST(wo.calls == 1);
    BOOST_TEST(wo.result == "coop::scheduler_stopped");
    BOOST_TEST(!c.running());
  }
  for (auto& f : found.list) BOOST_ERROR(f);
  BOOST_TEST(alloc::live_now() == before);
}

BOOST_AUTO_TEST_CASE(destructor_runs_during_cooperator_destruction) {
  // ~cooperator releases the work; the destructor uses other handles (which outlive the
  // cooperator) and must see scheduler_stopped, without deadlock or crash.
  watchdog dog("destructor_runs_during_cooperator_destruction");
  const long before = alloc::live_now();
  findings found;
  {
    manual_context ctx;
    std::optional<coop::cooperator> c;
    c.emplace(ctx, coop::cooperator_options{.termination = one_unit_per_tick()});
    int units = 0, other_units = 0;
    wait_record w, wo;
    auto other = c->cooperate(counted_work{&other_units, 1000});
    std::string pause_ec = "not called";
    std::optional<coop::cooperative_task> t = c->cooperate(reentrant_work(
        [&] {
          boost::system::error_code ec;
          other.pause(ec);
          pause_ec = ec ? ec.message() : "ok";
        },
        &units, 1000));
    t->when_done(counted_handler{&w});
    other.when_done(counted_handler{&wo});
    ctx.poll_one();
    c.reset();
    t.reset();   // the work is gone at the latest now
    drain(ctx, found);
    // `other` may be finished before or after t's work is destroyed: either pause()
    // worked on a still-unfinished task or it reports scheduler_stopped.
    BOOST_TEST((pause_ec == "ok" || pause_ec == coop::make_error_code(coop::error::scheduler_stopped).message()),
               "pause() from the destructor: " << pause_ec);
    BOOST_TEST(w.calls == 1);
    BOOST_TEST(w.result == "coop::scheduler_stopped");
    BOOST_TEST(wo.calls == 1);
    BOOST_TEST(wo.result == "coop::scheduler_stopped");
  }
  for (auto& f : found.list) BOOST_ERROR(f);
  BOOST_TEST(alloc::live_now() == before);
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(self_destruction)

BOOST_AUTO_TEST_CASE(unit_destroys_the_last_handle_of_its_task) {
  watchdog dog("unit_destroys_the_last_handle_of_its_task");
  const long before = alloc::live_now();
  findings found;
  {
    manual_context ctx;
    coop::cooperator c(ctx, {.termination = one_unit_per_tick()});
    // 0: keeps running after dropping the handle; 1: drops it and returns done in the same
    // unit; 2: drops it and throws; 3: pauses itself, then drops the handle (it can never
    // be resumed: cooperator stop() finishes it)
    for (int variant = 0; variant < 4; ++variant) {
      std::optional<coop::cooperative_task> handle;
      int units = 0;
      wait_record w;
      handle = c.cooperate([&, variant]() -> coop::step {
        ++units;
        if (units == 2) {
          if (variant == 3) handle->pause();
          handle.reset();   // the last handle, from inside its own unit
          if (variant == 1) return coop::step::done;
          if (variant == 2) throw std::runtime_error("after dropping the handle");
        }
        return units >= 4 ? coop::step::done : coop::step::more;
      });
      handle->when_done(counted_handler{&w});
      drain(ctx, found);
      BOOST_TEST(!handle.has_value());
      const int expected_units[] = {4, 2, 2, 2};
      BOOST_TEST(units == expected_units[variant], "variant " << variant);
      if (variant == 3) {
        BOOST_TEST(w.calls == 0);   // paused forever, until the cooperator stops
        c.stop();
        drain(ctx, found);
        c.start();
      }
      const char* expected[] = {"null", "null", "std::runtime_error", "coop::scheduler_stopped"};
      BOOST_TEST(w.calls == 1, "variant " << variant);
      BOOST_TEST(w.result == expected[variant], "variant " << variant);
    }
    check_usable(c, ctx, found);
  }
  for (auto& f : found.list) BOOST_ERROR(f);
  BOOST_TEST(alloc::live_now() == before);
}

BOOST_AUTO_TEST_CASE(work_that_owns_its_own_handle_is_released) {
  // A cycle: the work holds a handle to its own task. Finishing the task (or stopping the
  // cooperator) must release the work, and with it the handle.
  watchdog dog("work_that_owns_its_own_handle_is_released");
  const long before = alloc::live_now();
  {
    manual_context ctx;
    coop::cooperator c(ctx, {.termination = one_unit_per_tick()});
    for (int variant = 0; variant < 3; ++variant) {
      auto self = std::make_shared<coop::cooperative_task>();
      std::weak_ptr<coop::cooperative_task> watch = self;
      int units = 0;
      *self = c.cooperate([self, &units]() mutable {
        ++units;
        return units >= 3 ? coop::step::done : coop::step::more;
      });
      auto keep = *self;
      self.reset();
      findings found;
      if (variant == 0) drain(ctx, found);   // done
      if (variant == 1) keep.stop();          // stopped
      if (variant == 2) {                     // paused, then the cooperator stops
        keep.pause();
        c.stop();
        c.start();
      }
      drain(ctx, found);
      BOOST_TEST(watch.expired(), "variant " << variant << ": the work (and its handle) was not released");
      for (auto& f : found.list) BOOST_ERROR(f);
    }
  }
  BOOST_TEST(alloc::live_now() == before);
}

BOOST_AUTO_TEST_CASE(when_done_handler_destroys_the_cooperator) {
  // The handler runs on the cooperator's strand (no executor of its own) and destroys the
  // cooperator while other tasks run, one is paused, and other waits are pending; a tick
  // is still queued. Everyone else gets scheduler_stopped, exactly once.
  watchdog dog("when_done_handler_destroys_the_cooperator");
  const long before = alloc::live_now();
  findings found;
  for (int variant = 0; variant < 2; ++variant) {   // 0: handler on the strand, 1: bound to the context
    manual_context ctx;
    auto c = std::make_unique<coop::cooperator>(ctx, coop::cooperator_options{.termination = one_unit_per_tick()});
    int units_a = 0, units_b = 0, units_p = 0;
    wait_record wb, wp, wb2;
    int destroyed_in_handler = 0;
    auto a = c->cooperate(counted_work{&units_a, 2});
    auto b = c->cooperate(counted_work{&units_b, 1000});
    auto p = c->cooperate(counted_work{&units_p, 1000});
    p.pause();
    auto destroy = [&](std::exception_ptr) {
      c.reset();
      ++destroyed_in_handler;
    };
    if (variant == 0)
      a.when_done(destroy);
    else
      a.when_done(asio::bind_executor(ctx.get_executor(), destroy));
    b.when_done(counted_handler{&wb});
    p.when_done(counted_handler{&wp});
    drain(ctx, found);
    BOOST_TEST(destroyed_in_handler == 1);
    BOOST_TEST(!c);
    BOOST_TEST(units_a == 2);
    BOOST_TEST(units_p == 0);
    BOOST_TEST(wb.calls == 1);
    BOOST_TEST(wb.result == "coop::scheduler_stopped");
    BOOST_TEST(wp.calls == 1);
    BOOST_TEST(wp.result == "coop::scheduler_stopped");
    // The handles outlive the cooperator.
    BOOST_CHECK_THROW(b.pause(), coop::scheduler_stopped);
    BOOST_CHECK_NO_THROW(p.resume());   // paused, finished meanwhile: a no-op
    b.when_done(counted_handler{&wb2});
    drain(ctx, found);
    BOOST_TEST(wb2.calls == 1);
    BOOST_TEST(wb2.result == "coop::scheduler_stopped");
  }
  for (auto& f : found.list) BOOST_ERROR(f);
  BOOST_TEST(alloc::live_now() == before);
}

BOOST_AUTO_TEST_SUITE_END()
