// SPDX-License-Identifier: BSL-1.0
// The same job awaited four ways: a callback, asio::deferred, asio::use_future and
// asio::use_awaitable.
#include <coop/coop.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <cstdio>
#include <thread>

namespace asio = boost::asio;

// Counts to n, one number per unit.
struct count_to {
  int n;
  int i = 0;
  coop::step operator()() { return ++i == n ? coop::step::done : coop::step::more; }
};

int main() {
  asio::io_context io;
  coop::cooperator cooperator(io);
  int finished = 0;

  // 1. A callback: runs on the cooperator's strand (it has no executor of its own).
  cooperator.cooperate(count_to{1000}).when_done([&](std::exception_ptr e) {
    std::printf("callback: %s\n", e ? "failed" : "done");
    ++finished;
  });

  // 2. asio::deferred: nothing starts until the deferred operation is launched.
  auto later = cooperator.coiterate(count_to{1000}, asio::deferred);
  std::move(later)([&](std::exception_ptr e) {
    std::printf("deferred: %s\n", e ? "failed" : "done");
    ++finished;
  });

  // 3. asio::use_awaitable, from a coroutine on the same io_context.
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        // void(exception_ptr) through use_awaitable: a failure is thrown here.
        try {
          co_await cooperator.coiterate(count_to{1000}, asio::use_awaitable);
          std::puts("use_awaitable: done");
        } catch (const std::exception& e) {
          std::printf("use_awaitable: failed: %s\n", e.what());
        }
        ++finished;
      },
      asio::detached);

  // 4. asio::use_future: wait from another thread than the one running io.
  std::future<void> future = cooperator.cooperate(count_to{1000}).when_done(asio::use_future);
  std::thread runner([&] { io.run(); });
  future.get();  // rethrows the task's exception, if any
  std::puts("use_future: done");
  runner.join();
  return finished == 3 ? 0 : 1;
}
