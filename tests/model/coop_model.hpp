// SPDX-License-Identifier: BSL-1.0
// The reference model of coop's task/cooperator state machine, written from the
// documented contract and Twisted's behaviour (not from coop's source). It is deliberately
// naive: a vector of runnable task ids with an index cursor (Twisted's list + list iterator), O(n) everything, strings for
// every observable. tests/model/model_harness.hpp drives coop and this model with the same
// operation sequences and compares what they do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace coop_model {

// What the next unit of a task does (armed by the sequence, consumed by the unit).
enum class action : std::uint8_t {
  more,             // return step::more
  done,             // return step::done
  fail,             // throw unit_error
  stop_self_done,   // stop() own task, then return step::done (first way of finishing wins)
  stop_self_fail,   // stop() own task, then throw
  pause_self_done,  // pause() own task, then return step::done
  pause_other,      // pause() task `target`, return step::more
  resume_other,     // resume() task `target`, return step::more
  stop_other,       // stop() task `target`, return step::more
  cooperate_new,    // cooperate() a new task, return step::more
  when_done_other,  // when_done() on task `target` (plain callback), return step::more
  coop_stop,        // cooperator::stop(), return step::more
  coop_start,       // cooperator::start(), return step::more
  count_
};

inline const char* action_name(action a) {
  static const char* const names[] = {"more",        "done",         "fail",
                                      "stop_self_done", "stop_self_fail", "pause_self_done",
                                      "pause_other", "resume_other", "stop_other",
                                      "cooperate_new", "when_done_other", "coop_stop",
                                      "coop_start"};
  return names[static_cast<int>(a)];
}

// Deliberate mistakes, used only to show that the checker catches a wrong model.
struct model_mutations {
  bool skip_after_removal = false;  // Twisted's list.remove-under-iterator skip
  bool resume_at_front = false;     // a resumed task joins at the front
  bool no_pause_count = false;      // pause is a flag, not a counter
  bool shares_ignored = false;      // every turn is one unit, whatever the shares
  bool admit_newest = false;        // max_active admits the newest queued task, not the oldest
};

// Observables are strings so that the model needs nothing from coop:
//  - a control call:    "ok" | "throw:<condition>" | "ec:ok" | "ec:<condition>"
//  - a completion:      "null" | "<condition>" | "unit_error(t<id>#<unit>)" | "aborted"
// where <condition> is one of task_done, task_stopped, task_failed, scheduler_stopped,
// not_paused. A wait for the result of a task made with returning(work) also says
// "/v<n>": the work object it got, which has run n units (every way of finishing hands
// the work back, as Twisted's whenDone fires with the iterator), or "/v{}": a
// default-constructed one (a cancelled wait). A wait for a steps_of<int> coroutine's
// result says "/v<n>": what it co_returned (n, its units, when done), 0 otherwise.
class model {
public:
  static constexpr std::size_t max_tasks = 8;
  static constexpr std::size_t max_waits = 24;

  using mutations = model_mutations;

  enum class result_kind : std::uint8_t {
    none,     // plain work: when_done gives only how it finished
    work,     // returning(work): the work object comes back
    steps,    // steps_of<int>: what it co_returns (its unit count), T{} unless done
  };

  struct task {
    bool has_handle = true;  // false for coiterate()d tasks: the sequence cannot name them
    result_kind returns = result_kind::none;
    int paused = 0;
    std::string finished;    // "" while unfinished, else its condition
    std::string result;      // its when_done result once finished
    int units = 0;
    action armed = action::more;
    std::uint8_t target = 0;
    unsigned shares = 100;
    long credit = 0;         // fairness::units: shares earned per turn, 100 spent per unit
    bool queued = false;     // waiting for admission (max_active)
  };
  struct wait {
    std::size_t task = 0;
    bool from_coiterate = false;
    bool with_value = false;   // a result wait (the task returns its work)
    bool resolved = false;
    std::string result;
    long resolved_at = 0;   // units run (in total) when it resolved
  };

  explicit model(bool started, mutations m = {}, std::size_t max_active = 0)
      : started_(started), mutations_(m), max_active_(max_active) {}

  // ---- the cooperator ----
  bool running() const { return started_ && !stopped_; }
  bool runnable() const { return running() && !list_.empty(); }
  bool list_empty() const { return list_.empty(); }

