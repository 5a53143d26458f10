// SPDX-License-Identifier: BSL-1.0
// Compiles against the installed (or added) coop and runs one task to completion.
#include <coop/coop.hpp>

#include <boost/asio/io_context.hpp>

#include <cstdio>

int main() {
  boost::asio::io_context io;
  coop::cooperator cooperator(io);
  int units = 0;
  bool done = false;
  cooperator.cooperate([&] { return ++units == 10 ? coop::step::done : coop::step::more; })
      .when_done([&](std::exception_ptr e) { done = !e; });
  io.run();
  std::printf("consumer of coop %d.%d.%d: %d units, %s\n", COOP_VERSION_MAJOR, COOP_VERSION_MINOR,
              COOP_VERSION_PATCH, units, done ? "done" : "NOT DONE");
  return units == 10 && done ? 0 : 1;
}
