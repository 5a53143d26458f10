// SPDX-License-Identifier: BSL-1.0
// Drives coop and the reference model (coop_model.hpp) with the same operation sequence
// and compares every observable after every operation: what each call threw (or set in
// its error_code), which units ran and in which order (with the calls they made and what
// those returned), running(), which waits completed, with what, how many times, on which
// executor, and never inline. Shared by tests/test_model_check.cpp and fuzz/fuzz_ops.cpp.
//
// Determinism: coop runs on a coop_test::manual_context that only this harness polls,
// with a termination predicate that ends a tick after the number of units the sequence
// chose for it. A "tick" here is a factory call followed by at least one unit, so an empty
// tick (nothing left to run) changes nothing.
#pragma once

#include "coop_model.hpp"
#include "../support/manual_executor.hpp"
#include "../support/shake_out.hpp"

#include <coop/coop.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/error.hpp>
#include <boost/core/demangle.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <vector>

namespace coop_model {

namespace asio = boost::asio;

// ---------------------------------------------------------------------------------------
// Operation sequences

enum class op_kind : std::uint8_t {
  cooperate,   // a0: 0 cooperate, 1 coiterate (plain callback), 2 coiterate (bound to ctx),
               //     3 cooperate(returning(work)), 4 coiterate(returning(work), callback),
               //     5 cooperate(steps_of<int>), 6 coiterate(steps_of<int>, callback)
  pause,       // a0: task, a1: 1 = error_code form
  resume,      // a0: task, a1: 1 = error_code form
  stop_task,   // a0: task, a1: 1 = error_code form
  coop_stop,
  coop_start,
  run_ticks,   // a0: 1..3 ticks, a1..a3: units per tick (termination predicate)
  arm,         // a0: task, a1: action of its next unit, a2: target task
  when_done,   // a0: task, a1: 0 plain callback (strand), 1 bound to the context executor
  cancel,      // a0: wait, a1: 0 terminal, 1 partial, 2 total
  settle,      // when nothing is runnable: drain the executor and check every completion
  set_shares,  // a0: task, a1: which shares (shares_of)
  count_
};

struct op {
  op_kind kind = op_kind::settle;
  std::array<std::uint8_t, 4> a{};
};

// How a sequence ends. Whatever ran before, the handles outlive the end and must say how
// each task finished.
enum class ending : std::uint8_t {
  stop,           // cooperator::stop(), then drain the context
  destroy,        // ~cooperator(), then drain the context
  context_dies,   // the context is destroyed under the live cooperator, which goes after
};

struct sequence {
  bool started = true;
  std::size_t max_active = 0;   // cooperator_options::max_active (0: no limit)
  // 0: the tasks run on a cooperator. 1: on a cooperator_pool of one member, the same
  // rules with the pool's numbering and its admission budget for max_active. 2: on a pool
  // of two whose tasks all start on member 0 and move to member 1 when it has none; the
  // members' ticks interleave, so coop chooses which task runs next and the model checks
  // that it may run and what the unit does (see harness::follow_units).
  int members = 0;
  ending end = ending::stop;
  std::vector<op> ops;
};

inline const char* to_string(ending e) {
  switch (e) {
    case ending::stop: return "cooperator.stop(), drain";
    case ending::destroy: return "~cooperator(), drain";
    case ending::context_dies: return "~context() under the cooperator, then ~cooperator()";
  }
  return "?";
}

inline int ticks_of(const op& o) { return 1 + o.a[0] % 3; }
inline unsigned shares_of(const op& o) {
  static constexpr unsigned choices[] = {1, 50, 100, 150, 250, 100, 400, 30};
  return choices[o.a[1] % 8];
}
// The shake-out build ends every tick after one unit, whatever the predicate says.
inline int budget_of(const op& o, int i) { return coop_test::shake_out ? 1 : 1 + o.a[1 + i] % 6; }

inline std::string to_string(const op& o) {
  std::ostringstream s;
  static const char* const cancel_types[] = {"terminal", "partial", "total"};
  const int a0 = o.a[0], a1 = o.a[1], a2 = o.a[2];
  switch (o.kind) {
    case op_kind::cooperate:
      static const char* const variants[] = {"cooperate()", "coiterate(callback)", "coiterate(bind_executor(ctx))",
                                             "cooperate(returning(work))", "coiterate(returning(work), callback)",
                                             "cooperate(steps_of<int>)", "coiterate(steps_of<int>, callback)"};
      s << variants[a0 % 7];
      break;
    case op_kind::pause: s << "t" << a0 << ".pause(" << (a1 % 2 ? "ec" : "") << ")"; break;
    case op_kind::resume: s << "t" << a0 << ".resume(" << (a1 % 2 ? "ec" : "") << ")"; break;
    case op_kind::stop_task: s << "t" << a0 << ".stop(" << (a1 % 2 ? "ec" : "") << ")"; break;
    case op_kind::coop_stop: s << "cooperator.stop()"; break;
    case op_kind::coop_start: s << "cooperator.start()"; break;
    case op_kind::run_ticks: {
      s << "run_ticks[";
      for (int i = 0; i < ticks_of(o); ++i) s << (i ? "," : "") << budget_of(o, i);
      s << "]";
      break;
    }
    case op_kind::arm:
      s << "arm t" << a0 << " next unit: " << action_name(static_cast<action>(a1 % static_cast<int>(action::count_)));
      if (a1 % static_cast<int>(action::count_) >= static_cast<int>(action::pause_other)) s << " (target t" << a2 << ")";
      break;
    case op_kind::when_done: s << "t" << a0 << ".when_done(" << (a1 % 2 ? "bind_executor(ctx)" : "callback") << ")"; break;
    case op_kind::cancel: s << "cancel w" << a0 << " " << cancel_types[a1 % 3]; break;
    case op_kind::settle: s << "settle"; break;
    case op_kind::set_shares: s << "t" << a0 << ".set_shares(" << shares_of(o) << ")"; break;
    case op_kind::count_: break;
  }
  return s.str();
}

inline std::string to_string(const sequence& seq) {
  std::ostringstream s;
  s << "  " << (seq.members == 0 ? std::string("cooperator") : "cooperator_pool(size " + std::to_string(seq.members) + ")") << "{started=" << (seq.started ? "true" : "false")
    << ", max_active=" << seq.max_active << "}\n";
  for (std::size_t i = 0; i < seq.ops.size(); ++i) s << "  " << i << ": " << to_string(seq.ops[i]) << "\n";
  s << "  end: " << to_string(seq.end) << "\n";
  return s.str();
}

// A random sequence; the same seed gives the same sequence everywhere (no std
// distributions, whose results are implementation-defined).
inline sequence generate(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](std::uint64_t n) { return static_cast<int>(rng() % n); };
  sequence seq;
  seq.started = pick(5) != 0;
  seq.max_active = pick(3) == 0 ? static_cast<std::size_t>(1 + pick(3)) : 0;
  seq.end = static_cast<ending>(pick(3));
  const int length = 4 + pick(45);
  int made = 0;   // tasks made by the sequence itself (units may make more)
  int last_paused = -1;
  // Half of the sequences start with a few tasks, so that most operations meet a busy
  // cooperator.
  if (pick(2) == 0) {
    for (int n = 2 + pick(3); n > 0; --n) {
      op o;
      o.kind = op_kind::cooperate;
      seq.ops.push_back(o);
      ++made;
    }
  }
  auto task = [&] { return static_cast<std::uint8_t>(pick(static_cast<std::uint64_t>(made + 2))); };
  // weights per op_kind, in enum order
  static const int weights[] = {12, 9, 9, 4, 2, 3, 22, 18, 8, 5, 4, 6};
  int total = 0;
  for (int w : weights) total += w;
  for (int i = 0; i < length; ++i) {
    int r = pick(static_cast<std::uint64_t>(total)), k = 0;
    while (r >= weights[k]) r -= weights[k++];
    op o;
    o.kind = static_cast<op_kind>(k);
    switch (o.kind) {
      case op_kind::cooperate:
        o.a[0] = static_cast<std::uint8_t>(std::array<int, 12>{0, 0, 0, 0, 0, 1, 2, 3, 3, 4, 5, 6}[pick(12)]);
        ++made;
        break;
      case op_kind::pause:
      case op_kind::resume:
      case op_kind::stop_task:
        o.a[0] = task();
        // resume mostly what was paused last, so that resumed tasks rejoin busy rounds
        if (o.kind == op_kind::resume && last_paused >= 0 && pick(3) != 0) o.a[0] = static_cast<std::uint8_t>(last_paused);
        if (o.kind == op_kind::pause) last_paused = o.a[0];
        o.a[1] = static_cast<std::uint8_t>(pick(3) == 0);
        break;
      case op_kind::run_ticks:
        for (auto& b : o.a) b = static_cast<std::uint8_t>(pick(256));
        break;
      case op_kind::arm: {
        o.a[0] = task();
        // plain outcomes more often than calls from inside units
        int r2 = pick(20);
        o.a[1] = static_cast<std::uint8_t>(r2 < 4 ? 1 : r2 < 7 ? 2 : 3 + pick(static_cast<int>(action::count_) - 3));
        o.a[2] = task();
        break;
      }
      case op_kind::when_done:
        o.a[0] = task();
        o.a[1] = static_cast<std::uint8_t>(pick(3) == 0);
        break;
      case op_kind::cancel:
        o.a[0] = static_cast<std::uint8_t>(pick(8));
        o.a[1] = static_cast<std::uint8_t>(pick(3));
        break;
      case op_kind::set_shares:
        o.a[0] = task();
        o.a[1] = static_cast<std::uint8_t>(pick(8));
        break;
      default: break;
    }
    seq.ops.push_back(o);
  }
  // A quarter of the seeds run on a pool, half of those on two members, chosen apart from
  // the generator's stream so that every seed keeps the operations it had.
  const std::uint64_t spread = seed * 0x9E3779B97F4A7C15ull;
  seq.members = (spread >> 62) != 0 ? 0 : 1 + static_cast<int>((spread >> 61) & 1);
  return seq;
}

