// SPDX-License-Identifier: BSL-1.0
// expect: coop: the work returns bool
#include <coop/coop.hpp>
#include <boost/asio/io_context.hpp>
void f(boost::asio::io_context& io) { coop::cooperator(io).cooperate([] { return true; }); }
