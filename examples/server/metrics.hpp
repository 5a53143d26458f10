// SPDX-License-Identifier: BSL-1.0
// GET /metrics: the server's own request counts and latency, the cooperators' stats, each
// job's task stats and its stalls, in Prometheus' text exposition format (version 0.0.4).
#pragma once

#include "jobs.hpp"

#include <coop/coop.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace coop_demo {

/// Requests answered, by route and status code, and a latency histogram (from the
/// request read to its response handed to the socket). Any thread.
class http_metrics {
public:
  /// `route`: one of routes().
  void observe(std::string_view route, unsigned status, std::chrono::nanoseconds latency);
  static constexpr std::array<std::string_view, 7> routes{"ping", "info", "metrics", "jobs", "job", "stream", "other"};
  /// Histogram bounds, seconds.
  static constexpr std::array<double, 10> bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5};
  void render(std::string& out) const;

private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, unsigned>, std::uint64_t> counts_;
  std::array<std::uint64_t, bounds.size() + 1> buckets_{};  // the last one: +Inf
  double sum_seconds_ = 0;
  std::uint64_t observed_ = 0;
};

/// Stall reports, by task name (a job's name), kept for /metrics and logged to stderr.
class stall_log {
public:
  void record(const coop::stall_report& report);
  std::uint64_t stalls_of(const std::string& task) const;

private:
  mutable std::mutex mutex_;
  std::map<std::string, std::uint64_t> by_task_;
};

/// The whole exposition.
std::string render_metrics(const coop::cooperator_pool& pool, const std::vector<std::shared_ptr<job>>& jobs,
                           const http_metrics& http, const stall_log& stalls);

}  // namespace coop_demo
