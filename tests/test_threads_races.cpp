// SPDX-License-Identifier: BSL-1.0
// Races between a tick, which holds the cooperator's lock while units run, and other
// threads whose requests it applies later (the inbox). Each case drives the interleaving
// by hand: the unit itself waits for the other thread to have made its call, so the
// order is fixed and the case fails the same way every time. Also run under
// ThreadSanitizer (label "threads").
#define BOOST_TEST_MODULE threads_races
#include <boost/test/unit_test.hpp>

#include <coop/coop.hpp>
#include <support/exception_kind.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>

#include <exception>
#include <optional>
#include <thread>

namespace asio = boost::asio;

// A when_done cancelled from another thread while a tick holds the lock leaves its
// cancellation in the inbox. The task then finishes and the wait's completion runs (and
// frees the operation) before the tick applies the inbox: the queued cancellation must
// not touch the freed operation. Under ASan the stale pointer was a heap-use-after-free.
BOOST_AUTO_TEST_CASE(queued_cancellation_of_a_wait_that_completed_meanwhile) {
  asio::io_context io;
  asio::io_context handlers;  // the wait's handler runs here, run by hand inside the unit
  coop::cooperator coop(io);
  asio::cancellation_signal cancel;
  std::optional<std::string> result;
  coop::cooperative_task self;
  int units = 0;
  self = coop.cooperate([&] {
    ++units;
    // Another thread cancels the wait: the tick holds the lock, so it is queued.
    std::thread([&] { cancel.emit(asio::cancellation_type::terminal); }).join();
    // The task finishes inside its unit: its waiter completes (posted to `handlers`).
    self.stop();
    // The completion runs and frees the operation before the unit ends.
    handlers.run_one();
    return coop::step::more;
  });
  self.when_done(asio::bind_cancellation_slot(
      cancel.slot(), asio::bind_executor(handlers, [&](std::exception_ptr e) { result = coop_test::kind(e); })));
  io.run();
  BOOST_TEST(units == 1);
  BOOST_REQUIRE(result.has_value());
  BOOST_TEST(*result == coop_test::kind<coop::task_stopped>());
}

// The other order: stop() of the cooperator retires the task and completes its waits,
// then cancellations from another thread are queued before those completions run and
// free their operations. Each wait completes exactly once, none is touched afterwards.
BOOST_AUTO_TEST_CASE(queued_cancellations_racing_a_cooperator_stop) {
  asio::io_context io;
  asio::io_context handlers;
  coop::cooperator coop(io);
  constexpr int waits = 16;
  asio::cancellation_signal cancel[waits];
  int completed[waits] = {};
  coop::cooperative_task self;
  self = coop.cooperate([&] {
    coop.stop();  // retires the task from inside its own unit: its waits complete
    // Cancellations arrive after that, before the completions have run: queued.
    std::thread([&] {
      for (auto& c : cancel) c.emit(asio::cancellation_type::terminal);
    }).join();
    while (handlers.run_one() != 0) {
    }
    return coop::step::more;
  });
  for (int i = 0; i < waits; ++i)
    self.when_done(asio::bind_cancellation_slot(cancel[i].slot(),
                                                asio::bind_executor(handlers, [&, i](std::exception_ptr) { ++completed[i]; })));
  io.run();
  handlers.restart();
  handlers.run();
  for (int i = 0; i < waits; ++i) BOOST_TEST(completed[i] == 1);
}
