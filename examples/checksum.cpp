// Three long jobs share one io_context with a periodic timer: the cooperator slices the
// jobs so the timer keeps firing on time. Shows when_done with a callback, use_future and
// a coroutine job paced by a timer.
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
  return done == 3 && ticks == 5 ? 0 : 1;
}