// A sequence from arbitrary bytes (the fuzzer's input): byte 0 the set-up, then 5 bytes
// per operation.
inline sequence decode(const std::uint8_t* data, std::size_t size) {
  sequence seq;
  if (size == 0) return seq;
  seq.started = (data[0] & 1) == 0;
  seq.end = static_cast<ending>(((data[0] >> 1) & 3) % 3);
  seq.max_active = (data[0] >> 3) % 4;
  seq.members = (data[0] >> 5) % 3;
  for (std::size_t i = 1; i + 5 <= size && seq.ops.size() < 200; i += 5) {
    op o;
    o.kind = static_cast<op_kind>(data[i] % static_cast<int>(op_kind::count_));
    for (int j = 0; j < 4; ++j) o.a[j] = data[i + 1 + j];
    seq.ops.push_back(o);
  }
  return seq;
}

// The inverse of decode(): seeds for the fuzzer's corpus.
inline std::vector<std::uint8_t> encode(const sequence& seq) {
  std::vector<std::uint8_t> out;
  out.push_back(static_cast<std::uint8_t>((seq.started ? 0 : 1) | (static_cast<int>(seq.end) << 1) |
                                          (static_cast<int>(seq.max_active % 4) << 3) | (seq.members % 3) << 5));
  for (const op& o : seq.ops) {
    out.push_back(static_cast<std::uint8_t>(o.kind));
    out.insert(out.end(), o.a.begin(), o.a.end());
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// The real side

// What a failing unit throws: its identity travels to when_done.
struct unit_error : std::runtime_error {
  unit_error(int task, int unit)
      : std::runtime_error("unit_error(t" + std::to_string(task) + "#" + std::to_string(unit) + ")") {}
};

inline std::string condition_of(const std::exception& e) {
  const std::type_info& t = typeid(e);
  if (t == typeid(coop::task_done)) return "task_done";
  if (t == typeid(coop::task_stopped)) return "task_stopped";
  if (t == typeid(coop::task_failed)) return "task_failed";
  if (t == typeid(coop::scheduler_stopped)) return "scheduler_stopped";
  if (t == typeid(coop::not_paused)) return "not_paused";
  return "unexpected " + boost::core::demangle(t.name()) + ": " + e.what();
}

inline std::string condition_of(const boost::system::error_code& ec) {
  if (ec == coop::error::task_done) return "task_done";
  if (ec == coop::error::task_stopped) return "task_stopped";
  if (ec == coop::error::task_failed) return "task_failed";
  if (ec == coop::error::scheduler_stopped) return "scheduler_stopped";
  if (ec == coop::error::not_paused) return "not_paused";
  return "unexpected " + ec.to_string();
}

inline std::string describe(const std::exception_ptr& e) {
  if (!e) return "null";
  try {
    std::rethrow_exception(e);
  } catch (const unit_error& u) {
    return u.what();
  } catch (const boost::system::system_error& s) {
    if (s.code() == asio::error::operation_aborted) return "aborted";
    return "unexpected system_error " + s.code().to_string();
  } catch (const std::exception& x) {
    return condition_of(x);
  } catch (...) {
    return "unexpected non-std exception";
  }
}

struct check_result {
  bool ok = true;
  std::string message;
  long units = 0;   // units run (for statistics)
  std::size_t op_index = 0;
  std::map<std::string, long> coverage;   // the model's
};

// What the sequence runs on: a cooperator, or a pool of one or two members.
class subject {
public:
  subject(coop_test::manual_context& ctx, int members, coop::cooperator_options options) {
    if (members > 0) pool_.emplace(ctx, static_cast<std::size_t>(members), std::move(options));
    else coop_.emplace(ctx, std::move(options));
  }
  template <class... A> auto cooperate(A&&... a) {
    return coop_ ? coop_->cooperate(std::forward<A>(a)...) : pool_->cooperate(std::forward<A>(a)...);
  }
  template <class... A> void coiterate(A&&... a) {
    if (coop_) coop_->coiterate(std::forward<A>(a)...);
    else pool_->coiterate(std::forward<A>(a)...);
  }
  void start() { coop_ ? coop_->start() : pool_->start(); }
  void stop() { coop_ ? coop_->stop() : pool_->stop(); }
  bool running() const { return coop_ ? coop_->running() : pool_->running(); }
  std::size_t members() const { return coop_ ? 1 : pool_->size(); }
  coop::cooperator::executor_type get_executor(std::size_t member = 0) const {
    return coop_ ? coop_->get_executor() : pool_->member_executor(member);
  }
  std::uint64_t moved() const { return coop_ ? 0 : pool_->stats().moved_in; }

private:
  // Every task added from outside a unit starts on member 0: member 1 gets tasks only by
  // taking them, so a pool of two moves tasks in most sequences that have two runnable.
  struct pinned_pool : coop::cooperator_pool {
    pinned_pool(coop_test::manual_context& ctx, std::size_t size, coop::cooperator_options options)
        : cooperator_pool(ctx, size, std::move(options)) {
      members().place_all_on(0);
    }
  };
  std::optional<coop::cooperator> coop_;
  std::optional<pinned_pool> pool_;
};

class harness {
public:
  explicit harness(const sequence& seq, model::mutations m = {})
      : seq_(seq), model_(seq.started, m, seq.max_active), ctx_(std::make_unique<coop_test::manual_context>()) {
    coop::cooperator_options options;
    options.started = seq.started;
    options.max_active = seq.max_active;
    options.termination = [this] {
      in_tick_ = false;   // the next unit starts a new (non-empty) tick
      return std::function<bool()>([this] { return ++units_in_tick_ >= budget_; });
    };
    coop_.emplace(*ctx_, seq.members, std::move(options));
    for (std::size_t i = 0; i < coop_->members(); ++i) strands_.push_back(coop_->get_executor(i));
  }

  harness(const harness&) = delete;
  harness& operator=(const harness&) = delete;

  ~harness() {
    // Handlers queued on the context refer to `this` but do nothing when destroyed.
    tasks_.clear();
    coop_.reset();
    strands_.clear();   // a strand must not outlive its execution context
    ctx_.reset();
  }

  check_result run() {
    check_result r;
    for (std::size_t i = 0; i < seq_.ops.size() && r.ok; ++i) {
      r.op_index = i;
      step(seq_.ops[i], r);
    }
    // (Before the ending, which may destroy the pool.)
    if (r.ok && coop_->moved() > 0) note_model("a task moved to the other member");
    if (r.ok) finish(r);
    r.units = units_run_;
    r.coverage = model_.coverage();
    return r;
  }

private:
  // The work of a task made with returning(work): it counts its units, and comes back.
  struct counting_work {
    harness* h = nullptr;
    int id = 0;
    int units = -1;   // -1: default-constructed (what a cancelled result wait gets)
    coop::step operator()() {
      ++units;
      return h->unit(id);
    }
  };

  // steps_of<int> work: one harness unit per resumption; co_returns its unit count.
  static coop::steps_of<int> counting_steps(harness* h, int id) {
    for (int units = 1;; ++units) {
      if (h->unit(id) == coop::step::done) co_return units;
      co_yield coop::next;
    }
  }

  struct real_task {
    std::optional<coop::cooperative_task> handle;   // the base of `result` too
    std::optional<coop::result_task<counting_work>> result;
    std::optional<coop::result_task<int>> steps_result;
    action armed = action::more;
    std::uint8_t target = 0;
    int units = 0;
  };
  struct real_wait {
    bool bound_to_context = false;
    int delivered = 0;
    std::string result;
    long units_at = 0;
    bool checked = false;
    std::unique_ptr<asio::cancellation_signal> signal = std::make_unique<asio::cancellation_signal>();
  };

  // Counts calls into coop in progress: a completion handler must never run inside one.
  struct in_call {
    explicit in_call(harness& h) : h_(h) { ++h_.call_depth_; }
    ~in_call() { --h_.call_depth_; }
    harness& h_;
  };

  template <class F> std::string call(bool ec_form, F&& f) {
    in_call guard(*this);
    if (ec_form) {
      boost::system::error_code ec = asio::error::fault;   // must be cleared on success
      f(&ec);
      return ec ? "ec:" + condition_of(ec) : "ec:ok";
    }
    try {
      f(nullptr);
      return "ok";
    } catch (const std::exception& e) {
      return "throw:" + condition_of(e);
    }
  }

  std::string pause_task(int id, bool ec_form) {
    auto& h = *tasks_[id].handle;
    return call(ec_form, [&](boost::system::error_code* ec) { ec ? h.pause(*ec) : h.pause(); });
  }
  std::string resume_task(int id, bool ec_form) {
    auto& h = *tasks_[id].handle;
    return call(ec_form, [&](boost::system::error_code* ec) { ec ? h.resume(*ec) : h.resume(); });
  }
  std::string stop_task(int id, bool ec_form) {
    auto& h = *tasks_[id].handle;
    return call(ec_form, [&](boost::system::error_code* ec) { ec ? h.stop(*ec) : h.stop(); });
  }

  bool has_handle(int id) const {
    return id < static_cast<int>(tasks_.size()) && tasks_[id].handle.has_value();
  }

  auto work_for(int id) {
    return [this, id]() -> coop::step { return unit(id); };
  }

  int new_wait(bool bound) {
    waits_.emplace_back();
    waits_.back().bound_to_context = bound;
    return static_cast<int>(waits_.size()) - 1;
  }

  // A plain completion handler (no associated executor, allocator or slot of its own).
  struct handler_type {
    harness* h;
    int w;
    void operator()(std::exception_ptr e) const { h->delivered(w, std::move(e)); }
  };
  handler_type handler(int w) { return handler_type{this, w}; }

  // A result wait's handler: the work comes back with the completion.
  struct value_handler_type {
    harness* h;
    int w;
    void operator()(std::exception_ptr e, counting_work work) const {
      h->delivered(w, std::move(e), work.units < 0 ? "/v{}" : "/v" + std::to_string(work.units));
    }
  };

  // The handler with the wait's cancellation slot bound.
  auto with_slot(int w) { return asio::bind_cancellation_slot(waits_[w].signal->slot(), handler(w)); }
  auto value_with_slot(int w) {
    return asio::bind_cancellation_slot(waits_[w].signal->slot(), value_handler_type{this, w});
  }
  struct int_handler_type {
    harness* h;
    int w;
    void operator()(std::exception_ptr e, int value) const { h->delivered(w, std::move(e), "/v" + std::to_string(value)); }
  };
  auto int_with_slot(int w) { return asio::bind_cancellation_slot(waits_[w].signal->slot(), int_handler_type{this, w}); }

  // Returns the new task's id or -1 at the cap.
  int cooperate_real(int variant) {
    if (tasks_.size() >= model::max_tasks) return -1;
    int id = static_cast<int>(tasks_.size());
    tasks_.emplace_back();
    in_call guard(*this);
    if (variant == 0) {
      tasks_[id].handle = coop_->cooperate(work_for(id));
    } else if (variant == 3) {
      tasks_[id].result = coop_->cooperate(coop::returning(counting_work{this, id, 0}));
      tasks_[id].handle = *tasks_[id].result;
    } else if (variant == 4) {
      coop_->coiterate(coop::returning(counting_work{this, id, 0}), value_with_slot(new_wait(false)));
    } else if (variant == 5) {
      tasks_[id].steps_result = coop_->cooperate(counting_steps(this, id));
      tasks_[id].handle = *tasks_[id].steps_result;
    } else if (variant == 6) {
      coop_->coiterate(counting_steps(this, id), int_with_slot(new_wait(false)));
    } else {
      int w = new_wait(variant == 2);
      if (variant == 2)
        coop_->coiterate(work_for(id), asio::bind_executor(ctx_->get_executor(), with_slot(w)));
      else
        coop_->coiterate(work_for(id), with_slot(w));
    }
    return id;
  }


  int when_done_real(int id, bool bound) {
    if (waits_.size() >= model::max_waits) return -1;
    int w = new_wait(bound);
    auto& h = *tasks_[id].handle;
    in_call guard(*this);
    if (auto& rt = tasks_[id].result) {
      if (bound)
        rt->when_done(asio::bind_executor(ctx_->get_executor(), value_with_slot(w)));
      else
        rt->when_done(value_with_slot(w));
    } else if (auto& st = tasks_[id].steps_result) {
      if (bound)
        st->when_done(asio::bind_executor(ctx_->get_executor(), int_with_slot(w)));
      else
        st->when_done(int_with_slot(w));
    } else if (bound)
      h.when_done(asio::bind_executor(ctx_->get_executor(), with_slot(w)));
    else
      h.when_done(with_slot(w));
    return w;
  }

  void violation(const std::string& what) { log_.push_back("VIOLATION: " + what); }

  // On the cooperator's strand, or on a pool member's (a handler without an executor of
  // its own runs on the strand of the member its task finished on).
  bool on_a_strand() const {
    return std::any_of(strands_.begin(), strands_.end(), [](const auto& s) { return s.running_in_this_thread(); });
  }

  void delivered(int w, std::exception_ptr e, const std::string& value = "") {
    real_wait& rec = waits_[w];
    std::string name = "w" + std::to_string(w);
    if (call_depth_ > 0) violation(name + " completed inline, inside a call into coop");
    if (in_unit_) violation(name + " completed inside a work unit");
    if (!ctx_) violation(name + " completed after its context died");
    bool on_strand = on_a_strand();
    if (!rec.bound_to_context && !on_strand) violation(name + " (no associated executor) did not run on the cooperator's strand");
    if (rec.bound_to_context && on_strand) violation(name + " (bound to the context) ran on the strand");
    if (++rec.delivered == 1) {
      rec.result = describe(e) + value;
      rec.units_at = units_run_;
    } else {
      violation(name + " completed " + std::to_string(rec.delivered) + " times");
    }
  }

  coop::step unit(int id) {
    if (in_unit_) violation("units overlap");
    if (!on_a_strand()) violation("a unit ran off the cooperator's strand");
    struct unit_scope {
      explicit unit_scope(bool& f) : f_(f) { f_ = true; }
      ~unit_scope() { f_ = false; }
      bool& f_;
    } scope(in_unit_);
    if (!in_tick_) {
      in_tick_ = true;
      units_in_tick_ = 0;
      int index = ticks_ - ticks_at_op_;
      budget_ = index < static_cast<int>(budgets_.size()) ? budgets_[index] : 1;
      ++ticks_;
    }
    real_task& t = tasks_[id];
    int unit = ++t.units;
    ++units_run_;
    auto name = [](int i) { return "t" + std::to_string(i); };
    log_.push_back("unit " + name(id) + "#" + std::to_string(unit));
    action a = t.armed;
    int target = t.target;
    t.armed = action::more;
    bool target_ok = has_handle(target);
    bool self_ok = has_handle(id);
    auto logged = [&](const char* what, int i, std::string result) {
      log_.push_back("  " + name(i) + "." + what + "()=" + result);
    };
    std::string outcome = "more";
    switch (a) {
      case action::more: break;
      case action::done: outcome = "done"; break;
      case action::fail: outcome = "fail"; break;
      case action::stop_self_done:
        if (self_ok) logged("stop", id, stop_task(id, false));
        outcome = "done";
        break;
      case action::stop_self_fail:
        if (self_ok) logged("stop", id, stop_task(id, false));
        outcome = "fail";
        break;
      case action::pause_self_done:
        if (self_ok) logged("pause", id, pause_task(id, false));
        outcome = "done";
        break;
      case action::pause_other:
        if (target_ok) logged("pause", target, pause_task(target, false));
        break;
      case action::resume_other:
        if (target_ok) logged("resume", target, resume_task(target, false));
        break;
      case action::stop_other:
        if (target_ok) logged("stop", target, stop_task(target, false));
        break;
      case action::cooperate_new: {
        int n = cooperate_real(0);
        log_.push_back("  cooperate()=" + (n < 0 ? std::string("skip") : name(n)));
        break;
      }
      case action::when_done_other:
        if (target_ok) {
          int w = when_done_real(target, false);
          log_.push_back("  " + name(target) + ".when_done()=" + (w < 0 ? std::string("skip") : "w" + std::to_string(w)));
        }
        break;
      case action::coop_stop: {
        in_call guard(*this);
        coop_->stop();
        log_.push_back("  cooperator.stop()");
        break;
      }
      case action::coop_start: {
        in_call guard(*this);
        coop_->start();
        log_.push_back("  cooperator.start()");
        break;
      }
      case action::count_: break;
    }
    if (outcome == "fail") throw unit_error(id, unit);
    return outcome == "done" ? coop::step::done : coop::step::more;
  }

  // ---- one operation, on both sides, then the comparison ----
  void step(const op& o, check_result& r) {
    std::size_t model_log_start = model_.log().size();
    log_start_ = log_.size();
    std::string real_out, model_out;
    const int a0 = o.a[0];
    const bool ec_form = o.a[1] % 2 != 0;
    const bool task_known = has_handle(a0);
    const bool model_task_known = a0 < static_cast<int>(model_.tasks().size()) && model_.tasks()[a0].has_handle;
    try {
      switch (o.kind) {
        case op_kind::cooperate: {
          int variant = a0 % 7;
          int id = cooperate_real(variant);
          real_out = id < 0 ? "skip" : "t" + std::to_string(id);
          const bool handle = variant == 0 || variant == 3 || variant == 5;
          using rk = model::result_kind;
          int mid = model_.cooperate(handle, variant >= 5 ? rk::steps : variant >= 3 ? rk::work : rk::none);
          if (mid >= 0 && !handle) model_.when_done(mid, true);
          model_out = mid < 0 ? "skip" : "t" + std::to_string(mid);
          break;
        }
        case op_kind::pause:
          real_out = task_known ? pause_task(a0, ec_form) : "skip";
          model_out = model_task_known ? model_.pause(a0, ec_form) : "skip";
          break;
        case op_kind::resume:
          real_out = task_known ? resume_task(a0, ec_form) : "skip";
          model_out = model_task_known ? model_.resume(a0, ec_form) : "skip";
          break;
        case op_kind::stop_task:
          real_out = task_known ? stop_task(a0, ec_form) : "skip";
          model_out = model_task_known ? model_.stop(a0, ec_form) : "skip";
          break;
        case op_kind::coop_stop:
          real_out = call(false, [&](boost::system::error_code*) { coop_->stop(); });
          model_.stop();
          model_out = "ok";
          break;
        case op_kind::coop_start:
          real_out = call(false, [&](boost::system::error_code*) { coop_->start(); });
          model_.start();
          model_out = "ok";
          break;
        case op_kind::run_ticks: {
          budgets_.clear();
          for (int i = 0; i < ticks_of(o); ++i) budgets_.push_back(budget_of(o, i));
          ticks_at_op_ = ticks_;
          const int target = ticks_ + ticks_of(o);
          std::size_t polls = 0;
          while (ticks_ < target && ctx_->poll_one() != 0) {
            if (++polls > 10000) {
              violation("the executor never ran dry and never ran the ticks asked for");
              break;
            }
          }
          real_out = "ticks=" + std::to_string(ticks_ - ticks_at_op_);
          if (seq_.members == 2) {
            // The members' ticks interleave: coop chose the units, the model checks each.
            follow_units();
            // ... and that the executor ran dry only with nothing left to run.
            const bool ran_dry = ticks_ - ticks_at_op_ < ticks_of(o);
            model_out = ran_dry && model_.runnable() ? "ticks=" + std::to_string(ticks_ - ticks_at_op_) + ", yet a task is runnable"
                                                     : real_out;
            break;
          }
          int mt = 0;
          for (int i = 0; i < ticks_of(o); ++i) {
            if (!model_.tick(budget_of(o, i))) break;
            ++mt;
          }
          model_out = "ticks=" + std::to_string(mt);
          break;
        }
        case op_kind::arm: {
          action a = static_cast<action>(o.a[1] % static_cast<int>(action::count_));
          bool known = a0 < static_cast<int>(tasks_.size());
          if (known) {
            tasks_[a0].armed = a;
            tasks_[a0].target = o.a[2];
          }
          bool mknown = a0 < static_cast<int>(model_.tasks().size());
          if (mknown) model_.arm(a0, a, o.a[2]);
          real_out = known ? "ok" : "skip";
          model_out = mknown ? "ok" : "skip";
          break;
        }
        case op_kind::when_done: {
          bool bound = ec_form;   // a1 % 2
          int w = task_known ? when_done_real(a0, bound) : -2;
          real_out = w == -2 ? "skip" : w < 0 ? "cap" : "w" + std::to_string(w);
          int mw = model_task_known ? model_.when_done(a0) : -2;
          model_out = mw == -2 ? "skip" : mw < 0 ? "cap" : "w" + std::to_string(mw);
          break;
        }
        case op_kind::cancel: {
          static const asio::cancellation_type types[] = {asio::cancellation_type::terminal, asio::cancellation_type::partial,
                                                          asio::cancellation_type::total};
          int type = o.a[1] % 3;
          if (a0 < static_cast<int>(waits_.size())) {
            in_call guard(*this);
            waits_[a0].signal->emit(types[type]);
            real_out = "ok";
          } else {
            real_out = "skip";
          }
          if (a0 < static_cast<int>(model_.waits().size())) {
            model_.cancel(a0, type);
            model_out = "ok";
          } else {
            model_out = "skip";
          }
          break;
        }
        case op_kind::settle:
          real_out = model_out = "";
          if (!model_.runnable()) settle(real_out, model_out);
          // Each task's stats count the units the model ran.
          for (std::size_t i = 0; i < tasks_.size() && i < model_.tasks().size(); ++i) {
            if (!tasks_[i].handle || !model_.tasks()[i].has_handle) continue;
            real_out += " u" + std::to_string(i) + "=" + std::to_string(tasks_[i].handle->stats().units);
            model_out += " u" + std::to_string(i) + "=" + std::to_string(model_.tasks()[i].units);
          }
          break;
        case op_kind::set_shares: {
          const unsigned v = shares_of(o);
          if (task_known) {
            real_out = call(false, [&](boost::system::error_code*) { tasks_[a0].handle->set_shares(v); });
            real_out += " shares=" + std::to_string(tasks_[a0].handle->shares());
          } else {
            real_out = "skip";
          }
          if (model_task_known) {
            model_out = model_.set_shares(a0, v);
            model_out += " shares=" + std::to_string(model_.shares(a0));
          } else {
            model_out = "skip";
          }
          break;
        }
        case op_kind::count_: break;
      }
    } catch (const std::exception& e) {
      violation(std::string("an exception escaped: ") + boost::core::demangle(typeid(e).name()) + ": " + e.what());
    }
    if (coop_) {
      real_out += coop_->running() ? " running" : " not-running";
      model_out += model_.running() ? " running" : " not-running";
    }
    compare(to_string(o), real_out, model_out, model_log_start, r);
  }

  // A pool of two: the units coop ran in this operation, in its order, each run by the
  // model too if the model says that task may run now (else a violation ends the check).
  // What the units call, and what those calls return, is then compared as for one order.
  void follow_units() {
    const std::string prefix = "unit t";
    for (std::size_t i = log_start_; i < log_.size(); ++i) {
      if (log_[i].compare(0, prefix.size(), prefix) != 0) continue;
      const int id = std::stoi(log_[i].substr(prefix.size()));
      if (!model_.follow_unit(id)) {
        violation("coop ran a unit of t" + std::to_string(id) + ", which the model says may not run now");
        return;
      }
    }
  }

  // Nothing is runnable: the executor must run dry, every resolved wait must have been
  // delivered, and work is held exactly while some wait is pending.
  void settle(std::string& real_out, std::string& model_out) {
    std::size_t polls = 0;
    try {
      while (ctx_->poll_one() != 0) {
        if (++polls > 10000) {
          violation("nothing is runnable, yet the executor never runs dry");
          break;
        }
      }
    } catch (const std::exception& e) {
      violation(std::string("an exception escaped the executor: ") + e.what());
    }
    std::string real_pending, model_pending;
    bool model_any_pending = false;
    for (std::size_t w = 0; w < waits_.size(); ++w)
      if (waits_[w].delivered == 0) real_pending += " w" + std::to_string(w);
    for (std::size_t w = 0; w < model_.waits().size(); ++w)
      if (!model_.waits()[w].resolved) {
        model_pending += " w" + std::to_string(w);
        model_any_pending = true;
      }
    real_out = "pending:[" + real_pending + " ]";
    model_out = "pending:[" + model_pending + " ]";
    if (model_.list_empty()) {
      // The cooperator holds no work of its own; each pending wait holds some.
      real_out += ctx_->outstanding_work() > 0 ? " work" : " no-work";
      model_out += model_any_pending ? " work" : " no-work";
    }
  }

  void compare(const std::string& what, const std::string& real_out, const std::string& model_out,
               std::size_t model_log_start, check_result& r) {
    std::vector<std::string> real_log(log_.begin() + static_cast<std::ptrdiff_t>(log_start_), log_.end());
    std::vector<std::string> model_log(model_.log().begin() + static_cast<std::ptrdiff_t>(model_log_start), model_.log().end());
    std::ostringstream m;
    if (real_out != model_out) m << "  result: coop \"" << real_out << "\", model \"" << model_out << "\"\n";
    if (real_log != model_log) {
      m << "  coop's units and calls:\n";
      for (auto& l : real_log) m << "    " << l << "\n";
      m << "  the model's:\n";
      for (auto& l : model_log) m << "    " << l << "\n";
    }
    // Every completion delivered so far must be one the model has resolved, with the same
    // result, and not delivered before the model resolved it.
    for (std::size_t w = 0; w < waits_.size(); ++w) {
      real_wait& rec = waits_[w];
      if (rec.delivered == 0 || rec.checked) continue;
      rec.checked = true;
      if (w >= model_.waits().size()) {
        m << "  w" << w << " exists only in coop\n";
        continue;
      }
      const auto& mw = model_.waits()[w];
      if (!mw.resolved)
        m << "  w" << w << " completed with " << rec.result << " but the model has it pending\n";
      else if (mw.result != rec.result)
        m << "  w" << w << " completed with " << rec.result << ", the model says " << mw.result << "\n";
      else if (rec.units_at < mw.resolved_at)
        m << "  w" << w << " completed after " << rec.units_at << " units, before its task finished (after "
          << mw.resolved_at << ")\n";
    }
    if (!m.str().empty()) {
      r.ok = false;
      r.message = "op " + std::to_string(r.op_index) + " " + what + ":\n" + m.str();
    }
  }

  void finish(check_result& r) {
    r.op_index = seq_.ops.size();
    std::size_t model_log_start = model_.log().size();
    log_start_ = log_.size();
    std::string real_out, model_out;
    switch (seq_.end) {
      case ending::stop: {
        in_call guard(*this);
        coop_->stop();
        model_.stop();
        break;
      }
      case ending::destroy: {
        in_call guard(*this);
        coop_.reset();
        model_.stop();
        break;
      }
      case ending::context_dies: {
        // Shutdown destroys what is queued and invokes nothing: no wait may complete now,
        // not even one whose task finishes by the shutdown itself.
        std::vector<int> delivered_before;
        for (const real_wait& w : waits_) delivered_before.push_back(w.delivered);
        strands_.clear();   // an executor must not outlive its context
        {
          in_call guard(*this);
          ctx_.reset();
        }
        for (std::size_t w = 0; w < waits_.size(); ++w)
          if (waits_[w].delivered != delivered_before[w]) violation("w" + std::to_string(w) + " was invoked by the context's shutdown");
        model_.context_dies();
        real_out += coop_->running() ? "running" : "not-running";
        model_out += model_.running() ? "running" : "not-running";
        break;
      }
    }
    if (ctx_) settle(real_out, model_out);
    // The handles outlive the cooperator (or its stop, or its context) and say how each
    // task finished.
    for (std::size_t id = 0; id < tasks_.size() && id < model_.tasks().size(); ++id) {
      if (!tasks_[id].handle) continue;
      real_out += " t" + std::to_string(id) + ".pause()=" + pause_task(static_cast<int>(id), false);
      model_out += " t" + std::to_string(id) + ".pause()=" + model_.pause(static_cast<int>(id), false);
      real_out += " t" + std::to_string(id) + ".resume(ec)=" + resume_task(static_cast<int>(id), true);
      model_out += " t" + std::to_string(id) + ".resume(ec)=" + model_.resume(static_cast<int>(id), true);
    }
    if (seq_.end == ending::context_dies) {
      // when_done on each handle, first with the cooperator still alive, then with it gone.
      after_context_death(real_out, model_out);
      {
        in_call guard(*this);
        coop_.reset();
      }
      after_context_death(real_out, model_out);
    }
    compare(std::string("end: ") + to_string(seq_.end), real_out, model_out, model_log_start, r);
  }

  // With the context gone, when_done completes with the stored result through the
  // handler's own executor (here a second, live context), never inline; a handler with no
  // executor of its own would have to run on the gone strand, so it is destroyed, not
  // invoked.
  void after_context_death(std::string& real_out, std::string& model_out) {
    struct outcome {
      int calls = 0;
      std::string result;
    };
    coop_test::manual_context other;
    std::vector<std::pair<std::size_t, std::shared_ptr<outcome>>> bound, plain;
    for (std::size_t id = 0; id < tasks_.size() && id < model_.tasks().size(); ++id) {
      if (!tasks_[id].handle) continue;
      auto b = std::make_shared<outcome>(), p = std::make_shared<outcome>();
      {
        in_call guard(*this);
        tasks_[id].handle->when_done(asio::bind_executor(other.get_executor(), [b](std::exception_ptr e) {
          ++b->calls;
          b->result = describe(e);
        }));
        tasks_[id].handle->when_done([p](std::exception_ptr e) {
          ++p->calls;
          p->result = describe(e);
        });
      }
      if (b->calls != 0 || p->calls != 0) violation("when_done after the context died completed inline");
      bound.emplace_back(id, b);
      plain.emplace_back(id, p);
    }
    other.poll();
    for (auto& [id, b] : bound) {
      const std::string name = " t" + std::to_string(id);
      real_out += name + ".when_done(other)=" + (b->calls == 1 ? b->result : std::to_string(b->calls) + " calls");
      model_out += name + ".when_done(other)=" + model_.tasks()[id].result;
      note_model("when_done after the context died");
    }
    for (auto& [id, p] : plain)
      if (p->calls != 0) violation("t" + std::to_string(id) + ".when_done(callback) ran after its strand's context died");
  }

  void note_model(const char* what) { model_.note_external(what); }

  sequence seq_;
  model model_;
  // Destruction order matters: the signals outlive every operation that may hold a slot.
  std::deque<real_wait> waits_;
  std::unique_ptr<coop_test::manual_context> ctx_;
  std::optional<subject> coop_;
  std::vector<coop::cooperator::executor_type> strands_;   // one per member
  std::vector<real_task> tasks_;
  std::vector<std::string> log_;
  std::size_t log_start_ = 0;
  int call_depth_ = 0;
  bool in_unit_ = false;
  // tick accounting (see the termination predicate in the constructor)
  bool in_tick_ = false;
  int units_in_tick_ = 0;
  int budget_ = 1;
  int ticks_ = 0;
  int ticks_at_op_ = 0;
  std::vector<int> budgets_;
  long units_run_ = 0;
};

inline check_result check(const sequence& seq, model::mutations m = {}) {
  harness h(seq, m);
  return h.run();
}

// Shrinks a failing sequence: removes chunks of operations (ddmin-style), then
// simplifies run_ticks, as long as it still fails. `budget` bounds the reruns.
inline sequence shrink(sequence seq, model::mutations m = {}, int budget = 3000) {
  auto fails = [&](const sequence& s) {
    if (budget-- <= 0) return false;
    return !check(s, m).ok;
  };
  const auto remove_ops = [&] {
    std::size_t n = 2;
    while (seq.ops.size() >= 1 && budget > 0) {
      std::size_t size = seq.ops.size();
      std::size_t chunk = std::max<std::size_t>(1, (size + n - 1) / n);
      bool removed = false;
      for (std::size_t start = 0; start < size; start += chunk) {
        sequence candidate = seq;
        candidate.ops.erase(candidate.ops.begin() + static_cast<std::ptrdiff_t>(start),
                            candidate.ops.begin() + static_cast<std::ptrdiff_t>(std::min(size, start + chunk)));
        if (fails(candidate)) {
          seq = std::move(candidate);
          n = std::max<std::size_t>(n - 1, 2);
          removed = true;
          break;
        }
      }
      if (!removed) {
        if (chunk == 1) break;
        n = std::min(n * 2, size);
      }
    }
  };
  remove_ops();
  // Name earlier tasks where that still fails: the tasks made only to reach a higher
  // number can then go too. And no concurrency limit, if it is not needed.
  const auto names_task = [](const op& o) {
    return o.kind == op_kind::pause || o.kind == op_kind::resume || o.kind == op_kind::stop_task ||
           o.kind == op_kind::when_done || o.kind == op_kind::set_shares || o.kind == op_kind::arm;
  };
  bool renamed = false;
  for (int k = 15; k > 0; --k) {
    for (int j = 0; j < k; ++j) {
      sequence candidate = seq;  // every operation on task k acts on task j instead
      bool any = false;
      for (op& o : candidate.ops)
        if (names_task(o) && o.a[0] == k) o.a[0] = static_cast<std::uint8_t>(j), any = true;
      if (!any) break;
      if (fails(candidate)) {
        seq = std::move(candidate);
        renamed = true;
        break;
      }
    }
  }
  if (seq.max_active != 0) {
    sequence candidate = seq;
    candidate.max_active = 0;
    if (fails(candidate)) seq = candidate;
  }
  for (int members = 0; members < seq.members; ++members) {
    sequence candidate = seq;
    candidate.members = members;
    if (fails(candidate)) {
      seq = candidate;
      break;
    }
  }
  if (renamed) remove_ops();
  // Fewer, shorter ticks; throwing forms; end by stop().
  for (std::size_t i = 0; i < seq.ops.size(); ++i) {
    if (seq.ops[i].kind == op_kind::run_ticks) {
      for (std::uint8_t v : {std::uint8_t{0}, std::uint8_t{1}}) {
        sequence candidate = seq;
        candidate.ops[i].a[0] = v;
        if (v < seq.ops[i].a[0] % 3 && fails(candidate)) seq = candidate;
      }
      for (int b = 1; b <= 3; ++b) {
        for (std::uint8_t v = 0; v < seq.ops[i].a[b] % 6; ++v) {
          sequence candidate = seq;
          candidate.ops[i].a[b] = v;
          if (fails(candidate)) {
            seq = candidate;
            break;
          }
        }
      }
    }
  }
  if (seq.end != ending::stop) {
    sequence candidate = seq;
    candidate.end = ending::stop;
    if (fails(candidate)) seq = candidate;
  }
  return seq;
}

}  // namespace coop_model
