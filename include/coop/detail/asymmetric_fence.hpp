// Store-load ordering between the tick, which publishes the task it is about to run and
// then reads that task's control word before every unit, and a pause()/stop() from another
// thread, which changes the control word and then reads what the tick runs (Dekker). A
// full fence per unit would cost as much as a trivial unit; so where the kernel can force
// a barrier on every running thread of the process (Linux membarrier, "private
// expedited"), the tick needs only a compiler barrier and the rare foreign pause()/stop()
// during a tick pays the system call.
#pragma once

#include <atomic>

namespace coop::detail {

/// True when heavy_fence() is the kernel's process-wide barrier, so light_fence() may be
/// a compiler barrier. Decided once per process (first call registers with the kernel).
bool asymmetric_fences_available() noexcept;

/// Pairs with a full fence or with heavy_fence() on the other side.
inline void light_fence(bool asymmetric) noexcept {
  if (asymmetric) std::atomic_signal_fence(std::memory_order_seq_cst);
  else std::atomic_thread_fence(std::memory_order_seq_cst);
}

/// Every thread of the process that is running executes a full barrier before this
/// returns (or, without kernel support, a full fence here).
void heavy_fence() noexcept;

}  // namespace coop::detail
