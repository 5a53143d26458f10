// SPDX-License-Identifier: BSL-1.0
// fork() while other threads make, destroy and run cooperators: the child must not
// inherit a library lock held by a thread it does not have. Each child makes an
// io_context, a cooperator and a default cooperator, runs a task on each and exits; the
// parent fails the case for a child that crashes or is still running after a deadline
// (then it kills it: a child hung on a lock never ends by itself). Not built with
// AddressSanitizer: GCC 12's ASan allocator is not fork-safe, and a child could hang on
// ASan's own lock (seen with gdb: SizeClassAllocator64::GetFromAllocator).
#define BOOST_TEST_MODULE fork
#include <boost/test/unit_test.hpp>

#include <coop/coop.hpp>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace asio = boost::asio;

namespace {

// In the child: a little of everything that takes the library's process-wide locks.
int child_main() {
  asio::io_context io;
  coop::cooperator coop(io);
  int units = 0;
  coop.cooperate([&] { return ++units < 10 ? coop::step::more : coop::step::done; });
  int default_units = 0;
  coop::cooperate(io.get_executor(), [&] { return ++default_units < 10 ? coop::step::more : coop::step::done; });
  io.run();
  return units == 10 && default_units == 10 ? 0 : 1;
}

// "exited 0", or how the child ended; "hung" after the deadline (the child is killed).
std::string wait_for_child(pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
      return "signal " + std::to_string(WTERMSIG(status));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return "hung";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(fork_while_other_threads_make_destroy_and_run_cooperators) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> churn;
  for (int i = 0; i < 2; ++i)
    churn.emplace_back([&] {
      while (!stop) {
        asio::io_context io;
        coop::cooperator coop(io);
        int units = 0;
        coop.cooperate([&] { return ++units < 3 ? coop::step::more : coop::step::done; });
        coop::cooperate(io.get_executor(), [] { return coop::step::done; });
        io.run();
      }
    });
  int forks = 0;
  std::vector<std::string> failures;
  for (; forks < 200; ++forks) {
    const pid_t pid = ::fork();
    BOOST_REQUIRE(pid >= 0);
    if (pid == 0) ::_exit(child_main());
    const std::string how = wait_for_child(pid);
    if (how != "exited 0") failures.push_back(how);
    if (failures.size() >= 3) break;  // shown: no need to wait for more hung children
  }
  stop = true;
  for (auto& t : churn) t.join();
  BOOST_TEST_MESSAGE(forks << " forks");
  BOOST_TEST(failures.empty(), "children that did not exit 0: " << failures.size() << " (first: "
                                   << (failures.empty() ? "" : failures.front()) << ")");
}
