// SPDX-License-Identifier: BSL-1.0
// Driving an io_context by hand, without threads or sleeps: run what is ready until
// nothing is, or until a condition holds.
#pragma once

#include <boost/asio/io_context.hpp>

#include <cstddef>

namespace coop_test {

/// Runs what is ready until nothing is (the io_context may have stopped for lack of work).
inline std::size_t drain(boost::asio::io_context& io) {
  io.restart();
  return io.poll();
}

/// Runs ready handlers one by one until `done()` holds; false if it never does.
template <class Predicate> bool poll_until(boost::asio::io_context& io, Predicate done) {
  io.restart();
  for (int i = 0; i < 100000 && !done(); ++i)
    if (io.poll_one() == 0) break;
  return done();
}

}  // namespace coop_test
