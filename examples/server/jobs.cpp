// SPDX-License-Identifier: BSL-1.0
#include "jobs.hpp"

#include <boost/json/array.hpp>
#include <boost/json/string.hpp>

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace coop_demo {

namespace {

const std::array<unsigned char, chunk_size>& pattern() {
  static const auto block = [] {
    std::array<unsigned char, chunk_size> b{};
    std::uint64_t x = 0x9e3779b97f4a7c15ULL;  // xorshift64*: cheap, fixed, not compressible
    for (std::size_t i = 0; i < b.size(); i += 8) {
      x ^= x >> 12;
      x ^= x << 25;
      x ^= x >> 27;
      const std::uint64_t v = x * 0x2545f4914f6cdd1dULL;
      std::memcpy(b.data() + i, &v, 8);
    }
    return b;
  }();
  return block;
}

std::array<unsigned char, 8> little_endian(std::uint64_t v) {
  std::array<unsigned char, 8> out{};
  for (auto& byte : out) {
    byte = static_cast<unsigned char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

std::uint64_t thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

EVP_MD_CTX* ctx(void* p) { return static_cast<EVP_MD_CTX*>(p); }

}  // namespace

void fill_chunk(std::uint64_t index, std::span<unsigned char> out) {
  const auto& block = pattern();
  const auto n = std::min(out.size(), block.size());
  std::memcpy(out.data(), block.data(), n);
  const auto stamp = little_endian(index);
  std::memcpy(out.data(), stamp.data(), std::min<std::size_t>(n, stamp.size()));
}

bool digest::supported(std::string_view algorithm) {
  // A short allow-list: names OpenSSL knows and that make sense as a CPU-bound job.
  return algorithm == "sha256" || algorithm == "sha512" || algorithm == "sha3-256" ||
         algorithm == "blake2b512";
}

digest::digest(std::string_view algorithm) : context_(nullptr) {
  if (!supported(algorithm)) throw std::invalid_argument("unsupported digest");
  const EVP_MD* md = EVP_get_digestbyname(std::string(algorithm).c_str());
  if (md == nullptr) throw std::invalid_argument("digest not available in this OpenSSL");
  context_ = EVP_MD_CTX_new();
  if (context_ == nullptr) throw std::bad_alloc();
  if (EVP_DigestInit_ex(ctx(context_), md, nullptr) != 1) {
    EVP_MD_CTX_free(ctx(context_));
    throw std::runtime_error("EVP_DigestInit_ex failed");
  }
}

digest::~digest() { EVP_MD_CTX_free(ctx(context_)); }

void digest::update(std::span<const unsigned char> data) {
  if (EVP_DigestUpdate(ctx(context_), data.data(), data.size()) != 1)
    throw std::runtime_error("EVP_DigestUpdate failed");
}

std::string digest::finish_hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx(context_), md, &length) != 1)
    throw std::runtime_error("EVP_DigestFinal_ex failed");
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 0xf]);
  }
  return out;
}

hash_progress::hash_progress(std::string_view algorithm, std::uint64_t mib)
    : digest_(algorithm), total_units_(mib * (mebibyte / chunk_size)) {}

bool hash_progress::hash_next_chunk() {
  const auto index = units_done_.load(std::memory_order_relaxed);
  // The chunk is the stamp followed by the rest of the fixed block: same bytes as
  // fill_chunk() produces, without copying 64 KiB per unit.
  const auto stamp = little_endian(index);
  digest_.update(stamp);
  digest_.update(std::span(pattern()).subspan(stamp.size()));
  const bool last = index + 1 == total_units_;
  if (last) digest_hex_ = digest_.finish_hex();
  units_done_.store(index + 1, std::memory_order_relaxed);
  return last;
}

std::string_view to_string(job_state s) {
  switch (s) {
    case job_state::running: return "running";
    case job_state::paused: return "paused";
    case job_state::done: return "done";
    case job_state::failed: return "failed";
    case job_state::stopped: return "stopped";
  }
  return "unknown";
}

