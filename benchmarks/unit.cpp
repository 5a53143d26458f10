// SPDX-License-Identifier: BSL-1.0
// The units of work, kept in their own translation unit so that no caller can inline them,
// and small process-level probes.
#include "bench.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>

namespace bench {

namespace {
constexpr std::uint64_t lcg_multiplier = 6364136223846793005ULL;
constexpr std::uint64_t lcg_increment = 1442695040888963407ULL;
}  // namespace

// Aligned to a cache line: where the linker happens to place it moved the 1-task figure by
// up to 25% (the call in a task's batch loop; measured with the library unchanged), a
// lottery every unrelated change to the binary would re-draw.
[[gnu::aligned(64)]] void lcg_step(std::uint64_t& state) noexcept { state = state * lcg_multiplier + lcg_increment; }

void busy_unit(std::uint64_t& state, std::uint32_t steps) noexcept {
  std::uint64_t s = state;
  for (std::uint32_t i = 0; i < steps; ++i) s = s * lcg_multiplier + lcg_increment;
  state = s;
}

std::uint32_t calibrate_busy_steps(std::chrono::nanoseconds target) {
  // The fastest of several runs: the machine is shared, preemption only ever adds time.
  constexpr std::uint32_t probe_steps = 200'000;
  std::uint64_t state = 1;
  double best_ns = 1e300;
  for (int i = 0; i < 20; ++i) {
    const auto start = clock::now();
    busy_unit(state, probe_steps);
    best_ns = std::min(best_ns, to_ns(clock::now() - start));
  }
  const double ns_per_step = best_ns / probe_steps;
  return std::max<std::uint32_t>(1, static_cast<std::uint32_t>(static_cast<double>(target.count()) / ns_per_step));
}

double busy_unit_us(std::uint32_t steps) {
  std::uint64_t state = 1;
  std::vector<double> runs;
  for (int i = 0; i < 201; ++i) {
    const auto start = clock::now();
    busy_unit(state, steps);
    runs.push_back(to_us(clock::now() - start));
  }
  std::sort(runs.begin(), runs.end());
  return runs[runs.size() / 2];
}

std::uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

clock::duration thread_cpu_time() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::duration_cast<clock::duration>(std::chrono::seconds(ts.tv_sec) +
                                                     std::chrono::nanoseconds(ts.tv_nsec));
}

clock::duration process_cpu_time() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return std::chrono::duration_cast<clock::duration>(std::chrono::seconds(ts.tv_sec) +
                                                     std::chrono::nanoseconds(ts.tv_nsec));
}

clock::duration thread_run_delay() noexcept {
  // Kept open: one pread per call. Fields: on-CPU ns, run delay ns, timeslices.
  thread_local const int fd = ::open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
  char buf[96];
  const ssize_t n = fd >= 0 ? ::pread(fd, buf, sizeof buf - 1, 0) : -1;
  if (n <= 0) return {};
  buf[n] = '\0';
  unsigned long long on_cpu = 0, delay = 0;
  if (std::sscanf(buf, "%llu %llu", &on_cpu, &delay) != 2) return {};
  return std::chrono::duration_cast<clock::duration>(std::chrono::nanoseconds(delay));
}

long thread_voluntary_switches() {
  rusage usage{};
  ::getrusage(RUSAGE_THREAD, &usage);
  return usage.ru_nvcsw;
}

long involuntary_switches() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return usage.ru_nivcsw;
}

}  // namespace bench
