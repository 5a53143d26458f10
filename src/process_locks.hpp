// SPDX-License-Identifier: BSL-1.0
// The library's process-wide mutexes (not the watchdog's, which has its own fork
// handlers). fork() copies a mutex as it is: one held by another thread at that moment
// stays held in the child, whose first cooperator would wait on it for good. These are
// taken around fork() (pthread_atfork) and released on both sides, so the child gets
// them free. Not an installed header.
#pragma once

#include <mutex>

namespace coop::detail {

/// Guards the per-execution-context lists of cores (context_service).
std::mutex& registries_mutex() noexcept;
/// Guards the creation of each context's default cooperator. Never held while taking
/// registries_mutex(), nor the other way round.
std::mutex& default_cooperators_mutex() noexcept;

}  // namespace coop::detail
