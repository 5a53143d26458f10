// SPDX-License-Identifier: BSL-1.0
// expect: coop: the work returns asio::awaitable
#include <coop/coop.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
boost::asio::awaitable<void> job();
void f(boost::asio::io_context& io) { coop::cooperator(io).cooperate([] { return job(); }); }
