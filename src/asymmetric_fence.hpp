// SPDX-License-Identifier: BSL-1.0
// Store-load ordering between the tick, which publishes the task it is about to run and
// then reads that task's control word before every unit, and a pause()/stop() from another
// thread, which changes the control word and then reads what the tick runs (Dekker). A
// full barrier per unit would cost as much as a trivial unit; so where the kernel can
// force a barrier on every running thread of the process (Linux membarrier, "private
// expedited"), the tick needs only a compiler barrier and the rare foreign pause()/stop()
// during a tick pays the system call. Otherwise both sides use sequentially consistent
// operations.
#pragma once

namespace coop::detail {

/// True when heavy_fence() is the kernel's process-wide barrier, so the tick may order
/// its store and load with a compiler barrier. Decided once per process (the first call
/// registers with the kernel); always false under TSan, which cannot see that barrier.
bool asymmetric_fences_available() noexcept;

/// Every thread of the process that is running executes a full barrier before this
/// returns true. Only called when asymmetric_fences_available(); false when the kernel
/// refused after all (e.g. a seccomp filter installed since): the caller must not rely
/// on it then.
[[nodiscard]] bool heavy_fence() noexcept;

/// A full fence (out of line: TSan builds never call it and do not support fences).
void full_fence() noexcept;

}  // namespace coop::detail
