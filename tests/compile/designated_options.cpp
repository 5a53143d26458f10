// SPDX-License-Identifier: BSL-1.0
// Compiled with -Wall -Wextra -Werror (tests/CMakeLists.txt): cooperator_options with
// designated initializers, as the README writes them, must not warn in user code; nor
// task_options.
#include <coop/coop.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>

using namespace std::chrono_literals;

void designated_options(boost::asio::io_context& io) {
  coop::cooperator a(io, {.slice = 500us});
  coop::cooperator b(io, {.started = false});
  coop::cooperator c(io, {.slice = 2ms, .started = false});
  coop::cooperator d(io, {.termination = [] { return [] { return true; }; }});
  d.cooperate([] { return coop::step::done; }, {.shares = 200});
  d.cooperate([] { return coop::step::done; }, {.name = "n"});
}