job::job(std::uint64_t id_, std::string kind_, std::uint64_t mib_, bool naive_, std::string name_, bool offloaded_)
    : id(id_), name(name_.empty() ? "job-" + std::to_string(id_) : std::move(name_)), kind(std::move(kind_)),
      mib(mib_), naive(naive_), offloaded(offloaded_),
      // A stall job hashes nothing: an empty progress stands in.
      progress(std::make_shared<hash_progress>(kind == "stall" ? "sha256" : kind, mib_)) {}

void job::finish(job_state state, std::string error) {
  std::lock_guard lock(mutex_);
  if (final_state_) return;
  final_state_ = state;
  error_ = std::move(error);
  recorded_promise_.set_value();
}

void job::finish_from(std::exception_ptr ep) {
  if (!ep) return finish(job_state::done);
  try {
    std::rethrow_exception(ep);
  } catch (const coop::task_stopped&) {
    finish(job_state::stopped);
  } catch (const coop::scheduler_stopped&) {
    finish(job_state::stopped, "the server is shutting down");
  } catch (const std::exception& e) {
    finish(job_state::failed, e.what());
  } catch (...) {
    finish(job_state::failed, "unknown exception");
  }
}

bool job::finished() const {
  std::lock_guard lock(mutex_);
  return final_state_.has_value();
}

job_state job::state() const {
  std::lock_guard lock(mutex_);
  if (final_state_) return *final_state_;
  return pauses_ > 0 ? job_state::paused : job_state::running;
}

boost::json::object job::to_json() const {
  job_state s;
  std::string error;
  {
    std::lock_guard lock(mutex_);
    s = final_state_ ? *final_state_ : pauses_ > 0 ? job_state::paused : job_state::running;
    error = error_;
  }
  // The digest is read only in state done, which is recorded after the last unit (by the
  // task's completion or, for naive jobs, by the same thread under mutex_).
  const auto units = progress->units_done();
  boost::json::object o;
  o["id"] = id;
  o["kind"] = kind;
  o["mode"] = !naive ? "coop" : offloaded ? "offload" : "naive";
  o["state"] = std::string(to_string(s));
  o["progress"] = progress->total_units() == 0
                      ? 1.0
                      : static_cast<double>(units) / static_cast<double>(progress->total_units());
  o["units"] = units;
  o["total_units"] = progress->total_units();
  o["bytes"] = units * chunk_size;
  o["cpu_ms"] = 0.0;  // set below, from the task's stats or the naive loop's clock
  o["name"] = name;
  // The cooperative task's own view: its shares, and its state (queued while the
  // cooperator's max_active admits others first, waiting, ...). Null for naive jobs.
  if (auto task = task_locked()) {
    o["shares"] = task->shares();
    o["task_state"] = coop::to_string(task->state());
    // What coop measured: units run, time in them, time runnable while others ran. The
    // time in its units is the job's CPU time: coop attributes it from the clock reads
    // its ticks make anyway, where a clock read of our own per chunk (a system call for
    // a thread's CPU time) cost the server ~4% of its CPU.
    const coop::task_stats st = task->stats();
    o["cpu_ms"] = static_cast<double>(st.busy.count()) / 1e6;
    o["stats"] = {{"units", st.units},
                  {"busy_ms", static_cast<double>(st.busy.count()) / 1e6},
                  {"waited_ms", static_cast<double>(st.waited.count()) / 1e6}};
  } else {
    o["cpu_ms"] = static_cast<double>(progress->cpu_ns()) / 1e6;
    o["shares"] = nullptr;
    o["task_state"] = nullptr;
    o["stats"] = nullptr;
  }
  if (s == job_state::done) o["digest"] = progress->digest_hex();
  if (!error.empty()) o["error"] = error;
  return o;
}

void job::set_task(coop::cooperative_task task) {
  std::lock_guard lock(mutex_);
  task_ = std::move(task);
}

std::optional<coop::cooperative_task> job::task_locked() const {
  std::lock_guard lock(mutex_);
  return task_;
}

