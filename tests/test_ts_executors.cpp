// SPDX-License-Identifier: BSL-1.0
// Networking TS executors, which Asio's own operations accept beside standard ones: a
// handler bound to the legacy io_context::strand works with when_done and coiterate
// (outstanding work counted with on_work_started/on_work_finished). scripts/test.sh also
// builds the library and this suite with BOOST_ASIO_USE_TS_EXECUTOR_AS_DEFAULT, where
// any_io_executor itself is the TS polymorphic executor.
#define BOOST_TEST_MODULE ts_executors
#include <boost/test/unit_test.hpp>

#include <coop/coop.hpp>

#include "support/exception_kind.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/io_context_strand.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>

namespace asio = boost::asio;

namespace {
struct counter {
  int units = 0;
  int limit = 3;
  coop::step operator()() { return ++units < limit ? coop::step::more : coop::step::done; }
};
}  // namespace

BOOST_AUTO_TEST_CASE(when_done_on_a_legacy_strand) {
  asio::io_context io;
  asio::io_context::strand legacy(io);
  coop::cooperator coop(io);
  std::optional<std::string> result;
  bool on_strand = false;
  auto task = coop.cooperate(counter{});
  task.when_done(asio::bind_executor(legacy, [&](std::exception_ptr e) {
    on_strand = legacy.running_in_this_thread();
    result = coop_test::kind(e);
  }));
  io.run();  // returns only after the handler: the wait counted as work on the strand
  BOOST_REQUIRE(result.has_value());
  BOOST_TEST(*result == "null");
  BOOST_TEST(on_strand);
}

BOOST_AUTO_TEST_CASE(coiterate_and_results_on_a_legacy_strand) {
  asio::io_context io;
  asio::io_context::strand legacy(io);
  coop::cooperator coop(io);
  std::optional<std::string> plain;
  coop.coiterate(counter{}, asio::bind_executor(legacy, [&](std::exception_ptr e) { plain = coop_test::kind(e); }));
  int units = -1;
  coop.coiterate(coop::returning(counter{}),
                 asio::bind_executor(legacy, [&](std::exception_ptr, counter c) { units = c.units; }));
  auto with_result = coop.cooperate(coop::returning(counter{0, 5}));
  int copied_units = -1;
  with_result.when_done(asio::bind_executor(legacy, [&](std::exception_ptr, counter c) { copied_units = c.units; }));
  io.run();
  BOOST_REQUIRE(plain.has_value());
  BOOST_TEST(*plain == "null");
  BOOST_TEST(units == 3);
  BOOST_TEST(copied_units == 5);
}

namespace {
coop::steps paced(asio::steady_timer& timer, int& waits) {
  for (waits = 0; waits < 2; ++waits) {
    timer.expires_after(std::chrono::milliseconds(1));
    co_yield timer.async_wait(asio::deferred);
  }
}
}  // namespace

BOOST_AUTO_TEST_CASE(default_cooperator_and_waits) {
  asio::io_context io;
  asio::steady_timer timer(io);
  int waits = 0;
  std::optional<std::string> result;
  coop::coiterate(io.get_executor(), paced(timer, waits), [&](std::exception_ptr e) { result = coop_test::kind(e); });
  io.run();
  BOOST_REQUIRE(result.has_value());
  BOOST_TEST(*result == "null");
  BOOST_TEST(waits == 2);
}
