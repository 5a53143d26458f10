// SPDX-License-Identifier: BSL-1.0
#include "process_locks.hpp"

#include <pthread.h>

namespace coop::detail {
namespace {

// Never destroyed: cooperators may be made and destroyed until the process exits.
struct process_locks {
  std::mutex registries;
  std::mutex default_cooperators;
};

process_locks& locks() noexcept;

void prepare_fork() noexcept {
  locks().default_cooperators.lock();
  locks().registries.lock();
}
// The thread that forked holds both, in the parent and in the child alike.
void after_fork() noexcept {
  locks().registries.unlock();
  locks().default_cooperators.unlock();
}

process_locks& locks() noexcept {
  static process_locks* l = [] {
    auto* made = new process_locks;
    ::pthread_atfork(&prepare_fork, &after_fork, &after_fork);
    return made;
  }();
  return *l;
}

// Registered at load time, before any thread of the user's can fork.
[[maybe_unused]] const bool registered = (locks(), true);

}  // namespace

std::mutex& registries_mutex() noexcept { return locks().registries; }
std::mutex& default_cooperators_mutex() noexcept { return locks().default_cooperators; }

}  // namespace coop::detail
