// SPDX-License-Identifier: BSL-1.0
#include "metrics.hpp"

#include <cstdio>
#include <iostream>

namespace coop_demo {

namespace {

double seconds(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e9; }

// A label value, escaped as the exposition format requires.
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\', out += c;
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, std::string_view name, const std::string& labels, double value) {
  out += name;
  if (!labels.empty()) out += '{' + labels + '}';
  out += ' ';
  out += number(value);
  out += '\n';
}

}  // namespace

void http_metrics::observe(std::string_view route, unsigned status, std::chrono::nanoseconds latency) {
  const double s = seconds(latency);
  std::lock_guard l(mutex_);
  ++counts_[{std::string(route), status}];
  std::size_t i = 0;
  while (i < bounds.size() && s > bounds[i]) ++i;
  ++buckets_[i];
  sum_seconds_ += s;
  ++observed_;
}

void http_metrics::render(std::string& out) const {
  std::lock_guard l(mutex_);
  header(out, "coop_demo_http_requests_total", "counter", "HTTP requests answered, by route and status code.");
  for (const auto& [key, n] : counts_)
    sample(out, "coop_demo_http_requests_total", "route=\"" + key.first + "\",code=\"" + std::to_string(key.second) + '"',
           static_cast<double>(n));
  header(out, "coop_demo_http_request_duration_seconds", "histogram",
         "Time from a request read to its response handed to the socket.");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    cumulative += buckets_[i];
    sample(out, "coop_demo_http_request_duration_seconds_bucket", "le=\"" + number(bounds[i]) + '"',
           static_cast<double>(cumulative));
  }
  cumulative += buckets_[bounds.size()];
  sample(out, "coop_demo_http_request_duration_seconds_bucket", "le=\"+Inf\"", static_cast<double>(cumulative));
  sample(out, "coop_demo_http_request_duration_seconds_sum", "", sum_seconds_);
  sample(out, "coop_demo_http_request_duration_seconds_count", "", static_cast<double>(observed_));
}

void stall_log::record(const coop::stall_report& report) {
  {
    std::lock_guard l(mutex_);
    ++by_task_[report.task];
  }
  // The server's log: one line, then the stalled thread's stack.
  std::cerr << "coop_demo_server: stall: a unit of " << (report.task.empty() ? "a job" : report.task) << " has run "
            << static_cast<double>(report.running.count()) / 1e6 << " ms\n"
            << report.backtrace << std::flush;
}

std::uint64_t stall_log::stalls_of(const std::string& task) const {
  std::lock_guard l(mutex_);
  auto it = by_task_.find(task);
  return it == by_task_.end() ? 0 : it->second;
}

std::string render_metrics(const coop::cooperator_pool& pool, const std::vector<std::shared_ptr<job>>& jobs,
                           const http_metrics& http, const stall_log& stalls) {
  std::string out;
  http.render(out);

  // Per member of the pool (label "cooperator": each member is a cooperator).
  std::vector<coop::cooperator_stats> cs;
  for (std::size_t i = 0; i < pool.size(); ++i) cs.push_back(pool.member_stats(i));
  const auto per_cooperator = [&](std::string_view name, std::string_view type, std::string_view help, auto value) {
    header(out, name, type, help);
    for (std::size_t i = 0; i < cs.size(); ++i)
      sample(out, name, "cooperator=\"" + std::to_string(i) + '"', static_cast<double>(value(cs[i])));
  };
  per_cooperator("coop_cooperator_ticks_total", "counter", "Ticks run.", [](const auto& s) { return s.ticks; });
  per_cooperator("coop_cooperator_units_total", "counter", "Units run, by all tasks.", [](const auto& s) { return s.units; });
  header(out, "coop_cooperator_busy_seconds_total", "counter", "Time in ticks running units.");
  for (std::size_t i = 0; i < cs.size(); ++i)
    sample(out, "coop_cooperator_busy_seconds_total", "cooperator=\"" + std::to_string(i) + '"', seconds(cs[i].busy));
  per_cooperator("coop_cooperator_finished_tasks_total", "counter", "Tasks finished.",
                 [](const auto& s) { return s.finished; });
  per_cooperator("coop_cooperator_stalls_total", "counter", "Units reported by the stall detector.",
                 [](const auto& s) { return s.stalls; });
  per_cooperator("coop_cooperator_moved_in_tasks_total", "counter",
                 "Runnable tasks taken from other members while this one had none (work stealing).",
                 [](const auto& s) { return s.moved_in; });
  per_cooperator("coop_cooperator_moved_out_tasks_total", "counter", "Tasks given to other members.",
                 [](const auto& s) { return s.moved_out; });
  header(out, "coop_cooperator_tasks", "gauge", "Unfinished tasks, by placement.");
  for (std::size_t i = 0; i < cs.size(); ++i) {
    const std::string c = "cooperator=\"" + std::to_string(i) + "\",state=";
    sample(out, "coop_cooperator_tasks", c + "\"queued\"", static_cast<double>(cs[i].queued));
    sample(out, "coop_cooperator_tasks", c + "\"runnable\"", static_cast<double>(cs[i].runnable));
    sample(out, "coop_cooperator_tasks", c + "\"paused\"", static_cast<double>(cs[i].paused));
    sample(out, "coop_cooperator_tasks", c + "\"waiting\"", static_cast<double>(cs[i].waiting));
  }

  // Per job: the cooperative ones (naive jobs have no task).
  struct row {
    std::string labels;
    coop::task_stats stats;
    coop::task_state state;
    std::uint64_t stalls;
  };
  std::vector<row> rows;
  for (const auto& j : jobs)
    if (auto task = j->task())
      rows.push_back({"job=\"" + std::to_string(j->id) + "\",name=\"" + label(j->name) + '"', task->stats(), task->state(),
                      stalls.stalls_of(j->name)});
  header(out, "coop_job_units_total", "counter", "Units a job's task has run.");
  for (const auto& r : rows) sample(out, "coop_job_units_total", r.labels, static_cast<double>(r.stats.units));
  header(out, "coop_job_busy_seconds_total", "counter", "Time in a job's units.");
  for (const auto& r : rows) sample(out, "coop_job_busy_seconds_total", r.labels, seconds(r.stats.busy));
  header(out, "coop_job_waited_seconds_total", "counter", "Time a job was runnable while others ran.");
  for (const auto& r : rows) sample(out, "coop_job_waited_seconds_total", r.labels, seconds(r.stats.waited));
  header(out, "coop_job_stalls_total", "counter", "A job's units reported by the stall detector.");
  for (const auto& r : rows) sample(out, "coop_job_stalls_total", r.labels, static_cast<double>(r.stalls));
  header(out, "coop_job_state", "gauge", "1 for the state a job's task is in.");
  for (const auto& r : rows)
    sample(out, "coop_job_state", r.labels + ",state=\"" + coop::to_string(r.state) + '"', 1);
  return out;
}

}  // namespace coop_demo