  // Returns the new task's id, or -1 at the task cap (the harness skips the call).
  int cooperate(bool has_handle = true, result_kind returns = result_kind::none) {
    if (tasks_.size() >= max_tasks) return -1;
    int id = static_cast<int>(tasks_.size());
    tasks_.push_back(task{});
    tasks_.back().has_handle = has_handle;
    tasks_.back().returns = returns;
    if (stopped_) {
      note("cooperate on a stopped cooperator");
      ++admitted_;                                             // admitted, to finish at once
      finish(id, "scheduler_stopped", "scheduler_stopped");
    } else if (max_active_ && admitted_ >= max_active_) {
      note("a task waits for admission (max_active)");
      tasks_[id].queued = true;                                // FIFO, runs no unit
      queue_.push_back(id);
    } else {
      ++admitted_;
      join(id);                                                // queued until start()
    }
    return id;
  }
  void start() {
    started_ = true;
    stopped_ = false;
  }
  void stop() {
    stopped_ = true;
    for (std::size_t id = 0; id < tasks_.size(); ++id)
      if (tasks_[id].finished.empty()) finish(static_cast<int>(id), "scheduler_stopped", "scheduler_stopped");
    list_.clear();
    cursor_ = 0;
    held_ = -1;
  }

  // The execution context shuts down under the cooperator: every unfinished task finishes
  // scheduler_stopped, as by stop(), and handlers still queued are destroyed, not invoked
  // (the harness checks that no wait completes).
  void context_dies() {
    for (const task& t : tasks_)
      if (t.finished.empty()) note(t.paused > 0 ? "context death finishes a paused task" : "context death finishes an unpaused task");
    for (const wait& w : waits_)
      if (!w.resolved) note("context death drops a pending wait");
    stop();
  }

  // ---- a task ----
  std::string pause(int id, bool ec_form) {
    task& t = tasks_[id];
    if (!t.finished.empty()) {
      note("pause a finished task");
      return fail(ec_form, t.finished);
    }
    if (t.paused > 0) note("pause a paused task");
    if (mutations_.no_pause_count && t.paused > 0) return ok(ec_form);
    if (t.queued) note("pause a task waiting for admission");
    if (++t.paused == 1 && !t.queued) remove(id);
    return ok(ec_form);
  }
  std::string resume(int id, bool ec_form) {
    task& t = tasks_[id];
    if (t.paused == 0) {
      note("resume an unpaused task");
      return fail(ec_form, "not_paused");
    }
    if (!t.finished.empty()) note("resume a task that finished while paused");
    if (--t.paused == 0 && t.finished.empty() && !t.queued) join(id);
    return ok(ec_form);
  }
  std::string stop(int id, bool ec_form) {
    task& t = tasks_[id];
    if (!t.finished.empty()) {
      note("stop a finished task");
      return fail(ec_form, t.finished);
    }
    if (t.paused > 0) note("stop a paused task");
    if (t.queued) note("stop a task waiting for admission");
    finish(id, "task_stopped", "task_stopped");
    return ok(ec_form);
  }
  void arm(int id, action a, std::uint8_t target) {
    tasks_[id].armed = a;
    tasks_[id].target = target;
  }

  // Shares weigh units (the README, "Shares, fairness by time"): each turn earns a task its shares,
  // each unit costs 100, so at 100 a turn is one unit (Twisted) and at 250 two or three.
  std::string set_shares(int id, unsigned shares) {
    task& t = tasks_[id];
    if (!t.finished.empty()) {
      note("set_shares on a finished task does nothing");
      return "ok";
    }
    note(shares == 100 ? "set_shares to the default" : "set_shares to other than the default");
    t.shares = shares;
    return "ok";
  }
  unsigned shares(int id) const { return tasks_[id].shares; }

  // ---- waits ----
  // Returns the wait's index, or -1 at the wait cap.
  int when_done(int id, bool from_coiterate = false) {
    if (waits_.size() >= max_waits && !from_coiterate) return -1;   // coiterate: one per task
    wait w;
    w.task = static_cast<std::size_t>(id);
    w.from_coiterate = from_coiterate;
    w.with_value = tasks_[id].returns != result_kind::none;
    if (!tasks_[id].finished.empty()) {
      note("when_done on a finished task");
      resolve(w, tasks_[id].result);
    }
    waits_.push_back(w);
    return static_cast<int>(waits_.size()) - 1;
  }
  // type: 0 terminal, 1 partial, 2 total.
  void cancel(int index, int type) {
    wait& w = waits_[index];
    if (w.resolved) {   // already completed (maybe not yet delivered): too late
      note("cancel a completed wait");
      return;
    }
    if (w.from_coiterate) {
      note(type != 2 ? "cancel coiterate: the task stops" : "cancel coiterate: total is ignored");
      if (type != 2) finish(static_cast<int>(w.task), "task_stopped", "task_stopped");
      return;
    }
    note("cancel a pending wait");
    resolve(w, "aborted");
  }

