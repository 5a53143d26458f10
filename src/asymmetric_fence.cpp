// SPDX-License-Identifier: BSL-1.0
#include "asymmetric_fence.hpp"

#include <atomic>

#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__SANITIZE_THREAD__)
#define COOP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define COOP_TSAN 1
#endif
#endif

namespace coop::detail {
namespace {

bool register_with_kernel() noexcept {
#if defined(__linux__) && defined(SYS_membarrier) && !defined(COOP_TSAN)
  // TSan cannot see the kernel's barrier: under it both sides use seq_cst operations.
  const long commands = ::syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (commands < 0 || !(commands & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) return false;
  return ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#else
  return false;
#endif
}

// Asked while the library loads, not at the first cooperator: a function-local static
// whose initialization is under way on one thread when another forks leaves the child
// waiting on the static's guard for good (seen in test_fork).
const bool available = register_with_kernel();

}  // namespace

bool asymmetric_fences_available() noexcept { return available; }

bool heavy_fence() noexcept {
#if defined(__linux__) && defined(SYS_membarrier) && !defined(COOP_TSAN)
  return ::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
#else
  return false;
#endif
}

void full_fence() noexcept {
#if !defined(COOP_TSAN)
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

}  // namespace coop::detail