// The coop calls are made without holding mutex_: the counter follows what the task
// accepted, so a racing pause/resume pair ends consistent with the task's own count.
boost::system::error_code job::pause() {
  auto task = task_locked();
  if (!task) return make_error_code(boost::system::errc::operation_not_supported);
  boost::system::error_code ec;
  task->pause(ec);
  if (!ec) {
    std::lock_guard lock(mutex_);
    ++pauses_;
  }
  return ec;
}

boost::system::error_code job::resume() {
  auto task = task_locked();
  if (!task) return make_error_code(boost::system::errc::operation_not_supported);
  boost::system::error_code ec;
  task->resume(ec);
  if (!ec) {
    std::lock_guard lock(mutex_);
    --pauses_;
  }
  return ec;
}

boost::system::error_code job::stop() {
  boost::system::error_code ec;
  if (auto task = task_locked()) {
    task->stop(ec);
    if (!ec) finish(job_state::stopped);  // the completion handler will agree, later
    return ec;
  }
  // Naive job: it can only be asked to stop between chunks.
  if (finished()) return coop::error::task_done;
  request_stop();
  return ec;
}

boost::system::error_code job::set_shares(unsigned shares) {
  auto task = task_locked();
  if (!task) return make_error_code(boost::system::errc::operation_not_supported);
  // On a finished task set_shares() does nothing; the route says it has finished.
  switch (task->state()) {
    case coop::task_state::done: return coop::error::task_done;
    case coop::task_state::stopped: return coop::error::task_stopped;
    case coop::task_state::failed: return coop::error::task_failed;
    case coop::task_state::scheduler_stopped: return coop::error::scheduler_stopped;
    default: break;
  }
  task->set_shares(shares);
  return {};
}

coop::step hash_work::operator()() {
  if (hook_) hook_(job_id_, progress_->units_done());
  return progress_->hash_next_chunk() ? coop::step::done : coop::step::more;
}

coop::step stall_work::operator()() const {
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < length) {
  }
  return coop::step::done;
}

void run_blocking(job& j, const unit_hook& hook) {
  // The thread's CPU time, read every 16 chunks (~1 ms) rather than per chunk.
  std::uint64_t counted_from = thread_cpu_ns();
  const auto count_cpu = [&] {
    const std::uint64_t now = thread_cpu_ns();
    j.progress->add_cpu_ns(now - counted_from);
    counted_from = now;
  };
  try {
    for (std::uint64_t n = 1;; ++n) {
      if (j.stop_requested()) {
        count_cpu();
        return j.finish(job_state::stopped);
      }
      if (hook) hook(j.id, j.progress->units_done());
      if (j.progress->hash_next_chunk()) {
        count_cpu();
        return j.finish(job_state::done);
      }
      if (n % 16 == 0) count_cpu();
    }
  } catch (const std::exception& e) {
    count_cpu();
    j.finish(job_state::failed, e.what());
  }
}

std::shared_ptr<job> job_registry::create(std::string kind, std::uint64_t mib, bool naive, std::string name,
                                          bool offloaded) {
  std::lock_guard lock(mutex_);
  auto j = std::make_shared<job>(next_id_++, std::move(kind), mib, naive, std::move(name), offloaded);
  jobs_.emplace(j->id, j);
  forget_old_finished_locked();
  return j;
}

void job_registry::forget_old_finished_locked() {
  // Ids grow, so the map's order is age: the oldest finished jobs go first.
  std::size_t finished = 0;
  for (const auto& [id, j] : jobs_) finished += j->finished() ? 1 : 0;
  for (auto it = jobs_.begin(); finished > finished_kept_ && it != jobs_.end();) {
    if (it->second->finished()) {
      it = jobs_.erase(it);
      --finished;
    } else {
      ++it;
    }
  }
}

std::shared_ptr<job> job_registry::find(std::uint64_t id) const {
  std::lock_guard lock(mutex_);
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<job>> job_registry::all() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<job>> out;
  out.reserve(jobs_.size());
  for (const auto& [id, j] : jobs_) out.push_back(j);
  return out;
}

}  // namespace coop_demo