  // ---- ticks ----
  // One tick whose termination predicate says true after `budget` units. Returns false
  // when nothing ran (not running or nothing runnable).
  bool tick(int budget) {
    if (!runnable()) return false;
    int units = 0;
    // Weighted turns while some unfinished task has other than the default shares
    // (decided when the tick starts); else one unit per turn.
    bool weighted = false;
    for (const task& t : tasks_) weighted = weighted || (t.finished.empty() && t.shares != 100);
    if (mutations_.shares_ignored) weighted = false;
    while (!list_.empty()) {
      int id;
      bool continuing = false;
      if (weighted && held_ >= 0) {   // a turn the last tick cut short goes on first
        id = held_;
        held_ = -1;
        continuing = true;
        note("a turn cut short goes on first");
      } else {
        if (cursor_ >= list_.size()) cursor_ = 0;   // the round passed the end: a new round
        id = list_[cursor_++];
      }
      if (weighted && !continuing) {
        task& t = tasks_[id];
        t.credit += t.shares;
        if (t.credit < 100) {
          note("a turn with too little credit runs no unit");
          continue;
        }
        if (t.credit >= 200) note("a turn of several units");
      }
      run_unit(id);
      if (weighted) {
        task& t = tasks_[id];
        t.credit -= 100;
        if (t.finished.empty() && t.credit >= 100 && on_list(id)) held_ = id;
      }
      if (++units >= budget) {
        note("tick ended by the predicate");
        break;
      }
    }
    if (list_.empty()) note("tick ended with nothing runnable");
    return true;
  }

  // A pool of two runs its members' ticks interleaved, in an order of its choosing: the
  // harness replays each unit coop ran. It may run only while the task is runnable (the
  // cooperator running, the task admitted, unpaused, unfinished); then it runs as in a
  // tick. Returns false when it may not.
  bool follow_unit(int id) {
    if (id < 0 || id >= static_cast<int>(tasks_.size()) || !running() || !on_list(id)) return false;
    note("a unit in an order coop chose (a pool of two)");
    run_unit(id);
    return true;
  }

  // ---- observation ----
  const std::vector<task>& tasks() const { return tasks_; }
  const std::vector<wait>& waits() const { return waits_; }
  std::vector<std::string>& log() { return log_; }
  long units_run() const { return units_run_; }
  // Counts a case the harness reached outside the model's own operations.
  void note_external(const std::string& what) { note(what); }
  // How often each interesting case came up (the test asserts each does).
  const std::map<std::string, long>& coverage() const { return coverage_; }

private:
  static std::string ok(bool ec_form) { return ec_form ? "ec:ok" : "ok"; }
  static std::string fail(bool ec_form, const std::string& condition) {
    return (ec_form ? "ec:" : "throw:") + condition;
  }

  void note(const std::string& what) { ++coverage_[what]; }

