// SPDX-License-Identifier: BSL-1.0
// Three long jobs share one io_context with a periodic timer: the cooperator slices the
// jobs so the timer keeps firing on time. Shows when_done with a callback, use_future, a
// coroutine job paced by a timer, and results: the checksum comes back through when_done
// (returning(work) hands back the job object, a steps_of<T> coroutine its co_return).
#include <coop/coop.hpp>

#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>

namespace asio = boost::asio;
using namespace std::chrono_literals;

// One unit: fold 64 KiB of generated data into a checksum.
struct checksum_job {
  std::uint64_t remaining_chunks;
  std::uint64_t sum = 0;
  coop::step operator()() {
    for (std::uint64_t i = 0; i < 64 * 1024 / 8; ++i) sum = sum * 6364136223846793005u + i + remaining_chunks;
    return --remaining_chunks == 0 ? coop::step::done : coop::step::more;
  }
};

// The same fold as a coroutine that co_returns its checksum.
coop::steps_of<std::uint64_t> checksum_coroutine(std::uint64_t chunks) {
  checksum_job job{chunks};
  while (job() == coop::step::more) co_yield coop::next;
  co_return job.sum;
}

coop::steps ticker(asio::steady_timer& timer, int& ticks) {
  for (ticks = 0; ticks < 5; ++ticks) {
    timer.expires_after(2ms);
    co_yield timer.async_wait(asio::deferred);  // the task waits; other tasks run
  }
}

int main() {
  asio::io_context io;
  coop::cooperator coop(io);

  int done = 0;
  auto report = [&](const char* name) {
    return [&, name](std::exception_ptr e) {
      std::printf("%s: %s\n", name, e ? "failed" : "done");
      ++done;
    };
  };
  coop.cooperate(checksum_job{2000}).when_done(report("job A"));
  coop.cooperate(checksum_job{1000}).when_done(report("job B"));

  // Results: the finished job object comes back, and so does a coroutine's co_return.
  std::uint64_t sum_d = 0, sum_e = 0;
  coop.cooperate(coop::returning(checksum_job{300}))
      .when_done([&](std::exception_ptr e, checksum_job job) {
        sum_d = job.sum;
        report("job D")(e);
      });
  coop.coiterate(checksum_coroutine(300), [&](std::exception_ptr e, std::uint64_t sum) {
    sum_e = sum;
    report("job E")(e);
  });

  asio::steady_timer timer(io);
  int ticks = 0;
  coop.cooperate(ticker(timer, ticks)).when_done(report("ticker"));

  // use_future needs the io_context running on another thread.
  auto future = coop.coiterate(checksum_job{500}, asio::use_future);
  std::thread runner([&] { io.run(); });
  future.get();
  std::puts("job C: done (use_future)");
  runner.join();
  std::printf("%d callback jobs finished, ticker ticked %d times\n", done, ticks);
  std::printf("job D checksum %016llx, job E checksum %016llx (the same fold: %s)\n",
              static_cast<unsigned long long>(sum_d), static_cast<unsigned long long>(sum_e),
              sum_d == sum_e ? "equal" : "DIFFERENT");
  return done == 5 && ticks == 5 && sum_d == sum_e && sum_d != 0 ? 0 : 1;
}
