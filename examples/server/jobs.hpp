// SPDX-License-Identifier: BSL-1.0
// The demo's jobs: SHA-2 style digests of generated data, one 64 KiB chunk per unit of
// cooperative work, and the registry that the HTTP routes read and control.
#pragma once

#include <coop/coop.hpp>

#include <boost/json/object.hpp>
#include <boost/system/error_code.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace coop_demo {

/// One unit of work hashes (or streams) one chunk of this many bytes.
inline constexpr std::size_t chunk_size = 64 * 1024;
inline constexpr std::uint64_t mebibyte = 1024 * 1024;
inline constexpr std::uint64_t max_job_mib = 1024 * 1024;  // 1 TiB

/// The generated data: chunk `index` is a fixed 64 KiB pseudo-random block whose first
/// eight bytes are replaced by `index` (little endian), so consecutive chunks differ and any
/// size costs no memory. Writes the first `out.size()` (<= chunk_size) bytes of the chunk.
void fill_chunk(std::uint64_t index, std::span<unsigned char> out);

/// Streaming digest over OpenSSL's EVP interface (libcrypto), e.g. "sha256".
class digest {
public:
  explicit digest(std::string_view algorithm);  // throws std::invalid_argument if unknown
  digest(const digest&) = delete;
  digest& operator=(const digest&) = delete;
  ~digest();
  void update(std::span<const unsigned char> data);
  /// Lowercase hex of the final digest; the object cannot be updated afterwards.
  std::string finish_hex();

  /// The kinds of job the server accepts (OpenSSL names).
  static bool supported(std::string_view algorithm);

private:
  void* context_;  // EVP_MD_CTX*
};

/// How the digest of generated data is computed, unit by unit. Shared by the cooperative
/// work and the naive (blocking) loop so both produce the same digest.
class hash_progress {
public:
  hash_progress(std::string_view algorithm, std::uint64_t mib);
  /// Hashes the next chunk; returns true when the last chunk has been hashed (the digest is
  /// then available).
  bool hash_next_chunk();
  std::uint64_t total_units() const noexcept { return total_units_; }
  std::uint64_t units_done() const noexcept { return units_done_.load(std::memory_order_relaxed); }
  /// CPU time of a naive job's loop (a cooperative job's is its task's busy time).
  std::uint64_t cpu_ns() const noexcept { return cpu_ns_.load(std::memory_order_relaxed); }
  void add_cpu_ns(std::uint64_t ns) noexcept { cpu_ns_.fetch_add(ns, std::memory_order_relaxed); }
  /// Valid once hash_next_chunk() returned true (and that is visible to the caller).
  const std::string& digest_hex() const noexcept { return digest_hex_; }

private:
  digest digest_;
  std::uint64_t total_units_;
  std::atomic<std::uint64_t> units_done_{0};
  std::atomic<std::uint64_t> cpu_ns_{0};
  std::string digest_hex_;
};

enum class job_state { running, paused, done, failed, stopped };
std::string_view to_string(job_state);

/// A job as the HTTP routes see it.
class job {
public:
  /// `name` empty: "job-<id>".
  job(std::uint64_t id, std::string kind, std::uint64_t mib, bool naive, std::string name = {}, bool offloaded = false);

  const std::uint64_t id;
  const std::string name;  // also the task's name (stats, stall reports)
  const std::string kind;
  const std::uint64_t mib;
  const bool naive;      // runs as one blocking loop, not as a cooperative task
  const bool offloaded;  // naive, on the server's thread pool (else inside its request's handler)
  const std::shared_ptr<hash_progress> progress;

  /// Records how the job finished; the first call wins.
  void finish(job_state state, std::string error = {});
  /// From a cooperative task's completion.
  void finish_from(std::exception_ptr);
  bool finished() const;
  /// Ready once finish() has recorded the final state (what GET /jobs/{id} then reports).
  std::shared_future<void> when_recorded() const { return recorded_; }
  job_state state() const;
  boost::json::object to_json() const;

  /// Cooperative jobs: the task handle, set once right after cooperate().
  void set_task(coop::cooperative_task task);
  /// The task handle (empty for naive jobs and before set_task()).
  std::optional<coop::cooperative_task> task() const { return task_locked(); }
  /// pause/resume/stop through the task API (non-throwing forms). Returns the task's
  /// error code; coop::error values for finished tasks and not_paused, and
  /// `errc::operation_not_supported` for naive jobs (which cannot pause).
  boost::system::error_code pause();
  boost::system::error_code resume();
  boost::system::error_code stop();
  /// Changes the task's shares (1..10000, checked by the caller); `errc::operation_not_supported`
  /// for naive jobs, coop::error values for finished ones.
  boost::system::error_code set_shares(unsigned shares);

  /// Naive jobs poll this between chunks.
  bool stop_requested() const noexcept { return stop_requested_.load(std::memory_order_relaxed); }
  void request_stop() noexcept { stop_requested_.store(true, std::memory_order_relaxed); }

private:
  std::optional<coop::cooperative_task> task_locked() const;

  mutable std::mutex mutex_;
  std::optional<coop::cooperative_task> task_;
  int pauses_ = 0;
  std::optional<job_state> final_state_;
  std::string error_;
  std::atomic<bool> stop_requested_{false};
  std::promise<void> recorded_promise_;
  std::shared_future<void> recorded_ = recorded_promise_.get_future().share();
};

/// Called before every unit of every job with the job's id and the unit's index (tests use
/// it to observe progress or inject a failure: an exception thrown here fails the job).
using unit_hook = std::function<void(std::uint64_t job_id, std::uint64_t unit)>;

/// The work a cooperative job hands to the cooperator: one chunk per call. It holds the
/// progress, not the job, so the job (which holds the task) and the work form no cycle.
class hash_work {
public:
  hash_work(std::shared_ptr<hash_progress> progress, std::uint64_t job_id, unit_hook hook)
      : progress_(std::move(progress)), job_id_(job_id), hook_(std::move(hook)) {}
  coop::step operator()();

private:
  std::shared_ptr<hash_progress> progress_;
  std::uint64_t job_id_;
  unit_hook hook_;
};

/// A stall job's work: one unit that spins for `length` (the stall detector's demo).
struct stall_work {
  std::chrono::milliseconds length;
  coop::step operator()() const;
};

/// Runs a whole job in the calling thread (the naive mode): returns when it is done or
/// stop was requested. Exceptions from a chunk mark the job failed.
void run_blocking(job& j, const unit_hook& hook);

/// The server's jobs: every running or paused one, and the `finished_kept` most recent
/// finished ones (a server that runs for months must not grow with every job it ran).
class job_registry {
public:
  explicit job_registry(std::size_t finished_kept = 1000) : finished_kept_(finished_kept) {}
  std::shared_ptr<job> create(std::string kind, std::uint64_t mib, bool naive, std::string name = {},
                              bool offloaded = false);
  std::shared_ptr<job> find(std::uint64_t id) const;
  std::vector<std::shared_ptr<job>> all() const;

private:
  void forget_old_finished_locked();

  const std::size_t finished_kept_;
  mutable std::mutex mutex_;
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, std::shared_ptr<job>> jobs_;
};

}  // namespace coop_demo