  bool on_list(int id) const {
    for (int x : list_)
      if (x == id) return true;
    return false;
  }
  void join(int id) {
    if (cursor_ > 0) note("join mid-round (runs before the round restarts)");
    tasks_[id].credit = 0;   // time away from the run order earns nothing
    if (mutations_.resume_at_front) {
      list_.insert(list_.begin(), id);
      ++cursor_;
      return;
    }
    list_.push_back(id);
  }
  void remove(int id) {
    if (held_ == id) held_ = -1;
    for (std::size_t j = 0; j < list_.size(); ++j) {
      if (list_[j] != id) continue;
      list_.erase(list_.begin() + static_cast<std::ptrdiff_t>(j));
      if (j < cursor_) note("leave before the cursor");
      if (j < cursor_ && !mutations_.skip_after_removal) --cursor_;   // nobody loses a turn
      return;
    }
  }
  void resolve(wait& w, const std::string& result) {
    w.resolved = true;
    w.result = result;
    w.resolved_at = units_run_;
    if (!w.with_value) return;
    const task& t = tasks_[w.task];
    if (t.returns == result_kind::steps) {
      note(std::string("a steps_of wait: ") + result.substr(0, result.find('(')));
      w.result += "/v" + std::to_string(result == "null" ? t.units : 0);
    } else if (result == "aborted") {
      note("a cancelled result wait gets a default-constructed work");
      w.result += "/v{}";
    } else {
      note(std::string("a result wait gets the work: ") + result.substr(0, result.find('(')));
      w.result += "/v" + std::to_string(t.units);
    }
  }
  // Twisted's _completeWith: record, leave the cooperator, then complete every wait.
  void finish(int id, const std::string& condition, const std::string& result) {
    task& t = tasks_[id];
    if (!t.finished.empty()) {
      note("a second way of finishing is ignored");
      return;   // the first way of finishing wins
    }
    t.finished = condition;
    t.result = result;
    remove(id);
    if (t.queued) {   // never admitted: it frees no place
      t.queued = false;
      for (std::size_t j = 0; j < queue_.size(); ++j)
        if (queue_[j] == id) queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(j));
    } else if (max_active_) {
      --admitted_;
      // The oldest queued task takes the place (before any wait completes), paused if
      // it was paused while queued, else at the end of the run order.
      while (!stopped_ && admitted_ < max_active_ && !queue_.empty()) {
        const int next = mutations_.admit_newest ? queue_.back() : queue_.front();
        queue_.erase(mutations_.admit_newest ? queue_.end() - 1 : queue_.begin());
        tasks_[next].queued = false;
        ++admitted_;
        note(tasks_[next].paused > 0 ? "a queued task is admitted paused" : "a queued task is admitted");
        if (tasks_[next].paused == 0) join(next);
      }
    }
    for (wait& w : waits_)
      if (w.task == static_cast<std::size_t>(id) && !w.resolved) resolve(w, result);
  }

  static std::string name(int id) { return "t" + std::to_string(id); }

  std::string call(const char* what, int target, std::string result) {
    log_.push_back("  " + name(target) + "." + what + "()=" + result);
    return result;
  }

  // A unit from inside: the same calls the harness's work makes, logged the same way.
  void run_unit(int id) {
    task& t = tasks_[id];
    int unit = ++t.units;
    ++units_run_;
    log_.push_back("unit " + name(id) + "#" + std::to_string(unit));
    action a = t.armed;
    int target = t.target;
    t.armed = action::more;
    note(std::string("unit: ") + action_name(a));
    bool target_ok = target < static_cast<int>(tasks_.size()) && tasks_[target].has_handle;
    bool self_ok = t.has_handle;
    std::string outcome = "more";
    switch (a) {
      case action::more: break;
      case action::done: outcome = "done"; break;
      case action::fail: outcome = "fail"; break;
      case action::stop_self_done:
        if (self_ok) call("stop", id, stop(id, false));
        outcome = "done";
        break;
      case action::stop_self_fail:
        if (self_ok) call("stop", id, stop(id, false));
        outcome = "fail";
        break;
      case action::pause_self_done:
        if (self_ok) call("pause", id, pause(id, false));
        outcome = "done";
        break;
      case action::pause_other:
        if (target_ok) call("pause", target, pause(target, false));
        break;
      case action::resume_other:
        if (target_ok) call("resume", target, resume(target, false));
        break;
      case action::stop_other:
        if (target_ok) call("stop", target, stop(target, false));
        break;
      case action::cooperate_new: {
        int n = cooperate();
        log_.push_back("  cooperate()=" + (n < 0 ? std::string("skip") : name(n)));
        break;
      }
      case action::when_done_other:
        if (target_ok) {
          int w = when_done(target);
          log_.push_back("  " + name(target) + ".when_done()=" +
                         (w < 0 ? std::string("skip") : "w" + std::to_string(w)));
        }
        break;
      case action::coop_stop:
        stop();
        log_.push_back("  cooperator.stop()");
        break;
      case action::coop_start:
        start();
        log_.push_back("  cooperator.start()");
        break;
      case action::count_: break;
    }
    // The unit's return (or throw) counts only if nothing finished the task meanwhile.
    if (outcome == "done")
      finish(id, "task_done", "null");
    else if (outcome == "fail")
      finish(id, "task_failed", "unit_error(" + name(id) + "#" + std::to_string(unit) + ")");
  }

  bool started_;
  bool stopped_ = false;
  mutations mutations_;
  std::vector<task> tasks_;
  std::vector<int> list_;      // runnable tasks in join order
  std::size_t cursor_ = 0;     // index of the next task of the current round
  int held_ = -1;              // a task whose weighted turn has units left
  std::size_t max_active_;     // 0: no limit
  std::size_t admitted_ = 0;   // unfinished tasks not queued
  std::vector<int> queue_;     // waiting for admission, oldest first
  std::vector<wait> waits_;
  std::vector<std::string> log_;
  long units_run_ = 0;
  std::map<std::string, long> coverage_;
};

}  // namespace coop_model
